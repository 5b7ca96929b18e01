//! Trust at the edges: what the hub refuses before it reads a request's
//! body, the cap on connections still in their HTTP phase, the bucket of
//! failed authentications, clients behind a trusted proxy (X-Forwarded-For
//! and the PROXY protocol, v1 and v2), and the plaintext secrets of the
//! config not kept in memory.
//!
//! Each test runs against a real `eventhub serve` process that the shared
//! harness (`tests/common`) starts, over raw sockets on the loopback
//! interface (127.0.0.x source addresses stand for different clients).

mod common;

use std::net::{IpAddr, SocketAddr};

use common::api::{assert_error, bearer, config, config_with, metrics, ADMIN_TOKEN};
use common::{
    http_request, ip, metric_value, upgrade_request, HttpResponse, RawClient, Server, SAMPLE_KEY,
};

/// Sends `bytes` from `source` (or 127.0.0.1) and reads the answer,
/// keeping the connection open (a 101 holds its place).
fn send_from(addr: SocketAddr, source: Option<IpAddr>, bytes: &[u8]) -> (RawClient, HttpResponse) {
    let mut c = match source {
        Some(ip) => RawClient::connect_from(ip, addr),
        None => RawClient::connect(addr),
    };
    let _ = c.try_send_bytes(bytes);
    let resp = c.read_http_response();
    (c, resp)
}

// ---------------------------------------------------------------------------
// Item 8: refused on the head, before the body; pre-auth connections capped
// ---------------------------------------------------------------------------

/// A config whose handshake timeout is far beyond the harness's read
/// timeout: a server that waited for the body would not answer in time.
fn patient() -> String {
    config_with("", "handshake_timeout_ms = 120000")
}

#[test]
fn a_post_without_credentials_is_401_before_its_body_arrives() {
    let server = Server::hub(1, &patient());
    // Within max_body_bytes (1 MiB), none of it sent.
    let head = "POST /v1/events HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n";
    let (_c, resp) = send_from(server.addr, None, head.as_bytes());
    assert_error(&resp, 401, "missing_credentials");
    // Far over max_body_bytes: still the 401, not a 413 that tells an
    // anonymous client the bound.
    let head = "POST /v1/events HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999\r\n\r\n";
    assert_error(
        &send_from(server.addr, None, head.as_bytes()).1,
        401,
        "missing_credentials",
    );
    // A wrong token likewise, on the unsubscribe route.
    let head = "POST /v1/ws/unsubscribe HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer wrong-wrong-wrong\r\nContent-Length: 500000\r\n\r\n";
    assert_error(
        &send_from(server.addr, None, head.as_bytes()).1,
        401,
        "invalid_credentials",
    );
}

#[test]
fn unknown_paths_and_wrong_methods_are_refused_before_their_body() {
    let server = Server::hub(1, &patient());
    let auth = bearer(ADMIN_TOKEN);
    let head = format!(
        "POST /no/such/route HTTP/1.1\r\nHost: h\r\nAuthorization: {auth}\r\nContent-Length: 900000\r\n\r\n"
    );
    assert_error(
        &send_from(server.addr, None, head.as_bytes()).1,
        404,
        "not_found",
    );
    let head = "PUT /v1/events HTTP/1.1\r\nHost: h\r\nContent-Length: 900000\r\n\r\n";
    let resp = send_from(server.addr, None, head.as_bytes()).1;
    assert_error(&resp, 405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("POST"));
    // An authenticated POST over the bound is a 413, also before its body.
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: h\r\nAuthorization: {auth}\r\nContent-Length: 2000000\r\n\r\n"
    );
    assert_error(
        &send_from(server.addr, None, head.as_bytes()).1,
        413,
        "payload_too_large",
    );
}

#[test]
fn idle_pre_auth_connections_are_capped_per_ip_while_another_ip_gets_in() {
    // The default cap: 32 connections in their HTTP phase per address.
    let server = Server::hub(1, &config());
    let idle: Vec<RawClient> = (0..32)
        .map(|_| RawClient::connect_from(ip(30), server.addr))
        .collect();
    // Let the server take them in (accepted in order, one core).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_c, resp) = send_from(
        server.addr,
        Some(ip(30)),
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let body = assert_error(&resp, 429, "too_many_pending");
    assert!(
        body["message"].as_str().unwrap().contains("127.0.0.30"),
        "{body}"
    );
    assert_eq!(resp.header("retry-after"), Some("1"), "{resp:?}");
    // Another address is served.
    let ok = http_request(server.addr, Some(ip(31)), "GET", "/healthz", &[], b"");
    assert_eq!(ok.status, 200, "{ok:?}");
    // Once the idle ones go, the first address is served again.
    drop(idle);
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let r = http_request(server.addr, Some(ip(30)), "GET", "/healthz", &[], b"");
        if r.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still refused: {r:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pre_auth_connections_are_capped_in_total_with_503() {
    let server = Server::hub(
        1,
        &config_with("", "max_pre_auth_per_ip = 2\nmax_pre_auth_connections = 4"),
    );
    let _idle: Vec<RawClient> = [40, 40, 41, 41]
        .into_iter()
        .map(|n| RawClient::connect_from(ip(n), server.addr))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_c, resp) = send_from(
        server.addr,
        Some(ip(42)),
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_error(&resp, 503, "too_many_pending");
    assert_eq!(resp.header("retry-after"), Some("1"), "{resp:?}");
}

// ---------------------------------------------------------------------------
// Item 9: failed authentications are counted per address
// ---------------------------------------------------------------------------

fn get_metrics_as(
    addr: SocketAddr,
    source: IpAddr,
    token: &str,
    xff: Option<&str>,
) -> HttpResponse {
    let auth = bearer(token);
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(x) = xff {
        headers.push(("X-Forwarded-For", x));
    }
    http_request(addr, Some(source), "GET", "/metrics", &headers, b"")
}

#[test]
fn bad_tokens_past_the_burst_are_429_even_with_a_right_token_and_only_for_that_ip() {
    // The default bucket: 10 failures, one forgiven every 10 s.
    let server = Server::hub(1, &config());
    for i in 0..10 {
        let resp = get_metrics_as(server.addr, ip(50), "guess-guess-guess", None);
        assert_error(&resp, 401, "invalid_credentials");
        let _ = i;
    }
    let resp = get_metrics_as(server.addr, ip(50), "guess-guess-guess", None);
    assert_error(&resp, 429, "auth_rate_limited");
    let retry: u64 = resp
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "{resp:?}");
    // The right token from that address is refused too, until it refills.
    assert_error(
        &get_metrics_as(server.addr, ip(50), ADMIN_TOKEN, None),
        429,
        "auth_rate_limited",
    );
    // Another address is not affected.
    assert_eq!(
        get_metrics_as(server.addr, ip(51), ADMIN_TOKEN, None).status,
        200
    );
    let text = metrics(server.addr);
    assert_eq!(
        metric_value(&text, "eventhub_auth_failures_total"),
        Some(10),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "eventhub_handshake_refusals_total{reason=\"auth_throttled\"}"
        ),
        Some(2),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Item 12: clients behind a trusted proxy
// ---------------------------------------------------------------------------

/// One subscription per address, 127.0.0.1 a trusted proxy.
fn behind_proxy() -> String {
    format!(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}",
        config_with("max_connections_per_ip = 1\nconnect_rate_per_ip = 0.0", "")
    )
}

fn subscribe_request(extra: &str) -> String {
    format!(
        "GET /v1/ws/subscribe?event_types=pdfm HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: {}\r\n{extra}\r\n",
        bearer(ADMIN_TOKEN)
    )
}

fn proxy_v1(client: &str) -> String {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 8080\r\n")
}

/// A PROXY v2 header, written out by hand: signature, PROXY command, TCP
/// over IPv4, 12 bytes of addresses (client, then 127.0.0.1), ports.
fn proxy_v2(client: &str) -> Vec<u8> {
    let client: std::net::Ipv4Addr = client.parse().unwrap();
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client.octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40001u16.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

#[test]
fn subscribers_behind_a_trusted_proxy_are_told_apart_by_forwarded_address() {
    let server = Server::hub(1, &behind_proxy());
    let addr = server.addr;
    let xff = subscribe_request("X-Forwarded-For: 203.0.113.1\r\n");
    let (_a, resp) = send_from(addr, None, xff.as_bytes());
    assert_eq!(resp.status, 101, "X-Forwarded-For client: {resp:?}");
    let v1 = format!("{}{}", proxy_v1("203.0.113.2"), subscribe_request(""));
    let (_b, resp) = send_from(addr, None, v1.as_bytes());
    assert_eq!(resp.status, 101, "PROXY v1 client: {resp:?}");
    let mut v2 = proxy_v2("203.0.113.3");
    v2.extend_from_slice(subscribe_request("").as_bytes());
    let (_c, resp) = send_from(addr, None, &v2);
    assert_eq!(resp.status, 101, "PROXY v2 client: {resp:?}");

    // The same forwarded addresses again: one connection each.
    let resp = send_from(addr, None, xff.as_bytes()).1;
    let body = assert_error(&resp, 409, "conflict");
    assert!(
        body["message"].as_str().unwrap().contains("203.0.113.1"),
        "{body}"
    );
    // Forwarded by a chain: the right-most hop that is not trusted counts.
    let chained = subscribe_request("X-Forwarded-For: 6.6.6.6, 203.0.113.2, 127.0.0.1\r\n");
    assert_error(
        &send_from(addr, None, chained.as_bytes()).1,
        409,
        "conflict",
    );
    let resp = send_from(addr, None, &v2).1;
    let body = assert_error(&resp, 409, "conflict");
    assert!(
        body["message"].as_str().unwrap().contains("203.0.113.3"),
        "{body}"
    );
}

#[test]
fn an_untrusted_peer_cannot_name_its_address() {
    let server = Server::hub(1, &behind_proxy());
    let addr = server.addr;
    // 127.0.0.2 is not a trusted proxy: its X-Forwarded-For is ignored.
    let first = subscribe_request("X-Forwarded-For: 198.51.100.1\r\n");
    let (_a, resp) = send_from(addr, Some(ip(2)), first.as_bytes());
    assert_eq!(resp.status, 101, "{resp:?}");
    let second = subscribe_request("X-Forwarded-For: 198.51.100.2\r\n");
    let resp = send_from(addr, Some(ip(2)), second.as_bytes()).1;
    let body = assert_error(&resp, 409, "conflict");
    assert!(
        body["message"].as_str().unwrap().contains("127.0.0.2"),
        "{body}"
    );
    // And a PROXY header from it is refused.
    let v1 = format!(
        "{}{}",
        proxy_v1("198.51.100.3"),
        upgrade_request("/v1/ws/subscribe")
    );
    assert_error(
        &send_from(addr, Some(ip(2)), v1.as_bytes()).1,
        400,
        "proxy_header_refused",
    );
    let mut v2 = proxy_v2("198.51.100.4");
    v2.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_error(
        &send_from(addr, Some(ip(2)), &v2).1,
        400,
        "proxy_header_refused",
    );
}

#[test]
fn the_failed_auth_bucket_sees_the_forwarded_address() {
    let server = Server::hub(1, &behind_proxy());
    let addr = server.addr;
    let local = ip(1);
    for _ in 0..10 {
        let resp = get_metrics_as(addr, local, "guess-guess-guess", Some("203.0.113.7"));
        assert_error(&resp, 401, "invalid_credentials");
    }
    let resp = get_metrics_as(addr, local, ADMIN_TOKEN, Some("203.0.113.7"));
    let body = assert_error(&resp, 429, "auth_rate_limited");
    assert!(
        body["message"].as_str().unwrap().contains("203.0.113.7"),
        "{body}"
    );
    // Another client of the same proxy is not affected.
    assert_eq!(
        get_metrics_as(addr, local, ADMIN_TOKEN, Some("203.0.113.8")).status,
        200
    );
}

// ---------------------------------------------------------------------------
// Item 13: plaintext secrets are not kept
// ---------------------------------------------------------------------------

/// Whether `needle` occurs anywhere in the memory of process `pid`: every
/// readable mapping, the pages present in RAM (`/proc/PID/pagemap`: an
/// absent page reads as zeros), each run of present pages read whole from
/// `/proc/PID/mem`. Needs root (or the same user and ptrace rights).
fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = 4096;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).expect("pagemap");
    let mut scanned = 0u64;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (lo, hi) = range.split_once('-').unwrap();
        let lo = u64::from_str_radix(lo, 16).unwrap();
        let hi = u64::from_str_radix(hi, 16).unwrap();
        let pages = ((hi - lo) / PAGE) as usize;
        let mut entries = vec![0u8; pages * 8];
        if pagemap.read_exact_at(&mut entries, lo / PAGE * 8).is_err() {
            continue;
        }
        let present = |i: usize| {
            let e = u64::from_le_bytes(entries[i * 8..i * 8 + 8].try_into().unwrap());
            e & (1 << 63) != 0 || e & (1 << 62) != 0
        };
        let mut i = 0;
        while i < pages {
            if !present(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < pages && present(i) {
                i += 1;
            }
            let mut buf = vec![0u8; (i - start) * PAGE as usize];
            let at = lo + start as u64 * PAGE;
            if mem.read_exact_at(&mut buf, at).is_err() {
                continue;
            }
            scanned += buf.len() as u64;
            if buf.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
    }
    assert!(
        scanned > 1 << 20,
        "scanned only {scanned} bytes: is /proc/PID/mem readable?"
    );
    false
}

#[test]
fn plaintext_secrets_from_the_config_are_not_kept_in_memory() {
    const TOKEN: &str = "zeroize-probe-token-5f0c3a9e71";
    const KEY: &str = "zeroize-probe-key-c81d27b4e6";
    let config = format!(
        "[[principals]]\nname = \"probe\"\ntoken = \"{TOKEN}\"\napi_key = \"{KEY}\"\nadmin = true\n"
    );
    let server = Server::hub(1, &config);
    // The server is up (it announced its address): the principals are built.
    let ok = http_request(server.addr, None, "GET", "/healthz", &[], b"");
    assert_eq!(ok.status, 200);
    let pid = server.pid();
    assert!(
        !memory_contains(pid, TOKEN.as_bytes()),
        "the plaintext token is in the server's memory"
    );
    assert!(
        !memory_contains(pid, KEY.as_bytes()),
        "the plaintext API key is in the server's memory"
    );
    // The token works (it is held as a digest), and the probe finds what
    // is there: a request's head, which is not wiped, keeps a copy.
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/metrics",
        &[("Authorization", &bearer(TOKEN))],
        b"",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        memory_contains(pid, TOKEN.as_bytes()),
        "the probe finds a copy that is there"
    );
}
