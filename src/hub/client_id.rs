//! Client ids that say where their connection lives.
//!
//! `POST /v1/ws/unsubscribe` names a subscriber by its client id, and the
//! subscriber may be on any core. Rather than a table of every client id
//! shared by all cores (a lock taken on every connect and close, and some
//! 60 bytes per connection), the id itself carries its core and slot: a
//! version-4 UUID whose last six bytes are the core (16 bits) and the slot
//! (32 bits). The request goes straight to that core, which compares the
//! whole id with the one its subscriber was given, so a stale or made-up id
//! finds nothing. The 74 random bits left keep ids unguessable.
//!
//! Layer: hub, a leaf (it imports only `uuid`).

use uuid::Uuid;

/// A fresh client id for the subscriber in `slot` on `core`.
pub fn new(core: usize, slot: u32) -> Uuid {
    let mut bytes = *Uuid::new_v4().as_bytes();
    bytes[10..12].copy_from_slice(&(core as u16).to_be_bytes());
    bytes[12..16].copy_from_slice(&slot.to_be_bytes());
    Uuid::from_bytes(bytes)
}

/// The core and slot a client id was made for.
pub fn locate(id: &Uuid) -> (usize, u32) {
    let b = id.as_bytes();
    let core = u16::from_be_bytes([b[10], b[11]]);
    let slot = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    (usize::from(core), slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_leads_back_to_its_core_and_slot() {
        for (core, slot) in [(0, 0), (3, 17), (15, u32::MAX - 1), (65_535, 123_456)] {
            assert_eq!(locate(&new(core, slot)), (core, slot));
        }
    }

    #[test]
    fn ids_stay_random_version_4_uuids() {
        let a = new(1, 2);
        let b = new(1, 2);
        assert_ne!(a, b, "the same slot reused gets a different id");
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.to_string().len(), 36);
    }
}
