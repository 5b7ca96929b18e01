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

/// The sending ends of every core's channel, and the receiving ends until
/// each core takes its own.
pub struct Mailbox {
    cores: Vec<flume::Sender<CoreMsg>>,
    receivers: Mutex<Vec<Option<flume::Receiver<CoreMsg>>>>,
}

impl Mailbox {
    /// Mailboxes for `cores` cores.
    pub fn new(cores: usize) -> Mailbox {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores).map(|_| flume::unbounded()).unzip();
        Mailbox {
            cores: senders,
            receivers: Mutex::new(receivers.into_iter().map(Some).collect()),
        }
    }

    /// The receiving end of core `id` (taken once, by that core).
    pub fn take_receiver(&self, id: usize) -> flume::Receiver<CoreMsg> {
        self.receivers.lock().unwrap_or_else(|e| e.into_inner())[id]
            .take()
            .expect("each core takes its receiver once")
    }

    /// Sends a batch to every core.
    pub fn broadcast(&self, batch: Arc<[EventFrame]>) {
        for core in &self.cores {
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
}

impl Inbox {
    pub fn new(core: Rc<HubCore>, rx: flume::Receiver<CoreMsg>) -> Inbox {
        Inbox { core, rx }
    }

    fn handle(&self, msg: CoreMsg) {
        match msg {
            CoreMsg::Batch(batch) => self.core.deliver(&batch),
            CoreMsg::Command(f) => f(&self.core),
        }
    }

    /// The core's fan-out task: runs until every sender is gone.
    pub async fn run(self: Rc<Self>) {
        while let Ok(msg) = self.rx.recv_async().await {
            self.handle(msg);
            // Take whatever else arrived before yielding to the writers.
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
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
