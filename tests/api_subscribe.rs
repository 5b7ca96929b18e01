//! The hub API's subscriber socket: the confirmation every subscriber
//! gets first, and the in-band messages it may send (health ping,
//! client-id, subscribe and unsubscribe, garbage).
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

use serde_json::json;

use common::api::{
    bearer, client_id, event, hub, is_event, is_hex64, is_rfc3339_micros_utc, publish, subscribe,
    subscribe_as, ADMIN_TOKEN, VIEWER_KEY,
};
use common::{read_json, send_text};

// ---------------------------------------------------------------------------
// The confirmation
// ---------------------------------------------------------------------------

#[test]
fn confirmation_has_the_documented_shape_under_both_paths() {
    let server = hub();
    let mut ids = Vec::new();
    for prefix in ["", "/api"] {
        let (_ws, c) = subscribe_as(
            server.addr,
            None,
            &format!("{prefix}/v1/ws/subscribe?event_types=pdfm,health"),
            &[("Authorization", &bearer(ADMIN_TOKEN))],
        );
        assert!(is_hex64(c["id"].as_str().unwrap()), "id: {c}");
        assert_eq!(c["event_type"], "global");
        assert!(
            is_rfc3339_micros_utc(c["timestamp"].as_str().unwrap()),
            "timestamp: {c}"
        );
        assert_eq!(
            c["message"],
            "WebSocket connection established subscribed to global by default"
        );
        let id = client_id(&c);
        let parsed = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.hyphenated().to_string(), id, "canonical form");
        assert_eq!(
            c["body"]["subscriptions"],
            json!(["pdfm", "health", "global"])
        );
        assert!(c.get("seq").is_none(), "a reply carries no seq: {c}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "each connection has its own client id");
}

// ---------------------------------------------------------------------------
// In-band messages
// ---------------------------------------------------------------------------

#[test]
fn health_ping_gets_a_pong_with_its_ref_id() {
    let server = hub();
    let (mut ws, c) = subscribe(server.addr, "pdfm,health");
    send_text(
        &mut ws,
        r#"{"event_type":"health","id":"ping-1","message":"ping"}"#,
    );
    let pong = read_json(&mut ws);
    assert_eq!(pong["event_type"], "health", "{pong}");
    assert_eq!(pong["message"], "pong", "{pong}");
    assert_eq!(pong["ref_id"], "ping-1", "{pong}");
    assert_eq!(
        pong["client_id"].as_str(),
        Some(client_id(&c).as_str()),
        "{pong}"
    );
    assert!(is_hex64(pong["id"].as_str().unwrap()), "{pong}");
    assert!(
        is_rfc3339_micros_utc(pong["timestamp"].as_str().unwrap()),
        "{pong}"
    );
}

#[test]
fn health_ping_without_a_health_subscription_gets_an_error() {
    let server = hub();
    let (mut ws, _) = subscribe(server.addr, "pdfm");
    send_text(
        &mut ws,
        r#"{"event_type":"health","id":"ping-1","message":"ping"}"#,
    );
    let err = read_json(&mut ws);
    assert_eq!(err["event_type"], "system", "{err}");
    assert_eq!(err["message"], "error", "{err}");
    assert!(err["body"]["error"].is_string(), "{err}");
    assert!(
        err["body"]["message"].as_str().unwrap().contains("health"),
        "{err}"
    );
}

#[test]
fn client_id_request_in_both_forms_returns_the_client_id() {
    let server = hub();
    let (mut ws, c) = subscribe(server.addr, "pdfm");
    let id = client_id(&c);
    for request in [
        r#"{"event_type":"system","message":"client-id"}"#,
        r#"{"type":"client-id"}"#,
    ] {
        send_text(&mut ws, request);
        let got = read_json(&mut ws);
        assert_eq!(got["event_type"], "system", "{got}");
        assert_eq!(got["message"], "client-id", "{got}");
        assert_eq!(
            got["body"]["client-id"].as_str(),
            Some(id.as_str()),
            "{got}"
        );
        assert_eq!(
            got["body"]["client_id"].as_str(),
            Some(id.as_str()),
            "{got}"
        );
    }
}

#[test]
fn in_band_subscribe_and_unsubscribe_change_what_is_received() {
    let server = hub();
    let addr = server.addr;
    let (mut ws, _) = subscribe(addr, "pdfm");

    send_text(
        &mut ws,
        r#"{"action":"subscribe","event_types":["alerts"]}"#,
    );
    let got = read_json(&mut ws);
    assert_eq!(
        (got["event_type"].as_str(), got["message"].as_str()),
        (Some("system"), Some("subscriptions")),
        "{got}"
    );
    assert_eq!(got["body"]["action"], "subscribe");
    assert_eq!(
        got["body"]["subscriptions"],
        json!(["pdfm", "alerts", "global"])
    );
    publish(addr, &event("alerts", "a1"));
    assert!(is_event(&read_json(&mut ws), "alerts", "a1"));

    send_text(
        &mut ws,
        r#"{"action":"unsubscribe","event_types":["pdfm"]}"#,
    );
    let got = read_json(&mut ws);
    assert_eq!(got["message"], "subscriptions", "{got}");
    assert_eq!(got["body"]["action"], "unsubscribe");
    assert_eq!(got["body"]["subscriptions"], json!(["alerts", "global"]));
    publish(addr, &event("pdfm", "p-gone"));
    publish(addr, &event("alerts", "a2"));
    let got = read_json(&mut ws);
    assert!(
        is_event(&got, "alerts", "a2"),
        "pdfm no longer arrives: {got}"
    );

    // Removing global, an unknown channel, or beyond one's rights is refused.
    send_text(
        &mut ws,
        r#"{"action":"unsubscribe","event_types":["global"]}"#,
    );
    assert_eq!(read_json(&mut ws)["message"], "error");
    send_text(&mut ws, r#"{"action":"subscribe","event_types":["nope"]}"#);
    assert_eq!(read_json(&mut ws)["body"]["error"], "unknown_channel");
    let (mut viewer, _) = subscribe_as(
        addr,
        None,
        "/v1/ws/subscribe?event_types=pdfm",
        &[("X-Api-Key", VIEWER_KEY)],
    );
    send_text(
        &mut viewer,
        r#"{"action":"subscribe","event_types":["alerts"]}"#,
    );
    assert_eq!(read_json(&mut viewer)["body"]["error"], "forbidden");
}

#[test]
fn garbage_text_gets_an_error_and_the_connection_stays_open() {
    let server = hub();
    let (mut ws, c) = subscribe(server.addr, "pdfm");
    for garbage in [
        "hello",
        "{\"unrelated\":true}",
        "[1,2,3]",
        "{\"action\":\"dance\"}",
    ] {
        send_text(&mut ws, garbage);
        let err = read_json(&mut ws);
        assert_eq!(err["event_type"], "system", "{garbage}: {err}");
        assert_eq!(err["message"], "error", "{garbage}: {err}");
        assert_eq!(err["body"]["error"], "bad_message", "{garbage}: {err}");
    }
    ws.send(tungstenite::Message::binary(vec![1u8, 2, 3]))
        .unwrap();
    assert_eq!(read_json(&mut ws)["body"]["error"], "bad_message");
    // Still open and subscribed.
    send_text(&mut ws, r#"{"type":"client-id"}"#);
    assert_eq!(
        read_json(&mut ws)["body"]["client_id"].as_str(),
        Some(client_id(&c).as_str())
    );
    publish(server.addr, &event("pdfm", "after-garbage"));
    assert!(is_event(&read_json(&mut ws), "pdfm", "after-garbage"));
}
