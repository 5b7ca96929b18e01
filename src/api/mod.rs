//! The HTTP and WebSocket API: routes requests to hub calls and hub answers
//! to responses. This is the only layer that knows the public JSON shapes
//! (the Events Hub dialect; the Docker-style one joins it).
//!
//! Routes (each also under `/api`, as the Events Hub guide writes them):
//!
//! | route | module |
//! |---|---|
//! | `GET /v1/ws/subscribe` | [`subscribe`] |
//! | `POST /v1/ws/unsubscribe` | [`unsubscribe`] |
//! | `POST /v1/events`, `GET /v1/ws/publish` | [`publish`] |
//! | `GET /events/ws` (Docker-style container events) | [`events_ws`] |
//! | `POST /v1/tickets` (one-time tickets for browsers' sockets) | [`tickets`] |
//! | `GET /v1/stats` (`/metrics` as JSON) | [`stats`] |
//! | `GET /ui` (the web view), `GET /` (to it) | [`ui`] |
//! | `GET /healthz`, `GET /metrics` | here |
//!
//! Before any route: a request that carries an `Origin` (a browser's) is
//! refused with `403` unless it is the hub's own or one that
//! `server.allowed_origins` names ([`HubApp::origin_allowed`]).
//!
//! Every JSON shape the API sends that is not an event is built in
//! [`replies`].
//!
//! Layer: API, over the hub, the runtime's `App` surface and the protocol
//! crate; only `main` is above it. It names no async runtime: the fan-out
//! starts with [`crate::runtime::spawn`], timed work runs on
//! [`App::on_tick`].

pub mod events_ws;
pub mod publish;
pub mod replies;
pub mod stats;
pub mod subscribe;
pub mod tickets;
pub mod ui;
pub mod unsubscribe;

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::config::AllowedOrigins;
use crate::hub::auth::AuthError;
use crate::hub::core::HubCore;
use crate::hub::mailbox::Inbox;
use crate::hub::metrics::{render_sequence, Refusal};
use crate::hub::publish::{admit, keeping_up};
use crate::hub::Shared;
use crate::proto::forwarded::canonical;
use crate::proto::handshake::check_upgrade;
use crate::proto::http::{Request, Response};
use crate::proto::origin::Origin;
use crate::proto::MessageKind;
use crate::runtime::{App, Conn, CoreInfo, Decision, Peer, Route, Stats};

/// What the API itself is configured with (the hub's settings are in
/// [`Shared`]).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Serve the web view (`[ui] enabled`).
    pub ui: bool,
    /// Browser origins allowed besides the hub's own.
    pub allowed_origins: AllowedOrigins,
}

/// The hub application on one core.
pub struct HubApp {
    core: Rc<HubCore>,
    inbox: Rc<Inbox>,
    shared: Arc<Shared>,
    runtime_stats: Arc<Stats>,
    settings: Arc<ApiSettings>,
}

impl HubApp {
    pub fn new(info: CoreInfo, shared: Arc<Shared>, settings: Arc<ApiSettings>) -> HubApp {
        let core = Rc::new(HubCore::new(info.id, shared.clone()));
        let rx = shared.take_receiver(info.id);
        HubApp {
            inbox: Rc::new(Inbox::new(core.clone(), rx, shared.mailbox.clone())),
            core,
            shared,
            runtime_stats: info.stats,
            settings,
        }
    }

    /// The `Origin` rule: no `Origin` (not a browser), the hub's own
    /// (the page came from this `Host`), or one the config allows.
    fn origin_allowed(&self, req: &Request) -> Result<(), Response> {
        let Some(value) = req.header("origin") else {
            return Ok(());
        };
        let own = |o: &Origin| req.header("host").is_some_and(|h| o.is_host(h));
        let allowed = match Origin::parse(value) {
            Ok(o) => match &self.settings.allowed_origins {
                AllowedOrigins::Any => true,
                AllowedOrigins::Listed(list) => own(&o) || list.contains(&o),
            },
            Err(_) => matches!(self.settings.allowed_origins, AllowedOrigins::Any),
        };
        if allowed {
            return Ok(());
        }
        self.shared.stats.refused(Refusal::Origin);
        Err(Response::error(
            403,
            "origin_not_allowed",
            &format!(
                "pages from origin {value:?} may not use this hub: it is not the hub's own, nor listed in server.allowed_origins"
            ),
        ))
    }

    /// Counts a refusal and answers with it.
    fn refuse(&self, why: Refusal, resp: Response) -> Route<HubHandler> {
        self.shared.stats.refused(why);
        Route::Respond(resp)
    }

    /// The 429 to send when `client` has spent its failed authentications
    /// (`hub.auth_failures_per_ip`).
    fn not_throttled(&self, client: std::net::IpAddr) -> Result<(), Response> {
        self.shared
            .auth_failures
            .check(client)
            .map_err(|retry_after_s| {
                self.shared.stats.refused(Refusal::AuthThrottled);
                let msg = format!(
                    "too many failed authentications from {client}; retry in {retry_after_s} s"
                );
                Response::error(429, "auth_rate_limited", &msg)
                    .with_header("Retry-After", retry_after_s.to_string())
            })
    }

    /// An unknown secret or ticket from `client`: counted, and taken from
    /// the address's bucket of failed authentications.
    fn failed_authentication(&self, client: std::net::IpAddr) {
        self.shared.stats.auth_failures.fetch_add(1, Relaxed);
        self.shared.auth_failures.failed(client);
    }

    /// The principal a request speaks for, or the 401 to send; or a 429
    /// when the client address has spent its failed authentications
    /// (`hub.auth_failures_per_ip`), right credentials or not. An unknown
    /// token or key takes one from that bucket.
    fn authenticate(&self, req: &Request, peer: &Peer) -> Result<usize, Response> {
        let client = peer.ip();
        self.not_throttled(client)?;
        let cert = peer.cert_name.as_deref();
        self.shared.auth.authenticate(req, cert).map_err(|e| {
            let code = match e {
                AuthError::Missing => "missing_credentials",
                AuthError::UnknownCertificate => "unknown_client_certificate",
                AuthError::Unknown => {
                    self.failed_authentication(client);
                    "invalid_credentials"
                }
            };
            self.shared.stats.refused(Refusal::Unauthorized);
            Response::error(401, code, &e.to_string()).with_header("WWW-Authenticate", "Bearer")
        })
    }

    /// The checks every WebSocket route starts with: a valid upgrade
    /// (its `Sec-WebSocket-Accept`) and the principal.
    fn accept_ws(&self, req: &Request, peer: &Peer) -> Result<(String, usize), Response> {
        let accept = check_upgrade(req).map_err(|e| {
            self.shared.stats.refused(Refusal::BadRequest);
            e.response()
        })?;
        let principal = match req.query_param("ticket") {
            Some(ticket) => self.redeem(ticket, peer)?,
            None => self.authenticate(req, peer)?,
        };
        Ok((accept, principal))
    }

    /// The principal a one-time ticket stands for (it is spent either
    /// way), or the 401 to send; a bad ticket counts as a failed
    /// authentication of the address, as an unknown token does.
    fn redeem(&self, ticket: &str, peer: &Peer) -> Result<usize, Response> {
        let client = peer.ip();
        self.not_throttled(client)?;
        let now = std::time::Instant::now();
        self.shared
            .tickets
            .redeem(ticket, canonical(client), now)
            .map_err(|e| {
                self.failed_authentication(client);
                self.shared.stats.refused(Refusal::Unauthorized);
                Response::error(401, "invalid_ticket", &e.to_string())
            })
    }

    fn not_found(&self, req: &Request) -> Route<HubHandler> {
        self.refuse(
            Refusal::NotFound,
            Response::error(
                404,
                "not_found",
                &format!("no route for {} {}", req.method, req.path),
            ),
        )
    }

    fn forbidden(&self, message: &str) -> Route<HubHandler> {
        self.refuse(
            Refusal::Forbidden,
            Response::error(403, "forbidden", message),
        )
    }

    fn bad_request(&self, code: &str, message: &str) -> Route<HubHandler> {
        self.refuse(Refusal::BadRequest, Response::error(400, code, message))
    }

    /// `GET /metrics` (Prometheus text) and `GET /v1/stats` (the same
    /// text as JSON): for admin principals.
    fn metrics(&self, req: &Request, peer: &Peer, json: bool) -> Route<HubHandler> {
        let principal = match self.authenticate(req, peer) {
            Ok(p) => p,
            Err(resp) => return Route::Respond(resp),
        };
        if !self.shared.auth.principal(principal).admin {
            return self.forbidden(&format!("reading {} needs an admin principal", req.path));
        }
        let mut text = String::with_capacity(8192);
        self.runtime_stats.render(&mut text);
        self.shared.stats.render(&mut text);
        render_sequence(
            self.shared.sequencer.position(),
            &self.shared.sequencer.epoch(),
            &mut text,
        );
        if let Some(log) = self.shared.log() {
            log.stats().render(&mut text);
        }
        if !json {
            let mut resp = Response::json(200, text);
            resp.content_type = "text/plain; version=0.0.4";
            return Route::Respond(resp);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Route::Respond(match stats::to_json(&text, now) {
            Ok(body) => Response::json(200, body),
            Err(e) => {
                log::error!("/v1/stats: {e}");
                Response::error(500, "internal_error", &e.to_string())
            }
        })
    }
}

/// The path with an `/api` prefix before `/v1/` dropped.
fn api_path(req: &Request) -> &str {
    match req.path.strip_prefix("/api") {
        Some(rest) if rest.starts_with("/v1/") => rest,
        _ => req.path.as_str(),
    }
}

/// A hub connection's handler.
pub enum HubHandler {
    Subscriber(subscribe::SubscriberSession),
    /// Boxed: its filter is large, and the handler's size is that of its
    /// largest variant, paid by every connection.
    Docker(Box<events_ws::DockerSession>),
    Publisher(publish::PublisherSession),
}

impl App for HubApp {
    type Handler = HubHandler;

    /// Routes on the head alone: every refusal (404, 405, 401, 429, the
    /// upgrades' 400/403/409) is sent before a byte of the body is read,
    /// and only an authenticated POST has its body read.
    fn route_head(&self, req: &Request, peer: &Peer) -> Decision<HubHandler> {
        if let Err(resp) = self.origin_allowed(req) {
            return Route::Respond(resp).into();
        }
        let path = api_path(req);
        match (req.method.as_str(), path) {
            ("GET", "/healthz") => Route::Respond(replies::health(&self.shared)).into(),
            ("GET", "/metrics") => self.metrics(req, peer, false).into(),
            ("GET", "/v1/stats") => self.metrics(req, peer, true).into(),
            ("POST", "/v1/tickets") => tickets::issue(self, req, peer).into(),
            ("GET", p) if self.settings.ui && ui::is_asset(p) => {
                Route::Respond(ui::asset(p).expect("an asset")).into()
            }
            ("GET", "/") if self.settings.ui => Route::Respond(ui::redirect_to_ui()).into(),
            ("GET", "/v1/ws/subscribe") => subscribe::route(self, req, peer).into(),
            ("GET", "/events/ws") => events_ws::route(self, req, peer).into(),
            ("POST", "/v1/ws/unsubscribe" | "/v1/events") => match self.authenticate(req, peer) {
                Err(resp) => Route::Respond(resp).into(),
                Ok(_) if path == "/v1/events" => match admit(&self.shared) {
                    Ok(()) => Decision::ReadBody {
                        max: self.shared.config.max_body_bytes,
                    },
                    Err(e) => Route::Respond(replies::overloaded(&e)).into(),
                },
                Ok(_) => Decision::ReadBody {
                    max: self.shared.config.max_body_bytes,
                },
            },
            ("GET", "/v1/ws/publish") => publish::upgrade(self, req, peer).into(),
            (
                _,
                "/healthz" | "/metrics" | "/v1/stats" | "/v1/ws/subscribe" | "/v1/ws/publish"
                | "/events/ws",
            ) => Route::Respond(
                Response::error(405, "method_not_allowed", "use GET").with_header("Allow", "GET"),
            )
            .into(),
            (_, "/v1/ws/unsubscribe" | "/v1/events" | "/v1/tickets") => Route::Respond(
                Response::error(405, "method_not_allowed", "use POST").with_header("Allow", "POST"),
            )
            .into(),
            _ => self.not_found(req).into(),
        }
    }

    /// The POST routes, once their head was authenticated and their body
    /// read.
    async fn route(&self, req: &Request, body: Vec<u8>, peer: &Peer) -> Route<HubHandler> {
        match (req.method.as_str(), api_path(req)) {
            ("POST", "/v1/ws/unsubscribe") => unsubscribe::route(self, req, &body, peer).await,
            ("POST", "/v1/events") => publish::post(self, req, &body, peer).await,
            _ => self.not_found(req),
        }
    }

    fn start(self: &Rc<Self>) {
        crate::runtime::spawn(self.inbox.clone().run());
    }

    fn on_tick(&self) {
        self.core.on_tick();
    }

    fn on_shutdown(&self) {
        self.inbox.drain();
    }

    fn on_open(&self, handler: &mut HubHandler, conn: &Rc<Conn>) {
        match handler {
            HubHandler::Subscriber(s) => s.on_open(&self.core, conn),
            HubHandler::Docker(d) => d.on_open(&self.core, conn),
            HubHandler::Publisher(p) => p.on_open(&self.core),
        }
    }

    fn on_message(
        &self,
        handler: &mut HubHandler,
        kind: MessageKind,
        payload: &mut [u8],
        conn: &Rc<Conn>,
    ) {
        match handler {
            HubHandler::Subscriber(s) => s.on_message(&self.core, kind, payload, conn),
            HubHandler::Docker(d) => d.on_message(conn),
            HubHandler::Publisher(p) => p.on_message(&self.core, kind, payload, conn),
        }
    }

    /// A publisher socket is not read while the cores are behind (or, in
    /// a cluster, while the stream's acks are behind): its producer's
    /// writes back up instead of the hub's memory.
    fn may_read(&self, handler: &HubHandler) -> bool {
        if !matches!(handler, HubHandler::Publisher(_)) {
            return true;
        }
        let ok = keeping_up(&self.shared);
        if !ok {
            self.shared
                .stats
                .publish_overloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        ok
    }

    fn on_input_end(&self, handler: &mut HubHandler, _conn: &Rc<Conn>) {
        if let HubHandler::Publisher(p) = handler {
            p.on_input_end(&self.core);
        }
    }

    fn on_drained(&self, handler: &mut HubHandler, conn: &Rc<Conn>) {
        match handler {
            HubHandler::Subscriber(s) => s.on_drained(&self.core, conn),
            HubHandler::Docker(d) => d.on_drained(&self.core, conn),
            HubHandler::Publisher(_) => {}
        }
    }

    fn on_close(&self, handler: &mut HubHandler, conn: &Rc<Conn>) {
        match handler {
            HubHandler::Subscriber(s) => s.on_close(&self.core, conn),
            HubHandler::Docker(d) => d.on_close(&self.core, conn),
            HubHandler::Publisher(p) => p.on_close(&self.core),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// Every idle subscriber holds a handler (inside the reactor's session)
    /// and a row of the core's subscriber table; the C scenario's bytes per
    /// connection are mostly these and the connection itself. A replay's
    /// cursor is not in the subscriber row: it lives in the core's map of
    /// replays in progress, only while one is.
    #[test]
    fn per_connection_state_stays_within_its_budget() {
        assert!(size_of::<super::HubHandler>() <= 24);
        assert!(size_of::<crate::hub::core::Subscriber>() <= 48);
    }
}
