//! The epoll reader: plain threads, each with an edge-triggered epoll set
//! over its share of the sockets and eventhub's own sans-IO decoder.
//!
//! Why not tokio tasks: a tokio read costs two syscalls per message (the
//! read, then the one that returns `EAGAIN` and re-arms readiness) plus a
//! timer, and in scenario A2 the tool spent as much CPU per message as the
//! server did; since one event's deliveries are read one socket after the
//! other, the tool's own cost was most of the latency it reported. Here a
//! read that does not fill the buffer is taken to have drained the socket
//! (with edge triggering, bytes that arrive later bring a new edge), so a
//! burst costs one read. Every message is stamped when its read returns, so
//! the latency is what a client sees. (The tungstenite reader reads the
//! tokio way on purpose, as the ordinary client's pattern.)
//!
//! Over TLS a subscriber keeps the rustls session its handshake made
//! ([`ClientConnection`]) and each read's ciphertext goes through it into
//! the decoder's buffer: still one `recv` per burst, then what rustls's
//! buffered API does per record (a copy of the ciphertext in, decryption
//! in place, the plaintext copied to its queue) and one copy out, made
//! after every few kilobytes fed in (the queue takes about one record).
//! The buffered session, not the unbuffered one, because it is what the
//! handshake made: tokio-rustls connects and upgrades for both readers,
//! and a session cannot change API midway. What the session has to send
//! (a pong, a key update's reply) goes out after the burst, or with the
//! next one if the socket is full: part of a record cannot be dropped the
//! way a plain pong can.
//!
//! With `--deflate` a subscriber whose server agreed to permessage-deflate
//! (without context takeover: the handshake refuses anything else) gets a
//! reader that yields compressed messages as such; they are inflated by the
//! thread's one [`Inflater`] and counted like any other message, so the
//! loss, duplicate and order checks read the inflated JSON. Every byte a
//! read hands the decoder (over TLS, the plaintext) is counted for the wire
//! bytes per delivery.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Instant;

use eventhub_proto::deflate::Inflater;
use eventhub_proto::{masked_frame, Decoded, Event, MessageKind, Opcode, Reader, Role};

use hdrhistogram::Histogram;
use rustls::ClientConnection;

use super::{Seen, CLOSE_CODE_WAIT};
use crate::accounting::{latency_histogram, Subscriber};
use crate::client::{monotonic_ns, Upgraded};
use crate::progress::Progress;

/// The largest message taken, compressed or inflated.
const MAX_MESSAGE: u64 = 64 << 20;
/// Bytes asked for by one read.
const READ_SIZE: usize = 64 * 1024;
/// How often a waiting thread looks at the stop flag.
const WAIT_MS: i32 = 50;

/// One subscriber socket and its decoding state.
struct Reading {
    fd: OwnedFd,
    sub: Subscriber,
    reader: Reader,
    buf: Vec<u8>,
    /// The TLS session, over TLS.
    tls: Option<ClientConnection>,
    /// The server closed, or the socket failed: nothing more to read.
    ended: bool,
}

/// Starts `threads` readers over `subs` (dealt round-robin); each returns
/// what it saw once `progress` is stopped.
pub fn spawn(
    subs: Vec<(Upgraded, Subscriber)>,
    threads: usize,
    progress: &Progress,
    inflate_cache: bool,
) -> io::Result<Vec<JoinHandle<Seen>>> {
    let mut shares: Vec<Vec<Reading>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (up, sub)) in subs.into_iter().enumerate() {
        let (fd, tls) = up.stream.into_raw()?;
        shares[i % threads].push(Reading {
            fd,
            sub,
            reader: Reader::with_deflate(Role::Client, MAX_MESSAGE, up.deflate),
            buf: up.leftover,
            tls,
            ended: false,
        });
    }
    shares
        .into_iter()
        .enumerate()
        .map(|(i, share)| {
            let progress = progress.clone();
            std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || run(share, &progress, inflate_cache))
        })
        .collect()
}

/// A thread: reads until stopped, then reads the slow consumers' closes.
fn run(mut share: Vec<Reading>, progress: &Progress, inflate_cache: bool) -> Seen {
    let mut thread = Thread {
        latency: latency_histogram(),
        inflating: Inflating {
            inflater: Inflater::new(),
            cache: inflate_cache.then(InflateCache::default),
        },
    };
    let epoll = Epoll::new().expect("epoll_create1");
    for (i, r) in share.iter_mut().enumerate() {
        // Bytes that came with the 101 (and, over TLS, what the session
        // opened after them).
        r.open_records(&[]);
        r.decode(&[], progress, &mut thread);
        r.flush_tls();
        epoll.add(&r.fd, i).expect("epoll_ctl add");
    }
    let mut chunk = vec![0u8; READ_SIZE];
    let mut ready = Vec::with_capacity(256);
    while !progress.stopped() {
        epoll.wait(&mut ready, WAIT_MS);
        for &i in &ready {
            let r = &mut share[i];
            if !r.sub.reading() {
                continue; // a slow consumer: it stopped reading
            }
            r.read_burst(&mut chunk, progress, &mut thread);
        }
    }
    // The slow consumers: read what the server sent them, to see how it
    // closed them. A first read of each reopens its window; the rest comes
    // with the edges that follow.
    let deadline = Instant::now() + CLOSE_CODE_WAIT;
    for r in share.iter_mut().filter(|r| r.sub.stats().slow) {
        r.read_burst(&mut chunk, progress, &mut thread);
    }
    let waiting = |share: &[Reading]| {
        share
            .iter()
            .any(|r| r.sub.stats().slow && !r.ended && r.sub.stats().close_code.is_none())
    };
    while waiting(&share) && Instant::now() < deadline {
        epoll.wait(&mut ready, 10);
        for &i in &ready {
            if share[i].sub.stats().slow {
                share[i].read_burst(&mut chunk, progress, &mut thread);
            }
        }
    }
    Seen {
        subscribers: share.into_iter().map(|r| r.sub.into_stats()).collect(),
        latency_ns: thread.latency,
    }
}

/// What a reader thread keeps for all its sockets: the latency of their
/// deliveries, and the inflater of their compressed messages (reset per
/// message: permessage-deflate without context takeover).
struct Thread {
    latency: Histogram<u64>,
    inflating: Inflating,
}

/// A thread's inflater and what it inflated.
struct Inflating {
    inflater: Inflater,
    /// Compressed messages already inflated, by their bytes, unless
    /// `--inflate-every-message`: without context takeover the same bytes
    /// always inflate to the same message, and a hub that compresses once
    /// sends the same bytes to every subscriber, so one thread standing in
    /// for a thousand clients would otherwise spend its time inflating
    /// one message a thousand times (about 6 us each here) and bound the
    /// rate it measures. The subscribers' checks run on the inflated JSON
    /// either way; a hit costs a hash and a comparison of the bytes.
    cache: Option<InflateCache>,
}

/// A compressed message: text or not, and its bytes.
type Compressed = (bool, Box<[u8]>);

/// Inflated messages by their compressed bytes; emptied when full.
#[derive(Default)]
struct InflateCache {
    entries: HashMap<Compressed, Box<[u8]>>,
}

/// Entries before the cache is emptied (the events of a burst in flight).
const CACHE_ENTRIES: usize = 16 * 1024;

impl Inflating {
    /// The message `payload` inflates to.
    fn inflate(&mut self, kind: MessageKind, payload: &[u8]) -> Option<&[u8]> {
        let Some(cache) = self.cache.as_mut() else {
            return self
                .inflater
                .message(kind, payload, MAX_MESSAGE)
                .ok()
                .map(|m| &*m);
        };
        let key = (kind == MessageKind::Text, Box::<[u8]>::from(payload));
        if !cache.entries.contains_key(&key) {
            let text = self.inflater.message(kind, payload, MAX_MESSAGE).ok()?;
            if cache.entries.len() >= CACHE_ENTRIES {
                cache.entries.clear();
            }
            cache.entries.insert(key.clone(), Box::from(&*text));
        }
        cache.entries.get(&key).map(|m| &**m)
    }
}

impl Reading {
    /// Reads until a read comes back short (the socket is drained).
    fn read_burst(&mut self, chunk: &mut [u8], progress: &Progress, thread: &mut Thread) {
        while !self.ended {
            // SAFETY: recv into a buffer this function owns for the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                let n = n as usize;
                if self.tls.is_some() {
                    let before = self.buf.len();
                    self.open_records(&chunk[..n]);
                    self.sub.count_bytes(self.buf.len() - before);
                    self.decode(&[], progress, thread);
                    self.flush_tls();
                } else {
                    self.sub.count_bytes(n);
                    self.decode(&chunk[..n], progress, thread);
                }
                if n < chunk.len() {
                    return;
                }
                continue;
            }
            if n < 0 {
                match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => continue,
                    _ => {}
                }
            }
            self.ended = true;
        }
    }

    /// Over TLS: takes `ciphertext` into the session and appends what it
    /// opens to the decoder's buffer; the end of the TLS stream, or an
    /// error, ends the subscriber (after what came before it is decoded).
    fn open_records(&mut self, mut ciphertext: &[u8]) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        loop {
            if tls.process_new_packets().is_err() {
                self.ended = true;
                return;
            }
            // Emptied every time: it holds about one record.
            let mut plaintext = tls.reader();
            loop {
                match plaintext.fill_buf() {
                    Ok([]) => {
                        // close_notify.
                        self.ended = true;
                        return;
                    }
                    Ok(bytes) => {
                        let n = bytes.len();
                        self.buf.extend_from_slice(bytes);
                        plaintext.consume(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.ended = true;
                        return;
                    }
                }
            }
            if ciphertext.is_empty() {
                return;
            }
            // Some kilobytes at a time.
            match tls.read_tls(&mut ciphertext) {
                Ok(n) if n > 0 => {}
                _ => {
                    self.ended = true;
                    return;
                }
            }
        }
    }

    /// Over TLS: writes what the session has to send, as far as the
    /// socket takes it now.
    fn flush_tls(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let mut socket = FdWriter(&self.fd);
        while tls.wants_write() {
            match tls.write_tls(&mut socket) {
                Ok(n) if n > 0 => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        }
    }

    /// Decodes `fresh` after what was kept from before; a compressed
    /// message counts once inflated.
    fn decode(&mut self, fresh: &[u8], progress: &Progress, thread: &mut Thread) {
        let now = monotonic_ns();
        self.buf.extend_from_slice(fresh);
        let mut used = 0;
        loop {
            match self.reader.decode(&mut self.buf[used..]) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Consumed(n)) => used += n,
                Ok(Decoded::Event(n, ev)) => {
                    used += n;
                    match ev {
                        Event::Message(_, payload) => {
                            self.sub
                                .on_message(payload, now, &mut thread.latency, progress);
                        }
                        // Only where the subscriber negotiated
                        // permessage-deflate (else RSV1 is an error).
                        Event::Compressed(kind, payload) => {
                            let Some(text) = thread.inflating.inflate(kind, payload) else {
                                self.ended = true;
                                break;
                            };
                            self.sub
                                .on_message(text, now, &mut thread.latency, progress);
                        }
                        Event::Ping(p) => pong(&self.fd, self.tls.as_mut(), p),
                        Event::Pong(_) => {}
                        Event::Close(c) => {
                            self.sub.set_close_code(c.map_or(1005, |(code, _)| code.0));
                            self.ended = true;
                            break;
                        }
                    }
                }
                Err(_) => {
                    self.ended = true;
                    break;
                }
            }
        }
        self.buf.drain(..used);
    }
}

/// Answers a ping: over TLS sealed into the session (sent by
/// [`Reading::flush_tls`]), else sent at once.
fn pong(fd: &OwnedFd, tls: Option<&mut ClientConnection>, payload: &[u8]) {
    let pong = masked_frame(true, Opcode::Pong, payload, [1, 2, 3, 4]);
    if let Some(tls) = tls {
        // Fails only once the session is closed.
        let _ = tls.writer().write_all(&pong);
        return;
    }
    // SAFETY: send from a live buffer; a full socket only loses this pong.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            pong.as_ptr().cast(),
            pong.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// A socket as rustls writes records to it: without blocking
/// (`WouldBlock` when full).
struct FdWriter<'a>(&'a OwnedFd);

impl Write for FdWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: send from a live buffer of the given length.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An edge-triggered epoll set whose events carry an index.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the descriptor is owned on success.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Epoll(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    fn add(&self, fd: &OwnedFd, index: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: index as u64,
        };
        // SAFETY: both descriptors are open; the event is read by the call.
        let r = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` and fills `ready` with the indexes.
    fn wait(&self, ready: &mut Vec<usize>, timeout_ms: i32) {
        ready.clear();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
        // SAFETY: the array outlives the call, its length is passed.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            ready.push(ev.u64 as usize);
        }
    }
}
