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
//! A subscriber that resumes (`since=N`) is handed the ring's events after
//! `N` and the last `seq` assigned at that instant; its core then skips
//! live events up to that `seq`, which were in flight to it already and
//! are in the replay. So each event reaches it exactly once, in order.
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

struct Inner {
    last_seq: u64,
    ring: VecDeque<EventFrame>,
    capacity: usize,
    pending: Vec<EventFrame>,
}

/// Where a resuming subscriber stands.
#[derive(Debug, Default)]
pub struct Resume {
    /// Events after `since` still in the ring, in order.
    pub replay: Vec<EventFrame>,
    /// The last `seq` assigned when the replay was taken.
    pub last_seq: u64,
    /// Events after `since` that the ring no longer holds: `(first, last)`.
    pub missed: Option<(u64, u64)>,
    /// `since` was beyond the last `seq` (the hub restarted since).
    pub ahead: bool,
}

/// Orders events and hands them to the cores.
pub struct Sequencer {
    inner: Mutex<Inner>,
    mailbox: Arc<Mailbox>,
}

impl Sequencer {
    /// A sequencer with a ring of `capacity` events, handing its batches
    /// to `mailbox`.
    pub fn new(capacity: usize, mailbox: Arc<Mailbox>) -> Sequencer {
        Sequencer {
            inner: Mutex::new(Inner {
                last_seq: 0,
                ring: VecDeque::with_capacity(capacity.min(1 << 16)),
                capacity,
                pending: Vec::with_capacity(BATCH_MAX),
            }),
            mailbox,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sequences `events`; returns their `seq`s. They leave for the cores
    /// with the next full batch or [`Sequencer::flush`].
    pub fn publish(&self, events: &[Prepared]) -> Vec<u64> {
        let mut inner = self.lock();
        let mut seqs = Vec::with_capacity(events.len());
        for p in events {
            inner.last_seq += 1;
            let ev = p.finish(inner.last_seq);
            seqs.push(ev.seq);
            if inner.capacity > 0 {
                if inner.ring.len() == inner.capacity {
                    inner.ring.pop_front();
                }
                inner.ring.push_back(ev.clone());
            }
            inner.pending.push(ev);
            if inner.pending.len() >= BATCH_MAX {
                self.send_batch(&mut inner);
            }
        }
        seqs
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

    /// The replay for a subscriber resuming after `since` (none: a new
    /// subscriber, which only needs the current `seq`).
    pub fn resume(&self, since: Option<u64>) -> Resume {
        let inner = self.lock();
        let mut out = Resume {
            last_seq: inner.last_seq,
            ..Resume::default()
        };
        let Some(since) = since else {
            return out;
        };
        if since > inner.last_seq {
            out.ahead = true;
            out.replay = inner.ring.iter().cloned().collect();
            let oldest = inner.ring.front().map_or(inner.last_seq + 1, |e| e.seq);
            if oldest > 1 {
                out.missed = Some((1, oldest - 1));
            }
            return out;
        }
        let oldest = inner.ring.front().map_or(inner.last_seq + 1, |e| e.seq);
        if since + 1 < oldest {
            out.missed = Some((since + 1, oldest - 1));
        }
        out.replay = inner
            .ring
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect();
        out
    }

    /// The ring's events that satisfy `keep`, and the last `seq` assigned
    /// at that instant (for a subscriber that replays by its own rule, such
    /// as Docker's `since` time).
    pub fn replay_where(&self, keep: impl Fn(&EventFrame) -> bool) -> (Vec<EventFrame>, u64) {
        let inner = self.lock();
        (
            inner.ring.iter().filter(|e| keep(e)).cloned().collect(),
            inner.last_seq,
        )
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
        (Sequencer::new(capacity, mailbox), rx)
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
    fn resume_replays_after_since_and_reports_what_the_ring_lost() {
        let (s, _rx) = sequencer(1, 5);
        s.publish(&prepared(8));
        let r = s.resume(Some(5));
        assert_eq!(
            r.replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        assert_eq!((r.last_seq, r.missed, r.ahead), (8, None, false));
        let r = s.resume(Some(1));
        assert_eq!(
            r.replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8]
        );
        assert_eq!(r.missed, Some((2, 3)));
        let r = s.resume(Some(8));
        assert!(r.replay.is_empty() && r.missed.is_none());
        let r = s.resume(Some(50));
        assert!(r.ahead);
        assert_eq!(r.missed, Some((1, 3)));
        assert!(s.resume(None).replay.is_empty());
    }
}
