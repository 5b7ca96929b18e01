//! Delivering on this node: one ordered consumer of the whole stream feeds
//! the sequencer (and so every core), in the stream's order, with the
//! stream's seqs; and a watch on the stream, every [`WATCH`], for the
//! metrics (first and last seq, lag) and for a stream made anew.
//!
//! The consumer starts after the last seq the node has (the stream's last
//! at start-up); the client library's ordered consumer recreates itself
//! after a lost connection or a missed message from the last seq it
//! delivered, so nothing is skipped, and the sequencer drops anything it
//! already has. Messages that are ready together go to the cores as one
//! batch.
//!
//! A stream whose creation time changed (deleted and made again, by us or
//! by an operator) is a new epoch: the ring starts again at its last seq,
//! every subscriber is closed with 1012 naming it (they resume with an
//! explicit gap), and the consumer starts over. A stream that is gone is
//! made again by [`super::stream::ensure`].
//!
//! Layer: cluster. Imports the hub's sequencer (through [`Shared`]), log
//! stats and records.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{push, DeliverPolicy};
use async_nats::jetstream::context::RequestErrorKind;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use futures_util::{FutureExt as _, StreamExt as _};

use super::record::frame;
use super::{notice, stream};
use crate::config::ClusterConfig;
use crate::hub::log::LogStats;
use crate::hub::sequencer::BATCH_MAX;
use crate::hub::Shared;

/// How often the stream's state is looked at.
pub const WATCH: Duration = Duration::from_secs(2);

/// A consumer behind the stream that delivers nothing for this long is
/// made anew.
const STALL: Duration = Duration::from_secs(3);

/// Waits after a failure to consume, before trying again: doubling from
/// the first to the second.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs the consumer for ever, starting from `stream` of `epoch`.
pub async fn run(
    client: async_nats::Client,
    js: Context,
    config: ClusterConfig,
    shared: Arc<Shared>,
    stats: Arc<LogStats>,
    mut stream: Stream,
    mut epoch: String,
) {
    let mut retry = RETRY_MIN;
    loop {
        let before = stats.consumed_seq.load(Relaxed);
        if let Err(e) = consume(&client, &config, &shared, &stats, &stream, &epoch).await {
            stats.consumer_stalled.store(true, Relaxed);
            // A consumer that delivered something was a success: the pause
            // starts small again.
            if stats.consumed_seq.load(Relaxed) != before {
                retry = RETRY_MIN;
            }
            log::warn!(
                "cluster: consumer: {e}; starting again from seq {} in {retry:?}",
                shared.sequencer.last_seq() + 1
            );
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
        // The stream may have gone, or been made anew.
        match stream::ensure(&js, &config).await {
            Ok((found, _)) => {
                let found_epoch = stream::epoch(found.cached_info());
                if found_epoch != epoch {
                    begin_epoch(&shared, &stats, &found, &found_epoch);
                    epoch = found_epoch;
                }
                stream = found;
            }
            Err(e) => log::warn!("cluster: {e}"),
        }
    }
}

/// The stream was made anew: a new run of seqs.
fn begin_epoch(shared: &Shared, stats: &LogStats, stream: &Stream, epoch: &str) {
    let last = stream.cached_info().state.last_sequence;
    log::warn!(
        "cluster: stream {} was made anew (epoch {epoch}, last seq {last}): closing subscribers so they resume with a gap",
        stream.cached_info().config.name
    );
    stats.epochs.fetch_add(1, Relaxed);
    shared.sequencer.restart(epoch, last);
    stats.consumed_seq.store(last, Relaxed);
    notice::new_epoch(shared, epoch);
}

/// Consumes until an error, or until the watch finds another epoch.
async fn consume(
    client: &async_nats::Client,
    config: &ClusterConfig,
    shared: &Shared,
    stats: &LogStats,
    stream: &Stream,
    epoch: &str,
) -> Result<(), String> {
    let start = shared.sequencer.last_seq() + 1;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..push::OrderedConfig::default()
        })
        .await
        .map_err(|e| format!("cannot create the ordered consumer: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot consume: {e}"))?;
    log::info!(
        "cluster: consuming stream {} from seq {start}",
        config.stream
    );
    let mut watch = tokio::time::interval(WATCH);
    let prefix = config.subject_prefix.as_str();
    // When this consumer last delivered (or started).
    let mut progress = Instant::now();
    loop {
        tokio::select! {
            next = messages.next() => {
                let mut batch = Vec::with_capacity(BATCH_MAX);
                let mut next = next;
                loop {
                    let message = match next {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            deliver(shared, stats, batch);
                            return Err(e.to_string());
                        }
                        None => {
                            deliver(shared, stats, batch);
                            return Err("the consumer ended".into());
                        }
                    };
                    let seq = message.info().map_err(|e| e.to_string())?.stream_sequence;
                    match frame(shared, prefix, message.subject.as_str(), &message.payload, seq) {
                        Ok(ev) => batch.push(ev),
                        Err(e) => {
                            stats.bad_records.fetch_add(1, Relaxed);
                            log::warn!("cluster: skipping stream message {seq}: {e}");
                        }
                    }
                    stats.consumed_seq.store(seq, Relaxed);
                    stats.consumer_stalled.store(false, Relaxed);
                    progress = Instant::now();
                    if batch.len() >= BATCH_MAX {
                        break;
                    }
                    // What is ready now goes in the same batch.
                    match messages.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
                deliver(shared, stats, batch);
            }
            _ = watch.tick() => {
                let info = match stream.get_info().await {
                    Ok(info) => info,
                    // JetStream answered with an error: the stream is gone.
                    Err(e) if e.kind() == RequestErrorKind::Other => {
                        return Err(format!("stream info: {e}"));
                    }
                    // Unreachable now: the consumer waits for the
                    // connection on its own; the watch looks again next time.
                    Err(_) => continue,
                };
                if stream::epoch(&info) != epoch {
                    return Err("the stream was made anew".into());
                }
                stats.stream_first_seq.store(info.state.first_sequence, Relaxed);
                stats.stream_last_seq.store(info.state.last_sequence, Relaxed);
                // An ordered consumer whose server went away notices only
                // after two missed heartbeats (10 s): a stream ahead of a
                // consumer that has delivered nothing for STALL gets a new
                // consumer from the last seq delivered.
                let consumed = stats.consumed_seq.load(Relaxed);
                if info.state.last_sequence <= consumed {
                    // Caught up (a quiet stream delivers nothing, and need not).
                    stats.consumer_stalled.store(false, Relaxed);
                    progress = Instant::now();
                } else if progress.elapsed() >= STALL {
                    stats.consumer_stalled.store(true, Relaxed);
                    return Err(format!(
                        "no progress for {:?} while the stream is at seq {} and this node at {consumed}",
                        progress.elapsed(),
                        info.state.last_sequence
                    ));
                }
            }
        }
    }
}

/// Hands `batch` to the cores.
fn deliver(shared: &Shared, stats: &LogStats, batch: Vec<crate::hub::event::EventFrame>) {
    if batch.is_empty() {
        return;
    }
    let last = batch.last().map_or(0, |e| e.seq);
    shared.sequencer.append(batch);
    shared.sequencer.flush();
    stats.stream_last_seq.fetch_max(last, Relaxed);
}
