//! Closed-loop publishing (`--window N`): the publishers send event `t`
//! (counted over all of them) only once every healthy subscriber has
//! received at least `t - N` events, so no subscriber is ever more than
//! `N` events behind and the slowest one sets the pace. This is steady
//! heavy traffic, where the open loop at `--rate 0` is one burst that
//! the server queues.
//!
//! The readers report each subscriber's count as it grows; `reached[k]`
//! counts the subscribers that have `k` events, so the slowest one's
//! count is known without looking at every subscriber, and a publisher
//! is woken only when the count it waits for completes.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::Notify;

pub struct Window {
    /// Events a subscriber may be behind.
    size: u64,
    /// Subscribers that count (slow consumers do not).
    healthy: u64,
    /// `reached[k]`: subscribers that have received `k` events or more.
    reached: Vec<AtomicU64>,
    /// Events handed to the publishers so far.
    sent: AtomicU64,
    /// Some `reached[k]` became `healthy`.
    opened: Notify,
}

impl Window {
    /// A window of `size` events over `healthy` subscribers, for `events`
    /// events in all.
    pub fn new(size: u64, healthy: u64, events: u64) -> Window {
        Window {
            size,
            healthy,
            reached: (0..=events).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            opened: Notify::new(),
        }
    }

    /// A healthy subscriber's count of events became `received`.
    pub fn received(&self, received: u64) {
        let Some(count) = self.reached.get(received as usize) else {
            return; // duplicates past the last event
        };
        if count.fetch_add(1, SeqCst) + 1 == self.healthy {
            self.opened.notify_waiters();
        }
    }

    /// Waits until the next event may be sent; false if the window did not
    /// open within `timeout` (a subscriber lost events or was closed).
    pub async fn admit(&self, timeout: Duration) -> bool {
        let event = self.sent.fetch_add(1, SeqCst) + 1;
        let Some(needed) = event.checked_sub(self.size).filter(|&k| k > 0) else {
            return true;
        };
        tokio::time::timeout(timeout, self.until_everyone_has(needed))
            .await
            .is_ok()
    }

    async fn until_everyone_has(&self, k: u64) {
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a completion in between
            // still wakes this.
            notified.as_mut().enable();
            if self.everyone_has(k) {
                return;
            }
            notified.await;
        }
    }

    fn everyone_has(&self, k: u64) -> bool {
        self.reached
            .get(k as usize)
            .is_none_or(|count| count.load(SeqCst) >= self.healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_publisher_waits_for_the_slowest_subscriber() {
        let w = Window::new(2, 2, 10);
        let soon = Duration::from_millis(20);
        assert!(w.admit(soon).await, "event 1: nothing needed");
        assert!(w.admit(soon).await, "event 2: still within the window");
        // Event 3 needs both subscribers at 1; only one is.
        w.received(1);
        assert!(!w.admit(soon).await);
        // Event 4 needs both at 2.
        w.received(1);
        w.received(2);
        let waiting = w.admit(Duration::from_secs(5));
        tokio::pin!(waiting);
        assert!(tokio::time::timeout(soon, waiting.as_mut()).await.is_err());
        w.received(2);
        assert!(waiting.await, "opened by the slower subscriber's event 2");
    }

    #[tokio::test]
    async fn no_healthy_subscriber_leaves_it_open() {
        let w = Window::new(1, 0, 3);
        for _ in 0..3 {
            assert!(w.admit(Duration::from_millis(1)).await);
        }
    }
}
