//! Every JSON shape the API sends a client that is not an event: the
//! subscription confirmation, subscription changes, the replay gap, pongs,
//! the client-id reply, publish results and acks, unsubscribe results, and
//! in-band errors; and the texts of the refusals that name a right.
//!
//! Frames for one client are envelopes made by [`crate::hub::event::reply`]
//! (id, channel, timestamp, message) with the members built here. Strings
//! are escaped by the protocol crate's [`push_string`], and the error
//! object is its [`error_object`]; nothing here escapes by hand.
//!
//! Layer: API. Imports the hub (its channel table, principals, publish
//! results and the envelope builder) and the protocol crate's JSON.

use std::fmt::Write as _;

use bytes::Bytes;
use uuid::Uuid;

use crate::hub::auth::Principal;
use crate::hub::channels::{ChannelId, ChannelSet};
use crate::hub::event::reply;
use crate::hub::publish::Published;
use crate::hub::sequencer::Resume;
use crate::hub::Shared;
use crate::proto::json::{error_object, push_string};

/// The body of `GET /healthz`.
pub const HEALTHY: &str = r#"{"status":"ok"}"#;

/// The first message of a subscriber: its client id and subscriptions, on
/// `global`.
pub fn confirmation(shared: &Shared, client_id: Uuid, set: ChannelSet) -> Bytes {
    let body = format!(
        "\"body\":{{\"client_id\":\"{client_id}\",\"subscriptions\":{}}}",
        shared.channels.json_list(set)
    );
    reply(
        "global",
        "WebSocket connection established subscribed to global by default",
        &body,
    )
}

/// The message telling a client its subscriptions changed.
pub fn subscriptions(shared: &Shared, action: &str, set: ChannelSet) -> Bytes {
    let body = format!(
        "\"body\":{{\"action\":\"{action}\",\"subscriptions\":{}}}",
        shared.channels.json_list(set)
    );
    reply("system", "subscriptions", &body)
}

/// The `replay-gap` message on `system`: what a resume after `since` could
/// not replay (`missed` is `(first, last)`).
pub fn replay_gap(since: u64, missed: (u64, u64), resume: &Resume) -> Bytes {
    let (first, last) = missed;
    let why = if resume.ahead {
        "since is beyond the hub's last seq (the hub restarted); replaying what the ring holds"
    } else {
        "the replay ring no longer holds every event after since"
    };
    let mut body = format!(
        "\"body\":{{\"since\":{since},\"missed_from\":{first},\"missed_to\":{last},\"last_seq\":{},\"reason\":",
        resume.last_seq
    );
    push_string(&mut body, why);
    body.push('}');
    reply("system", "replay-gap", &body)
}

/// The answer to a health ping, on `health`: its `id` as `ref_id`.
pub fn pong(ping_id: Option<&serde_json::Value>, client_id: Uuid) -> Bytes {
    let mut extra = String::from("\"ref_id\":");
    match ping_id {
        Some(serde_json::Value::String(s)) => push_string(&mut extra, s),
        Some(other) => extra.push_str(&other.to_string()),
        None => extra.push_str("null"),
    }
    let _ = write!(extra, ",\"client_id\":\"{client_id}\"");
    reply("health", "pong", &extra)
}

/// The answer to a client-id request, on `system`.
pub fn client_id(id: Uuid) -> Bytes {
    reply(
        "system",
        "client-id",
        &format!("\"body\":{{\"client-id\":\"{id}\",\"client_id\":\"{id}\"}}"),
    )
}

/// `[{"id":..,"seq":..},...]`.
fn published_list(events: &[Published]) -> String {
    let mut out = String::from("[");
    for (i, p) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":\"{}\",\"seq\":{}}}", p.id, p.seq);
    }
    out.push(']');
    out
}

/// The `202` body of `POST /v1/events`.
pub fn accepted(events: &[Published]) -> String {
    format!(
        "{{\"accepted\":{},\"events\":{}}}",
        events.len(),
        published_list(events)
    )
}

/// A publisher socket's ack of one message, on `system`.
pub fn published(events: &[Published]) -> Bytes {
    reply(
        "system",
        "published",
        &format!("\"body\":{{\"events\":{}}}", published_list(events)),
    )
}

/// The `200` body of `POST /v1/ws/unsubscribe`.
pub fn unsubscribed(shared: &Shared, remaining: ChannelSet) -> String {
    format!(
        "{{\"message\":\"Successfully unsubscribed from event types\",\"remaining_subscriptions\":{}}}",
        shared.channels.json_list(remaining)
    )
}

/// An error message on the `system` channel, for a socket that goes on.
pub fn error_reply(code: &str, message: &str) -> Bytes {
    let body = format!("\"body\":{}", error_object(code, message));
    reply("system", "error", &body)
}

/// The refusal of a subscription to `denied`.
pub fn may_not_subscribe(shared: &Shared, who: &Principal, denied: ChannelId) -> String {
    format!(
        "principal {:?} may not subscribe to {:?}",
        who.name,
        shared.channels.name(denied)
    )
}
