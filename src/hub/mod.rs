//! The hub core: channels, events serialized once, sequencing and replay,
//! the per-core subscriber index and fan-out, and the rules of who may do
//! what.
//!
//! - [`channels`]: names to ids, sets as masks;
//! - [`event`]: events as ready-to-send frames, ids, timestamps, replies;
//! - [`ingest`]: validation of what producers send;
//! - [`sequencer`]: `seq`, the replay ring, batches to the cores;
//! - [`index`], [`core`]: the per-core bitmask index and fan-out;
//! - [`docker`], [`filter_index`]: Docker-shaped container events, Docker's
//!   filters, and their per-core bitmask index;
//! - [`client_id`]: client ids that name their core and slot;
//! - [`auth`], [`ip_limits`]: principals and per-IP rules;
//! - [`metrics`]: the hub's counters.
//!
//! [`Shared`] is what every core shares (behind `Arc`): configuration,
//! the sequencer, and the cold-path per-IP table.

pub mod auth;
pub mod channels;
pub mod client_id;
pub mod core;
pub mod docker;
pub mod event;
pub mod filter_index;
pub mod index;
pub mod ingest;
pub mod ip_limits;
pub mod metrics;
pub mod sequencer;

use std::sync::{Arc, Mutex};

use self::auth::Auth;
use self::channels::Channels;
use self::ip_limits::IpLimits;
use self::metrics::HubStats;
use self::sequencer::{CoreMsg, Sequencer};
use crate::config::Config;

/// The hub settings every core reads.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub send_queue_bytes: usize,
    pub max_events_per_request: usize,
}

/// What every core shares.
pub struct Shared {
    pub channels: Channels,
    pub auth: Auth,
    pub config: HubSettings,
    pub ip_limits: Arc<IpLimits>,
    pub sequencer: Sequencer,
    pub stats: HubStats,
    receivers: Mutex<Vec<Option<flume::Receiver<CoreMsg>>>>,
}

impl Shared {
    /// Builds the shared state for `workers` cores; `auth` is decided by
    /// the caller (configured principals or a generated admin).
    pub fn new(config: &Config, auth: Auth, workers: usize) -> Result<Shared, String> {
        let channels = Channels::new(&config.hub.channels)?;
        let (sequencer, receivers) = Sequencer::new(workers, config.hub.replay_size);
        Ok(Shared {
            channels,
            auth,
            config: HubSettings {
                send_queue_bytes: config.limits.send_queue_bytes,
                max_events_per_request: config.hub.max_events_per_request,
            },
            ip_limits: Arc::new(IpLimits::new(
                config.hub.max_connections_per_ip,
                config.hub.connect_rate_per_ip,
                config.hub.connect_burst_per_ip,
            )),
            sequencer,
            stats: HubStats::new(workers),
            receivers: Mutex::new(receivers.into_iter().map(Some).collect()),
        })
    }

    /// The event channel of core `id` (taken once, by that core).
    pub fn take_receiver(&self, id: usize) -> flume::Receiver<CoreMsg> {
        self.receivers.lock().unwrap_or_else(|e| e.into_inner())[id]
            .take()
            .expect("each core takes its receiver once")
    }
}
