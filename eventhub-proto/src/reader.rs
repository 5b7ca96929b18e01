//! The message reader: frames in, messages and control events out.
//!
//! [`Reader::decode`] looks at the bytes a connection has received and either
//! asks for more (consuming nothing), consumes a frame that only continues a
//! message, or hands out one event. It enforces every rule that needs
//! context: masking by role, continuation order, the message size limit, and
//! UTF-8 across fragments.
//!
//! Two details matter for conformance and memory:
//! - A text frame is unmasked and validated as its bytes arrive, so invalid
//!   UTF-8 fails the connection at once rather than when the frame is
//!   complete. Unmasking happens in place; the caller must hand the same
//!   bytes back (plus new ones) after `NeedMore`.
//! - An unfragmented message is handed out as a slice of the caller's
//!   buffer, with no copy; only fragmented messages are gathered into a
//!   buffer owned by the reader, and that buffer is freed once the message
//!   has been handed out, so an idle connection keeps none.
//!
//! Protocol crate: imports the frame, mask, UTF-8, close and error modules
//! beside it.

use super::close::CloseCode;
use super::error::ProtocolError;
use super::frame::{FrameHeader, Opcode};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Which side of the connection this reader is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads client frames, which must be masked.
    Server,
    /// Reads server frames, which must not be.
    Client,
}

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// What one call to [`Reader::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The buffer does not hold a whole frame; nothing was consumed.
    NeedMore,
    /// A frame that continues a message was consumed; no event yet.
    Consumed(usize),
    /// A frame was consumed and completed this event.
    Event(usize, Event<'a>),
}

/// A complete message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A data message; text is valid UTF-8. Mutable so that an in-place
    /// JSON parser can work on it.
    Message(MessageKind, &'a mut [u8]),
    /// A permessage-deflate compressed data message (RSV1 on its first
    /// frame), still compressed: its text is checked once inflated.
    Compressed(MessageKind, &'a mut [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A close frame, with its code and reason if it had a payload.
    Close(Option<(CloseCode, &'a str)>),
}

/// A fragmented message being gathered.
#[derive(Debug)]
struct Fragmented {
    kind: MessageKind,
    /// Its first frame had RSV1: the message is compressed.
    compressed: bool,
    data: Vec<u8>,
}

/// Decoding state of one connection.
#[derive(Debug)]
pub struct Reader {
    role: Role,
    max_message: u64,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    deflate: bool,
    /// The message whose first fragment has arrived, boxed so that an idle
    /// connection pays one pointer for it.
    fragmented: Option<Box<Fragmented>>,
    /// The fragmented message was handed out; free it on the next call.
    delivered: bool,
    /// UTF-8 state of the text message in progress.
    utf8: Utf8Validator,
    /// Payload bytes of the current incomplete frame already unmasked (and,
    /// for text, validated).
    progress: u64,
}

impl Reader {
    /// A reader for `role` that refuses messages over `max_message` bytes.
    pub fn new(role: Role, max_message: u64) -> Reader {
        Reader::with_deflate(role, max_message, false)
    }

    /// A reader for a connection that negotiated permessage-deflate when
    /// `deflate` is true.
    pub fn with_deflate(role: Role, max_message: u64, deflate: bool) -> Reader {
        Reader {
            role,
            max_message,
            deflate,
            fragmented: None,
            delivered: false,
            utf8: Utf8Validator::new(),
            progress: 0,
        }
    }

    /// True when no message is in progress (a fragmented one, or a frame
    /// partly received).
    pub fn is_idle(&self) -> bool {
        self.progress == 0 && (self.fragmented.is_none() || self.delivered)
    }

    /// Decodes the next frame from the front of `buf`.
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Decoded<'a>, ProtocolError> {
        if self.delivered {
            self.fragmented = None;
            self.delivered = false;
        }
        let Some(header) = FrameHeader::parse_with(buf, self.deflate)? else {
            return Ok(Decoded::NeedMore);
        };
        self.check(&header)?;
        let start = header.header_len;
        let available = (buf.len() - start) as u64;
        let complete = available >= header.payload_len;
        let upto = available.min(header.payload_len);
        // A compressed message's text is checked once inflated.
        let is_text = self.is_text_frame(&header) && !self.is_compressed(&header);
        if self.progress == 0 && header.opcode == Opcode::Text {
            self.utf8 = Utf8Validator::new();
        }
        // Unmask (and validate) whatever arrived since the last call.
        if upto > self.progress {
            let piece = &mut buf[start + self.progress as usize..start + upto as usize];
            if let Some(key) = header.mask {
                apply_mask(piece, key, self.progress as usize);
            }
            if is_text {
                self.utf8
                    .feed(piece)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            self.progress = upto;
        }
        if !complete {
            return Ok(Decoded::NeedMore);
        }
        self.progress = 0;
        let end = start + header.payload_len as usize;
        let payload = &mut buf[start..end];
        let event = match header.opcode {
            Opcode::Ping => Event::Ping(payload),
            Opcode::Pong => Event::Pong(payload),
            Opcode::Close => Event::Close(parse_close(payload)?),
            Opcode::Text | Opcode::Binary => {
                let kind = if header.opcode == Opcode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if !header.fin {
                    let mut data = Vec::new();
                    data.extend_from_slice(payload);
                    self.fragmented = Some(Box::new(Fragmented {
                        kind,
                        compressed: header.rsv1,
                        data,
                    }));
                    return Ok(Decoded::Consumed(end));
                }
                if header.rsv1 {
                    Event::Compressed(kind, payload)
                } else {
                    if is_text && !self.utf8.is_complete() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    Event::Message(kind, payload)
                }
            }
            Opcode::Continuation => {
                let frag = self
                    .fragmented
                    .as_mut()
                    .expect("checked: message in progress");
                frag.data.extend_from_slice(payload);
                if !header.fin {
                    return Ok(Decoded::Consumed(end));
                }
                if is_text && !self.utf8.is_complete() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                self.delivered = true;
                if frag.compressed {
                    Event::Compressed(frag.kind, &mut frag.data)
                } else {
                    Event::Message(frag.kind, &mut frag.data)
                }
            }
        };
        Ok(Decoded::Event(end, event))
    }

    /// The rules that need this connection's state.
    fn check(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RSV1 only with permessage-deflate, and only on the first frame
        // of a data message (RFC 7692 section 6).
        if header.rsv1 && !(self.deflate && matches!(header.opcode, Opcode::Text | Opcode::Binary))
        {
            return Err(ProtocolError::ReservedBitsSet);
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let in_progress = self.fragmented.as_ref().map(|f| f.data.len() as u64);
        let so_far = match (header.opcode, in_progress) {
            (Opcode::Continuation, None) => return Err(ProtocolError::ContinuationWithoutStart),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::DataFrameInsideFragmentedMessage)
            }
            (Opcode::Continuation, Some(n)) => n,
            _ => 0,
        };
        if !header.opcode.is_control() {
            let size = so_far.saturating_add(header.payload_len);
            if size > self.max_message {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    max: self.max_message,
                });
            }
        }
        Ok(())
    }

    /// Whether the frame belongs to a compressed message.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            Opcode::Continuation => self.fragmented.as_ref().is_some_and(|f| f.compressed),
            _ => header.rsv1,
        }
    }

    fn is_text_frame(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            Opcode::Text => true,
            Opcode::Continuation => self
                .fragmented
                .as_ref()
                .is_some_and(|f| f.kind == MessageKind::Text),
            _ => false,
        }
    }
}

/// Parses and checks a close payload.
fn parse_close(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::InvalidClosePayloadLength),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::masked_frame;

    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    fn server() -> Reader {
        Reader::new(Role::Server, 1 << 20)
    }

    fn masked(fin: bool, op: Opcode, payload: &[u8]) -> Vec<u8> {
        masked_frame(fin, op, payload, KEY)
    }

    /// What decoding a whole buffer gives, as owned values.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
        Compressed(MessageKind, Vec<u8>),
        Error(ProtocolError),
    }

    /// Feeds `input` in pieces of `step` bytes, the way a socket would,
    /// keeping unconsumed bytes, until an error or the end.
    fn run(reader: &mut Reader, input: &[u8], step: usize) -> Vec<Out> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match reader.decode(&mut buf) {
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::Consumed(n)) => {
                        buf.drain(..n);
                    }
                    Ok(Decoded::Event(n, ev)) => {
                        out.push(match ev {
                            Event::Message(MessageKind::Text, p) => {
                                Out::Text(String::from_utf8(p.to_vec()).unwrap())
                            }
                            Event::Message(MessageKind::Binary, p) => Out::Binary(p.to_vec()),
                            Event::Ping(p) => Out::Ping(p.to_vec()),
                            Event::Pong(p) => Out::Pong(p.to_vec()),
                            Event::Close(c) => Out::Close(c.map(|(c, r)| (c.0, r.to_string()))),
                            Event::Compressed(k, p) => Out::Compressed(k, p.to_vec()),
                        });
                        buf.drain(..n);
                    }
                    Err(e) => {
                        out.push(Out::Error(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn decode_all(input: &[u8]) -> Vec<Out> {
        run(&mut server(), input, input.len())
    }

    fn first_error(input: &[u8]) -> ProtocolError {
        match decode_all(input).pop() {
            Some(Out::Error(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    // 1. Framing

    #[test]
    fn text_frame_in_every_length_form_decodes() {
        for len in [0usize, 125, 126, 65_535, 65_536, 200_000] {
            let text = "a".repeat(len);
            assert_eq!(
                decode_all(&masked(true, Opcode::Text, text.as_bytes())),
                vec![Out::Text(text)],
                "len {len}"
            );
        }
    }

    #[test]
    fn binary_frame_keeps_every_byte_value() {
        let payload: Vec<u8> = (0..=255u8).collect();
        assert_eq!(
            decode_all(&masked(true, Opcode::Binary, &payload)),
            vec![Out::Binary(payload)]
        );
    }

    #[test]
    fn incomplete_frame_consumes_nothing() {
        let f = masked(true, Opcode::Binary, b"hello");
        let mut r = server();
        let mut part = f[..f.len() - 1].to_vec();
        assert_eq!(r.decode(&mut part), Ok(Decoded::NeedMore));
    }

    #[test]
    fn unmasked_client_frame_is_a_protocol_error() {
        let e = first_error(&frame_bytes(Opcode::Text, b"hi"));
        assert_eq!(e, ProtocolError::UnmaskedFrame);
        assert_eq!(e.close_code().0, 1002);
    }

    #[test]
    fn masked_server_frame_is_refused_by_a_client_reader() {
        let mut r = Reader::new(Role::Client, 100);
        let mut f = masked(true, Opcode::Text, b"hi");
        assert_eq!(r.decode(&mut f), Err(ProtocolError::MaskedFrame));
        let mut plain = frame_bytes(Opcode::Text, b"hi");
        assert!(matches!(
            r.decode(&mut plain),
            Ok(Decoded::Event(4, Event::Message(MessageKind::Text, _)))
        ));
    }

    fn frame_bytes(op: Opcode, payload: &[u8]) -> Vec<u8> {
        crate::frame(op, payload).to_vec()
    }

    // 2. Pings and pongs

    #[test]
    fn ping_and_pong_payloads_come_through_unchanged() {
        let mut input = masked(true, Opcode::Ping, b"are you there");
        input.extend(masked(true, Opcode::Pong, b"yes"));
        assert_eq!(
            decode_all(&input),
            vec![
                Out::Ping(b"are you there".to_vec()),
                Out::Pong(b"yes".to_vec())
            ]
        );
    }

    #[test]
    fn ping_of_125_bytes_is_fine_and_126_is_not() {
        assert_eq!(
            decode_all(&masked(true, Opcode::Ping, &[7; 125])),
            vec![Out::Ping(vec![7; 125])]
        );
        assert_eq!(
            first_error(&masked(true, Opcode::Ping, &[7; 126])),
            ProtocolError::ControlFrameTooLarge(126)
        );
    }

    // 3. Reserved bits

    #[test]
    fn reserved_bit_fails_after_earlier_frames_were_delivered() {
        let mut input = masked(true, Opcode::Text, b"ok");
        let mut bad = masked(true, Opcode::Text, b"bad");
        bad[0] |= 0x20;
        input.extend(bad);
        assert_eq!(
            decode_all(&input),
            vec![
                Out::Text("ok".into()),
                Out::Error(ProtocolError::ReservedBitsSet)
            ]
        );
    }

    #[test]
    fn with_deflate_rsv1_marks_a_compressed_message_whose_bytes_are_not_read_as_text() {
        let mut reader = Reader::with_deflate(Role::Server, 1 << 20, true);
        // Not UTF-8, and not checked as such: it is compressed.
        let mut first = masked(false, Opcode::Text, &[0xff, 0xfe]);
        first[0] |= 0x40;
        let mut input = first;
        input.extend(masked(true, Opcode::Continuation, &[0x00]));
        let mut single = masked(true, Opcode::Binary, b"xyz");
        single[0] |= 0x40;
        input.extend(single);
        input.extend(masked(true, Opcode::Text, b"plain"));
        for step in [1, 3, input.len()] {
            let mut reader = Reader::with_deflate(Role::Server, 1 << 20, true);
            assert_eq!(
                run(&mut reader, &input, step),
                vec![
                    Out::Compressed(MessageKind::Text, vec![0xff, 0xfe, 0x00]),
                    Out::Compressed(MessageKind::Binary, b"xyz".to_vec()),
                    Out::Text("plain".into()),
                ],
                "step {step}"
            );
        }
        let _ = &mut reader;
    }

    #[test]
    fn rsv1_is_refused_without_deflate_on_continuations_and_on_control_frames() {
        let mut text = masked(true, Opcode::Text, b"a");
        text[0] |= 0x40;
        assert_eq!(first_error(&text), ProtocolError::ReservedBitsSet);
        let deflating = |input: &[u8]| {
            let mut reader = Reader::with_deflate(Role::Server, 1 << 20, true);
            run(&mut reader, input, input.len()).pop()
        };
        let mut input = masked(false, Opcode::Text, b"a");
        let mut cont = masked(true, Opcode::Continuation, b"b");
        cont[0] |= 0x40;
        input.extend(cont);
        assert_eq!(
            deflating(&input),
            Some(Out::Error(ProtocolError::ReservedBitsSet))
        );
        let mut ping = masked(true, Opcode::Ping, b"p");
        ping[0] |= 0x40;
        assert_eq!(
            deflating(&ping),
            Some(Out::Error(ProtocolError::ReservedBitsSet))
        );
    }

    // 4. Opcodes

    #[test]
    fn reserved_data_and_control_opcodes_fail() {
        for op in [3u8, 7, 0xb, 0xf] {
            let mut f = masked(true, Opcode::Binary, b"");
            f[0] = 0x80 | op;
            assert_eq!(first_error(&f), ProtocolError::ReservedOpcode(op));
        }
    }

    // 5. Fragmentation

    #[test]
    fn fragmented_text_with_interleaved_ping_is_one_message() {
        let mut input = masked(false, Opcode::Text, b"frag");
        input.extend(masked(true, Opcode::Ping, b"p"));
        input.extend(masked(false, Opcode::Continuation, b"men"));
        input.extend(masked(true, Opcode::Continuation, b"ted"));
        assert_eq!(
            decode_all(&input),
            vec![Out::Ping(b"p".to_vec()), Out::Text("fragmented".into())]
        );
    }

    #[test]
    fn continuation_without_a_start_fails() {
        assert_eq!(
            first_error(&masked(true, Opcode::Continuation, b"x")),
            ProtocolError::ContinuationWithoutStart
        );
    }

    #[test]
    fn new_data_frame_inside_a_fragmented_message_fails() {
        let mut input = masked(false, Opcode::Text, b"a");
        input.extend(masked(true, Opcode::Binary, b"b"));
        assert_eq!(
            first_error(&input),
            ProtocolError::DataFrameInsideFragmentedMessage
        );
    }

    #[test]
    fn fragmented_control_frame_fails() {
        assert_eq!(
            first_error(&masked(false, Opcode::Ping, b"x")),
            ProtocolError::FragmentedControlFrame
        );
    }

    #[test]
    fn reader_frees_the_fragment_buffer_after_delivery() {
        let mut r = server();
        let mut input = masked(false, Opcode::Binary, b"ab");
        input.extend(masked(true, Opcode::Continuation, b"cd"));
        assert_eq!(run(&mut r, &input, 3), vec![Out::Binary(b"abcd".to_vec())]);
        let mut empty = Vec::new();
        assert_eq!(r.decode(&mut empty), Ok(Decoded::NeedMore));
        assert!(r.fragmented.is_none() && r.is_idle());
    }

    // 6. UTF-8

    #[test]
    fn invalid_utf8_in_one_frame_is_1007() {
        let e = first_error(&masked(true, Opcode::Text, &[0xce, 0xba, 0xff]));
        assert_eq!(e, ProtocolError::InvalidUtf8);
        assert_eq!(e.close_code().0, 1007);
    }

    #[test]
    fn code_point_split_across_fragments_is_valid() {
        let snowman = "☃".as_bytes();
        let mut input = masked(false, Opcode::Text, &snowman[..1]);
        input.extend(masked(true, Opcode::Continuation, &snowman[1..]));
        assert_eq!(decode_all(&input), vec![Out::Text("☃".into())]);
    }

    #[test]
    fn message_ending_inside_a_code_point_is_1007() {
        let mut input = masked(false, Opcode::Text, b"ok");
        input.extend(masked(true, Opcode::Continuation, &[0xe2, 0x98]));
        assert_eq!(first_error(&input), ProtocolError::InvalidUtf8);
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        let mut payload = b"valid start ".to_vec();
        payload.push(0xff);
        payload.extend(std::iter::repeat_n(b'x', 1000));
        let f = masked(true, Opcode::Text, &payload);
        let mut r = server();
        // Header (4 bytes) plus the first 13 payload bytes: the invalid byte
        // has arrived, the frame has not.
        let mut part = f[..8 + 13].to_vec();
        assert_eq!(r.decode(&mut part), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn binary_messages_are_not_utf8_checked() {
        assert_eq!(
            decode_all(&masked(true, Opcode::Binary, &[0xff])),
            vec![Out::Binary(vec![0xff])]
        );
    }

    // 7. Close handling

    #[test]
    fn empty_close_and_close_with_code_and_reason_decode() {
        assert_eq!(
            decode_all(&masked(true, Opcode::Close, b"")),
            vec![Out::Close(None)]
        );
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye ☃".as_bytes());
        assert_eq!(
            decode_all(&masked(true, Opcode::Close, &p)),
            vec![Out::Close(Some((1000, "bye ☃".into())))]
        );
    }

    #[test]
    fn close_with_one_byte_payload_is_1002() {
        assert_eq!(
            first_error(&masked(true, Opcode::Close, &[3])),
            ProtocolError::InvalidClosePayloadLength
        );
    }

    #[test]
    fn close_with_reserved_code_is_1002() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 5000, 65535] {
            let e = first_error(&masked(true, Opcode::Close, &code.to_be_bytes()));
            assert_eq!(e, ProtocolError::InvalidCloseCode(code));
            assert_eq!(e.close_code().0, 1002);
        }
    }

    #[test]
    fn close_with_invalid_utf8_reason_is_1007() {
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.push(0xff);
        let e = first_error(&masked(true, Opcode::Close, &p));
        assert_eq!(e, ProtocolError::InvalidCloseReason);
        assert_eq!(e.close_code().0, 1007);
    }

    // 9. Limits

    #[test]
    fn oversized_frame_is_1009_from_its_header_alone() {
        let mut r = Reader::new(Role::Server, 1000);
        let f = masked(true, Opcode::Binary, &[0; 1001]);
        let mut header_only = f[..8].to_vec();
        let e = r.decode(&mut header_only).unwrap_err();
        assert_eq!(
            e,
            ProtocolError::MessageTooLarge {
                size: 1001,
                max: 1000
            }
        );
        assert_eq!(e.close_code().0, 1009);
    }

    #[test]
    fn fragments_adding_up_past_the_limit_are_1009() {
        let mut r = Reader::new(Role::Server, 10);
        let mut input = masked(false, Opcode::Binary, &[0; 6]);
        input.extend(masked(true, Opcode::Continuation, &[0; 6]));
        assert_eq!(
            run(&mut r, &input, input.len()),
            vec![Out::Error(ProtocolError::MessageTooLarge {
                size: 12,
                max: 10
            })]
        );
    }

    #[test]
    fn message_exactly_at_the_limit_is_accepted() {
        let mut r = Reader::new(Role::Server, 10);
        let f = masked(true, Opcode::Binary, &[1; 10]);
        assert_eq!(run(&mut r, &f, f.len()), vec![Out::Binary(vec![1; 10])]);
    }

    // Incremental decoding

    fn mixed_stream() -> Vec<u8> {
        let mut input = masked(false, Opcode::Text, "κόσ".as_bytes());
        input.extend(masked(true, Opcode::Ping, b"ping"));
        input.extend(masked(true, Opcode::Continuation, "με".as_bytes()));
        input.extend(masked(true, Opcode::Binary, &[9; 300]));
        input.extend(masked(true, Opcode::Text, &"x".repeat(70_000).into_bytes()));
        let mut close = 1001u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        input.extend(masked(true, Opcode::Close, &close));
        input
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = mixed_stream();
        let whole = decode_all(&input);
        assert_eq!(whole.len(), 5);
        for step in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(run(&mut server(), &input, step), whole, "step {step}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn op() -> impl Strategy<Value = Opcode> {
            prop_oneof![
                Just(Opcode::Text),
                Just(Opcode::Binary),
                Just(Opcode::Ping),
                Just(Opcode::Pong)
            ]
        }

        proptest! {
            #[test]
            fn encode_then_decode_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..300), op in op(), key in any::<[u8; 4]>()) {
                let payload = if op == Opcode::Text { String::from_utf8_lossy(&payload).into_owned().into_bytes() } else { payload };
                let payload = if op.is_control() { payload[..payload.len().min(125)].to_vec() } else { payload };
                let f = masked_frame(true, op, &payload, key);
                let want = match op {
                    Opcode::Text => Out::Text(String::from_utf8(payload.clone()).unwrap()),
                    Opcode::Binary => Out::Binary(payload.clone()),
                    Opcode::Ping => Out::Ping(payload.clone()),
                    _ => Out::Pong(payload.clone()),
                };
                prop_assert_eq!(decode_all(&f), vec![want]);
                let header = FrameHeader::parse(&f).unwrap().unwrap();
                prop_assert_eq!(header.payload_len, payload.len() as u64);
                prop_assert_eq!(header.header_len + payload.len(), f.len());
            }

            #[test]
            fn any_input_fed_in_pieces_gives_the_same_result_as_whole(input in proptest::collection::vec(any::<u8>(), 0..400), step in 1usize..17) {
                let whole = run(&mut server(), &input, input.len().max(1));
                prop_assert_eq!(run(&mut server(), &input, step), whole);
            }

            #[test]
            fn valid_streams_fed_in_pieces_give_the_same_result(step in 1usize..200) {
                let input = mixed_stream();
                prop_assert_eq!(run(&mut server(), &input, step), decode_all(&input));
            }
        }
    }
}
