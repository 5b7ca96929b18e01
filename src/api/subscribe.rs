//! `GET /v1/ws/subscribe?event_types=...[&since=N]` and what a subscriber
//! may say on its socket.
//!
//! Before the upgrade: the handshake, the principal, the channels (unknown
//! ones are a 400 listing the valid ones; ones outside the principal's
//! rights a 403), `since` and `epoch`, and the per-IP rules (429, 409).
//! After it: the confirmation on `global` (with the hub run's epoch), then
//! the replay if `since` was given, fed from the ring at the client's pace
//! ([`HubCore::refill`]), with an explicit `replay-gap` message on `system`
//! when the ring no longer reaches back that far or `since` is from another
//! run of the hub (another `epoch`, or beyond this run's last seq), then
//! live events.
//!
//! In-band messages: a health ping (`{"event_type":"health","id":..,
//! "message":"ping"}`, answered with a pong on `health` for subscribers of
//! `health`), a client-id request (`{"event_type":"system","message":
//! "client-id"}` or `{"type":"client-id"}`), and subscription changes
//! (`{"action":"subscribe"|"unsubscribe","event_types":[..]}`). Anything
//! else gets an error message on `system` and the connection goes on.
//!
//! Layer: API. Imports the hub (channels, client ids, the core's subscriber
//! table, principal rights, per-IP rules, the sequencer's replay), the
//! API's [`replies`] and the runtime's connection and route.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use serde::Deserialize;

use super::replies::{self, error_reply, may_not_subscribe};
use super::{HubApp, HubHandler};
use crate::hub::channels::{ChannelSet, GLOBAL, HEALTH};
use crate::hub::client_id;
use crate::hub::core::{HubCore, Replay, Subscriber, SubscriberInfo, REPLAYING};
use crate::hub::ip_limits::{IpRefusal, IpSlot};
use crate::hub::metrics::Refusal;
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;
use crate::runtime::{Conn, Peer, Route};

/// `GET /v1/ws/subscribe`.
pub fn route(app: &HubApp, req: &Request, peer: &Peer) -> Route<HubHandler> {
    let (accept, principal) = match app.accept_ws(req, peer) {
        Ok(ok) => ok,
        Err(resp) => return Route::Respond(resp),
    };
    let shared = &app.shared;
    let names = req
        .query
        .iter()
        .filter(|(k, _)| k == "event_types")
        .flat_map(|(_, v)| v.split(','));
    let mut channels = match shared.channels.parse(names) {
        Ok(set) => set,
        Err(e) => return app.bad_request("unknown_channel", &e.to_string()),
    };
    channels.insert(GLOBAL);
    let who = shared.auth.principal(principal);
    if let Err(denied) = who.may_subscribe(channels) {
        return app.forbidden(&may_not_subscribe(shared, who, denied));
    }
    let since = match req.query_param("since").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return app.bad_request(
                "bad_request",
                "since must be a non-negative integer (a seq)",
            )
        }
    };
    let epoch = match parse_epoch(req) {
        Ok(e) => e,
        Err(msg) => return app.bad_request("bad_request", msg),
    };
    if epoch.is_some() && since.is_none() {
        return app.bad_request(
            "bad_request",
            "epoch needs since: resume with since=SEQ&epoch=EPOCH",
        );
    }
    let ip_slot = match admit(app, peer) {
        Ok(slot) => slot,
        Err(resp) => return Route::Respond(resp),
    };
    Route::Upgrade {
        accept,
        handler: HubHandler::Subscriber(SubscriberSession {
            opening: Some(Box::new(Opening {
                initial: channels,
                since,
                epoch,
                principal: principal as u32,
            })),
            ip: ip_slot,
        }),
    }
}

/// The `epoch` parameter of the subscription endpoints: 16 hex characters
/// (as a confirmation or a 1013 reason gives it), or the 400's message.
pub(crate) fn parse_epoch(req: &Request) -> Result<Option<String>, &'static str> {
    match req.query_param("epoch") {
        None => Ok(None),
        Some(e) if e.len() == 16 && e.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(e.to_ascii_lowercase()))
        }
        Some(_) => Err("epoch must be 16 hex characters, as the subscription confirmation or a 1013 close reason gives it"),
    }
}

/// The per-IP rules of the subscription endpoints: a place, or the 429 or
/// 409 to answer with.
pub(crate) fn admit(app: &HubApp, peer: &Peer) -> Result<IpSlot, Response> {
    app.shared
        .ip_limits
        .admit(peer.ip())
        .map_err(|refusal| match refusal {
            IpRefusal::RateLimited { retry_after_s } => {
                let msg = format!(
                    "too many connection attempts from {}; retry in {retry_after_s} s",
                    peer.ip()
                );
                let resp = Response::error(429, "rate_limited", &msg)
                    .with_header("Retry-After", retry_after_s.to_string());
                app.shared.stats.refused(Refusal::RateLimited);
                resp
            }
            IpRefusal::Conflict { max, holders } => {
                app.shared.stats.refused(Refusal::Conflict);
                let msg = format!(
                    "{} already has {max} active connection(s); close it first",
                    peer.ip()
                );
                let probe = app.shared.config.conflict_probe;
                if probe.is_zero() {
                    return Response::error(409, "conflict", &msg);
                }
                // The connections holding the places may be dead: each is
                // pinged now, and closed if it stays silent.
                for (core, slot) in holders {
                    app.shared.mailbox.send_command(
                        core as usize,
                        Box::new(move |hc: &HubCore| hc.probe(slot as usize)),
                    );
                }
                let retry = probe.as_millis().div_ceil(1000) as u64 + 1;
                let msg = format!(
                    "{msg} (it is being probed: if it does not answer, retry in {retry} s)"
                );
                Response::error(409, "conflict", &msg).with_header("Retry-After", retry.to_string())
            }
        })
}

/// A subscriber connection. Kept to two pointers, since every idle
/// subscriber holds one: who it is and what it receives live in the core's
/// subscriber table (by the connection's slot), what only opening needs is
/// dropped once open, and the core comes with each call.
pub struct SubscriberSession {
    /// What the request asked for, until the connection opens.
    opening: Option<Box<Opening>>,
    /// Held while the connection lives (the per-IP rule).
    ip: IpSlot,
}

/// A subscription request: channels, replay start, and who asked.
struct Opening {
    initial: ChannelSet,
    since: Option<u64>,
    /// The epoch `since` belongs to, if the client named it.
    epoch: Option<String>,
    principal: u32,
}

/// What a subscriber may send.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
}

impl SubscriberSession {
    pub fn on_open(&mut self, core: &HubCore, conn: &Rc<Conn>) {
        self.ip.place(core.id, conn.slot_index());
        let Some(opening) = self.opening.take() else {
            return;
        };
        let Opening {
            initial,
            since,
            epoch,
            principal,
        } = *opening;
        let shared = &core.shared;
        let client_id = client_id::new(core.id, conn.slot_index() as u32);
        let slot = conn.slot_index();
        let pos = shared.sequencer.position();
        let Some(since) = since else {
            core.add(Subscriber {
                conn: conn.clone(),
                client_id,
                principal,
                channels: initial,
                min_seq: pos.last_seq,
            });
            // Tagged with the seq it starts after: the resume point a
            // slow-consumer close names while no event was sent.
            conn.send_tagged(
                replies::confirmation(shared, client_id, initial, pos.last_seq),
                pos.last_seq,
            );
            return;
        };
        shared.stats.replay_requests.fetch_add(1, Relaxed);
        core.add(Subscriber {
            conn: conn.clone(),
            client_id,
            principal,
            channels: initial,
            min_seq: REPLAYING,
        });
        // A since from another run (named by its epoch, or beyond any seq
        // this run assigned) says nothing about this run's seqs: the ring
        // (in a cluster, the stream) is replayed from its start, after an
        // explicit message.
        let other_run = match &epoch {
            Some(e) => **e != *shared.sequencer.epoch(),
            None => since > pos.last_seq,
        };
        let floor = shared.replay_floor(pos);
        let after = if other_run { floor } else { since };
        conn.send_tagged(
            replies::confirmation(shared, client_id, initial, after),
            after,
        );
        if other_run {
            let missed = (floor > 0).then_some((1, floor));
            conn.send(replies::replay_restarted(
                since,
                epoch.as_deref(),
                missed,
                pos.last_seq,
            ));
        }
        core.start_replay(
            slot,
            Replay {
                after,
                since_time: None,
                gap: Some(replies::replay_gap),
            },
        );
    }

    pub fn on_message(
        &mut self,
        core: &HubCore,
        kind: MessageKind,
        payload: &mut [u8],
        conn: &Rc<Conn>,
    ) {
        if kind == MessageKind::Binary {
            conn.send(error_reply(
                "bad_message",
                "send control messages as JSON text",
            ));
            return;
        }
        let msg: ClientMessage = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => {
                return conn.send(error_reply(
                    "bad_message",
                    &format!("not a JSON object: {e}"),
                ))
            }
        };
        let Some(me) = core.subscriber(conn.slot_index()) else {
            return;
        };
        let channels = me.channels;
        match (msg.action.as_deref(), msg.event_type.as_deref(), msg.message.as_deref(), msg.kind.as_deref()) {
            (Some(action @ ("subscribe" | "unsubscribe")), ..) => self.change(core, &me, action, msg.event_types, conn),
            (Some(other), ..) => conn.send(error_reply("bad_message", &format!("unknown action {other:?}: use subscribe or unsubscribe"))),
            (_, _, _, Some("client-id")) | (_, Some("system"), Some("client-id"), _) => {
                conn.send(replies::client_id(me.client_id));
            }
            (_, Some("health"), Some("ping"), _) if channels.contains(HEALTH) => {
                conn.send(replies::pong(msg.id.as_ref(), me.client_id));
            }
            (_, Some("health"), Some("ping"), _) => {
                conn.send(error_reply("not_subscribed", "subscribe to the health channel to receive pongs"));
            }
            _ => conn.send(error_reply(
                "bad_message",
                "expected a health ping, a client-id request, or {\"action\":\"subscribe\"|\"unsubscribe\",\"event_types\":[...]}",
            )),
        }
    }

    /// An in-band subscribe or unsubscribe.
    fn change(
        &self,
        core: &HubCore,
        me: &SubscriberInfo,
        action: &str,
        names: Option<Vec<String>>,
        conn: &Rc<Conn>,
    ) {
        let current = me.channels;
        let Some(names) = names.filter(|n| !n.is_empty()) else {
            return conn.send(error_reply(
                "bad_message",
                "event_types must be a non-empty list of channels",
            ));
        };
        let shared = &core.shared;
        let set = match shared.channels.parse(names.iter().map(String::as_str)) {
            Ok(s) => s,
            Err(e) => return conn.send(error_reply("unknown_channel", &e.to_string())),
        };
        let who = shared.auth.principal(me.principal as usize);
        let next = if action == "subscribe" {
            if let Err(denied) = who.may_subscribe(set) {
                return conn.send(error_reply(
                    "forbidden",
                    &may_not_subscribe(shared, who, denied),
                ));
            }
            current.union(set)
        } else {
            if let Err(e) = who.may_unsubscribe(set) {
                return conn.send(error_reply("bad_message", &e.to_string()));
            }
            current.minus(set)
        };
        core.set_channels(conn.slot_index(), next);
        conn.send(replies::subscriptions(shared, action, next));
    }

    /// The queue drained below half its bound: the next slice of a replay.
    pub fn on_drained(&mut self, core: &HubCore, conn: &Conn) {
        core.refill(conn.slot_index());
    }

    pub fn on_close(&mut self, core: &HubCore, conn: &Conn) {
        core.remove(conn.slot_index());
    }
}
