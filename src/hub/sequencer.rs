//! The one place events are ordered: sequence numbers, the replay ring,
//! and batches handed to the cores' [`Mailbox`].
//!
//! Publishing takes one short lock: assign the next `seq`, finish the frame
//! (a copy of a few hundred prepared bytes), append it to the ring and to
//! the pending batch. A batch goes to every core's channel when it reaches
//! [`BATCH_MAX`] events or when the publisher's input ends (the end of a
//! `POST`, or of one read of a publisher socket), whichever is first, so a
//! burst costs one cross-thread wake per core per batch rather than per
//! event, and a lone event leaves at once. Sending under the lock keeps
//! every core's channel in `seq` order.
//!
//! The ring is bounded twice: by count (`hub.replay_size`) and by bytes
//! (`hub.replay_max_bytes`, counting every frame an event holds), the
//! oldest events leaving first. Its seqs are contiguous, so a position in
//! it is found by arithmetic.
//!
//! A subscriber that resumes (`since=N`) is not handed a copy of the ring.
//! Its core keeps a cursor (the last `seq` handled) and reads the ring a
//! bounded slice at a time ([`Sequencer::read_after`], a few hundred
//! events at most under the lock), as fast as the client drains its queue;
//! when a slice reaches the last `seq` assigned, the core switches the
//! subscriber to live delivery after that `seq`. The core's batches in
//! flight carry only events the ring already had when they were sent, so
//! each event reaches it exactly once, in order.
//!
//! Every run of the hub has an [`epoch`](Sequencer::epoch): 64 random bits,
//! chosen at start, that name the run its seqs belong to (seqs restart at
//! 1 with each run).
//!
//! In a cluster the seqs are the event log's ([`super::log`]): the log's
//! consumer hands finished events to [`Sequencer::append`], which keeps
//! the ring and the batches as above but numbers nothing; the epoch is
//! the stream's ([`Sequencer::restart`]). A seq that skips ahead (events
//! the log dropped, or this node could not read) empties the ring first,
//! so that its seqs stay contiguous; what it held is still in the log.
//!
//! Layer: hub. Imports the hub's [`event`](super::event) frames and the
//! [`mailbox`](super::mailbox) it hands batches to; it knows nothing of
//! the cores themselves.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::event::{EventFrame, Prepared};
use super::mailbox::Mailbox;

/// Events per batch at most.
pub const BATCH_MAX: usize = 64;

/// Events scanned under the lock per [`Sequencer::read_after`] at most.
pub const SCAN_MAX: usize = 512;

struct Inner {
    last_seq: u64,
    ring: VecDeque<EventFrame>,
    capacity: usize,
    /// What the ring's frames take, in bytes ([`ring_cost`]).
    ring_bytes: usize,
    max_bytes: usize,
    pending: Vec<EventFrame>,
    epoch: Arc<str>,
}

/// The bytes an event in the ring holds: its frames.
fn ring_cost(ev: &EventFrame) -> usize {
    ev.frame.len() + ev.docker.as_ref().map_or(0, |d| d.frame.len())
}

impl Inner {
    /// The first `seq` the ring holds (`last_seq + 1` when it is empty).
    fn oldest(&self) -> u64 {
        self.ring.front().map_or(self.last_seq + 1, |e| e.seq)
    }
}

/// Where the ring stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The last `seq` assigned.
    pub last_seq: u64,
    /// The first `seq` the ring holds (`last_seq + 1` when it is empty).
    pub oldest: u64,
}

/// One bounded read of the ring after a cursor.
#[derive(Debug, Default)]
pub struct Slice {
    /// `(seq, frame)` of the events picked, in order.
    pub events: Vec<(u64, bytes::Bytes)>,
    /// The last `seq` looked at (picked or not): the cursor's next value.
    pub through: u64,
    /// The ring's position at the read.
    pub last_seq: u64,
    pub oldest: u64,
    /// The read stopped because the byte budget was spent.
    pub full: bool,
}

/// Orders events and hands them to the cores.
pub struct Sequencer {
    inner: Mutex<Inner>,
    mailbox: Arc<Mailbox>,
}

impl Sequencer {
    /// A sequencer with a ring of `capacity` events and `max_bytes` bytes
    /// at most, handing its batches to `mailbox`.
    pub fn new(capacity: usize, max_bytes: usize, mailbox: Arc<Mailbox>) -> Sequencer {
        Sequencer {
            inner: Mutex::new(Inner {
                last_seq: 0,
                ring: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity,
                ring_bytes: 0,
                max_bytes,
                pending: Vec::with_capacity(BATCH_MAX),
                epoch: format!("{:016x}", fastrand::u64(..)).into(),
            }),
            mailbox,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch of the seqs: this run's (16 lowercase hex characters), or
    /// the cluster stream's.
    pub fn epoch(&self) -> Arc<str> {
        self.lock().epoch.clone()
    }

    /// Sequences `events`; returns their `seq`s. They leave for the cores
    /// with the next full batch or [`Sequencer::flush`].
    pub fn publish(&self, events: &[Prepared]) -> Vec<u64> {
        let mut inner = self.lock();
        let mut seqs = Vec::with_capacity(events.len());
        for p in events {
            let ev = p.finish(inner.last_seq + 1);
            seqs.push(ev.seq);
            self.push(&mut inner, ev);
        }
        seqs
    }

    /// Takes events the log numbered, in its order: those at or before the
    /// last `seq` (a consumer's redelivery) are dropped; one past a gap
    /// empties the ring first. They leave with the next full batch or
    /// [`Sequencer::flush`]. Returns how many were taken.
    pub fn append(&self, events: Vec<EventFrame>) -> usize {
        let mut inner = self.lock();
        let mut taken = 0;
        for ev in events {
            if ev.seq <= inner.last_seq {
                continue;
            }
            if ev.seq != inner.last_seq + 1 && !inner.ring.is_empty() {
                log::warn!(
                    "event log: seq {} follows {}: the replay ring starts again there",
                    ev.seq,
                    inner.last_seq
                );
                inner.ring.clear();
                inner.ring_bytes = 0;
            }
            taken += 1;
            self.push(&mut inner, ev);
        }
        taken
    }

    /// A new run of the seqs (at start-up in a cluster, or when its stream
    /// was made anew): `epoch`, the last `seq` assigned so far, an empty
    /// ring. What was pending leaves first.
    pub fn restart(&self, epoch: &str, last_seq: u64) {
        let mut inner = self.lock();
        self.send_batch(&mut inner);
        inner.epoch = epoch.into();
        inner.last_seq = last_seq;
        inner.ring.clear();
        inner.ring_bytes = 0;
    }

    /// Appends `ev` (whose seq follows the last) to the ring and the batch.
    fn push(&self, inner: &mut Inner, ev: EventFrame) {
        inner.last_seq = ev.seq;
        if inner.capacity > 0 {
            let cost = ring_cost(&ev);
            while !inner.ring.is_empty()
                && (inner.ring.len() >= inner.capacity || inner.ring_bytes + cost > inner.max_bytes)
            {
                if let Some(old) = inner.ring.pop_front() {
                    inner.ring_bytes -= ring_cost(&old);
                }
            }
            // An event larger than the whole byte bound is not kept (the
            // ring is empty then, so its seqs stay contiguous).
            if cost <= inner.max_bytes {
                inner.ring_bytes += cost;
                inner.ring.push_back(ev.clone());
            }
        }
        inner.pending.push(ev);
        if inner.pending.len() >= BATCH_MAX {
            self.send_batch(inner);
        }
    }

    /// Sends the pending batch, if any, to every core.
    pub fn flush(&self) {
        let mut inner = self.lock();
        self.send_batch(&mut inner);
    }

    fn send_batch(&self, inner: &mut Inner) {
        if inner.pending.is_empty() {
            return;
        }
        let batch: Arc<[EventFrame]> =
            std::mem::replace(&mut inner.pending, Vec::with_capacity(BATCH_MAX)).into();
        self.mailbox.broadcast(batch);
    }

    /// The last `seq` assigned and the oldest the ring holds.
    pub fn position(&self) -> Position {
        let inner = self.lock();
        Position {
            last_seq: inner.last_seq,
            oldest: inner.oldest(),
        }
    }

    /// Reads the ring after `after`: looks at up to [`SCAN_MAX`] events
    /// from `max(after + 1, oldest)`, picks those `pick` gives a frame for,
    /// and stops before the picked frames (each costed at its length plus
    /// `overhead`) would pass `budget`, though it always picks one when
    /// `budget` is all there is to give (`at_least_one`).
    pub fn read_after(
        &self,
        after: u64,
        budget: usize,
        overhead: usize,
        at_least_one: bool,
        mut pick: impl FnMut(&EventFrame) -> Option<bytes::Bytes>,
    ) -> Slice {
        let inner = self.lock();
        let oldest = inner.oldest();
        let start = (after + 1).max(oldest);
        let mut out = Slice {
            through: start - 1,
            last_seq: inner.last_seq,
            oldest,
            ..Slice::default()
        };
        // The ring's seqs are contiguous: the start is found by arithmetic,
        // and `range` walks from it (no walk over what precedes it).
        let skip = ((start - oldest) as usize).min(inner.ring.len());
        let mut used = 0usize;
        for ev in inner.ring.range(skip..).take(SCAN_MAX) {
            if let Some(frame) = pick(ev) {
                let cost = frame.len() + overhead;
                if used + cost > budget && !(at_least_one && out.events.is_empty()) {
                    out.full = true;
                    break;
                }
                used += cost;
                out.events.push((ev.seq, frame));
            }
            out.through = ev.seq;
        }
        out
    }

    /// The last `seq` assigned.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::mailbox::CoreMsg;

    /// A sequencer over `cores` mailboxes, with their receiving ends.
    fn sequencer(cores: usize, capacity: usize) -> (Sequencer, Vec<flume::Receiver<CoreMsg>>) {
        let mailbox = Arc::new(Mailbox::new(cores));
        let rx = (0..cores).map(|i| mailbox.take_receiver(i)).collect();
        (Sequencer::new(capacity, usize::MAX, mailbox), rx)
    }

    fn prepared(n: usize) -> Vec<Prepared> {
        (0..n)
            .map(|i| Prepared::new(1, "pdfm", &format!("m{i}"), "{}"))
            .collect()
    }

    fn batches(rx: &flume::Receiver<CoreMsg>) -> Vec<Vec<u64>> {
        rx.try_iter()
            .filter_map(|m| match m {
                CoreMsg::Batch(b) => Some(b.iter().map(|e| e.seq).collect()),
                CoreMsg::Command(_) => None,
            })
            .collect()
    }

    #[test]
    fn seqs_increase_and_batches_reach_every_core_in_order() {
        let (s, rx) = sequencer(2, 100);
        assert_eq!(s.publish(&prepared(3)), vec![1, 2, 3]);
        assert!(batches(&rx[0]).is_empty(), "held until flush");
        s.flush();
        s.publish(&prepared(1));
        s.flush();
        for r in &rx {
            assert_eq!(batches(r), vec![vec![1, 2, 3], vec![4]]);
        }
    }

    #[test]
    fn full_batch_leaves_without_a_flush() {
        let (s, rx) = sequencer(1, 0);
        s.publish(&prepared(BATCH_MAX + 1));
        assert_eq!(
            batches(&rx[0]).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![BATCH_MAX]
        );
    }

    #[test]
    fn read_after_reads_bounded_slices_and_reports_what_the_ring_lost() {
        let (s, _rx) = sequencer(1, 5);
        s.publish(&prepared(8));
        assert_eq!(
            s.position(),
            Position {
                last_seq: 8,
                oldest: 4
            }
        );
        let all = |e: &EventFrame| Some(e.frame.clone());
        let r = s.read_after(5, usize::MAX, 0, false, all);
        assert_eq!(
            r.events.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        assert_eq!((r.through, r.last_seq, r.full), (8, 8, false));
        let r = s.read_after(1, usize::MAX, 0, false, all);
        assert_eq!(
            r.events.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8]
        );
        assert_eq!(r.oldest, 4, "2 and 3 are gone");
        let r = s.read_after(8, usize::MAX, 0, false, all);
        assert!(r.events.is_empty() && r.through == 8);
        // A budget of one frame: one event, then stop.
        let one = r.last_seq;
        let len = s.read_after(one - 1, usize::MAX, 0, false, all).events[0]
            .1
            .len();
        let r = s.read_after(3, len, 0, false, all);
        assert_eq!((r.events.len(), r.through, r.full), (1, 4, true));
        let r = s.read_after(3, 0, 0, true, all);
        assert_eq!(r.events.len(), 1, "at least one");
        // What is not picked is passed over.
        let r = s.read_after(3, usize::MAX, 0, false, |e| {
            (e.seq % 2 == 0).then(|| e.frame.clone())
        });
        assert_eq!(
            r.events.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![4, 6, 8]
        );
    }

    #[test]
    fn the_ring_is_bounded_by_bytes_too_oldest_first() {
        let mailbox = Arc::new(Mailbox::new(1));
        let _rx = mailbox.take_receiver(0);
        let one = prepared(1)[0].finish(1).frame.len();
        let s = Sequencer::new(100, one * 3 + one / 2, mailbox);
        // Seqs of one digit: every frame has the same length.
        s.publish(&prepared(9));
        assert_eq!(
            s.position(),
            Position {
                last_seq: 9,
                oldest: 7
            }
        );
        assert_eq!(s.lock().ring_bytes, one * 3);
    }

    #[test]
    fn each_run_has_its_own_epoch() {
        let (a, _ra) = sequencer(1, 5);
        let (b, _rb) = sequencer(1, 5);
        assert_eq!(a.epoch().len(), 16);
        assert_ne!(a.epoch(), b.epoch());
    }
}
