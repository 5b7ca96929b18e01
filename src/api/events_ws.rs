//! `GET /events/ws?filters=...&since=...&until=...`: container events in
//! Docker's own JSON shape, filtered the way Docker filters its `/events`.
//!
//! Checks before the upgrade: the handshake, the principal (it needs the
//! right to subscribe to `container`), `filters` (malformed JSON, an unknown
//! key, a value of the wrong type or an invalid event value is a 400 naming
//! the problem), `since`/`until` (Unix seconds), `since_seq`/`epoch` (the
//! hub seq and run a 1013 close names), then the per-IP rules. After it:
//! the matching events of the replay ring after `since_seq` and with
//! `time >= since` (and `<= until`), fed at the client's pace
//! ([`HubCore::refill`]), then live ones (none after `until`); `until`
//! without `since` replays from the start of the ring, as Docker replays
//! from the start of its buffer. Once `until` has passed, the
//! core's tick closes the connection with 1000 "until reached"
//! ([`HubCore::on_tick`]); no timer is kept per connection.
//!
//! Layer: API. Imports the hub (principal rights, the Docker filter, the
//! core's subscriber table, the sequencer's replay), the API's
//! [`replies`](super::replies) and the runtime's connection and route.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use super::replies::error_reply;
use super::{HubApp, HubHandler};
use crate::hub::channels::{ChannelSet, CONTAINER};
use crate::hub::core::{DockerSubscriber, HubCore, Replay, REPLAYING};
use crate::hub::docker::filter::DockerFilter;
use crate::hub::ip_limits::IpSlot;
use crate::proto::http::Request;
use crate::runtime::{Conn, Peer, Route};

/// Why the query of `/events/ws` was refused (besides its `filters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{name} must be a Unix timestamp in seconds, e.g. {name}=1700000000")]
    Time { name: &'static str },
}

/// Parses Docker's `since`/`until`: Unix seconds, optionally fractional.
fn parse_time(name: &'static str, value: Option<&str>) -> Result<Option<i64>, QueryError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let whole = v.split_once('.').map_or(v, |(w, _)| w);
    let valid_fraction = v
        .split_once('.')
        .is_none_or(|(_, f)| f.bytes().all(|b| b.is_ascii_digit()));
    match whole.parse::<i64>() {
        Ok(secs) if valid_fraction => Ok(Some(secs)),
        _ => Err(QueryError::Time { name }),
    }
}

/// `GET /events/ws`.
pub fn route(app: &HubApp, req: &Request, peer: &Peer) -> Route<HubHandler> {
    let (accept, principal) = match app.accept_ws(req, peer) {
        Ok(ok) => ok,
        Err(resp) => return Route::Respond(resp),
    };
    let who = app.shared.auth.principal(principal);
    if who.may_subscribe(ChannelSet::only(CONTAINER)).is_err() {
        return app.forbidden(&format!(
            "principal {:?} may not subscribe to container events",
            who.name
        ));
    }
    let filter = match req.query_param("filters") {
        None | Some("") => DockerFilter::default(),
        Some(json) => match DockerFilter::parse(json) {
            Ok(f) => f,
            Err(e) => return app.bad_request("invalid_filters", &e.to_string()),
        },
    };
    let (since, until) = match (
        parse_time("since", req.query_param("since")),
        parse_time("until", req.query_param("until")),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return app.bad_request("bad_request", &e.to_string()),
    };
    let since_seq = match req.query_param("since_seq").map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return app.bad_request(
                "bad_request",
                "since_seq must be a non-negative integer (the hub seq a 1013 close names)",
            )
        }
    };
    let epoch = match super::subscribe::parse_epoch(req) {
        Ok(e) => e,
        Err(msg) => return app.bad_request("bad_request", msg),
    };
    if epoch.is_some() && since_seq.is_none() {
        return app.bad_request(
            "bad_request",
            "epoch needs since_seq: resume with since_seq=SEQ&epoch=EPOCH",
        );
    }
    let ip_slot = match super::subscribe::admit(app, peer) {
        Ok(slot) => slot,
        Err(resp) => return Route::Respond(resp),
    };
    Route::Upgrade {
        accept,
        handler: HubHandler::Docker(Box::new(DockerSession {
            filter: Some(filter),
            since,
            until,
            since_seq,
            epoch,
            ip: ip_slot,
        })),
    }
}

/// An `/events/ws` connection.
pub struct DockerSession {
    /// Moved into the core's index on open.
    filter: Option<DockerFilter>,
    since: Option<i64>,
    until: Option<i64>,
    /// Resume after this hub seq (what a 1013 close names).
    since_seq: Option<u64>,
    /// The run `since_seq` belongs to.
    epoch: Option<String>,
    ip: IpSlot,
}

impl DockerSession {
    pub fn on_open(&mut self, core: &HubCore, conn: &Rc<Conn>) {
        self.ip.place(core.id, conn.slot_index());
        let shared = &core.shared;
        let filter = self.filter.take().unwrap_or_default();
        let pos = shared.sequencer.position();
        // Where the replay starts: after `since_seq` (from the ring's start
        // when it belongs to another run: another epoch, or beyond this
        // run's last seq; Docker's shape has no message to say so), or the
        // ring's start for a `since` time, or (as Docker: from the start of
        // its buffer) for `until` alone; none: live only.
        let after = match (self.since_seq, self.since, self.until) {
            (Some(n), _, _) => {
                let other_run = match &self.epoch {
                    Some(e) => **e != *shared.sequencer.epoch(),
                    None => n > pos.last_seq,
                };
                Some(if other_run {
                    shared.replay_floor(pos)
                } else {
                    n
                })
            }
            (None, Some(_), _) | (None, None, Some(_)) => Some(0),
            (None, None, None) => None,
        };
        let slot = conn.slot_index();
        core.add_docker(DockerSubscriber {
            conn: conn.clone(),
            filter,
            min_seq: if after.is_some() {
                REPLAYING
            } else {
                pos.last_seq
            },
            start: after.unwrap_or(pos.last_seq),
            until: self.until,
        });
        if let Some(after) = after {
            shared.stats.replay_requests.fetch_add(1, Relaxed);
            core.start_replay(
                slot,
                Replay {
                    after,
                    since_time: self.since,
                    gap: None,
                },
            );
        }
    }

    /// The queue drained below half its bound: the next slice of a replay.
    pub fn on_drained(&mut self, core: &HubCore, conn: &Conn) {
        core.refill(conn.slot_index());
    }

    pub fn on_message(&mut self, conn: &Rc<Conn>) {
        conn.send(error_reply(
            "bad_message",
            "/events/ws only sends; filters are set in the URL",
        ));
    }

    pub fn on_close(&mut self, core: &HubCore, conn: &Conn) {
        core.remove_docker(conn.slot_index());
    }
}
