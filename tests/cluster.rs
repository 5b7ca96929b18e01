//! Several hubs as one, against a real nats-server with JetStream: the
//! hubs are `eventhub serve` processes with a `[cluster]` section, the
//! clients tungstenite and plain HTTP, the faults real (SIGKILL of a hub,
//! nats-server stopped and restarted on its file store, the stream
//! deleted under the hubs).
//!
//! Each test starts its own nats-server (`common::nats`, a free port and a
//! store of its own) and its hubs, so the tests run in parallel.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::api::{self, bearer, event, post_events, publish, subscribe, subscribe_as, Ws};
use common::nats::Nats;
use common::{
    http_request, metric_value, read_incoming, read_json, seq, Incoming, Server, TIMEOUT,
};

/// The API tests' config, joined to the cluster of `nats`, with `cluster`
/// keys and `hub` keys added.
fn config(nats: &Nats, hub: &str, cluster: &str) -> String {
    format!(
        "{}\n[cluster]\nnats_url = \"{}\"\nconnect_timeout_s = 5\n{cluster}\n",
        api::config_with(hub, ""),
        nats.url()
    )
}

/// `n` hubs of 2 workers on `nats`.
fn hubs(nats: &Nats, n: usize, hub: &str, cluster: &str) -> Vec<Server> {
    (0..n)
        .map(|_| Server::hub(2, &config(nats, hub, cluster)))
        .collect()
}

/// Reads `n` events (messages with a seq) from `ws`; returns them, and
/// every message without one that came between.
fn read_events(ws: &mut Ws, n: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut events, mut others) = (Vec::new(), Vec::new());
    while events.len() < n {
        let msg = read_json(ws);
        if msg.get("seq").is_some() {
            events.push(msg);
        } else {
            others.push(msg);
        }
    }
    (events, others)
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(seq).collect()
}

fn epoch(confirmation: &Value) -> String {
    confirmation["body"]["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("no epoch in {confirmation}"))
        .to_string()
}

/// `GET /healthz`.
fn health(addr: SocketAddr) -> common::HttpResponse {
    http_request(addr, None, "GET", "/healthz", &[], b"")
}

/// Waits until `ok` holds, within [`TIMEOUT`].
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_published_on_every_node_reach_every_node_with_the_same_seqs_in_one_order() {
    let nats = Nats::start();
    let hubs = hubs(&nats, 3, "", "");
    let mut subs: Vec<(Ws, Value)> = hubs.iter().map(|h| subscribe(h.addr, "pdfm")).collect();
    let epochs: BTreeSet<String> = subs.iter().map(|(_, c)| epoch(c)).collect();
    assert_eq!(epochs.len(), 1, "one epoch on every node: {epochs:?}");
    let mut acked = Vec::new();
    for i in 0..30 {
        let hub = &hubs[i % 3];
        let body = if i % 5 == 4 {
            format!(
                "[{},{}]",
                event("pdfm", &format!("e{i}a")),
                event("pdfm", &format!("e{i}b"))
            )
        } else {
            event("pdfm", &format!("e{i}"))
        };
        acked.extend(publish(hub.addr, &body));
    }
    assert_eq!(acked.len(), 36);
    let mut seen = Vec::new();
    for (ws, _) in &mut subs {
        let (events, _) = read_events(ws, acked.len());
        let pairs: Vec<(u64, String)> = events
            .iter()
            .map(|e| (seq(e), e["message"].as_str().unwrap().to_string()))
            .collect();
        seen.push(pairs);
    }
    assert_eq!(seen[0], seen[1], "node B delivered what node A did");
    assert_eq!(seen[0], seen[2], "node C delivered what node A did");
    let delivered: Vec<u64> = seen[0].iter().map(|p| p.0).collect();
    assert_eq!(
        delivered,
        (1..=36).collect::<Vec<_>>(),
        "the stream's seqs, in order"
    );
    assert_eq!(
        acked, delivered,
        "each 202 named the seq every node delivered"
    );
    // Each node's own publishes came back through the stream in that
    // order: e0 (node A), e1 (node B), e2 (node C) are seqs 1, 2, 3.
    assert_eq!(
        seen[0][..3]
            .iter()
            .map(|p| p.1.as_str())
            .collect::<Vec<_>>(),
        ["e0", "e1", "e2"]
    );
    let m = api::metrics(hubs[1].addr);
    assert_eq!(metric_value(&m, "eventhub_cluster_connected"), Some(1));
    assert_eq!(metric_value(&m, "eventhub_cluster_consumed_seq"), Some(36));
    let h = health(hubs[2].addr);
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(h.json()["event_log"], "reachable");
}

#[test]
fn a_container_event_published_on_one_node_reaches_events_ws_on_another_in_dockers_shape() {
    let nats = Nats::start();
    let hubs = hubs(&nats, 2, "", "");
    let mut ws = common::ws_connect_with(
        hubs[1].addr,
        None,
        "/events/ws?filters=%7B%22event%22%3A%5B%22stop%22%5D%7D",
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    let body = |action: &str| {
        format!(
            r#"{{"event_type":"container","body":{{"id":"c1","Type":"container","Action":"{action}","Actor":{{"ID":"c1","Attributes":{{"name":"web","image":"busybox","exitCode":"0"}}}},"time":1700000000,"timeNano":1700000000000000000}}}}"#
        )
    };
    publish(hubs[0].addr, &body("start"));
    let stop = publish(hubs[0].addr, &body("stop"));
    let msg = read_json(&mut ws);
    assert_eq!(msg["status"], "stop", "{msg}");
    assert_eq!(msg["Actor"]["Attributes"]["name"], "web");
    assert_eq!(msg["seq"].as_u64(), None, "Docker's shape carries no seq");
    assert_eq!(stop.len(), 1);
}

#[test]
fn a_client_resumes_on_a_node_whose_ring_lacks_its_events_from_the_stream() {
    let nats = Nats::start();
    // Node B keeps 4 events in its ring: a resume from further back is
    // served from the stream.
    let a = Server::hub(2, &config(&nats, "", ""));
    let b = Server::hub(2, &config(&nats, "replay_size = 4", ""));
    let (mut on_a, confirmation) = subscribe(a.addr, "pdfm");
    let epoch = epoch(&confirmation);
    for i in 0..40 {
        publish(a.addr, &event("pdfm", &format!("m{i}")));
    }
    let (first, _) = read_events(&mut on_a, 15);
    assert_eq!(seq(&first[14]), 15);
    drop(on_a);
    let (mut on_b, confirmation) = subscribe_as(
        b.addr,
        None,
        &format!("/v1/ws/subscribe?event_types=pdfm&since=15&epoch={epoch}"),
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    assert_eq!(confirmation["body"]["epoch"], epoch.as_str());
    let (rest, others) = read_events(&mut on_b, 25);
    assert_eq!(seqs(&rest), (16..=40).collect::<Vec<_>>());
    assert!(others.is_empty(), "no gap, nothing else: {others:?}");
    assert_eq!(rest[0]["message"], "m15");
    // Then live, from any node.
    publish(a.addr, &event("pdfm", "live"));
    let (live, _) = read_events(&mut on_b, 1);
    assert_eq!(
        (seq(&live[0]), live[0]["message"].as_str()),
        (41, Some("live"))
    );
    let m = api::metrics(b.addr);
    assert!(
        metric_value(&m, "eventhub_cluster_fetches_total").unwrap() >= 1,
        "{m}"
    );
}

#[test]
fn a_since_older_than_the_stream_holds_gets_an_explicit_replay_gap() {
    let nats = Nats::start();
    // The stream keeps about 4 KB: the oldest events leave it.
    let hub = Server::hub(2, &config(&nats, "replay_size = 4", "max_bytes = 4096"));
    let (_, confirmation) = subscribe(hub.addr, "pdfm");
    let epoch = epoch(&confirmation);
    for i in 0..60 {
        publish(hub.addr, &event("pdfm", &format!("m{i}")));
    }
    let (mut ws, _) = subscribe_as(
        hub.addr,
        None,
        &format!("/v1/ws/subscribe?event_types=pdfm&since=1&epoch={epoch}"),
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    let gap = read_json(&mut ws);
    assert_eq!(gap["event_type"], "system", "{gap}");
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    let first_kept = gap["body"]["missed_to"].as_u64().unwrap() + 1;
    assert_eq!(gap["body"]["missed_from"], 2, "{gap}");
    assert_eq!(gap["body"]["last_seq"], 60, "{gap}");
    assert!(first_kept > 2 && first_kept < 60, "{gap}");
    let (events, _) = read_events(&mut ws, (60 - first_kept + 1) as usize);
    assert_eq!(seqs(&events), (first_kept..=60).collect::<Vec<_>>());
}

/// A subscriber thread: reads events, and when its node dies reconnects
/// to the next of `nodes` with `since` and `epoch`; stops once it has seen
/// `last` (when set). Returns every seq it received, in order.
fn follower(
    nodes: Vec<SocketAddr>,
    first: (Ws, Value),
    last: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
) -> thread::JoinHandle<Vec<u64>> {
    thread::spawn(move || {
        let (mut ws, confirmation) = first;
        let epoch = epoch(&confirmation);
        // Short reads, so that the end (`last`) is seen soon.
        let short = |ws: &Ws| {
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(300)))
        };
        short(&ws).unwrap();
        let mut got: Vec<u64> = Vec::new();
        let mut next = 0;
        loop {
            let target = last.load(SeqCst);
            if target > 0 && got.last().is_some_and(|s| *s >= target) {
                return got;
            }
            match read_incoming(&mut ws) {
                Ok(Incoming::Json(msg)) => {
                    if let Some(s) = msg["seq"].as_u64() {
                        got.push(s);
                    }
                }
                // A read timeout: nothing came; look at `last` again.
                Err(e) if matches!(&*e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock) =>
                    {}
                Ok(Incoming::Close(_)) | Err(_) => {
                    let since = got.last().copied().unwrap_or(0);
                    let node = nodes[next % nodes.len()];
                    next += 1;
                    reconnects.fetch_add(1, SeqCst);
                    let path =
                        format!("/v1/ws/subscribe?event_types=pdfm&since={since}&epoch={epoch}");
                    let (again, c) = subscribe_as(
                        node,
                        None,
                        &path,
                        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
                    );
                    assert_eq!(c["body"]["epoch"], epoch.as_str(), "same epoch on {node}");
                    short(&again).unwrap();
                    ws = again;
                }
            }
        }
    })
}

/// Publishes `count` events, spread over `nodes`, one per request; retries
/// a 503 after a pause. Returns the acknowledged seqs.
fn publisher(
    nodes: Vec<SocketAddr>,
    count: usize,
    pause: Duration,
) -> thread::JoinHandle<(Vec<u64>, u64)> {
    thread::spawn(move || {
        let mut acked = Vec::new();
        let mut refused = 0;
        let mut i = 0;
        while acked.len() < count {
            let node = nodes[i % nodes.len()];
            i += 1;
            let resp = post_events(node, api::ADMIN_TOKEN, &event("pdfm", &format!("p{i}")));
            match resp.status {
                202 => acked.extend(common::seqs_of(&resp.json()["events"])),
                503 => {
                    assert!(resp.header("Retry-After").is_some(), "{resp:?}");
                    refused += 1;
                    thread::sleep(Duration::from_millis(100));
                }
                other => panic!("publish answered {other}: {resp:?}"),
            }
            thread::sleep(pause);
        }
        (acked, refused)
    })
}

#[test]
fn subscribers_of_a_node_killed_under_load_resume_on_the_others_with_nothing_lost_or_doubled() {
    let nats = Nats::start();
    let hubs = hubs(&nats, 3, "", "");
    let survivors = vec![hubs[0].addr, hubs[1].addr];
    let last = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let followers: Vec<_> = (0..6)
        .map(|_| {
            follower(
                survivors.clone(),
                subscribe(hubs[2].addr, "pdfm"),
                last.clone(),
                reconnects.clone(),
            )
        })
        .collect();
    let producer = publisher(survivors.clone(), 400, Duration::from_millis(2));
    wait_for("100 events on the victim", || {
        let m = api::metrics(hubs[2].addr);
        metric_value(&m, "eventhub_cluster_consumed_seq").unwrap_or(0) >= 100
    });
    hubs[2].signal(libc::SIGKILL);
    let (acked, _) = producer.join().unwrap();
    last.store(*acked.iter().max().unwrap(), SeqCst);
    let want: Vec<u64> = (1..=*acked.iter().max().unwrap()).collect();
    for f in followers {
        let got = f.join().unwrap();
        assert_eq!(got, want, "every event once, in order, across the move");
    }
    assert_eq!(reconnects.load(SeqCst), 6, "each subscriber moved once");
    let all: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(all.len(), 400, "every acknowledged seq is its own event");
}

#[test]
fn a_nats_restart_on_its_file_store_loses_no_acknowledged_event_and_subscribers_stay() {
    let mut nats = Nats::start();
    let hubs = hubs(&nats, 2, "", "");
    let (mut ws, _) = subscribe(hubs[1].addr, "pdfm");
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new((Vec::<u64>::new(), Vec::<Value>::new())));
    let reader = {
        let (done, received) = (done.clone(), received.clone());
        thread::spawn(move || {
            while !done.load(SeqCst) {
                match read_incoming(&mut ws) {
                    Ok(Incoming::Json(msg)) => {
                        let mut r = received.lock().unwrap();
                        match msg["seq"].as_u64() {
                            Some(s) => r.0.push(s),
                            None => r.1.push(msg),
                        }
                    }
                    Ok(Incoming::Close(c)) => panic!("the subscriber was closed: {c:?}"),
                    Err(e) => panic!("the subscriber's connection failed: {e}"),
                }
            }
        })
    };
    let producer = publisher(vec![hubs[0].addr], 150, Duration::from_millis(5));
    wait_for("50 events delivered", || {
        received.lock().unwrap().0.len() >= 50
    });
    nats.stop();
    // While it is down: publishes are refused with 503, the node says it is
    // degraded, the subscriber stays.
    wait_for("a 503 while NATS is down", || {
        post_events(hubs[1].addr, api::ADMIN_TOKEN, &event("pdfm", "x")).status == 503
    });
    let resp = post_events(hubs[1].addr, api::ADMIN_TOKEN, &event("pdfm", "down"));
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.json()["error"], "log_unreachable", "{resp:?}");
    assert!(resp.header("Retry-After").is_some());
    let h = health(hubs[1].addr);
    assert_eq!(h.status, 503, "{h:?}");
    assert_eq!(h.json()["status"], "degraded");
    thread::sleep(Duration::from_millis(500));
    nats.restart();
    // Its POSTs were held through the outage (sent again, same id) or
    // refused with 503 and retried: either way nothing acknowledged may be
    // lost.
    let (acked, _refused) = producer.join().unwrap();
    let top = *acked.iter().max().unwrap();
    wait_for("every acknowledged event delivered", || {
        received.lock().unwrap().0.last().is_some_and(|s| *s >= top)
    });
    done.store(true, SeqCst);
    // One more event wakes the reader so that it sees `done`.
    publish(hubs[0].addr, &event("pdfm", "last"));
    reader.join().unwrap();
    let (got, notices) = received.lock().unwrap().clone();
    let got_set: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(got_set.len(), got.len(), "no event twice");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    let lost: Vec<u64> = acked
        .iter()
        .filter(|s| !got_set.contains(s))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged and never delivered: {lost:?}"
    );
    let said: Vec<&str> = notices
        .iter()
        .filter_map(|n| n["body"]["event_log"].as_str())
        .collect();
    assert_eq!(said, ["unreachable", "reachable"], "{notices:?}");
    // The stream kept them: a new subscriber from the start gets them all.
    let (_, c) = subscribe(hubs[0].addr, "pdfm");
    let (mut again, _) = subscribe_as(
        hubs[0].addr,
        None,
        &format!(
            "/v1/ws/subscribe?event_types=pdfm&since=0&epoch={}",
            epoch(&c)
        ),
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    let (all, _) = read_events(&mut again, got.len());
    assert_eq!(seqs(&all), got);
    let m = api::metrics(hubs[1].addr);
    assert!(
        metric_value(&m, "eventhub_cluster_reconnects_total").unwrap() >= 1,
        "{m}"
    );
}

#[test]
fn a_stream_made_anew_is_a_new_epoch_and_subscribers_resume_with_a_gap() {
    let nats = Nats::start();
    let hubs = hubs(&nats, 2, "", "");
    let (mut ws, confirmation) = subscribe(hubs[1].addr, "pdfm");
    let old = epoch(&confirmation);
    for i in 0..5 {
        publish(hubs[0].addr, &event("pdfm", &format!("m{i}")));
    }
    read_events(&mut ws, 5);
    delete_stream(&nats.url(), "EVENTHUB");
    let close = loop {
        match read_incoming(&mut ws) {
            Ok(Incoming::Close(c)) => break c,
            Ok(Incoming::Json(_)) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    let (code, reason) = close.expect("a close code");
    assert_eq!(code, 1012, "{reason}");
    assert!(reason.contains("new epoch"), "{reason}");
    let new = reason
        .split_whitespace()
        .find_map(|w| {
            let w = w.trim_end_matches(';');
            (w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit())).then(|| w.to_string())
        })
        .unwrap_or_else(|| panic!("no epoch in {reason:?}"));
    assert_ne!(new, old);
    // Resuming with the old epoch: the new epoch, and an explicit gap.
    let (mut again, c) = subscribe_as(
        hubs[1].addr,
        None,
        &format!("/v1/ws/subscribe?event_types=pdfm&since=5&epoch={old}"),
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    assert_eq!(epoch(&c), new);
    let gap = read_json(&mut again);
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    assert_eq!(gap["body"]["restarted"], true, "{gap}");
    // Seqs start again at 1, on every node.
    let seqs = publish(hubs[0].addr, &event("pdfm", "fresh"));
    assert_eq!(seqs, [1]);
    let (events, _) = read_events(&mut again, 1);
    assert_eq!(events[0]["message"], "fresh");
    let m = api::metrics(hubs[0].addr);
    assert_eq!(
        metric_value(&m, "eventhub_cluster_new_epochs_total"),
        Some(1)
    );
}

/// Deletes a stream, as an operator would (with a NATS client of its own).
fn delete_stream(url: &str, name: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        js.delete_stream(name).await.expect("delete the stream");
    });
}

#[test]
fn a_hub_that_cannot_reach_nats_at_start_up_exits_to_be_restarted_with_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = format!(
        "{}\n[cluster]\nnats_url = \"nats://127.0.0.1:{port}\"\nconnect_timeout_s = 1\n",
        api::config()
    );
    let path = std::env::temp_dir().join(format!(
        "eventhub-cluster-noconn-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventhub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unreachable for now: restarted by the unit; {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cluster: cannot connect to NATS at nats://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn a_hub_connects_to_nats_with_a_token_over_tls_and_a_wrong_token_is_refused() {
    let ca = common::tls::TestCa::new("nats-test-ca");
    let files = common::tls::TlsFiles::new("cluster-nats-tls");
    let leaf = ca.server("127.0.0.1");
    let cert = files.write("nats-cert.pem", &leaf.chain_pem);
    let key = files.write("nats-key.pem", &leaf.key_pem);
    let ca_file = files.write("ca.pem", &ca.cert_pem);
    let (cert_s, key_s) = (common::tls::path_str(&cert), common::tls::path_str(&key));
    let nats = Nats::start_with(&[
        "--auth",
        "nats-secret-token",
        "--tls",
        "--tlscert",
        &cert_s,
        "--tlskey",
        &key_s,
    ]);
    let ca_s = common::tls::path_str(&ca_file);
    let good = Server::hub(
        2,
        &config(
            &nats,
            "",
            &format!("token = \"nats-secret-token\"\ntls_ca = \"{ca_s}\""),
        ),
    );
    let seqs = publish(good.addr, &event("pdfm", "over tls"));
    assert_eq!(seqs, [1]);
    let cfg = config(
        &nats,
        "",
        &format!("token = \"wrong-token\"\ntls_ca = \"{ca_s}\""),
    );
    let path = files.write("wrong.toml", &cfg);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventhub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a refusal is the config's: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused the hub: authorization violation"),
        "{stderr}"
    );
}

#[test]
fn an_event_larger_than_nats_takes_is_refused_with_413_and_the_node_stays_connected() {
    let dir = std::env::temp_dir().join(format!("eventhub-nats-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("small.conf");
    std::fs::write(&conf, "max_payload: 8192\n").unwrap();
    let nats = Nats::start_with(&["-c", conf.to_str().unwrap()]);
    let hub = Server::hub(2, &config(&nats, "", ""));
    let (mut ws, _) = subscribe(hub.addr, "pdfm");
    let big = serde_json::json!({"event_type": "pdfm", "message": "big", "body": {"pad": "x".repeat(9000)}});
    let resp = post_events(hub.addr, api::ADMIN_TOKEN, &big.to_string());
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(resp.json()["error"], "payload_too_large");
    // The connection to NATS was not put at risk: the next one goes through.
    assert_eq!(publish(hub.addr, &event("pdfm", "small")), [1]);
    let (events, others) = read_events(&mut ws, 1);
    assert_eq!(events[0]["message"], "small");
    assert!(others.is_empty(), "no notice of an outage: {others:?}");
    assert!(hub
        .log_text()
        .contains("max_payload (8192 bytes) is below limits.max_body_bytes"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_publisher_socket_burst_waits_for_the_streams_acks_and_loses_nothing() {
    let nats = Nats::start();
    // A small window of acks: the burst below is five times it.
    let hub = Server::hub(2, &config(&nats, "", "max_acks_pending = 400"));
    let (mut reader, _) = subscribe(hub.addr, "pdfm");
    let mut publisher = common::ws_connect_with(
        hub.addr,
        None,
        "/v1/ws/publish",
        &[("Authorization", &bearer(api::ADMIN_TOKEN))],
    );
    let mut burst = Vec::new();
    for m in 0..40 {
        let events: Vec<String> = (0..50)
            .map(|i| event("pdfm", &format!("b{m}-{i}")))
            .collect();
        burst.push(format!("[{}]", events.join(",")));
    }
    // Written at once, without reading anything back.
    for message in &burst {
        publisher
            .write(tungstenite::Message::text(message.clone()))
            .unwrap();
    }
    publisher.flush().unwrap();
    let (events, others) = read_events(&mut reader, 2000);
    assert_eq!(seqs(&events), (1..=2000).collect::<Vec<_>>());
    assert!(others.is_empty(), "{others:?}");
    // Nothing came back on the publisher socket: no event was refused.
    publisher
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match publisher.read() {
        Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the publisher was told something: {other:?}"),
    }
}
