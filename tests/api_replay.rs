//! The hub API's replay: `since` replays later events in order before
//! live ones, and a `since` beyond the replay ring gets a `replay-gap`
//! message first.
//!
//! Each test runs against a real `eventhub serve` process that the shared
//! harness (`tests/common`) starts, over real sockets: HTTP requests and
//! WebSocket connections on the loopback interface.
//!
//! Every wait is bounded by the harness's generous timeout; no test asserts
//! on timing. "Did not receive X" is shown by ordering, not by waiting: an
//! event the client should not get is published before a marker it should
//! get, and the marker must come first (every core delivers in `seq`
//! order).

mod common;

use common::api::{config_with, event, hub, metrics, publish, subscribe};
use common::{metric_value, read_json, Server};

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[test]
fn since_replays_later_events_in_order_before_live_ones_without_duplicates() {
    let server = hub();
    let addr = server.addr;
    let mut seqs = Vec::new();
    for i in 1..=5 {
        seqs.extend(publish(addr, &event("pdfm", &format!("e{i}"))));
    }
    // An event on a channel it does not subscribe to is not replayed.
    publish(addr, &event("alerts", "not-mine"));
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let (mut ws, _) = subscribe(addr, "pdfm&since=2");
    for (seq, message) in [(3, "e3"), (4, "e4"), (5, "e5")] {
        let got = read_json(&mut ws);
        assert_eq!(got["seq"], seq, "{got}");
        assert_eq!(got["message"], message, "{got}");
    }
    let live = publish(addr, &event("pdfm", "live"));
    assert_eq!(live, vec![7]);
    let got = read_json(&mut ws);
    assert_eq!(
        (got["seq"].as_u64(), got["message"].as_str()),
        (Some(7), Some("live")),
        "{got}"
    );
    let next = publish(addr, &event("pdfm", "next"));
    let got = read_json(&mut ws);
    assert_eq!(
        got["seq"].as_u64(),
        Some(next[0]),
        "no duplicate before it: {got}"
    );
    let text = metrics(addr);
    assert!(
        metric_value(&text, "eventhub_replayed_events_total").is_some_and(|n| n >= 3),
        "{text}"
    );
}

#[test]
fn since_beyond_the_ring_gets_a_replay_gap_message_then_the_rest() {
    let server = Server::hub(1, &config_with("replay_size = 3", ""));
    let addr = server.addr;
    for i in 1..=5 {
        publish(addr, &event("pdfm", &format!("e{i}")));
    }
    let (mut ws, _) = subscribe(addr, "pdfm&since=0");
    let gap = read_json(&mut ws);
    assert_eq!(gap["event_type"], "system", "{gap}");
    assert_eq!(gap["message"], "replay-gap", "{gap}");
    assert_eq!(gap["body"]["since"], 0, "{gap}");
    assert_eq!(gap["body"]["missed_from"], 1, "{gap}");
    assert_eq!(gap["body"]["missed_to"], 2, "{gap}");
    assert_eq!(gap["body"]["last_seq"], 5, "{gap}");
    assert!(gap["body"]["reason"].is_string(), "{gap}");
    for seq in 3..=5 {
        let got = read_json(&mut ws);
        assert_eq!(got["seq"], seq, "{got}");
    }
    publish(addr, &event("pdfm", "live"));
    let got = read_json(&mut ws);
    assert_eq!(
        (got["seq"].as_u64(), got["message"].as_str()),
        (Some(6), Some("live")),
        "{got}"
    );
}
