//! The per-core index of `/events/ws` subscribers' Docker filters.
//!
//! Each filter dimension (container, image, event, label, type) has a bit
//! row per distinct value some subscriber asked for (values are interned)
//! and one row of subscribers that put no constraint on it. For container,
//! image, event and type, an event matches a subscriber when the subscriber
//! is unconstrained or listed one of the event's keys (values OR-ed): an OR
//! of the unconstrained row with the rows of the event's keys. Labels are
//! AND-ed, as in Docker: a subscriber matches only if every label it named
//! is on the event, so the label dimension clears the rows of every asked-
//! for label the event lacks. The dimensions are then AND-ed — a few
//! word-wise passes over bitsets, however many subscribers there are. Only
//! the container dimension (an id prefix matches, as in Docker) and the
//! label dimension look at their values one by one, and those loops are
//! over distinct filter values, not subscribers.
//!
//! Layer: hub. Imports the container [`event`](super::event) keys, the
//! [`filter`](super::filter) and the hub's [`bitrow`](crate::hub::bitrow).

use std::collections::HashMap;

use super::event::{Action, DockerKeys};
use super::filter::DockerFilter;
use crate::hub::bitrow::{for_each_bit, BitRow};

const DIMS: usize = 5;
const CONTAINER: usize = 0;
const IMAGE: usize = 1;
const EVENT: usize = 2;
const LABEL: usize = 3;
const TYPE: usize = 4;

/// One dimension: interned values with their rows and reference counts.
#[derive(Debug, Default)]
struct Dimension {
    values: HashMap<String, (BitRow, usize), ahash::RandomState>,
    unconstrained: BitRow,
}

impl Dimension {
    fn add(&mut self, slot: usize, values: &[String]) {
        if values.is_empty() {
            self.unconstrained.set(slot, true);
        }
        for v in values {
            let (row, count) = self.values.entry(v.clone()).or_default();
            row.set(slot, true);
            *count += 1;
        }
    }

    fn remove(&mut self, slot: usize, values: &[String]) {
        self.unconstrained.set(slot, false);
        for v in values {
            if let Some((row, count)) = self.values.get_mut(v) {
                row.set(slot, false);
                *count -= 1;
                if *count == 0 {
                    self.values.remove(v);
                }
            }
        }
    }

    /// ORs into `acc` the unconstrained row and the rows of `keys`.
    fn or_into(&self, acc: &mut [u64], keys: &[&str]) {
        or_row(acc, &self.unconstrained);
        for k in keys {
            if let Some((row, _)) = self.values.get(*k) {
                or_row(acc, row);
            }
        }
    }
}

fn or_row(acc: &mut [u64], row: &BitRow) {
    for (a, r) in acc.iter_mut().zip(row.words()) {
        *a |= r;
    }
}

/// Every `/events/ws` subscriber of one core, by filter.
#[derive(Debug, Default)]
pub struct FilterIndex {
    dims: [Dimension; DIMS],
    /// One past the highest slot ever added (the width of a match).
    width: usize,
    /// Scratch rows reused by every match.
    acc: Vec<u64>,
    dim: Vec<u64>,
}

fn filter_values(f: &DockerFilter) -> [Vec<String>; DIMS] {
    [
        f.container.clone(),
        f.image.clone(),
        f.event.iter().map(|a| a.as_str().to_string()).collect(),
        f.label.clone(),
        f.kind.clone(),
    ]
}

impl FilterIndex {
    /// Adds the subscriber in `slot` with filter `f`.
    pub fn add(&mut self, slot: usize, f: &DockerFilter) {
        for (d, values) in self.dims.iter_mut().zip(filter_values(f)) {
            d.add(slot, &values);
        }
        self.width = self.width.max(slot + 1);
    }

    /// Removes the subscriber in `slot`, which was added with `f`.
    pub fn remove(&mut self, slot: usize, f: &DockerFilter) {
        for (d, values) in self.dims.iter_mut().zip(filter_values(f)) {
            d.remove(slot, &values);
        }
    }

    /// Calls `f` with every slot whose filter matches `k`, ascending.
    pub fn for_each_match(&mut self, k: &DockerKeys, f: impl FnMut(usize)) {
        let words = self.width.div_ceil(64);
        self.acc.clear();
        self.acc.resize(words, u64::MAX);
        let action = k.action.map(Action::as_str).unwrap_or("");
        let labels: Vec<&str> = k.labels.iter().map(String::as_str).collect();
        let prefixes: Vec<&str> = self.dims[CONTAINER]
            .values
            .keys()
            .filter(|v| !v.is_empty() && k.id.starts_with(v.as_str()))
            .map(String::as_str)
            .collect();
        let mut container_keys = vec![k.name.as_str()];
        container_keys.extend(prefixes);
        let per_dim: [(usize, Vec<&str>); DIMS - 1] = [
            (CONTAINER, container_keys),
            (IMAGE, vec![k.image.as_str(), k.image_untagged.as_str()]),
            (EVENT, vec![action]),
            (TYPE, vec!["container"]),
        ];
        for (d, keys) in per_dim {
            self.dim.clear();
            self.dim.resize(words, 0);
            self.dims[d].or_into(&mut self.dim, &keys);
            for (a, x) in self.acc.iter_mut().zip(&self.dim) {
                *a &= x;
            }
        }
        // Labels, AND-ed: clear every subscriber that named a label the
        // event does not carry (one that named none is in no row).
        self.dim.clear();
        self.dim.resize(words, 0);
        for (value, (row, _)) in &self.dims[LABEL].values {
            if !labels.contains(&value.as_str()) {
                or_row(&mut self.dim, row);
            }
        }
        for (a, x) in self.acc.iter_mut().zip(&self.dim) {
            *a &= !x;
        }
        for_each_bit(self.acc.iter().copied(), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(
        name: &str,
        id: &str,
        image: &str,
        action: Action,
        labels: &[(&str, &str)],
    ) -> DockerKeys {
        let mut l = Vec::new();
        for (k, v) in labels {
            l.push(k.to_string());
            l.push(format!("{k}={v}"));
        }
        DockerKeys {
            id: id.into(),
            name: name.into(),
            image: image.into(),
            image_untagged: super::super::event::untagged(image).into(),
            action: Some(action),
            labels: l,
            time: 0,
        }
    }

    const FILTERS: [&str; 17] = [
        "{}",
        r#"{"container":{"web":true}}"#,
        r#"{"container":["abc1"]}"#,
        r#"{"image":{"ubuntu":true}}"#,
        r#"{"event":{"start":true}}"#,
        r#"{"label":{"tier=s4":true}}"#,
        r#"{"label":["tier"]}"#,
        r#"{"event":{"stop":true},"label":{"tier=s4":true}}"#,
        r#"{"container":["web","db"],"event":["stop"]}"#,
        r#"{"image":["busybox:latest"],"label":["tier=s5"]}"#,
        // Labels AND-ed: some events carry both, some one, some neither.
        r#"{"label":["tier","zone=eu"]}"#,
        r#"{"label":["tier=s4","zone"]}"#,
        r#"{"label":["tier=s4","tier"]}"#,
        r#"{"event":["start"],"label":["zone=eu","x"]}"#,
        r#"{"type":["container"]}"#,
        r#"{"type":["network"]}"#,
        r#"{"type":["network","container"],"label":["tier"]}"#,
    ];

    #[test]
    fn index_agrees_with_direct_evaluation_for_every_filter_and_event() {
        let filters: Vec<DockerFilter> = FILTERS
            .iter()
            .map(|j| DockerFilter::parse(j).unwrap())
            .collect();
        let mut ix = FilterIndex::default();
        // Spread the filters over slots across several words.
        let slots: Vec<usize> = (0..filters.len()).map(|i| i * 37 + 5).collect();
        for (f, &s) in filters.iter().zip(&slots) {
            ix.add(s, f);
        }
        let events = [
            keys(
                "web",
                "abc123",
                "ubuntu:latest",
                Action::Start,
                &[("tier", "s4"), ("zone", "eu")],
            ),
            keys("web", "abc9", "ubuntu", Action::Start, &[("tier", "s4")]),
            keys("web", "abc7", "ubuntu", Action::Stop, &[("tier", "s4")]),
            keys(
                "x",
                "ab",
                "alpine",
                Action::Start,
                &[("zone", "eu"), ("x", "")],
            ),
            keys(
                "db",
                "ffee",
                "busybox:latest",
                Action::Stop,
                &[("tier", "s5")],
            ),
            keys("web", "abc1ff", "ubuntu", Action::Stop, &[]),
            keys("other", "0000", "alpine", Action::Start, &[("x", "")]),
        ];
        let mut matched = vec![0usize; filters.len()];
        for ev in &events {
            let mut got = Vec::new();
            ix.for_each_match(ev, |s| got.push(s));
            let want: Vec<usize> = filters
                .iter()
                .zip(&slots)
                .filter(|(f, _)| f.matches(ev))
                .map(|(_, &s)| s)
                .collect();
            assert_eq!(got, want, "{ev:?}");
            for (i, f) in filters.iter().enumerate() {
                matched[i] += usize::from(f.matches(ev));
            }
        }
        // Meaningful only if each filter both matches and misses some event
        // (the empty and type=container filters match all; network none).
        for (i, j) in FILTERS.iter().enumerate() {
            let n = matched[i];
            match *j {
                "{}" | r#"{"type":["container"]}"# => assert_eq!(n, events.len()),
                r#"{"type":["network"]}"# => assert_eq!(n, 0),
                _ => assert!(n > 0 && n < events.len(), "{j} matched {n}"),
            }
        }
    }

    #[test]
    fn removed_subscribers_no_longer_match_and_values_are_forgotten() {
        let mut ix = FilterIndex::default();
        let f = DockerFilter::parse(r#"{"image":["ubuntu"]}"#).unwrap();
        ix.add(3, &f);
        ix.remove(3, &f);
        let mut got = Vec::new();
        ix.for_each_match(&keys("a", "b", "ubuntu", Action::Start, &[]), |s| {
            got.push(s)
        });
        assert!(got.is_empty());
        assert!(ix.dims[IMAGE].values.is_empty());
    }
}
