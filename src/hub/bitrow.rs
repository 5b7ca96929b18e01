//! Bit rows over connection slots: the one place that sets, clears and
//! walks bits.
//!
//! The subscriber index (a row per channel), the Docker filter index (a row
//! per filter value) and a [`ChannelSet`](super::channels::ChannelSet) (one
//! word) all answer "which positions are set?" the same way: a word at a
//! time, each set bit found with `trailing_zeros` and cleared with
//! `bits & (bits - 1)`, so an empty word costs one test and a match costs
//! a few instructions. [`for_each_bit`] and [`bits`] are that walk;
//! [`BitRow`] is a growable row of words.
//!
//! Layer: hub (a leaf: imports nothing).

/// The set bits of one word, ascending.
#[inline]
pub fn bits(word: u64) -> impl Iterator<Item = u32> {
    let mut bits = word;
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let bit = bits.trailing_zeros();
        bits &= bits - 1;
        Some(bit)
    })
}

/// Calls `f` with the position of every set bit of `words` (word `w`'s bit
/// `b` is position `64 * w + b`), ascending.
#[inline]
pub fn for_each_bit(words: impl IntoIterator<Item = u64>, mut f: impl FnMut(usize)) {
    for (w, word) in words.into_iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            f(w * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

/// A growable bitset over slots: it grows when a bit past its end is set,
/// never when one is cleared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitRow(Vec<u64>);

impl BitRow {
    /// Sets (`on`) or clears the bit of `slot`.
    #[inline]
    pub fn set(&mut self, slot: usize, on: bool) {
        let (w, b) = (slot / 64, 1u64 << (slot % 64));
        if on {
            if self.0.len() <= w {
                self.0.resize(w + 1, 0);
            }
            self.0[w] |= b;
        } else if let Some(x) = self.0.get_mut(w) {
            *x &= !b;
        }
    }

    /// The row's words (bits past the end are clear).
    #[inline]
    pub fn words(&self) -> &[u64] {
        &self.0
    }

    /// Calls `f` with every set slot, ascending.
    #[inline]
    pub fn for_each(&self, f: impl FnMut(usize)) {
        for_each_bit(self.0.iter().copied(), f);
    }

    /// How many slots are set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_grows_on_set_and_walks_its_bits_ascending() {
        let mut r = BitRow::default();
        r.set(130, false);
        assert!(r.words().is_empty(), "clearing does not grow");
        for s in [130, 3, 64, 63] {
            r.set(s, true);
        }
        r.set(64, false);
        let mut got = Vec::new();
        r.for_each(|s| got.push(s));
        assert_eq!(got, vec![3, 63, 130]);
        assert_eq!(r.count(), 3);
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), vec![63]);
    }
}
