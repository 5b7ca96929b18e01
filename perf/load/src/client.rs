//! The load tool's WebSocket client side: connecting and upgrading, by
//! hand over a tokio socket (plain or TLS, [`crate::transport`]) so that a
//! subscriber can be bound to its own source address and given a small
//! receive buffer; the readers ([`crate::readers`]) then take the
//! connection over.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use eventhub_proto::{Decoded, Event, Reader, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{Endpoint, Stream};

/// How long a connection may take, confirmation included.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An upgraded connection and the bytes that came after the 101.
pub struct Upgraded {
    pub stream: Stream,
    pub leftover: Vec<u8>,
    /// The server agreed to permessage-deflate (without context takeover).
    pub deflate: bool,
}

/// What `--deflate` offers: RFC 7692's extension, as browsers offer it.
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Where [`connect`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At the 101.
    Upgrade,
    /// Once the first message (eventhub's confirmation) is in `leftover`.
    FirstMessage,
}

/// Connects (from `source` if given) and upgrades to a WebSocket,
/// offering permessage-deflate if `offer_deflate`.
pub async fn connect(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    path: &str,
    token: &str,
    small_rcvbuf: bool,
    until: Until,
    offer_deflate: bool,
) -> io::Result<Upgraded> {
    let mut stream =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, endpoint.connect(source, small_rcvbuf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let addr = endpoint.addr;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let extensions = if offer_deflate {
        format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n")
    } else {
        String::new()
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{extensions}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    // Where the WebSocket stream starts in `buf`, once the head is read.
    let mut body_at = None;
    let mut deflate = false;
    loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let start = match body_at {
            Some(start) => start,
            None => {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]);
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(io::Error::other(format!(
                        "upgrade refused: {}",
                        head.lines().next().unwrap_or("")
                    )));
                }
                deflate = agreed_deflate(&head)?;
                *body_at.insert(end + 4)
            }
        };
        if until == Until::Upgrade || holds_a_message(&buf[start..], deflate) {
            return Ok(Upgraded {
                stream,
                leftover: buf.split_off(start),
                deflate,
            });
        }
    }
}

/// Whether the 101's head agrees to permessage-deflate; an agreement this
/// tool cannot read (the server keeping its compression context from one
/// message to the next: no `server_no_context_takeover`) is an error, as
/// the tool inflates every message on its own.
fn agreed_deflate(head: &str) -> io::Result<bool> {
    let mut agreed = false;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("sec-websocket-extensions") {
            continue;
        }
        for ext in value.split(',') {
            let mut params = ext.split(';').map(str::trim);
            if params.next() != Some("permessage-deflate") {
                continue;
            }
            if !params.any(|p| p == "server_no_context_takeover") {
                return Err(io::Error::other(format!(
                    "the server agreed to permessage-deflate with context takeover ({}); this tool inflates each message on its own and needs server_no_context_takeover",
                    value.trim()
                )));
            }
            agreed = true;
        }
    }
    Ok(agreed)
}

/// `bytes` (a server's, from the start of the WebSocket stream) hold a whole
/// message; a protocol error counts too, for the reader to find.
fn holds_a_message(bytes: &[u8], deflate: bool) -> bool {
    let mut copy = bytes.to_vec();
    let mut reader = Reader::with_deflate(Role::Client, 64 << 20, deflate);
    let mut used = 0;
    loop {
        match reader.decode(&mut copy[used..]) {
            Ok(Decoded::NeedMore) => return false,
            Ok(Decoded::Consumed(n)) => used += n,
            Ok(Decoded::Event(_, Event::Message(..) | Event::Compressed(..))) | Err(_) => {
                return true
            }
            Ok(Decoded::Event(n, _)) => used += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventhub_proto::{frame, Opcode};

    #[test]
    fn a_message_is_found_whole_after_control_frames() {
        let msg = frame(Opcode::Text, br#"{"subscribed":["pdfm"]}"#);
        let mut bytes = frame(Opcode::Ping, b"p").to_vec();
        bytes.extend_from_slice(&msg[..msg.len() - 1]);
        assert!(!holds_a_message(&bytes, false));
        bytes.push(msg[msg.len() - 1]);
        assert!(holds_a_message(&bytes, false));
        assert!(!holds_a_message(&[], false));
    }

    #[test]
    fn deflate_is_agreed_only_without_server_context_takeover() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert!(agreed_deflate(head).unwrap());
        assert!(!agreed_deflate("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket").unwrap());
        let takeover = "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-extensions: permessage-deflate; client_max_window_bits=15";
        assert!(agreed_deflate(takeover).is_err());
    }
}
