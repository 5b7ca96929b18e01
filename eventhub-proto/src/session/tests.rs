//! The session driven without a socket: every close-handshake path of
//! Autobahn|Testsuite section 7, pings between fragments, garbage after a
//! close, and the deadlines, each fed whole and a byte at a time.

use super::*;
use crate::frame::{masked_frame, FrameHeader};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

const CONFIG: SessionConfig = SessionConfig {
    max_message: 1 << 16,
    ping_after_ms: 30_000,
    idle_after_ms: 65_000,
    close_timeout_ms: 5_000,
};

/// What the caller saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Message(MessageKind, Vec<u8>),
    /// A frame to queue: opcode and payload.
    Send(Opcode, Vec<u8>),
    Violation(u16),
    Finished,
}

fn unframe(f: &Bytes) -> (Opcode, Vec<u8>) {
    let h = FrameHeader::parse(f).unwrap().unwrap();
    assert!(
        h.fin && h.mask.is_none(),
        "a server frame, whole and unmasked"
    );
    (h.opcode, f[h.header_len..].to_vec())
}

/// Feeds one read to the session, collecting what it asks for.
fn feed(s: &mut Session, bytes: &[u8], now: Stamp, out: &mut Vec<Out>) {
    let mut buf = bytes.to_vec();
    let mut input = s.input(&CONFIG, &mut buf, now);
    let mut inflater = crate::deflate::Inflater::new();
    loop {
        match s.next(&mut input, now, &mut inflater) {
            Received::End => break,
            Received::Nothing => {}
            Received::Message(kind, p) => out.push(Out::Message(kind, p.to_vec())),
            Received::Reply(f) => {
                let (op, p) = unframe(&f);
                out.push(Out::Send(op, p));
            }
            Received::Violation(f, e) => {
                let (op, p) = unframe(&f);
                assert_eq!(op, Opcode::Close);
                assert_eq!(u16::from_be_bytes([p[0], p[1]]), e.close_code().0);
                out.push(Out::Violation(e.close_code().0));
            }
            Received::Finished => {
                out.push(Out::Finished);
                break;
            }
        }
    }
    s.keep(input);
}

/// Runs `wire` through a new session whole, then a byte at a time, checks
/// both give the same, and returns it with the session's phase. (A
/// violation drops the rest of the read it came in; fed a byte at a time,
/// the rest would be new reads, so that feed stops there.)
fn run(wire: &[u8]) -> (Vec<Out>, Phase) {
    let mut whole = Session::new(0);
    let mut got = Vec::new();
    feed(&mut whole, wire, 1, &mut got);
    let mut bytewise = Session::new(0);
    let mut got_bytewise = Vec::new();
    for b in wire {
        if !bytewise.may_read() || matches!(got_bytewise.last(), Some(Out::Violation(_))) {
            break;
        }
        feed(&mut bytewise, std::slice::from_ref(b), 1, &mut got_bytewise);
    }
    assert_eq!(got, got_bytewise, "whole vs byte at a time");
    assert_eq!(whole.phase(), bytewise.phase());
    (got, whole.phase())
}

fn client(op: Opcode, payload: &[u8]) -> Vec<u8> {
    masked_frame(true, op, payload, KEY)
}

fn close_with(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    client(Opcode::Close, &p)
}

fn close_reply(code: u16) -> Out {
    Out::Send(Opcode::Close, code.to_be_bytes().to_vec())
}

fn text(s: &str) -> Out {
    Out::Message(MessageKind::Text, s.as_bytes().to_vec())
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn a_message_then_a_close_is_delivered_and_answered_with_the_same_code() {
    // 7.1.1
    let (out, phase) = run(&cat(&[
        client(Opcode::Text, b"Hello World!"),
        close_with(1000, b""),
    ]));
    assert_eq!(out, [text("Hello World!"), close_reply(1000)]);
    assert_eq!(phase, Phase::CloseReceived);
}

#[test]
fn after_the_peers_close_nothing_more_is_read_and_the_transport_closes_once_the_reply_is_written() {
    // 7.1.2-7.1.4: a second close, a ping, a text after the close.
    let (out, _) = run(&cat(&[
        close_with(1000, b""),
        close_with(1000, b""),
        client(Opcode::Ping, b"x"),
        client(Opcode::Text, b"late"),
    ]));
    assert_eq!(out, [close_reply(1000)]);
    let mut s = Session::new(0);
    feed(&mut s, &close_with(1000, b""), 1, &mut Vec::new());
    assert!(!s.may_read());
    assert!(!s.is_done(true), "the reply is still queued");
    assert!(s.is_done(false));
    assert!(
        s.close(CloseCode::NORMAL, "", 2).is_none(),
        "no second close"
    );
}

#[test]
fn a_close_between_fragments_ends_the_message_unfinished() {
    // 7.1.5
    let (out, _) = run(&cat(&[
        masked_frame(false, Opcode::Text, b"fragment1", KEY),
        close_with(1000, b""),
        masked_frame(true, Opcode::Continuation, b"fragment2", KEY),
    ]));
    assert_eq!(out, [close_reply(1000)]);
}

#[test]
fn a_large_message_then_a_close_are_both_handled() {
    // 7.1.6
    let big = vec![b'*'; 60_000];
    let (out, _) = run(&cat(&[
        client(Opcode::Binary, &big),
        client(Opcode::Ping, b"p"),
        close_with(1000, b""),
    ]));
    assert_eq!(
        out,
        [
            Out::Message(MessageKind::Binary, big),
            Out::Send(Opcode::Pong, b"p".to_vec()),
            close_reply(1000),
        ]
    );
}

#[test]
fn close_payloads_of_each_legal_shape_are_answered() {
    // 7.3.1 empty, 7.3.3 code only, 7.3.4 code and reason, 7.3.5 a
    // 123-byte reason.
    let (out, _) = run(&client(Opcode::Close, b""));
    assert_eq!(out, [Out::Send(Opcode::Close, vec![])]);
    for reason in [&b""[..], b"Hello World!", &[b'*'; 123]] {
        let (out, _) = run(&close_with(1000, reason));
        assert_eq!(out, [close_reply(1000)], "reason of {} bytes", reason.len());
    }
}

#[test]
fn a_malformed_close_frame_is_answered_with_its_error_and_ends_the_handshake() {
    // 7.3.2 one byte, 7.3.6 a 124-byte reason, 7.5.1 a reason that is
    // not UTF-8: the peer has closed already, so ours is the last word.
    for (wire, code) in [
        (client(Opcode::Close, b"\x03"), 1002),
        (close_with(1000, &[b'*'; 124]), 1002),
        (
            close_with(
                1000,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
            ),
            1007,
        ),
    ] {
        let (out, phase) = run(&wire);
        assert_eq!(out, [Out::Violation(code)]);
        assert_eq!(phase, Phase::CloseReceived);
    }
}

#[test]
fn every_valid_close_code_is_echoed() {
    // 7.7.1-7.7.13
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let (out, _) = run(&close_with(code, b""));
        assert_eq!(out, [close_reply(code)], "code {code}");
    }
}

#[test]
fn every_invalid_close_code_fails_with_1002() {
    // 7.9.1-7.9.9, 7.13.1-7.13.2
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (out, phase) = run(&close_with(code, b""));
        assert_eq!(out, [Out::Violation(1002)], "code {code}");
        assert_eq!(phase, Phase::CloseReceived);
    }
}

#[test]
fn a_close_we_start_waits_for_the_peers_close_and_ignores_its_data_meanwhile() {
    let mut s = Session::new(0);
    let f = s
        .close(CloseCode::GOING_AWAY, "server restart", 10)
        .unwrap();
    assert_eq!(unframe(&f).0, Opcode::Close);
    assert!(!s.is_open() && s.may_read());
    let mut out = Vec::new();
    feed(
        &mut s,
        &cat(&[
            client(Opcode::Text, b"in flight"),
            client(Opcode::Ping, b"p"),
            close_with(1001, b""),
        ]),
        20,
        &mut out,
    );
    assert_eq!(out, [Out::Finished]);
    assert!(s.is_done(true));
}

#[test]
fn a_protocol_error_sends_its_close_drops_the_rest_and_still_reads_the_peers_close() {
    let mut s = Session::new(0);
    let mut out = Vec::new();
    let unmasked = crate::frame::frame(Opcode::Text, b"no mask").to_vec();
    feed(
        &mut s,
        &cat(&[unmasked, client(Opcode::Text, b"dropped")]),
        1,
        &mut out,
    );
    assert_eq!(out, [Out::Violation(1002)]);
    assert_eq!(s.phase(), Phase::CloseSent);
    assert!(s.should_half_close(), "the connection is being failed");
    // What follows is not read, not even a close frame: the transport's
    // end (after our half-close) or the close timeout ends the session.
    feed(&mut s, &close_with(1002, b""), 2, &mut out);
    assert_eq!(out, [Out::Violation(1002)]);
    assert_eq!(s.phase(), Phase::CloseSent);
    s.half_closed();
    assert!(!s.should_half_close());
}

/// Autobahn case 3.4 sends its frames a byte at a time: after the bad
/// frame's first bytes, the rest of its payload happened to read as the
/// header of a 53-byte close frame, and a reader that resynchronised on
/// it waited for 53 bytes that never came.
#[test]
fn bytes_after_a_violation_are_not_taken_for_a_frame() {
    let mut s = Session::new(0);
    let mut out = Vec::new();
    feed(&mut s, b"\xc1\x8d", 1, &mut out);
    assert_eq!(out, [Out::Violation(1002)]);
    for b in [0x88u8, 0xb5, 0x41, 0xc1, 0xc0, 0xd0, 0x2d] {
        feed(&mut s, &[b], 2, &mut out);
    }
    assert_eq!(out, [Out::Violation(1002)]);
    assert!(s.should_half_close());
}

#[test]
fn garbage_while_closing_finishes_at_once() {
    let mut s = Session::new(0);
    s.close(CloseCode::NORMAL, "", 0).unwrap();
    let mut out = Vec::new();
    feed(&mut s, b"\xff\xff\xff\xff", 1, &mut out);
    assert_eq!(out, [Out::Finished]);
}

#[test]
fn pings_between_fragments_are_answered_and_the_message_completes() {
    // 5.6-5.9 and 6.x style interleaving, across reads.
    let (out, phase) = run(&cat(&[
        masked_frame(false, Opcode::Text, b"frag", KEY),
        client(Opcode::Ping, b"one"),
        masked_frame(false, Opcode::Continuation, b"men", KEY),
        client(Opcode::Pong, b"ignored"),
        client(Opcode::Ping, b"two"),
        masked_frame(true, Opcode::Continuation, b"ted", KEY),
    ]));
    assert_eq!(
        out,
        [
            Out::Send(Opcode::Pong, b"one".to_vec()),
            Out::Send(Opcode::Pong, b"two".to_vec()),
            text("fragmented"),
        ]
    );
    assert_eq!(phase, Phase::Open);
}

#[test]
fn an_unfinished_frame_is_kept_across_reads_and_only_then() {
    let wire = client(Opcode::Text, b"split across reads");
    let mut s = Session::new(0);
    let mut out = Vec::new();
    feed(&mut s, &wire[..5], 1, &mut out);
    assert!(s.partial.is_some());
    feed(&mut s, &wire[5..], 2, &mut out);
    assert_eq!(out, [text("split across reads")]);
    assert!(s.partial.is_none(), "nothing kept between messages");
}

#[test]
fn an_oversized_message_fails_with_1009() {
    let (out, _) = run(&client(
        Opcode::Binary,
        &vec![0; (CONFIG.max_message + 1) as usize],
    ));
    assert_eq!(out, [Out::Violation(1009)]);
}

#[test]
fn a_quiet_peer_is_pinged_then_closed_and_input_resets_the_clock() {
    let mut s = Session::new(0);
    assert_eq!(s.poll_timeout(&CONFIG), Some(30_000));
    assert_eq!(s.on_timeout(&CONFIG, 29_999), Timeout::None);
    let ping = s.on_timeout(&CONFIG, 30_000);
    assert_eq!(ping, Timeout::Ping(Bytes::from_static(PING)));
    assert_eq!(s.poll_timeout(&CONFIG), Some(65_000), "one ping at a time");
    assert_eq!(s.on_timeout(&CONFIG, 40_000), Timeout::None);
    // The pong (any bytes) resets the clock.
    feed(&mut s, &client(Opcode::Pong, b""), 50_000, &mut Vec::new());
    assert_eq!(s.poll_timeout(&CONFIG), Some(80_000));
    s.on_timeout(&CONFIG, 80_000);
    match s.on_timeout(&CONFIG, 115_000) {
        Timeout::Idle(f) => {
            let (op, p) = unframe(&f);
            assert_eq!(op, Opcode::Close);
            assert_eq!(&p[..2], &1001u16.to_be_bytes());
            assert_eq!(&p[2..], b"idle timeout");
        }
        other => panic!("expected the idle close, got {other:?}"),
    }
    assert_eq!(s.phase(), Phase::CloseSent);
}

#[test]
fn a_closing_handshake_that_does_not_finish_is_given_up_after_the_close_timeout() {
    for start in [Phase::CloseSent, Phase::CloseReceived] {
        let mut s = Session::new(0);
        match start {
            Phase::CloseSent => drop(s.close(CloseCode::NORMAL, "", 1_000)),
            _ => feed(&mut s, &close_with(1000, b""), 1_000, &mut Vec::new()),
        }
        assert_eq!(s.poll_timeout(&CONFIG), Some(6_000));
        // Input while closing does not extend the deadline.
        feed(&mut s, &client(Opcode::Ping, b""), 5_000, &mut Vec::new());
        assert_eq!(s.on_timeout(&CONFIG, 5_999), Timeout::None);
        assert_eq!(s.on_timeout(&CONFIG, 6_000), Timeout::GiveUp);
        assert!(s.is_done(true));
        assert_eq!(s.poll_timeout(&CONFIG), None);
    }
}

#[test]
fn timers_work_across_the_clock_wrap() {
    let start = u32::MAX - 10_000;
    let mut s = Session::new(start);
    assert_eq!(
        s.on_timeout(&CONFIG, start.wrapping_add(29_999)),
        Timeout::None
    );
    assert!(matches!(
        s.on_timeout(&CONFIG, start.wrapping_add(30_000)),
        Timeout::Ping(_)
    ));
}

#[test]
fn a_session_between_messages_is_16_bytes() {
    assert!(std::mem::size_of::<Session>() <= 16);
}

#[test]
fn a_probe_ping_counts_as_the_outstanding_ping_and_only_while_open() {
    let mut s = Session::new(0);
    assert_eq!(s.ping(), Some(Bytes::from_static(PING)));
    assert_eq!(s.poll_timeout(&CONFIG), Some(65_000), "no second ping");
    assert!(s.awaits_answer());
    feed(&mut s, &client(Opcode::Pong, b""), 700, &mut Vec::new());
    assert!(!s.awaits_answer(), "any bytes answer it");
    s.close(CloseCode::NORMAL, "", 800);
    assert_eq!(s.ping(), None);
}
