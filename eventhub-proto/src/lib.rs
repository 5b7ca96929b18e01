//! RFC 6455 and the HTTP/1.1 it starts from, sans-IO.
//!
//! Nothing here touches a socket, a clock or a runtime: bytes go in, requests,
//! frames and messages come out, and errors say which rule was broken. That
//! keeps the protocol testable to the byte, fuzzable (`fuzz/`) and benchable
//! (`benches/`), and lets the runtime shell stay thin.
//!
//! - [`http`]: request-head parser and response writer;
//! - [`handshake`]: the upgrade check and `Sec-WebSocket-Accept`;
//! - [`frame`]: frame headers and the builders of complete server frames;
//! - [`reader`]: frames in, messages out, every context rule enforced;
//! - [`mask`], [`utf8`], [`close`]: the pieces the reader is made of;
//! - [`error`]: [`ProtocolError`], each variant with its close code.

pub mod close;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod json;
pub mod mask;
pub mod reader;
pub mod utf8;

pub use close::CloseCode;
pub use error::ProtocolError;
pub use frame::{close_frame, frame, masked_frame, text_frame, FrameHeader, HeaderBuf, Opcode};
pub use reader::{Decoded, Event, MessageKind, Reader, Role};
