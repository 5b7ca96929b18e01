//! permessage-deflate on the wire, byte by byte, against the real binary:
//! what the 101 answers to each kind of offer, that an event reaches a
//! compressing subscriber as one compressed frame (RSV1) that inflates to
//! exactly what a plain subscriber gets at the same time, that small events
//! go plain, that a client that limits the server's window gets plain
//! frames, and what compressed input that breaks the rules gets (1009 for
//! a decompression bomb, 1007 for bad DEFLATE data or text that is not
//! UTF-8 once inflated, 1002 for RSV1 where the extension allows none).

mod common;

use common::api::{self, bearer, event, publish};
use common::{RawClient, Server, ServerFrame};
use eventhub_proto::deflate::{Deflater, Inflater};
use eventhub_proto::{FrameHeader, MessageKind, Opcode};

const OFFER: &str = "permessage-deflate; client_max_window_bits";

fn hub_with(compression: &str) -> Server {
    Server::hub(
        2,
        &format!("{}\n[compression]\n{compression}\n", api::config()),
    )
}

/// A subscription to pdfm as the admin, offering `extensions` if given.
fn subscribe(hub: &Server, extensions: Option<&str>) -> (RawClient, common::HttpResponse) {
    let auth = bearer(api::ADMIN_TOKEN);
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(e) = extensions {
        headers.push(("Sec-WebSocket-Extensions", e));
    }
    let (mut c, resp) =
        RawClient::upgrade_with(hub.addr, "/v1/ws/subscribe?event_types=pdfm", &headers);
    assert_eq!(resp.status, 101, "{resp:?}");
    match c.read_frame() {
        ServerFrame::Text(t) => assert!(t.contains("connection established"), "{t}"),
        other => panic!("expected the confirmation, got {other:?}"),
    }
    (c, resp)
}

/// An event of about `size` bytes of JSON.
fn sized_event(message: &str, size: usize) -> String {
    serde_json::json!({"event_type": "pdfm", "message": message, "body": {"pad": "host-17 vm-42 ".repeat(size / 14)}})
        .to_string()
}

fn inflate(payload: &[u8]) -> String {
    let text = Inflater::new()
        .message(MessageKind::Text, payload, 1 << 24)
        .expect("inflates")
        .to_vec();
    String::from_utf8(text).unwrap()
}

#[test]
fn an_event_reaches_a_compressing_subscriber_as_one_compressed_frame_of_what_others_get_plain() {
    let hub = hub_with("");
    let (mut zipped, resp) = subscribe(&hub, Some(OFFER));
    assert_eq!(
        resp.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let (mut plain, resp) = subscribe(&hub, None);
    assert_eq!(resp.header("sec-websocket-extensions"), None);
    // tungstenite offers no extension: plain frames, from the same hub at
    // the same time.
    let (mut tung, _) = api::subscribe(hub.addr, "pdfm");
    publish(hub.addr, &sized_event("big", 2000));
    publish(hub.addr, &event("pdfm", "small"));
    let z = match zipped.read_frame() {
        ServerFrame::Compressed(p) => p,
        other => panic!("expected a compressed frame, got {other:?}"),
    };
    let p = match plain.read_frame() {
        ServerFrame::Text(t) => t,
        other => panic!("expected a text frame, got {other:?}"),
    };
    assert!(
        z.len() * 3 < p.len(),
        "{} compressed against {} plain",
        z.len(),
        p.len()
    );
    assert_eq!(inflate(&z), p, "the same bytes, inflated");
    let t = common::read_json(&mut tung);
    assert_eq!(t, serde_json::from_str::<serde_json::Value>(&p).unwrap());
    // Under compression.min_bytes (256): plain for both.
    let small = match zipped.read_frame() {
        ServerFrame::Text(t) => t,
        other => panic!("expected the small event plain, got {other:?}"),
    };
    assert!(small.contains("\"small\""));
    let m = api::metrics(hub.addr);
    assert_eq!(
        common::metric_sum(&m, "eventhub_deflated_deliveries_total"),
        1
    );
    assert_eq!(common::metric_sum(&m, "eventhub_deflate_subscribers"), 1);
    assert_eq!(
        common::metric_value(&m, "eventhub_deflate_frames_total"),
        Some(1)
    );
}

#[test]
fn a_replay_sends_compressed_frames_to_a_compressing_subscriber() {
    let hub = hub_with("");
    let seqs: Vec<u64> = (0..3)
        .flat_map(|i| publish(hub.addr, &sized_event(&format!("r{i}"), 1000)))
        .collect();
    let auth = bearer(api::ADMIN_TOKEN);
    let (mut c, _) = RawClient::upgrade_with(
        hub.addr,
        &format!("/v1/ws/subscribe?event_types=pdfm&since={}", seqs[0] - 1),
        &[
            ("Authorization", &auth),
            ("Sec-WebSocket-Extensions", OFFER),
        ],
    );
    assert!(
        matches!(c.read_frame(), ServerFrame::Text(_)),
        "confirmation"
    );
    for i in 0..3 {
        match c.read_frame() {
            ServerFrame::Compressed(z) => assert!(inflate(&z).contains(&format!("\"r{i}\""))),
            other => panic!("expected a compressed replayed event, got {other:?}"),
        }
    }
}

#[test]
fn a_client_that_limits_the_servers_window_gets_it_echoed_and_plain_frames() {
    let hub = hub_with("");
    let (mut c, resp) = subscribe(&hub, Some("permessage-deflate; server_max_window_bits=10"));
    assert_eq!(
        resp.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10")
    );
    publish(hub.addr, &sized_event("big", 2000));
    assert!(
        matches!(c.read_frame(), ServerFrame::Text(_)),
        "a plain frame suits any window"
    );
}

#[test]
fn bad_offers_are_declined_and_the_connection_goes_on_without_the_extension() {
    let hub = hub_with("");
    for offer in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; mystery=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "x-webkit-deflate-frame",
    ] {
        let (mut c, resp) = subscribe(&hub, Some(offer));
        assert_eq!(resp.header("sec-websocket-extensions"), None, "{offer}");
        publish(hub.addr, &sized_event("big", 2000));
        assert!(matches!(c.read_frame(), ServerFrame::Text(_)), "{offer}");
    }
    // A declined offer followed by a good one: the good one.
    let (_, resp) = subscribe(
        &hub,
        Some("permessage-deflate; server_max_window_bits=99, permessage-deflate"),
    );
    assert!(resp.header("sec-websocket-extensions").is_some());
}

#[test]
fn with_compression_disabled_no_offer_is_accepted() {
    let hub = hub_with("enabled = false");
    let (mut c, resp) = subscribe(&hub, Some(OFFER));
    assert_eq!(resp.header("sec-websocket-extensions"), None);
    publish(hub.addr, &sized_event("big", 2000));
    assert!(matches!(c.read_frame(), ServerFrame::Text(_)));
}

/// A compressed client frame of `payload` (RSV1, masked).
fn compressed_client_frame(c: &mut RawClient, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let server_frame = Deflater::new(9).frame(opcode, payload).expect("shrinks");
    let h = FrameHeader::parse_with(&server_frame, true)
        .unwrap()
        .unwrap();
    let mut frame = c.masked(true, opcode, &server_frame[h.header_len..]);
    frame[0] |= 0x40;
    frame
}

fn echo_with_deflate() -> (Server, RawClient) {
    let echo = Server::echo(
        1,
        Some("[limits]\nmax_message_bytes = 1048576\n[echo]\nmax_message_bytes = 1048576\n"),
    );
    let (c, resp) = RawClient::upgrade_with(echo.addr, "/", &[("Sec-WebSocket-Extensions", OFFER)]);
    assert_eq!(resp.status, 101);
    assert!(resp.header("sec-websocket-extensions").is_some());
    (echo, c)
}

#[test]
fn a_decompression_bomb_is_closed_with_1009_after_no_more_than_the_limit() {
    let (_echo, mut c) = echo_with_deflate();
    // 64 MiB of one byte deflate to about 64 KiB; the limit is 1 MiB.
    let bomb = vec![b'a'; 64 << 20];
    let frame = compressed_client_frame(&mut c, Opcode::Binary, &bomb);
    assert!(frame.len() < 200_000);
    c.send_bytes(&frame);
    let reason = c.expect_close(1009);
    assert!(reason.contains("exceeds the limit of 1048576"), "{reason}");
}

#[test]
fn bad_deflate_data_and_text_that_is_not_utf8_once_inflated_are_closed_with_1007() {
    let (_echo, mut c) = echo_with_deflate();
    let mut frame = c.masked(true, Opcode::Binary, &[0xff, 0xff, 0xff, 0xff]);
    frame[0] |= 0x40;
    c.send_bytes(&frame);
    c.expect_close(1007);
    let (_echo, mut c) = echo_with_deflate();
    let latin1 = [0xe9u8; 100];
    let frame = compressed_client_frame(&mut c, Opcode::Text, &latin1);
    c.send_bytes(&frame);
    c.expect_close(1007);
}

#[test]
fn rsv1_on_a_continuation_or_without_the_extension_is_closed_with_1002() {
    let (_echo, mut c) = echo_with_deflate();
    let first = c.masked(false, Opcode::Text, b"abc");
    let mut cont = c.masked(true, Opcode::Continuation, b"def");
    cont[0] |= 0x40;
    c.send_bytes(&[first, cont].concat());
    c.expect_close(1002);
    let echo = Server::echo(1, None);
    let mut plain = RawClient::upgrade(echo.addr);
    let mut frame = plain.masked(true, Opcode::Text, b"abc");
    frame[0] |= 0x40;
    plain.send_bytes(&frame);
    plain.expect_close(1002);
}

#[test]
fn a_compressed_fragmented_message_is_inflated_whole_and_echoed() {
    let (_echo, mut c) = echo_with_deflate();
    let text = "fragmented and compressed ".repeat(200);
    let server_frame = Deflater::new(6)
        .frame(Opcode::Text, text.as_bytes())
        .unwrap();
    let h = FrameHeader::parse_with(&server_frame, true)
        .unwrap()
        .unwrap();
    let body = &server_frame[h.header_len..];
    let (a, b) = body.split_at(body.len() / 2);
    let mut first = c.masked(false, Opcode::Text, a);
    first[0] |= 0x40;
    let rest = c.masked(true, Opcode::Continuation, b);
    c.send_bytes(&[first, rest].concat());
    match c.read_frame() {
        ServerFrame::Compressed(z) => assert_eq!(inflate(&z), text),
        other => panic!("expected the echo compressed, got {other:?}"),
    }
}
