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
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A close frame, with its code and reason if it had a payload.
    Close(Option<(CloseCode, &'a str)>),
}

/// A fragmented message being gathered.
#[derive(Debug)]
struct Fragmented {
    kind: MessageKind,
    data: Vec<u8>,
}

/// Decoding state of one connection.
#[derive(Debug)]
pub struct Reader {
    role: Role,
    max_message: u64,
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
        Reader {
            role,
            max_message,
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
        let Some(header) = FrameHeader::parse(buf)? else {
            return Ok(Decoded::NeedMore);
        };
        self.check(&header)?;
        let start = header.header_len;
        let available = (buf.len() - start) as u64;
        let complete = available >= header.payload_len;
        let upto = available.min(header.payload_len);
        let is_text = self.is_text_frame(&header);
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
                    self.fragmented = Some(Box::new(Fragmented { kind, data }));
                    return Ok(Decoded::Consumed(end));
                }
                if is_text && !self.utf8.is_complete() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                Event::Message(kind, payload)
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
                Event::Message(frag.kind, &mut frag.data)
            }
        };
        Ok(Decoded::Event(end, event))
    }

    /// The rules that need this connection's state.
    fn check(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
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
