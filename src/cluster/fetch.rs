//! Replays from the stream: the events a resuming subscriber asks for
//! that the node's ring no longer holds (or never held: it started after
//! them), read a bounded slice at a time.
//!
//! Each request names a range after the replay's cursor, up to the ring's
//! oldest event. A slice is read with a short-lived pull consumer that
//! starts at the cursor and acknowledges nothing, in one batch of at most
//! [`FETCH_MAX`] messages, and goes back to the core that asked, as a
//! command; the core queues it as the client drains and asks for the next
//! slice. The first seq found says whether the stream lost some of the
//! range (age or size limits): the replay reports that as a gap.
//!
//! Layer: cluster. Imports the hub's log seam, core and records.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt as _;

use super::record::frame;
use crate::hub::log::{FetchRequest, Fetched};
use crate::hub::Shared;

/// Messages per slice at most.
pub const FETCH_MAX: u64 = 512;

/// Slices read at once, at most.
const CONCURRENT: usize = 8;

/// Serves the fetch requests `requests` brings.
pub async fn serve(
    stream: Stream,
    shared: Arc<Shared>,
    prefix: String,
    requests: flume::Receiver<FetchRequest>,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    while let Ok(request) = requests.recv_async().await {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, shared, prefix) = (stream.clone(), shared.clone(), prefix.clone());
        tokio::spawn(async move {
            let answer = match read(&stream, &shared, &prefix, request).await {
                Ok(fetched) => fetched,
                Err(reason) => Fetched {
                    failed: Some(reason),
                    ..Fetched::default()
                },
            };
            drop(permit);
            if let Some(log) = shared.log() {
                log.stats().fetches.fetch_add(1, Relaxed);
            }
            let FetchRequest {
                core, slot, ticket, ..
            } = request;
            shared
                .mailbox
                .send_command(core, Box::new(move |hc| hc.fetched(slot, ticket, answer)));
        });
    }
}

/// One slice: events in `request.after + 1 ..= request.upto`, at most
/// [`FETCH_MAX`].
async fn read(
    stream: &Stream,
    shared: &Shared,
    prefix: &str,
    request: FetchRequest,
) -> Result<Fetched, String> {
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: request.after + 1,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..pull::Config::default()
        })
        .await
        .map_err(|e| format!("cannot read the stream: {e}"))?;
    let want = (request.upto - request.after).min(FETCH_MAX) as usize;
    let mut batch = consumer
        .fetch()
        .max_messages(want)
        .messages()
        .await
        .map_err(|e| format!("cannot read the stream: {e}"))?;
    let mut out = Fetched {
        through: request.after,
        ..Fetched::default()
    };
    let mut first = None;
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| format!("reading the stream: {e}"))?;
        let seq = message
            .info()
            .map_err(|e| format!("a message without stream info: {e}"))?
            .stream_sequence;
        if seq > request.upto {
            break;
        }
        first.get_or_insert(seq);
        out.through = seq;
        match frame(
            shared,
            prefix,
            message.subject.as_str(),
            &message.payload,
            seq,
        ) {
            Ok(ev) => out.events.push(ev),
            Err(e) => log::warn!("cluster: skipping stream message {seq}: {e}"),
        }
        if out.events.len() >= want {
            break;
        }
    }
    let name = consumer.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    match first {
        Some(first) => out.first = first,
        // Nothing of the range is left: all of it is a gap.
        None => {
            out.first = request.upto + 1;
            out.through = request.upto;
        }
    }
    Ok(out)
}
