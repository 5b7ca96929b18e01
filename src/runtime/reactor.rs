//! The upgraded connections of one core, multiplexed by one task.
//!
//! Once its handshake is done, a connection has no task and no future of
//! its own: its descriptor joins the core's epoll set (edge-triggered,
//! registered once for reads and writes), and its state is a [`Conn`] and a
//! [`Session`] held inline in the core's slot table. One reactor task per core waits
//! for that set through the monoio driver (a poll of the epoll descriptor,
//! on io_uring or on epoll) and for the core's [`ReadyList`], on which a
//! connection is put when frames are queued for it or the janitor gives up
//! on it. So an idle connection costs its two small structs and a kernel
//! registration, nothing re-armed per readiness; and a fan-out of one event
//! to many connections is one pass over the ready list, with one `sendmsg`
//! per connection.
//!
//! Readiness is a hint: a slot can be reused between an event and its
//! handling, so events never close a connection by themselves; only a read
//! or a write that fails (or reads the end of the stream) does. Edge
//! triggering means input left unread (a read budget used up, or reading
//! paused behind a full send queue) is remembered by the session and the
//! connection put back on the ready list when it may read again.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::worker::Core;
use super::ws;
use super::App;

/// Epoll events fetched by one `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;
/// Connections handled in one turn before other tasks of the core (accepts,
/// handshakes, the application's own) get to run.
const CONNS_PER_TURN: usize = 1024;

/// Connections with work for the reactor, by slot, and the reactor's waker.
#[derive(Default)]
pub struct ReadyList {
    slots: RefCell<Vec<u32>>,
    waker: Cell<Option<Waker>>,
}

impl ReadyList {
    /// Adds a slot and wakes the reactor (callers push a slot once until
    /// the reactor takes it: see `Conn::wake`).
    pub(crate) fn push(&self, slot: u32) {
        self.slots.borrow_mut().push(slot);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    /// Moves the slots into `into` (emptied first), keeping both buffers.
    fn take_into(&self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(&mut *self.slots.borrow_mut(), into);
    }

    fn register(&self, waker: &Waker) {
        let w = self.waker.take();
        match w {
            Some(w) if w.will_wake(waker) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(waker.clone())),
        }
    }
}

/// What the socket reported, as far as the reactor cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// Bytes, the end of the stream or an error wait to be read.
    pub(crate) read: bool,
    /// Room to write appeared.
    pub(crate) write: bool,
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

/// A core's epoll set: one edge-triggered registration per connection,
/// keyed by its slot.
#[derive(Debug)]
pub(crate) struct EpollSet {
    fd: OwnedFd,
}

impl EpollSet {
    pub(crate) fn new() -> io::Result<EpollSet> {
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
    pub(crate) fn add(&self, fd: RawFd, slot: u32) -> io::Result<()> {
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

    /// The events ready now, without waiting.
    fn poll_now(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
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

    /// A second descriptor for the set, for the driver to poll.
    fn try_clone(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

/// Hands an upgraded connection to the core's reactor: it gets its send
/// buffer size (`limits.socket_send_buffer_bytes`, which bounds what a
/// reader that stalls pins in the kernel), its slot, its 101 response and
/// `on_open`, its first input (`leftover`, read with the request), and its
/// place in the epoll set.
pub(crate) fn adopt<A: App>(
    core: &Core<A>,
    fd: OwnedFd,
    accept: &str,
    handler: A::Handler,
    leftover: Vec<u8>,
) {
    let sndbuf = core.settings.limits.socket_send_buffer_bytes;
    if sndbuf > 0 {
        if let Err(e) = socket2::SockRef::from(&fd).set_send_buffer_size(sndbuf) {
            log::debug!("worker {}: SO_SNDBUF {sndbuf}: {e}", core.id);
        }
    }
    let (conn, mut session) = ws::open(core, fd, accept, handler);
    let slot = conn.slot();
    let mut alive = true;
    if !leftover.is_empty() {
        let mut first = leftover;
        alive = ws::input_and_end(core, &conn, &mut session, &mut first);
    }
    if let Err(e) = core.epoll.add(session.fd(), slot) {
        log::warn!("worker {}: cannot watch a connection: {e}", core.id);
        alive = false;
    }
    if !alive {
        ws::finish(core, &conn, session);
        return;
    }
    core.set_session(slot, session);
    conn.wake();
}

/// The core's reactor: handles ready connections until the runtime ends.
/// `waiter` is the core's epoll set as the driver sees it
/// ([`driver_handle`]).
pub(crate) async fn run<A: App>(core: Rc<Core<A>>, waiter: DriverHandle) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    let mut marked = Vec::new();
    let mut armed = pin!(waiter.readable(false));
    // The set may have events the driver has not reported (it reports
    // edges): look at it until it comes back empty.
    let mut epoll_pending = true;
    loop {
        let mut handled = 0;
        loop {
            core.ready.take_into(&mut marked);
            for &slot in &marked {
                ws::step(&core, slot, Readiness::default());
            }
            handled += marked.len();
            let mut got = 0;
            if epoll_pending {
                got = match core.epoll.poll_now(&mut events) {
                    Ok(n) => n,
                    Err(e) => {
                        log::error!("worker {}: epoll_wait failed: {e}", core.id);
                        0
                    }
                };
                epoll_pending = got == events.len();
                for ev in &events[..got] {
                    let (bits, slot) = (ev.events, ev.u64);
                    ws::step(&core, slot as u32, Readiness::from_epoll(bits));
                }
                handled += got;
            }
            if marked.is_empty() && got == 0 {
                break;
            }
            if handled >= CONNS_PER_TURN {
                yield_now().await;
                handled = 0;
            }
        }
        let fired = poll_fn(|cx| {
            if !core.ready.is_empty() {
                return Poll::Ready(false);
            }
            if armed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            core.ready.register(cx.waker());
            Poll::Pending
        })
        .await;
        if fired {
            epoll_pending = true;
            armed.set(waiter.readable(false));
        }
    }
}

/// A descriptor of the epoll set registered with the monoio driver.
pub(crate) type DriverHandle = monoio::net::unix::UnixDatagram;

/// The epoll set as something the monoio driver can wait on. monoio polls
/// sockets only, so a second descriptor of the set is wrapped as one; it is
/// never read or written, only polled for readability (an epoll descriptor
/// is readable while it has events).
pub(crate) fn driver_handle(set: &EpollSet) -> io::Result<DriverHandle> {
    let fd = set.try_clone()?;
    // SAFETY: the wrapper takes ownership of the new descriptor; only
    // readiness is ever asked of it.
    let std = unsafe { std::os::unix::net::UnixDatagram::from_raw_fd(fd.into_raw_fd()) };
    monoio::net::unix::UnixDatagram::from_std(std)
}

/// Lets the other tasks of the core run before coming back.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn epoll_set_reports_readable_slot_once_per_edge() {
        let set = EpollSet::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        set.add(a.as_raw_fd(), 7).unwrap();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];
        // Registration reports the current state: writable.
        let n = set.poll_now(&mut events).unwrap();
        assert_eq!(n, 1);
        let slot = events[0].u64;
        assert_eq!(slot, 7);
        assert_eq!(
            Readiness::from_epoll(events[0].events),
            Readiness {
                read: false,
                write: true
            }
        );
        assert_eq!(set.poll_now(&mut events).unwrap(), 0, "edge-triggered");
        b.write_all(b"x").unwrap();
        assert_eq!(set.poll_now(&mut events).unwrap(), 1);
        assert!(Readiness::from_epoll(events[0].events).read);
        drop(b);
        assert_eq!(set.poll_now(&mut events).unwrap(), 1, "hang-up is an edge");
        assert!(Readiness::from_epoll(events[0].events).read);
    }

    #[test]
    fn ready_list_hands_over_every_pushed_slot() {
        let list = ReadyList::default();
        list.push(3);
        list.push(1);
        let mut got = vec![99];
        list.take_into(&mut got);
        assert_eq!(got, vec![3, 1]);
        assert!(list.is_empty());
    }
}
