//! The connection session on arbitrary client bytes, fed in two reads with a
//! close we start and a passed deadline in between when the fuzzer says so:
//! never panics; every frame it asks to send is one whole, unmasked server
//! frame; at most one close frame is ever sent; nothing reaches the
//! application once a close was sent or received; text is valid UTF-8; a
//! violation's close code is 1002, 1007 or 1009; and up to the first close,
//! the two reads give what one read of the same bytes gives. With
//! permessage-deflate negotiated (when the top bit of the cut byte says
//! so), compressed messages are inflated within the message limit.
#![no_main]

use eventhub_proto::deflate::Inflater;
use eventhub_proto::{
    CloseCode, FrameHeader, MessageKind, Opcode, Phase, Received, Session, SessionConfig, Timeout,
};
use libfuzzer_sys::fuzz_target;

const CONFIG: SessionConfig = SessionConfig {
    max_message: 1 << 14,
    ping_after_ms: 1_000,
    idle_after_ms: 3_000,
    close_timeout_ms: 1_000,
};

#[derive(Debug, Clone, PartialEq)]
enum Out {
    Message(MessageKind, Vec<u8>),
    Send(Opcode, Vec<u8>),
    Finished,
}

/// Checks a frame the session asks to send and returns it as an output.
fn sent(frame: &[u8], closes: &mut usize) -> Out {
    let h = FrameHeader::parse(frame)
        .expect("a valid header")
        .expect("a whole header");
    assert!(h.fin && h.mask.is_none(), "whole, unmasked");
    assert_eq!(
        h.header_len + h.payload_len as usize,
        frame.len(),
        "one frame"
    );
    if h.opcode.is_control() {
        assert!(h.payload_len <= 125);
    }
    if h.opcode == Opcode::Close {
        *closes += 1;
        assert_eq!(*closes, 1, "one close frame at most");
    }
    Out::Send(h.opcode, frame[h.header_len..].to_vec())
}

/// Feeds one read; returns what the caller was asked to do.
fn feed(s: &mut Session, bytes: &[u8], now: u32, closes: &mut usize, out: &mut Vec<Out>) {
    if !s.may_read() {
        return;
    }
    let mut buf = bytes.to_vec();
    let mut input = s.input(&CONFIG, &mut buf, now);
    let mut inflater = Inflater::new();
    loop {
        let open = s.is_open();
        match s.next(&mut input, now, &mut inflater) {
            Received::End => break,
            Received::Nothing => {}
            Received::Message(kind, p) => {
                assert!(open, "messages only while open");
                if kind == MessageKind::Text {
                    assert!(std::str::from_utf8(p).is_ok());
                }
                assert!(p.len() as u64 <= CONFIG.max_message);
                out.push(Out::Message(kind, p.to_vec()));
            }
            Received::Reply(f) => out.push(sent(&f, closes)),
            Received::Violation(f, e) => {
                assert!(matches!(e.close_code().0, 1002 | 1007 | 1009));
                out.push(sent(&f, closes));
            }
            Received::Finished => {
                assert!(s.is_done(true));
                out.push(Out::Finished);
                break;
            }
        }
    }
    s.keep(input);
}

/// The outputs up to and including the first close frame or finish.
fn until_close(out: &[Out]) -> &[Out] {
    let end = out
        .iter()
        .position(|o| matches!(o, Out::Send(Opcode::Close, _) | Out::Finished))
        .map_or(out.len(), |i| i + 1);
    &out[..end]
}

fuzz_target!(|data: &[u8]| {
    let Some((&[cut, action], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let deflate = cut & 0x80 != 0;
    let split = usize::from(cut & 0x7f) % (input.len() + 1);
    let (first, second) = input.split_at(split);

    let mut closes = 0;
    let mut s = Session::new(0);
    if deflate {
        s.enable_deflate(15);
    }
    let mut out = Vec::new();
    feed(&mut s, first, 10, &mut closes, &mut out);
    if action & 1 != 0 {
        if let Some(f) = s.close(CloseCode::GOING_AWAY, "fuzz", 20) {
            out.push(sent(&f, &mut closes));
        }
    }
    if action & 2 != 0 {
        let now = 20 + u32::from(action >> 2) * 100;
        match s.on_timeout(&CONFIG, now) {
            Timeout::None => {}
            Timeout::Ping(f) | Timeout::Idle(f) => {
                out.push(sent(&f, &mut closes));
            }
            Timeout::GiveUp => assert_eq!(s.phase(), Phase::Finished),
        }
    }
    feed(&mut s, second, 30, &mut closes, &mut out);

    if action & 3 == 0 {
        let mut whole = Session::new(0);
        if deflate {
            whole.enable_deflate(15);
        }
        let mut whole_out = Vec::new();
        feed(&mut whole, input, 10, &mut 0, &mut whole_out);
        assert_eq!(until_close(&out), until_close(&whole_out));
    }
});
