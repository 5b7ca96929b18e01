//! The server side of one WebSocket connection after the handshake, sans-IO:
//! the reader, the closing handshake (RFC 6455 sections 5.5.1 and 7), the
//! ping/pong replies and the connection's deadlines, with time passed in.
//!
//! A [`Session`] never touches a socket or a clock. The runtime hands it the
//! bytes of each read ([`Session::input`], then [`Session::next`] until
//! [`Received::End`], then [`Session::keep`]), queues the frames it returns,
//! asks it to start a close ([`Session::close`]), and calls
//! [`Session::on_timeout`] when [`Session::poll_timeout`] says a deadline
//! has come. So every rule of the protocol, section 7 included, is here and
//! can be driven by unit tests and the fuzzer byte by byte.
//!
//! The phases:
//!
//! - **open**: messages flow both ways; a quiet peer is pinged, and closed
//!   with 1001 once it has been quiet for the idle timeout;
//! - **close sent**: we sent a close frame (a close we started, or a
//!   protocol violation); the peer's data is read and dropped until its own
//!   close frame, which finishes the session; bounded by the close timeout;
//! - **close received**: the peer sent its close first; our reply (with its
//!   code) is queued, nothing more is read, and the transport closes once
//!   the reply is written; bounded by the close timeout;
//! - **finished**: the handshake is over, or was given up: close the
//!   transport now.
//!
//! Memory matters: a hub keeps one of these per idle connection, so the
//! session is 16 bytes. Between messages it owns no reader and no buffer
//! (both are boxed only while a frame or message spans reads), and one
//! timestamp serves every phase: the last input while open, the start of
//! the phase while closing. Limits come with each call ([`SessionConfig`],
//! one per core) rather than being stored per connection.
//!
//! Protocol crate: imports the reader, the frame builders, the close codes,
//! the error and [`crate::time`]; like everything in this crate, no runtime
//! and nothing of eventhub.

use bytes::Bytes;

use crate::close::CloseCode;
use crate::deflate::Inflater;
use crate::error::ProtocolError;
use crate::frame::{close_frame, frame, Opcode};
use crate::reader::{Decoded, Event, MessageKind, Reader, Role};
use crate::time::{age_ms, reached, Stamp};

/// A ping with an empty payload, as sent on the wire by a server.
const PING: &[u8] = &[0x89, 0x00];

/// The limits and timers every session of a server shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest message the peer may send; larger fails with 1009.
    pub max_message: u64,
    /// Ping a peer that has been quiet this long (milliseconds).
    pub ping_after_ms: u32,
    /// Close (1001) a peer that has been quiet this long.
    pub idle_after_ms: u32,
    /// Give up on a closing handshake that has not finished after this long.
    pub close_timeout_ms: u32,
}

/// Where a session is in the closing handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    CloseSent,
    CloseReceived,
    Finished,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    /// A frame or fragmented message that spans reads; `None` between
    /// messages.
    partial: Option<Box<Partial>>,
    /// Open: when the peer's bytes last arrived. Closing: when the phase
    /// began.
    since: Stamp,
    phase: Phase,
    /// [`PING_OUTSTANDING`], [`FAILING`], [`HALF_CLOSED`], [`DEFLATE`]:
    /// one byte, so that the session stays 16 bytes.
    flags: u8,
}

/// A ping was sent and no bytes have arrived since.
const PING_OUTSTANDING: u8 = 1;
/// The peer broke a rule (not in a close frame): the connection is being
/// failed (RFC 6455, 7.1.7). What it sends from then on is discarded
/// unread: after a framing error nothing in the byte stream can be trusted
/// to start a frame, and a reader that tried to find the peer's close
/// there could take payload bytes for the header of a long frame and wait
/// for it for the close timeout.
const FAILING: u8 = 2;
/// The transport was half-closed after our close frame (see
/// [`Session::should_half_close`]).
const HALF_CLOSED: u8 = 4;
/// permessage-deflate was negotiated: RSV1 marks a compressed message,
/// inflated before it is handed out.
const DEFLATE: u8 = 8;
/// The peer limited the server's window below 32 KiB.
const SMALL_WINDOW: u8 = 16;

/// The reader's state and the unfinished frame's bytes.
#[derive(Debug)]
struct Partial {
    reader: Reader,
    bytes: Vec<u8>,
}

/// The bytes of one read being decoded, with whatever an earlier read left
/// unfinished. Made by [`Session::input`], given back by [`Session::keep`].
#[derive(Debug)]
pub struct Input<'a> {
    source: Source<'a>,
    /// Bytes at the front already decoded (or dropped).
    used: usize,
    /// A protocol error dropped the rest: the reader starts over.
    failed: bool,
    /// The message limit, for what a compressed message inflates to.
    max_message: u64,
}

#[derive(Debug)]
enum Source<'a> {
    /// Nothing was left from before: decode the caller's buffer in place.
    Fresh { reader: Reader, bytes: &'a mut [u8] },
    /// The new bytes were appended to what was left.
    Kept(Box<Partial>),
}

impl Source<'_> {
    fn parts(&mut self) -> (&mut Reader, &mut [u8]) {
        match self {
            Source::Fresh { reader, bytes } => (reader, bytes),
            Source::Kept(p) => (&mut p.reader, &mut p.bytes),
        }
    }
}

/// What the next frame of an [`Input`] asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Nothing more in this input; read again when the socket has bytes.
    End,
    /// A frame that needs nothing from the caller (a pong, a fragment, data
    /// arriving after our close).
    Nothing,
    /// A complete data message for the application (text is valid UTF-8).
    Message(MessageKind, &'a mut [u8]),
    /// Queue this control frame: a pong, or the reply to the peer's close
    /// (then nothing more is read, and the transport closes once everything
    /// queued is written).
    Reply(Bytes),
    /// The peer broke a rule: queue this close frame (code and reason from
    /// the error); the session is closing.
    Violation(Bytes, ProtocolError),
    /// The closing handshake is over, or failed while closing: close the
    /// transport now.
    Finished,
}

/// What a deadline asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Timeout {
    /// No deadline has passed.
    None,
    /// The peer has been quiet: queue this ping.
    Ping(Bytes),
    /// The peer has been quiet for the idle timeout: queue this close frame.
    Idle(Bytes),
    /// The closing handshake did not finish in time: close the transport.
    GiveUp,
}

impl Session {
    /// A session opened at `now`.
    pub fn new(now: Stamp) -> Session {
        Session {
            partial: None,
            since: now,
            phase: Phase::Open,
            flags: 0,
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// permessage-deflate was negotiated for this connection, the server's
    /// window limited to `server_window` bits: compressed messages (RSV1)
    /// are accepted and inflated.
    pub fn enable_deflate(&mut self, server_window: u8) {
        self.set(DEFLATE, true);
        self.set(
            SMALL_WINDOW,
            server_window < crate::permessage_deflate::MAX_WINDOW_BITS,
        );
    }

    /// Whether the peer takes the compressed frames a server makes with
    /// the full 32 KiB window: permessage-deflate was negotiated without
    /// limiting the server's window. (A peer that limited it gets
    /// uncompressed frames, which suit any window: RFC 7692 section 6
    /// lets any message go uncompressed.)
    pub fn takes_compressed(&self) -> bool {
        self.has(DEFLATE) && !self.has(SMALL_WINDOW)
    }

    /// The connection is being failed and its transport not yet
    /// half-closed: once our close frame is written, the caller shuts its
    /// sending side (a FIN after the close frame, so the peer, which has
    /// nothing more to expect, closes too) and calls
    /// [`Session::half_closed`]. The peer's end of the stream then ends
    /// the connection, or the close timeout does.
    pub fn should_half_close(&self) -> bool {
        self.has(FAILING) && !self.has(HALF_CLOSED)
    }

    /// The caller half-closed the transport.
    pub fn half_closed(&mut self) {
        self.set(HALF_CLOSED, true);
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Messages may be sent: no close started or received.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the peer's bytes are wanted: not after its close frame (our
    /// reply is the last word), nor once finished.
    pub fn may_read(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::CloseSent)
    }

    /// Whether the transport should be closed now, given whether frames are
    /// still queued (`unsent`): once finished, or once the reply to the
    /// peer's close is written.
    pub fn is_done(&self, unsent: bool) -> bool {
        match self.phase {
            Phase::Finished => true,
            Phase::CloseReceived => !unsent,
            Phase::Open | Phase::CloseSent => false,
        }
    }

    /// A ping to send now, to learn whether the peer is still there (any
    /// bytes from it after this ping say so: [`Session::awaits_answer`]
    /// turns false); `None` unless open.
    pub fn ping(&mut self) -> Option<Bytes> {
        if self.phase != Phase::Open {
            return None;
        }
        self.set(PING_OUTSTANDING, true);
        Some(Bytes::from_static(PING))
    }

    /// A ping was sent and no bytes have come from the peer since.
    pub fn awaits_answer(&self) -> bool {
        self.has(PING_OUTSTANDING)
    }

    /// Bytes an earlier read left undecoded (an unfinished frame, or the
    /// rest of a read the caller stopped early): worth an [`Session::input`]
    /// with no new bytes once the caller may go on.
    pub fn has_kept_input(&self) -> bool {
        self.partial.as_ref().is_some_and(|p| !p.bytes.is_empty())
    }

    /// Starts the closing handshake: the close frame to queue after
    /// everything already queued, or `None` if a close was already sent or
    /// received.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Stamp) -> Option<Bytes> {
        if self.phase != Phase::Open {
            return None;
        }
        self.enter(Phase::CloseSent, now);
        Some(close_frame(code, reason))
    }

    fn enter(&mut self, phase: Phase, now: Stamp) {
        self.phase = phase;
        self.since = now;
    }

    /// Starts decoding `fresh`, the bytes of one read, after whatever an
    /// earlier read left unfinished. Any input counts as a sign of life.
    pub fn input<'a>(
        &mut self,
        config: &SessionConfig,
        fresh: &'a mut [u8],
        now: Stamp,
    ) -> Input<'a> {
        if self.phase == Phase::Open {
            self.since = now;
        }
        self.set(PING_OUTSTANDING, false);
        let source = match self.partial.take() {
            Some(mut p) => {
                p.bytes.extend_from_slice(fresh);
                Source::Kept(p)
            }
            None => Source::Fresh {
                reader: Reader::with_deflate(Role::Server, config.max_message, self.has(DEFLATE)),
                bytes: fresh,
            },
        };
        Input {
            source,
            used: 0,
            failed: false,
            max_message: config.max_message,
        }
    }

    /// Decodes the next frame of `input` and applies the protocol's rules
    /// to it; a compressed message is inflated by `inflater` (the core's).
    /// Call until [`Received::End`] or [`Received::Finished`].
    pub fn next<'b>(
        &mut self,
        input: &'b mut Input<'_>,
        now: Stamp,
        inflater: &'b mut Inflater,
    ) -> Received<'b> {
        let Input {
            source,
            used,
            failed,
            max_message,
        } = input;
        let (reader, bytes) = source.parts();
        let len = bytes.len();
        if self.has(FAILING) {
            *used = len;
        }
        if *used == len {
            return Received::End;
        }
        match reader.decode(&mut bytes[*used..]) {
            Ok(Decoded::NeedMore) => Received::End,
            Ok(Decoded::Consumed(n)) => {
                *used += n;
                Received::Nothing
            }
            Ok(Decoded::Event(n, event)) => {
                *used += n;
                let open = self.phase == Phase::Open;
                match event {
                    Event::Message(kind, payload) if open => Received::Message(kind, payload),
                    Event::Compressed(kind, payload) if open => {
                        match inflater.message(kind, payload, *max_message) {
                            Ok(data) => Received::Message(kind, data),
                            Err(error) => {
                                *used = len;
                                *failed = true;
                                self.violation(error, now)
                            }
                        }
                    }
                    Event::Compressed(..) => Received::Nothing,
                    Event::Ping(payload) if open => Received::Reply(frame(Opcode::Pong, payload)),
                    Event::Message(..) | Event::Ping(_) | Event::Pong(_) => Received::Nothing,
                    Event::Close(close) => {
                        // Whatever follows a close frame is not part of the
                        // conversation.
                        *used = len;
                        if !open {
                            // The answer to our close: the handshake is done.
                            self.enter(Phase::Finished, now);
                            return Received::Finished;
                        }
                        self.enter(Phase::CloseReceived, now);
                        Received::Reply(match close {
                            Some((code, _)) => close_frame(code, ""),
                            None => frame(Opcode::Close, b""),
                        })
                    }
                }
            }
            Err(error) => {
                // The rest of the input is discarded, and so is all that
                // follows (`failing`).
                *used = len;
                *failed = true;
                self.violation(error, now)
            }
        }
    }

    /// The peer broke a rule: the connection is failed.
    fn violation<'b>(&mut self, error: ProtocolError, now: Stamp) -> Received<'b> {
        if self.phase != Phase::Open {
            self.enter(Phase::Finished, now);
            return Received::Finished;
        }
        // A bad close frame is still the peer's close: ours ends the
        // handshake, no reply to it will come.
        let next = if error.is_in_close_frame() {
            Phase::CloseReceived
        } else {
            self.set(FAILING, true);
            Phase::CloseSent
        };
        self.enter(next, now);
        Received::Violation(close_frame(error.close_code(), &error.to_string()), error)
    }

    /// Ends the decoding of `input`: keeps whatever was not decoded (an
    /// unfinished frame or message, or everything after the frame where the
    /// caller stopped) for the next read, or nothing at all.
    pub fn keep(&mut self, input: Input<'_>) {
        let Input {
            source,
            used,
            failed,
            ..
        } = input;
        if failed || !self.may_read() {
            return;
        }
        self.partial = match source {
            Source::Fresh { reader, bytes } => {
                let rest = &bytes[used..];
                (!rest.is_empty() || !reader.is_idle()).then(|| {
                    Box::new(Partial {
                        reader,
                        bytes: rest.to_vec(),
                    })
                })
            }
            Source::Kept(mut p) => {
                p.bytes.drain(..used);
                (!p.bytes.is_empty() || !p.reader.is_idle()).then_some(p)
            }
        };
    }

    /// The next deadline, if any: a ping or the idle close while open, the
    /// end of the close timeout while closing.
    pub fn poll_timeout(&self, config: &SessionConfig) -> Option<Stamp> {
        let after = match self.phase {
            Phase::Open if self.has(PING_OUTSTANDING) => config.idle_after_ms,
            Phase::Open => config.ping_after_ms.min(config.idle_after_ms),
            Phase::CloseSent | Phase::CloseReceived => config.close_timeout_ms,
            Phase::Finished => return None,
        };
        Some(self.since.wrapping_add(after))
    }

    /// Acts on the deadline that has passed at `now`, if any.
    pub fn on_timeout(&mut self, config: &SessionConfig, now: Stamp) -> Timeout {
        if !self.poll_timeout(config).is_some_and(|d| reached(now, d)) {
            return Timeout::None;
        }
        match self.phase {
            Phase::Open if age_ms(now, self.since) >= u64::from(config.idle_after_ms) => self
                .close(CloseCode::GOING_AWAY, "idle timeout", now)
                .map_or(Timeout::None, Timeout::Idle),
            Phase::Open => {
                self.set(PING_OUTSTANDING, true);
                Timeout::Ping(Bytes::from_static(PING))
            }
            Phase::CloseSent | Phase::CloseReceived => {
                self.enter(Phase::Finished, now);
                Timeout::GiveUp
            }
            Phase::Finished => Timeout::None,
        }
    }
}

#[cfg(test)]
mod tests;
