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
//! | `GET /healthz`, `GET /metrics` | here |
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
pub mod subscribe;
pub mod unsubscribe;

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::hub::auth::AuthError;
use crate::hub::core::HubCore;
use crate::hub::mailbox::Inbox;
use crate::hub::metrics::Refusal;
use crate::hub::publish::{admit, keeping_up};
use crate::hub::Shared;
use crate::proto::handshake::check_upgrade;
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;
use crate::runtime::{App, Conn, CoreInfo, Decision, Peer, Route, Stats};

/// The hub application on one core.
pub struct HubApp {
    core: Rc<HubCore>,
    inbox: Rc<Inbox>,
    shared: Arc<Shared>,
    runtime_stats: Arc<Stats>,
}

impl HubApp {
    pub fn new(info: CoreInfo, shared: Arc<Shared>) -> HubApp {
        let core = Rc::new(HubCore::new(info.id, shared.clone()));
        let rx = shared.take_receiver(info.id);
        HubApp {
            inbox: Rc::new(Inbox::new(core.clone(), rx, shared.mailbox.clone())),
            core,
            shared,
            runtime_stats: info.stats,
        }
    }

    /// Counts a refusal and answers with it.
    fn refuse(&self, why: Refusal, resp: Response) -> Route<HubHandler> {
        self.shared.stats.refused(why);
        Route::Respond(resp)
    }

    /// The principal a request speaks for, or the 401 to send; or a 429
    /// when the client address has spent its failed authentications
    /// (`hub.auth_failures_per_ip`), right credentials or not. An unknown
    /// token or key takes one from that bucket.
    fn authenticate(&self, req: &Request, peer: &Peer) -> Result<usize, Response> {
        let client = peer.ip();
        if let Err(retry_after_s) = self.shared.auth_failures.check(client) {
            self.shared.stats.refused(Refusal::AuthThrottled);
            let msg = format!(
                "too many failed authentications from {client}; retry in {retry_after_s} s"
            );
            return Err(Response::error(429, "auth_rate_limited", &msg)
                .with_header("Retry-After", retry_after_s.to_string()));
        }
        let cert = peer.cert_name.as_deref();
        self.shared.auth.authenticate(req, cert).map_err(|e| {
            let code = match e {
                AuthError::Missing => "missing_credentials",
                AuthError::UnknownCertificate => "unknown_client_certificate",
                AuthError::Unknown => {
                    self.shared.stats.auth_failures.fetch_add(1, Relaxed);
                    self.shared.auth_failures.failed(client);
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
        Ok((accept, self.authenticate(req, peer)?))
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

    fn metrics(&self, req: &Request, peer: &Peer) -> Route<HubHandler> {
        let principal = match self.authenticate(req, peer) {
            Ok(p) => p,
            Err(resp) => return Route::Respond(resp),
        };
        if !self.shared.auth.principal(principal).admin {
            return self.forbidden("reading /metrics needs an admin principal");
        }
        let mut body = String::with_capacity(4096);
        self.runtime_stats.render(&mut body);
        self.shared.stats.render(&mut body);
        if let Some(log) = self.shared.log() {
            log.stats().render(&mut body);
        }
        let mut resp = Response::json(200, body);
        resp.content_type = "text/plain; version=0.0.4";
        Route::Respond(resp)
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
        let path = api_path(req);
        match (req.method.as_str(), path) {
            ("GET", "/healthz") => Route::Respond(replies::health(&self.shared)).into(),
            ("GET", "/metrics") => self.metrics(req, peer).into(),
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
            (_, "/healthz" | "/metrics" | "/v1/ws/subscribe" | "/v1/ws/publish" | "/events/ws") => {
                Route::Respond(
                    Response::error(405, "method_not_allowed", "use GET")
                        .with_header("Allow", "GET"),
                )
                .into()
            }
            (_, "/v1/ws/unsubscribe" | "/v1/events") => Route::Respond(
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
