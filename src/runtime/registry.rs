//! The connections of one core, for the janitor and for shutdown.
//!
//! Runtime layer: imports only [`super::conn`].
//!
//! A slab of `Rc<Conn>` with a free list: inserting and removing are O(1)
//! and a connection's slot number is stable, so the application can use it
//! as an index of its own (the hub's subscriber bit rows do).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::conn::Conn;

#[derive(Debug, Default)]
pub(super) struct Registry {
    slots: RefCell<Vec<Option<Rc<Conn>>>>,
    free: RefCell<Vec<u32>>,
    live: Cell<usize>,
}

impl Registry {
    /// Adds a connection and gives it its slot.
    pub fn insert(&self, conn: Rc<Conn>) {
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(s) => s,
            None => {
                slots.push(None);
                (slots.len() - 1) as u32
            }
        };
        conn.set_slot(slot);
        slots[slot as usize] = Some(conn);
        self.live.set(self.live.get() + 1);
    }

    /// Removes a connection by its slot.
    pub fn remove(&self, conn: &Conn) {
        let slot = conn.slot();
        let mut slots = self.slots.borrow_mut();
        if let Some(entry) = slots.get_mut(slot as usize) {
            if entry.take().is_some() {
                self.free.borrow_mut().push(slot);
                self.live.set(self.live.get() - 1);
            }
        }
    }

    /// The connection in `slot`, if any.
    pub fn get(&self, slot: u32) -> Option<Rc<Conn>> {
        self.slots.borrow().get(slot as usize)?.clone()
    }

    /// Connections currently registered.
    pub fn len(&self) -> usize {
        self.live.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every connection. `f` must not insert or remove.
    pub fn for_each(&self, mut f: impl FnMut(&Rc<Conn>)) {
        for c in self.slots.borrow().iter().flatten() {
            f(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_after_removal() {
        let r = Registry::default();
        let a = Rc::new(Conn::new(-1));
        let b = Rc::new(Conn::new(-1));
        r.insert(a.clone());
        r.insert(b.clone());
        assert_eq!((a.slot(), b.slot(), r.len()), (0, 1, 2));
        r.remove(&a);
        r.remove(&a);
        assert_eq!(r.len(), 1);
        let c = Rc::new(Conn::new(-1));
        r.insert(c.clone());
        assert_eq!(c.slot(), 0);
        let mut seen = 0;
        r.for_each(|_| seen += 1);
        assert_eq!(seen, 2);
    }
}
