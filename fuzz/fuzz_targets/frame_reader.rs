//! The frame and message reader on arbitrary client bytes: never panics,
//! never consumes more than it was given, and gives the same events and
//! error whether the bytes arrive whole, split at a fuzzer-chosen point, or
//! (for short inputs) a byte at a time.
#![no_main]

use eventhub_proto::{Decoded, Event, Reader, Role};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Out {
    Message(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(String),
}

/// Decodes `pieces` in order, keeping unconsumed bytes between them the way
/// a connection does, until an error or the end.
fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<Out> {
    let mut reader = Reader::new(Role::Server, 1 << 16);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let len = buf.len();
            match reader.decode(&mut buf) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Consumed(n)) => {
                    assert!(n > 0 && n <= len);
                    buf.drain(..n);
                }
                Ok(Decoded::Event(n, ev)) => {
                    assert!(n > 0 && n <= len);
                    out.push(match ev {
                        Event::Message(_, p) | Event::Compressed(_, p) => Out::Message(p.to_vec()),
                        Event::Ping(p) => Out::Ping(p.to_vec()),
                        Event::Pong(p) => Out::Pong(p.to_vec()),
                        Event::Close(c) => Out::Close(c.map(|(c, r)| (c.0, r.to_string()))),
                    });
                    buf.drain(..n);
                }
                Err(e) => {
                    let code = e.close_code().0;
                    assert!(matches!(code, 1002 | 1007 | 1009));
                    out.push(Out::Error(e.to_string()));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let split = if input.is_empty() {
        0
    } else {
        usize::from(cut) % (input.len() + 1)
    };
    let whole = run([input]);
    assert_eq!(
        run([&input[..split], &input[split..]]),
        whole,
        "split at {split}"
    );
    if input.len() <= 512 {
        assert_eq!(run(input.chunks(1)), whole, "byte at a time");
    }
});
