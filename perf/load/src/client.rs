//! The load tool's WebSocket client side, on eventhub's own sans-IO codec
//! (`Reader` in the client role, `masked_frame`): subscribers that measure
//! every delivery and publishers that pace themselves.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventhub::proto::{masked_frame, Decoded, Event, Opcode, Reader, Role};
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

/// What one subscriber saw.
pub struct SubscriberStats {
    pub latency_ns: Histogram<u64>,
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

/// The unsigned integer after `key` in `text`.
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
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
                latency_ns: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)
                    .expect("histogram bounds"),
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

    fn on_text(&mut self, text: &[u8], now: u64) {
        let (Some(t), Some(n), Some(p)) = (
            field(text, b"\"t\":"),
            field(text, b"\"n\":"),
            field(text, b"\"p\":"),
        ) else {
            return; // the confirmation or another hub message
        };
        let _ = self
            .stats
            .latency_ns
            .record(now.saturating_sub(t).max(1_000));
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

    /// Reads until it has `expected` events (or is told to stop).
    pub async fn run(
        mut self,
        up: Upgraded,
        expected: u64,
        out: Arc<Mutex<Vec<SubscriberStats>>>,
        done: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) {
        let Upgraded { stream, leftover } = up;
        let (mut rd, mut wr) = stream.into_split();
        let mut reader = Reader::new(Role::Client, 64 << 20);
        let mut buf = leftover;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut confirmed = !self.expects_confirmation;
        let mut finished = false;
        'outer: while !stop.load(Relaxed) {
            let mut used = 0;
            loop {
                match reader.decode(&mut buf[used..]) {
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::Consumed(n)) => used += n,
                    Ok(Decoded::Event(n, ev)) => {
                        used += n;
                        match ev {
                            Event::Message(_, payload) => {
                                confirmed = true;
                                self.on_text(payload, monotonic_ns());
                            }
                            Event::Ping(p) => {
                                let pong = masked_frame(true, Opcode::Pong, p, [1, 2, 3, 4]);
                                let _ = wr.write_all(&pong).await;
                            }
                            Event::Pong(_) => {}
                            Event::Close(c) => {
                                self.stats.close_code = Some(c.map_or(1005, |(code, _)| code.0));
                                break 'outer;
                            }
                        }
                    }
                    Err(_) => break 'outer,
                }
            }
            buf.drain(..used);
            if !finished && self.stats.received >= expected {
                finished = true;
                done.fetch_add(1, Relaxed);
            }
            if self.stats.slow && confirmed {
                // A slow consumer: stop reading, hold the socket open.
                while !stop.load(Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                break;
            }
            match tokio::time::timeout(Duration::from_millis(100), rd.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        if self.stats.slow {
            // Read what is left, to see the server's close code.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while self.stats.close_code.is_none() && tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(200), rd.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => continue,
                }
                let mut used = 0;
                while let Ok(d) = reader.decode(&mut buf[used..]) {
                    match d {
                        Decoded::NeedMore => break,
                        Decoded::Consumed(n) => used += n,
                        Decoded::Event(n, ev) => {
                            used += n;
                            if let Event::Close(c) = ev {
                                self.stats.close_code = Some(c.map_or(1005, |(code, _)| code.0));
                            }
                        }
                    }
                }
                buf.drain(..used);
            }
        }
        out.lock().expect("stats lock").push(self.stats);
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
    }

    #[test]
    fn gaps_duplicates_and_disorder_are_counted() {
        let mut s = Subscriber::new(0, false, 1, true);
        for n in [1u64, 2, 2, 5, 4] {
            s.on_text(format!(r#"{{"t":1,"n":{n},"p":0}}"#).as_bytes(), 10_000);
        }
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
