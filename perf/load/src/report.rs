//! Figures of a run: merged latency histogram, delivery rate, server CPU
//! per delivery, writes per delivery, memory and CPU per connection, loss
//! checks; printed as a table row and as JSON.

use hdrhistogram::Histogram;
use serde_json::json;

use crate::accounting::latency_histogram;
use crate::connecting::Storm;
use crate::metrics::{Deflate, Writes};
use crate::readers::{ReaderKind, Seen};
use crate::Args;

/// One run's figures.
pub struct Report {
    pub label: String,
    /// `ws`, or `wss` with the TLS version and cipher suite.
    pub transport: String,
    pub reader: ReaderKind,
    /// 0: open loop.
    pub window: u64,
    pub publishers: usize,
    pub rate: f64,
    pub size: usize,
    pub connected: usize,
    pub connect_errors: usize,
    pub published: u64,
    pub publish_seconds: f64,
    pub elapsed_seconds: f64,
    pub server_cpu_ns: Option<u64>,
    /// The load tool's own CPU time over the same phase.
    pub tool_cpu_ns: Option<u64>,
    /// eventhub's writes over the publishing (`None`: not in `/metrics`).
    pub writes: Option<Writes>,
    pub storm: Storm,
    pub rss_per_connection: Option<f64>,
    pub rss_total: Option<u64>,
    pub deliveries: u64,
    pub expected: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub disorder: u64,
    pub slow_subscribers: usize,
    pub slow_closed_1013: usize,
    /// eventhub's own count of slow-consumer closes (`/metrics`), to set
    /// beside what the subscribers saw.
    pub server_slow_closes: Option<u64>,
    pub latency: Histogram<u64>,
    /// WebSocket bytes the healthy subscribers read (after TLS).
    pub wire_bytes: u64,
    /// permessage-deflate offered (`--deflate`), and agreed by how many.
    pub deflate_offered: bool,
    pub deflated: usize,
    /// eventhub's deflate counters over the publishing.
    pub deflate: Option<Deflate>,
}

impl Report {
    pub fn new(args: &Args, connected: usize, connect_errors: usize, storm: Storm) -> Report {
        Report {
            label: args.label.clone(),
            transport: String::new(),
            reader: args.reader,
            window: args.window,
            publishers: args.publishers,
            rate: args.rate,
            size: args.size,
            connected,
            connect_errors,
            published: 0,
            publish_seconds: 0.0,
            elapsed_seconds: 0.0,
            server_cpu_ns: None,
            tool_cpu_ns: None,
            writes: None,
            storm,
            rss_per_connection: None,
            rss_total: None,
            deliveries: 0,
            expected: 0,
            gaps: 0,
            duplicates: 0,
            disorder: 0,
            slow_subscribers: 0,
            slow_closed_1013: 0,
            server_slow_closes: None,
            latency: latency_histogram(),
            wire_bytes: 0,
            deflate_offered: args.deflate,
            deflated: 0,
            deflate: None,
        }
    }

    /// Folds in every subscriber; slow ones count only for their close code.
    pub fn take_stats(&mut self, seen: &Seen, per_subscriber: u64) {
        self.latency
            .add(&seen.latency_ns)
            .expect("same histogram bounds");
        for s in &seen.subscribers {
            if s.slow {
                self.slow_subscribers += 1;
                self.slow_closed_1013 += usize::from(s.close_code == Some(1013));
                continue;
            }
            self.deliveries += s.received;
            self.wire_bytes += s.wire_bytes;
            self.expected += per_subscriber;
            self.gaps += s.gaps;
            self.duplicates += s.duplicates;
            self.disorder += s.disorder;
        }
    }

    /// No loss, duplicates or disorder among the healthy subscribers.
    pub fn ok(&self) -> bool {
        self.rss_per_connection.is_some()
            || (self.deliveries == self.expected
                && self.gaps + self.duplicates + self.disorder == 0)
    }

    fn us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn cpu_per_delivery_us(&self) -> Option<f64> {
        self.per_delivery_us(self.server_cpu_ns)
    }

    pub fn tool_cpu_per_delivery_us(&self) -> Option<f64> {
        self.per_delivery_us(self.tool_cpu_ns)
    }

    fn per_delivery_us(&self, cpu_ns: Option<u64>) -> Option<f64> {
        cpu_ns
            .filter(|_| self.deliveries > 0)
            .map(|ns| ns as f64 / self.deliveries as f64 / 1000.0)
    }

    pub fn deliveries_per_s(&self) -> f64 {
        self.deliveries as f64 / self.elapsed_seconds.max(1e-9)
    }

    pub fn writes_per_delivery(&self) -> Option<f64> {
        self.writes
            .filter(|_| self.deliveries > 0)
            .map(|w| w.writes / self.deliveries as f64)
    }

    pub fn frames_per_write(&self) -> Option<f64> {
        self.writes
            .filter(|w| w.writes > 0.0)
            .map(|w| w.frames / w.writes)
    }

    /// WebSocket bytes read per delivery (frame headers, and the few
    /// control frames, included).
    pub fn wire_bytes_per_delivery(&self) -> Option<f64> {
        (self.deliveries > 0).then(|| self.wire_bytes as f64 / self.deliveries as f64)
    }

    /// eventhub's compressing time per compressed event, in µs.
    pub fn compress_us_per_event(&self) -> Option<f64> {
        self.deflate?.ns_per_frame().map(|ns| ns / 1000.0)
    }

    /// What the table says of deflate: nothing unless it was offered or the
    /// hub compressed.
    fn deflate_column(&self) -> String {
        let compressed = self.deflate.filter(|d| d.frames > 0.0);
        if !self.deflate_offered && compressed.is_none() {
            return String::new();
        }
        let mut s = format!(" | deflate {}/{}", self.deflated, self.connected);
        if let Some(d) = compressed {
            s += &format!(
                " server: {:.0} events compressed {:.3} us each, {:.0}->{:.0} B",
                d.frames,
                d.nanos / d.frames / 1000.0,
                d.bytes_in / d.frames,
                d.bytes_out / d.frames
            );
        }
        s
    }

    pub fn connections_per_s(&self) -> f64 {
        self.connected as f64 / self.storm.seconds.max(1e-9)
    }

    pub fn cpu_per_connection_us(&self) -> Option<f64> {
        self.storm
            .server_cpu_ns
            .filter(|_| self.connected > 0)
            .map(|ns| ns as f64 / self.connected as f64 / 1000.0)
    }

    fn reader_name(&self) -> &'static str {
        match self.reader {
            ReaderKind::Epoll => "epoll",
            ReaderKind::Tungstenite => "tungstenite",
        }
    }

    pub fn table(&self) -> String {
        if let Some(rss) = self.rss_per_connection {
            return format!(
                "{:<22} {:<11} idle subscribers {:>6} (errors {}): server RSS {:.1} MiB, {:.0} bytes per connection | connect storm {:.2} s, {:.0}/s, cpu/connection {} | {}",
                self.label,
                self.reader_name(),
                self.connected,
                self.connect_errors,
                self.rss_total.unwrap_or(0) as f64 / 1048576.0,
                rss,
                self.storm.seconds,
                self.connections_per_s(),
                self.cpu_per_connection_us().map_or("n/a".into(), |c| format!("{c:.1} us")),
                self.transport,
            );
        }
        format!(
            "{:<22} {:<11} subs {:>5} pubs {:>2} rate {:>7} {:<9} | deliveries {:>9}/{:<9} {:>10.0}/s | p50 {:>8.1} p90 {:>8.1} p99 {:>8.1} p99.9 {:>8.1} max {:>9.1} us | cpu/delivery {} (load tool {}) | writes/delivery {} frames/write {} | wire {} B/delivery{} | gaps {} dup {} disorder {} | slow {} closed-1013 {}{} | {}",
            self.label,
            self.reader_name(),
            self.connected,
            self.publishers,
            if self.rate > 0.0 { format!("{}", self.rate) } else { "max".into() },
            if self.window > 0 { format!("window {}", self.window) } else { "open-loop".into() },
            self.deliveries,
            self.expected,
            self.deliveries_per_s(),
            self.us(0.5),
            self.us(0.9),
            self.us(0.99),
            self.us(0.999),
            self.latency.max() as f64 / 1000.0,
            self.cpu_per_delivery_us().map_or("n/a".into(), |c| format!("{c:.3} us")),
            self.tool_cpu_per_delivery_us().map_or("n/a".into(), |c| format!("{c:.3} us")),
            self.writes_per_delivery().map_or("n/a".into(), |w| format!("{w:.3}")),
            self.frames_per_write().map_or("n/a".into(), |f| format!("{f:.2}")),
            self.wire_bytes_per_delivery().map_or("n/a".into(), |b| format!("{b:.1}")),
            self.deflate_column(),
            self.gaps,
            self.duplicates,
            self.disorder,
            self.slow_subscribers,
            self.slow_closed_1013,
            self.server_slow_closes
                .map_or(String::new(), |n| format!(" (server counted {n})")),
            self.transport,
        )
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "label": self.label,
            "transport": self.transport,
            "reader": self.reader_name(),
            "window": self.window,
            "subscribers": self.connected,
            "connect_errors": self.connect_errors,
            "publishers": self.publishers,
            "rate": self.rate,
            "size": self.size,
            "published": self.published,
            "deliveries": self.deliveries,
            "expected": self.expected,
            "deliveries_per_s": self.deliveries_per_s(),
            "elapsed_s": self.elapsed_seconds,
            "latency_us": {
                "p50": self.us(0.5), "p90": self.us(0.9), "p99": self.us(0.99), "p999": self.us(0.999),
                "max": self.latency.max() as f64 / 1000.0,
            },
            "server_cpu_us_per_delivery": self.cpu_per_delivery_us(),
            "tool_cpu_us_per_delivery": self.tool_cpu_per_delivery_us(),
            "writes_per_delivery": self.writes_per_delivery(),
            "frames_per_write": self.frames_per_write(),
            "wire_bytes": self.wire_bytes,
            "wire_bytes_per_delivery": self.wire_bytes_per_delivery(),
            "deflate": {
                "offered": self.deflate_offered,
                "agreed_subscribers": self.deflated,
                "server_events_compressed": self.deflate.map(|d| d.frames),
                "server_bytes_in": self.deflate.map(|d| d.bytes_in),
                "server_bytes_out": self.deflate.map(|d| d.bytes_out),
                "server_deflated_deliveries": self.deflate.map(|d| d.deliveries),
                "server_compress_us_per_event": self.compress_us_per_event(),
            },
            "connect": {
                "seconds": self.storm.seconds,
                "per_s": self.connections_per_s(),
                "server_cpu_us_per_connection": self.cpu_per_connection_us(),
            },
            "rss_bytes_per_connection": self.rss_per_connection,
            "gaps": self.gaps, "duplicates": self.duplicates, "disorder": self.disorder,
            "slow_subscribers": self.slow_subscribers, "slow_closed_1013": self.slow_closed_1013,
            "server_slow_consumer_closes": self.server_slow_closes,
        })
    }
}
