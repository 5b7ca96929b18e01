//! Per-core counters of the runtime shell, summed (or listed per core) when
//! `/metrics` is read.
//!
//! Each core writes only its own cache-line-aligned block with relaxed
//! atomics, so counting costs no contention on the hot path.
//!
//! Runtime layer, a leaf: counters only (std atomics).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One core's counters.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CoreStats {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// WebSocket connections open now.
    pub open: AtomicU64,
    /// Upgrades completed.
    pub upgraded: AtomicU64,
    /// Requests answered with an HTTP error instead of an upgrade.
    pub refused: AtomicU64,
    /// Connections failed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// Connections dropped by a timeout (idle, write, close).
    pub timeouts: AtomicU64,
    /// Upgraded connections passed to a less loaded core.
    pub handed_off: AtomicU64,
}

/// A counter's name, type, help text and place in [`CoreStats`].
type MetricDef = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CoreStats) -> &AtomicU64,
);

/// Every core's counters.
#[derive(Debug)]
pub struct Stats {
    pub cores: Vec<CoreStats>,
}

impl Stats {
    pub fn new(cores: usize) -> Stats {
        Stats {
            cores: (0..cores).map(|_| CoreStats::default()).collect(),
        }
    }

    /// Adds the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let metrics: [MetricDef; 7] = [
            (
                "eventhub_connections_accepted_total",
                "counter",
                "TCP connections accepted",
                |c| &c.accepted,
            ),
            (
                "eventhub_connections_open",
                "gauge",
                "WebSocket connections open",
                |c| &c.open,
            ),
            (
                "eventhub_upgrades_total",
                "counter",
                "WebSocket upgrades completed",
                |c| &c.upgraded,
            ),
            (
                "eventhub_requests_refused_total",
                "counter",
                "requests answered with an HTTP error",
                |c| &c.refused,
            ),
            (
                "eventhub_protocol_errors_total",
                "counter",
                "connections failed for a protocol violation",
                |c| &c.protocol_errors,
            ),
            (
                "eventhub_timeouts_total",
                "counter",
                "connections dropped by a timeout",
                |c| &c.timeouts,
            ),
            (
                "eventhub_connections_handed_off_total",
                "counter",
                "upgraded connections passed to a less loaded core",
                |c| &c.handed_off,
            ),
        ];
        for (name, kind, help, get) in metrics {
            family(out, name, kind, help, per_core(&self.cores, get));
        }
    }
}

/// Writes one metric family in Prometheus text format: its HELP and TYPE
/// lines, then a sample per `(labels, value)` (`labels` like `core="0"`,
/// or empty).
pub fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// One sample per core of the counter `get` picks.
pub fn per_core<'a, C>(
    cores: &'a [C],
    get: impl Fn(&C) -> &AtomicU64 + 'a,
) -> impl Iterator<Item = (String, u64)> + 'a {
    cores
        .iter()
        .enumerate()
        .map(move |(i, c)| (format!("core=\"{i}\""), get(c).load(Relaxed)))
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Subtracts one from a gauge.
pub fn drop_one(gauge: &AtomicU64) {
    gauge.fetch_sub(1, Relaxed);
}
