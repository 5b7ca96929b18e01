//! Compressing and inflating messages as permessage-deflate does (RFC 7692
//! section 7.2), with no context takeover either way.
//!
//! - [`Deflater::frame`]: one whole message into one compressed frame
//!   (RSV1): raw DEFLATE, flushed with an empty stored block whose four
//!   bytes `00 00 ff ff` are then removed (section 7.2.1). The state is
//!   reset before every message, so one compressor (about 370 KiB with
//!   zlib's 32 KiB window and hash tables) serves any number of connections, and one
//!   compressed frame suits every subscriber who negotiated the extension.
//!   A message that does not shrink is not compressed: the caller sends the
//!   plain frame (any message may go uncompressed, section 6).
//! - [`Inflater::message`]: one compressed message back, with `00 00 ff ff`
//!   appended (section 7.2.2), into a buffer that may not grow past the
//!   connection's message limit (a decompression bomb fails with 1009 after
//!   inflating no more than the limit), its text checked for UTF-8 (1007).
//!   Reset per message, as `client_no_context_takeover` allows; the window
//!   is the largest, which reads what any smaller window wrote.
//!
//! The codec is zlib-rs through flate2 (chosen by measurement:
//! `benches/pkg_deflate.rs`).
//!
//! Protocol crate: imports the frame header, the error and UTF-8 check.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::frame::{HeaderBuf, Opcode};
use crate::reader::MessageKind;

/// The tail a sync flush ends with, removed by the sender and put back by
/// the receiver.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// An inflate buffer larger than this is freed after its message, so that
/// one large message does not keep a core's memory up.
const KEEP_BUFFER: usize = 64 * 1024;

/// A compressor for whole messages.
pub struct Deflater {
    state: Compress,
    out: Vec<u8>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor at `level` (0-9; 1 is fastest).
    pub fn new(level: u32) -> Deflater {
        Deflater {
            state: Compress::new(Compression::new(level.min(9)), false),
            out: Vec::new(),
        }
    }

    /// `payload` compressed as one frame of `opcode` with RSV1 set, or
    /// `None` when compressing would not make it smaller.
    pub fn frame(&mut self, opcode: Opcode, payload: &[u8]) -> Option<Bytes> {
        self.state.reset();
        self.out.clear();
        // zlib's bound for one call: the payload, a little per block, and
        // the flush.
        self.out.reserve(payload.len() + payload.len() / 1000 + 64);
        let mut consumed = 0usize;
        loop {
            let before = self.state.total_in();
            let status = self
                .state
                .compress_vec(&payload[consumed..], &mut self.out, FlushCompress::Sync)
                .ok()?;
            consumed += (self.state.total_in() - before) as usize;
            let flushed = consumed == payload.len() && self.out.ends_with(&TAIL);
            if flushed && self.out.len() < self.out.capacity() {
                break;
            }
            if status == Status::StreamEnd {
                return None;
            }
            self.out.reserve(self.out.capacity().max(64));
        }
        let body = &self.out[..self.out.len() - TAIL.len()];
        if body.len() >= payload.len() {
            return None;
        }
        let header = HeaderBuf::compressed(opcode, body.len() as u64);
        let mut frame = BytesMut::with_capacity(header.as_slice().len() + body.len());
        frame.put_slice(header.as_slice());
        frame.put_slice(body);
        Some(frame.freeze())
    }
}

/// An inflater for whole messages, one per core.
pub struct Inflater {
    state: Decompress,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            state: Decompress::new(false),
            out: Vec::new(),
        }
    }

    /// Inflates one compressed message of `kind`; at most `max` bytes come
    /// out, else [`ProtocolError::MessageTooLarge`]; text must be UTF-8.
    pub fn message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        max: u64,
    ) -> Result<&mut [u8], ProtocolError> {
        self.state.reset(false);
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        self.out.clear();
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let mut ended = false;
        for input in [payload, &TAIL[..]] {
            let mut consumed = 0usize;
            while !ended {
                if self.out.len() == self.out.capacity() {
                    if self.out.len() > max {
                        return Err(too_large(self.out.len(), max));
                    }
                    // Grow by steps, never past one byte over the limit (the
                    // byte that says it was passed).
                    let room = (max + 1 - self.out.len()).min(self.out.len().max(4096));
                    self.out.reserve_exact(room);
                }
                let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
                let status = self
                    .state
                    .decompress_vec(&input[consumed..], &mut self.out, FlushDecompress::Sync)
                    .map_err(|_| ProtocolError::BadCompressedData)?;
                let used = self.state.total_in() - before_in;
                consumed += used as usize;
                let produced = self.state.total_out() - before_out;
                if status == Status::StreamEnd {
                    // A final block; more blocks may follow it in the
                    // same message (RFC 7692 section 7.2.1): they start a
                    // stream of their own.
                    if consumed < input.len() {
                        self.state.reset(false);
                        continue;
                    }
                    ended = true;
                } else if consumed == input.len() && self.out.len() < self.out.capacity() {
                    break;
                } else if used == 0 && produced == 0 && self.out.len() < self.out.capacity() {
                    // Nothing more comes of this input (a truncated stream
                    // ends the message where its data ends).
                    break;
                }
            }
        }
        if self.out.len() > max {
            return Err(too_large(self.out.len(), max));
        }
        if kind == MessageKind::Text && std::str::from_utf8(&self.out).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(&mut self.out)
    }
}

fn too_large(size: usize, max: usize) -> ProtocolError {
    ProtocolError::MessageTooLarge {
        size: size as u64,
        max: max as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameHeader;

    fn json(n: usize) -> String {
        let one = r#"{"id":"5bdbbaa1d302fefefb935652445e21780f20c986e4ea0ef2d622aa6a0a4b43bb","event_type":"container","message":"stop"}"#;
        let mut s = String::from("[");
        for i in 0..n {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&one.replace("stop", &format!("stop-{i}")));
        }
        s.push(']');
        s
    }

    /// The payload of a frame made by [`Deflater::frame`].
    fn body(frame: &[u8]) -> &[u8] {
        let h = FrameHeader::parse_with(frame, true).unwrap().unwrap();
        assert!(h.rsv1 && h.fin);
        &frame[h.header_len..]
    }

    #[test]
    fn a_message_round_trips_and_shrinks_and_the_sync_tail_is_not_sent() {
        let (mut d, mut i) = (Deflater::new(6), Inflater::new());
        for n in [1, 4, 40, 400] {
            let text = json(n);
            let frame = d.frame(Opcode::Text, text.as_bytes()).unwrap();
            let payload = body(&frame);
            assert!(payload.len() < text.len());
            assert!(!payload.ends_with(&TAIL));
            let back = i.message(MessageKind::Text, payload, 1 << 20).unwrap();
            assert_eq!(back, text.as_bytes());
        }
    }

    #[test]
    fn what_does_not_shrink_is_not_compressed() {
        let mut d = Deflater::new(6);
        assert_eq!(d.frame(Opcode::Binary, b"ab"), None);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(d.frame(Opcode::Binary, &noise), None);
    }

    #[test]
    fn an_inflated_message_past_the_limit_fails_with_1009_without_inflating_it_all() {
        let (mut d, mut i) = (Deflater::new(9), Inflater::new());
        let bomb = vec![b'a'; 10 << 20];
        let frame = d.frame(Opcode::Binary, &bomb).unwrap();
        assert!(body(&frame).len() < 20_000);
        let err = i
            .message(MessageKind::Binary, body(&frame), 1 << 20)
            .unwrap_err();
        assert_eq!(err.close_code().0, 1009);
        assert!(
            i.out.capacity() <= (1 << 20) + 1,
            "never more than the limit and a byte"
        );
        // The inflater serves the next message.
        let ok = d.frame(Opcode::Text, b"hello hello hello hello").unwrap();
        assert_eq!(
            i.message(MessageKind::Text, body(&ok), 100).unwrap(),
            b"hello hello hello hello"
        );
    }

    #[test]
    fn blocks_after_a_final_block_belong_to_the_same_message() {
        let finished = |text: &[u8]| {
            let mut c = Compress::new(Compression::new(6), false);
            let mut out = Vec::with_capacity(256);
            c.compress_vec(text, &mut out, FlushCompress::Finish)
                .unwrap();
            out
        };
        let mut payload = finished(b"first half, ");
        let second = Deflater::new(6)
            .frame(Opcode::Text, b"second half second half second half")
            .unwrap();
        payload.extend_from_slice(body(&second));
        let got = Inflater::new()
            .message(MessageKind::Text, &payload, 1000)
            .unwrap()
            .to_vec();
        assert_eq!(got, b"first half, second half second half second half");
    }

    #[test]
    fn bad_compressed_data_and_bad_text_are_refused() {
        let mut i = Inflater::new();
        let err = i
            .message(MessageKind::Binary, &[0xff, 0xff, 0xff], 1000)
            .unwrap_err();
        assert_eq!(err, ProtocolError::BadCompressedData);
        let mut d = Deflater::new(6);
        let latin1 = [0xe9u8; 64];
        let frame = d.frame(Opcode::Text, &latin1).unwrap();
        let err = i
            .message(MessageKind::Text, body(&frame), 1000)
            .unwrap_err();
        assert_eq!(err.close_code().0, 1007);
    }
}
