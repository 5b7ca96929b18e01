//! The hub API's publishing: `POST /v1/events` (ids, seqs, arrays, which
//! subscribers receive what, malformed and oversized bodies) and the
//! publisher WebSocket (`/v1/ws/publish`, with and without acks).
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

use std::net::SocketAddr;

use serde_json::{json, Value};

use common::api::{
    assert_error, bearer, config_with, event, hub, is_event, is_hex64, is_rfc3339_micros_utc,
    pairs, post_events, publish, read_until, subscribe, Ws, ADMIN_TOKEN, ALL_CHANNELS,
};
use common::{http_request, read_json, send_text, ws_connect_with, Server};

// ---------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------

#[test]
fn publish_is_202_with_increasing_ids_and_seqs() {
    let server = hub();
    let mut last_seq = 0;
    let mut seen_ids = std::collections::HashSet::new();
    for i in 0..3 {
        let resp = post_events(server.addr, ADMIN_TOKEN, &event("pdfm", &format!("m{i}")));
        assert_eq!(resp.status, 202, "{resp:?}");
        let body = resp.json();
        assert_eq!(body["accepted"], 1, "{body}");
        let ev = &body["events"][0];
        let seq = ev["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "seq {seq} after {last_seq}");
        last_seq = seq;
        let id = ev["id"].as_str().unwrap();
        assert!(is_hex64(id), "{id}");
        assert!(seen_ids.insert(id.to_string()), "id {id} repeated");
    }
    // Under /api too.
    let resp = http_request(
        server.addr,
        None,
        "POST",
        "/api/v1/events",
        &[("Authorization", &bearer(ADMIN_TOKEN))],
        event("pdfm", "m3").as_bytes(),
    );
    assert_eq!(resp.status, 202, "{resp:?}");
    assert_eq!(resp.json()["events"][0]["seq"], last_seq + 1);
}

#[test]
fn subscribers_receive_exactly_the_events_of_their_channels() {
    let server = hub();
    let addr = server.addr;
    let (mut pdfm, _) = subscribe(addr, "pdfm");
    let (mut alerts, _) = subscribe(addr, "alerts");
    let (mut both, _) = subscribe(addr, "pdfm,alerts,orchestrator");
    let batch = format!(
        "[{},{},{},{},{}]",
        event("pdfm", "p1"),
        event("orchestrator", "o1"),
        event("alerts", "a1"),
        event("pdfm", "x"),
        event("alerts", "a2"),
    );
    publish(addr, &batch);
    // Sent separately, so that the order across requests shows as well.
    let seqs = publish(
        addr,
        &json!({"event_type":"global","message":"end","body":{"k":[1,2]}}).to_string(),
    );
    let end = |m: &Value| is_event(m, "global", "end");
    let got = pairs(&read_until(&mut pdfm, end));
    let p = |c: &str, m: &str| (c.to_string(), m.to_string());
    assert_eq!(
        got,
        vec![p("pdfm", "p1"), p("pdfm", "x"), p("global", "end")]
    );
    let got = pairs(&read_until(&mut alerts, end));
    assert_eq!(
        got,
        vec![p("alerts", "a1"), p("alerts", "a2"), p("global", "end")]
    );
    let got = read_until(&mut both, end);
    assert_eq!(
        pairs(&got),
        vec![
            p("pdfm", "p1"),
            p("orchestrator", "o1"),
            p("alerts", "a1"),
            p("pdfm", "x"),
            p("alerts", "a2"),
            p("global", "end"),
        ]
    );
    // The event envelope.
    let last = got.last().unwrap();
    assert_eq!(last["seq"], seqs[0]);
    assert_eq!(last["body"], json!({"k":[1,2]}));
    assert!(is_hex64(last["id"].as_str().unwrap()), "{last}");
    assert!(
        is_rfc3339_micros_utc(last["timestamp"].as_str().unwrap()),
        "{last}"
    );
    let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
}

#[test]
fn an_array_body_publishes_every_event_in_order() {
    let server = hub();
    let (mut ws, _) = subscribe(server.addr, "pdfm");
    let body = json!([
        {"event_type":"pdfm","message":"a","body":{"n":1}},
        {"event_type":"pdfm","message":"b","body":"text"},
        {"event_type":"pdfm","message":"c"},
    ])
    .to_string();
    let resp = post_events(server.addr, ADMIN_TOKEN, &body);
    assert_eq!(resp.status, 202, "{resp:?}");
    let answer = resp.json();
    assert_eq!(answer["accepted"], 3);
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    for (i, (message, body)) in [
        ("a", json!({"n":1})),
        ("b", json!("text")),
        ("c", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let got = read_json(&mut ws);
        assert_eq!(got["message"], message, "{got}");
        assert_eq!(got["body"], body, "{got}");
        assert_eq!(got["id"], events[i]["id"], "{got}");
        assert_eq!(got["seq"], events[i]["seq"], "{got}");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![seqs[0], seqs[0] + 1, seqs[0] + 2]);
}

/// Publishing still works end to end: a new event reaches a new subscriber.
fn assert_hub_still_serves(addr: SocketAddr) {
    let (mut ws, _) = subscribe(addr, "pdfm");
    let seqs = publish(addr, &event("pdfm", "still-alive"));
    let got = read_json(&mut ws);
    assert!(is_event(&got, "pdfm", "still-alive"), "{got}");
    assert_eq!(got["seq"], seqs[0]);
}

#[test]
fn malformed_publish_bodies_get_400_naming_the_problem() {
    let server = Server::hub(1, &config_with("max_events_per_request = 3", ""));
    let four = format!("[{0},{0},{0},{0}]", event("pdfm", "m"));
    let cases: [(&str, &str); 11] = [
        ("{nope", "not valid JSON"),
        ("", "not valid JSON"),
        (r#"{"message":"m"}"#, "missing field `event_type`"),
        (r#"{"event_type":5}"#, "expected a string"),
        (
            r#"{"event_type":"pdfm","colour":1}"#,
            "unknown field `colour`",
        ),
        (r#"{"event_type":"nope"}"#, "unknown channel \"nope\""),
        (r#"{"event_type":"system"}"#, "reserved"),
        (r#"{"event_type":"health"}"#, "reserved"),
        ("[]", "empty"),
        (&four, "4 events in one request; at most 3"),
        ("42", "event object or an array"),
    ];
    for (body, expected) in cases {
        let resp = post_events(server.addr, ADMIN_TOKEN, body);
        let answer = assert_error(&resp, 400, "invalid_event");
        let msg = answer["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "body {body:?}: {msg:?} lacks {expected:?}"
        );
    }
    // The unknown-channel message lists the valid ones.
    let resp = post_events(server.addr, ADMIN_TOKEN, r#"{"event_type":"nope"}"#);
    assert!(resp.json()["message"]
        .as_str()
        .unwrap()
        .contains(ALL_CHANNELS));
    // Nothing refused was sequenced.
    let seqs = publish(server.addr, &event("pdfm", "first"));
    assert_eq!(seqs, vec![1]);
    assert_hub_still_serves(server.addr);
}

#[test]
fn body_over_max_body_bytes_is_413_and_the_hub_goes_on() {
    let server = Server::hub(1, &config_with("", "max_body_bytes = 1024"));
    let big =
        json!({"event_type":"pdfm","message":"big","body":{"pad":"x".repeat(2000)}}).to_string();
    let resp = post_events(server.addr, ADMIN_TOKEN, &big);
    assert_error(&resp, 413, "payload_too_large");
    // Just under the limit is fine.
    let fits =
        json!({"event_type":"pdfm","message":"fits","body":{"pad":"x".repeat(900)}}).to_string();
    assert!(fits.len() <= 1024);
    assert_eq!(post_events(server.addr, ADMIN_TOKEN, &fits).status, 202);
    assert_hub_still_serves(server.addr);
}

// ---------------------------------------------------------------------------
// The publisher WebSocket
// ---------------------------------------------------------------------------

fn publisher(addr: SocketAddr, query: &str) -> Ws {
    ws_connect_with(
        addr,
        None,
        &format!("/v1/ws/publish{query}"),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
    )
}

#[test]
fn publisher_socket_reports_invalid_messages_and_goes_on() {
    let server = hub();
    let (mut sub, _) = subscribe(server.addr, "pdfm");
    let mut publ = publisher(server.addr, "");
    send_text(&mut publ, &event("pdfm", "ws-1"));
    assert!(is_event(&read_json(&mut sub), "pdfm", "ws-1"));

    for (bad, expected) in [
        (r#"{"event_type":"nope"}"#, "unknown channel"),
        ("not json", "not valid JSON"),
        (
            r#"{"event_type":"pdfm","extra":1}"#,
            "unknown field `extra`",
        ),
    ] {
        send_text(&mut publ, bad);
        let err = read_json(&mut publ);
        assert_eq!(err["event_type"], "system", "{err}");
        assert_eq!(err["message"], "error", "{err}");
        assert_eq!(err["body"]["error"], "invalid_event", "{err}");
        let msg = err["body"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{bad:?}: {msg:?}");
    }

    send_text(&mut publ, &event("pdfm", "ws-2"));
    let got = read_json(&mut sub);
    assert!(
        is_event(&got, "pdfm", "ws-2"),
        "the next valid one still works: {got}"
    );
}

#[test]
fn publisher_socket_with_ack_returns_ids_and_seqs() {
    let server = hub();
    let (mut sub, _) = subscribe(server.addr, "pdfm,alerts");
    let mut publ = publisher(server.addr, "?ack=true");
    send_text(
        &mut publ,
        &format!("[{},{}]", event("pdfm", "a"), event("alerts", "b")),
    );
    let ack = read_json(&mut publ);
    assert_eq!(ack["message"], "published", "{ack}");
    let events = ack["body"]["events"].as_array().expect("body.events");
    assert_eq!(events.len(), 2, "{ack}");
    for (i, message) in ["a", "b"].into_iter().enumerate() {
        let got = read_json(&mut sub);
        assert_eq!(got["message"], message, "{got}");
        assert_eq!(got["id"], events[i]["id"], "{got} vs {ack}");
        assert_eq!(got["seq"], events[i]["seq"], "{got} vs {ack}");
    }
    assert!(events[0]["seq"].as_u64().unwrap() < events[1]["seq"].as_u64().unwrap());
    send_text(&mut publ, &event("pdfm", "c"));
    let ack2 = read_json(&mut publ);
    assert!(
        ack2["body"]["events"][0]["seq"].as_u64().unwrap() > events[1]["seq"].as_u64().unwrap()
    );
}
