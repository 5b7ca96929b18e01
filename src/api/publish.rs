//! Producers: `POST /v1/events` and the publisher WebSocket
//! `GET /v1/ws/publish`.
//!
//! Both hand what the producer sent to the hub's publish service
//! ([`crate::hub::publish`]: validation, the principal's rights, frames
//! built once, sequencing) and answer with its typed results. A POST
//! flushes before answering `202`, so an accepted event is already on its
//! way to every core; a publisher socket flushes after each read, batching
//! the messages that arrived together.
//!
//! In a cluster, a POST answers `202` once the stream acknowledged its
//! events (with the stream's seqs), or `503` with `Retry-After` when the
//! log is unreachable; a publisher socket's acks follow the stream's, in
//! order, from a task of the connection's core.
//!
//! Layer: API. Imports the hub's publish service, the API's
//! [`replies`](super::replies), and the runtime's connection and route.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use super::replies::{self, accepted, error_reply, published};
use super::{HubApp, HubHandler};
use crate::hub::core::HubCore;
use crate::hub::publish::{admit, flush, publish_text, Accepted, PublishError};
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;
use crate::runtime::{Conn, Peer, Route};

/// `POST /v1/events`.
pub async fn post(app: &HubApp, req: &Request, body: &[u8], peer: &Peer) -> Route<HubHandler> {
    let principal = match app.authenticate(req, peer) {
        Ok(p) => p,
        Err(resp) => return Route::Respond(resp),
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return app.bad_request("invalid_event", "body is not UTF-8");
    };
    // Checked again now that the body is here: the POSTs admitted at once
    // by their heads must not all land on cores that fell behind since.
    if let Err(e) = admit(&app.shared) {
        return Route::Respond(replies::overloaded(&e));
    }
    let events = match publish_text(&app.shared, principal, text) {
        Ok(Accepted::Sequenced(events)) => {
            flush(&app.shared);
            events
        }
        Ok(Accepted::Sent(pending)) => match pending.published().await {
            Ok(events) => events,
            Err(e) => return Route::Respond(replies::log_refused(&e)),
        },
        Err(e @ PublishError::Invalid(_)) => {
            return app.bad_request("invalid_event", &e.to_string())
        }
        Err(e @ PublishError::Forbidden { .. }) => return app.forbidden(&e.to_string()),
        Err(PublishError::Log(e)) => return Route::Respond(replies::log_refused(&e)),
    };
    Route::Respond(Response::json(202, accepted(&events)))
}

/// `GET /v1/ws/publish[?ack=true]`.
pub fn upgrade(app: &HubApp, req: &Request, peer: &Peer) -> Route<HubHandler> {
    let (accept, principal) = match app.accept_ws(req, peer) {
        Ok(ok) => ok,
        Err(resp) => return Route::Respond(resp),
    };
    let who = app.shared.auth.principal(principal);
    if !who.may_publish_anywhere() {
        return app.forbidden(&format!("principal {:?} may not publish", who.name));
    }
    let ack = match req.query_param("ack") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return app.bad_request(
                "bad_request",
                &format!("ack must be true or false, not {other:?}"),
            )
        }
    };
    Route::Upgrade {
        accept,
        handler: HubHandler::Publisher(PublisherSession {
            principal: principal as u32,
            ack,
            unflushed: false,
        }),
    }
}

/// A publisher WebSocket: each text message is an event or an array.
pub struct PublisherSession {
    principal: u32,
    /// Answer each accepted message with its ids and seqs.
    ack: bool,
    unflushed: bool,
}

impl PublisherSession {
    pub fn on_open(&mut self, core: &HubCore) {
        core.shared.stats.cores[core.id]
            .publishers
            .fetch_add(1, Relaxed);
    }

    pub fn on_message(
        &mut self,
        core: &HubCore,
        kind: MessageKind,
        payload: &mut [u8],
        conn: &Rc<Conn>,
    ) {
        if kind == MessageKind::Binary {
            conn.send(error_reply("invalid_event", "send events as text messages"));
            return;
        }
        let text = std::str::from_utf8(payload).expect("text messages are valid UTF-8");
        match publish_text(&core.shared, self.principal as usize, text) {
            Ok(Accepted::Sequenced(events)) => {
                self.unflushed = true;
                if self.ack {
                    conn.send(published(&events));
                }
            }
            Ok(Accepted::Sent(pending)) => {
                let (ack, conn) = (self.ack, conn.clone());
                crate::runtime::spawn(async move {
                    match pending.published().await {
                        Ok(events) if ack => conn.send(published(&events)),
                        Ok(_) => {}
                        Err(e) => {
                            conn.send(error_reply(replies::log_error_code(&e), &e.to_string()))
                        }
                    }
                });
            }
            Err(e @ PublishError::Invalid(_)) => {
                conn.send(error_reply("invalid_event", &e.to_string()))
            }
            Err(e @ PublishError::Forbidden { .. }) => {
                conn.send(error_reply("forbidden", &e.to_string()))
            }
            Err(PublishError::Log(e)) => {
                conn.send(error_reply(replies::log_error_code(&e), &e.to_string()))
            }
        }
    }

    pub fn on_input_end(&mut self, core: &HubCore) {
        if std::mem::take(&mut self.unflushed) {
            flush(&core.shared);
        }
    }

    pub fn on_close(&mut self, core: &HubCore) {
        self.on_input_end(core);
        core.shared.stats.cores[core.id]
            .publishers
            .fetch_sub(1, Relaxed);
    }
}
