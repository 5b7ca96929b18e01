//! The seam to an external event log: what the hub asks of a cluster's
//! stream, in the hub's own terms.
//!
//! Without one, the [`sequencer`](super::sequencer) is the log: it numbers
//! events and keeps the ring. With one (`[cluster]`, NATS JetStream in
//! [`crate::cluster`]), the hub hands each event's [`Record`] (its
//! envelope without `seq`, serialized once by the publishing node) to the
//! log and waits for the `seq` the log assigned; the log's consumer feeds
//! what it holds, in its order, back through the sequencer's
//! [`append`](super::sequencer::Sequencer::append), on every node alike, so
//! a node delivers its own publishes only when they come back from the
//! log. A resuming subscriber whose point is older than the ring is
//! served from the log by [`EventLog::fetch`], a bounded slice at a time.
//!
//! The hub knows only this trait; the implementation lives above it and
//! talks to the cores through the [`mailbox`](super::mailbox).
//!
//! Layer: hub. Imports the hub's channels and event frames, and the
//! runtime's metrics text.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;

use super::channels::ChannelId;
use super::event::EventFrame;
use crate::runtime::family;

/// An event as the log stores it.
#[derive(Debug, Clone)]
pub struct Record {
    pub channel: ChannelId,
    /// The event id: the log drops a second record with the same id
    /// within its duplicate window.
    pub id: String,
    /// The envelope without `seq`: `{"id":..,"event_type":..,"timestamp":
    /// ..,"message":..,"body":..}`.
    pub payload: Bytes,
}

/// What the log said of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// The log had this event id already: `seq` is the first copy's.
    pub duplicate: bool,
}

/// Why the log did not take records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The log's servers cannot be reached now.
    #[error("the event log is unreachable ({reason}); retry in {retry_after_s} s")]
    Unreachable { reason: String, retry_after_s: u64 },
    /// Too many records are on their way already.
    #[error("{pending} events wait for the event log's acknowledgement; retry shortly")]
    Busy { pending: u64 },
    /// The log refused the record (its reason).
    #[error("the event log refused the event: {0}")]
    Refused(String),
    /// A record is larger than the log takes.
    #[error("an event of {size} bytes is larger than the event log takes ({max} bytes with its headers)")]
    TooLarge { size: usize, max: usize },
}

/// The answer to an [`EventLog::append`]: one [`Appended`] per record, in
/// order, or why not.
pub type Receipt = flume::Receiver<Result<Vec<Appended>, LogError>>;

/// A slice of the log for one replay, asked for by core `core` for the
/// connection in `slot` (whose replay carries `ticket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub core: usize,
    pub slot: usize,
    pub ticket: u64,
    /// Events after this `seq`...
    pub after: u64,
    /// ...up to this one at most (the ring has what follows).
    pub upto: u64,
}

/// What the log had for a [`FetchRequest`].
#[derive(Debug, Default)]
pub struct Fetched {
    /// The events found, in order, finished with their seqs.
    pub events: Vec<EventFrame>,
    /// The oldest `seq` the log still holds (a gap before it is reported).
    pub first: u64,
    /// The last `seq` covered: the replay's next cursor.
    pub through: u64,
    /// The log could not be read: the replay reports the events it could
    /// not serve as a gap rather than wait forever.
    pub failed: Option<String>,
}

/// An external event log.
pub trait EventLog: Send + Sync {
    /// Sends `records` to the log, in order; refused at once when the log
    /// is unreachable or too many records await acknowledgement.
    fn append(&self, records: Vec<Record>) -> Result<Receipt, LogError>;
    /// Reads a slice of the log for a replay; the answer reaches core
    /// `request.core` as a command (`HubCore::fetched`).
    fn fetch(&self, request: FetchRequest);
    /// Whether more records may be sent now (publishers wait while not).
    fn has_room(&self) -> bool;
    /// The log's counters.
    fn stats(&self) -> &LogStats;
}

/// The log's state, for `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Connected to the log's servers.
    pub connected: AtomicBool,
    /// The last publish was acknowledged (false after one failed, until
    /// one succeeds): connected is not enough while a stream elects its
    /// leader.
    pub publishing: AtomicBool,
    /// The last `seq` the log assigned, as last seen.
    pub stream_last_seq: AtomicU64,
    /// The oldest `seq` the log holds, as last seen.
    pub stream_first_seq: AtomicU64,
    /// The last `seq` this node's consumer delivered.
    pub consumed_seq: AtomicU64,
    /// The consumer failed or stopped moving and has delivered nothing
    /// since: this node's subscribers get no events for now.
    pub consumer_stalled: AtomicBool,
    /// Records sent and not yet acknowledged.
    pub acks_pending: AtomicU64,
    /// Records acknowledged.
    pub acked: AtomicU64,
    /// Records the log dropped as duplicates (an event id seen before).
    pub duplicates: AtomicU64,
    /// Publishes that failed (unreachable, refused, timed out).
    pub publish_failures: AtomicU64,
    /// Reconnections to the log's servers.
    pub reconnects: AtomicU64,
    /// Slices read from the log for replays.
    pub fetches: AtomicU64,
    /// Records in the log this node could not read (skipped).
    pub bad_records: AtomicU64,
    /// Times the stream was found recreated (a new epoch).
    pub epochs: AtomicU64,
}

impl LogStats {
    /// Adds the Prometheus text of the log's state to `out`.
    pub fn render(&self, out: &mut String) {
        let one = |v: u64| [(String::new(), v)];
        let consumed = self.consumed_seq.load(Relaxed);
        let last = self.stream_last_seq.load(Relaxed).max(consumed);
        let gauges: [(&str, &str, u64); 8] = [
            (
                "eventhub_cluster_connected",
                "1 while connected to the NATS servers",
                u64::from(self.connected.load(Relaxed)),
            ),
            (
                "eventhub_cluster_publishing",
                "1 unless the last publish to the stream failed",
                u64::from(self.publishing.load(Relaxed)),
            ),
            (
                "eventhub_cluster_consumer_stalled",
                "1 while this node's consumer is being made anew and has delivered nothing since",
                u64::from(self.consumer_stalled.load(Relaxed)),
            ),
            (
                "eventhub_cluster_stream_last_seq",
                "the last seq the stream assigned, as last seen",
                last,
            ),
            (
                "eventhub_cluster_stream_first_seq",
                "the oldest seq the stream holds, as last seen",
                self.stream_first_seq.load(Relaxed),
            ),
            (
                "eventhub_cluster_consumed_seq",
                "the last seq this node's consumer delivered to its cores",
                consumed,
            ),
            (
                "eventhub_cluster_consumer_lag",
                "events in the stream this node has not delivered yet",
                last - consumed,
            ),
            (
                "eventhub_cluster_publish_acks_pending",
                "events sent to the stream and not yet acknowledged",
                self.acks_pending.load(Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            family(out, name, "gauge", help, one(v));
        }
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "eventhub_cluster_publish_acks_total",
                "events the stream acknowledged",
                &self.acked,
            ),
            (
                "eventhub_cluster_duplicates_total",
                "publishes the stream dropped as duplicates of an event id it had",
                &self.duplicates,
            ),
            (
                "eventhub_cluster_publish_failures_total",
                "events not published: NATS unreachable, or no acknowledgement",
                &self.publish_failures,
            ),
            (
                "eventhub_cluster_reconnects_total",
                "times the connection to NATS was made again",
                &self.reconnects,
            ),
            (
                "eventhub_cluster_fetches_total",
                "slices of the stream read for replays",
                &self.fetches,
            ),
            (
                "eventhub_cluster_bad_records_total",
                "stream messages this node could not read as events (skipped)",
                &self.bad_records,
            ),
            (
                "eventhub_cluster_new_epochs_total",
                "times the stream was found made anew",
                &self.epochs,
            ),
        ];
        for (name, help, v) in counters {
            family(out, name, "counter", help, one(v.load(Relaxed)));
        }
    }
}
