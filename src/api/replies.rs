//! Every JSON shape the API sends a client that is not an event: the
//! subscription confirmation, subscription changes, the replay gap, pongs,
//! the client-id reply, publish results and acks, unsubscribe results,
//! in-band errors and the overloaded answer; and the texts of the refusals that name a right.
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
use std::sync::atomic::Ordering::Relaxed;

use crate::hub::log::LogError;
use crate::hub::publish::{Overloaded, Published};
use crate::hub::Shared;
use crate::proto::http::Response;
use crate::proto::json::{error_object, push_string};

/// The body of `GET /healthz`.
pub const HEALTHY: &str = r#"{"status":"ok"}"#;

/// `GET /healthz`: ok; in a cluster, with the event log's state, and
/// `503` "degraded" while the log is unreachable (publishes fail; the
/// node's subscribers stay connected).
pub fn health(shared: &Shared) -> Response {
    let Some(log) = shared.log() else {
        return Response::json(200, HEALTHY.into());
    };
    let stats = log.stats();
    let consumed = stats.consumed_seq.load(Relaxed);
    let epoch = shared.sequencer.epoch();
    let healthy = stats.connected.load(Relaxed)
        && stats.publishing.load(Relaxed)
        && !stats.consumer_stalled.load(Relaxed);
    if healthy {
        Response::json(
            200,
            format!(
                r#"{{"status":"ok","event_log":"reachable","epoch":"{epoch}","seq":{consumed}}}"#
            ),
        )
    } else {
        Response::json(
            503,
            format!(
                r#"{{"status":"degraded","event_log":"unreachable","error":{{"code":"log_unreachable","message":"the event log (NATS) is unreachable, its stream does not answer, or this node's consumer is being made anew: publishes may get 503 and events wait; subscribers stay connected"}},"epoch":"{epoch}","seq":{consumed}}}"#
            ),
        )
    }
}

/// The answer to a `POST /v1/events` while the cores are behind: 503 with
/// `Retry-After`, before its body is read or after.
pub fn overloaded(why: &Overloaded) -> Response {
    Response::error(503, "overloaded", &why.to_string()).with_header("Retry-After", "1")
}

/// The error code of a publish the cluster's event log did not take, in
/// an HTTP answer or a publisher socket's error message alike.
pub fn log_error_code(why: &LogError) -> &'static str {
    match why {
        LogError::Unreachable { .. } => "log_unreachable",
        LogError::Busy { .. } => "overloaded",
        LogError::Refused(_) => "log_refused",
        LogError::TooLarge { .. } => "payload_too_large",
    }
}

/// The answer to a publish the cluster's event log did not take: `503`
/// with `Retry-After`, or `413` for an event too large for it.
pub fn log_refused(why: &LogError) -> Response {
    let code = log_error_code(why);
    let retry = match why {
        LogError::Unreachable { retry_after_s, .. } => *retry_after_s,
        LogError::Busy { .. } | LogError::Refused(_) => 1,
        LogError::TooLarge { .. } => return Response::error(413, code, &why.to_string()),
    };
    Response::error(503, code, &why.to_string()).with_header("Retry-After", retry.to_string())
}

/// The first message of a subscriber: its client id, subscriptions, the
/// hub run's `epoch` and `last_seq`, the seq its events start after (to
/// resume with, `since=<last_seq>&epoch=<epoch>`, while no event has
/// come), on `global`.
pub fn confirmation(shared: &Shared, client_id: Uuid, set: ChannelSet, after: u64) -> Bytes {
    let body = format!(
        "\"body\":{{\"client_id\":\"{client_id}\",\"subscriptions\":{},\"epoch\":\"{}\",\"last_seq\":{after}}}",
        shared.channels.json_list(set),
        shared.sequencer.epoch()
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

/// The `replay-gap` message on `system`: the events after `since` in
/// `first..=last` are no longer in the replay ring (a
/// [`GapMessage`](crate::hub::core::GapMessage)).
pub fn replay_gap(since: u64, first: u64, last: u64, last_seq: u64) -> Bytes {
    gap_message(
        since,
        Some((first, last)),
        last_seq,
        None,
        "the replay ring no longer holds every event after since",
    )
}

/// The `replay-gap` message on `system` for a `since` from another run of
/// the hub (its `epoch` is not this run's, or it is beyond the last `seq`
/// this run assigned): this run's seqs are a new sequence, so what the
/// ring holds is replayed from its start; `missed` is what this run
/// assigned that the ring no longer holds.
pub fn replay_restarted(
    since: u64,
    client_epoch: Option<&str>,
    missed: Option<(u64, u64)>,
    last_seq: u64,
) -> Bytes {
    let why = match client_epoch {
        Some(_) => "hub restarted: epoch is not the current one; seqs restarted at 1, replaying what the hub holds",
        None => "hub restarted: since is beyond the last seq of this run; seqs restarted at 1, replaying what the hub holds",
    };
    gap_message(since, missed, last_seq, Some(client_epoch), why)
}

fn gap_message(
    since: u64,
    missed: Option<(u64, u64)>,
    last_seq: u64,
    restarted: Option<Option<&str>>,
    why: &str,
) -> Bytes {
    let mut body = format!("\"body\":{{\"since\":{since},");
    match missed {
        Some((first, last)) => {
            let _ = write!(body, "\"missed_from\":{first},\"missed_to\":{last},");
        }
        None => body.push_str("\"missed_from\":null,\"missed_to\":null,"),
    }
    let _ = write!(body, "\"last_seq\":{last_seq},");
    if let Some(client_epoch) = restarted {
        body.push_str("\"restarted\":true,\"client_epoch\":");
        match client_epoch {
            Some(e) => push_string(&mut body, e),
            None => body.push_str("null"),
        }
        body.push(',');
    }
    body.push_str("\"reason\":");
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

/// The `201` body of `POST /v1/tickets`: the ticket, how long it is
/// good for, and who it stands for with what rights (what a page may
/// offer its user).
pub fn ticket(shared: &Shared, ticket: &str, ttl_s: u64, who: &Principal) -> String {
    let mut name = String::new();
    push_string(&mut name, &who.name);
    format!(
        "{{\"ticket\":\"{ticket}\",\"expires_in_s\":{ttl_s},\"principal\":{{\"name\":{name},\"subscribe\":{},\"publish\":{},\"admin\":{}}}}}",
        shared.channels.json_list(who.subscribe),
        shared.channels.json_list(who.publish),
        who.admin
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
