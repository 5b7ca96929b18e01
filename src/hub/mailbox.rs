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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::core::HubCore;
use super::event::EventFrame;
use crate::runtime::ENTRY_OVERHEAD;

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

/// The share of `limits.send_queue_bytes` a core fans out in one turn
/// before it lets its writers run (a quarter): a turn queues at most that
/// much on any one connection, so a sustained flood reaches the sockets in
/// slices, each connection's slice coalesced into one `sendmsg`, and a
/// subscriber that reads keeps its queue far below the bound at which it
/// would be closed as slow. Counted as the outbox counts (frame bytes plus
/// each entry's bookkeeping), per event, whatever its subscribers.
const TURN_SHARE: usize = 4;

/// What queueing `ev` costs a connection that takes it (the larger of its
/// two forms: a connection gets one or the other).
fn cost(ev: &EventFrame) -> usize {
    let docker = ev.docker.as_ref().map_or(0, |d| d.frame.len());
    ev.frame.len().max(docker) + ENTRY_OVERHEAD
}

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

    /// How many cores there are.
    pub fn cores(&self) -> usize {
        self.cores.len()
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
    /// A batch fanned out in part (a turn's budget ran out inside it), and
    /// where its rest starts.
    partial: RefCell<Option<(Arc<[EventFrame]>, usize)>>,
    /// Bytes a turn may queue ([`TURN_SHARE`]).
    budget: usize,
}

impl Inbox {
    pub fn new(core: Rc<HubCore>, rx: flume::Receiver<CoreMsg>, mailbox: Arc<Mailbox>) -> Inbox {
        let budget = core.shared.config.send_queue_bytes / TURN_SHARE;
        Inbox {
            core,
            rx,
            mailbox,
            partial: RefCell::new(None),
            budget,
        }
    }

    /// The next batch to fan out (the rest of a partial one first) and
    /// where in it to start; runs any command met on the way. `None` when
    /// nothing is waiting.
    fn next_batch(&self) -> Option<(Arc<[EventFrame]>, usize)> {
        if let Some(partial) = self.partial.borrow_mut().take() {
            return Some(partial);
        }
        loop {
            match self.rx.try_recv().ok()? {
                CoreMsg::Batch(batch) => return Some((batch, 0)),
                CoreMsg::Command(f) => f(&self.core),
            }
        }
    }

    /// Fans out events from `batch[from..]` until `spent` reaches the
    /// budget; keeps the rest for the next turn. Returns `spent`.
    fn fan_out(&self, batch: Arc<[EventFrame]>, from: usize, mut spent: usize) -> usize {
        let mut end = from;
        while end < batch.len() && spent < self.budget {
            spent += cost(&batch[end]);
            end += 1;
        }
        self.core.deliver(&batch[from..end]);
        self.mailbox.pending[self.core.id].fetch_sub(end - from, Relaxed);
        if end < batch.len() {
            *self.partial.borrow_mut() = Some((batch, end));
        }
        spent
    }

    /// The core's fan-out task: runs until every sender is gone. It fans
    /// out what has arrived up to a turn's budget, then lets the core's
    /// other tasks (the writers above all) run before going on.
    pub async fn run(self: Rc<Self>) {
        let mut spent = 0;
        loop {
            if let Some((batch, from)) = self.next_batch() {
                spent = self.fan_out(batch, from, spent);
                if spent >= self.budget {
                    crate::runtime::yield_now().await;
                    spent = 0;
                }
                continue;
            }
            spent = 0;
            match self.rx.recv_async().await {
                Ok(CoreMsg::Batch(batch)) => spent = self.fan_out(batch, 0, spent),
                Ok(CoreMsg::Command(f)) => f(&self.core),
                Err(_) => return,
            }
        }
    }

    /// Delivers everything already sent to this core (on shutdown, before
    /// the close frames).
    pub fn drain(&self) {
        while let Some((batch, from)) = self.next_batch() {
            self.core.deliver(&batch[from..]);
            self.mailbox.pending[self.core.id].fetch_sub(batch.len() - from, Relaxed);
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
