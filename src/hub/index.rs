//! The per-core subscriber index: one bit row per channel over the core's
//! connection slots.
//!
//! Subscribing sets a connection's bit in the rows of its channels; an
//! event on channel `c` reaches exactly the set bits of row `c`, found a
//! 64-slot word at a time with `trailing_zeros`. Matching therefore costs a
//! pass over one row (skipping empty words) plus the matches, never a loop
//! over every subscriber asking "do you want this?".
//!
//! Layer: hub. Imports the hub's [`channels`](super::channels) and
//! [`bitrow`](super::bitrow) only.

use super::bitrow::BitRow;
use super::channels::{ChannelId, ChannelSet};

/// Bit rows, one per channel, over connection slots.
#[derive(Debug, Clone, Default)]
pub struct SubscriberIndex {
    rows: Vec<BitRow>,
}

impl SubscriberIndex {
    /// An index for `channels` channels.
    pub fn new(channels: usize) -> SubscriberIndex {
        SubscriberIndex {
            rows: vec![BitRow::default(); channels],
        }
    }

    /// Makes `slot` subscribed to exactly `set`.
    pub fn set(&mut self, slot: usize, set: ChannelSet) {
        for (id, row) in self.rows.iter_mut().enumerate() {
            row.set(slot, set.contains(id as ChannelId));
        }
    }

    /// Removes `slot` from every row.
    pub fn clear(&mut self, slot: usize) {
        self.set(slot, ChannelSet::EMPTY);
    }

    /// Calls `f` with every slot subscribed to `channel`, ascending.
    #[inline]
    pub fn for_each_match(&self, channel: ChannelId, f: impl FnMut(usize)) {
        if let Some(row) = self.rows.get(usize::from(channel)) {
            row.for_each(f);
        }
    }

    /// How many slots are subscribed to `channel`.
    pub fn count(&self, channel: ChannelId) -> usize {
        self.rows.get(usize::from(channel)).map_or(0, BitRow::count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(ix: &SubscriberIndex, ch: ChannelId) -> Vec<usize> {
        let mut v = Vec::new();
        ix.for_each_match(ch, |s| v.push(s));
        v
    }

    #[test]
    fn event_reaches_exactly_the_subscribers_of_its_channel() {
        let mut ix = SubscriberIndex::new(4);
        let mut a = ChannelSet::only(0);
        a.insert(2);
        ix.set(3, a);
        ix.set(130, ChannelSet::only(2));
        ix.set(64, ChannelSet::only(1));
        assert_eq!(matches(&ix, 2), vec![3, 130]);
        assert_eq!(matches(&ix, 1), vec![64]);
        assert_eq!(matches(&ix, 0), vec![3]);
        assert_eq!(matches(&ix, 3), Vec::<usize>::new());
        assert_eq!(ix.count(2), 2);
    }

    #[test]
    fn resubscribing_and_clearing_updates_every_row() {
        let mut ix = SubscriberIndex::new(3);
        ix.set(7, ChannelSet::first(3));
        ix.set(7, ChannelSet::only(1));
        assert_eq!((matches(&ix, 0), matches(&ix, 1)), (vec![], vec![7]));
        ix.clear(7);
        assert_eq!(matches(&ix, 1), Vec::<usize>::new());
    }

    #[test]
    fn matches_agree_with_a_naive_scan() {
        let mut ix = SubscriberIndex::new(8);
        let mut subs = Vec::new();
        let mut x = 12345u64;
        for slot in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let set = ChannelSet::first(8).minus(ChannelSet::first((x % 8) as usize));
            ix.set(slot, set);
            subs.push(set);
        }
        for ch in 0..8 {
            let naive: Vec<usize> = (0..1000).filter(|&s| subs[s].contains(ch)).collect();
            assert_eq!(matches(&ix, ch), naive);
        }
    }
}
