//! RFC 6455 conformance of `eventhub echo`, end to end: every test starts
//! the real binary and talks to it over TCP, either with tungstenite (a
//! well-behaved client) or with the raw client of `common`, which can send
//! the broken bytes tungstenite refuses to produce.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{
    http_get, metric_per_core, upgrade_request, ws_connect, HttpResponse, RawClient, Server,
    ServerFrame, SAMPLE_KEY, TIMEOUT,
};
use eventhub::proto::{frame, Opcode};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// A short close timeout, so that a connection whose close the client
/// never answers is dropped quickly.
const QUICK_CLOSE: &str = "[limits]\nclose_timeout_s = 1\n";

fn echo_server() -> Server {
    Server::echo(2, Some(QUICK_CLOSE))
}

/// Sends a raw request head and returns the refusal, checking that it is
/// the JSON error shape and that the server then closes the connection.
fn refusal(server: &Server, request: &str) -> HttpResponse {
    let mut c = RawClient::connect(server.addr);
    c.send_bytes(request.as_bytes());
    let resp = c.read_http_response();
    assert_json_error(&resp);
    c.expect_eof();
    resp
}

fn assert_json_error(resp: &HttpResponse) {
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{resp:?}"
    );
    let body = resp.body.trim();
    assert!(
        body.starts_with('{') && body.ends_with('}'),
        "body is not a JSON object: {body:?}"
    );
    assert!(body.contains("\"error\":\""), "no error field: {body:?}");
    assert!(
        body.contains("\"message\":\""),
        "no message field: {body:?}"
    );
}

/// A request head made of `lines` (each without its CRLF).
fn head(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Opens a connection, lets `send` break a rule, and checks that the
/// server fails the connection with `code`, then closes TCP once the client
/// answers the close.
fn assert_violation(server: &Server, code: u16, send: impl FnOnce(&mut RawClient)) -> String {
    let mut c = RawClient::upgrade(server.addr);
    send(&mut c);
    let reason = c.expect_close(code);
    c.finish_close(code);
    reason
}

/// A payload whose bytes are not all alike, to catch reordering or masking
/// mistakes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Reads tungstenite messages until a data message, skipping pings/pongs.
fn next_data(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> Message {
    loop {
        match ws.read().expect("read a message") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

// ---------------------------------------------------------------------------
// Handshake refusals
// ---------------------------------------------------------------------------

#[test]
fn upgrade_without_key_is_refused_with_400() {
    let server = echo_server();
    let resp = refusal(
        &server,
        &head(&[
            "GET / HTTP/1.1",
            "Host: localhost",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ]),
    );
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[test]
fn upgrade_with_malformed_key_is_refused_with_400() {
    let server = echo_server();
    for key in ["c2hvcnQ=", "!!!not-base64!!!"] {
        let resp = refusal(
            &server,
            &head(&[
                "GET / HTTP/1.1",
                "Host: localhost",
                "Upgrade: websocket",
                "Connection: Upgrade",
                &format!("Sec-WebSocket-Key: {key}"),
                "Sec-WebSocket-Version: 13",
            ]),
        );
        assert_eq!(resp.status, 400, "key {key:?}: {resp:?}");
    }
}

#[test]
fn post_upgrade_is_refused_with_405_allowing_get() {
    let server = echo_server();
    let resp = refusal(&server, &upgrade_request("/").replacen("GET", "POST", 1));
    assert_eq!(resp.status, 405, "{resp:?}");
    assert_eq!(resp.header("allow"), Some("GET"));
}

#[test]
fn request_without_upgrade_header_is_refused_with_426() {
    let server = echo_server();
    let resp = refusal(
        &server,
        &head(&[
            "GET / HTTP/1.1",
            "Host: localhost",
            "Connection: Upgrade",
            &format!("Sec-WebSocket-Key: {SAMPLE_KEY}"),
            "Sec-WebSocket-Version: 13",
        ]),
    );
    assert_eq!(resp.status, 426, "{resp:?}");
}

#[test]
fn websocket_version_8_is_refused_with_426_naming_version_13() {
    let server = echo_server();
    let resp = refusal(
        &server,
        &upgrade_request("/").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
    );
    assert_eq!(resp.status, 426, "{resp:?}");
    assert_eq!(resp.header("sec-websocket-version"), Some("13"));
}

#[test]
fn oversized_request_head_is_refused_with_431() {
    let server = echo_server();
    let pad = "a".repeat(16 * 1024);
    let resp = refusal(
        &server,
        &head(&[
            "GET / HTTP/1.1",
            "Host: localhost",
            &format!("X-Padding: {pad}"),
        ]),
    );
    assert_eq!(resp.status, 431, "{resp:?}");
}

#[test]
fn too_many_headers_are_refused_with_431() {
    let server = echo_server();
    let mut lines = vec!["GET / HTTP/1.1".to_string(), "Host: localhost".to_string()];
    lines.extend((0..100).map(|i| format!("X-H{i}: {i}")));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let resp = refusal(&server, &head(&lines));
    assert_eq!(resp.status, 431, "{resp:?}");
}

#[test]
fn slow_request_head_is_refused_with_408() {
    let server = Server::echo(2, Some("[limits]\nhandshake_timeout_ms = 300\n"));
    let mut c = RawClient::connect(server.addr);
    // Part of a head, then nothing: the handshake timeout must fire.
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n");
    let resp = c.read_http_response();
    assert_eq!(resp.status, 408, "{resp:?}");
    assert_json_error(&resp);
    c.expect_eof();
}

#[test]
fn valid_upgrade_gets_101_with_rfc_accept_value() {
    let server = echo_server();
    let mut c = RawClient::connect(server.addr);
    c.send_bytes(upgrade_request("/any/path?x=1").as_bytes());
    let resp = c.read_http_response();
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some(common::SAMPLE_ACCEPT)
    );
    assert!(resp
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
}

// ---------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------

#[test]
fn text_message_is_echoed_by_tungstenite_client() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    let text = "Hello, eventhub: héllo wörld ✓ 🚀";
    ws.send(Message::text(text)).unwrap();
    match next_data(&mut ws) {
        Message::Text(t) => assert_eq!(t.as_str(), text),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn binary_message_is_echoed_by_tungstenite_client() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    let data: Vec<u8> = (0..=255u8).collect();
    ws.send(Message::binary(data.clone())).unwrap();
    match next_data(&mut ws) {
        Message::Binary(b) => assert_eq!(&b[..], &data[..]),
        other => panic!("expected binary, got {other:?}"),
    }
}

#[test]
fn empty_text_and_binary_messages_are_echoed() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    ws.send(Message::text("")).unwrap();
    ws.send(Message::binary(Vec::new())).unwrap();
    match next_data(&mut ws) {
        Message::Text(t) => assert!(t.is_empty()),
        other => panic!("expected empty text, got {other:?}"),
    }
    match next_data(&mut ws) {
        Message::Binary(b) => assert!(b.is_empty()),
        other => panic!("expected empty binary, got {other:?}"),
    }
}

#[test]
fn messages_at_every_length_encoding_boundary_are_echoed() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    for len in [1, 125, 126, 127, 65_535, 65_536, 70_000] {
        let data = pattern(len);
        ws.send(Message::binary(data.clone())).unwrap();
        match next_data(&mut ws) {
            Message::Binary(b) => assert!(b[..] == data[..], "length {len} came back altered"),
            other => panic!("length {len}: expected binary, got {other:?}"),
        }
    }
}

#[test]
fn large_8_mib_binary_message_is_echoed_intact() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    let data = pattern(8 << 20);
    ws.send(Message::binary(data.clone())).unwrap();
    match next_data(&mut ws) {
        Message::Binary(b) => {
            assert_eq!(b.len(), data.len());
            assert!(b[..] == data[..], "8 MiB message came back altered");
        }
        other => panic!("expected binary, got {other:?}"),
    }
}

#[test]
fn pipelined_messages_are_echoed_in_order() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend(c.masked(true, Opcode::Text, format!("message {i}").as_bytes()));
    }
    c.send_bytes(&burst);
    for i in 0..200 {
        assert_eq!(c.read_frame(), ServerFrame::Text(format!("message {i}")));
    }
}

/// A client that writes far more than it reads fills the server's send
/// queue; the server then stops reading (so the queue cannot grow without
/// bound) and must start again, with nothing lost, once the client reads.
#[test]
fn client_that_writes_without_reading_is_paused_then_fully_echoed() {
    let server = Server::echo(
        1,
        Some("[limits]\nclose_timeout_s = 1\nsend_queue_bytes = 65536\n"),
    );
    let mut c = RawClient::upgrade(server.addr);
    const MESSAGES: usize = 2_000;
    let payload = |i: usize| format!("{i:06}-{}", "x".repeat(8_000));
    let mut burst = Vec::new();
    for i in 0..MESSAGES {
        burst.extend(c.masked(true, Opcode::Text, payload(i).as_bytes()));
    }
    // 16 MB each way: far beyond the queue bound and the socket buffers, so
    // the writer blocks until the reader below drains the echoes.
    let mut writer = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&burst));
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..MESSAGES {
        assert_eq!(c.read_frame(), ServerFrame::Text(payload(i)), "message {i}");
    }
    sender
        .join()
        .unwrap()
        .expect("every byte was taken by the server");
}

#[test]
fn frame_sent_one_byte_at_a_time_is_echoed() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    let text = "x".repeat(300); // 16-bit length form
    let f = c.masked(true, Opcode::Text, text.as_bytes());
    for b in &f {
        c.send_bytes(std::slice::from_ref(b));
    }
    assert_eq!(c.read_frame(), ServerFrame::Text(text));
}

// ---------------------------------------------------------------------------
// Fragmentation, ping/pong
// ---------------------------------------------------------------------------

#[test]
fn fragmented_text_with_interleaved_ping_is_echoed_once_with_a_pong() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    c.send_frame(false, Opcode::Text, "Hel".as_bytes());
    c.send_frame(true, Opcode::Ping, b"in the middle");
    c.send_frame(false, Opcode::Continuation, "lo, wö".as_bytes());
    c.send_frame(true, Opcode::Continuation, "rld".as_bytes());
    let mut got = vec![c.read_frame(), c.read_frame()];
    got.sort_by_key(|f| matches!(f, ServerFrame::Text(_)));
    assert_eq!(
        got,
        vec![
            ServerFrame::Pong(b"in the middle".to_vec()),
            ServerFrame::Text("Hello, wörld".to_string()),
        ]
    );
    // Nothing else was echoed: the next frame answers the next ping.
    c.send_frame(true, Opcode::Ping, b"end");
    assert_eq!(c.read_frame(), ServerFrame::Pong(b"end".to_vec()));
}

#[test]
fn fragmented_binary_message_is_echoed_as_one_message() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    let data = pattern(3000);
    c.send_frame(false, Opcode::Binary, &data[..1000]);
    c.send_frame(false, Opcode::Continuation, &data[1000..1000]);
    c.send_frame(false, Opcode::Continuation, &data[1000..2500]);
    c.send_frame(true, Opcode::Continuation, &data[2500..]);
    assert_eq!(c.read_frame(), ServerFrame::Binary(data));
}

#[test]
fn ping_payload_comes_back_identical_in_pong() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    let payload = pattern(125);
    c.send_frame(true, Opcode::Ping, &payload);
    assert_eq!(c.read_frame(), ServerFrame::Pong(payload));
    c.send_frame(true, Opcode::Ping, b"");
    assert_eq!(c.read_frame(), ServerFrame::Pong(Vec::new()));
}

#[test]
fn tungstenite_ping_is_answered_with_same_payload() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    ws.send(Message::Ping(b"are you there?".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there?"),
        other => panic!("expected pong, got {other:?}"),
    }
}

#[test]
fn unsolicited_pong_is_ignored() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    c.send_frame(true, Opcode::Pong, b"heartbeat");
    c.send_frame(true, Opcode::Text, b"still here");
    assert_eq!(c.read_frame(), ServerFrame::Text("still here".into()));
}

// ---------------------------------------------------------------------------
// Invalid UTF-8: 1007
// ---------------------------------------------------------------------------

#[test]
fn invalid_utf8_text_frame_closes_with_1007() {
    let server = echo_server();
    assert_violation(&server, 1007, |c| {
        c.send_frame(true, Opcode::Text, b"abc\xff\xfedef");
    });
}

#[test]
fn invalid_utf8_split_across_fragments_closes_with_1007() {
    let server = echo_server();
    // A valid lead byte, then a byte that cannot continue it.
    assert_violation(&server, 1007, |c| {
        c.send_frame(false, Opcode::Text, b"ok \xce");
        c.send_frame(true, Opcode::Continuation, b"\xff");
    });
    // A surrogate (U+D800) cut at the fragment boundary.
    assert_violation(&server, 1007, |c| {
        c.send_frame(false, Opcode::Text, b"\xed");
        c.send_frame(true, Opcode::Continuation, b"\xa0\x80");
    });
}

#[test]
fn text_message_ending_inside_a_code_point_closes_with_1007() {
    let server = echo_server();
    assert_violation(&server, 1007, |c| {
        c.send_frame(true, Opcode::Text, b"ends in \xe2\x82");
    });
    assert_violation(&server, 1007, |c| {
        c.send_frame(false, Opcode::Text, b"fine so far");
        c.send_frame(true, Opcode::Continuation, b" \xf0\x9f");
    });
}

#[test]
fn close_reason_with_invalid_utf8_closes_with_1007() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bad \xff reason");
    c.send_frame(true, Opcode::Close, &payload);
    c.expect_close(1007);
    c.expect_eof();
}

// ---------------------------------------------------------------------------
// Framing violations: 1002
// ---------------------------------------------------------------------------

#[test]
fn reserved_bits_close_with_1002() {
    let server = echo_server();
    for rsv in [0x40u8, 0x20, 0x10] {
        assert_violation(&server, 1002, |c| {
            let mut f = c.masked(true, Opcode::Text, b"rsv");
            f[0] |= rsv;
            c.send_bytes(&f);
        });
    }
}

#[test]
fn reserved_opcodes_close_with_1002() {
    let server = echo_server();
    for op in [0x3u8, 0x7, 0xb, 0xf] {
        assert_violation(&server, 1002, |c| {
            let mut f = c.masked(true, Opcode::Binary, b"op");
            f[0] = 0x80 | op;
            c.send_bytes(&f);
        });
    }
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let server = echo_server();
    assert_violation(&server, 1002, |c| {
        c.send_bytes(&frame(Opcode::Text, b"not masked"));
    });
}

#[test]
fn continuation_without_start_closes_with_1002() {
    let server = echo_server();
    assert_violation(&server, 1002, |c| {
        c.send_frame(true, Opcode::Continuation, b"orphan");
    });
}

#[test]
fn new_data_frame_inside_fragmented_message_closes_with_1002() {
    let server = echo_server();
    assert_violation(&server, 1002, |c| {
        c.send_frame(false, Opcode::Text, b"first half");
        c.send_frame(true, Opcode::Text, b"a new message");
    });
}

#[test]
fn fragmented_or_oversized_control_frame_closes_with_1002() {
    let server = echo_server();
    assert_violation(&server, 1002, |c| {
        c.send_frame(false, Opcode::Ping, b"part");
    });
    assert_violation(&server, 1002, |c| {
        c.send_frame(true, Opcode::Ping, &[7u8; 126]);
    });
}

#[test]
fn close_with_reserved_or_invalid_code_closes_with_1002() {
    let server = echo_server();
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
        let mut c = RawClient::upgrade(server.addr);
        c.send_close(code, "");
        let got = c.read_frame();
        assert!(
            matches!(got, ServerFrame::Close(Some((1002, _)))),
            "close code {code}: expected close 1002, got {got:?}"
        );
        // The client has already sent its close; the server must end TCP.
        c.expect_eof();
    }
}

#[test]
fn close_with_one_byte_payload_closes_with_1002() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    c.send_frame(true, Opcode::Close, &[0x03]);
    c.expect_close(1002);
    c.expect_eof();
}

// ---------------------------------------------------------------------------
// Message size: 1009
// ---------------------------------------------------------------------------

const SMALL_MAX: &str = "[limits]\nclose_timeout_s = 1\n[echo]\nmax_message_bytes = 1024\n";

#[test]
fn message_at_the_configured_limit_is_echoed() {
    let server = Server::echo(2, Some(SMALL_MAX));
    let mut c = RawClient::upgrade(server.addr);
    let data = pattern(1024);
    c.send_frame(true, Opcode::Binary, &data);
    assert_eq!(c.read_frame(), ServerFrame::Binary(data));
}

#[test]
fn message_over_the_configured_limit_closes_with_1009() {
    let server = Server::echo(2, Some(SMALL_MAX));
    assert_violation(&server, 1009, |c| {
        c.send_frame(true, Opcode::Binary, &pattern(1025));
    });
}

#[test]
fn fragmented_message_over_the_configured_limit_closes_with_1009() {
    let server = Server::echo(2, Some(SMALL_MAX));
    assert_violation(&server, 1009, |c| {
        c.send_frame(false, Opcode::Text, &[b'a'; 600]);
        c.send_frame(true, Opcode::Continuation, &[b'b'; 600]);
    });
}

// ---------------------------------------------------------------------------
// Close handshake
// ---------------------------------------------------------------------------

#[test]
fn normal_close_is_answered_with_1000_then_tcp_is_closed() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    c.send_frame(true, Opcode::Text, b"before close");
    assert_eq!(c.read_frame(), ServerFrame::Text("before close".into()));
    c.send_close(1000, "bye");
    c.expect_close(1000);
    c.expect_eof();
}

#[test]
fn empty_close_is_answered_with_empty_close_then_tcp_is_closed() {
    let server = echo_server();
    let mut c = RawClient::upgrade(server.addr);
    c.send_frame(true, Opcode::Close, b"");
    assert_eq!(c.read_frame(), ServerFrame::Close(None));
    c.expect_eof();
}

#[test]
fn tungstenite_close_handshake_completes_with_1000() {
    let server = echo_server();
    let mut ws = ws_connect(server.addr);
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    let mut saw_close = false;
    loop {
        match ws.read() {
            Ok(Message::Close(Some(cf))) => {
                assert_eq!(cf.code, CloseCode::Normal);
                saw_close = true;
            }
            Ok(Message::Close(None)) => panic!("close reply without a code"),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unexpected error while closing: {e}"),
        }
    }
    assert!(saw_close, "no close frame came back");
}

// ---------------------------------------------------------------------------
// Idle timeout and keepalive
// ---------------------------------------------------------------------------

#[test]
fn silent_client_gets_ping_then_close_1001_idle_timeout() {
    let server = Server::echo(
        2,
        Some("[limits]\nping_interval_s = 1\nidle_timeout_s = 2\nclose_timeout_s = 1\n"),
    );
    let mut c = RawClient::upgrade(server.addr);
    // The client never sends a byte, so it never answers the ping.
    assert_eq!(c.read_frame(), ServerFrame::Ping(Vec::new()));
    let reason = c.expect_close(1001);
    assert_eq!(reason, "idle timeout");
    c.finish_close(1001);
}

#[test]
fn tungstenite_client_that_keeps_reading_stays_open_past_idle_timeout() {
    // tungstenite answers each ping with a pong on its next read; the
    // margin between ping and idle close is 2 s.
    let server = Server::echo(
        2,
        Some("[limits]\nping_interval_s = 1\nidle_timeout_s = 3\n"),
    );
    let mut ws = ws_connect(server.addr);
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut pings = 0;
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected message while idle: {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("connection ended while idle (after {pings} pings): {e}"),
        }
    }
    assert!(pings >= 1, "the server sent no ping in 7 s");
    ws.get_ref().set_read_timeout(Some(TIMEOUT)).unwrap();
    ws.send(Message::text("still alive")).unwrap();
    match next_data(&mut ws) {
        Message::Text(t) => assert_eq!(t.as_str(), "still alive"),
        other => panic!("expected text, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

#[test]
fn sigterm_closes_every_client_with_1001_server_restart_and_exits_zero() {
    let mut server = Server::echo(2, None);
    let mut raws: Vec<RawClient> = (0..6)
        .map(|i| {
            let mut c = RawClient::upgrade(server.addr);
            let msg = format!("client {i}");
            c.send_frame(true, Opcode::Text, msg.as_bytes());
            assert_eq!(c.read_frame(), ServerFrame::Text(msg));
            c
        })
        .collect();
    let mut tws: Vec<_> = (0..2)
        .map(|_| {
            let mut ws = ws_connect(server.addr);
            ws.send(Message::text("hi")).unwrap();
            assert!(matches!(next_data(&mut ws), Message::Text(_)));
            ws
        })
        .collect();

    server.signal_term();

    for c in &mut raws {
        assert_eq!(c.expect_close(1001), "server restart");
        c.finish_close(1001);
    }
    for ws in &mut tws {
        match ws.read() {
            Ok(Message::Close(Some(cf))) => {
                assert_eq!(cf.code, CloseCode::Away);
                assert_eq!(cf.reason.as_str(), "server restart");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
        // Reading on sends tungstenite's reply and sees the TCP close.
        loop {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("unexpected error after close: {e}"),
            }
        }
    }
    let status = server.wait_exit(2 * TIMEOUT);
    assert!(status.success(), "exit status {status:?}");
}

// ---------------------------------------------------------------------------
// Cores
// ---------------------------------------------------------------------------

#[test]
fn connections_from_many_addresses_spread_over_all_cores() {
    let server = Server::echo(2, None);
    let clients: Vec<RawClient> = (2..=41u8)
        .map(|last| {
            RawClient::upgrade_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), server.addr)
        })
        .collect();
    assert_eq!(clients.len(), 40);

    let resp = http_get(server.addr, "/metrics");
    assert_eq!(resp.status, 200, "{resp:?}");
    let upgrades = metric_per_core(&resp.body, "eventhub_upgrades_total");
    assert_eq!(upgrades.len(), 2, "one value per core: {}", resp.body);
    for (core, n) in &upgrades {
        assert!(*n > 0, "core {core} took no upgrade: {upgrades:?}");
    }
    assert_eq!(upgrades.iter().map(|(_, n)| n).sum::<u64>(), 40);
    let open = metric_per_core(&resp.body, "eventhub_connections_open");
    assert_eq!(open.iter().map(|(_, n)| n).sum::<u64>(), 40, "{open:?}");
    drop(clients);
}
