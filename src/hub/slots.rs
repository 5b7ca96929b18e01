//! A table indexed by connection slot.
//!
//! A core's subscribers live at the slot their connection has in the
//! core's registry, the same number the bit indexes use, so finding a
//! subscriber from a match is one bounds-checked load. The table grows
//! when a slot past its end is filled and keeps its length when one is
//! emptied (slots are reused by the registry).
//!
//! Layer: hub (a leaf: imports nothing).

/// Values by slot.
#[derive(Debug)]
pub struct SlotTable<T> {
    rows: Vec<Option<T>>,
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        SlotTable { rows: Vec::new() }
    }
}

impl<T> SlotTable<T> {
    /// Puts `value` in `slot`, growing the table if needed; returns what
    /// was there.
    pub fn insert(&mut self, slot: usize, value: T) -> Option<T> {
        if self.rows.len() <= slot {
            self.rows.resize_with(slot + 1, || None);
        }
        self.rows[slot].replace(value)
    }

    /// Empties `slot`; returns what was there.
    pub fn remove(&mut self, slot: usize) -> Option<T> {
        self.rows.get_mut(slot).and_then(Option::take)
    }

    #[inline]
    pub fn get(&self, slot: usize) -> Option<&T> {
        self.rows.get(slot)?.as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.rows.get_mut(slot)?.as_mut()
    }

    /// Every value, by ascending slot.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_empty_and_grow_only_on_insert() {
        let mut t = SlotTable::default();
        assert_eq!(t.remove(5), None);
        assert_eq!(t.insert(3, "a"), None);
        assert_eq!(t.insert(3, "b"), Some("a"));
        assert_eq!(t.insert(0, "c"), None);
        assert_eq!(t.get(3), Some(&"b"));
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(99), None);
        assert_eq!(t.values().copied().collect::<Vec<_>>(), vec!["c", "b"]);
        assert_eq!(t.remove(3), Some("b"));
        assert_eq!(t.values().count(), 1);
        *t.get_mut(0).unwrap() = "d";
        assert_eq!(t.get(0), Some(&"d"));
    }
}
