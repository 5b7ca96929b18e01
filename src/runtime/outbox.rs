//! A connection's send queue and its writer.
//!
//! Runtime layer: imports [`super::sys`] for the `send`/`sendmsg` itself.
//!
//! Frames are queued as `Bytes` (a shared, pre-serialized frame costs a
//! refcount, not a copy). How a write hands them to the kernel depends on
//! their sizes, as `benches/write_path.rs` measured over loopback TCP: one
//! frame alone goes with a plain `send`; several small ones (up to
//! [`SMALL_FRAME`] each) are copied into the core's cork buffer (up to
//! [`CORK_BYTES`]) and sent with one `send`, since the kernel's cost per
//! iovec segment is above the copy's (32 frames of 256 B: 5.0 against
//! 7.4 us per write); larger ones go zero-copy, one `sendmsg` over as many
//! of them as fit an iovec array. Every write is a plain syscall with
//! `MSG_DONTWAIT`, not an io_uring operation: it completes (fully, partly,
//! or with `EAGAIN`) before it returns, so no write is ever left in flight
//! to be cancelled and the iovec array can live on the stack. When the
//! socket is full the connection waits for writability and tries again.
//!
//! On wss ([`Outbox::flush_sealed`]) the frames are sealed into TLS records
//! first: frames up to a record's worth (16 KiB) are gathered in the cork
//! buffer, sealed into one record in the core's seal buffer and sent with
//! one `send`; a frame larger than a record is sealed whole into its own
//! buffer. Only ciphertext the socket did not take stays with the
//! connection, queued at the front as a frame tagged [`SEALED`], counted
//! in the queue's bytes like any frame and never dropped (the records
//! after it would not decrypt without it).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use bytes::Bytes;

use super::stats::WriteHistogram;
use super::sys;
use super::tls_link::{SealError, TlsLink, MAX_RECORD_PLAINTEXT, RECORD_OVERHEAD};

/// Frames gathered into one `sendmsg`.
const MAX_IOVECS: usize = 64;

/// Frames at most this long are copied into the cork buffer when several
/// are queued.
const SMALL_FRAME: usize = 2048;

/// The cork buffer's size: bytes copied into one `send`.
const CORK_BYTES: usize = 16 * 1024;

thread_local! {
    /// The core's cork buffer (connections run on their core's thread).
    static CORK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(CORK_BYTES));
    /// The core's seal buffer: one record's ciphertext (wss).
    static SEAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The tag of a queue entry that is ciphertext already sealed (wss): no
/// event's sequence number, which count up from 1.
const SEALED: u64 = u64::MAX;

/// What a queued frame costs beyond its bytes: its slot in the queue (a
/// `Bytes` and its tag, 40 bytes) and, for a frame no other queue shares
/// (a pong, a reply), its own allocation's header and rounding (an empty
/// pong's 2 bytes take a 16-byte block, and a `Bytes` made from a buffer
/// adds its 24-byte shared header when first cloned). Counting only the
/// bytes would let a client that sends pings and never reads pin ~40 times
/// the queue bound in pongs.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<(Bytes, u64)>() + 32;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Done,
    /// The socket buffer is full; wait for writability.
    Blocked,
}

/// A bounded-by-the-caller queue of frames not yet written.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Frames with their tags (the hub's sequence numbers; 0 = untagged).
    frames: VecDeque<(Bytes, u64)>,
    /// Tag of the last tagged frame written in full.
    last_written_tag: u64,
    /// Bytes of the front frame already written.
    head_written: u32,
    /// Bytes queued and not yet written, saturating at 4 GiB (it is only
    /// compared with queue limits far below that; 32 bits keep every
    /// connection's state 8 bytes smaller).
    bytes: u32,
}

/// A length as counted in [`Outbox::bytes`].
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Outbox {
    /// Queues a frame.
    pub fn push(&mut self, frame: Bytes) {
        self.push_tagged(frame, 0);
    }

    /// Queues a frame with a tag (non-zero) that says which event it is.
    pub fn push_tagged(&mut self, frame: Bytes, tag: u64) {
        self.bytes = self.bytes.saturating_add(len32(frame.len()));
        self.frames.push_back((frame, tag));
    }

    /// The tag of the last tagged frame that was, or (being partly written)
    /// will be, sent in full.
    pub fn last_sent_tag(&self) -> u64 {
        match self.frames.front() {
            Some((_, tag)) if self.head_written > 0 && *tag != 0 && *tag != SEALED => *tag,
            _ => self.last_written_tag,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// What the queue holds: the bytes not yet written plus each entry's
    /// own cost ([`ENTRY_OVERHEAD`]).
    pub fn queued_bytes(&self) -> usize {
        self.bytes as usize + self.frames.len() * ENTRY_OVERHEAD
    }

    /// Drops every frame not yet started, keeping a partly written front
    /// frame so that the byte stream stays well-framed, and every sealed
    /// record (the TLS stream needs them all).
    pub fn drop_unsent(&mut self) {
        let sealed = self.frames.iter().take_while(|(_, t)| *t == SEALED).count();
        let keep = sealed.max(usize::from(self.head_written > 0));
        while self.frames.len() > keep {
            let (f, _) = self.frames.pop_back().expect("len checked");
            self.bytes = self.bytes.saturating_sub(len32(f.len()));
        }
    }

    /// Writes as much as the socket takes; counts each write's whole frames
    /// in `writes`.
    pub fn flush(&mut self, fd: RawFd, writes: &WriteHistogram) -> io::Result<Flush> {
        while let Some((front, _)) = self.frames.front() {
            let head = &front[self.head_written as usize..];
            // One frame (most writes at a steady rate): a plain `send`,
            // without building a message header and an iovec array.
            let sent = if self.frames.len() == 1 {
                sys::send(fd, head)
            } else if head.len() <= SMALL_FRAME && self.frames[1].0.len() <= SMALL_FRAME {
                CORK.with(|cork| {
                    let mut cork = cork.borrow_mut();
                    cork.clear();
                    cork.extend_from_slice(head);
                    for (f, _) in self.frames.iter().skip(1) {
                        if f.len() > SMALL_FRAME || cork.len() + f.len() > CORK_BYTES {
                            break;
                        }
                        cork.extend_from_slice(f);
                    }
                    sys::send(fd, &cork)
                })
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let count = self.frames.len().min(MAX_IOVECS);
                iov[0] = IoSlice::new(head);
                for (slot, (f, _)) in iov[1..count].iter_mut().zip(self.frames.iter().skip(1)) {
                    *slot = IoSlice::new(f);
                }
                sys::sendmsg(fd, &iov[..count])
            };
            match sent {
                Ok(n) => writes.record(self.advance(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // An emptied queue gives its buffer back: most connections are idle
        // most of the time, and a buffer kept by each would also leave holes
        // among the long-lived allocations of its size. (Allocating it again
        // costs far less than the write that emptied it.)
        self.frames = VecDeque::new();
        Ok(Flush::Done)
    }

    /// Queues TLS records made outside a flush after the sealed records
    /// already queued (they were sealed first) and before every frame not
    /// yet sealed.
    pub fn push_sealed(&mut self, records: Bytes) {
        let at = self.frames.iter().take_while(|(_, t)| *t == SEALED).count();
        self.bytes = self.bytes.saturating_add(len32(records.len()));
        self.frames.insert(at, (records, SEALED));
    }

    /// [`Outbox::flush`] through TLS: seals the frames into records (see
    /// the module docs) and writes what the socket takes. Each write of
    /// fresh records counts the frames sealed into them in `writes`.
    pub fn flush_sealed(
        &mut self,
        fd: RawFd,
        writes: &WriteHistogram,
        tls: &mut TlsLink,
    ) -> io::Result<Flush> {
        while let Some((front, tag)) = self.frames.front() {
            if *tag == SEALED {
                match sys::send(fd, &front[self.head_written as usize..]) {
                    Ok(n) => {
                        self.advance(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            if front.len() > MAX_RECORD_PLAINTEXT {
                let (frame, tag) = self.frames.pop_front().expect("a front frame");
                self.sealed_one(tag, frame.len());
                self.seal_queued(tls, &frame, Vec::new())?;
                writes.record(1);
                continue;
            }
            let sent = SEAL.with(|seal| {
                let mut seal = seal.borrow_mut();
                if seal.is_empty() {
                    seal.resize(MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD, 0);
                }
                let (len, before) = self.seal_small(tls, &mut seal, writes)?;
                if len == 0 {
                    // Queued as sealed records instead (see `seal_small`).
                    return Ok(true);
                }
                if !before.is_empty() {
                    // A key update rustls made before these records goes
                    // ahead of them.
                    self.push_sealed(Bytes::from(before));
                    self.push_sealed(Bytes::copy_from_slice(&seal[..len]));
                    return Ok(true);
                }
                // What the socket does not take is queued, sealed, and
                // tried again from the queue at once (a socket that is
                // full then says so with EAGAIN, as on plain ws, before
                // the connection waits for writability).
                let (taken, go_on) = match sys::send(fd, &seal[..len]) {
                    Ok(n) => (n, true),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => (0, true),
                    Err(e) => return Err(e),
                };
                if taken < len {
                    self.push_sealed(Bytes::copy_from_slice(&seal[taken..len]));
                }
                Ok(go_on)
            })?;
            if !sent {
                return Ok(Flush::Blocked);
            }
        }
        self.frames = VecDeque::new();
        Ok(Flush::Done)
    }

    /// Seals the front frames (none larger than a record), as many as one
    /// record holds, into `seal`; returns the ciphertext's length and what
    /// rustls must send before it.
    fn seal_small(
        &mut self,
        tls: &mut TlsLink,
        seal: &mut [u8],
        writes: &WriteHistogram,
    ) -> io::Result<(usize, Vec<u8>)> {
        let mut before = Vec::new();
        let (frames, sealed) = if self.frames.len() == 1 {
            (1, tls.seal(&self.frames[0].0, seal, &mut before))
        } else {
            CORK.with(|cork| {
                let mut cork = cork.borrow_mut();
                cork.clear();
                let mut frames = 0;
                for (f, t) in &self.frames {
                    if *t == SEALED || cork.len() + f.len() > MAX_RECORD_PLAINTEXT {
                        break;
                    }
                    cork.extend_from_slice(f);
                    frames += 1;
                }
                (frames, tls.seal(&cork, seal, &mut before))
            })
        };
        let plain: Option<Vec<u8>> = match sealed {
            Ok(_) => None,
            // More than the seal buffer holds: rustls put a message ahead
            // of the record (the key update a client asked for). Sealed
            // again below into a buffer of its own, once the frames are
            // off the queue.
            Err(SealError::Room(_)) => Some(
                self.frames
                    .iter()
                    .take(frames)
                    .flat_map(|(f, _)| f.iter().copied())
                    .collect(),
            ),
            Err(e) => return Err(seal_failed(e)),
        };
        for _ in 0..frames {
            let (f, t) = self.frames.pop_front().expect("sealed frames were queued");
            self.sealed_one(t, f.len());
        }
        let len = match (sealed, plain) {
            (Ok(len), _) => len,
            (Err(_), Some(plain)) => {
                self.seal_queued(tls, &plain, std::mem::take(&mut before))?;
                0
            }
            (Err(e), None) => return Err(seal_failed(e)),
        };
        writes.record(frames);
        Ok((len, before))
    }

    /// Seals `plain` into a buffer of its own, after `first` (what rustls
    /// must send before it), and queues the records.
    fn seal_queued(&mut self, tls: &mut TlsLink, plain: &[u8], first: Vec<u8>) -> io::Result<()> {
        let mut records = first;
        tls.seal_to_vec(plain, &mut records).map_err(seal_failed)?;
        self.push_sealed(Bytes::from(records));
        Ok(())
    }

    /// Accounts for a frame of `len` bytes sealed into records (its tag,
    /// if any, counts as sent: its records will be).
    fn sealed_one(&mut self, tag: u64, len: usize) {
        self.bytes = self.bytes.saturating_sub(len32(len));
        if tag != 0 {
            self.last_written_tag = tag;
        }
    }

    /// Drops the `n` bytes written; returns the frames finished.
    fn advance(&mut self, mut n: usize) -> usize {
        self.bytes = self.bytes.saturating_sub(len32(n));
        let mut finished = 0;
        while n > 0 {
            let (front, tag) = self.frames.front().expect("wrote no more than was queued");
            let left = front.len() - self.head_written as usize;
            if n < left {
                self.head_written += n as u32;
                return finished;
            }
            if *tag != 0 && *tag != SEALED {
                self.last_written_tag = *tag;
            }
            n -= left;
            self.head_written = 0;
            self.frames.pop_front();
            finished += 1;
        }
        finished
    }
}

fn seal_failed(e: SealError) -> io::Error {
    io::Error::other(format!("TLS sends no more: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn flush_writes_every_frame_in_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut out = Outbox::default();
        for i in 0..200u8 {
            out.push(Bytes::from(vec![i; 3]));
        }
        assert_eq!(out.queued_bytes(), 600 + 200 * ENTRY_OVERHEAD);
        assert_eq!(
            out.flush(a.as_raw_fd(), &WriteHistogram::default())
                .unwrap(),
            Flush::Done
        );
        assert!(out.is_empty());
        let mut got = vec![0; 600];
        b.read_exact(&mut got).unwrap();
        let want: Vec<u8> = (0..200u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_empty_pong_counts_what_its_queue_entry_costs() {
        let mut out = Outbox::default();
        out.push(Bytes::from_static(&[0x8a, 0x00]));
        assert!(out.queued_bytes() >= 64, "{}", out.queued_bytes());
        assert_eq!(out.queued_bytes(), 2 + ENTRY_OVERHEAD);
    }

    #[test]
    fn last_sent_tag_counts_written_and_partly_written_frames() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut out = Outbox::default();
        out.push_tagged(Bytes::from_static(b"one"), 1);
        out.push_tagged(Bytes::from_static(b"two"), 2);
        assert_eq!(out.last_sent_tag(), 0);
        out.flush(a.as_raw_fd(), &WriteHistogram::default())
            .unwrap();
        assert_eq!(out.last_sent_tag(), 2);
        out.push_tagged(Bytes::from(vec![0u8; 8 << 20]), 3);
        out.push_tagged(Bytes::from_static(b"four"), 4);
        assert_eq!(
            out.flush(a.as_raw_fd(), &WriteHistogram::default())
                .unwrap(),
            Flush::Blocked
        );
        out.drop_unsent();
        assert_eq!(
            out.last_sent_tag(),
            3,
            "the partly written frame will complete"
        );
    }

    #[test]
    fn full_socket_reports_blocked_and_resumes_mid_frame() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut out = Outbox::default();
        let big = Bytes::from(vec![7u8; 4 << 20]);
        out.push(big.clone());
        assert_eq!(
            out.flush(a.as_raw_fd(), &WriteHistogram::default())
                .unwrap(),
            Flush::Blocked
        );
        assert!(out.queued_bytes() < big.len() + ENTRY_OVERHEAD);
        out.push_tagged(Bytes::from_static(b"tail"), 9);
        out.drop_unsent();
        assert_eq!(out.last_sent_tag(), 0, "the big frame is untagged");
        assert_eq!(out.frames.len(), 1, "the partly written frame stays");
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        while out
            .flush(a.as_raw_fd(), &WriteHistogram::default())
            .unwrap()
            == Flush::Blocked
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(a);
        assert_eq!(reader.join().unwrap().len(), big.len());
    }

    /// Over TLS, after the client asked for a key update (whose answer
    /// rustls puts ahead of the next record, past the seal buffer's
    /// size), small, record-sized and large frames all reach the client
    /// whole and in order through a socket that fills.
    #[test]
    fn sealed_frames_arrive_in_order_across_a_key_update_and_a_full_socket() {
        let (mut link, mut client) = crate::runtime::tls_link::testing::connected();
        client.refresh_traffic_keys().unwrap();
        std::io::Write::write_all(&mut client.writer(), b"hi").unwrap();
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let (plain, answer, failed) =
            crate::runtime::tls_link::testing::feed(&mut link, &wire, &[]);
        assert!(!failed && plain == b"hi");
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut out = Outbox::default();
        if !answer.is_empty() {
            out.push_sealed(Bytes::from(answer));
        }
        let mut want = Vec::new();
        for (i, &n) in [16_370usize, 3, 700, 70_000, 16_384, 1, 5000]
            .iter()
            .enumerate()
        {
            for round in 0..6u8 {
                let frame = vec![round.wrapping_mul(7).wrapping_add(i as u8); n];
                want.extend_from_slice(&frame);
                out.push(Bytes::from(frame));
            }
        }
        let total = want.len();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while got.len() < total {
                let n = b.read(&mut chunk).unwrap();
                assert!(n > 0, "closed early");
                let mut rd = &chunk[..n];
                while !rd.is_empty() {
                    client.read_tls(&mut rd).unwrap();
                    client.process_new_packets().unwrap();
                    let _ = client.reader().read_to_end(&mut got);
                }
            }
            got
        });
        let writes = WriteHistogram::default();
        while out.flush_sealed(a.as_raw_fd(), &writes, &mut link).unwrap() == Flush::Blocked {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(out.is_empty());
        assert!(reader.join().unwrap() == want, "every byte, in order");
    }

    #[test]
    fn small_and_large_frames_mixed_arrive_whole_and_in_order_through_a_full_socket() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut out = Outbox::default();
        let sizes = [10usize, 300, 2048, 2049, 5, 70_000, 1, 1, 900, 16_000, 3];
        let mut want = Vec::new();
        for round in 0..40u8 {
            for (i, &n) in sizes.iter().enumerate() {
                let frame = vec![round.wrapping_mul(11).wrapping_add(i as u8); n];
                want.extend_from_slice(&frame);
                out.push(Bytes::from(frame));
            }
        }
        let total = want.len();
        let reader = std::thread::spawn(move || {
            let mut all = vec![0; total];
            b.read_exact(&mut all).unwrap();
            all
        });
        let writes = WriteHistogram::default();
        while out.flush(a.as_raw_fd(), &writes).unwrap() == Flush::Blocked {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(out.is_empty());
        assert!(reader.join().unwrap() == want, "every byte, in order");
    }
}
