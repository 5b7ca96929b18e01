//! What the readers share with the run while it lasts: how many
//! subscribers have every event, the publishers' window (`--window`), and
//! the stop signal, which the epoll threads poll and the WebSocket
//! library's tasks await.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::window::Window;

/// Shared by every reader and the run (cheap to clone).
#[derive(Clone)]
pub struct Progress {
    /// Events each subscriber should receive.
    pub expected: u64,
    /// Healthy subscribers that received all of them.
    done: Arc<AtomicU64>,
    /// Set when the run is over.
    stop: Arc<Stop>,
    /// Closed-loop publishing: what the subscribers have received.
    pub window: Option<Arc<Window>>,
}

/// A flag that can be polled or awaited.
#[derive(Default)]
struct Stop {
    set: AtomicBool,
    notify: Notify,
}

impl Progress {
    pub fn new(expected: u64, window: Option<Arc<Window>>) -> Progress {
        Progress {
            expected,
            done: Arc::default(),
            stop: Arc::default(),
            window,
        }
    }

    pub fn subscriber_done(&self) {
        self.done.fetch_add(1, SeqCst);
    }

    pub fn done(&self) -> u64 {
        self.done.load(SeqCst)
    }

    /// Ends the run for every reader.
    pub fn stop(&self) {
        self.stop.set.store(true, SeqCst);
        self.stop.notify.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.stop.set.load(SeqCst)
    }

    /// Returns once [`Progress::stop`] was called.
    pub async fn until_stopped(&self) {
        loop {
            let notified = self.stop.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop in between
            // still wakes this.
            notified.as_mut().enable();
            if self.stopped() {
                return;
            }
            notified.await;
        }
    }
}
