//! The one way events enter the hub: validate, check the principal's
//! rights, build each frame once, sequence.
//!
//! `POST /v1/events` and the publisher WebSocket call [`publish_text`]
//! with what a producer sent; the Docker Engine source, which publishes
//! as the hub itself, calls [`publish`] with events it built. Either way
//! each event's envelope (and, for a container event, its Docker frame,
//! from the same JSON) is prepared outside the sequencer's lock and
//! handed to the sequencer, and the caller gets each event's `id` and
//! `seq` back as [`Published`]. Events leave for the cores with the next
//! full batch or [`flush`]: a `POST` flushes before it answers, a
//! publisher socket after each read, the source after each read of the
//! engine's stream.
//!
//! In a cluster ([`super::log`]) the events are not sequenced here: each
//! one's record (its envelope without `seq`) goes to the event log, and
//! the answer is [`Accepted::Sent`], a [`Pending`] the caller waits on
//! for the seqs the log assigned. The events reach the cores when the
//! log's consumer brings them back, on every node alike.
//!
//! Layer: hub. Imports the hub's [`ingest`](super::ingest) rules, the
//! principal's rights ([`auth`](super::auth)), [`event`](super::event)
//! frames, the [`log`](super::log) seam and [`Shared`] (for the sequencer
//! and counters).

use std::sync::atomic::Ordering::Relaxed;

use super::event::Prepared;
use super::ingest::{parse_events, IngestError, NewEvent};
use super::log::{LogError, Receipt, Record};
use super::Shared;

/// An accepted event: its id and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// 64 lowercase hex characters.
    pub id: String,
    pub seq: u64,
}

/// Why nothing was published (a body is accepted whole or not at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The body breaks the ingest rules.
    #[error(transparent)]
    Invalid(#[from] IngestError),
    /// An event is on a channel the principal may not publish to.
    #[error("principal {principal:?} may not publish to {channel:?}")]
    Forbidden { principal: String, channel: String },
    /// The cluster's event log did not take the events.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Events the hub took.
#[derive(Debug)]
pub enum Accepted {
    /// Sequenced here: their ids and seqs.
    Sequenced(Vec<Published>),
    /// Sent to the cluster's event log: the seqs follow its acknowledgement.
    Sent(Pending),
}

/// Events on their way to the event log.
#[derive(Debug)]
pub struct Pending {
    ids: Vec<String>,
    receipt: Receipt,
}

impl Pending {
    /// Waits for the log's acknowledgement.
    pub async fn published(self) -> Result<Vec<Published>, LogError> {
        let answer = self.receipt.recv_async().await;
        Pending::zip(self.ids, answer)
    }

    /// Waits for the log's acknowledgement, blocking the thread (for a
    /// source on a thread of its own).
    pub fn published_blocking(self) -> Result<Vec<Published>, LogError> {
        let answer = self.receipt.recv();
        Pending::zip(self.ids, answer)
    }

    fn zip<E>(
        ids: Vec<String>,
        answer: Result<Result<Vec<super::log::Appended>, LogError>, E>,
    ) -> Result<Vec<Published>, LogError> {
        let appended = answer.map_err(|_| LogError::Unreachable {
            reason: "its client stopped".into(),
            retry_after_s: 1,
        })??;
        Ok(ids
            .into_iter()
            .zip(appended)
            .map(|(id, a)| Published { id, seq: a.seq })
            .collect())
    }
}

/// The cores are behind: more events wait to be fanned out on some core
/// than `hub.max_pending_events`.
#[derive(Debug, thiserror::Error)]
#[error(
    "the hub is not keeping up ({waiting} events wait to be delivered on one core); retry shortly"
)]
pub struct Overloaded {
    pub waiting: usize,
}

/// Whether no core has more than `hub.max_pending_events` waiting, and a
/// cluster's log has room for more unacknowledged events (the check
/// alone, for a producer that waits rather than being refused).
pub fn keeping_up(shared: &Shared) -> bool {
    !shared.mailbox.overloaded(shared.config.max_pending_events)
        && shared.log().is_none_or(|log| log.has_room())
}

/// Whether the hub takes new events now: not while some core has more than
/// `hub.max_pending_events` waiting. Producers are then slowed or refused
/// (counted), so that neither memory nor the healthy subscribers' queues
/// pay for a flood.
pub fn admit(shared: &Shared) -> Result<(), Overloaded> {
    if shared.mailbox.overloaded(shared.config.max_pending_events) {
        shared.stats.publish_overloads.fetch_add(1, Relaxed);
        return Err(Overloaded {
            waiting: shared.mailbox.deepest(),
        });
    }
    Ok(())
}

/// Validates the events in `text` (an event or an array), checks that the
/// principal `principal` may publish each, and sequences them.
pub fn publish_text(
    shared: &Shared,
    principal: usize,
    text: &str,
) -> Result<Accepted, PublishError> {
    let events = parse_events(text, &shared.channels, shared.config.max_events_per_request)?;
    let who = shared.auth.principal(principal);
    for e in &events {
        who.may_publish(e.channel)
            .map_err(|denied| PublishError::Forbidden {
                principal: who.name.clone(),
                channel: shared.channels.name(denied).to_string(),
            })?;
    }
    Ok(publish(shared, &events)?)
}

/// Sequences valid events (or sends them to the cluster's log); returns
/// their ids and seqs, in order, or what to wait on for them.
pub fn publish(shared: &Shared, events: &[NewEvent<'_>]) -> Result<Accepted, LogError> {
    let prepared: Vec<Prepared> = events
        .iter()
        .map(|e| {
            let p = Prepared::with_id(
                e.id.clone().unwrap_or_else(super::event::event_id),
                e.channel,
                shared.channels.name(e.channel),
                &e.message,
                &e.body,
            );
            // A container event's body is its Docker JSON: the Docker frame
            // is made from the same bytes.
            match &e.container {
                Some(c) => p.with_docker(c),
                None => p,
            }
        })
        .collect();
    if let Some(log) = shared.log() {
        let records = prepared
            .iter()
            .map(|p| Record {
                channel: p.channel,
                id: p.id.clone(),
                payload: p.record(),
            })
            .collect();
        let receipt = log.append(records).inspect_err(|e| {
            if matches!(e, LogError::Busy { .. }) {
                shared.stats.publish_overloads.fetch_add(1, Relaxed);
            }
        })?;
        shared
            .stats
            .events_in
            .fetch_add(prepared.len() as u64, Relaxed);
        let ids = prepared.into_iter().map(|p| p.id).collect();
        return Ok(Accepted::Sent(Pending { ids, receipt }));
    }
    let seqs = shared.sequencer.publish(&prepared);
    shared
        .stats
        .events_in
        .fetch_add(prepared.len() as u64, Relaxed);
    Ok(Accepted::Sequenced(
        prepared
            .into_iter()
            .zip(seqs)
            .map(|(p, seq)| Published { id: p.id, seq })
            .collect(),
    ))
}

/// Sends what was published and not yet sent to the cores.
pub fn flush(shared: &Shared) {
    shared.sequencer.flush();
}
