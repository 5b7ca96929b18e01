//! Per-core counters of the runtime shell, summed (or listed per core) when
//! `/metrics` is read.
//!
//! Each core writes only its own cache-line-aligned block with relaxed
//! atomics, so counting costs no contention on the hot path.
//!
//! Runtime layer: counters (std atomics), and the served certificate's
//! expiry read from the TLS store when `/metrics` is read.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::tls_link::TlsFailure;
use crate::tls::CertStore;

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
    /// Frames per `sendmsg`: how much each write coalesces.
    pub writes: WriteHistogram,
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes failed, by [`TlsFailure::ALL`]'s order.
    pub tls_failures: [AtomicU64; TlsFailure::ALL.len()],
    /// The io driver the core runs: 0 not started yet, 1 io_uring, 2 epoll.
    pub driver: AtomicU64,
}

impl CoreStats {
    /// Counts a failed TLS handshake.
    pub fn tls_failed(&self, why: TlsFailure) {
        let i = TlsFailure::ALL
            .iter()
            .position(|(f, _)| *f == why)
            .expect("every failure is listed");
        bump(&self.tls_failures[i]);
    }
}

/// Buckets of [`WriteHistogram`]: at most 1, 2, 4, ... 1024 frames, and more.
const WRITE_BUCKETS: usize = 12;

/// The frames each `sendmsg` wrote whole, as a histogram (a write that
/// only finishes part of a frame counts in the first bucket); its count is
/// the number of writes, its sum the frames written.
#[derive(Debug, Default)]
pub struct WriteHistogram {
    buckets: [AtomicU64; WRITE_BUCKETS],
    frames: AtomicU64,
}

impl WriteHistogram {
    /// Counts one write of `frames` whole frames.
    pub fn record(&self, frames: usize) {
        let bucket = match frames {
            0 | 1 => 0,
            n => (usize::BITS - (n - 1).leading_zeros()) as usize,
        };
        self.buckets[bucket.min(WRITE_BUCKETS - 1)].fetch_add(1, Relaxed);
        self.frames.fetch_add(frames as u64, Relaxed);
    }

    /// Adds this core's samples of `eventhub_frames_per_write` (cumulative
    /// buckets, sum, count) to `out`.
    fn render(&self, core: usize, out: &mut String) {
        let name = "eventhub_frames_per_write";
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let le = if i + 1 == WRITE_BUCKETS {
                "+Inf".to_string()
            } else {
                (1u64 << i).to_string()
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{core=\"{core}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let frames = self.frames.load(Relaxed);
        let _ = writeln!(out, "{name}_sum{{core=\"{core}\"}} {frames}");
        let _ = writeln!(out, "{name}_count{{core=\"{core}\"}} {cumulative}");
    }
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
    /// The served certificate, on a wss server.
    certs: Option<Arc<CertStore>>,
}

impl Stats {
    pub fn new(cores: usize, certs: Option<Arc<CertStore>>) -> Stats {
        Stats {
            cores: (0..cores).map(|_| CoreStats::default()).collect(),
            certs,
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
        let drivers = self.cores.iter().enumerate().filter_map(|(i, c)| {
            let name = match c.driver.load(Relaxed) {
                1 => "io_uring",
                2 => "epoll",
                _ => return None,
            };
            Some((format!("core=\"{i}\",driver=\"{name}\""), 1))
        });
        family(
            out,
            "eventhub_core_driver",
            "gauge",
            "1 for the io driver each core runs",
            drivers,
        );
        family(
            out,
            "eventhub_frames_per_write",
            "histogram",
            "frames written whole by each sendmsg",
            [],
        );
        for (i, c) in self.cores.iter().enumerate() {
            c.writes.render(i, out);
        }
        if let Some(certs) = &self.certs {
            self.render_tls(certs, out);
        }
    }

    /// The TLS families: handshakes, failures by reason, the certificate.
    fn render_tls(&self, certs: &CertStore, out: &mut String) {
        let sum = |get: &dyn Fn(&CoreStats) -> &AtomicU64| {
            self.cores.iter().map(|c| get(c).load(Relaxed)).sum::<u64>()
        };
        family(
            out,
            "eventhub_tls_handshakes_total",
            "counter",
            "TLS handshakes completed",
            [(String::new(), sum(&|c| &c.tls_handshakes))],
        );
        family(
            out,
            "eventhub_tls_handshake_failures_total",
            "counter",
            "TLS handshakes failed, by reason",
            TlsFailure::ALL.iter().enumerate().map(|(i, (_, label))| {
                (format!("reason=\"{label}\""), sum(&|c| &c.tls_failures[i]))
            }),
        );
        let name = "eventhub_tls_certificate_expiry_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} seconds until the served certificate expires (negative once it has)\n# TYPE {name} gauge\n{name} {}",
            certs.expires_in_s()
        );
        let (loaded, refused) = certs.reload_counts();
        family(
            out,
            "eventhub_tls_reloads_total",
            "counter",
            "certificate reloads, by result",
            [
                ("result=\"loaded\"".to_string(), loaded),
                ("result=\"refused\"".to_string(), refused),
            ],
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_per_write_land_in_power_of_two_buckets_with_sum_and_count() {
        let h = WriteHistogram::default();
        for frames in [0, 1, 2, 3, 4, 5, 1024, 1025, 5000] {
            h.record(frames);
        }
        let mut out = String::new();
        h.render(3, &mut out);
        let value = |key: &str| -> u64 {
            let line = out.lines().find(|l| l.starts_with(key)).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let bucket = |le: &str| {
            value(&format!(
                "eventhub_frames_per_write_bucket{{core=\"3\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("1"), 2, "{out}");
        assert_eq!(bucket("2"), 3);
        assert_eq!(bucket("4"), 5);
        assert_eq!(bucket("8"), 6);
        assert_eq!(bucket("512"), 6);
        assert_eq!(bucket("1024"), 7);
        assert_eq!(bucket("+Inf"), 9);
        assert_eq!(value("eventhub_frames_per_write_count{core=\"3\"}"), 9);
        assert_eq!(
            value("eventhub_frames_per_write_sum{core=\"3\"}"),
            1 + 2 + 3 + 4 + 5 + 1024 + 1025 + 5000
        );
    }
}
