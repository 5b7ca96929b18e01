//! Fan-out across cores against real `eventhub serve` processes: every
//! subscriber on every core gets exactly its channels' events, once and in
//! `seq` order; connections are spread evenly over the cores; a slow consumer is closed with 1013 and resumes without
//! loss; SIGTERM delivers every accepted event before closing with 1001;
//! and the Events Hub guide's `wscat` command works as written.
//!
//! Every wait is bounded (10 s reads, bounded loops); nothing asserts on
//! timing.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{
    drain_after_close, expect_confirmation, http_request, ip, metric_sum, metrics, read_incoming,
    read_json, send_text, seq, seqs_of, subscribers_on, try_http_request, ws_connect_rcvbuf,
    ws_connect_with, Incoming, Server, TIMEOUT,
};

type Ws = tungstenite::WebSocket<TcpStream>;

const ADMIN: &str = "admin-token-0123456789";
const PRODUCER: &str = "producer-token-0123456789";
const READER_TOKEN: &str = "reader-token-0123456789";
const READER_KEY: &str = "reader-key-0123456789";

const PRINCIPALS: &str = r#"
[[principals]]
name = "admin"
token = "admin-token-0123456789"
admin = true
subscribe = ["*"]
publish = ["*"]

[[principals]]
name = "producer"
token = "producer-token-0123456789"
subscribe = []
publish = ["pdfm", "orchestrator", "alerts", "global"]

[[principals]]
name = "reader"
token = "reader-token-0123456789"
api_key = "reader-key-0123456789"
subscribe = ["pdfm", "health", "orchestrator", "alerts"]
publish = []
"#;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The headers `curl -d BODY -H "Authorization: Bearer TOKEN"` sends, as in
/// the Events Hub guide.
fn curl_headers(auth: &str) -> [(&str, &str); 4] {
    [
        ("User-Agent", "curl/8.5.0"),
        ("Accept", "*/*"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Authorization", auth),
    ]
}

/// `POST /v1/events` with `json`, like curl; asserts the 202 and returns
/// the seqs in the order of the events sent.
fn post_events(addr: SocketAddr, token: &str, json: &str) -> Vec<u64> {
    let auth = bearer(token);
    let resp = http_request(
        addr,
        None,
        "POST",
        "/v1/events",
        &curl_headers(&auth),
        json.as_bytes(),
    );
    assert_eq!(resp.status, 202, "POST /v1/events {json:.200}: {resp:?}");
    seqs_of(&resp.json()["events"])
}

/// A subscriber of `channels` (comma-separated) from `source`, as the
/// `reader` principal; returns it after its confirmation.
fn subscriber(hub: &Server, source: u8, channels: &str, auth_style: usize) -> Ws {
    let auth = bearer(READER_TOKEN);
    let (path, headers): (String, Vec<(&str, &str)>) = match auth_style % 3 {
        0 => (
            format!("/api/v1/ws/subscribe?event_types={channels}"),
            vec![("Authorization", auth.as_str())],
        ),
        1 => (
            format!("/v1/ws/subscribe?event_types={channels}"),
            vec![("X-Api-Key", READER_KEY)],
        ),
        _ => (
            format!("/v1/ws/subscribe?event_types={channels}&access_token={READER_TOKEN}"),
            vec![],
        ),
    };
    let mut c = ws_connect_with(hub.addr, Some(ip(source)), &path, &headers);
    let subs: BTreeSet<String> = expect_confirmation(&mut c).into_iter().collect();
    let mut want: BTreeSet<String> = channels.split(',').map(str::to_string).collect();
    want.insert("global".into());
    assert_eq!(subs, want, "subscriptions confirmed for {channels}");
    c
}

// ---------------------------------------------------------------------------
// 1. Fan-out on every core
// ---------------------------------------------------------------------------

/// One published event as a subscriber should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    seq: u64,
    channel: String,
    message: String,
    n: u64,
}

#[test]
fn every_subscriber_on_every_core_receives_each_matching_event_once_in_order() {
    let config = format!("[hub]\nchannels = [\"alerts\"]\nreplay_size = 10000\n{PRINCIPALS}");
    let hub = Server::hub(2, &config);

    const SETS: [&str; 5] = [
        "pdfm",
        "orchestrator",
        "pdfm,orchestrator",
        "alerts",
        "alerts,pdfm",
    ];
    // One subscriber per source address (the per-IP rule stays at 1).
    let mut subs: Vec<(Ws, &str)> = (0..30u8)
        .map(|i| {
            let set = SETS[usize::from(i) % SETS.len()];
            (subscriber(&hub, 2 + i, set, usize::from(i)), set)
        })
        .collect();

    let metrics = metrics(hub.addr, ADMIN);
    let (core0, core1) = (subscribers_on(&metrics, 0), subscribers_on(&metrics, 1));
    assert!(
        core0 > 0 && core1 > 0,
        "both cores should hold subscribers (core 0: {core0}, core 1: {core1})"
    );
    assert_eq!(core0 + core1, 30, "every subscriber counted once");

    // ~200 events over POST (single and arrays) and the publisher socket.
    const CHANNELS: [&str; 4] = ["pdfm", "orchestrator", "alerts", "global"];
    const GROUPS: [usize; 8] = [1, 3, 1, 7, 2, 10, 1, 5];
    let auth = bearer(PRODUCER);
    let mut publisher = ws_connect_with(
        hub.addr,
        None,
        "/v1/ws/publish?ack=true",
        &[("Authorization", &auth)],
    );
    let mut published: Vec<Seen> = Vec::new();
    let mut n = 0u64;
    let mut group = 0usize;
    while n < 200 {
        let size = GROUPS[group % GROUPS.len()];
        let events: Vec<Value> = (n..n + size as u64)
            .map(|k| {
                let channel = CHANNELS[((k * k + k / 3) % 4) as usize];
                json!({"event_type": channel, "message": format!("ev-{k}"), "body": {"n": k}})
            })
            .collect();
        let text = if size == 1 {
            events[0].to_string()
        } else {
            Value::Array(events.clone()).to_string()
        };
        let seqs = if group % 3 == 2 {
            send_text(&mut publisher, &text);
            let ack = read_json(&mut publisher);
            assert_eq!(ack["message"], "published", "publisher ack: {ack}");
            seqs_of(&ack["body"]["events"])
        } else {
            post_events(hub.addr, PRODUCER, &text)
        };
        assert_eq!(seqs.len(), size, "one seq per event sent");
        for (ev, s) in events.iter().zip(seqs) {
            published.push(Seen {
                seq: s,
                channel: ev["event_type"].as_str().unwrap().to_string(),
                message: ev["message"].as_str().unwrap().to_string(),
                n: ev["body"]["n"].as_u64().unwrap(),
            });
        }
        n += size as u64;
        group += 1;
    }
    // A last event on global, which everyone gets: nothing may follow it.
    let sentinel = post_events(
        hub.addr,
        PRODUCER,
        r#"{"event_type":"global","message":"sentinel","body":{"n":999999}}"#,
    );
    published.push(Seen {
        seq: sentinel[0],
        channel: "global".into(),
        message: "sentinel".into(),
        n: 999_999,
    });
    published.sort_by_key(|e| e.seq);
    let all: BTreeSet<u64> = published.iter().map(|e| e.seq).collect();
    assert_eq!(all.len(), published.len(), "every event got its own seq");

    for (i, (c, set)) in subs.iter_mut().enumerate() {
        let wanted: Vec<&str> = set.split(',').chain(["global"]).collect();
        let expected: Vec<Seen> = published
            .iter()
            .filter(|e| wanted.contains(&e.channel.as_str()))
            .cloned()
            .collect();
        let mut got: Vec<Seen> = Vec::new();
        for _ in 0..=published.len() {
            let v = read_json(c);
            got.push(Seen {
                seq: seq(&v),
                channel: v["event_type"].as_str().unwrap_or_default().to_string(),
                message: v["message"].as_str().unwrap_or_default().to_string(),
                n: v["body"]["n"].as_u64().unwrap_or(u64::MAX),
            });
            if v["message"] == "sentinel" {
                break;
            }
        }
        assert!(
            got.windows(2).all(|w| w[0].seq < w[1].seq),
            "subscriber {i} ({set}): seqs not strictly increasing: {:?}",
            got.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
        assert_eq!(
            got.len(),
            expected.len(),
            "subscriber {i} ({set}): event count"
        );
        assert_eq!(got, expected, "subscriber {i} ({set}): events");
    }
}

// ---------------------------------------------------------------------------
// 2. Slow consumer
// ---------------------------------------------------------------------------

/// The kernel picks each connection's core by a hash, which leaves cores
/// uneven (57/43 of 100 is common); the hub moves upgraded connections to
/// the least loaded core, and moved connections work like any other.
#[test]
fn upgraded_connections_are_spread_evenly_over_the_cores_and_all_receive() {
    let hub = Server::hub(2, &format!("[hub]\nchannels = [\"alerts\"]\n{PRINCIPALS}"));
    let mut subs: Vec<Ws> = (0..100u8)
        .map(|i| subscriber(&hub, 2 + i, "pdfm", usize::from(i)))
        .collect();
    let text = metrics(hub.addr, ADMIN);
    let (core0, core1) = (subscribers_on(&text, 0), subscribers_on(&text, 1));
    assert_eq!(core0 + core1, 100, "{text}");
    assert!(
        core0.abs_diff(core1) <= 2,
        "cores hold {core0} and {core1} subscribers"
    );
    let seqs = post_events(
        hub.addr,
        PRODUCER,
        r#"{"event_type":"pdfm","message":"to-all"}"#,
    );
    for (i, c) in subs.iter_mut().enumerate() {
        let got = read_json(c);
        assert_eq!(got["message"], "to-all", "subscriber {i}: {got}");
        assert_eq!(seq(&got), seqs[0], "subscriber {i}");
    }
}

/// Reads `c` until the event with `last` arrives; returns every event seq.
fn read_through(c: &mut Ws, last: u64, who: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    for _ in 0..100_000 {
        let v = read_json(c);
        assert_eq!(v["event_type"], "pdfm", "{who}: unexpected message {v}");
        let s = seq(&v);
        seqs.push(s);
        if s >= last {
            return seqs;
        }
    }
    panic!("{who}: never reached seq {last}");
}

fn assert_contiguous(seqs: &[u64], from: u64, to: u64, who: &str) {
    let want: Vec<u64> = (from..=to).collect();
    if seqs != want.as_slice() {
        let missing: Vec<u64> = want.iter().filter(|s| !seqs.contains(s)).copied().collect();
        panic!(
            "{who}: expected seqs {from}..={to} once each in order; got {} seqs, missing {missing:?}, \
             first {:?}, last {:?}",
            seqs.len(),
            seqs.first(),
            seqs.last()
        );
    }
}

/// `limits.socket_send_buffer_bytes` caps what the kernel holds for a
/// subscriber that stops reading: left to autotuning, the send buffer of a
/// loopback connection grows to `tcp_wmem`'s maximum (4 MiB here) and 2 MB
/// of events vanish into it without the hub's queue noticing.
#[test]
fn a_stalled_reader_is_closed_once_its_capped_socket_buffer_and_queue_are_full() {
    let config = format!(
        "[hub]\nchannels = [\"alerts\"]\n\
         [limits]\nsend_queue_bytes = 65536\nsocket_send_buffer_bytes = 65536\n\
         write_timeout_s = 120\nclose_timeout_s = 120\nidle_timeout_s = 600\nping_interval_s = 300\n\
         {PRINCIPALS}"
    );
    let hub = Server::hub(1, &config);
    let mut stalled = subscriber(&hub, 2, "pdfm", 0);
    let pad = "x".repeat(4000);
    let mut published = 0usize;
    let mut closed = false;
    for round in 0..128u64 {
        let evs: Vec<Value> = (0..4)
            .map(|k| json!({"event_type": "pdfm", "message": format!("big-{round}-{k}"), "body": {"pad": pad}}))
            .collect();
        post_events(hub.addr, PRODUCER, &Value::Array(evs).to_string());
        published += 4 * 4000;
        let text = metrics(hub.addr, ADMIN);
        if metric_sum(&text, "eventhub_slow_consumer_closes_total") > 0 {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "not closed after {published} bytes of events to a subscriber that reads nothing"
    );
    // What its socket held, then the close.
    let code = loop {
        match read_incoming(&mut stalled) {
            Ok(Incoming::Json(_)) => {}
            Ok(Incoming::Close(c)) => break c.map(|(code, _)| code),
            Err(e) => panic!("connection failed before its close frame: {e}"),
        }
    };
    assert_eq!(code, Some(1013));
}

#[test]
fn subscriber_that_stops_reading_is_closed_with_1013_while_others_keep_receiving_and_resumes_without_loss(
) {
    // Long write/close/idle timeouts: the only way this connection may end
    // is the send-queue bound.
    let config = format!(
        "[hub]\nchannels = [\"alerts\"]\nreplay_size = 100000\nmax_connections_per_ip = 0\n\
         connect_rate_per_ip = 0.0\n\
         [limits]\nsend_queue_bytes = 65536\nwrite_timeout_s = 120\nclose_timeout_s = 120\n\
         idle_timeout_s = 600\nping_interval_s = 300\n{PRINCIPALS}"
    );
    let hub = Server::hub(2, &config);
    let auth = bearer(READER_TOKEN);
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let mut slow = ws_connect_rcvbuf(
        hub.addr,
        Some(ip(2)),
        4096,
        path,
        &[("Authorization", &auth)],
    );
    expect_confirmation(&mut slow);
    let mut healthy = ws_connect_with(hub.addr, Some(ip(3)), path, &[("Authorization", &auth)]);
    expect_confirmation(&mut healthy);

    let pad = "x".repeat(4000);
    let batch = |first: u64| -> String {
        let evs: Vec<Value> = (first..first + 4)
            .map(|k| json!({"event_type": "pdfm", "message": format!("big-{k}"), "body": {"n": k, "pad": pad}}))
            .collect();
        Value::Array(evs).to_string()
    };

    // Publish 4 events (~16 KB) at a time; the healthy subscriber reads
    // each batch before the next one, so only the slow one falls behind.
    let mut healthy_seqs = Vec::new();
    let mut last = 0u64;
    let mut closed = false;
    for round in 0..5000u64 {
        let seqs = post_events(hub.addr, PRODUCER, &batch(round * 4));
        last = *seqs.last().unwrap();
        healthy_seqs.extend(read_through(&mut healthy, last, "healthy subscriber"));
        if metric_sum(
            &metrics(hub.addr, ADMIN),
            "eventhub_slow_consumer_closes_total",
        ) > 0
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "no slow-consumer close after {last} events of ~4 KB"
    );
    assert_contiguous(&healthy_seqs, 1, last, "healthy subscriber");

    // The slow one now reads what its socket holds: events, then 1013.
    let mut slow_seqs = Vec::new();
    let reason = loop {
        match read_incoming(&mut slow) {
            Ok(Incoming::Json(v)) => slow_seqs.push(seq(&v)),
            Ok(Incoming::Close(Some((code, reason)))) => {
                assert_eq!(code, 1013, "close code (reason {reason:?})");
                break reason;
            }
            Ok(Incoming::Close(None)) => panic!("close frame without a code"),
            Err(e) => panic!(
                "slow subscriber: connection ended without a close frame after {} events: {e}",
                slow_seqs.len()
            ),
        }
    };
    drain_after_close(&mut slow);
    let n: u64 = reason
        .split("last seq sent ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("close reason without \"last seq sent N\": {reason:?}"));
    assert!(
        n > 0,
        "the slow subscriber was sent some events ({reason:?})"
    );
    assert_eq!(
        slow_seqs.last().copied(),
        Some(n),
        "the last event received is the one the close reason names"
    );
    assert_contiguous(&slow_seqs, 1, n, "slow subscriber before the close");
    eprintln!("slow subscriber closed after {last} events published, {n} sent to it: {reason:?}");

    // It resumes with since=N: the rest of what was published, then more.
    let since = n.min(*slow_seqs.last().unwrap());
    let mut resumed = ws_connect_with(
        hub.addr,
        Some(ip(2)),
        &format!("{path}&since={since}"),
        &[("Authorization", &auth)],
    );
    expect_confirmation(&mut resumed);
    let mut resumed_seqs = if last > since {
        read_through(&mut resumed, last, "resumed subscriber")
    } else {
        Vec::new()
    };
    for round in 0..5u64 {
        let seqs = post_events(hub.addr, PRODUCER, &batch(100_000 + round * 4));
        last = *seqs.last().unwrap();
        healthy_seqs.extend(read_through(&mut healthy, last, "healthy subscriber"));
        resumed_seqs.extend(read_through(&mut resumed, last, "resumed subscriber"));
    }
    assert_contiguous(&resumed_seqs, since + 1, last, "resumed subscriber");
    assert_contiguous(&healthy_seqs, 1, last, "healthy subscriber");
    assert_eq!(
        metric_sum(
            &metrics(hub.addr, ADMIN),
            "eventhub_slow_consumer_closes_total"
        ),
        1,
        "only the subscriber that stopped reading was closed"
    );
}

// ---------------------------------------------------------------------------
// 3. SIGTERM
// ---------------------------------------------------------------------------

#[test]
fn sigterm_delivers_every_accepted_event_before_closing_with_1001() {
    let config = format!("[hub]\nchannels = [\"alerts\"]\n{PRINCIPALS}");
    let mut hub = Server::hub(2, &config);

    // Subscribers from distinct addresses until both cores hold two.
    let mut subs = Vec::new();
    for i in 0..60u8 {
        subs.push(subscriber(&hub, 40 + i, "pdfm", usize::from(i)));
        let m = metrics(hub.addr, ADMIN);
        if subs.len() >= 4 && subscribers_on(&m, 0) >= 2 && subscribers_on(&m, 1) >= 2 {
            break;
        }
    }
    let m = metrics(hub.addr, ADMIN);
    assert!(
        subscribers_on(&m, 0) >= 2 && subscribers_on(&m, 1) >= 2,
        "subscribers did not spread over both cores:\n{m}"
    );

    // Each subscriber reads (in its own thread) until the close frame.
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            thread::spawn(move || {
                let mut seqs = Vec::new();
                for _ in 0..1_000_000 {
                    match read_incoming(&mut c) {
                        Ok(Incoming::Json(v)) => seqs.push(seq(&v)),
                        Ok(Incoming::Close(close)) => {
                            drain_after_close(&mut c);
                            return (seqs, close);
                        }
                        Err(e) => panic!(
                            "subscriber {i}: connection ended without a close frame after {} events: {e}",
                            seqs.len()
                        ),
                    }
                }
                panic!("subscriber {i}: too many messages");
            })
        })
        .collect();

    // A producer posts in a loop; every 202's seq is recorded.
    let accepted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (accepted, stop, addr) = (accepted.clone(), stop.clone(), hub.addr);
        thread::spawn(move || {
            let auth = bearer(PRODUCER);
            for k in 0..1_000_000u64 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let body =
                    format!(r#"{{"event_type":"pdfm","message":"m-{k}","body":{{"n":{k}}}}}"#);
                match try_http_request(
                    addr,
                    None,
                    "POST",
                    "/v1/events",
                    &curl_headers(&auth),
                    body.as_bytes(),
                ) {
                    Ok(resp) if resp.status == 202 => {
                        let seqs = seqs_of(&resp.json()["events"]);
                        accepted.lock().unwrap().extend(seqs);
                    }
                    // Refused or cut off by the shutdown.
                    _ => return,
                }
            }
        })
    };
    let deadline = Instant::now() + TIMEOUT;
    while accepted.lock().unwrap().len() < 100 {
        assert!(
            Instant::now() < deadline,
            "the producer got too few 202s: {}",
            accepted.lock().unwrap().len()
        );
        thread::sleep(Duration::from_millis(5));
    }
    let before_signal: Vec<u64> = {
        let guard = accepted.lock().unwrap();
        let snapshot = guard.clone();
        hub.signal_term();
        snapshot
    };
    stop.store(true, Ordering::SeqCst);
    eprintln!("SIGTERM after {} accepted events", before_signal.len());
    producer.join().expect("producer thread");

    for (i, reader) in readers.into_iter().enumerate() {
        let (seqs, close) = reader.join().expect("subscriber thread");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "subscriber {i}: seqs not strictly increasing"
        );
        let got: BTreeSet<u64> = seqs.iter().copied().collect();
        let missing: Vec<u64> = before_signal
            .iter()
            .filter(|s| !got.contains(s))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "subscriber {i}: {} of the {} events accepted before SIGTERM missing, e.g. {:?}",
            missing.len(),
            before_signal.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            close,
            Some((1001, "server restart".to_string())),
            "subscriber {i}: close frame"
        );
    }
    let status = hub.wait_exit(3 * TIMEOUT);
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

// ---------------------------------------------------------------------------
// 4. The guide's wscat command
// ---------------------------------------------------------------------------

/// `wscat` on PATH, in the repository's `node_modules/.bin`, or where
/// `scripts/setup.sh` installs it (`target/node/node_modules/.bin`).
fn find_wscat() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([
            repo.join("node_modules/.bin"),
            repo.join("target/node/node_modules/.bin"),
        ])
        .map(|dir| dir.join("wscat"))
        .find(|p| p.is_file())
}

/// A line wscat printed: the JSON of a message, with or without the `< `
/// it adds on a terminal; `None` for anything else ("Connected ...").
fn wscat_json(line: &str) -> Option<Value> {
    let line = line.trim();
    let line = line.strip_prefix("< ").unwrap_or(line);
    serde_json::from_str(line).ok()
}

#[test]
fn guide_wscat_command_receives_confirmation_and_published_event() {
    let Some(wscat) = find_wscat() else {
        if std::env::var_os("EVENTHUB_REQUIRE_WSCAT").is_some() {
            panic!("wscat not found on PATH, in node_modules/.bin or target/node/node_modules/.bin, and EVENTHUB_REQUIRE_WSCAT is set (run scripts/setup.sh)");
        }
        eprintln!(
            "SKIPPED guide_wscat_command_receives_confirmation_and_published_event: wscat not found \
             (install with scripts/setup.sh or `npm install -g wscat`; set EVENTHUB_REQUIRE_WSCAT=1 to make this a failure)"
        );
        return;
    };
    let config = format!("[hub]\nchannels = [\"alerts\"]\n{PRINCIPALS}");
    let hub = Server::hub(2, &config);
    let port = hub.addr.port();

    // The guide's command, verbatim apart from the token and port. wscat
    // quits when its stdin ends, so stdin stays an open pipe.
    let mut child = Command::new(&wscat)
        .arg("-H")
        .arg(format!("Authorization: Bearer {READER_TOKEN}"))
        .arg("-c")
        .arg(format!(
            "ws://127.0.0.1:{port}/api/v1/ws/subscribe?event_types=pdfm,health,orchestrator"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", wscat.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_text = Arc::new(Mutex::new(String::new()));
    {
        let err_text = err_text.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err_text.lock().unwrap().push_str(&line);
                err_text.lock().unwrap().push('\n');
            }
        });
    }
    let mut printed = Vec::new();
    let mut next_message = |what: &str| -> Value {
        for _ in 0..100 {
            match rx.recv_timeout(TIMEOUT) {
                Ok(line) => {
                    printed.push(line.clone());
                    if let Some(v) = wscat_json(&line) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "wscat printed no {what}; stdout so far {printed:?}; stderr {:?}",
                    err_text.lock().unwrap()
                ),
            }
        }
        panic!("wscat printed no {what} in 100 lines: {printed:?}");
    };

    let confirmation = next_message("confirmation");
    assert_eq!(confirmation["event_type"], "global", "{confirmation}");
    assert_eq!(
        confirmation["message"],
        "WebSocket connection established subscribed to global by default"
    );
    let subs: BTreeSet<&str> = confirmation["body"]["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        subs,
        BTreeSet::from(["pdfm", "health", "orchestrator", "global"])
    );

    // The guide's curl publish, sent over a plain socket.
    let body = r#"{"event_type":"pdfm","message":"VM_STATE_CHANGED","body":{"previous_state":"suspended","current_state":"resuming"}}"#;
    let seqs = post_events(hub.addr, PRODUCER, body);
    let event = next_message("published event");
    assert_eq!(event["event_type"], "pdfm", "{event}");
    assert_eq!(event["message"], "VM_STATE_CHANGED");
    assert_eq!(
        event["body"],
        json!({"previous_state":"suspended","current_state":"resuming"})
    );
    assert_eq!(event["seq"].as_u64(), Some(seqs[0]));

    let _ = child.kill();
    let _ = child.wait();
}
