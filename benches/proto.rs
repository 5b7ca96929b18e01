//! Throughput of the sans-IO protocol layer.
//!
//! - `decode`: a server [`Reader`] decoding 1,000 masked 256-byte text frames
//!   from one buffer (unmask, UTF-8 check, event per frame), and one masked
//!   64 KiB binary frame;
//! - `encode`: [`frame`] building a complete text frame of 256 B and 64 KiB,
//!   and [`HeaderBuf::new`] alone;
//! - `unmask`: [`apply_mask`] (word at a time) against a naive byte loop at
//!   256 B, 4 KiB, 64 KiB and 1 MiB;
//! - `utf8`: [`Utf8Validator::feed`] on 64 KiB of ASCII and of multi-byte
//!   text.
//!
//! Every bench reports bytes per second; for `decode/text_256B_x1000`
//! divide the time by 1,000 for the cost of one frame.
//! `cargo bench --bench proto` (about a minute).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use eventhub::proto::mask::apply_mask;
use eventhub::proto::utf8::Utf8Validator;
use eventhub::proto::{frame, masked_frame, Decoded, HeaderBuf, Opcode, Reader, Role};
use std::hint::black_box;
use std::time::Duration;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const FRAMES: usize = 1_000;

/// Decodes every frame in `buf`; returns the number of events.
fn decode_all(reader: &mut Reader, buf: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut events = 0;
    loop {
        match reader.decode(&mut buf[pos..]) {
            Ok(Decoded::Event(n, ev)) => {
                black_box(ev);
                events += 1;
                pos += n;
            }
            Ok(Decoded::Consumed(n)) => pos += n,
            Ok(Decoded::NeedMore) => return events,
            Err(e) => panic!("bench input failed to decode: {e}"),
        }
    }
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");

    // A JSON-ish ASCII payload of exactly 256 bytes.
    let mut text = String::from(r#"{"type":"event","channel":"pdfm","data":""#);
    while text.len() < 256 - 2 {
        text.push('x');
    }
    text.push_str(r#""}"#);
    assert_eq!(text.len(), 256);
    let one = masked_frame(true, Opcode::Text, text.as_bytes(), KEY);
    let stream: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * FRAMES)
        .collect();
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("text_256B_x1000", |b| {
        // Decoding unmasks in place, so every iteration gets a fresh copy
        // (made outside the timed part).
        b.iter_batched_ref(
            || stream.clone(),
            |buf| {
                let mut reader = Reader::new(Role::Server, 1 << 20);
                assert_eq!(decode_all(&mut reader, buf), FRAMES);
            },
            BatchSize::LargeInput,
        )
    });

    let payload: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 + 7) as u8).collect();
    let big = masked_frame(true, Opcode::Binary, &payload, KEY);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("binary_64KiB", |b| {
        b.iter_batched_ref(
            || big.clone(),
            |buf| {
                let mut reader = Reader::new(Role::Server, 1 << 20);
                assert_eq!(decode_all(&mut reader, buf), 1);
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (label, len) in [("256B", 256usize), ("64KiB", 64 * 1024)] {
        let payload = vec![b'a'; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("frame_text", label), &payload, |b, p| {
            b.iter(|| frame(Opcode::Text, black_box(p)))
        });
    }
    // A 64-bit length and a mask: the longest header, 14 bytes.
    group.throughput(Throughput::Bytes(14));
    group.bench_function("header_buf_14B", |b| {
        b.iter(|| {
            let h = HeaderBuf::new(
                black_box(true),
                black_box(Opcode::Binary),
                black_box(70_000),
                black_box(Some(KEY)),
            );
            black_box(h.as_slice().len())
        })
    });
    group.finish();
}

/// The byte-at-a-time loop that `apply_mask` replaces.
fn naive_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for (label, len) in [
        ("256B", 256usize),
        ("4KiB", 4 * 1024),
        ("64KiB", 64 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        // Masking twice is the identity, so one buffer serves every
        // iteration.
        let mut buf: Vec<u8> = (0..len).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("apply_mask", label), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
        group.bench_function(BenchmarkId::new("naive", label), |b| {
            b.iter(|| naive_mask(black_box(&mut buf), black_box(KEY), 0))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    const LEN: usize = 64 * 1024;
    let ascii: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(LEN)
        .collect();
    // Two-, three- and four-byte sequences with some ASCII between them.
    let sample = "κόσμε 世界 naïve ☃ 🦀 Ünïcödé ";
    let mut multi = String::with_capacity(LEN + 8);
    while multi.len() + sample.len() <= LEN {
        multi.push_str(sample);
    }
    for (label, text) in [("ascii_64KiB", &ascii), ("multibyte_64KiB", &multi)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(label, text.as_bytes(), |b, bytes| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(bytes)).unwrap();
                v.is_complete()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = decode, encode, unmask, utf8
}
criterion_main!(benches);
