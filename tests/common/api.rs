//! What the hub API tests (`tests/api_*.rs`) share: the principals and the
//! config every one of them runs `eventhub serve` with, and the requests
//! and reads they make as those principals.

use std::net::{IpAddr, SocketAddr, TcpStream};

use serde_json::{json, Value};
use tungstenite::WebSocket;

use super::{
    http_request, read_json, seqs_of, subscribers_on, ws_connect_with, HttpResponse, Server,
};

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const VIEWER_KEY: &str = "viewer-key-0123456789";
pub const PRODUCER_TOKEN: &str = "producer-token-0123456789";
pub const ALL_CHANNELS: &str = "global, pdfm, health, orchestrator, system, container, alerts";

pub type Ws = WebSocket<TcpStream>;

/// The principals every test uses, after a `[hub]`/`[limits]` part.
pub const PRINCIPALS: &str = r#"
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
pub fn config_with(hub: &str, limits: &str) -> String {
    format!(
        "[hub]\nchannels = [\"alerts\"]\n{hub}\n[limits]\n{limits}\n{PRINCIPALS}",
        hub = if hub.contains("max_connections_per_ip") || hub.contains("connect_rate_per_ip") {
            hub.to_string()
        } else {
            format!("max_connections_per_ip = 0\nconnect_rate_per_ip = 0.0\n{hub}")
        }
    )
}

pub fn config() -> String {
    config_with("", "")
}

pub fn hub() -> Server {
    Server::hub(1, &config())
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /v1/events` with `body` as `Authorization: Bearer token`.
pub fn post_events(addr: SocketAddr, token: &str, body: &str) -> HttpResponse {
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
pub fn publish(addr: SocketAddr, body: &str) -> Vec<u64> {
    let resp = post_events(addr, ADMIN_TOKEN, body);
    assert_eq!(resp.status, 202, "publish {body}: {resp:?}");
    seqs_of(&resp.json()["events"])
}

/// One event on `channel` with `message` and an empty body.
pub fn event(channel: &str, message: &str) -> String {
    json!({"event_type": channel, "message": message, "body": {}}).to_string()
}

/// A WebSocket upgrade request for `path` as the admin, over plain HTTP,
/// for the answer itself (a refused upgrade's status and JSON body).
pub fn upgrade_as_admin(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(
        addr,
        None,
        "GET",
        path,
        &[
            ("Authorization", &bearer(ADMIN_TOKEN)),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", super::SAMPLE_KEY),
        ],
        b"",
    )
}

/// `GET /metrics` as the admin.
pub fn metrics(addr: SocketAddr) -> String {
    super::metrics(addr, ADMIN_TOKEN)
}

/// Subscribes to `channels` as the admin (from `source` if given); returns
/// the socket and the confirmation message.
pub fn subscribe_from(addr: SocketAddr, source: Option<IpAddr>, channels: &str) -> (Ws, Value) {
    subscribe_as(
        addr,
        source,
        &format!("/v1/ws/subscribe?event_types={channels}"),
        &[("Authorization", &bearer(ADMIN_TOKEN))],
    )
}

pub fn subscribe(addr: SocketAddr, channels: &str) -> (Ws, Value) {
    subscribe_from(addr, None, channels)
}

/// Connects to `path` with `headers` and reads the confirmation.
pub fn subscribe_as(
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

pub fn client_id(confirmation: &Value) -> String {
    confirmation["body"]["client_id"]
        .as_str()
        .expect("body.client_id")
        .to_string()
}

/// Reads messages until one satisfies `done`; returns all of them, the
/// last being the match.
pub fn read_until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> Vec<Value> {
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

pub fn is_event(msg: &Value, channel: &str, message: &str) -> bool {
    msg["event_type"] == channel && msg["message"] == message
}

/// `(event_type, message)` of each message.
pub fn pairs(msgs: &[Value]) -> Vec<(String, String)> {
    msgs.iter()
        .map(|m| {
            (
                m["event_type"].as_str().unwrap_or_default().to_string(),
                m["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn is_rfc3339_micros_utc(s: &str) -> bool {
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

pub fn assert_error(resp: &HttpResponse, status: u16, code: &str) -> Value {
    assert_eq!(resp.status, status, "{resp:?}");
    let body = resp.json();
    assert_eq!(body["error"], code, "{resp:?}");
    body
}

/// The subscribe-connection gauge of each core.
pub fn subscribers_per_core(addr: SocketAddr, cores: usize) -> Vec<u64> {
    let text = metrics(addr);
    (0..cores).map(|core| subscribers_on(&text, core)).collect()
}
