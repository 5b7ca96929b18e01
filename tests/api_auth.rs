//! The hub API's authentication: requests without credentials or with
//! wrong ones are 401, and a bearer token, an API key and an
//! `access_token` query parameter each authenticate.
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
    assert_error, bearer, event, hub, is_event, subscribe_as, ADMIN_TOKEN, PRODUCER_TOKEN,
    VIEWER_KEY,
};
use common::{http_get, http_request, read_json, upgrade_attempt, HttpResponse};

fn assert_401(resp: &HttpResponse, code: &str) {
    assert_error(resp, 401, code);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer"),
        "WWW-Authenticate on {resp:?}"
    );
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[test]
fn requests_without_credentials_get_401_missing_credentials() {
    let server = hub();
    let addr = server.addr;
    let unsub = r#"{"client_id":"00000000-0000-4000-8000-000000000000","event_types":["pdfm"]}"#;
    assert_401(
        &upgrade_attempt(addr, None, "/v1/ws/subscribe?event_types=pdfm", &[]),
        "missing_credentials",
    );
    assert_401(
        &upgrade_attempt(addr, None, "/v1/ws/publish", &[]),
        "missing_credentials",
    );
    assert_401(
        &http_request(
            addr,
            None,
            "POST",
            "/v1/events",
            &[],
            event("pdfm", "m").as_bytes(),
        ),
        "missing_credentials",
    );
    assert_401(
        &http_request(
            addr,
            None,
            "POST",
            "/v1/ws/unsubscribe",
            &[],
            unsub.as_bytes(),
        ),
        "missing_credentials",
    );
    assert_401(
        &http_request(addr, None, "GET", "/metrics", &[], b""),
        "missing_credentials",
    );
}

#[test]
fn requests_with_wrong_credentials_get_401_invalid_credentials() {
    let server = hub();
    let addr = server.addr;
    let wrong = bearer("not-a-known-token-at-all");
    let unsub = r#"{"client_id":"00000000-0000-4000-8000-000000000000","event_types":["pdfm"]}"#;
    let headers: &[(&str, &str)] = &[("Authorization", &wrong)];
    assert_401(
        &upgrade_attempt(addr, None, "/v1/ws/subscribe?event_types=pdfm", headers),
        "invalid_credentials",
    );
    assert_401(
        &upgrade_attempt(
            addr,
            None,
            "/v1/ws/subscribe?event_types=pdfm",
            &[("X-Api-Key", "not-a-known-key-at-all")],
        ),
        "invalid_credentials",
    );
    assert_401(
        &upgrade_attempt(
            addr,
            None,
            "/v1/ws/subscribe?event_types=pdfm&access_token=not-a-known-token",
            &[],
        ),
        "invalid_credentials",
    );
    // A token is not an API key.
    assert_401(
        &upgrade_attempt(
            addr,
            None,
            "/v1/ws/subscribe?event_types=pdfm",
            &[("X-Api-Key", ADMIN_TOKEN)],
        ),
        "invalid_credentials",
    );
    assert_401(
        &http_request(
            addr,
            None,
            "POST",
            "/v1/events",
            headers,
            event("pdfm", "m").as_bytes(),
        ),
        "invalid_credentials",
    );
    assert_401(
        &http_request(
            addr,
            None,
            "POST",
            "/v1/ws/unsubscribe",
            headers,
            unsub.as_bytes(),
        ),
        "invalid_credentials",
    );
    assert_401(
        &http_request(addr, None, "GET", "/metrics", headers, b""),
        "invalid_credentials",
    );
}

#[test]
fn bearer_api_key_and_access_token_each_authenticate() {
    let server = hub();
    let addr = server.addr;
    let admin = bearer(ADMIN_TOKEN);

    // Subscribe with each form.
    let (mut by_bearer, c) = subscribe_as(
        addr,
        None,
        "/v1/ws/subscribe?event_types=pdfm",
        &[("Authorization", &admin)],
    );
    assert_eq!(c["body"]["subscriptions"], json!(["pdfm", "global"]));
    let (mut by_key, c) = subscribe_as(
        addr,
        None,
        "/v1/ws/subscribe?event_types=pdfm",
        &[("X-Api-Key", VIEWER_KEY)],
    );
    assert_eq!(c["body"]["subscriptions"], json!(["pdfm", "global"]));
    let (mut by_query, c) = subscribe_as(
        addr,
        None,
        &format!("/v1/ws/subscribe?event_types=pdfm&access_token={ADMIN_TOKEN}"),
        &[],
    );
    assert_eq!(c["body"]["subscriptions"], json!(["pdfm", "global"]));

    // Publish with each form.
    let body = event("pdfm", "by-bearer");
    let resp = http_request(
        addr,
        None,
        "POST",
        "/v1/events",
        &[("Authorization", &admin)],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 202, "{resp:?}");
    let resp = http_request(
        addr,
        None,
        "POST",
        &format!("/v1/events?access_token={PRODUCER_TOKEN}"),
        &[],
        event("pdfm", "by-query").as_bytes(),
    );
    assert_eq!(resp.status, 202, "{resp:?}");
    // The viewer may not publish, but its key is accepted (403, not 401).
    let resp = http_request(
        addr,
        None,
        "POST",
        "/v1/events",
        &[("X-Api-Key", VIEWER_KEY)],
        event("pdfm", "by-key").as_bytes(),
    );
    assert_error(&resp, 403, "forbidden");

    for ws in [&mut by_bearer, &mut by_key, &mut by_query] {
        assert!(is_event(&read_json(ws), "pdfm", "by-bearer"));
        assert!(is_event(&read_json(ws), "pdfm", "by-query"));
    }

    // /metrics with the query form too.
    let resp = http_get(addr, &format!("/metrics?access_token={ADMIN_TOKEN}"));
    assert_eq!(resp.status, 200, "{resp:?}");
}
