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
//! A resuming subscriber is fed from the replay ring, not from a copy of
//! it: its row's `min_seq` is [`REPLAYING`] (so fan-out, which compares
//! every event's `seq` with `min_seq` anyway, skips it at no extra cost),
//! and a [`Replay`] cursor, kept in a map beside the tables only while it
//! replays, says how far it got. [`HubCore::refill`] queues the ring's next
//! slices up to half the send-queue bound, on open and whenever a write
//! drains the queue below that (`App::on_drained`); when a slice reaches
//! the last `seq` assigned, `min_seq` becomes that `seq` and the
//! subscriber is live. Both run on this core's thread, between batches, so
//! every event the core's batches have brought is already in the ring
//! when the cursor looks: none is missed, none sent twice.
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
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use uuid::Uuid;

use super::channels::ChannelSet;
use super::docker::filter::DockerFilter;
use super::docker::index::FilterIndex;
use super::event::EventFrame;
use super::index::SubscriberIndex;
use super::log::{FetchRequest, Fetched};
use super::probe::Probes;
use super::slots::SlotTable;
use super::Shared;
use crate::proto::deflate::Deflater;
use crate::proto::CloseCode;
use crate::runtime::{Conn, ENTRY_OVERHEAD};

/// A subscribed connection.
pub struct Subscriber {
    pub conn: Rc<Conn>,
    pub client_id: Uuid,
    pub principal: u32,
    pub channels: ChannelSet,
    /// Events up to this `seq` were sent by the replay (or predate the
    /// subscription) and are skipped live; [`REPLAYING`] while a replay
    /// feeds it from the ring (the one compare the live path makes).
    pub min_seq: u64,
}

/// `min_seq` of a subscriber whose replay is in progress: every live event
/// is skipped, since the ring has it (or will have it) and the replay
/// cursor reaches it in order.
pub const REPLAYING: u64 = u64::MAX;

/// Builds the message telling a subscriber that events after `after` in
/// `first..=last` are gone from the ring (`last_seq` is the hub's last).
pub type GapMessage = fn(after: u64, first: u64, last: u64, last_seq: u64) -> bytes::Bytes;

/// A replay in progress: a cursor into the ring, fed as the connection
/// drains ([`HubCore::refill`]). Kept beside the subscriber tables, in a
/// map holding only the connections that are replaying.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// The last `seq` handled (sent, or passed over as not the
    /// subscriber's).
    pub after: u64,
    /// For `/events/ws`: Docker's `since` (seconds), if given.
    pub since_time: Option<i64>,
    /// What to send when events after the cursor left the ring before the
    /// cursor reached them; none: skip them silently (Docker's shape has
    /// no such message).
    pub gap: Option<GapMessage>,
}

/// One event frame's forms as one core queues them: the plain frame and
/// the cell of its compressed form, with this core's copies of each (made
/// at their first subscriber).
struct Forms<'a> {
    plain: &'a Bytes,
    deflated: &'a OnceLock<Option<Bytes>>,
    /// Several cores: each queues its own copies (see `deliver`).
    local: bool,
    mine: Option<Bytes>,
    mine_z: Option<Option<Bytes>>,
    /// Compressed frames queued.
    deflated_queued: u64,
}

impl<'a> Forms<'a> {
    fn new(plain: &'a Bytes, deflated: &'a OnceLock<Option<Bytes>>, local: bool) -> Forms<'a> {
        Forms {
            plain,
            deflated,
            local,
            mine: None,
            mine_z: None,
            deflated_queued: 0,
        }
    }
}

/// A replay in progress, with what it fetched from the event log.
struct Cursor {
    replay: Replay,
    /// The ticket of the fetch it waits for.
    waiting: Option<u64>,
    /// The slice the log answered with, queued as the connection drains.
    fetched: Option<FetchedSlice>,
    /// The log failed it once: the ring's gap is reported instead.
    log_failed: bool,
}

impl Cursor {
    fn new(replay: Replay) -> Cursor {
        Cursor {
            replay,
            waiting: None,
            fetched: None,
            log_failed: false,
        }
    }
}

/// Events fetched from the log for one replay, not yet queued.
struct FetchedSlice {
    events: std::collections::VecDeque<EventFrame>,
    /// The last seq the fetch covered.
    through: u64,
}

impl FetchedSlice {
    /// Queues the events `pick` gives a frame for on `conn` until its
    /// queue holds `target` bytes (one at least when it is empty),
    /// advancing `replay`; returns how many were queued.
    fn drain_into(
        &mut self,
        conn: &Conn,
        target: usize,
        replay: &mut Replay,
        pick: &mut impl FnMut(&EventFrame) -> Option<bytes::Bytes>,
    ) -> u64 {
        let mut queued = 0;
        while let Some(ev) = self.events.front() {
            if ev.seq > replay.after {
                if let Some(frame) = pick(ev) {
                    if conn.queued_bytes() >= target && queued > 0 {
                        break;
                    }
                    conn.send_tagged(frame, ev.seq);
                    queued += 1;
                }
                replay.after = ev.seq;
            }
            self.events.pop_front();
        }
        queued
    }
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
    /// Live events up to this `seq` are skipped (the replay had them);
    /// [`REPLAYING`] while a replay is in progress.
    pub min_seq: u64,
    /// The `seq` the subscription started after (its `since_seq`, or the
    /// last `seq` when it opened): the resume point while nothing was sent.
    pub start: u64,
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
    /// Replays in progress, by slot.
    replays: RefCell<HashMap<usize, Cursor>>,
    /// Compresses event frames for permessage-deflate subscribers (made at
    /// the first need: a core that never has one holds none).
    deflater: RefCell<Option<Deflater>>,
    /// The last ticket given to a fetch from the event log.
    tickets: Cell<u64>,
    /// `/events/ws` subscribers with an `until` (the tick looks at none
    /// while there are none).
    with_until: Cell<usize>,
    /// Ticks of the core's janitor so far.
    ticks: Cell<u64>,
    /// Connections being probed after a 409 to their address.
    probes: Probes,
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
            replays: RefCell::new(HashMap::new()),
            deflater: RefCell::new(None),
            tickets: Cell::new(0),
            with_until: Cell::new(0),
            ticks: Cell::new(0),
            probes: Probes::default(),
        }
    }

    /// Probes the connection in `slot` (a subscriber of either endpoint),
    /// whose address was just refused another one with 409: see
    /// [`super::probe`].
    pub fn probe(&self, slot: usize) {
        let conn = self.conn_of(slot);
        if conn.is_some_and(|c| self.probes.start(c)) {
            self.shared.stats.conflict_probes.fetch_add(1, Relaxed);
        }
    }

    /// Adds a subscriber in its connection's slot.
    pub fn add(&self, sub: Subscriber) {
        let slot = sub.conn.slot_index();
        self.count_deflate(&sub.conn, true);
        self.index.borrow_mut().set(slot, sub.channels);
        self.subs.borrow_mut().insert(slot, sub);
        self.shared.stats.cores[self.id]
            .subscribers
            .fetch_add(1, Relaxed);
    }

    /// Removes the subscriber in `slot`.
    pub fn remove(&self, slot: usize) {
        self.replays.borrow_mut().remove(&slot);
        self.index.borrow_mut().clear(slot);
        if let Some(sub) = self.subs.borrow_mut().remove(slot) {
            self.count_deflate(&sub.conn, false);
            self.shared.stats.cores[self.id]
                .subscribers
                .fetch_sub(1, Relaxed);
        }
    }

    /// Adds a `/events/ws` subscriber in its connection's slot.
    pub fn add_docker(&self, sub: DockerSubscriber) {
        let slot = sub.conn.slot_index();
        self.count_deflate(&sub.conn, true);
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
        self.replays.borrow_mut().remove(&slot);
        let Some(sub) = self.docker_subs.borrow_mut().remove(slot) else {
            return;
        };
        self.count_deflate(&sub.conn, false);
        self.filters.borrow_mut().remove(slot, &sub.filter);
        if sub.until.is_some() {
            self.with_until.set(self.with_until.get() - 1);
        }
        self.shared.stats.cores[self.id]
            .docker_subscribers
            .fetch_sub(1, Relaxed);
    }

    /// Counts a subscriber in (or out of) the gauge of those that take
    /// compressed frames.
    fn count_deflate(&self, conn: &Conn, added: bool) {
        if !conn.takes_compressed() {
            return;
        }
        let gauge = &self.shared.stats.cores[self.id].deflate_subscribers;
        if added {
            gauge.fetch_add(1, Relaxed);
        } else {
            gauge.fetch_sub(1, Relaxed);
        }
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
        // With several cores, each queues its own copy of a frame (made at
        // its first subscriber): every delivery clones the frame, and clones
        // of one shared copy would have the cores bounce the cache line of
        // its reference count between them (7% of the hub's samples in a
        // closed-loop run on two cores, before this).
        let local = self.shared.stats.cores.len() > 1;
        let mut deflated = 0u64;
        for ev in batch {
            let mut forms = Forms::new(&ev.frame, &ev.deflated, local);
            index.for_each_match(ev.channel, |slot| {
                if let Some(sub) = subs.get(slot) {
                    let frame = self.form(&mut forms, &sub.conn);
                    if self.may_offer(&sub.conn, sub.min_seq, ev.seq, frame.len(), None) {
                        sub.conn.send_tagged(frame, ev.seq);
                        delivered += 1;
                    }
                }
            });
            deflated += forms.deflated_queued;
            let Some(docker) = &ev.docker else { continue };
            let mut forms = Forms::new(&docker.frame, &docker.deflated, local);
            filters.for_each_match(&docker.keys, |slot| {
                let Some(sub) = docker_subs.get(slot) else {
                    return;
                };
                if sub.until.is_some_and(|until| docker.keys.time > until) {
                    return;
                }
                let frame = self.form(&mut forms, &sub.conn);
                if self.may_offer(&sub.conn, sub.min_seq, ev.seq, frame.len(), Some(sub.start)) {
                    sub.conn.send_tagged(frame, ev.seq);
                    delivered += 1;
                }
            });
            deflated += forms.deflated_queued;
        }
        let stats = &self.shared.stats.cores[self.id];
        stats.deliveries.fetch_add(delivered, Relaxed);
        if deflated > 0 {
            stats.deflated_deliveries.fetch_add(deflated, Relaxed);
        }
    }

    /// The form of an event's frame that `conn` gets: compressed if it
    /// negotiated permessage-deflate and the frame shrinks, else plain;
    /// this core's own copy when there are several cores.
    fn form(&self, forms: &mut Forms<'_>, conn: &Conn) -> Bytes {
        if conn.takes_compressed() {
            let local = forms.local;
            let z = forms.mine_z.get_or_insert_with(|| {
                let z = self.deflated(forms.plain, forms.deflated);
                z.map(|z| if local { Bytes::copy_from_slice(&z) } else { z })
            });
            if let Some(z) = z {
                forms.deflated_queued += 1;
                return z.clone();
            }
        }
        if !forms.local {
            return forms.plain.clone();
        }
        forms
            .mine
            .get_or_insert_with(|| Bytes::copy_from_slice(forms.plain))
            .clone()
    }

    /// The frame `conn` is sent for `plain` (whose compressed form is in
    /// `cell`) on a replay: no per-core copy, the ring's.
    fn replay_form(&self, conn: &Conn, plain: &Bytes, cell: &OnceLock<Option<Bytes>>) -> Bytes {
        if conn.takes_compressed() {
            if let Some(z) = self.deflated(plain, cell) {
                return z;
            }
        }
        plain.clone()
    }

    /// The compressed form of `frame`, made once for the whole hub (by
    /// whichever core needs it first) and kept in `cell`.
    fn deflated(&self, frame: &Bytes, cell: &OnceLock<Option<Bytes>>) -> Option<Bytes> {
        cell.get_or_init(|| self.compress(frame)).clone()
    }

    /// Compresses one event frame with this core's compressor.
    fn compress(&self, frame: &Bytes) -> Option<Bytes> {
        let stats = &self.shared.stats.deflate;
        let header = crate::proto::FrameHeader::parse(frame).ok().flatten()?;
        let payload = &frame[header.header_len..];
        if payload.len() < self.shared.config.deflate_min_bytes {
            stats.skipped.fetch_add(1, Relaxed);
            return None;
        }
        let started = Instant::now();
        let mut deflater = self.deflater.borrow_mut();
        let level = self.shared.config.deflate_level;
        let out = deflater
            .get_or_insert_with(|| Deflater::new(level))
            .frame(header.opcode, payload);
        stats
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        match &out {
            Some(z) => {
                stats.frames.fetch_add(1, Relaxed);
                stats.bytes_in.fetch_add(frame.len() as u64, Relaxed);
                stats.bytes_out.fetch_add(z.len() as u64, Relaxed);
            }
            None => {
                stats.skipped.fetch_add(1, Relaxed);
            }
        }
        out
    }

    /// Whether one event's frame (`len` bytes) is to be queued on one
    /// connection: not if it had it already (or is replaying); a
    /// connection whose queue would pass the limit is a slow consumer, and
    /// closed. `docker_start` is `Some` for an `/events/ws` subscriber (its
    /// start point).
    fn may_offer(
        &self,
        conn: &Conn,
        min_seq: u64,
        seq: u64,
        len: usize,
        docker_start: Option<u64>,
    ) -> bool {
        if seq <= min_seq || !conn.is_open() {
            return false;
        }
        if conn.queued_bytes() + len > self.shared.config.send_queue_bytes {
            self.close_slow(conn, min_seq, docker_start);
            return false;
        }
        true
    }

    /// Closes a slow consumer with 1013 and a reason naming where to
    /// resume on its endpoint: the last event sent, or, when none was, the
    /// `seq` its subscription started after (a hub subscriber's
    /// confirmation is tagged with it; `min_seq` is the fallback for one
    /// whose confirmation was not written either).
    #[cold]
    fn close_slow(&self, conn: &Conn, min_seq: u64, docker_start: Option<u64>) {
        self.shared.stats.cores[self.id]
            .slow_consumer_closes
            .fetch_add(1, Relaxed);
        let epoch = self.shared.sequencer.epoch();
        // Kept under the 123 bytes a close reason may have, whatever the seqs.
        conn.close_now(CloseCode::TRY_AGAIN_LATER, |last| match docker_start {
            None => {
                let point = if last > 0 { last } else { min_seq };
                format!("slow consumer; last seq sent {last}; reconnect with since={point}&epoch={epoch}")
            }
            Some(start) => {
                let point = last.max(start);
                format!("slow consumer; last seq sent {last}; reconnect with since_seq={point}&epoch={epoch}")
            }
        });
        log::info!(
            "core {}: closed a slow consumer (connection slot {})",
            self.id,
            conn.slot_index()
        );
    }

    /// Starts feeding the subscriber in `slot` (already added, with
    /// `min_seq` [`REPLAYING`]) from the ring after `replay.after`, and
    /// queues the first slice.
    pub fn start_replay(&self, slot: usize, replay: Replay) {
        self.replays.borrow_mut().insert(slot, Cursor::new(replay));
        self.refill(slot);
    }

    /// Queues the next slices of the replay of the connection in `slot`,
    /// up to half the send-queue bound (the other half is room for live
    /// events once it catches up); when a slice reaches the last `seq`,
    /// the subscriber goes live after it. Called on open and whenever a
    /// write leaves the queue below half its bound (`App::on_drained`);
    /// one compare for a core with no replay in progress.
    pub fn refill(&self, slot: usize) {
        if self.replays.borrow().is_empty() {
            return;
        }
        let Some(mut cursor) = self.replays.borrow_mut().remove(&slot) else {
            return;
        };
        let live_after = {
            let mut subs = self.subs.borrow_mut();
            if let Some(sub) = subs.get_mut(slot) {
                let (channels, conn) = (sub.channels, sub.conn.clone());
                let after = self.pump(slot, &conn, &mut cursor, |e| {
                    channels
                        .contains(e.channel)
                        .then(|| self.replay_form(&conn, &e.frame, &e.deflated))
                });
                after.map(|a| sub.min_seq = a)
            } else {
                drop(subs);
                let mut docker_subs = self.docker_subs.borrow_mut();
                let Some(sub) = docker_subs.get_mut(slot) else {
                    return;
                };
                let (since, until, filter) = (cursor.replay.since_time, sub.until, &sub.filter);
                let conn = sub.conn.clone();
                let after = self.pump(slot, &conn, &mut cursor, |e| {
                    let d = e.docker.as_ref()?;
                    (since.is_none_or(|s| d.keys.time >= s)
                        && until.is_none_or(|u| d.keys.time <= u)
                        && filter.matches(&d.keys))
                    .then(|| self.replay_form(&conn, &d.frame, &d.deflated))
                });
                after.map(|a| sub.min_seq = a)
            }
        };
        if live_after.is_none() {
            self.replays.borrow_mut().insert(slot, cursor);
        }
    }

    /// Queues what the replay of `conn` (in `slot`) has next, from a slice
    /// of the event log it fetched or from the ring, until the queue holds
    /// half its bound or the cursor reaches the last `seq`; returns that
    /// `seq` when it did (the subscriber goes live after it). Events the
    /// ring no longer has are fetched from the event log, when there is
    /// one ([`super::log`]): the replay waits for the answer.
    fn pump(
        &self,
        slot: usize,
        conn: &Conn,
        cursor: &mut Cursor,
        mut pick: impl FnMut(&EventFrame) -> Option<bytes::Bytes>,
    ) -> Option<u64> {
        let target = self.shared.config.send_queue_bytes / 2;
        let mut replayed = 0u64;
        let caught_up = loop {
            if !conn.is_open() || cursor.waiting.is_some() {
                break None;
            }
            let queued = conn.queued_bytes();
            if queued >= target {
                break None;
            }
            if let Some(fetched) = &mut cursor.fetched {
                replayed += fetched.drain_into(conn, target, &mut cursor.replay, &mut pick);
                if fetched.events.is_empty() {
                    cursor.replay.after = cursor.replay.after.max(fetched.through);
                    cursor.fetched = None;
                }
                continue;
            }
            let replay = &mut cursor.replay;
            let slice = self.shared.sequencer.read_after(
                replay.after,
                target - queued,
                ENTRY_OVERHEAD,
                queued == 0,
                &mut pick,
            );
            if replay.after + 1 < slice.oldest {
                if let Some(log) = self.shared.log().filter(|_| !cursor.log_failed) {
                    let ticket = self.tickets.get() + 1;
                    self.tickets.set(ticket);
                    cursor.waiting = Some(ticket);
                    log.fetch(FetchRequest {
                        core: self.id,
                        slot,
                        ticket,
                        after: replay.after,
                        upto: slice.oldest - 1,
                    });
                    break None;
                }
                if let Some(gap) = replay.gap {
                    conn.send(gap(
                        replay.after,
                        replay.after + 1,
                        slice.oldest - 1,
                        slice.last_seq,
                    ));
                }
            }
            replayed += slice.events.len() as u64;
            for (seq, frame) in slice.events {
                conn.send_tagged(frame, seq);
            }
            replay.after = slice.through;
            if slice.full {
                break None;
            }
            if slice.through >= slice.last_seq {
                // A cursor past the last seq (a cluster node behind the
                // one the client saw it on) goes live after the cursor.
                break Some(slice.through.max(slice.last_seq));
            }
        };
        self.shared
            .stats
            .replayed_events
            .fetch_add(replayed, Relaxed);
        caught_up
    }

    /// The event log's answer to a replay's [`FetchRequest`]: a gap it
    /// reports is sent, its events are queued as the connection drains,
    /// and the replay goes on. An answer for a replay that ended (or a
    /// newer request) is dropped.
    pub fn fetched(&self, slot: usize, ticket: u64, answer: Fetched) {
        let gap = {
            let mut replays = self.replays.borrow_mut();
            let Some(cursor) = replays.get_mut(&slot) else {
                return;
            };
            if cursor.waiting != Some(ticket) {
                return;
            }
            cursor.waiting = None;
            if let Some(why) = &answer.failed {
                log::warn!(
                    "core {}: the event log could not serve a replay ({why}); reporting a gap",
                    self.id
                );
                cursor.log_failed = true;
                None
            } else {
                let after = cursor.replay.after;
                let gap = (answer.first > after + 1)
                    .then_some(cursor.replay.gap)
                    .flatten()
                    .map(|gap| {
                        let last_seq = self.shared.sequencer.last_seq();
                        gap(after, after + 1, answer.first - 1, last_seq)
                    });
                cursor.replay.after = after.max(answer.first.saturating_sub(1));
                cursor.fetched = Some(FetchedSlice {
                    events: answer.events.into(),
                    through: answer.through,
                });
                gap
            }
        };
        if let Some(message) = gap {
            if let Some(conn) = self.conn_of(slot) {
                conn.send(message);
            }
        }
        self.refill(slot);
    }

    /// Sends `frame` (a message with no seq) to every hub subscriber of
    /// this core.
    pub fn notify_subscribers(&self, frame: &bytes::Bytes) {
        for sub in self.subs.borrow().values() {
            if sub.conn.is_open() {
                sub.conn.send(frame.clone());
            }
        }
    }

    /// Closes every subscriber of this core, of both endpoints, with
    /// `code` and `reason`.
    pub fn close_subscribers(&self, code: CloseCode, reason: &str) {
        for sub in self.subs.borrow().values() {
            sub.conn.close(code, reason);
        }
        for sub in self.docker_subs.borrow().values() {
            sub.conn.close(code, reason);
        }
    }

    /// The connection of the subscriber (of either endpoint) in `slot`.
    fn conn_of(&self, slot: usize) -> Option<Rc<Conn>> {
        let conn = self.subs.borrow().get(slot).map(|s| s.conn.clone());
        conn.or_else(|| self.docker_subs.borrow().get(slot).map(|s| s.conn.clone()))
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
        if !self.probes.is_empty() {
            let closed = self.probes.check(self.shared.config.conflict_probe);
            if closed > 0 {
                log::info!(
                    "core {}: closed {closed} connection(s) that did not answer a probe",
                    self.id
                );
                self.shared
                    .stats
                    .conflict_probe_closes
                    .fetch_add(closed, Relaxed);
            }
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
