//! The hub API's rights and bad requests: subscribing, publishing and
//! `/metrics` beyond a principal's rights are 403; an unknown channel or a
//! `since` that is not a seq on subscribe is 400.
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
    assert_error, bearer, event, hub, metrics, post_events, subscribe_as, ADMIN_TOKEN,
    ALL_CHANNELS, PRODUCER_TOKEN, VIEWER_KEY,
};
use common::{http_request, upgrade_attempt};

// ---------------------------------------------------------------------------
// Rights and bad requests
// ---------------------------------------------------------------------------

#[test]
fn subscribing_outside_the_principals_rights_is_403() {
    let server = hub();
    let resp = upgrade_attempt(
        server.addr,
        None,
        "/v1/ws/subscribe?event_types=pdfm,orchestrator",
        &[("X-Api-Key", VIEWER_KEY)],
    );
    let body = assert_error(&resp, 403, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("orchestrator"),
        "{body}"
    );
    // Within its rights it may.
    let (_ws, c) = subscribe_as(
        server.addr,
        None,
        "/v1/ws/subscribe?event_types=pdfm,health",
        &[("X-Api-Key", VIEWER_KEY)],
    );
    assert_eq!(
        c["body"]["subscriptions"],
        json!(["pdfm", "health", "global"])
    );
}

#[test]
fn publishing_without_the_publish_right_is_403() {
    let server = hub();
    let addr = server.addr;
    // The viewer has no publish right at all.
    let resp = http_request(
        addr,
        None,
        "POST",
        "/v1/events",
        &[("X-Api-Key", VIEWER_KEY)],
        event("pdfm", "m").as_bytes(),
    );
    assert_error(&resp, 403, "forbidden");
    let resp = upgrade_attempt(addr, None, "/v1/ws/publish", &[("X-Api-Key", VIEWER_KEY)]);
    assert_error(&resp, 403, "forbidden");
    // The producer may publish to pdfm only, and an array with one
    // forbidden event is refused whole.
    let resp = post_events(addr, PRODUCER_TOKEN, &event("alerts", "m"));
    let body = assert_error(&resp, 403, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("alerts"),
        "{body}"
    );
    let both = format!("[{},{}]", event("pdfm", "ok"), event("alerts", "no"));
    assert_error(&post_events(addr, PRODUCER_TOKEN, &both), 403, "forbidden");
    let resp = post_events(addr, PRODUCER_TOKEN, &event("pdfm", "m"));
    assert_eq!(resp.status, 202, "{resp:?}");
    assert_eq!(
        resp.json()["events"][0]["seq"],
        1,
        "nothing refused was sequenced"
    );
}

#[test]
fn metrics_needs_an_admin_principal() {
    let server = hub();
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/metrics",
        &[("X-Api-Key", VIEWER_KEY)],
        b"",
    );
    assert_error(&resp, 403, "forbidden");
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/metrics",
        &[("Authorization", &bearer(PRODUCER_TOKEN))],
        b"",
    );
    assert_error(&resp, 403, "forbidden");
    let text = metrics(server.addr);
    assert!(text.contains("eventhub_events_in_total"), "{text}");
}

#[test]
fn unknown_channel_on_subscribe_is_400_listing_the_valid_channels() {
    let server = hub();
    for path in [
        "/v1/ws/subscribe?event_types=pdfm,nope",
        "/api/v1/ws/subscribe?event_types=nope",
    ] {
        let resp = upgrade_attempt(
            server.addr,
            None,
            path,
            &[("Authorization", &bearer(ADMIN_TOKEN))],
        );
        let body = assert_error(&resp, 400, "unknown_channel");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains("\"nope\""), "{msg}");
        assert!(msg.contains(ALL_CHANNELS), "{msg}");
    }
}

#[test]
fn since_that_is_not_a_seq_is_400() {
    let server = hub();
    for since in ["abc", "-1", "1.5", ""] {
        let resp = upgrade_attempt(
            server.addr,
            None,
            &format!("/v1/ws/subscribe?event_types=pdfm&since={since}"),
            &[("Authorization", &bearer(ADMIN_TOKEN))],
        );
        let body = assert_error(&resp, 400, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains("since"),
            "{body}"
        );
    }
}
