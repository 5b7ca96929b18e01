//! The upgraded connections of one core, multiplexed by one task.
//!
//! Runtime layer: imports the core, [`super::ws`] (each connection's steps),
//! the ready list of [`super::conn`] and the epoll set of [`super::sys`].
//!
//! Once its handshake is done, a connection has no task and no future of
//! its own: its descriptor joins the core's epoll set (edge-triggered,
//! registered once for reads and writes), and its state is a
//! [`super::Conn`] and a slot held inline in the core's slot table. One reactor task per core waits
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

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use super::app::App;
use super::conn::ReadyList;
use super::core::Core;
use super::sys::{self, Readiness};
use super::ws;

/// Epoll events fetched by one `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;
/// Connections handled in one turn before other tasks of the core (accepts,
/// handshakes, the application's own) get to run.
const CONNS_PER_TURN: usize = 1024;
/// Passes over the ready list at most between two looks at the epoll set.
const EPOLL_EVERY: u32 = 16;

/// The core's reactor: handles ready connections until the runtime ends.
/// `waiter` is the core's epoll set as the driver sees it
/// ([`driver_handle`]).
pub(super) async fn run<A: App>(core: Rc<Core<A>>, waiter: DriverHandle) {
    let mut events = sys::epoll_events(EVENTS_PER_WAIT);
    let mut marked = Vec::new();
    let mut armed = pin!(waiter.readable(false));
    // The set may have events the driver has not reported (it reports
    // edges): look at it until it comes back empty.
    let mut epoll_pending = true;
    // Passes over the ready list since the set was last looked at.
    let mut passes = 0;
    let mut hold = Hold::new(&core);
    loop {
        let mut handled = 0;
        loop {
            // Input first: what the reads publish is fanned out (by the
            // application's tasks, which run at the yield) before any
            // connection is written, so that it leaves in the same writes
            // as what was already queued.
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
                    let (slot, io) = sys::event(ev);
                    if slot == HOLD_TIMER_SLOT {
                        hold.expired();
                        continue;
                    }
                    ws::step(&core, slot, io);
                }
                handled += got;
                if got > 0 {
                    super::yield_now().await;
                }
            }
            if hold.may_write() {
                ReadyList::with(|r| r.take_into(&mut marked));
            } else {
                marked.clear();
            }
            for &slot in &marked {
                ws::step(&core, slot, Readiness::default());
            }
            handled += marked.len();
            if marked.is_empty() && got == 0 {
                break;
            }
            if handled >= CONNS_PER_TURN {
                super::yield_now().await;
                handled = 0;
            }
        }
        // The set is looked at when the driver says it has events, and,
        // while the ready list never empties (a sustained fan-out), at
        // least every `EPOLL_EVERY` passes whatever the driver says: a
        // write-blocked connection waits for its `EPOLLOUT` edge in the
        // set, and a reactor that only served the ready list would leave
        // it blocked until its queue passed the bound.
        let fired = poll_fn(|cx| {
            if armed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            // While writes are held, the ready list waits for the timer
            // (an event of the set).
            if hold.is_holding() {
                return Poll::Pending;
            }
            if !ReadyList::with(ReadyList::is_empty) {
                return Poll::Ready(false);
            }
            ReadyList::with(|r| r.register(cx.waker()));
            Poll::Pending
        })
        .await;
        if fired {
            epoll_pending = true;
            armed.set(waiter.readable(false));
            passes = 0;
        } else {
            passes += 1;
            if passes >= EPOLL_EVERY {
                epoll_pending = true;
                passes = 0;
            }
        }
    }
}

/// The epoll slot of the write-coalescing timer (no connection has it).
const HOLD_TIMER_SLOT: u32 = u32::MAX;

/// `limits.write_coalesce_us`: once frames are queued, the core waits that
/// long before writing any, so that what arrives meanwhile leaves in the
/// same writes. Off (every write at once) when zero. Reads are not held;
/// a connection that reads may write its own queue then.
struct Hold {
    /// The timer and how long it holds; `None` when off.
    timer: Option<(sys::Timer, Duration)>,
    /// The timer runs: writes wait for it.
    holding: bool,
    /// The timer fired: the next look at the ready list writes.
    due: bool,
}

impl Hold {
    fn new<A: App>(core: &Core<A>) -> Hold {
        let hold = Duration::from_micros(core.settings.limits.write_coalesce_us);
        let timer = (!hold.is_zero())
            .then(|| match sys::Timer::new(&core.epoll, HOLD_TIMER_SLOT) {
                Ok(t) => Some((t, hold)),
                Err(e) => {
                    log::error!(
                        "worker {}: no write-coalescing timer ({e}); writing at once",
                        core.id
                    );
                    None
                }
            })
            .flatten();
        Hold {
            timer,
            holding: false,
            due: false,
        }
    }

    /// Whether the ready list may be written now; starts the timer when
    /// frames wait and it is not running.
    fn may_write(&mut self) -> bool {
        let Some((timer, hold)) = &self.timer else {
            return true;
        };
        if std::mem::take(&mut self.due) {
            return true;
        }
        if !self.holding && !ReadyList::with(ReadyList::is_empty) {
            timer.arm(*hold);
            self.holding = true;
        }
        !self.holding
    }

    fn is_holding(&self) -> bool {
        self.holding
    }

    /// The timer fired.
    fn expired(&mut self) {
        if let Some((timer, _)) = &self.timer {
            timer.clear();
        }
        self.holding = false;
        self.due = true;
    }
}

/// The core's epoll set as the monoio driver sees it.
pub(super) type DriverHandle = monoio::net::unix::UnixDatagram;

/// Registers the core's epoll set with the monoio driver, so that the
/// reactor can wait on it (on io_uring or on epoll) beside the core's
/// other tasks.
pub(super) fn driver_handle<A: App>(core: &Core<A>) -> io::Result<DriverHandle> {
    monoio::net::unix::UnixDatagram::from_std(core.epoll.as_pollable()?)
}
