//! `eventhub-load`: drives eventhub (or a peer server with the same
//! broadcast contract) with N subscribers and M paced publishers, and
//! reports what a user would want to compare: deliveries per second,
//! publish-to-receive latency percentiles, server CPU time per delivery,
//! server memory per idle connection, and per-subscriber loss, duplicate
//! and order checks.
//!
//! Publishing is open-loop: event `k` of a publisher is due at
//! `start + k / rate` whatever happened to earlier ones, and carries the
//! time it is written to the socket (CLOCK_MONOTONIC, shared by every
//! process on the machine) in its body. The send time rather than the due
//! time, because tokio's timer wakes up to a millisecond late and that
//! delay is the tool's, not the server's. Server CPU comes from
//! `/proc/<pid>/stat` (utime + stime over the publish phase), the fairest
//! figure when the load tool shares the cores with the server.
//!
//! Every run is bounded: by `--count` events per publisher and by
//! `--timeout` for the deliveries; all traffic goes to the given loopback
//! address.

mod client;
mod readers;
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use client::{connect, Subscriber};
use readers::Progress;
use report::{proc_cpu_ns, proc_rss_bytes, Report};

/// What kind of server is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// eventhub: subscribe paths, a confirmation first, events in envelopes.
    Eventhub,
    /// A peer: publishers' messages broadcast verbatim, no confirmation.
    Peer,
}

#[derive(Debug, Parser)]
#[command(name = "eventhub-load", about = "Load tool for eventhub and its peers")]
pub struct Args {
    /// Server address (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[arg(long, value_enum, default_value = "eventhub")]
    pub kind: Kind,
    /// Bearer token (eventhub).
    #[arg(long, default_value = "")]
    pub token: String,
    /// Channel to subscribe and publish on (eventhub).
    #[arg(long, default_value = "pdfm")]
    pub channel: String,
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Events per second over all publishers; 0 = as fast as possible.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Events per publisher.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Bytes of each delivered event (the body is padded to about this).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Subscribers that stop reading after their confirmation (percent).
    #[arg(long, default_value_t = 0.0)]
    pub slow_percent: f64,
    /// Only connect the subscribers and measure the server's memory per
    /// idle connection (no publishing).
    #[arg(long)]
    pub idle: bool,
    /// Seconds to hold idle connections before measuring.
    #[arg(long, default_value_t = 2)]
    pub idle_hold_s: u64,
    /// Server process id, for CPU and memory figures.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Source addresses for subscribers: 127.0.X.1-250 with X from this.
    #[arg(long, default_value_t = 1)]
    pub source_subnet: u8,
    /// Connections opened per second while ramping up.
    #[arg(long, default_value_t = 2000)]
    pub ramp_per_s: u32,
    /// Seconds to wait for every delivery after the last publish.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Threads reading the subscribers.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Label of this run in the report.
    #[arg(long, default_value = "eventhub")]
    pub label: String,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn main() {
    let args = Args::parse();
    raise_nofile_limit();
    // Connecting and publishing; the subscribers are read by their own
    // threads (`--threads`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(run(&args));
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json().to_string()).expect("write the JSON report");
    }
    if !report.ok() {
        eprintln!("eventhub-load: loss, duplicates or disorder seen (see the table)");
        std::process::exit(1);
    }
}

/// Lifts the open-file limit to the hard limit (20,000 here).
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
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

async fn run(args: &Args) -> Report {
    let rss_before = args.server_pid.and_then(proc_rss_bytes);
    // Ramp up the subscribers.
    let path = subscribe_path(args);
    let slow_every = if args.slow_percent > 0.0 {
        (100.0 / args.slow_percent).round().max(1.0) as usize
    } else {
        0
    };
    let expected_total = args.publishers as u64 * args.count;
    let progress = Progress {
        expected: expected_total,
        done: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.ramp_per_s.max(1)));
    let mut subs = Vec::new();
    let mut connect_errors = 0usize;
    let mut slow_connected = 0usize;
    for i in 0..args.subscribers {
        let slow = slow_every > 0 && i % slow_every == slow_every - 1;
        match connect(
            args.addr,
            Some(source_ip(args.source_subnet, i)),
            &path,
            &args.token,
            slow,
        )
        .await
        {
            Ok(stream) => {
                slow_connected += usize::from(slow);
                let sub = Subscriber::new(i, slow, args.publishers, args.kind == Kind::Eventhub);
                subs.push((stream, sub));
            }
            Err(e) => {
                connect_errors += 1;
                if connect_errors <= 3 {
                    eprintln!("subscriber {i}: {e}");
                }
            }
        }
        if i % 100 == 99 {
            tokio::time::sleep(gap * 100).await;
        }
    }
    let connected = subs.len();
    let readers = match readers::spawn(subs, args.threads, &progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eventhub-load: cannot start the readers: {e}");
            std::process::exit(2);
        }
    };
    // Let every confirmation arrive (and the server settle).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut report = Report::new(&args.label, args, connected, connect_errors);
    if args.idle {
        tokio::time::sleep(Duration::from_secs(args.idle_hold_s)).await;
        let rss_after = args.server_pid.and_then(proc_rss_bytes);
        if let (Some(b), Some(a)) = (rss_before, rss_after) {
            report.rss_per_connection = Some(a.saturating_sub(b) as f64 / connected.max(1) as f64);
            report.rss_total = Some(a);
        }
        progress.stop.store(true, Relaxed);
        for r in readers {
            let _ = r.join();
        }
        return report;
    }
    // Publish.
    let cpu_start = args.server_pid.and_then(proc_cpu_ns);
    let started = Instant::now();
    let per_pub_rate = args.rate / args.publishers as f64;
    let mut pubs = Vec::new();
    for p in 0..args.publishers {
        let args_addr = args.addr;
        let (token, channel, kind, size, count) = (
            args.token.clone(),
            args.channel.clone(),
            args.kind,
            args.size,
            args.count,
        );
        pubs.push(tokio::spawn(async move {
            client::publish(
                args_addr,
                kind,
                &token,
                &channel,
                p,
                count,
                per_pub_rate,
                size,
            )
            .await
        }));
    }
    let mut published = 0u64;
    for p in pubs {
        match p.await {
            Ok(Ok(n)) => published += n,
            Ok(Err(e)) => eprintln!("publisher: {e}"),
            Err(e) => eprintln!("publisher task: {e}"),
        }
    }
    let publish_done = started.elapsed();
    // Wait for the healthy subscribers to have everything.
    let healthy = connected - slow_connected;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while (progress.done.load(Relaxed) as usize) < healthy && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu_end = args.server_pid.and_then(proc_cpu_ns);
    progress.stop.store(true, Relaxed);
    let seen: Vec<_> = readers
        .into_iter()
        .map(|r| r.join().expect("a reader thread panicked"))
        .collect();
    report.published = published;
    report.publish_seconds = publish_done.as_secs_f64();
    report.elapsed_seconds = elapsed.as_secs_f64();
    report.server_cpu_ns = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
    for s in &seen {
        report.take_stats(s, expected_total);
    }
    if args.kind == Kind::Eventhub && slow_connected > 0 {
        let name = "eventhub_slow_consumer_closes_total";
        report.server_slow_closes = client::metric_sum(args.addr, &args.token, name).await;
    }
    report
}
