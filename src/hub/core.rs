//! One core's part of the hub: its subscribers, its index, and the task
//! that fans events out to them.
//!
//! Everything here is owned by one thread and touched without locks. A
//! subscriber lives in the slot its connection has in the core's registry,
//! so the index's bit positions, the subscriber table and the connection
//! table all use one number. Fan-out walks the index row of each event's
//! channel and queues the event's shared frame on each match; the core's
//! reactor then writes everything queued to each connection, many frames
//! per `sendmsg`, once the fan-out yields.
//!
//! The core's timed work ([`HubCore::on_tick`], from the runtime's
//! `App::on_tick`) is here too: the queued-bytes gauge, and closing the
//! `/events/ws` subscribers whose `until` has passed. Messages from other
//! threads reach the core through its [`mailbox`](super::mailbox), which
//! calls [`HubCore::deliver`] and runs commands; this file does not know
//! the mailbox.
//!
//! Layer: hub. Imports the hub's indexes, slot tables, channels, Docker
//! filter, event frames and [`Shared`], the runtime's
//! [`Conn`] and the protocol crate's close codes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::channels::ChannelSet;
use super::docker::filter::DockerFilter;
use super::docker::index::FilterIndex;
use super::event::EventFrame;
use super::index::SubscriberIndex;
use super::slots::SlotTable;
use super::Shared;
use crate::proto::CloseCode;
use crate::runtime::Conn;

/// A subscribed connection.
pub struct Subscriber {
    pub conn: Rc<Conn>,
    pub client_id: Uuid,
    pub principal: u32,
    pub channels: ChannelSet,
    /// Events up to this `seq` were sent by the replay (or predate the
    /// subscription) and are skipped live.
    pub min_seq: u64,
}

/// What a subscriber's own messages and an unsubscribe need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    pub client_id: Uuid,
    pub principal: u32,
    pub channels: ChannelSet,
}

/// A `/events/ws` connection.
pub struct DockerSubscriber {
    pub conn: Rc<Conn>,
    pub filter: DockerFilter,
    /// Live events up to this `seq` are skipped (the replay had them).
    pub min_seq: u64,
    /// Docker's `until`: events after this time (seconds) are not sent.
    pub until: Option<i64>,
}

/// The hub's state on one core.
pub struct HubCore {
    pub id: usize,
    pub shared: Arc<Shared>,
    subs: RefCell<SlotTable<Subscriber>>,
    index: RefCell<SubscriberIndex>,
    docker_subs: RefCell<SlotTable<DockerSubscriber>>,
    filters: RefCell<FilterIndex>,
    /// `/events/ws` subscribers with an `until` (the tick looks at none
    /// while there are none).
    with_until: Cell<usize>,
    /// Ticks of the core's janitor so far.
    ticks: Cell<u64>,
}

/// Seconds since the epoch (Docker's `since`/`until` are in these).
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl HubCore {
    pub fn new(id: usize, shared: Arc<Shared>) -> HubCore {
        let channels = shared.channels.len();
        HubCore {
            id,
            shared,
            subs: RefCell::new(SlotTable::default()),
            index: RefCell::new(SubscriberIndex::new(channels)),
            docker_subs: RefCell::new(SlotTable::default()),
            filters: RefCell::new(FilterIndex::default()),
            with_until: Cell::new(0),
            ticks: Cell::new(0),
        }
    }

    /// Adds a subscriber in its connection's slot.
    pub fn add(&self, sub: Subscriber) {
        let slot = sub.conn.slot_index();
        self.index.borrow_mut().set(slot, sub.channels);
        self.subs.borrow_mut().insert(slot, sub);
        self.shared.stats.cores[self.id]
            .subscribers
            .fetch_add(1, Relaxed);
    }

    /// Removes the subscriber in `slot`.
    pub fn remove(&self, slot: usize) {
        self.index.borrow_mut().clear(slot);
        if self.subs.borrow_mut().remove(slot).is_some() {
            self.shared.stats.cores[self.id]
                .subscribers
                .fetch_sub(1, Relaxed);
        }
    }

    /// Adds a `/events/ws` subscriber in its connection's slot.
    pub fn add_docker(&self, sub: DockerSubscriber) {
        let slot = sub.conn.slot_index();
        self.filters.borrow_mut().add(slot, &sub.filter);
        if sub.until.is_some() {
            self.with_until.set(self.with_until.get() + 1);
        }
        self.docker_subs.borrow_mut().insert(slot, sub);
        self.shared.stats.cores[self.id]
            .docker_subscribers
            .fetch_add(1, Relaxed);
    }

    /// Removes the `/events/ws` subscriber in `slot`.
    pub fn remove_docker(&self, slot: usize) {
        let Some(sub) = self.docker_subs.borrow_mut().remove(slot) else {
            return;
        };
        self.filters.borrow_mut().remove(slot, &sub.filter);
        if sub.until.is_some() {
            self.with_until.set(self.with_until.get() - 1);
        }
        self.shared.stats.cores[self.id]
            .docker_subscribers
            .fetch_sub(1, Relaxed);
    }

    /// Who the subscriber in `slot` is and what it receives.
    pub fn subscriber(&self, slot: usize) -> Option<SubscriberInfo> {
        let subs = self.subs.borrow();
        subs.get(slot).map(|s| SubscriberInfo {
            client_id: s.client_id,
            principal: s.principal,
            channels: s.channels,
        })
    }

    /// Replaces the channels of the subscriber in `slot` and returns its
    /// connection to tell it.
    pub fn set_channels(&self, slot: usize, set: ChannelSet) -> Option<Rc<Conn>> {
        let mut subs = self.subs.borrow_mut();
        let sub = subs.get_mut(slot)?;
        sub.channels = set;
        self.index.borrow_mut().set(slot, set);
        Some(sub.conn.clone())
    }

    /// Queues each event on every matching subscriber; closes with 1013
    /// those whose queue would pass the limit.
    pub fn deliver(&self, batch: &[EventFrame]) {
        let subs = self.subs.borrow();
        let index = self.index.borrow();
        let docker_subs = self.docker_subs.borrow();
        let mut filters = self.filters.borrow_mut();
        let mut delivered = 0u64;
        for ev in batch {
            index.for_each_match(ev.channel, |slot| {
                if let Some(sub) = subs.get(slot) {
                    delivered += u64::from(self.offer(&sub.conn, sub.min_seq, ev.seq, &ev.frame));
                }
            });
            let Some(docker) = &ev.docker else { continue };
            filters.for_each_match(&docker.keys, |slot| {
                let Some(sub) = docker_subs.get(slot) else {
                    return;
                };
                if sub.until.is_some_and(|until| docker.keys.time > until) {
                    return;
                }
                delivered += u64::from(self.offer(&sub.conn, sub.min_seq, ev.seq, &docker.frame));
            });
        }
        self.shared.stats.cores[self.id]
            .deliveries
            .fetch_add(delivered, Relaxed);
    }

    /// Queues one event's frame on one connection unless it had it already;
    /// a connection whose queue would pass the limit is a slow consumer.
    fn offer(&self, conn: &Conn, min_seq: u64, seq: u64, frame: &bytes::Bytes) -> bool {
        if seq <= min_seq || !conn.is_open() {
            return false;
        }
        if conn.queued_bytes() + frame.len() > self.shared.config.send_queue_bytes {
            self.shared.stats.cores[self.id]
                .slow_consumer_closes
                .fetch_add(1, Relaxed);
            conn.close_now(CloseCode::TRY_AGAIN_LATER, |last| {
                format!("slow consumer: send queue full; last seq sent {last}; reconnect with since={last}")
            });
            log::info!(
                "core {}: closed a slow consumer (connection slot {})",
                self.id,
                conn.slot_index()
            );
            return false;
        }
        conn.send_tagged(frame.clone(), seq);
        true
    }

    /// The core's timed work, called on each tick of its janitor (twice a
    /// second): the queued-bytes gauge every second tick, and the close
    /// (1000, "until reached") of each `/events/ws` subscriber whose
    /// `until` has passed.
    pub fn on_tick(&self) {
        let ticks = self.ticks.get() + 1;
        self.ticks.set(ticks);
        if ticks % 2 == 0 {
            self.sample_queues();
        }
        if self.with_until.get() > 0 {
            self.close_past_until(now_secs());
        }
    }

    /// Closes the `/events/ws` subscribers whose `until` is before `now`
    /// (seconds); a closing one is skipped by fan-out and leaves the table
    /// when its connection is gone.
    fn close_past_until(&self, now: i64) {
        for sub in self.docker_subs.borrow().values() {
            if sub.until.is_some_and(|until| now > until) {
                sub.conn.close(CloseCode::NORMAL, "until reached");
            }
        }
    }

    /// Samples the bytes queued on this core's subscribers.
    fn sample_queues(&self) {
        let hub: usize = self
            .subs
            .borrow()
            .values()
            .map(|s| s.conn.queued_bytes())
            .sum();
        let docker: usize = self
            .docker_subs
            .borrow()
            .values()
            .map(|s| s.conn.queued_bytes())
            .sum();
        self.shared.stats.cores[self.id]
            .queue_bytes
            .store((hub + docker) as u64, Relaxed);
    }
}
