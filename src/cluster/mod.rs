//! Several hubs as one: NATS JetStream as the event log (`[cluster]`).
//!
//! One stream holds every event, in one order; its sequence number is the
//! `seq` clients see, on every node. A node publishes by sending the
//! event's record to the stream and answers the producer with the seq the
//! stream acknowledged ([`log`]); it delivers what its one ordered
//! consumer reads back ([`consumer`]), its own publishes included, so every
//! node delivers the same events with the same seqs in the same order. A
//! subscriber resuming from further back than the node's ring is served
//! from the stream ([`fetch`]). The stream's identity is the epoch
//! ([`stream`]).
//!
//! The NATS client (async-nats, on tokio) runs on a thread of its own, off
//! the pinned worker cores, with a current-thread runtime; the cores reach
//! it through bounded channels (the hub's [`crate::hub::log::EventLog`]
//! seam) and it reaches them through their mailboxes. Without `[cluster]`
//! none of this runs.
//!
//! - [`connect`]: servers, credentials, TLS;
//! - [`stream`]: the stream made or checked, its epoch;
//! - [`record`]: events as stream messages and back;
//! - [`log`]: the hub's event log over the stream: publishing and acks;
//! - [`consumer`]: the ordered consumer that feeds the cores, and the
//!   stream's watch;
//! - [`fetch`]: replays from the stream;
//! - [`notice`]: what subscribers are told of the log.
//!
//! Layer: beside the API, over the hub (as [`crate::sources`]): imports
//! the hub's seam, sequencer, mailbox and frames, and the config; nothing
//! of the API or the runtime.

pub mod connect;
pub mod consumer;
pub mod fetch;
pub mod log;
pub mod notice;
pub mod record;
pub mod stream;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ClusterConfig;
use crate::hub::log::LogStats;
use crate::hub::Shared;

/// Replay slices waiting to be read, at most.
const FETCH_QUEUE: usize = 4096;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect { urls: String, reason: String },
    #[error("NATS at {urls} refused the hub: {reason} (check cluster.user/password/token/nkey_seed_file/creds_file and cluster.tls_*)")]
    Refused { urls: String, reason: String },
    #[error("stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("stream {stream} cannot serve: {reason}")]
    StreamUnfit { stream: String, reason: String },
    #[error("`{key}` {path}: {reason}")]
    File {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("cannot start the NATS thread: {0}")]
    Thread(std::io::Error),
    #[error("NATS did not answer within {0:?}")]
    Timeout(Duration),
}

impl ClusterError {
    /// Whether the config is at fault (nothing changes by trying again),
    /// rather than NATS being unreachable or not ready for now (a stream
    /// request that times out while a new NATS cluster elects its leaders,
    /// a stream with replicas that cannot be placed while a node is down:
    /// both pass on their own).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ClusterError::Refused { .. }
                | ClusterError::StreamUnfit { .. }
                | ClusterError::File { .. }
        )
    }
}

/// Connects, makes or checks the stream, sets the hub's event log and
/// starts the NATS thread; returns once the hub may serve (its sequencer
/// at the stream's epoch and last seq).
pub fn start(config: &ClusterConfig, shared: Arc<Shared>) -> Result<(), ClusterError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let config = config.clone();
    let wait = Duration::from_secs(config.connect_timeout_s * 2 + 5);
    std::thread::Builder::new()
        .name("eventhub-nats".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(ClusterError::Thread(e)));
                    return;
                }
            };
            rt.block_on(run(config, shared, ready_tx));
        })
        .map_err(ClusterError::Thread)?;
    match ready_rx.recv_timeout(wait) {
        Ok(result) => result,
        Err(_) => Err(ClusterError::Timeout(wait)),
    }
}

/// The NATS thread: connect, stream, then the publisher, consumer and
/// fetch tasks for ever.
async fn run(
    config: ClusterConfig,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<Result<(), ClusterError>>,
) {
    let stats = Arc::new(LogStats::default());
    let fail = |e| {
        let _ = ready.send(Err(e));
    };
    let urls = config.nats_url.join(",");
    let on_event = {
        let (stats, shared) = (stats.clone(), shared.clone());
        let was_down = AtomicBool::new(false);
        move |event: async_nats::Event| match event {
            async_nats::Event::Connected => {
                stats.connected.store(true, Relaxed);
                stats.publishing.store(true, Relaxed);
                if was_down.swap(false, Relaxed) {
                    stats.reconnects.fetch_add(1, Relaxed);
                    ::log::info!("cluster: connected to NATS again");
                    notice::reachable(&shared, true);
                }
            }
            async_nats::Event::Disconnected => {
                stats.connected.store(false, Relaxed);
                if !was_down.swap(true, Relaxed) {
                    ::log::warn!("cluster: lost the connection to NATS; reconnecting");
                    notice::reachable(&shared, false);
                }
            }
            async_nats::Event::ServerError(e) => ::log::warn!("cluster: NATS server error: {e}"),
            other => ::log::debug!("cluster: NATS: {other}"),
        }
    };
    let options = match connect::options(&config, on_event) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let client = match options.connect(config.nats_url.clone()).await {
        Ok(c) => c,
        Err(e) => {
            use async_nats::ConnectErrorKind as Kind;
            let reason = e.to_string();
            return fail(match e.kind() {
                Kind::Authentication
                | Kind::AuthorizationViolation
                | Kind::Tls
                | Kind::ServerParse => ClusterError::Refused { urls, reason },
                _ => ClusterError::Connect { urls, reason },
            });
        }
    };
    stats.connected.store(true, Relaxed);
    let max_payload = client.server_info().max_payload;
    ::log::info!("cluster: NATS accepts messages of up to {max_payload} bytes");
    if max_payload < shared.config.max_body_bytes + 1024 {
        ::log::info!(
            "cluster: NATS's max_payload ({max_payload} bytes) is below limits.max_body_bytes ({}) with room for an envelope: larger events get 413; raise max_payload in nats-server's config",
            shared.config.max_body_bytes
        );
    }
    stats.publishing.store(true, Relaxed);
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .ack_timeout(log::ACK_TIMEOUT)
        .max_ack_inflight(config.max_acks_pending)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let (stream, created) = match stream::ensure(&js, &config).await {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    let info = stream.cached_info();
    let epoch = stream::epoch(info);
    ::log::info!(
        "cluster: {} stream {} at {urls} (subjects {:?}, {:?} storage, {} replica(s)): {} events, seqs {}..={}, epoch {epoch}",
        if created { "created" } else { "found" },
        info.config.name,
        info.config.subjects,
        info.config.storage,
        info.config.num_replicas,
        info.state.messages,
        info.state.first_sequence,
        info.state.last_sequence,
    );
    shared.sequencer.restart(&epoch, info.state.last_sequence);
    stats
        .stream_first_seq
        .store(info.state.first_sequence, Relaxed);
    stats
        .stream_last_seq
        .store(info.state.last_sequence, Relaxed);
    stats.consumed_seq.store(info.state.last_sequence, Relaxed);
    // Each append holds one event at least, and no more than twice
    // max_acks_pending events are outstanding: the queue never fills.
    let (append_tx, append_rx) = flume::bounded(2 * config.max_acks_pending);
    let (fetch_tx, fetch_rx) = flume::bounded(FETCH_QUEUE);
    shared.set_log(Arc::new(log::NatsLog::new(
        append_tx,
        fetch_tx,
        stats.clone(),
        config.max_acks_pending,
        max_payload,
    )));
    let _ = ready.send(Ok(()));
    let prefix = config.subject_prefix.clone();
    tokio::join!(
        log::publish(
            js.clone(),
            shared.clone(),
            prefix.clone(),
            append_rx,
            stats.clone()
        ),
        fetch::serve(stream.clone(), shared.clone(), prefix, fetch_rx),
        consumer::run(client, js, config, shared, stats, stream, epoch),
    );
}
