//! Opening the subscribers: every connection upgraded, and for eventhub
//! confirmed, before the run goes on; at most `--connect-parallel`
//! handshakes in flight, started at `--ramp-per-s` (0: all at once). The
//! phase is timed from the first connect to the last confirmation, with
//! the server's CPU time over it, which gives the connect storm's figures
//! (connections per second, server CPU per connection) in the same run as
//! the memory per idle connection. With several addresses (a cluster's
//! nodes) subscriber `i` connects to address `i % n`, so each node gets
//! its share, and the figures are over all of them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::{stream, StreamExt};
use tokio::time::Instant;

use crate::accounting::Subscriber;
use crate::client::{connect, Until, Upgraded};
use crate::server_proc::cpu_ns;
use crate::transport::Endpoint;
use crate::{Args, Kind};

/// The subscribers that connected, and how the connecting went.
pub struct Opened {
    pub subs: Vec<(Upgraded, Subscriber)>,
    pub errors: usize,
    /// Slow consumers among `subs`.
    pub slow: usize,
    pub storm: Storm,
    /// The TLS version and cipher suite the first subscriber got, if TLS.
    pub tls: Option<String>,
    /// Subscribers that agreed to permessage-deflate.
    pub deflated: usize,
}

/// The connect phase's figures.
#[derive(Clone, Copy)]
pub struct Storm {
    /// First connect to last confirmation (or last 101, for a peer).
    pub seconds: f64,
    /// The server's CPU time over it.
    pub server_cpu_ns: Option<u64>,
}

/// Source address number `i`: 127.0.subnet.1 .. 127.0.subnet.250, then the
/// next subnet.
fn source_ip(subnet: u8, i: usize) -> IpAddr {
    let host = (i % 250) as u8 + 1;
    let net = subnet.wrapping_add((i / 250) as u8);
    IpAddr::V4(Ipv4Addr::new(127, 0, net, host))
}

fn subscribe_path(args: &Args) -> String {
    match args.kind {
        Kind::Eventhub => format!("/v1/ws/subscribe?event_types={}", args.channel),
        Kind::Peer => "/v1/ws/subscribe".to_string(),
    }
}

/// Connects `--subscribers`, spread round-robin over `endpoints`; every
/// `100 / --slow-percent`-th is a slow consumer.
pub async fn open(args: &Args, endpoints: &[Endpoint]) -> Opened {
    let path = subscribe_path(args);
    let slow_every = if args.slow_percent > 0.0 {
        (100.0 / args.slow_percent).round().max(1.0) as usize
    } else {
        0
    };
    let is_slow = |i: usize| slow_every > 0 && i % slow_every == slow_every - 1;
    let until = match args.kind {
        Kind::Eventhub => Until::FirstMessage,
        Kind::Peer => Until::Upgrade,
    };
    let cpu_start = cpu_ns(&args.server_pid);
    let started = Instant::now();
    let mut results: Vec<_> = stream::iter(0..args.subscribers)
        .map(|i| {
            let path = &path;
            async move {
                if args.ramp_per_s > 0 {
                    let due = i as f64 / f64::from(args.ramp_per_s);
                    tokio::time::sleep_until(started + Duration::from_secs_f64(due)).await;
                }
                let endpoint = &endpoints[i % endpoints.len()];
                let source = Some(source_ip(args.source_subnet, i));
                let slow = is_slow(i);
                let result = connect(
                    endpoint,
                    source,
                    path,
                    &args.token,
                    slow,
                    until,
                    args.deflate,
                )
                .await;
                (i, result)
            }
        })
        .buffer_unordered(args.connect_parallel.max(1))
        .collect()
        .await;
    let storm = Storm {
        seconds: started.elapsed().as_secs_f64(),
        server_cpu_ns: cpu_start
            .zip(cpu_ns(&args.server_pid))
            .map(|(a, b)| b.saturating_sub(a)),
    };
    results.sort_by_key(|(i, _)| *i);
    let mut opened = Opened {
        subs: Vec::with_capacity(results.len()),
        errors: 0,
        slow: 0,
        storm,
        tls: None,
        deflated: 0,
    };
    for (i, result) in results {
        match result {
            Ok(up) => {
                if opened.tls.is_none() {
                    opened.tls = up.stream.tls_description();
                }
                let slow = is_slow(i);
                opened.slow += usize::from(slow);
                opened.deflated += usize::from(up.deflate);
                let sub = Subscriber::new(slow, args.publishers, args.kind == Kind::Eventhub);
                opened.subs.push((up, sub));
            }
            Err(e) => {
                opened.errors += 1;
                if opened.errors <= 3 {
                    eprintln!("subscriber {i}: {e}");
                }
            }
        }
    }
    opened
}
