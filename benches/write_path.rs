//! Copy small frames into one buffer and `send` it, or hand the kernel an
//! iovec of the shared frames (`sendmsg`/`writev`)? The outbox
//! (`src/runtime/outbox.rs`) does the second, zero-copy; uWebSockets copies
//! into a 16 KiB cork buffer. This bench asks the kernel both ways over a
//! real loopback TCP connection whose other end a thread drains, for a
//! write of N frames of S bytes (`bytes::Bytes`, as queued):
//!
//! - `iovec`: one vectored write of the N frames;
//! - `copy`: the N frames copied into a reused buffer, one plain write.
//!
//! `cargo bench --bench write_path`. The README's Performance section has
//! the figures and the verdict.

use std::hint::black_box;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};

/// A connected loopback pair: the writer here, the reader drained by a
/// thread of its own until the writer closes.
fn pair() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut reader, _) = listener.accept().unwrap();
    writer.set_nodelay(true).unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    writer
}

/// Writes all of `slices` (a short write goes on with what is left).
fn write_vectored_all(w: &mut TcpStream, frames: &[Bytes]) {
    let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
    let mut left: &mut [IoSlice<'_>] = &mut slices;
    while !left.is_empty() {
        let n = w.write_vectored(left).unwrap();
        IoSlice::advance_slices(&mut left, n);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (count, size) in [
        (1usize, 256usize),
        (4, 256),
        (32, 256),
        (8, 1024),
        (4, 4096),
    ] {
        let frames: Vec<Bytes> = (0..count)
            .map(|i| Bytes::from(vec![i as u8; size]))
            .collect();
        let label = format!("{count}x{size}");
        group.throughput(Throughput::Elements(count as u64));
        let mut w = pair();
        group.bench_with_input(BenchmarkId::new("iovec", &label), &frames, |b, frames| {
            b.iter(|| write_vectored_all(&mut w, black_box(frames)))
        });
        let mut w = pair();
        let mut cork = Vec::with_capacity(16 * 1024);
        group.bench_with_input(BenchmarkId::new("copy", &label), &frames, |b, frames| {
            b.iter(|| {
                cork.clear();
                for f in black_box(frames) {
                    cork.extend_from_slice(f);
                }
                w.write_all(&cork).unwrap();
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
