//! The hub's HTTP and WebSocket API against a real `eventhub serve`
//! process: authentication, rights, subscribing, publishing (REST and
//! WebSocket), in-band messages, REST unsubscribe across cores, per-IP
//! rules, replay, health and metrics.
//!
//! Every wait is bounded by the harness's generous timeout; no test asserts
//! on timing. "Did not receive X" is shown by ordering, not by waiting: an
//! event the client should not get is published before a marker it should
//! get, and the marker must come first (every core delivers in `seq`
//! order).

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::WebSocket;

use common::{
    http_get, http_request, ip, metric_value, read_json, send_text, seqs_of, subscribers_on,
    try_ws_connect_with, upgrade_attempt, ws_close, ws_connect_with, HttpResponse, Server, TIMEOUT,
};

const ADMIN_TOKEN: &str = "admin-token-0123456789";
const VIEWER_KEY: &str = "viewer-key-0123456789";
const PRODUCER_TOKEN: &str = "producer-token-0123456789";
const ALL_CHANNELS: &str = "global, pdfm, health, orchestrator, system, container, alerts";

type Ws = WebSocket<TcpStream>;

/// The principals every test uses, after a `[hub]`/`[limits]` part.
const PRINCIPALS: &str = r#"
[[principals]]
name = "admin"
token = "admin-token-0123456789"
admin = true
subscribe = ["*"]
publish = ["*"]

[[principals]]
name = "viewer"
api_key = "viewer-key-0123456789"
subscribe = ["pdfm", "health"]
publish = []

[[principals]]
name = "producer"
token = "producer-token-0123456789"
subscribe = ["pdfm", "alerts"]
publish = ["pdfm"]
"#;

/// A config with no per-IP limits, the `alerts` custom channel, the
/// principals, and `extra` TOML keys for `[hub]` and `[limits]`.
fn config_with(hub: &str, limits: &str) -> String {
    format!(
        "[hub]\nchannels = [\"alerts\"]\n{hub}\n[limits]\n{limits}\n{PRINCIPALS}",
        hub = if hub.contains("max_connections_per_ip") || hub.contains("connect_rate_per_ip") {
            hub.to_string()
        } else {
            format!("max_connections_per_ip = 0\nconnect_rate_per_ip = 0.0\n{hub}")
        }
    )
}

fn config() -> String {
    config_with("", "")
}

fn hub() -> Server {
    Server::hub(1, &config())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /v1/events` with `body` as `Authorization: Bearer token`.
fn post_events(addr: SocketAddr, token: &str, body: &str) -> HttpResponse {
    http_request(
        addr,
        None,
        "POST",
        "/v1/events",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// Publishes `body` as the admin, asserting the 202; returns the seqs.
fn publish(addr: SocketAddr, body: &str) -> Vec<u64> {
    let resp = post_events(addr, ADMIN_TOKEN, body);
    assert_eq!(resp.status, 202, "publish {body}: {resp:?}");
    seqs_of(&resp.json()["events"])
}

/// One event on `channel` with `message` and an empty body.
fn event(channel: &str, message: &str) -> String {
    json!({"event_type": channel, "message": message, "body": {}}).to_string()
}

/// `POST /v1/ws/unsubscribe` as `Authorization: Bearer token` with `body`.
fn post_unsubscribe(addr: SocketAddr, token: &str, body: &str) -> HttpResponse {
    http_request(
        addr,
        None,
        "POST",
        "/v1/ws/unsubscribe",
        &[("Authorization", &bearer(token))],
        body.as_bytes(),
    )
}

/// `GET /metrics` as the admin.
fn metrics(addr: SocketAddr) -> String {
    common::metrics(addr, ADMIN_TOKEN)
}

/// Subscribes to `channels` as the admin (from `source` if given); returns
/// the socket and the confirmation message.
fn subscribe_from(addr: SocketAddr, source: Option<IpAddr>, channels: &str) -> (Ws, Value) {
    subscribe_as(
        addr,
        source,
        &format!("/v1/ws/subscribe?event_types={channels}"),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
    )
}

fn subscribe(addr: SocketAddr, channels: &str) -> (Ws, Value) {
    subscribe_from(addr, None, channels)
}

/// Connects to `path` with `headers` and reads the confirmation.
fn subscribe_as(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> (Ws, Value) {
    let mut ws = ws_connect_with(addr, source, path, headers);
    let confirmation = read_json(&mut ws);
    assert_eq!(
        confirmation["event_type"], "global",
        "first message is the confirmation: {confirmation}"
    );
    (ws, confirmation)
}

fn client_id(confirmation: &Value) -> String {
    confirmation["body"]["client_id"]
        .as_str()
        .expect("body.client_id")
        .to_string()
}

/// Reads messages until one satisfies `done`; returns all of them, the
/// last being the match.
fn read_until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = read_json(ws);
        let stop = done(&msg);
        seen.push(msg);
        if stop {
            return seen;
        }
        assert!(seen.len() < 10_000, "no matching message in {seen:?}");
    }
}

fn is_event(msg: &Value, channel: &str, message: &str) -> bool {
    msg["event_type"] == channel && msg["message"] == message
}

/// `(event_type, message)` of each message.
fn pairs(msgs: &[Value]) -> Vec<(String, String)> {
    msgs.iter()
        .map(|m| {
            (
                m["event_type"].as_str().unwrap_or_default().to_string(),
                m["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn is_rfc3339_micros_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn assert_error(resp: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(resp.status, status, "{resp:?}");
    let body = resp.json();
    assert_eq!(body["error"], code, "{resp:?}");
    body
}

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

// ---------------------------------------------------------------------------
// REST unsubscribe
// ---------------------------------------------------------------------------

/// The subscribe-connection gauge of each core.
fn subscribers_per_core(addr: SocketAddr, cores: usize) -> Vec<u64> {
    let text = metrics(addr);
    (0..cores).map(|core| subscribers_on(&text, core)).collect()
}

#[test]
fn rest_unsubscribe_works_for_a_client_on_either_core() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    // One subscriber per core, found by connecting from new source
    // addresses until each core's gauge has gone up.
    let mut on_core: [Option<(Ws, String)>; 2] = [None, None];
    let mut extra = Vec::new();
    for last in 2..=120u8 {
        if on_core.iter().all(Option::is_some) {
            break;
        }
        let before = subscribers_per_core(addr, 2);
        let (ws, c) = subscribe_from(addr, Some(ip(last)), "pdfm,alerts");
        let after = subscribers_per_core(addr, 2);
        let grew: Vec<usize> = (0..2).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(
            grew.len(),
            1,
            "one core gained the subscriber: {before:?} -> {after:?}"
        );
        let core = grew[0];
        if on_core[core].is_none() {
            on_core[core] = Some((ws, client_id(&c)));
        } else {
            extra.push(ws);
        }
    }
    let [Some(c0), Some(c1)] = on_core else {
        panic!("every subscriber landed on one core");
    };
    for (core, (mut ws, id)) in [c0, c1].into_iter().enumerate() {
        let body = json!({"client_id": id, "event_types": ["pdfm"]}).to_string();
        let resp = post_unsubscribe(addr, ADMIN_TOKEN, &body);
        assert_eq!(resp.status, 200, "core {core}: {resp:?}");
        let answer = resp.json();
        assert_eq!(
            answer["message"],
            "Successfully unsubscribed from event types"
        );
        assert_eq!(
            answer["remaining_subscriptions"],
            json!(["alerts", "global"])
        );
        // The client is told (after whatever earlier events it had queued).
        let seen = read_until(&mut ws, |m| m["message"] == "subscriptions");
        let note = seen.last().unwrap();
        assert_eq!(note["event_type"], "system", "{note}");
        assert_eq!(note["body"]["action"], "unsubscribe", "{note}");
        assert_eq!(
            note["body"]["subscriptions"],
            json!(["alerts", "global"]),
            "{note}"
        );
        // pdfm no longer arrives; alerts and global still do.
        let (p, a, g) = (format!("p{core}"), format!("a{core}"), format!("g{core}"));
        publish(addr, &event("pdfm", &p));
        publish(addr, &event("alerts", &a));
        publish(addr, &event("global", &g));
        let got = pairs(&[read_json(&mut ws), read_json(&mut ws)]);
        assert_eq!(
            got,
            vec![("alerts".to_string(), a), ("global".to_string(), g)],
            "core {core}"
        );
    }
    drop(extra);
}

#[test]
fn rest_unsubscribe_refusals() {
    let server = hub();
    let addr = server.addr;
    let (mut ws, c) = subscribe(addr, "pdfm,alerts");
    let id = client_id(&c);

    let unknown = json!({"client_id": uuid::Uuid::new_v4().to_string(), "event_types": ["pdfm"]});
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &unknown.to_string()),
        404,
        "not_found",
    );

    // An id that names the live subscriber's core and slot (its last six
    // bytes) but not its random part finds nothing either.
    let forged = format!(
        "{}{}",
        if id.starts_with('0') { '1' } else { '0' },
        &id[1..]
    );
    let forged = json!({"client_id": forged, "event_types": ["pdfm"]});
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &forged.to_string()),
        404,
        "not_found",
    );

    let body = json!({"client_id": id, "event_types": ["pdfm"]}).to_string();
    assert_error(
        &post_unsubscribe(addr, PRODUCER_TOKEN, &body),
        403,
        "forbidden",
    );

    let global = json!({"client_id": id, "event_types": ["global"]}).to_string();
    let answer = assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &global),
        400,
        "bad_request",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("global"),
        "{answer}"
    );

    for malformed in [
        "not json".to_string(),
        "{}".to_string(),
        json!({"client_id": id}).to_string(),
        json!({"client_id": id, "event_types": "pdfm"}).to_string(),
        json!({"client_id": id, "event_types": ["pdfm"], "extra": 1}).to_string(),
    ] {
        assert_error(
            &post_unsubscribe(addr, ADMIN_TOKEN, &malformed),
            400,
            "bad_request",
        );
    }
    let not_uuid = json!({"client_id": "not-a-uuid", "event_types": ["pdfm"]}).to_string();
    let answer = assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &not_uuid),
        400,
        "bad_request",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("UUID"),
        "{answer}"
    );
    let nope = json!({"client_id": id, "event_types": ["nope"]}).to_string();
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &nope),
        400,
        "unknown_channel",
    );

    // None of these changed the subscription.
    publish(addr, &event("pdfm", "still-subscribed"));
    let got = read_json(&mut ws);
    assert!(is_event(&got, "pdfm", "still-subscribed"), "{got}");

    // Once closed, the client id is unknown.
    ws_close(&mut ws);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let resp = post_unsubscribe(addr, ADMIN_TOKEN, &body);
        if resp.status == 404 {
            break;
        }
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(
            Instant::now() < deadline,
            "client id still known after close"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Per-IP rules
// ---------------------------------------------------------------------------

#[test]
fn second_subscription_from_one_ip_is_409_until_the_first_closes() {
    let server = Server::hub(
        1,
        &config_with("max_connections_per_ip = 1\nconnect_rate_per_ip = 0.0", ""),
    );
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let headers: &[(&str, &str)] = &[("Authorization", &auth)];
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let (mut first, _) = subscribe_from(addr, Some(ip(5)), "pdfm");
    let answer = assert_error(
        &upgrade_attempt(addr, Some(ip(5)), path, headers),
        409,
        "conflict",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("127.0.0.5"),
        "{answer}"
    );
    // Another address is not affected.
    let (_other, _) = subscribe_from(addr, Some(ip(6)), "pdfm");
    // The first still works.
    publish(addr, &event("pdfm", "m"));
    assert!(is_event(&read_json(&mut first), "pdfm", "m"));

    ws_close(&mut first);
    let deadline = Instant::now() + TIMEOUT;
    let mut again = loop {
        match try_ws_connect_with(addr, Some(ip(5)), path, headers) {
            Ok(ws) => break ws,
            Err(e) if matches!(&*e, tungstenite::Error::Http(resp) if resp.status().as_u16() == 409) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "still 409 after the first closed"
                );
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reconnecting: {e}"),
        }
    };
    assert_eq!(read_json(&mut again)["event_type"], "global");
}

#[test]
fn burst_of_attempts_over_the_rate_is_429_with_retry_after() {
    // A slow refill (one attempt per 5 s) so that the burst is spent
    // however slowly this machine makes the attempts.
    let server = Server::hub(
        1,
        &config_with(
            "max_connections_per_ip = 0\nconnect_rate_per_ip = 0.2\nconnect_burst_per_ip = 3",
            "",
        ),
    );
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let headers: &[(&str, &str)] = &[("Authorization", &auth)];
    let path = "/v1/ws/subscribe?event_types=pdfm";
    for i in 0..3 {
        let resp = upgrade_attempt(addr, Some(ip(9)), path, headers);
        assert_eq!(resp.status, 101, "attempt {i}: {resp:?}");
    }
    let resp = upgrade_attempt(addr, Some(ip(9)), path, headers);
    assert_error(&resp, 429, "rate_limited");
    let retry: u64 = resp
        .header("retry-after")
        .unwrap_or_else(|| panic!("Retry-After on {resp:?}"))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{resp:?}");
    // Another address has its own bucket.
    assert_eq!(
        upgrade_attempt(addr, Some(ip(10)), path, headers).status,
        101
    );
    let text = metrics(addr);
    assert!(
        metric_value(
            &text,
            "eventhub_handshake_refusals_total{reason=\"rate_limited\"}"
        )
        .is_some_and(|n| n >= 1),
        "{text}"
    );
}

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

// ---------------------------------------------------------------------------
// Health and metrics
// ---------------------------------------------------------------------------

#[test]
fn healthz_needs_no_credentials() {
    let server = hub();
    let resp = http_get(server.addr, "/healthz");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json(), json!({"status": "ok"}));
    // Wrong credentials do not matter either.
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/healthz",
        &[("Authorization", "Bearer not-a-known-token-at-all")],
        b"",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[test]
fn metrics_count_events_in_and_deliveries() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    let deliveries = |text: &str| -> u64 {
        common::metric_per_core(text, "eventhub_deliveries_total")
            .iter()
            .map(|(_, n)| n)
            .sum()
    };
    let before = metrics(addr);
    let events_in_before = metric_value(&before, "eventhub_events_in_total").expect("events_in");
    let (mut a, _) = subscribe(addr, "pdfm");
    let (mut b, _) = subscribe(addr, "pdfm");
    let mut connected = subscribers_per_core(addr, 2);
    assert_eq!(connected.iter().sum::<u64>(), 2, "{connected:?}");
    publish(
        addr,
        &format!("[{},{}]", event("pdfm", "1"), event("pdfm", "2")),
    );
    publish(addr, &event("alerts", "nobody"));
    for ws in [&mut a, &mut b] {
        assert!(is_event(&read_json(ws), "pdfm", "1"));
        assert!(is_event(&read_json(ws), "pdfm", "2"));
    }
    let after = metrics(addr);
    assert_eq!(
        metric_value(&after, "eventhub_events_in_total"),
        Some(events_in_before + 3),
        "{after}"
    );
    assert!(
        deliveries(&after) >= deliveries(&before) + 4,
        "deliveries: {} -> {}",
        deliveries(&before),
        deliveries(&after)
    );
    connected = subscribers_per_core(addr, 2);
    assert_eq!(connected.iter().sum::<u64>(), 2, "{connected:?}");
}

/// A Docker-shaped container event for `POST /v1/events`.
fn container_event(name: &str, action: &str, time: u64, labels: &str) -> String {
    format!(
        r#"{{"event_type":"container","body":{{"id":"{name}0123456789","Type":"container","Action":"{action}","Actor":{{"ID":"{name}0123456789","Attributes":{{"name":"{name}","image":"busybox:latest"{labels}}}}},"time":{time}}}}}"#
    )
}

#[test]
fn published_container_events_reach_events_ws_filtered_and_replay_between_since_and_until() {
    let server = hub();
    let auth = bearer(ADMIN_TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let path = "/events/ws?filters=%7B%22event%22%3A%7B%22stop%22%3Atrue%7D%2C%22label%22%3A%7B%22tier%3Ds4%22%3Atrue%7D%7D";
    let mut live = ws_connect_with(server.addr, None, path, &headers);
    for (name, action, time, labels) in [
        ("web", "start", 1_000, r#","tier":"s4""#),
        ("web", "stop", 1_010, r#","tier":"s4""#),
        ("db", "stop", 1_020, r#","tier":"s5""#),
        ("api", "stop", 1_030, r#","tier":"s4""#),
    ] {
        publish(server.addr, &container_event(name, action, time, labels));
    }
    let first = read_json(&mut live);
    assert_eq!(
        (
            first["Actor"]["Attributes"]["name"].as_str(),
            first["Action"].as_str()
        ),
        (Some("web"), Some("stop"))
    );
    assert_eq!(first["status"], "stop");
    assert_eq!(first["from"], "busybox:latest");
    let second = read_json(&mut live);
    assert_eq!(
        second["Actor"]["Attributes"]["name"], "api",
        "db is tier s5 and web's start is not a stop"
    );

    // since/until are Docker's: Unix seconds, both inclusive; after until
    // the server closes with 1000.
    let mut window = ws_connect_with(
        server.addr,
        None,
        "/events/ws?since=1005&until=1025",
        &headers,
    );
    let names: Vec<String> = (0..2)
        .map(|_| {
            read_json(&mut window)["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["web", "db"]);
    loop {
        match window.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "until reached");
                break;
            }
            Ok(tungstenite::Message::Close(None)) => panic!("close without a code"),
            Ok(tungstenite::Message::Text(t)) => panic!("nothing after until, got {t}"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame: {e}"),
        }
    }
}

#[test]
fn container_events_with_the_wrong_shape_are_400() {
    let server = hub();
    for (body, want) in [
        (container_event("web", "die", 1, ""), "Action must be \\\"start\\\" or \\\"stop\\\""),
        (r#"{"event_type":"container","body":{"id":"a","Type":"network","Action":"start","Actor":{"ID":"a"},"time":1}}"#.to_string(), "Type must be"),
        (r#"{"event_type":"container"}"#.to_string(), "container event body"),
    ] {
        let resp = post_events(server.addr, ADMIN_TOKEN, &body);
        assert_eq!(resp.status, 400, "{body}");
        assert!(resp.body.contains(want), "{body}: want {want:?} in {}", resp.body);
    }
}
