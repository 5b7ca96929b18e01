//! The cores' mailboxes: how work reaches a core from another thread.
//!
//! Each core has one unbounded channel, read by its fan-out task
//! ([`Inbox::run`]). Two kinds of message travel on it: a batch of
//! sequenced events for every core ([`Mailbox::broadcast`], called by the
//! sequencer under its lock so that every channel stays in `seq` order),
//! and a command for one core ([`Mailbox::send_command`]: a closure run on
//! that core, such as a REST unsubscribe for a connection it holds). The
//! sequencer orders events; routing them to the cores is this module's job.
//!
//! Layer: hub. Imports the hub's [`event`](super::event) frames and the
//! [`core`](super::core) it delivers to; nothing of the API or the runtime.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::core::HubCore;
use super::event::EventFrame;

/// A closure run on one core.
pub type Command = Box<dyn FnOnce(&HubCore) + Send>;

/// What a core is sent.
pub enum CoreMsg {
    /// Events to fan out, in `seq` order.
    Batch(Arc<[EventFrame]>),
    /// Run a closure on the core (cross-core commands such as a REST
    /// unsubscribe for a connection this core holds).
    Command(Command),
}

/// Events a core fans out before it lets its writers run: a turn queues at
/// most this many frames on any one connection, so a sustained flood
/// reaches the sockets in slices instead of piling up in every queue at
/// once. Large enough that ordinary bursts still go out in one pass (each
/// connection's frames coalesced into one `sendmsg`): a bound of 256 made
/// the debug build's writers take many small passes under the load tool's
/// 1,000 x 4 KiB events/s, and its healthy subscribers fall behind.
const EVENTS_PER_TURN: usize = 4096;

/// The sending ends of every core's channel, and the receiving ends until
/// each core takes its own.
///
/// The channels never block a sender (the sequencer sends under its lock,
/// from the cores' own threads), so they are bounded by admission instead:
/// each core counts the events sent to it and not yet fanned out, and a
/// publish is refused while any core has more than its bound
/// ([`Mailbox::overloaded`]). What is over the bound at any moment is what
/// publishers already admitted sent at once: a batch each.
pub struct Mailbox {
    cores: Vec<flume::Sender<CoreMsg>>,
    receivers: Mutex<Vec<Option<flume::Receiver<CoreMsg>>>>,
    /// Events sent to each core and not yet fanned out.
    pending: Vec<AtomicUsize>,
}

impl Mailbox {
    /// Mailboxes for `cores` cores.
    pub fn new(cores: usize) -> Mailbox {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores).map(|_| flume::unbounded()).unzip();
        Mailbox {
            cores: senders,
            receivers: Mutex::new(receivers.into_iter().map(Some).collect()),
            pending: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Whether some core has more than `max` events waiting: the hub is
    /// not keeping up, and publishers should wait.
    pub fn overloaded(&self, max: usize) -> bool {
        self.pending.iter().any(|p| p.load(Relaxed) > max)
    }

    /// The events waiting on the busiest core.
    pub fn deepest(&self) -> usize {
        self.pending
            .iter()
            .map(|p| p.load(Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// The receiving end of core `id` (taken once, by that core).
    pub fn take_receiver(&self, id: usize) -> flume::Receiver<CoreMsg> {
        self.receivers.lock().unwrap_or_else(|e| e.into_inner())[id]
            .take()
            .expect("each core takes its receiver once")
    }

    /// Sends a batch to every core.
    pub fn broadcast(&self, batch: Arc<[EventFrame]>) {
        for (core, pending) in self.cores.iter().zip(&self.pending) {
            pending.fetch_add(batch.len(), Relaxed);
            let _ = core.send(CoreMsg::Batch(batch.clone()));
        }
    }

    /// Runs `command` on core `core`; false if there is no such core (or it
    /// has stopped).
    pub fn send_command(&self, core: usize, command: Command) -> bool {
        self.cores
            .get(core)
            .is_some_and(|c| c.send(CoreMsg::Command(command)).is_ok())
    }
}

/// One core's receiving end, with the core it delivers to.
pub struct Inbox {
    core: Rc<HubCore>,
    rx: flume::Receiver<CoreMsg>,
    mailbox: Arc<Mailbox>,
}

impl Inbox {
    pub fn new(core: Rc<HubCore>, rx: flume::Receiver<CoreMsg>, mailbox: Arc<Mailbox>) -> Inbox {
        Inbox { core, rx, mailbox }
    }

    /// Handles one message; returns the events it fanned out.
    fn handle(&self, msg: CoreMsg) -> usize {
        match msg {
            CoreMsg::Batch(batch) => {
                self.core.deliver(&batch);
                self.mailbox.pending[self.core.id].fetch_sub(batch.len(), Relaxed);
                batch.len()
            }
            CoreMsg::Command(f) => {
                f(&self.core);
                0
            }
        }
    }

    /// The core's fan-out task: runs until every sender is gone. It takes
    /// what has arrived up to [`EVENTS_PER_TURN`] events, then lets the
    /// core's other tasks (the writers above all) run before going on.
    pub async fn run(self: Rc<Self>) {
        while let Ok(msg) = self.rx.recv_async().await {
            let mut events = self.handle(msg);
            while events < EVENTS_PER_TURN {
                let Ok(msg) = self.rx.try_recv() else { break };
                events += self.handle(msg);
            }
            if events >= EVENTS_PER_TURN {
                crate::runtime::yield_now().await;
            }
        }
    }

    /// Delivers everything already sent to this core (on shutdown, before
    /// the close frames).
    pub fn drain(&self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::event::Prepared;

    fn batch(n: usize) -> Arc<[EventFrame]> {
        (0..n)
            .map(|i| Prepared::new(1, "pdfm", "m", "{}").finish(i as u64 + 1))
            .collect()
    }

    #[test]
    fn events_sent_and_not_yet_fanned_out_count_against_every_cores_bound() {
        let mailbox = Mailbox::new(2);
        let rx0 = mailbox.take_receiver(0);
        let _rx1 = mailbox.take_receiver(1);
        mailbox.broadcast(batch(3));
        mailbox.broadcast(batch(2));
        assert_eq!(mailbox.deepest(), 5);
        assert!(mailbox.overloaded(4));
        assert!(!mailbox.overloaded(5));
        // Core 0 delivers its share; core 1 is still behind, which is
        // enough to hold publishers back.
        for msg in rx0.try_iter() {
            if let CoreMsg::Batch(b) = msg {
                mailbox.pending[0].fetch_sub(b.len(), Relaxed);
            }
        }
        assert_eq!(mailbox.pending[0].load(Relaxed), 0);
        assert!(mailbox.overloaded(4), "the slowest core decides");
    }
}
