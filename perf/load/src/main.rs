//! `eventhub-load`: drives eventhub (or a peer server with the same
//! broadcast contract) with N subscribers and M paced publishers, and
//! reports what a user would want to compare: deliveries per second,
//! publish-to-receive latency percentiles, server CPU time per delivery,
//! eventhub's writes per delivery, server memory per idle connection and
//! CPU per connection in a connect storm, and per-subscriber loss,
//! duplicate and order checks.
//!
//! Publishing is open-loop by default: event `k` of a publisher is due at
//! `start + k / rate` whatever happened to earlier ones; with `--window N`
//! it is closed-loop as well, no subscriber more than N events behind. An
//! event carries the time it is written to the socket (CLOCK_MONOTONIC,
//! shared by every process on the machine) in its body. The send time
//! rather than the due time, because tokio's timer wakes up to a
//! millisecond late and that delay is the tool's, not the server's. Server
//! CPU comes from `/proc/<pid>/stat` (utime + stime over the phase), the
//! fairest figure when the load tool shares the cores with the server. The
//! tool's own CPU over the same phase is given beside it: where the tool
//! keeps a core busy (pinned, one core each), the delivery rate is the
//! tool's, not the server's.
//!
//! The subscribers read one of two ways (`--reader`), so that each figure
//! can be had under the cheapest reading there is and under an ordinary
//! WebSocket library's.
//!
//! With `--tls-ca FILE` every connection (subscribers, publishers, the
//! `/metrics` scrape) is TLS, trusting the CA in FILE: a server's wss
//! measured with the same load and counting as its ws ([`transport`]).
//!
//! Several addresses (`--addr A,B,C`) are the nodes of one cluster, which
//! delivers every event on every node: the subscribers and the publishers
//! are spread over them round-robin (subscriber `i` on address `i % n`,
//! publisher `j` on `j % n`), and every subscriber must still see every
//! publisher's events, once each and in order, wherever they were
//! published. The server's CPU and memory are then the sums over the
//! nodes' processes (`--server-pid P,Q,R`), its writes the sums over their
//! `/metrics`: the whole cluster's cost per delivery.
//!
//! Every run is bounded: by `--count` events per publisher and by
//! `--timeout` for the deliveries; all traffic goes to the given loopback
//! addresses.

mod accounting;
mod client;
mod connecting;
mod metrics;
mod progress;
mod publisher;
mod readers;
mod report;
mod server_proc;
mod transport;
mod window;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use metrics::Counters;
use progress::Progress;
use publisher::Publisher;
use readers::ReaderKind;
use report::Report;
use server_proc::{cpu_ns, proc_cpu_ns, rss_bytes};
use transport::Endpoint;
use window::Window;

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
    /// Server address (loopback); several, comma-separated, are the nodes
    /// of one cluster, with the subscribers and publishers spread over them
    /// round-robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub addr: Vec<SocketAddr>,
    /// Connect over TLS (wss, and https for /metrics), trusting only the
    /// CA certificates in this PEM file (`eventhub dev-cert`'s ca.pem);
    /// each server's certificate must name the IP address of its --addr.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
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
    /// Events per second over all publishers; 0 = as fast as possible
    /// (or as the window allows).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Closed loop: an event is sent only while every healthy subscriber
    /// has received all but at most N of the events sent so far; 0 = open
    /// loop.
    #[arg(long, default_value_t = 0)]
    pub window: u64,
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
    /// Server process id, for CPU and memory figures; several,
    /// comma-separated (a cluster's nodes), are summed.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Source addresses for subscribers: 127.0.X.1-250 with X from this.
    #[arg(long, default_value_t = 1)]
    pub source_subnet: u8,
    /// Connections started per second while ramping up; 0 = all at once.
    #[arg(long, default_value_t = 2000)]
    pub ramp_per_s: u32,
    /// Handshakes in flight at once while ramping up.
    #[arg(long, default_value_t = 64)]
    pub connect_parallel: usize,
    /// Seconds to wait for every delivery after the last publish.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// How the subscribers read.
    #[arg(long, value_enum, default_value = "epoll")]
    pub reader: ReaderKind,
    /// Threads reading the subscribers (epoll threads, or the tokio
    /// runtime's workers for `--reader tungstenite`).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Label of this run in the report.
    #[arg(long, default_value = "eventhub")]
    pub label: String,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Subscribers offer permessage-deflate
    /// (`permessage-deflate; client_max_window_bits`) and inflate what
    /// comes compressed (epoll reader only; the server must agree to
    /// server_no_context_takeover).
    #[arg(long)]
    pub deflate: bool,
    /// With --deflate: inflate every compressed message, even bytes this
    /// reader thread inflated before for another subscriber (by default
    /// they are inflated once per thread, so that the tool's inflating
    /// does not bound the delivery rate it measures).
    #[arg(long)]
    pub inflate_every_message: bool,
    /// What pads each event to --size: `x`, repeated (compresses to almost
    /// nothing), or `docker`: a Docker Engine container event's fields
    /// (ids, image, labels), varying from event to event.
    #[arg(long, value_enum, default_value = "x")]
    pub payload: publisher::Payload,
}

fn main() {
    let args = Args::parse();
    if args.deflate && args.reader == ReaderKind::Tungstenite {
        eprintln!(
            "eventhub-load: --deflate needs --reader epoll: tokio-tungstenite 0.30 has no permessage-deflate"
        );
        std::process::exit(2);
    }
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

/// One endpoint per `--addr`, plain or TLS.
fn endpoints(args: &Args) -> Vec<Endpoint> {
    args.addr
        .iter()
        .map(|&addr| match &args.tls_ca {
            None => Endpoint::plain(addr),
            Some(ca) => Endpoint::tls(addr, ca).unwrap_or_else(|e| {
                eprintln!("eventhub-load: --tls-ca {}: {e}", ca.display());
                std::process::exit(2);
            }),
        })
        .collect()
}

async fn run(args: &Args) -> Report {
    let endpoints = endpoints(args);
    let rss_before = rss_bytes(&args.server_pid);
    let opened = connecting::open(args, &endpoints).await;
    let connected = opened.subs.len();
    let healthy = connected - opened.slow;
    let expected_total = args.publishers as u64 * args.count;
    let window = (args.window > 0 && !args.idle)
        .then(|| Arc::new(Window::new(args.window, healthy as u64, expected_total)));
    let progress = Progress::new(expected_total, window.clone());
    let readers = match readers::spawn(
        args.reader,
        opened.subs,
        args.threads,
        &progress,
        !args.inflate_every_message,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("eventhub-load: cannot start the readers: {e}");
            std::process::exit(2);
        }
    };
    // Let the server settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut report = Report::new(args, connected, opened.errors, opened.storm);
    let scheme = endpoints[0].scheme();
    report.transport = match opened.tls {
        Some(tls) => format!("{scheme} {tls}"),
        None => scheme.to_string(),
    };
    report.deflated = opened.deflated;
    if args.idle {
        tokio::time::sleep(Duration::from_secs(args.idle_hold_s)).await;
        let rss_after = rss_bytes(&args.server_pid);
        if let (Some(b), Some(a)) = (rss_before, rss_after) {
            report.rss_per_connection = Some(a.saturating_sub(b) as f64 / connected.max(1) as f64);
            report.rss_total = Some(a);
        }
        progress.stop();
        for r in readers {
            let _ = r.join();
        }
        return report;
    }
    let counters_before = server_counters(args, &endpoints).await;
    let cpu_start = cpu_ns(&args.server_pid);
    let tool_cpu_start = proc_cpu_ns(std::process::id());
    let started = Instant::now();
    let published = publish(args, &endpoints, window).await;
    let publish_done = started.elapsed();
    // Wait for the healthy subscribers to have everything.
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while (progress.done() as usize) < healthy && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu_end = cpu_ns(&args.server_pid);
    let tool_cpu_end = proc_cpu_ns(std::process::id());
    let counters_after = server_counters(args, &endpoints).await;
    progress.stop();
    let seen: Vec<_> = readers
        .into_iter()
        .map(|r| r.join().expect("a reader thread panicked"))
        .collect();
    report.published = published;
    report.publish_seconds = publish_done.as_secs_f64();
    report.elapsed_seconds = elapsed.as_secs_f64();
    report.server_cpu_ns = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
    report.tool_cpu_ns = tool_cpu_start
        .zip(tool_cpu_end)
        .map(|(a, b)| b.saturating_sub(a));
    if let (Some(b), Some(a)) = (counters_before, counters_after) {
        report.writes = b.writes.zip(a.writes).map(|(b, a)| a.since(b));
        report.deflate = b.deflate.zip(a.deflate).map(|(b, a)| a.since(b));
    }
    for s in &seen {
        report.take_stats(s, expected_total);
    }
    if args.kind == Kind::Eventhub && opened.slow > 0 {
        let name = "eventhub_slow_consumer_closes_total";
        report.server_slow_closes = metrics::scrape_all(&endpoints, &args.token)
            .await
            .and_then(|texts| {
                texts
                    .iter()
                    .map(|text| metrics::family_sum(text, name))
                    .sum::<Option<f64>>()
            })
            .map(|n| n as u64);
    }
    report
}

/// Runs the publishers to the end, publisher `j` on `endpoints[j % n]`;
/// returns how many events they sent.
async fn publish(args: &Args, endpoints: &[Endpoint], window: Option<Arc<Window>>) -> u64 {
    let pubs: Vec<_> = (0..args.publishers)
        .map(|index| {
            tokio::spawn(
                Publisher {
                    endpoint: endpoints[index % endpoints.len()].clone(),
                    kind: args.kind,
                    token: args.token.clone(),
                    channel: args.channel.clone(),
                    index,
                    count: args.count,
                    rate: args.rate / args.publishers as f64,
                    size: args.size,
                    payload: args.payload,
                    window: window.clone(),
                    stall_timeout: Duration::from_secs(args.timeout),
                }
                .run(),
            )
        })
        .collect();
    let mut published = 0u64;
    for p in pubs {
        match p.await {
            Ok(Ok(n)) => published += n,
            Ok(Err(e)) => eprintln!("publisher: {e}"),
            Err(e) => eprintln!("publisher task: {e}"),
        }
    }
    published
}

/// eventhub's frames-per-write histogram and deflate counters now, summed
/// over the addresses; `None` for a peer (and each part `None` where a hub
/// lacks it).
async fn server_counters(args: &Args, endpoints: &[Endpoint]) -> Option<Counters> {
    if args.kind != Kind::Eventhub {
        return None;
    }
    let texts = metrics::scrape_all(endpoints, &args.token).await?;
    Some(Counters::parse_all(&texts))
}
