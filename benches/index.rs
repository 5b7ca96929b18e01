//! Match cost of the per-core subscriber index as the slot count grows.
//!
//! For 100, 10,000 and 100,000 slots: the cost of finding every subscriber
//! of one event's channel when all slots match, when 1% do, and when none
//! do (the row is walked a word at a time, so an empty row costs slots/64
//! word reads). `cargo bench --bench index`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eventhub::hub::channels::ChannelSet;
use eventhub::hub::index::SubscriberIndex;
use std::hint::black_box;

fn build(slots: usize, every: usize) -> SubscriberIndex {
    let mut ix = SubscriberIndex::new(8);
    for slot in 0..slots {
        let mut set = ChannelSet::only(0);
        if every > 0 && slot % every == 0 {
            set.insert(1);
        }
        ix.set(slot, set);
    }
    ix
}

fn match_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_match");
    for slots in [100usize, 10_000, 100_000] {
        for (label, every) in [
            ("all_match", 1usize),
            ("1pct_match", 100),
            ("none_match", 0),
        ] {
            let ix = build(slots, every);
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(label, slots), &ix, |b, ix| {
                b.iter(|| {
                    let mut n = 0usize;
                    ix.for_each_match(black_box(1), |s| n += s);
                    black_box(n)
                })
            });
        }
    }
    group.finish();
}

fn subscribe_cost(c: &mut Criterion) {
    let mut ix = build(100_000, 2);
    c.bench_function("index_set_100k", |b| {
        let mut slot = 0;
        b.iter(|| {
            slot = (slot + 7919) % 100_000;
            ix.set(black_box(slot), ChannelSet::first(3));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = match_cost, subscribe_cost
}
criterion_main!(benches);
