//! The hub's counters: per core where a core does the work (deliveries,
//! slow-consumer closes, connections), global where the work is global
//! (events in, replays, refusals). Rendered with the runtime's counters at
//! `GET /metrics` in Prometheus text format.
//!
//! Layer: hub. Imports only the runtime's metric writers
//! ([`crate::runtime::family`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::sequencer::Position;
use crate::runtime::{family, per_core};

/// The sequencer's families: the last seq, the ring's range, and the
/// epoch with the hub's version (an info metric: value 1, facts in the
/// labels).
pub fn render_sequence(position: Position, epoch: &str, out: &mut String) {
    let one = |v: u64| [(String::new(), v)];
    family(
        out,
        "eventhub_seq",
        "gauge",
        "the last seq assigned",
        one(position.last_seq),
    );
    family(
        out,
        "eventhub_ring_oldest_seq",
        "gauge",
        "the first seq the replay ring holds (seq + 1 when it is empty)",
        one(position.oldest),
    );
    family(
        out,
        "eventhub_ring_events",
        "gauge",
        "events the replay ring holds",
        one(position.last_seq + 1 - position.oldest),
    );
    family(
        out,
        "eventhub_info",
        "gauge",
        "the epoch seqs belong to, and the hub's version",
        [(
            format!(
                "epoch=\"{epoch}\",version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            ),
            1,
        )],
    );
}

/// Why a request was refused, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized,
    Forbidden,
    Conflict,
    RateLimited,
    BadRequest,
    NotFound,
    /// Too many failed authentications from the address.
    AuthThrottled,
    /// A browser's `Origin` that `server.allowed_origins` does not name.
    Origin,
}

const REFUSALS: [(Refusal, &str); 8] = [
    (Refusal::Unauthorized, "unauthorized"),
    (Refusal::Forbidden, "forbidden"),
    (Refusal::Conflict, "conflict"),
    (Refusal::RateLimited, "rate_limited"),
    (Refusal::BadRequest, "bad_request"),
    (Refusal::NotFound, "not_found"),
    (Refusal::AuthThrottled, "auth_throttled"),
    (Refusal::Origin, "origin"),
];

/// One core's hub counters.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CoreHubStats {
    pub deliveries: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub subscribers: AtomicU64,
    pub docker_subscribers: AtomicU64,
    pub publishers: AtomicU64,
    /// Bytes queued on this core's subscriber connections (sampled).
    pub queue_bytes: AtomicU64,
    /// Event frames queued compressed (permessage-deflate).
    pub deflated_deliveries: AtomicU64,
    /// Subscribers (both endpoints) that negotiated permessage-deflate.
    pub deflate_subscribers: AtomicU64,
}

/// What compressing events once each cost and saved.
#[derive(Debug, Default)]
pub struct DeflateStats {
    /// Frames compressed (once per event and shape).
    pub frames: AtomicU64,
    /// Frames that were not compressed: under `compression.min_bytes`, or
    /// they did not shrink.
    pub skipped: AtomicU64,
    /// Bytes of the frames compressed, before and after.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Time spent compressing.
    pub nanos: AtomicU64,
}

/// Every hub counter.
#[derive(Debug)]
pub struct HubStats {
    pub events_in: AtomicU64,
    /// Events sent from the replay ring to resuming subscribers.
    pub replayed_events: AtomicU64,
    /// Subscriptions that asked for a replay (`since`).
    pub replay_requests: AtomicU64,
    refusals: [AtomicU64; REFUSALS.len()],
    /// 1 while the Docker Engine source is following the engine.
    pub docker_connected: AtomicU64,
    pub docker_events: AtomicU64,
    pub docker_reconnects: AtomicU64,
    /// Requests with an unknown token or API key.
    pub auth_failures: AtomicU64,
    /// Connections probed because another from their address was refused
    /// with 409, and those closed for not answering.
    pub conflict_probes: AtomicU64,
    pub conflict_probe_closes: AtomicU64,
    /// Publishes refused or held back because the cores were behind.
    pub publish_overloads: AtomicU64,
    pub deflate: DeflateStats,
    pub cores: Vec<CoreHubStats>,
}

impl HubStats {
    pub fn new(cores: usize) -> HubStats {
        HubStats {
            events_in: AtomicU64::new(0),
            replayed_events: AtomicU64::new(0),
            replay_requests: AtomicU64::new(0),
            refusals: Default::default(),
            docker_connected: AtomicU64::new(0),
            docker_events: AtomicU64::new(0),
            docker_reconnects: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            conflict_probes: AtomicU64::new(0),
            conflict_probe_closes: AtomicU64::new(0),
            publish_overloads: AtomicU64::new(0),
            deflate: DeflateStats::default(),
            cores: (0..cores).map(|_| CoreHubStats::default()).collect(),
        }
    }

    pub fn refused(&self, why: Refusal) {
        let i = REFUSALS
            .iter()
            .position(|(r, _)| *r == why)
            .expect("every refusal is listed");
        self.refusals[i].fetch_add(1, Relaxed);
    }

    /// Adds the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let one = |v: &AtomicU64| [(String::new(), v.load(Relaxed))];
        family(
            out,
            "eventhub_docker_source_connected",
            "gauge",
            "1 while following the Docker Engine's events",
            one(&self.docker_connected),
        );
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "eventhub_deflate_frames_total",
                "event frames compressed for permessage-deflate (once each)",
                &self.deflate.frames,
            ),
            (
                "eventhub_deflate_skipped_total",
                "event frames left uncompressed (under compression.min_bytes, or not smaller)",
                &self.deflate.skipped,
            ),
            (
                "eventhub_deflate_bytes_in_total",
                "bytes of the event frames compressed, before",
                &self.deflate.bytes_in,
            ),
            (
                "eventhub_deflate_bytes_out_total",
                "bytes of the event frames compressed, after",
                &self.deflate.bytes_out,
            ),
            (
                "eventhub_deflate_nanoseconds_total",
                "time spent compressing event frames",
                &self.deflate.nanos,
            ),
            (
                "eventhub_publish_overloads_total",
                "publishes refused (503) or publisher reads held back while the cores were behind",
                &self.publish_overloads,
            ),
            (
                "eventhub_auth_failures_total",
                "requests with an unknown token or API key",
                &self.auth_failures,
            ),
            (
                "eventhub_conflict_probes_total",
                "connections pinged because another from their address got 409",
                &self.conflict_probes,
            ),
            (
                "eventhub_conflict_probe_closes_total",
                "probed connections closed for not answering",
                &self.conflict_probe_closes,
            ),
            (
                "eventhub_docker_source_events_total",
                "container events taken from the Docker Engine",
                &self.docker_events,
            ),
            (
                "eventhub_docker_source_reconnects_total",
                "times the Docker Engine source reconnected",
                &self.docker_reconnects,
            ),
            (
                "eventhub_events_in_total",
                "events accepted from producers",
                &self.events_in,
            ),
            (
                "eventhub_replayed_events_total",
                "events sent from the replay ring",
                &self.replayed_events,
            ),
            (
                "eventhub_replay_requests_total",
                "subscriptions that resumed with since",
                &self.replay_requests,
            ),
        ];
        for (name, help, v) in counters {
            family(out, name, "counter", help, one(v));
        }
        let refusals = REFUSALS
            .iter()
            .zip(&self.refusals)
            .map(|((_, label), v)| (format!("reason=\"{label}\""), v.load(Relaxed)));
        family(
            out,
            "eventhub_handshake_refusals_total",
            "counter",
            "requests refused, by reason",
            refusals,
        );
        type PerCore = (
            &'static str,
            &'static str,
            &'static str,
            fn(&CoreHubStats) -> &AtomicU64,
        );
        let per_core_metrics: [PerCore; 5] = [
            (
                "eventhub_deflated_deliveries_total",
                "counter",
                "event frames queued compressed (permessage-deflate)",
                |c| &c.deflated_deliveries,
            ),
            (
                "eventhub_deflate_subscribers",
                "gauge",
                "subscribers that negotiated permessage-deflate",
                |c| &c.deflate_subscribers,
            ),
            (
                "eventhub_deliveries_total",
                "counter",
                "event frames queued to subscribers",
                |c| &c.deliveries,
            ),
            (
                "eventhub_slow_consumer_closes_total",
                "counter",
                "subscribers closed with 1013 for falling behind",
                |c| &c.slow_consumer_closes,
            ),
            (
                "eventhub_queue_bytes",
                "gauge",
                "bytes queued to subscribers (sampled each second)",
                |c| &c.queue_bytes,
            ),
        ];
        for (name, kind, help, get) in per_core_metrics {
            family(out, name, kind, help, per_core(&self.cores, get));
        }
        let connections = self.cores.iter().enumerate().flat_map(|(core, c)| {
            [
                ("subscribe", &c.subscribers),
                ("events", &c.docker_subscribers),
                ("publish", &c.publishers),
            ]
            .map(|(endpoint, v)| {
                (
                    format!("core=\"{core}\",endpoint=\"{endpoint}\""),
                    v.load(Relaxed),
                )
            })
        });
        family(
            out,
            "eventhub_connections",
            "gauge",
            "open hub WebSocket connections, by endpoint",
            connections,
        );
    }
}
