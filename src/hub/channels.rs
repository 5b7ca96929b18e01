//! Channels: the built-in ones, the custom ones from the config, and sets
//! of them as 64-bit masks.
//!
//! A channel is a small integer everywhere past the API layer: a
//! subscription is a [`ChannelSet`] (one word), and an event carries its
//! channel's id, so matching never compares strings.
//!
//! Layer: hub. Imports the name rules of [`crate::channel_names`] (shared
//! with the config) and the hub's [`bitrow`](super::bitrow).

use std::fmt::Write as _;

use super::bitrow::bits;

/// A channel's index.
pub type ChannelId = u8;

pub use crate::channel_names::{ChannelNameError, BUILTIN, MAX_CHANNELS};

pub const GLOBAL: ChannelId = 0;
pub const PDFM: ChannelId = 1;
pub const HEALTH: ChannelId = 2;
pub const ORCHESTRATOR: ChannelId = 3;
pub const SYSTEM: ChannelId = 4;
pub const CONTAINER: ChannelId = 5;

/// A set of channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelSet(u64);

impl ChannelSet {
    pub const EMPTY: ChannelSet = ChannelSet(0);

    pub fn only(id: ChannelId) -> ChannelSet {
        ChannelSet(1 << id)
    }

    /// Every one of the first `count` channels.
    pub fn first(count: usize) -> ChannelSet {
        ChannelSet(if count >= 64 {
            u64::MAX
        } else {
            (1u64 << count) - 1
        })
    }

    pub fn contains(self, id: ChannelId) -> bool {
        self.0 & (1 << id) != 0
    }

    pub fn insert(&mut self, id: ChannelId) {
        self.0 |= 1 << id;
    }

    pub fn remove(&mut self, id: ChannelId) {
        self.0 &= !(1 << id);
    }

    pub fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    pub fn minus(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    pub fn is_subset_of(self, other: ChannelSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The ids in the set, ascending.
    pub fn iter(self) -> impl Iterator<Item = ChannelId> {
        bits(self.0).map(|b| b as ChannelId)
    }
}

/// A channel name that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {name:?}; valid channels: {valid}")]
pub struct UnknownChannel {
    pub name: String,
    pub valid: String,
}

/// The configured channels.
#[derive(Debug, Clone)]
pub struct Channels {
    names: Vec<String>,
}

impl Channels {
    /// The built-in channels plus `custom` ones.
    pub fn new(custom: &[String]) -> Result<Channels, ChannelNameError> {
        crate::channel_names::check(custom)?;
        let names = BUILTIN
            .iter()
            .map(|s| s.to_string())
            .chain(custom.iter().cloned())
            .collect();
        Ok(Channels { names })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn all(&self) -> ChannelSet {
        ChannelSet::first(self.names.len())
    }

    pub fn id(&self, name: &str) -> Result<ChannelId, UnknownChannel> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as ChannelId)
            .ok_or_else(|| UnknownChannel {
                name: name.to_string(),
                valid: self.names.join(", "),
            })
    }

    pub fn name(&self, id: ChannelId) -> &str {
        &self.names[usize::from(id)]
    }

    /// Parses names (`*` means every channel) into a set.
    pub fn parse<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<ChannelSet, UnknownChannel> {
        let mut set = ChannelSet::EMPTY;
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                set = set.union(self.all());
            } else {
                set.insert(self.id(name)?);
            }
        }
        Ok(set)
    }

    /// The names of a set as a JSON array, `global` last (the guide's order).
    pub fn json_list(&self, set: ChannelSet) -> String {
        let mut out = String::from("[");
        let ordered = set
            .minus(ChannelSet::only(GLOBAL))
            .iter()
            .chain(set.contains(GLOBAL).then_some(GLOBAL));
        for (i, id) in ordered.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}\"", self.name(id));
        }
        out.push(']');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_list_follows_the_guide_order_with_global_last() {
        let ch = Channels::new(&[]).unwrap();
        let set = ch
            .parse(["pdfm", "health", "orchestrator", "global"])
            .unwrap();
        assert_eq!(
            ch.json_list(set),
            r#"["pdfm","health","orchestrator","global"]"#
        );
    }

    #[test]
    fn unknown_channel_lists_the_valid_ones() {
        let ch = Channels::new(&["alerts".to_string()]).unwrap();
        let e = ch.parse(["pdfm", "nope"]).unwrap_err();
        assert_eq!(e.name, "nope");
        assert!(e
            .to_string()
            .contains("global, pdfm, health, orchestrator, system, container, alerts"));
    }

    #[test]
    fn star_means_every_channel() {
        let ch = Channels::new(&["alerts".to_string()]).unwrap();
        assert_eq!(ch.parse(["*"]).unwrap(), ch.all());
        assert!(ch.all().contains(6));
    }

    #[test]
    fn bad_custom_names_are_refused() {
        assert!(Channels::new(&["Bad Name".into()]).is_err());
        assert!(Channels::new(&["pdfm".into()]).is_err());
    }

    #[test]
    fn set_iterates_ascending() {
        let mut s = ChannelSet::EMPTY;
        s.insert(5);
        s.insert(0);
        s.insert(63);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 63]);
        s.remove(5);
        assert!(!s.contains(5));
    }
}
