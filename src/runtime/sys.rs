//! Every raw system call of the runtime, each with its SAFETY note: the
//! non-blocking reads and writes of a connection, the epoll set its reactor
//! waits on, and the descriptor plumbing around them.
//!
//! Runtime layer, bottom: imports only `libc` and `std`. Gathering the
//! `unsafe` here means the rest of the runtime is safe code over a few
//! small functions whose contracts can be read in one place.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// The result of a syscall that returns a count or -1.
fn check(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One non-blocking `recv` into `buf`.
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: receiving into a live, writable slice on a descriptor the
    // caller keeps open for the call.
    check(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// One non-blocking `recv` into the spare capacity of `buf`.
pub(super) fn recv_into_spare(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: recv writes at most spare.len() bytes into the vector's
    // uninitialized capacity.
    let n = check(unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    })?;
    // SAFETY: the kernel initialized the first n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// One non-blocking `send` of `bytes` (no SIGPIPE).
pub(super) fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: sending from a live slice on an open descriptor.
    check(unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// One non-blocking `sendmsg` of `slices`, in order (no SIGPIPE).
pub(super) fn sendmsg(fd: RawFd, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = slices.len() as _;
    // SAFETY: every iovec points into a slice borrowed for the duration of
    // the call; the kernel only reads them.
    check(unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// Shuts down one or both directions of a socket.
pub(super) fn shutdown(fd: RawFd, how: libc::c_int) {
    // SAFETY: shutdown takes no memory; on a descriptor that is not a
    // socket (or already shut) it fails harmlessly.
    unsafe { libc::shutdown(fd, how) };
}

/// Whether the kernel can take a connection's TLS records over (kTLS):
/// attaches the "tls" upper-layer protocol to a loopback connection made
/// for the question (`ENOENT` without the kernel's tls module).
pub(super) fn probe_ktls() -> io::Result<()> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let _server = listener.accept()?;
    let name = b"tls";
    // SAFETY: the option value points at `name`, valid for the call, and
    // its length is passed with it; the descriptor is the open `client`.
    check(unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    } as isize)
    .map(|_| ())
}

/// A second descriptor for an open socket.
pub(super) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the caller's stream owns fd and keeps it open for the call.
    unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

/// Lifts the soft open-file limit to the hard one: every connection is a
/// descriptor, and the default soft limit (often 1024) is far below what a
/// hub serves. The hard limit is the operator's (systemd's LimitNOFILE).
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// What the socket reported, as far as the reactor cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Readiness {
    /// Bytes, the end of the stream or an error wait to be read.
    pub(super) read: bool,
    /// Room to write appeared.
    pub(super) write: bool,
}

impl Readiness {
    fn from_epoll(bits: u32) -> Readiness {
        let read_bits = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR;
        Readiness {
            read: bits & read_bits as u32 != 0,
            write: bits & (libc::EPOLLOUT | libc::EPOLLERR) as u32 != 0,
        }
    }
}

/// Room for the events of one `epoll_wait`.
pub(super) type EpollEvents = Vec<libc::epoll_event>;

/// `count` empty event slots.
pub(super) fn epoll_events(count: usize) -> EpollEvents {
    vec![libc::epoll_event { events: 0, u64: 0 }; count]
}

/// A core's epoll set: one edge-triggered registration per connection,
/// keyed by its slot.
#[derive(Debug)]
pub(super) struct EpollSet {
    fd: OwnedFd,
}

impl EpollSet {
    pub(super) fn new() -> io::Result<EpollSet> {
        // SAFETY: plain syscall; a non-negative result is a new descriptor
        // that we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(EpollSet {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for reads, writes and hang-ups from now on. An fd leaves
    /// the set when it is closed.
    pub(super) fn add(&self, fd: RawFd, slot: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: u64::from(slot),
        };
        // SAFETY: both descriptors are open; ev is a valid event.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The events ready now, without waiting, written to the front of
    /// `events` (read each with [`event`]); returns their count.
    pub(super) fn poll_now(&self, events: &mut EpollEvents) -> io::Result<usize> {
        loop {
            // SAFETY: events is a writable array of events.len() entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// A second descriptor of the set, as a datagram socket: monoio's
    /// drivers poll sockets only, and an epoll descriptor is readable while
    /// it has events. The wrapper is never read or written, only polled.
    pub(super) fn as_pollable(&self) -> io::Result<std::os::unix::net::UnixDatagram> {
        let fd = self.fd.try_clone()?;
        // SAFETY: the wrapper takes ownership of the new descriptor; only
        // readiness is ever asked of it.
        Ok(unsafe { std::os::unix::net::UnixDatagram::from_raw_fd(fd.into_raw_fd()) })
    }
}

/// A one-shot monotonic timer whose expiry is an event in an epoll set,
/// with microsecond resolution (monoio's timers tick in milliseconds).
#[derive(Debug)]
pub(super) struct Timer {
    fd: OwnedFd,
}

impl Timer {
    /// A disarmed timer, watched by `set` under `slot`.
    pub(super) fn new(set: &EpollSet, slot: u32) -> io::Result<Timer> {
        // SAFETY: plain syscall; a non-negative result is a new descriptor
        // that we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        let timer = Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        set.add(timer.fd.as_raw_fd(), slot)?;
        Ok(timer)
    }

    /// Fires once, `after` from now.
    pub(super) fn arm(&self, after: std::time::Duration) {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                // At least 1 ns: a zero value would disarm it.
                tv_nsec: libc::c_long::from(after.subsec_nanos().max(1)),
            },
        };
        // SAFETY: the descriptor is open and spec is a valid itimerspec.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Takes the expiry (edge-triggered: the next one is a new edge).
    pub(super) fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: the descriptor is open; the buffer has 8 writable bytes.
        unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
    }
}

/// The slot and readiness of one fetched event.
pub(super) fn event(ev: &libc::epoll_event) -> (u32, Readiness) {
    let (bits, slot) = (ev.events, ev.u64);
    (slot as u32, Readiness::from_epoll(bits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn epoll_set_reports_readable_slot_once_per_edge() {
        let set = EpollSet::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        set.add(a.as_raw_fd(), 7).unwrap();
        let mut events = epoll_events(4);
        // Registration reports the current state: writable.
        assert_eq!(set.poll_now(&mut events).unwrap(), 1);
        assert_eq!(
            event(&events[0]),
            (
                7,
                Readiness {
                    read: false,
                    write: true
                }
            )
        );
        assert_eq!(set.poll_now(&mut events).unwrap(), 0, "edge-triggered");
        b.write_all(b"x").unwrap();
        assert_eq!(set.poll_now(&mut events).unwrap(), 1);
        assert!(event(&events[0]).1.read);
        drop(b);
        assert_eq!(set.poll_now(&mut events).unwrap(), 1, "hang-up is an edge");
        assert!(event(&events[0]).1.read);
    }

    #[test]
    fn sendmsg_writes_the_slices_in_order_and_recv_reads_them() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let parts = [IoSlice::new(b"one "), IoSlice::new(b"two")];
        assert_eq!(sendmsg(a.as_raw_fd(), &parts).unwrap(), 7);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two");
        assert_eq!(send(b.as_raw_fd(), b"back").unwrap(), 4);
        let mut buf = Vec::with_capacity(16);
        assert_eq!(recv_into_spare(a.as_raw_fd(), &mut buf).unwrap(), 4);
        assert_eq!(buf, b"back");
        let err = recv(a.as_raw_fd(), &mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
