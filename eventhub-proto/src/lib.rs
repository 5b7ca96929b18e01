//! `eventhub-proto`: RFC 6455 and the HTTP/1.1 it starts from, sans-IO.
//!
//! The bottom layer of eventhub, a crate of its own so that nothing above
//! can leak into it: its `Cargo.toml` names no runtime, and it imports
//! nothing of eventhub. Nothing here touches a socket, a clock or a runtime:
//! bytes and the time go in; requests, frames, messages and the frames to
//! send come out; errors say which rule was broken. That keeps every rule of
//! the protocol in one place, testable to the byte, fuzzable (`fuzz/`) and
//! benchable (`benches/`), and lets the runtime shell stay thin. The load
//! tool (`perf/load`) is a client written on this crate alone.
//!
//! - [`session`]: one connection after the handshake: the reader, the
//!   closing handshake of section 7, ping/pong replies, deadlines;
//! - [`http`]: request-head parser and response writer;
//! - [`proxy`]: the PROXY protocol header (v1 and v2) a balancer sends
//!   first; [`forwarded`]: CIDR blocks and the `X-Forwarded-For` chain;
//! - [`handshake`]: the upgrade check and `Sec-WebSocket-Accept`;
//! - [`permessage_deflate`]: negotiating RFC 7692's extension;
//!   [`deflate`]: compressing and inflating its messages;
//! - [`frame`](mod@frame): frame headers and the builders of complete server frames;
//! - [`reader`]: frames in, messages out, every context rule enforced;
//! - [`mask`], [`utf8`], [`close`]: the pieces the reader is made of;
//! - [`error`]: [`ProtocolError`], each variant with its close code;
//! - [`time`]: the millisecond stamps the session is given;
//! - [`json`]: JSON string escaping and the error object (a leaf).

pub mod close;
pub mod deflate;
pub mod error;
pub mod forwarded;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod json;
pub mod mask;
pub mod origin;
pub mod permessage_deflate;
pub mod proxy;
pub mod reader;
pub mod session;
pub mod time;
pub mod utf8;

pub use close::CloseCode;
pub use error::ProtocolError;
pub use frame::{close_frame, frame, masked_frame, text_frame, FrameHeader, HeaderBuf, Opcode};
pub use reader::{Decoded, Event, MessageKind, Reader, Role};
pub use session::{Input, Phase, Received, Session, SessionConfig, Timeout};
pub use time::Stamp;
