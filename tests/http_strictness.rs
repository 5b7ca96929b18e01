//! What RFC 9112 and RFC 9110 say a server must not accept in a request
//! head, sent byte for byte over a raw socket to a running hub: each is
//! refused with its status and a JSON error body before anything is routed,
//! and the hub goes on serving well-formed requests.
//!
//! Each test runs against a real `eventhub serve` process that the shared
//! harness (`tests/common`) starts, over real sockets on the loopback
//! interface.

mod common;

use common::api::{assert_error, bearer, hub, post_events, PRODUCER_TOKEN};
use common::RawClient;

/// Sends `head` (and `body`) as they are and reads the answer.
fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> common::HttpResponse {
    let mut c = RawClient::connect(addr);
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    let _ = c.try_send_bytes(&bytes);
    c.read_http_response()
}

/// A `POST /v1/events` head with the producer's token and `framing`
/// header lines.
fn post_head(framing: &str) -> String {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n{framing}\r\n",
        bearer(PRODUCER_TOKEN)
    )
}

const EVENT: &[u8] = br#"{"event_type":"pdfm","message":"m"}"#;

#[test]
fn conflicting_or_malformed_content_length_is_400() {
    let server = hub();
    let n = EVENT.len();
    for framing in [
        format!("Content-Length: {n}\r\nContent-Length: {n}\r\n"),
        format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
        format!("Content-Length: +{n}\r\n"),
        "Content-Length: -1\r\n".to_string(),
        format!("Content-Length: {n}, {n}\r\n"),
        "Content-Length: 0x20\r\n".to_string(),
    ] {
        let resp = raw(server.addr, &post_head(&framing), EVENT);
        let body = assert_error(&resp, 400, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains("Content-Length"),
            "{framing:?}: {body}"
        );
    }
    // The hub still serves a well-formed publish.
    assert_eq!(
        post_events(server.addr, PRODUCER_TOKEN, "{\"event_type\":\"pdfm\"}").status,
        202
    );
}

#[test]
fn transfer_encoding_is_501_and_with_content_length_400() {
    let server = hub();
    let resp = raw(
        server.addr,
        &post_head("Transfer-Encoding: chunked\r\n"),
        b"5\r\nhello\r\n0\r\n\r\n",
    );
    assert_error(&resp, 501, "not_implemented");
    let resp = raw(
        server.addr,
        &post_head(&format!(
            "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
            EVENT.len()
        )),
        EVENT,
    );
    let body = assert_error(&resp, 400, "bad_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Transfer-Encoding"),
        "{body}"
    );
}

#[test]
fn control_characters_and_bare_line_endings_in_the_head_are_400() {
    let server = hub();
    for head in [
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Note: a\0b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Note: a\rb\r\n\r\n",
        "GET /healthz HTTP/1.1\nHost: localhost\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX\0Bad: v\r\n\r\n",
    ] {
        let resp = raw(server.addr, head, b"");
        assert_error(&resp, 400, "bad_request");
    }
    let ok = raw(
        server.addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"",
    );
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[test]
fn a_missing_repeated_listed_or_userinfo_host_on_http_1_1_is_400() {
    let server = hub();
    for (hosts, says) in [
        ("", "missing Host"),
        ("Host: a\r\nHost: b\r\n", "more than one Host"),
        ("Host: a, b\r\n", "invalid Host"),
        ("Host: user@localhost\r\n", "invalid Host"),
    ] {
        let head = format!("GET /healthz HTTP/1.1\r\n{hosts}\r\n");
        let resp = raw(server.addr, &head, b"");
        let body = assert_error(&resp, 400, "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{hosts:?}: {body}"
        );
    }
    // HTTP/1.0 needs no Host.
    let ok = raw(server.addr, "GET /healthz HTTP/1.0\r\n\r\n", b"");
    assert_eq!(ok.status, 200, "{ok:?}");
}
