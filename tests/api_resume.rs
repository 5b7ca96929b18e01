//! Resuming at the edges: a replay larger than the send queue is fed at
//! the reader's pace and delivered whole; a `since` from an earlier run of
//! the hub (a restart) is announced, never answered with the new run's
//! seqs as if nothing happened; the replay ring is bounded by bytes; and a
//! slow consumer's 1013 names a resume point its endpoint accepts, which
//! gives exactly what it missed.
//!
//! Each test runs against a real `eventhub serve` process (the restart
//! test, two in turn on one port), over real sockets. Every wait is
//! bounded by the harness's timeout; no test asserts on timing. "Did not
//! receive X" is shown by ordering: a marker published after X must come
//! first.

mod common;

use std::time::Instant;

use serde_json::{json, Value};

use common::api::{
    bearer, config, config_with, metrics, post_events, publish, subscribe, Ws, ADMIN_TOKEN,
};
use common::{
    drain_after_close, metric_sum, read_incoming, read_json, seq, ws_connect_rcvbuf,
    ws_connect_with, Incoming, Server,
};

/// `n` pdfm events of about `size` bytes each, messages `{tag}-{k}`.
fn padded_events(tag: &str, first: usize, n: usize, size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(160));
    let evs: Vec<Value> = (first..first + n)
        .map(|k| json!({"event_type": "pdfm", "message": format!("{tag}-{k}"), "body": {"pad": pad}}))
        .collect();
    Value::Array(evs).to_string()
}

/// Reads events until `last` (by seq), asserting each is the next seq
/// after `after`; returns how many were read.
fn read_contiguous(ws: &mut Ws, after: u64, last: u64) -> u64 {
    let mut want = after + 1;
    while want <= last {
        let got = read_json(ws);
        assert_eq!(
            got["seq"].as_u64(),
            Some(want),
            "expected seq {want}: {got}"
        );
        want += 1;
    }
    last - after
}

// ---------------------------------------------------------------------------
// 1. A replay larger than the send queue
// ---------------------------------------------------------------------------

#[test]
fn a_resume_over_the_whole_default_ring_is_delivered_whole_once_in_order() {
    // The default ring (10,000 events) and send queue (4 MiB): 10,000
    // events of ~500 B are ~5 MB, more than the queue.
    let server = Server::hub(1, &config());
    let addr = server.addr;
    for k in 0..10 {
        let seqs = publish(addr, &padded_events("old", k * 1000, 1000, 500));
        assert_eq!(seqs.len(), 1000);
    }
    let started = Instant::now();
    let (mut ws, _) = subscribe(addr, "pdfm&since=0");
    // A live event before the client reads anything: the queue holds the
    // replay's first slices now.
    assert_eq!(
        publish(addr, &padded_events("live", 0, 1, 500)),
        vec![10_001]
    );
    let n = read_contiguous(&mut ws, 0, 10_001);
    let took = started.elapsed();
    assert_eq!(
        publish(addr, &padded_events("next", 0, 1, 500)),
        vec![10_002]
    );
    let got = read_json(&mut ws);
    assert_eq!(got["seq"], 10_002, "no duplicate before it: {got}");
    eprintln!("resume over {n} events (~500 B each) delivered whole in {took:?}");
    let text = metrics(addr);
    assert_eq!(
        metric_sum(&text, "eventhub_slow_consumer_closes_total"),
        0,
        "{text}"
    );
}

#[test]
fn a_resume_while_events_keep_coming_on_two_cores_hands_over_to_live_without_gap_or_duplicate() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    for k in 0..5 {
        publish(addr, &padded_events("old", k * 1000, 1000, 500));
    }
    // A publisher keeps going while the client replays and goes live.
    let publisher = std::thread::spawn(move || {
        let mut last = 0;
        for k in 0..100 {
            last = *publish(addr, &padded_events("during", k * 20, 20, 500))
                .last()
                .unwrap();
        }
        last
    });
    let (mut ws, _) = subscribe(addr, "pdfm&since=100");
    let mut want = 101;
    let last = loop {
        let got = read_json(&mut ws);
        assert_eq!(got["seq"].as_u64(), Some(want), "{got}");
        // 5,000 before and 2,000 during: the last one is 7,000 (the
        // publisher may see its answer after the subscriber saw the event).
        if want == 7000 {
            break want;
        }
        want += 1;
    };
    assert_eq!(publisher.join().unwrap(), last);
    let next = publish(addr, &padded_events("next", 0, 1, 500))[0];
    assert_eq!(seq(&read_json(&mut ws)), next, "no duplicate before it");
}

#[test]
fn a_replay_that_falls_out_of_the_ring_says_so_where_it_does_and_goes_on() {
    let server = Server::hub(
        1,
        &config_with(
            "replay_size = 200",
            "send_queue_bytes = 65536\nsocket_send_buffer_bytes = 4096",
        ),
    );
    let addr = server.addr;
    publish(addr, &padded_events("old", 0, 200, 4000));
    let auth = bearer(ADMIN_TOKEN);
    let mut ws = ws_connect_rcvbuf(
        addr,
        None,
        4096,
        "/v1/ws/subscribe?event_types=pdfm&since=0",
        &[("Authorization", &auth)],
    );
    // It reads nothing while 400 more pass through the ring of 200.
    for k in 0..4 {
        publish(addr, &padded_events("new", k * 100, 100, 4000));
    }
    assert_eq!(read_json(&mut ws)["event_type"], "global");
    let mut want = 1;
    let mut gaps = 0;
    while want <= 600 {
        let got = read_json(&mut ws);
        if got["message"] == "replay-gap" {
            assert_eq!(got["body"]["missed_from"], want, "{got}");
            want = got["body"]["missed_to"].as_u64().unwrap() + 1;
            gaps += 1;
            continue;
        }
        assert_eq!(got["seq"].as_u64(), Some(want), "{got}");
        want += 1;
    }
    // At least one gap, each where the ring lost what it had not reached
    // (a second one when the socket drained a little while the ring
    // turned over), and every other event once, in order.
    assert!(gaps >= 1, "the ring lost events the replay had not reached");
    let next = publish(addr, &padded_events("next", 0, 1, 500))[0];
    assert_eq!(seq(&read_json(&mut ws)), next);
}

#[test]
fn a_resuming_client_that_does_not_read_holds_about_half_the_queue_bound() {
    // A replay is fed as the client drains: one that never reads pins
    // about half the queue bound (plus the socket's buffers), not the ring.
    let server = Server::hub(1, &config_with("", "socket_send_buffer_bytes = 4096"));
    let addr = server.addr;
    for k in 0..10 {
        publish(addr, &padded_events("old", k * 1000, 1000, 500));
    }
    let auth = bearer(ADMIN_TOKEN);
    let _stalled = ws_connect_rcvbuf(
        addr,
        None,
        4096,
        "/v1/ws/subscribe?event_types=pdfm&since=0",
        &[("Authorization", &auth)],
    );
    // Live events meanwhile do not close it: they are in the ring.
    publish(addr, &padded_events("live", 0, 100, 500));
    let mut queued = 0;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        queued = metric_sum(&metrics(addr), "eventhub_queue_bytes");
        if queued > 0 {
            break;
        }
    }
    let text = metrics(addr);
    assert_eq!(
        metric_sum(&text, "eventhub_slow_consumer_closes_total"),
        0,
        "a resuming client is not closed for its replay"
    );
    assert!(queued > 0, "the gauge shows the replay's queue");
    assert!(
        queued <= 4_194_304 / 2 + 64 * 1024,
        "queued {queued} bytes: more than half the 4 MiB bound"
    );
    eprintln!("a non-reading resumer over 10,000 events holds {queued} bytes queued");
}

// ---------------------------------------------------------------------------
// 2. Epochs: a restart is announced
// ---------------------------------------------------------------------------

#[test]
fn a_since_from_before_a_restart_gets_a_replay_gap_saying_the_hub_restarted() {
    let first = Server::hub(1, &config());
    let addr = first.addr;
    let (mut ws, confirmation) = subscribe(addr, "pdfm");
    let old_confirmation = confirmation;
    for k in 1..=3 {
        publish(addr, &padded_events("a", k, 1, 200));
    }
    read_contiguous(&mut ws, 0, 3);
    drop(ws);
    // SIGKILL: a crash, then a new run of the hub on the same port, as a
    // supervisor restarts it.
    drop(first);
    let second = Server::hub_at(addr, 1, &config());
    assert_eq!(second.addr, addr);
    assert_eq!(publish(addr, &padded_events("b", 1, 1, 200)), vec![1]);

    // since without epoch, beyond this run's last seq.
    let (mut ws, confirmation) = subscribe(addr, "pdfm&since=2");
    let gap = read_json(&mut ws);
    assert_eq!(gap["event_type"], "system", "{gap}");
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    assert_eq!(gap["body"]["restarted"], true, "{gap}");
    assert_eq!(gap["body"]["since"], 2, "{gap}");
    assert!(
        gap["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("hub restarted"),
        "{gap}"
    );
    let got = read_json(&mut ws);
    assert_eq!(
        (seq(&got), got["message"].as_str()),
        (1, Some("b-1")),
        "{got}"
    );
    drop(ws);
    let epoch = |c: &Value| {
        c["body"]["epoch"]
            .as_str()
            .unwrap_or_else(|| panic!("the confirmation carries the epoch: {c}"))
            .to_string()
    };
    let (old_epoch, new_epoch) = (epoch(&old_confirmation), epoch(&confirmation));
    assert_eq!(old_epoch.len(), 16, "{old_confirmation}");
    assert_ne!(new_epoch, old_epoch, "each run has its own epoch");

    // since with the old epoch, within this run's seqs: still announced.
    let (mut ws, _) = subscribe(addr, &format!("pdfm&since=1&epoch={old_epoch}"));
    let gap = read_json(&mut ws);
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    assert_eq!(gap["body"]["client_epoch"], old_epoch.as_str(), "{gap}");
    assert_eq!(seq(&read_json(&mut ws)), 1);
    drop(ws);

    // since with the current epoch: nothing at or below since, no gap.
    let (mut ws, _) = subscribe(addr, &format!("pdfm&since=1&epoch={new_epoch}"));
    assert_eq!(publish(addr, &padded_events("b", 2, 1, 200)), vec![2]);
    let got = read_json(&mut ws);
    assert_eq!(
        (seq(&got), got["message"].as_str()),
        (2, Some("b-2")),
        "{got}"
    );

    // A malformed epoch is a 400 naming it.
    let resp =
        common::api::upgrade_as_admin(addr, "/v1/ws/subscribe?event_types=pdfm&since=1&epoch=nope");
    assert_eq!(resp.status, 400, "{resp:?}");
    assert!(resp.body.contains("epoch"), "{resp:?}");
}

// ---------------------------------------------------------------------------
// 3. The ring is bounded by bytes
// ---------------------------------------------------------------------------

#[test]
fn the_replay_ring_is_bounded_by_bytes_and_a_resume_says_what_it_lost() {
    let server = Server::hub(1, &config_with("replay_max_bytes = 16384", ""));
    let addr = server.addr;
    publish(addr, &padded_events("e", 1, 100, 500));
    let (mut ws, _) = subscribe(addr, "pdfm&since=0");
    let gap = read_json(&mut ws);
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    assert_eq!(gap["body"]["missed_from"], 1, "{gap}");
    let missed_to = gap["body"]["missed_to"].as_u64().unwrap();
    // 16 KiB holds about 32 events of 500 B.
    assert!((60..=75).contains(&missed_to), "{gap}");
    read_contiguous(&mut ws, missed_to, 100);
}

// ---------------------------------------------------------------------------
// 4. The 1013 reason names a resume point the endpoint accepts
// ---------------------------------------------------------------------------

/// Limits under which a client that stops reading is closed quickly and
/// only by the queue bound.
const SLOW_LIMITS: &str = "send_queue_bytes = 65536\nsocket_send_buffer_bytes = 4096\n\
    write_timeout_s = 120\nclose_timeout_s = 120\nidle_timeout_s = 600\nping_interval_s = 300";

/// Publishes `batch(round)` until the hub counts a slow-consumer close;
/// returns the number of rounds published.
fn publish_until_closed(addr: std::net::SocketAddr, batch: impl Fn(u64) -> String) -> u64 {
    for round in 0..2000u64 {
        let resp = post_events(addr, ADMIN_TOKEN, &batch(round));
        assert_eq!(resp.status, 202, "{resp:?}");
        if metric_sum(&metrics(addr), "eventhub_slow_consumer_closes_total") > 0 {
            return round + 1;
        }
    }
    panic!("no slow-consumer close");
}

/// Reads what the socket holds, then the 1013; returns the messages and
/// the resume query the reason names (`since=..&epoch=..` or
/// `since_seq=..&epoch=..`).
fn read_to_1013(ws: &mut Ws) -> (Vec<Value>, String) {
    let mut got = Vec::new();
    let reason = loop {
        match read_incoming(ws) {
            Ok(Incoming::Json(v)) => got.push(v),
            Ok(Incoming::Close(Some((code, reason)))) => {
                assert_eq!(code, 1013, "{reason}");
                break reason;
            }
            other => panic!("expected events then 1013, got {other:?}"),
        }
    };
    drain_after_close(ws);
    let query = reason
        .split("reconnect with ")
        .nth(1)
        .unwrap_or_else(|| panic!("no resume point in {reason:?}"))
        .to_string();
    assert!(reason.len() <= 123, "{reason}");
    (got, query)
}

#[test]
fn a_slow_subscriber_resumes_from_its_1013_reason_with_exactly_what_it_missed() {
    let server = Server::hub(1, &config_with("", SLOW_LIMITS));
    let addr = server.addr;
    // Events before it subscribed: not its own to resume.
    publish(addr, &padded_events("before", 0, 5, 200));
    let auth = bearer(ADMIN_TOKEN);
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let mut slow = ws_connect_rcvbuf(addr, None, 4096, path, &[("Authorization", &auth)]);
    publish_until_closed(addr, |round| {
        padded_events("big", round as usize * 4, 4, 4000)
    });
    let (got, query) = read_to_1013(&mut slow);
    let confirmation = &got[0];
    assert_eq!(confirmation["event_type"], "global");
    let seqs: Vec<u64> = got[1..].iter().map(seq).collect();
    let last_got = *seqs.last().unwrap_or(&5);
    assert_eq!(seqs, (6..=last_got).collect::<Vec<_>>());
    assert!(
        query.starts_with(&format!("since={last_got}&epoch=")),
        "{query}"
    );
    let marker = publish(addr, &padded_events("marker", 0, 1, 200))[0];
    let (mut resumed, _) = common::api::subscribe_as(
        addr,
        None,
        &format!("{path}&{query}"),
        &[("Authorization", &auth)],
    );
    read_contiguous(&mut resumed, last_got, marker);
}

/// A Docker-shaped container event named `name`, with `pad` bytes of label.
fn container_event(name: &str, time: u64, pad: usize) -> Value {
    json!({"event_type": "container", "body": {
        "id": format!("{name}0123456789"), "Type": "container", "Action": "start",
        "Actor": {"ID": format!("{name}0123456789"), "Attributes": {
            "name": name, "image": "busybox:latest", "pad": "x".repeat(pad)}},
        "time": time}})
}

#[test]
fn a_slow_events_ws_client_resumes_from_its_1013_reason_with_exactly_what_it_missed() {
    let server = Server::hub(1, &config_with("", SLOW_LIMITS));
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let names = |round: u64| (0..4).map(move |k| format!("c{}", round * 4 + k));
    let mut slow = ws_connect_rcvbuf(addr, None, 4096, "/events/ws", &[("Authorization", &auth)]);
    let rounds = publish_until_closed(addr, |round| {
        let evs: Vec<Value> = names(round)
            .map(|n| container_event(&n, 1_700_000_000 + round, 4000))
            .collect();
        Value::Array(evs).to_string()
    });
    let published: Vec<String> = (0..rounds).flat_map(names).collect();
    let (got, query) = read_to_1013(&mut slow);
    let got: Vec<String> = got
        .iter()
        .map(|v| {
            v["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, published[..got.len()], "in order, from the first");
    publish(
        addr,
        &container_event("marker", 1_800_000_000, 10).to_string(),
    );
    let mut resumed = ws_connect_with(
        addr,
        None,
        &format!("/events/ws?{query}"),
        &[("Authorization", &auth)],
    );
    let mut rest = Vec::new();
    loop {
        let v = read_json(&mut resumed);
        let name = v["Actor"]["Attributes"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        if name == "marker" {
            break;
        }
        rest.push(name);
    }
    // Exactly the events published after the last one it had, none twice.
    eprintln!(
        "events_ws: {} published, {} before the 1013, {} on resume ({query})",
        published.len(),
        got.len(),
        rest.len()
    );
    assert_eq!(rest, published[got.len()..], "the missed events ({query})");
    assert!(query.starts_with("since_seq="), "{query}");
    assert!(query.contains("&epoch="), "{query}");
}

#[test]
fn a_burst_closing_a_subscriber_before_any_event_was_sent_names_where_it_started() {
    // One batch larger than the queue, to a subscriber that does not read
    // and whose socket holds less than one of its events: the close comes
    // before any event of it is written whole, so the resume point is
    // where the subscription started (seq 5), not 0 (the whole ring, and
    // events from before it).
    let server = Server::hub(1, &config_with("", SLOW_LIMITS));
    let addr = server.addr;
    publish(addr, &padded_events("before", 0, 5, 200));
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let auth = bearer(ADMIN_TOKEN);
    let mut ws = ws_connect_rcvbuf(addr, None, 4096, path, &[("Authorization", &auth)]);
    // Its confirmation, read before the burst.
    assert_eq!(read_json(&mut ws)["event_type"], "global");
    assert_eq!(
        publish(addr, &padded_events("burst", 0, 3, 200_000)),
        (6..=8).collect::<Vec<_>>()
    );
    let (got, query) = read_to_1013(&mut ws);
    assert!(got.is_empty(), "{got:?}");
    assert!(query.starts_with("since=5&epoch="), "{query}");
    let (mut resumed, _) = common::api::subscribe_as(
        addr,
        None,
        &format!("{path}&{query}"),
        &[("Authorization", &auth)],
    );
    read_contiguous(&mut resumed, 5, 8);
}

#[test]
fn a_burst_closing_an_events_ws_client_before_any_event_was_sent_names_where_it_started() {
    let server = Server::hub(1, &config_with("", SLOW_LIMITS));
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let batch = |tag: &str, n: usize, pad: usize| {
        let evs: Vec<Value> = (0..n)
            .map(|k| container_event(&format!("{tag}{k}"), 1_700_000_000, pad))
            .collect();
        Value::Array(evs).to_string()
    };
    publish(addr, &batch("before", 5, 10));
    let mut ws = ws_connect_rcvbuf(addr, None, 4096, "/events/ws", &[("Authorization", &auth)]);
    // (The hub opens the subscription before it answers the upgrade.)
    publish(addr, &batch("burst", 3, 200_000));
    let (got, query) = read_to_1013(&mut ws);
    assert!(got.is_empty(), "{got:?}");
    assert!(query.starts_with("since_seq=5&epoch="), "{query}");
    publish(addr, &batch("marker", 1, 10));
    let mut resumed = ws_connect_with(
        addr,
        None,
        &format!("/events/ws?{query}"),
        &[("Authorization", &auth)],
    );
    let names: Vec<String> = (0..4)
        .map(|_| {
            read_json(&mut resumed)["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (0..3)
        .map(|k| format!("burst{k}"))
        .chain(["marker0".to_string()])
        .collect();
    assert_eq!(names, want);
}

#[test]
fn bad_resume_parameters_are_400_naming_them() {
    let server = Server::hub(1, &config());
    for (path, names) in [
        (
            "/v1/ws/subscribe?event_types=pdfm&since=1&epoch=xyz",
            "epoch",
        ),
        (
            "/v1/ws/subscribe?event_types=pdfm&epoch=0123456789abcdef",
            "epoch needs since",
        ),
        ("/events/ws?since_seq=-1", "since_seq"),
        ("/events/ws?since_seq=3&epoch=nothex", "epoch"),
        ("/events/ws?epoch=0123456789abcdef", "epoch needs since_seq"),
    ] {
        let resp = common::api::upgrade_as_admin(server.addr, path);
        assert_eq!(resp.status, 400, "{path}: {resp:?}");
        let body = resp.json();
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{path}: {body}"
        );
    }
}

#[test]
fn a_subscriber_dropped_before_its_first_event_resumes_from_the_confirmations_last_seq() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    publish(addr, &padded_events("before", 0, 3, 200));
    let (ws, confirmation) = subscribe(addr, "pdfm");
    assert_eq!(confirmation["body"]["last_seq"], 3, "{confirmation}");
    let epoch = confirmation["body"]["epoch"].as_str().unwrap().to_string();
    drop(ws);
    // Published while no subscriber was connected: the resume gets them.
    assert_eq!(publish(addr, &padded_events("away", 0, 2, 200)), vec![4, 5]);
    let (mut ws, resumed) = subscribe(addr, &format!("pdfm&since=3&epoch={epoch}"));
    assert_eq!(
        resumed["body"]["last_seq"], 3,
        "a resume starts after its since"
    );
    let got: Vec<(u64, String)> = (0..2)
        .map(|_| {
            let e = read_json(&mut ws);
            (seq(&e), e["message"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(got, vec![(4, "away-0".into()), (5, "away-1".into())]);
}
