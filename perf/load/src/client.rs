//! The load tool's WebSocket client side, on eventhub's own sans-IO codec
//! (`Reader` in the client role, `masked_frame`): connecting, what a
//! subscriber counts of every delivery (read by [`crate::readers`]), and
//! publishers that pace themselves.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use eventhub_proto::{masked_frame, Opcode};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::Kind;

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
    pub stream: TcpStream,
    pub leftover: Vec<u8>,
}

/// Connects (from `source` if given) and upgrades to a WebSocket.
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    token: &str,
    small_rcvbuf: bool,
) -> io::Result<Upgraded> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if small_rcvbuf {
        socket.set_recv_buffer_size(4096)?;
    }
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            if !head.starts_with("HTTP/1.1 101") {
                return Err(io::Error::other(format!(
                    "upgrade refused: {}",
                    head.lines().next().unwrap_or("")
                )));
            }
            return Ok(Upgraded {
                stream,
                leftover: buf.split_off(end + 4),
            });
        }
    }
}

/// The sum of a metric family's samples in eventhub's `/metrics` (read
/// with `token`, which must be an admin's); `None` if it cannot be read.
pub async fn metric_sum(addr: SocketAddr, token: &str, name: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut resp))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&resp);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let prefix = format!("{name}{{");
    Some(
        text.lines()
            .filter(|l| l.starts_with(&prefix) || l.split_whitespace().next() == Some(name))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum(),
    )
}

/// What one subscriber saw.
pub struct SubscriberStats {
    pub received: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub disorder: u64,
    pub slow: bool,
    pub close_code: Option<u16>,
}

/// A subscriber's state.
pub struct Subscriber {
    stats: SubscriberStats,
    /// Last `n` seen per publisher.
    last: Vec<Option<u64>>,
    /// A confirmation comes first (eventhub).
    expects_confirmation: bool,
}

/// The unsigned integer after `key` in `text` (run for three keys of
/// every message, so a vectorized search and no string conversion).
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(text, key)? + key.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// A latency histogram: 1 µs to 60 s, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

impl Subscriber {
    pub fn new(
        _index: usize,
        slow: bool,
        publishers: usize,
        expects_confirmation: bool,
    ) -> Subscriber {
        Subscriber {
            stats: SubscriberStats {
                received: 0,
                gaps: 0,
                duplicates: 0,
                disorder: 0,
                slow,
                close_code: None,
            },
            last: vec![None; publishers],
            expects_confirmation,
        }
    }

    /// Counts a message that arrived at `now` (CLOCK_MONOTONIC ns); its
    /// latency goes to `latency` (one histogram per reader thread rather
    /// than per subscriber: a few kilobytes touched per message instead of
    /// one histogram's worth per socket), unless this is a slow consumer.
    pub fn on_text(&mut self, text: &[u8], now: u64, latency: &mut Histogram<u64>) {
        let (Some(t), Some(n), Some(p)) = (
            field(text, b"\"t\":"),
            field(text, b"\"n\":"),
            field(text, b"\"p\":"),
        ) else {
            return; // the confirmation or another hub message
        };
        if !self.stats.slow {
            let _ = latency.record(now.saturating_sub(t).max(1_000));
        }
        self.stats.received += 1;
        let Some(last) = self.last.get_mut(p as usize) else {
            return;
        };
        match *last {
            Some(prev) if n == prev + 1 => {}
            Some(prev) if n == prev => self.stats.duplicates += 1,
            Some(prev) if n < prev => self.stats.disorder += 1,
            Some(prev) => self.stats.gaps += n - prev - 1,
            None => self.stats.gaps += n - 1,
        }
        if last.is_none_or(|prev| n > prev) {
            *last = Some(n);
        }
    }

    /// The server sends a message (the confirmation) before any event.
    pub fn expects_confirmation(&self) -> bool {
        self.expects_confirmation
    }

    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }

    pub fn set_close_code(&mut self, code: u16) {
        self.stats.close_code = Some(code);
    }

    pub fn into_stats(self) -> SubscriberStats {
        self.stats
    }
}

/// Publishes `count` events as publisher `p` at `rate` per second (0 = as
/// fast as possible); returns how many were sent.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    addr: SocketAddr,
    kind: Kind,
    token: &str,
    channel: &str,
    p: usize,
    count: u64,
    rate: f64,
    size: usize,
) -> io::Result<u64> {
    let up = connect(addr, None, "/v1/ws/publish", token, false).await?;
    let mut stream = up.stream;
    // eventhub wraps the body in an envelope of about 200 bytes.
    let overhead = match kind {
        Kind::Eventhub => 250,
        Kind::Peer => 90,
    };
    let pad = "x".repeat(size.saturating_sub(overhead));
    let start_instant = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(64 * 1024);
    for n in 1..=count {
        if rate > 0.0 {
            let due = Duration::from_secs_f64((n - 1) as f64 / rate);
            tokio::time::sleep_until(start_instant + due).await;
        }
        // The time it actually leaves: tokio's timer wakes up to a
        // millisecond late, which is the tool's delay, not the server's.
        let t = monotonic_ns();
        let msg = format!(
            r#"{{"event_type":"{channel}","message":"load","body":{{"t":{t},"n":{n},"p":{p},"pad":"{pad}"}}}}"#
        );
        batch.extend_from_slice(&masked_frame(
            true,
            Opcode::Text,
            msg.as_bytes(),
            [7, 7, 7, 7],
        ));
        if rate > 0.0 || batch.len() >= 32 * 1024 || n == count {
            stream.write_all(&batch).await?;
            batch.clear();
        }
    }
    let close = masked_frame(true, Opcode::Close, &1000u16.to_be_bytes(), [1, 1, 1, 1]);
    stream.write_all(&close).await?;
    // Give the server the moment it needs to read the tail before the FIN.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_envelopes_and_raw_bodies() {
        let env =
            br#"{"id":"x","event_type":"pdfm","body":{"t":123,"n":7,"p":0,"pad":"xx"},"seq":9}"#;
        assert_eq!(
            (
                field(env, b"\"t\":"),
                field(env, b"\"n\":"),
                field(env, b"\"seq\":")
            ),
            (Some(123), Some(7), Some(9))
        );
        assert_eq!(field(env, b"\"q\":"), None);
        assert_eq!(field(br#"{"t":x}"#, b"\"t\":"), None, "no digits");
        assert_eq!(
            field(br#"{"t":99999999999999999999}"#, b"\"t\":"),
            None,
            "overflow"
        );
    }

    #[test]
    fn gaps_duplicates_and_disorder_are_counted() {
        let mut s = Subscriber::new(0, false, 1, true);
        let mut latency = latency_histogram();
        for n in [1u64, 2, 2, 5, 4] {
            s.on_text(
                format!(r#"{{"t":1,"n":{n},"p":0}}"#).as_bytes(),
                10_000,
                &mut latency,
            );
        }
        assert_eq!(latency.len(), 5);
        assert_eq!(
            (
                s.stats.received,
                s.stats.duplicates,
                s.stats.gaps,
                s.stats.disorder
            ),
            (5, 1, 2, 1)
        );
    }
}
