//! The hub core: channels, events serialized once, sequencing and replay,
//! the per-core subscriber index and fan-out, and the rules of who may do
//! what.
//!
//! - [`channels`]: names to ids, sets as masks;
//! - [`event`]: events as ready-to-send frames, ids, timestamps, replies;
//! - [`ingest`]: validation of what producers send;
//! - [`publish`]: the one way events enter: rights, frames, sequencing;
//! - [`sequencer`]: `seq` and the replay ring;
//! - [`log`]: the seam to an external event log (a cluster's stream);
//! - [`mailbox`]: every core's channel: batches to all, commands to one;
//! - [`bitrow`]: bit rows over slots and the one walk over their bits;
//! - [`index`], [`core`]: the per-core bitmask index and fan-out;
//! - [`slots`]: a core's tables by connection slot;
//! - [`docker`]: Docker-shaped container events, Docker's filters, and
//!   their per-core bitmask index;
//! - [`client_id`]: client ids that name their core and slot;
//! - [`auth`], [`ip_limits`]: principals and per-IP rules; [`tickets`]:
//!   one-time stand-ins for a secret, for browsers; [`probe`]: the
//!   liveness probe of a connection that holds its address's place;
//! - [`metrics`]: the hub's counters.
//!
//! [`Shared`] is what every core shares (behind `Arc`): configuration,
//! the sequencer, the cores' mailbox, and the cold-path per-IP table.
//!
//! Layer: hub, over the runtime (its `Conn` and counters) and the protocol
//! crate, below the API. Nothing here imports [`crate::api`],
//! [`crate::sources`] or names the async runtime; the config is read
//! (`Config`, `PrincipalConfig`), never the other way round. Within the
//! hub, files import downwards: `bitrow`, `slots`, `channels` are leaves;
//! `docker`, `event`, `ingest`, `auth` build on them; `sequencer` hands
//! batches to `mailbox`, which delivers to `core`; `publish` sits on top.

pub mod auth;
pub mod bitrow;
pub mod channels;
pub mod client_id;
pub mod core;
pub mod docker;
pub mod event;
pub mod index;
pub mod ingest;
pub mod ip_limits;
pub mod log;
pub mod mailbox;
pub mod metrics;
pub mod probe;
pub mod publish;
pub mod sequencer;
pub mod slots;
pub mod tickets;

use std::sync::Arc;

use self::auth::Auth;
use self::channels::{ChannelNameError, Channels};
use self::ip_limits::{AuthFailures, IpLimits};
use self::log::EventLog;
use self::mailbox::{CoreMsg, Mailbox};
use self::metrics::HubStats;
use self::sequencer::Sequencer;
use crate::config::Config;

/// The hub settings every core reads.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub send_queue_bytes: usize,
    pub max_events_per_request: usize,
    /// Largest request body (`limits.max_body_bytes`).
    pub max_body_bytes: usize,
    /// How long a connection probed after a 409 has to answer
    /// (`hub.conflict_probe_ms`; zero: no probe).
    pub conflict_probe: std::time::Duration,
    /// Events that may wait on one core before publishers are slowed
    /// (`hub.max_pending_events`).
    pub max_pending_events: usize,
    /// Events smaller than this go uncompressed (`compression.min_bytes`).
    pub deflate_min_bytes: usize,
    /// The zlib level events are compressed at (`compression.level`).
    pub deflate_level: u32,
}

/// What every core shares.
pub struct Shared {
    pub channels: Channels,
    pub auth: Auth,
    pub config: HubSettings,
    pub ip_limits: Arc<IpLimits>,
    /// Failed authentications per client address.
    pub auth_failures: AuthFailures,
    pub sequencer: Sequencer,
    /// Every core's channel: batches from the sequencer, commands from
    /// other cores.
    pub mailbox: Arc<Mailbox>,
    pub stats: HubStats,
    /// One-time tickets for WebSockets opened from a browser.
    pub tickets: tickets::Tickets,
    /// The cluster's event log, when one is configured (set once, at
    /// start-up, before the first connection).
    log: std::sync::OnceLock<Arc<dyn EventLog>>,
}

impl Shared {
    /// Builds the shared state for `workers` cores; `auth` is decided by
    /// the caller (configured principals or a generated admin).
    pub fn new(config: &Config, auth: Auth, workers: usize) -> Result<Shared, ChannelNameError> {
        let channels = Channels::new(&config.hub.channels)?;
        let mailbox = Arc::new(Mailbox::new(workers));
        let sequencer = Sequencer::new(
            config.hub.replay_size,
            config.hub.replay_max_bytes,
            mailbox.clone(),
        );
        Ok(Shared {
            channels,
            auth,
            config: HubSettings {
                send_queue_bytes: config.limits.send_queue_bytes,
                max_events_per_request: config.hub.max_events_per_request,
                max_body_bytes: config.limits.max_body_bytes,
                conflict_probe: std::time::Duration::from_millis(config.hub.conflict_probe_ms),
                max_pending_events: config.hub.max_pending_events,
                deflate_min_bytes: config.compression.min_bytes,
                deflate_level: config.compression.level,
            },
            auth_failures: AuthFailures::new(
                config.hub.auth_failures_per_ip,
                config.hub.auth_failure_refill_per_s,
            ),
            ip_limits: Arc::new(IpLimits::new(
                config.hub.max_connections_per_ip,
                config.hub.connect_rate_per_ip,
                config.hub.connect_burst_per_ip,
            )),
            sequencer,
            mailbox,
            stats: HubStats::new(workers),
            tickets: tickets::Tickets::new(std::time::Duration::from_secs(config.ui.ticket_ttl_s)),
            log: std::sync::OnceLock::new(),
        })
    }

    /// Makes `log` the event log: publishes go to it, and the sequencer
    /// takes what its consumer delivers. Once, before serving.
    pub fn set_log(&self, log: Arc<dyn EventLog>) {
        if self.log.set(log).is_err() {
            panic!("the event log is set once");
        }
    }

    /// Where a replay from the start of what the hub holds begins (after
    /// this seq): the ring's start, or in a cluster the stream's (whose
    /// events older than the ring are fetched from it).
    pub fn replay_floor(&self, pos: sequencer::Position) -> u64 {
        match self.log() {
            Some(_) => 0,
            None => pos.oldest - 1,
        }
    }

    /// The external event log, if there is one.
    pub fn log(&self) -> Option<&dyn EventLog> {
        self.log.get().map(|l| &**l)
    }

    /// The event channel of core `id` (taken once, by that core).
    pub fn take_receiver(&self, id: usize) -> flume::Receiver<CoreMsg> {
        self.mailbox.take_receiver(id)
    }
}
