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
}

/// Where [`connect`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At the 101.
    Upgrade,
    /// Once the first message (eventhub's confirmation) is in `leftover`.
    FirstMessage,
}

/// Connects (from `source` if given) and upgrades to a WebSocket.
pub async fn connect(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    path: &str,
    token: &str,
    small_rcvbuf: bool,
    until: Until,
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
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    // Where the WebSocket stream starts in `buf`, once the head is read.
    let mut body_at = None;
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
                *body_at.insert(end + 4)
            }
        };
        if until == Until::Upgrade || holds_a_message(&buf[start..]) {
            return Ok(Upgraded {
                stream,
                leftover: buf.split_off(start),
            });
        }
    }
}

/// `bytes` (a server's, from the start of the WebSocket stream) hold a whole
/// message; a protocol error counts too, for the reader to find.
fn holds_a_message(bytes: &[u8]) -> bool {
    let mut copy = bytes.to_vec();
    let mut reader = Reader::new(Role::Client, 64 << 20);
    let mut used = 0;
    loop {
        match reader.decode(&mut copy[used..]) {
            Ok(Decoded::NeedMore) => return false,
            Ok(Decoded::Consumed(n)) => used += n,
            Ok(Decoded::Event(_, Event::Message(..))) | Err(_) => return true,
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
        assert!(!holds_a_message(&bytes));
        bytes.push(msg[msg.len() - 1]);
        assert!(holds_a_message(&bytes));
        assert!(!holds_a_message(&[]));
    }
}
