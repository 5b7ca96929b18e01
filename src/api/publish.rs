//! Producers: `POST /v1/events` and the publisher WebSocket
//! `GET /v1/ws/publish`.
//!
//! Both validate with [`crate::hub::ingest`], check the principal's publish
//! rights per event, prepare each event's frame outside any lock, and hand
//! them to the sequencer. A POST flushes before answering `202`, so an
//! accepted event is already on its way to every core; a publisher socket
//! flushes after each read, batching the messages that arrived together.

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use super::{error_reply, HubApp, HubHandler};
use crate::hub::core::HubCore;
use crate::hub::event::{reply, Prepared};
use crate::hub::ingest::parse_events;
use crate::hub::Shared;
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;
use crate::runtime::{Conn, Route};

/// Why events were not published.
#[derive(Debug)]
enum PublishError {
    Invalid(String),
    Forbidden(String),
}

/// Validates and sequences the events in `text`; returns the JSON array of
/// their ids and seqs.
fn publish_text(shared: &Shared, principal: usize, text: &str) -> Result<String, PublishError> {
    let events = parse_events(text, &shared.channels, shared.config.max_events_per_request)
        .map_err(|e| PublishError::Invalid(e.to_string()))?;
    let who = shared.auth.principal(principal);
    if let Some(ev) = events.iter().find(|e| !who.publish.contains(e.channel)) {
        return Err(PublishError::Forbidden(format!(
            "principal {:?} may not publish to {:?}",
            who.name,
            shared.channels.name(ev.channel)
        )));
    }
    let prepared: Vec<Prepared> = events
        .iter()
        .map(|e| {
            let p = Prepared::new(
                e.channel,
                shared.channels.name(e.channel),
                &e.message,
                &e.body,
            );
            match &e.container {
                Some(c) => p.with_docker(c),
                None => p,
            }
        })
        .collect();
    let seqs = shared.sequencer.publish(&prepared);
    shared
        .stats
        .events_in
        .fetch_add(prepared.len() as u64, Relaxed);
    let mut out = String::from("[");
    for (i, (p, seq)) in prepared.iter().zip(seqs).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":\"{}\",\"seq\":{seq}}}", p.id);
    }
    out.push(']');
    Ok(out)
}

/// `POST /v1/events`.
pub fn post(app: &HubApp, req: &Request, body: &[u8]) -> Route<HubHandler> {
    let principal = match app.authenticate(req) {
        Ok(p) => p,
        Err(resp) => return Route::Respond(resp),
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return app.bad_request("invalid_event", "body is not UTF-8");
    };
    match publish_text(&app.shared, principal, text) {
        Ok(events) => {
            app.shared.sequencer.flush();
            let count = events.matches("\"seq\"").count();
            Route::Respond(Response::json(
                202,
                format!("{{\"accepted\":{count},\"events\":{events}}}"),
            ))
        }
        Err(PublishError::Invalid(m)) => app.bad_request("invalid_event", &m),
        Err(PublishError::Forbidden(m)) => app.forbidden(&m),
    }
}

/// `GET /v1/ws/publish[?ack=true]`.
pub fn upgrade(app: &HubApp, req: &Request) -> Route<HubHandler> {
    let (accept, principal) = match app.accept_ws(req) {
        Ok(ok) => ok,
        Err(resp) => return Route::Respond(resp),
    };
    let who = app.shared.auth.principal(principal);
    if who.publish.is_empty() {
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
            Ok(events) => {
                self.unflushed = true;
                if self.ack {
                    conn.send(reply(
                        "system",
                        "published",
                        &format!("\"body\":{{\"events\":{events}}}"),
                    ));
                }
            }
            Err(PublishError::Invalid(m)) => conn.send(error_reply("invalid_event", &m)),
            Err(PublishError::Forbidden(m)) => conn.send(error_reply("forbidden", &m)),
        }
    }

    pub fn on_input_end(&mut self, core: &HubCore) {
        if std::mem::take(&mut self.unflushed) {
            core.shared.sequencer.flush();
        }
    }

    pub fn on_close(&mut self, core: &HubCore) {
        self.on_input_end(core);
        core.shared.stats.cores[core.id]
            .publishers
            .fetch_sub(1, Relaxed);
    }
}
