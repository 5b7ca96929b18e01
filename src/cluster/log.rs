//! The hub's [`EventLog`] over the stream: records to the stream, acks
//! back to whoever waits, fetches handed to [`super::fetch`].
//!
//! The cores and the publishing endpoints never block on NATS: `append`
//! checks the connection and the number of acks outstanding, and hands the
//! records to the publisher task through a bounded channel, or refuses at
//! once (503 upstream). The publisher task sends them in order, each with
//! its event id as `Nats-Msg-Id`, pipelined: it does not wait for one ack
//! before sending the next, and each batch's acks are awaited by a task of
//! their own. A publish whose ack does not come is sent again with the same
//! id (the stream's duplicate window makes that safe) before it is given
//! up.
//!
//! Layer: cluster. Imports the hub's log seam and the cluster's records.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::Context;
use async_nats::HeaderMap;

use super::record::subject;
use crate::hub::log::{Appended, EventLog, FetchRequest, LogError, LogStats, Receipt, Record};
use crate::hub::Shared;

/// How long a record is sent again, after a failed send or a lost ack,
/// before the publish is given up (a stream leader election takes a few
/// seconds, during which the stream answers no one).
const RESEND_FOR: Duration = Duration::from_secs(6);
/// The pause before the first resend; doubled up to [`RESEND_PAUSE_MAX`].
const RESEND_PAUSE: Duration = Duration::from_millis(100);
const RESEND_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How long the stream has to acknowledge one send.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Seconds a producer is told to wait when the log is unreachable.
const RETRY_AFTER_S: u64 = 2;

/// Records on their way to the publisher task.
pub struct Append {
    records: Vec<Record>,
    reply: flume::Sender<Result<Vec<Appended>, LogError>>,
}

/// The stream as the hub's event log.
pub struct NatsLog {
    appends: flume::Sender<Append>,
    fetches: flume::Sender<FetchRequest>,
    stats: Arc<LogStats>,
    max_pending: u64,
    /// The largest record payload NATS takes (its `max_payload` less room
    /// for the headers).
    max_record: usize,
}

/// Room left in a NATS message for its subject and headers.
const HEADER_ROOM: usize = 512;

impl NatsLog {
    pub fn new(
        appends: flume::Sender<Append>,
        fetches: flume::Sender<FetchRequest>,
        stats: Arc<LogStats>,
        max_pending: usize,
        max_payload: usize,
    ) -> NatsLog {
        NatsLog {
            appends,
            fetches,
            stats,
            max_pending: max_pending as u64,
            max_record: max_payload.saturating_sub(HEADER_ROOM),
        }
    }

    fn unreachable(reason: &str) -> LogError {
        LogError::Unreachable {
            reason: reason.to_string(),
            retry_after_s: RETRY_AFTER_S,
        }
    }
}

impl EventLog for NatsLog {
    fn append(&self, records: Vec<Record>) -> Result<Receipt, LogError> {
        if let Some(big) = records.iter().find(|r| r.payload.len() > self.max_record) {
            return Err(LogError::TooLarge {
                size: big.payload.len(),
                max: self.max_record,
            });
        }
        if !self.stats.connected.load(Relaxed) {
            self.stats
                .publish_failures
                .fetch_add(records.len() as u64, Relaxed);
            return Err(NatsLog::unreachable("not connected to NATS"));
        }
        // Publishers wait while `max_pending` are outstanding
        // (`has_room`, checked after each message of a publisher socket);
        // the refusal is past twice that, so that the message that filled
        // the window (at most `hub.max_events_per_request` events) still
        // goes through.
        let n = records.len() as u64;
        let before = self.stats.acks_pending.fetch_add(n, Relaxed);
        if before > 0 && before + n > 2 * self.max_pending {
            self.stats.acks_pending.fetch_sub(n, Relaxed);
            return Err(LogError::Busy { pending: before });
        }
        let (reply, receipt) = flume::bounded(1);
        match self.appends.try_send(Append { records, reply }) {
            Ok(()) => Ok(receipt),
            Err(e) => {
                self.stats.acks_pending.fetch_sub(n, Relaxed);
                Err(match e {
                    flume::TrySendError::Full(_) => LogError::Busy { pending: before },
                    flume::TrySendError::Disconnected(_) => {
                        NatsLog::unreachable("the NATS client stopped")
                    }
                })
            }
        }
    }

    fn fetch(&self, request: FetchRequest) {
        if self.fetches.try_send(request).is_err() {
            log::warn!("cluster: too many replays fetching from the stream at once; one waits for its next drain");
        }
    }

    fn has_room(&self) -> bool {
        self.stats.acks_pending.load(Relaxed) < self.max_pending
    }

    fn stats(&self) -> &LogStats {
        &self.stats
    }
}

/// The publisher task: sends what `appends` brings, in order.
pub async fn publish(
    js: Context,
    shared: Arc<Shared>,
    prefix: String,
    appends: flume::Receiver<Append>,
    stats: Arc<LogStats>,
) {
    while let Ok(Append { records, reply }) = appends.recv_async().await {
        let total = records.len() as u64;
        let mut sent = Vec::with_capacity(records.len());
        let mut failed = None;
        for record in records {
            let subject = subject(&prefix, shared.channels.name(record.channel));
            match send(&js, &subject, &record).await {
                Ok(ack) => sent.push((ack, subject, record)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let (js, stats) = (js.clone(), stats.clone());
        tokio::spawn(async move {
            let result = acks(&js, sent, failed, &stats).await;
            stats.acks_pending.fetch_sub(total, Relaxed);
            let _ = reply.send(result);
        });
    }
}

/// Sends one record (not waiting for its ack).
async fn send(js: &Context, subject: &str, record: &Record) -> Result<PublishAckFuture, String> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", record.id.as_str());
    js.publish_with_headers(subject.to_string(), headers, record.payload.clone())
        .await
        .map_err(|e| e.to_string())
}

/// Awaits the acks of one append, in order; an ack that does not come is
/// asked for again by sending the record again (same id).
async fn acks(
    js: &Context,
    sent: Vec<(PublishAckFuture, String, Record)>,
    failed: Option<String>,
    stats: &LogStats,
) -> Result<Vec<Appended>, LogError> {
    let mut out = Vec::with_capacity(sent.len());
    let mut error = failed;
    for (ack, subject, record) in sent {
        if error.is_some() {
            break;
        }
        let mut answer = ack.await.map_err(|e| e.to_string());
        let (start, mut pause) = (Instant::now(), RESEND_PAUSE);
        while answer.is_err() && start.elapsed() < RESEND_FOR {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESEND_PAUSE_MAX);
            answer = match send(js, &subject, &record).await {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
        }
        match answer {
            Ok(ack) => {
                stats.acked.fetch_add(1, Relaxed);
                if ack.duplicate {
                    stats.duplicates.fetch_add(1, Relaxed);
                }
                out.push(Appended {
                    seq: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Err(e) => error = Some(e),
        }
    }
    match error {
        None => {
            stats.publishing.store(true, Relaxed);
            Ok(out)
        }
        Some(reason) => {
            let failures = stats.publish_failures.fetch_add(1, Relaxed) + 1;
            stats.publishing.store(false, Relaxed);
            warn_at_most_every_second(|| {
                log::warn!(
                    "cluster: a publish to the stream failed: {reason} ({failures} failed so far)"
                )
            });
            Err(NatsLog::unreachable(&reason))
        }
    }
}

/// Runs `warn` unless it ran less than a second ago: a failing stream
/// fails every publish, and the log should not grow with the publish rate.
fn warn_at_most_every_second(warn: impl FnOnce()) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1000;
    let last = LAST.load(Relaxed);
    if now >= last + 1000 && LAST.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
        warn();
    }
}
