//! Plain HTTP requests (over [`RawClient`]) and what the tests read from
//! the answers: headers, JSON bodies, `/metrics` series, publish seqs.

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::{RawClient, SAMPLE_KEY};

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HttpResponse {
    /// The body parsed as JSON; panics (showing the response) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {self:?}"))
    }
}

/// Sends `method path` with extra `headers` and `body` (with its
/// `Content-Length`), from `source` if given, and returns the response.
pub fn http_request(
    addr: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_request(addr, source, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`http_request`], but an error rather than a panic when the server
/// is gone (refuses the connection or closes it before a whole response).
pub fn try_http_request(
    addr: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut c = match source {
        Some(ip) => RawClient::connect_from(ip, addr),
        None => RawClient::try_connect(addr)?,
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413, say) and stop reading before the body
    // is all sent; the response is what matters.
    let _ = c.try_send_bytes(&bytes);
    c.try_read_http_response()
}

/// A WebSocket upgrade request for `path` with extra `headers`, from
/// `source` if given; returns the response (a 101's frames are left
/// unread and the connection dropped).
pub fn upgrade_attempt(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut c = match source {
        Some(ip) => RawClient::connect_from(ip, addr),
        None => RawClient::connect(addr),
    };
    c.send_bytes(upgrade_request_with(path, headers).as_bytes());
    c.read_http_response()
}

/// The value of one Prometheus series in `/metrics` text, named with its
/// labels exactly as rendered, e.g.
/// `eventhub_connections{core="0",endpoint="subscribe"}`.
pub fn metric_value(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// `GET /metrics` as `admin_token`, asserting the 200; the Prometheus text.
pub fn metrics(addr: SocketAddr, admin_token: &str) -> String {
    let auth = format!("Bearer {admin_token}");
    let resp = http_request(
        addr,
        None,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 200, "GET /metrics: {resp:?}");
    resp.body
}

/// The sum of a per-core counter over every core.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            rest.rsplit_once(' ')?.1.trim().parse::<u64>().ok()
        })
        .sum()
}

/// Subscribers on one core:
/// `eventhub_connections{core="i",endpoint="subscribe"}`.
pub fn subscribers_on(metrics: &str, core: usize) -> u64 {
    metric_value(
        metrics,
        &format!("eventhub_connections{{core=\"{core}\",endpoint=\"subscribe\"}}"),
    )
    .unwrap_or_else(|| panic!("no subscribe connection gauge for core {core} in:\n{metrics}"))
}

/// `[{"id":..,"seq":N},..]` (a publish response's `events`) → the seqs.
pub fn seqs_of(events: &serde_json::Value) -> Vec<u64> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of {{id, seq}}: {events}"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {e}")))
        .collect()
}

/// A valid upgrade request for `path`.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A valid upgrade request for `path` with `headers` added.
pub fn upgrade_request_with(path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = upgrade_request(path);
    req.truncate(req.len() - 2);
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends a plain `GET path` and returns the response.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut c = RawClient::connect(addr);
    c.send_bytes(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_http_response()
}

/// The per-core values of a Prometheus counter in `/metrics` text:
/// `(core label, value)`.
pub fn metric_per_core(metrics: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}{{core=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (core, value) = rest.split_once("\"}")?;
            Some((core.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}
