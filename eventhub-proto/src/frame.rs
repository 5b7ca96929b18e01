//! Frame headers (RFC 6455 section 5.2): parsing, checking, encoding, and the
//! builders of complete server frames.
//!
//! Parsing is split like mini-redis's `check`/`parse`: [`FrameHeader::parse`]
//! looks only at the header bytes, says `Ok(None)` ("need more bytes")
//! without consuming anything, and rejects every header-local violation
//! (reserved bits, reserved opcodes, oversized or fragmented control frames,
//! a 64-bit length with its top bit set). Rules that need context (masking
//! by role, continuation state, message size) belong to the
//! [`Reader`](super::reader::Reader).
//!
//! Encoding writes a header into a fixed 14-byte buffer. [`frame`] builds one
//! complete frame, header and payload, as a single `Bytes`: the hub
//! serializes an event into such a frame once and shares it with every
//! subscriber.
//!
//! Protocol crate: imports the close codes, the error and the mask beside
//! it.

use bytes::{BufMut, Bytes, BytesMut};

use super::close::{truncate_reason, CloseCode};
use super::error::ProtocolError;
use super::mask::apply_mask;

/// The largest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;
/// The largest control-frame payload.
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// Decodes the low nibble of the first header byte.
    pub fn from_u8(v: u8) -> Result<Opcode, ProtocolError> {
        Ok(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed and header-checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: with permessage-deflate, the first frame of a compressed
    /// message (RFC 7692 section 6); the reader refuses it otherwise.
    pub rsv1: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header took on the wire.
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses a header from the front of `buf`; `Ok(None)` if `buf` does not
    /// hold all of it yet.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        FrameHeader::parse_with(buf, false)
    }

    /// [`FrameHeader::parse`], with RSV1 allowed when `rsv1_allowed`
    /// (permessage-deflate was negotiated; the reader checks where).
    pub fn parse_with(
        buf: &[u8],
        rsv1_allowed: bool,
    ) -> Result<Option<FrameHeader>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        // RSV2 and RSV3 mean nothing to any extension this crate speaks.
        let reserved = if rsv1_allowed { 0x30 } else { 0x70 };
        if b0 & reserved != 0 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        let rsv1 = b0 & 0x40 != 0;
        let fin = b0 & 0x80 != 0;
        let opcode = Opcode::from_u8(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if u64::from(len7) > MAX_CONTROL_PAYLOAD {
                let len = u64::from(len7);
                if opcode == Opcode::Close {
                    return Err(ProtocolError::CloseFrameTooLarge(len));
                }
                return Err(ProtocolError::ControlFrameTooLarge(len));
            }
        }
        let (payload_len, mut at) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidPayloadLength);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(m) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        Ok(Some(FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len,
            header_len: at,
        }))
    }
}

/// A header encoded into a fixed buffer.
#[derive(Debug, Clone, Copy)]
pub struct HeaderBuf {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBuf {
    /// The header of a permessage-deflate compressed message's (only)
    /// frame: RSV1 set (RFC 7692 section 6).
    pub fn compressed(opcode: Opcode, payload_len: u64) -> HeaderBuf {
        let mut h = HeaderBuf::new(true, opcode, payload_len, None);
        h.bytes[0] |= 0x40;
        h
    }

    /// Encodes a header with the shortest length form.
    pub fn new(fin: bool, opcode: Opcode, payload_len: u64, mask: Option<[u8; 4]>) -> HeaderBuf {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        bytes[0] = (u8::from(fin) << 7) | opcode.as_u8();
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        let mut len = match payload_len {
            0..=125 => {
                bytes[1] = mask_bit | payload_len as u8;
                2
            }
            126..=0xffff => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&payload_len.to_be_bytes());
                10
            }
        };
        if let Some(m) = mask {
            bytes[len..len + 4].copy_from_slice(&m);
            len += 4;
        }
        HeaderBuf {
            bytes,
            len: len as u8,
        }
    }

    /// The encoded header.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One complete unmasked (server) frame, header and payload, in one `Bytes`.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let header = HeaderBuf::new(true, opcode, payload.len() as u64, None);
    let mut out = BytesMut::with_capacity(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    out.put_slice(payload);
    out.freeze()
}

/// A complete text frame.
pub fn text_frame(payload: &str) -> Bytes {
    frame(Opcode::Text, payload.as_bytes())
}

/// A complete close frame with `code` and `reason` (cut to 123 bytes).
pub fn close_frame(code: CloseCode, reason: &str) -> Bytes {
    let reason = truncate_reason(reason);
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.0.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    frame(Opcode::Close, &payload[..2 + reason.len()])
}

/// One complete masked (client) frame: for clients written with this crate
/// (the load tool) and for tests that play the client.
pub fn masked_frame(fin: bool, opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header = HeaderBuf::new(fin, opcode, payload.len() as u64, Some(key));
    let mut out = Vec::with_capacity(header.as_slice().len() + payload.len());
    out.extend_from_slice(header.as_slice());
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parse_waits_for_every_length_form() {
        let h = HeaderBuf::new(true, Opcode::Binary, 70_000, Some([1, 2, 3, 4]));
        let bytes = h.as_slice();
        assert_eq!(bytes.len(), 14);
        for cut in 0..bytes.len() {
            assert_eq!(FrameHeader::parse(&bytes[..cut]), Ok(None), "cut {cut}");
        }
        let parsed = FrameHeader::parse(bytes).unwrap().unwrap();
        assert_eq!(parsed.payload_len, 70_000);
        assert_eq!(parsed.mask, Some([1, 2, 3, 4]));
        assert_eq!(parsed.header_len, 14);
    }

    #[test]
    fn shortest_length_form_is_used() {
        assert_eq!(
            HeaderBuf::new(true, Opcode::Text, 125, None)
                .as_slice()
                .len(),
            2
        );
        assert_eq!(
            HeaderBuf::new(true, Opcode::Text, 126, None)
                .as_slice()
                .len(),
            4
        );
        assert_eq!(
            HeaderBuf::new(true, Opcode::Text, 65_535, None)
                .as_slice()
                .len(),
            4
        );
        assert_eq!(
            HeaderBuf::new(true, Opcode::Text, 65_536, None)
                .as_slice()
                .len(),
            10
        );
    }

    #[test]
    fn reserved_bits_are_rejected_and_rsv1_is_read_once_deflate_allows_it() {
        for rsv in [0x40u8, 0x20, 0x10] {
            assert_eq!(
                FrameHeader::parse(&[0x81 | rsv, 0x80]),
                Err(ProtocolError::ReservedBitsSet)
            );
        }
        for rsv in [0x20u8, 0x10, 0x70] {
            assert_eq!(
                FrameHeader::parse_with(&[0x81 | rsv, 0x80], true),
                Err(ProtocolError::ReservedBitsSet)
            );
        }
        let h = FrameHeader::parse_with(&[0xc1, 0x80, 1, 2, 3, 4], true)
            .unwrap()
            .unwrap();
        assert!(h.rsv1);
        let compressed = HeaderBuf::compressed(Opcode::Text, 5);
        assert_eq!(compressed.as_slice(), [0xc1, 5]);
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0x80]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x80]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x80 | 126, 0, 126]),
            Err(ProtocolError::ControlFrameTooLarge(126))
        );
    }

    #[test]
    fn oversized_close_frame_is_told_apart() {
        assert_eq!(
            FrameHeader::parse(&[0x88, 0x80 | 126, 0, 126]),
            Err(ProtocolError::CloseFrameTooLarge(126))
        );
    }

    #[test]
    fn top_bit_of_64_bit_length_is_rejected() {
        let mut b = vec![0x82, 0x80 | 127];
        b.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&b),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    #[test]
    fn close_frame_carries_code_and_cut_reason() {
        let f = close_frame(CloseCode(1013), &"x".repeat(300));
        assert_eq!(f.len(), 2 + 125);
        assert_eq!(&f[2..4], &1013u16.to_be_bytes());
    }

    #[test]
    fn built_frame_is_header_then_payload() {
        let f = text_frame("Hello");
        assert_eq!(&f[..], &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    }
}
