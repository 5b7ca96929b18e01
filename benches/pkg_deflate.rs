//! Which DEFLATE crate for permessage-deflate (RFC 7692)
//! (benches/PACKAGES.md, section 4, has the figures and the verdict).
//!
//! The hub's use, as planned: each event is compressed once, as raw DEFLATE
//! (no zlib header) with a sync flush whose `00 00 ff ff` tail is removed
//! (RFC 7692 section 7.2.1), with no context takeover (a fresh compressor
//! state per message). Client messages are inflated with a fresh or reset
//! state per message, after `00 00 ff ff` is appended (section 7.2.2), into
//! an output buffer that must not grow past a cap (`limits.max_message_bytes`,
//! 1 MiB by default): a decompression bomb must stop there.
//!
//! Candidates:
//!
//! - `zrs`: flate2 1.1 with the zlib-rs backend (`default-features = false,
//!   features = ["zlib-rs"]`). [`deflate_message`] and [`inflate_message`]
//!   are the code proposed for `src/`.
//! - `miniz`: miniz_oxide 0.9 used directly (what flate2's default
//!   `rust_backend` wraps; flate2's backends are chosen by features and unify,
//!   so flate2-over-miniz cannot sit in the same binary as flate2-over-zlib-rs).
//!   `miniz_core` inflates with the low-level decompressor into a
//!   non-wrapping output buffer; `miniz_stream` uses `InflateState`.
//! - `libdeflate`: libdeflater 1.26 (libdeflate 1.26, C, built by `cc`).
//!   Whole buffers only: its output is always a final (BFINAL) block, and it
//!   can only inflate a stream that ends with one, so the bench appends an
//!   empty final block (`03 00`) after the `00 00 ff ff` tail.
//!
//! `_new` variants make the state per message; `_reset` variants keep one
//! state and reset it. The inflate input is zlib-rs's level-6 output (what a
//! zlib-based client sends). Before measuring, [`checks`] runs: every
//! compressor's output round-trips through every inflater, RFC 7692's own
//! examples, the cap (a 4 MiB bomb, the exact cap), a distance reaching back
//! before the message's start, and the window sizes each crate honours; it
//! also prints each crate's state sizes (glibc `mallinfo2`) and the
//! compressed sizes that go into the table.
//!
//! `cargo bench --bench pkg_deflate`. For instruction counts, the same binary
//! runs `PKG_N` iterations of one variant on one input and exits:
//! `PKG_VARIANT=c6/zrs_reset PKG_INPUT=4K PKG_N=2000 valgrind --tool=callgrind
//! target/release/deps/pkg_deflate-*` (variants `c1/..`, `c2/..`, `c6/..` and
//! `inflate/..`, names as in the criterion ids; `PKG_N=0` for the setup to
//! subtract; this mode skips the checks). `PKG_CHECK=1` runs the checks and
//! exits.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use miniz_oxide::deflate::core::{CompressionStrategy, CompressorOxide};
use miniz_oxide::inflate::core::{decompress as tinfl, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::stream::{inflate as mz_inflate, InflateState};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

/// The tail a sync flush ends with, removed by the sender, appended by the
/// receiver (RFC 7692 sections 7.2.1 and 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// `limits.max_message_bytes` by default: the largest client message.
const CAP: usize = 1 << 20;
/// The example messages of the project's shared documents.
const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/events");

#[derive(Debug, PartialEq, Eq)]
enum InflateError {
    /// The message inflates to more than the cap.
    TooBig,
    /// Not a valid DEFLATE stream.
    Corrupt,
}

// ---- flate2 + zlib-rs: the code proposed for src/ ----

/// One whole message as RFC 7692 sends it with no context takeover: `c` is
/// a raw compressor (`Compress::new(level, false)`), reset here so that no
/// earlier message is referenced; `out` is cleared and receives the
/// payload. A sync flush ends the data with an empty stored block
/// (`00 00 ff ff`), which is removed. An empty message gives `[0x00]`.
fn deflate_message(c: &mut Compress, msg: &[u8], out: &mut Vec<u8>) {
    c.reset();
    out.clear();
    // Incompressible data grows by 5 bytes per stored block; the loop
    // below grows the buffer anyway.
    out.reserve(msg.len() + msg.len() / 1024 + 16);
    let mut input = msg;
    loop {
        let before = c.total_in();
        c.compress_vec(input, out, FlushCompress::Sync)
            .expect("deflate on a valid state cannot fail");
        input = &input[(c.total_in() - before) as usize..];
        // zlib's rule: done when all input is taken and the flush left
        // room in the output (no more pending).
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    debug_assert!(out.ends_with(&TAIL), "a sync flush ends with 00 00 ff ff");
    out.truncate(out.len() - TAIL.len());
}

/// One client message (`payload`, the frames' data joined, RSV1 set) with
/// `00 00 ff ff` appended, into `out` (cleared), never past `cap` bytes:
/// `Err(TooBig)` as soon as the output would pass it. `d` is a raw
/// decompressor (`Decompress::new(false)`), reset here: no context
/// takeover. The output buffer grows as needed, to at most `cap + 1`
/// bytes, so `out` is reused across messages without holding `cap` for
/// each one.
fn inflate_message(
    d: &mut Decompress,
    payload: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<(), InflateError> {
    d.reset(false);
    out.clear();
    for (mut input, tail) in [(payload, false), (&TAIL[..], true)] {
        loop {
            if out.len() == out.capacity() {
                // One byte past the cap is room enough to know it is passed.
                let room = (cap + 1 - out.len()).min(out.capacity().max(4096));
                out.reserve_exact(room);
            }
            let before = d.total_in();
            let status = d
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            input = &input[(d.total_in() - before) as usize..];
            if out.len() > cap {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // A final block (RFC 7692 section 7.2.3.4). More blocks
                // may follow it, byte-aligned (section 7.2.1): a new
                // stream, with a reset state. Past the payload, the stream
                // is over: the appended tail is not read.
                if tail || input.is_empty() {
                    return Ok(());
                }
                d.reset(false);
            }
            if input.is_empty() && out.len() < out.capacity() {
                break; // all taken, nothing pending
            }
        }
    }
    Ok(())
}

// ---- miniz_oxide ----

fn miniz_compressor(level: u8) -> Box<CompressorOxide> {
    // flate2's miniz backend does the same: default, then format and level.
    let mut c = Box::<CompressorOxide>::default();
    c.set_format_and_level(DataFormat::Raw, level);
    c
}

/// Returns the payload's length in `out` (sync flush, tail removed).
fn deflate_miniz(c: &mut CompressorOxide, msg: &[u8], out: &mut [u8]) -> usize {
    let r = miniz_oxide::deflate::stream::deflate(c, msg, out, MZFlush::Sync);
    assert!(r.status.is_ok() && r.bytes_consumed == msg.len() && r.bytes_written < out.len());
    debug_assert!(out[..r.bytes_written].ends_with(&TAIL));
    r.bytes_written - TAIL.len()
}

/// The low-level decompressor into a non-wrapping output buffer: the buffer
/// is the window, a distance before the message's start is an error.
/// `out` keeps its length (zeroed once) between messages; the output is
/// `out[..n]`.
fn inflate_miniz_core(
    d: &mut DecompressorOxide,
    payload: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<usize, InflateError> {
    use inflate_flags::{TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF};
    d.init();
    let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF | TINFL_FLAG_HAS_MORE_INPUT;
    let mut pos = 0;
    for mut input in [payload, &TAIL[..]] {
        loop {
            let (st, n_in, n_out) = tinfl(d, input, out, pos, flags);
            input = &input[n_in..];
            pos += n_out;
            match st {
                TINFLStatus::Done => {
                    return if pos > cap {
                        Err(InflateError::TooBig)
                    } else {
                        Ok(pos)
                    }
                }
                TINFLStatus::NeedsMoreInput => break,
                TINFLStatus::HasMoreOutput => {
                    if out.len() > cap {
                        return Err(InflateError::TooBig);
                    }
                    let len = (out.len() * 2).clamp(4096, cap + 1);
                    out.resize(len, 0);
                }
                _ => return Err(InflateError::Corrupt),
            }
        }
    }
    if pos > cap {
        return Err(InflateError::TooBig);
    }
    Ok(pos)
}

/// `InflateState` (its own 32 KiB window), `FullReset` per message.
fn inflate_miniz_stream(
    s: &mut InflateState,
    payload: &[u8],
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<usize, InflateError> {
    s.reset(DataFormat::Raw);
    let mut pos = 0;
    for mut input in [payload, &TAIL[..]] {
        loop {
            if pos == out.len() {
                if out.len() > cap {
                    return Err(InflateError::TooBig);
                }
                let len = (out.len() * 2).clamp(4096, cap + 1);
                out.resize(len, 0);
            }
            let r = mz_inflate(s, input, &mut out[pos..], MZFlush::None);
            input = &input[r.bytes_consumed..];
            pos += r.bytes_written;
            if pos > cap {
                return Err(InflateError::TooBig);
            }
            match r.status {
                Ok(MZStatus::StreamEnd) => return Ok(pos),
                Ok(_) => {}
                // No progress: all input taken and nothing pending.
                Err(miniz_oxide::MZError::Buf) => break,
                Err(_) => return Err(InflateError::Corrupt),
            }
            if input.is_empty() && pos < out.len() {
                break;
            }
        }
    }
    Ok(pos)
}

// ---- libdeflate ----

/// An empty final block with fixed codes: appended after `00 00 ff ff`
/// (which leaves the stream byte-aligned) so that libdeflate, which only
/// stops at a final block, can inflate a sync-flushed message.
const FINAL_EMPTY: [u8; 2] = [0x03, 0x00];

/// `scratch` receives payload + tail + final block (libdeflate takes one
/// contiguous input); `out` must be `cap` bytes long.
fn inflate_libdeflate(
    d: &mut libdeflater::Decompressor,
    payload: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut [u8],
) -> Result<usize, InflateError> {
    scratch.clear();
    scratch.extend_from_slice(payload);
    scratch.extend_from_slice(&TAIL);
    scratch.extend_from_slice(&FINAL_EMPTY);
    d.deflate_decompress(scratch, out).map_err(|e| match e {
        libdeflater::DecompressionError::InsufficientSpace => InflateError::TooBig,
        libdeflater::DecompressionError::BadData => InflateError::Corrupt,
    })
}

/// libdeflate's stream ends with a final block, padded to a byte; RFC 7692
/// section 7.2.1 then appends an empty stored block and removes
/// `00 00 ff ff`, which leaves one `0x00` (its header bits and padding), as
/// in the example of section 7.2.3.4. Returns the payload's length.
fn deflate_libdeflate(c: &mut libdeflater::Compressor, msg: &[u8], out: &mut [u8]) -> usize {
    let n = c.deflate_compress(msg, out).expect("room for the bound");
    out[n] = 0x00;
    n + 1
}

fn libdeflate_compressor(level: u8) -> libdeflater::Compressor {
    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level.into()).unwrap())
}

// ---- inputs ----

fn hex64(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.u64(..),
        rng.u64(..),
        rng.u64(..),
        rng.u64(..)
    )
}

/// A Docker container event as the engine emits it and the hub sends it on
/// `/events/ws`: varying ids, names, images, actions, labels.
fn docker_event(rng: &mut fastrand::Rng, t: &mut u64) -> String {
    const ACTIONS: [&str; 7] = [
        "create", "start", "stop", "die", "kill", "destroy", "restart",
    ];
    const IMAGES: [&str; 5] = [
        "busybox",
        "localhost/busybox:latest",
        "nginx:1.27-alpine",
        "redis:7.4",
        "ghcr.io/example/api:2026.11.3",
    ];
    let id = hex64(rng);
    let action = ACTIONS[rng.usize(..ACTIONS.len())];
    let image = IMAGES[rng.usize(..IMAGES.len())];
    let service = ["web", "db", "cache", "worker"][rng.usize(..4)];
    let name = format!("{service}-{}", rng.u32(1..40));
    let mut attrs = String::new();
    if matches!(action, "die" | "stop" | "kill") {
        attrs.push_str(&format!(
            "\"exitCode\":\"{}\",",
            [0, 0, 1, 137, 143][rng.usize(..5)]
        ));
    }
    attrs.push_str(&format!("\"image\":\"{image}\",\"name\":\"{name}\""));
    if rng.bool() {
        attrs.push_str(&format!(
            ",\"com.docker.compose.project\":\"shop\",\"com.docker.compose.service\":\"{service}\",\"com.docker.compose.container-number\":\"{}\",\"com.docker.compose.version\":\"2.29.7\"",
            rng.u32(1..4)
        ));
    }
    if action == "kill" {
        attrs.push_str(",\"signal\":\"15\"");
    }
    *t += rng.u64(0..3);
    let nano = *t * 1_000_000_000 + rng.u64(..1_000_000_000);
    format!(
        "{{\"status\":\"{action}\",\"id\":\"{id}\",\"from\":\"{image}\",\"Type\":\"container\",\"Action\":\"{action}\",\"Actor\":{{\"ID\":\"{id}\",\"Attributes\":{{{attrs}}}}},\"scope\":\"local\",\"time\":{t},\"timeNano\":{nano}}}"
    )
}

/// The hub's envelope around `body`.
fn envelope(rng: &mut fastrand::Rng, message: &str, body: &str, seq: u64) -> String {
    let us = rng.u32(..1_000_000);
    let s = rng.u32(..60);
    format!(
        "{{\"id\":\"{}\",\"event_type\":\"container\",\"timestamp\":\"2026-12-01T17:45:{s:02}.{us:06}Z\",\"message\":\"{message}\",\"body\":{body},\"seq\":{seq}}}",
        hex64(rng)
    )
}

/// An envelope whose body is a JSON array of Docker events, as close to
/// `target` bytes as whole events get it.
fn array_event(rng: &mut fastrand::Rng, target: usize) -> String {
    let mut t = 1_796_147_375;
    let mut events: Vec<String> = Vec::new();
    let overhead = envelope(rng, "batch", "[]", 123_456).len();
    let mut len = overhead;
    loop {
        let e = docker_event(rng, &mut t);
        if len + e.len() + 1 > target
            && target.abs_diff(len) <= (len + e.len() + 1).abs_diff(target)
        {
            break;
        }
        len += e.len() + 1;
        events.push(e);
    }
    envelope(rng, "batch", &format!("[{}]", events.join(",")), 123_456)
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = fastrand::Rng::with_seed(7692);
    let pdfm = std::fs::read(format!("{EVENTS_DIR}/pdfm-vm-state-changed.json"))
        .expect("shared/data/events");
    let pdfm = pdfm.trim_ascii_end().to_vec();
    let mut t = 1_796_147_375;
    let docker = docker_event(&mut rng, &mut t);
    let one = envelope(&mut rng, "stop", &docker, 123);
    vec![
        // The shared example as the hub sends it (with id and timestamp).
        ("pdfm_277B", pdfm),
        // One Docker event as sent on /events/ws, and in the envelope.
        ("docker_1ev", docker.into_bytes()),
        ("envelope_1ev", one.into_bytes()),
        ("1K", array_event(&mut rng, 1024).into_bytes()),
        ("4K", array_event(&mut rng, 4096).into_bytes()),
        ("16K", array_event(&mut rng, 16 * 1024).into_bytes()),
    ]
}

// ---- variants ----

type CompressFn = Box<dyn FnMut(&[u8]) -> usize>;
type InflateFn = Box<dyn FnMut(&[u8]) -> usize>;

const COMPRESS_VARIANTS: [&str; 6] = [
    "zrs_new",
    "zrs_reset",
    "miniz_new",
    "miniz_reset",
    "libdeflate",
    "libdeflate_new",
];
const INFLATE_VARIANTS: [&str; 5] = [
    "zrs_reset",
    "zrs_new",
    "miniz_core",
    "miniz_stream",
    "libdeflate",
];

/// A compressor of one message: returns the payload's length.
fn compressor(variant: &str, level: u8) -> CompressFn {
    let lvl = Compression::new(level.into());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    match variant {
        "zrs_new" => Box::new(move |m| {
            let mut c = Compress::new(lvl, false);
            deflate_message(&mut c, m, &mut out);
            out.len()
        }),
        "zrs_reset" => {
            let mut c = Compress::new(lvl, false);
            Box::new(move |m| {
                deflate_message(&mut c, m, &mut out);
                out.len()
            })
        }
        "miniz_new" => Box::new(move |m| deflate_miniz(&mut miniz_compressor(level), m, &mut buf)),
        "miniz_reset" => {
            let mut c = miniz_compressor(level);
            Box::new(move |m| {
                c.reset();
                deflate_miniz(&mut c, m, &mut buf)
            })
        }
        "libdeflate" => {
            let mut c = libdeflate_compressor(level);
            Box::new(move |m| deflate_libdeflate(&mut c, m, &mut buf))
        }
        "libdeflate_new" => {
            Box::new(move |m| deflate_libdeflate(&mut libdeflate_compressor(level), m, &mut buf))
        }
        _ => panic!("no compress variant {variant}"),
    }
}

/// An inflater of one payload (sync-flushed, tail removed): returns the
/// message's length.
fn inflater(variant: &str) -> InflateFn {
    let mut out: Vec<u8> = Vec::new();
    match variant {
        "zrs_reset" => {
            let mut d = Decompress::new(false);
            Box::new(move |p| {
                inflate_message(&mut d, p, &mut out, CAP).unwrap();
                out.len()
            })
        }
        "zrs_new" => Box::new(move |p| {
            inflate_message(&mut Decompress::new(false), p, &mut out, CAP).unwrap();
            out.len()
        }),
        "miniz_core" => {
            let mut d = Box::<DecompressorOxide>::default();
            Box::new(move |p| inflate_miniz_core(&mut d, p, &mut out, CAP).unwrap())
        }
        "miniz_stream" => {
            let mut s = InflateState::new_boxed(DataFormat::Raw);
            Box::new(move |p| inflate_miniz_stream(&mut s, p, &mut out, CAP).unwrap())
        }
        "libdeflate" => {
            let mut d = libdeflater::Decompressor::new();
            let mut scratch = Vec::new();
            out.resize(CAP, 0);
            Box::new(move |p| inflate_libdeflate(&mut d, p, &mut scratch, &mut out).unwrap())
        }
        _ => panic!("no inflate variant {variant}"),
    }
}

/// What a variant's compressor produced, as bytes (for the checks).
fn compress_bytes(variant: &str, level: u8, msg: &[u8]) -> Vec<u8> {
    let lvl = Compression::new(level.into());
    let mut buf = vec![0u8; 8 << 20];
    match variant {
        "zrs" => {
            let mut out = Vec::new();
            deflate_message(&mut Compress::new(lvl, false), msg, &mut out);
            out
        }
        "miniz" => {
            let n = deflate_miniz(&mut miniz_compressor(level), msg, &mut buf);
            buf[..n].to_vec()
        }
        "libdeflate" => {
            let n = deflate_libdeflate(&mut libdeflate_compressor(level), msg, &mut buf);
            buf[..n].to_vec()
        }
        _ => unreachable!(),
    }
}

/// What a variant's inflater made of a payload, with a cap.
fn inflate_bytes(variant: &str, payload: &[u8], cap: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    match variant {
        "zrs" => inflate_message(&mut Decompress::new(false), payload, &mut out, cap).map(|_| out),
        "miniz_core" => {
            let n = inflate_miniz_core(&mut DecompressorOxide::new(), payload, &mut out, cap)?;
            out.truncate(n);
            Ok(out)
        }
        "miniz_stream" => {
            let n = inflate_miniz_stream(
                &mut InflateState::new_boxed(DataFormat::Raw),
                payload,
                &mut out,
                cap,
            )?;
            out.truncate(n);
            Ok(out)
        }
        "libdeflate" => {
            out.resize(cap, 0);
            let n = inflate_libdeflate(
                &mut libdeflater::Decompressor::new(),
                payload,
                &mut Vec::new(),
                &mut out,
            )?;
            out.truncate(n);
            Ok(out)
        }
        _ => unreachable!(),
    }
}

// ---- checks ----

/// Bytes in use on glibc's heap (small chunks plus mmapped ones).
fn heap_in_use() -> usize {
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

/// (black_box: else an allocation that is only dropped may be elided.)
fn heap_of<T>(make: impl FnOnce() -> T) -> (usize, T) {
    let before = heap_in_use();
    let t = black_box(make());
    (heap_in_use().saturating_sub(before), t)
}

/// A minimal DEFLATE decoder (RFC 1951, after zlib's puff.c) that also
/// gives the longest match distance used: whether a compressor kept to a
/// window of 2^w bytes. (zlib-rs's inflater cannot tell: it always has a
/// 32 KiB window, whatever `window_bits` says.) `None` on bad data.
fn inflate_max_distance(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    struct Rd<'a> {
        d: &'a [u8],
        bit: usize,
    }
    impl Rd<'_> {
        fn bits(&mut self, n: u32) -> Option<u32> {
            let mut v = 0;
            for i in 0..n {
                let b = *self.d.get(self.bit / 8)? >> (self.bit % 8) & 1;
                v |= u32::from(b) << i;
                self.bit += 1;
            }
            Some(v)
        }
    }
    /// Canonical code from lengths: (count per length, symbols by code).
    fn table(lengths: &[u8]) -> ([u16; 16], Vec<u16>) {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[l as usize] += 1;
        }
        count[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..16 {
            offs[l] = offs[l - 1] + count[l - 1];
        }
        let mut sym = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                sym[offs[l as usize] as usize] = s as u16;
                offs[l as usize] += 1;
            }
        }
        (count, sym)
    }
    fn decode(r: &mut Rd, (count, sym): &([u16; 16], Vec<u16>)) -> Option<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for &n in &count[1..] {
            code |= r.bits(1)? as i32;
            let n = i32::from(n);
            if code - n < first {
                return sym.get((index + (code - first)) as usize).copied();
            }
            index += n;
            first += n;
            first <<= 1;
            code <<= 1;
        }
        None
    }
    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    let mut r = Rd { d: data, bit: 0 };
    let (mut out, mut max) = (Vec::new(), 0usize);
    loop {
        // A sync-flushed stream ends between blocks.
        if r.bit + 3 > data.len() * 8 {
            return Some((out, max));
        }
        let last = r.bits(1)?;
        let (lit, dist) = match r.bits(2)? {
            0 => {
                r.bit = r.bit.div_ceil(8) * 8;
                let (len, nlen) = (r.bits(16)?, r.bits(16)?);
                if len != !nlen & 0xffff {
                    return None;
                }
                let at = r.bit / 8;
                out.extend_from_slice(data.get(at..at + len as usize)?);
                r.bit += len as usize * 8;
                if last == 1 {
                    return Some((out, max));
                }
                continue;
            }
            1 => {
                let mut l = [8u8; 288];
                l[144..256].fill(9);
                l[256..280].fill(7);
                (table(&l), table(&[5u8; 30]))
            }
            2 => {
                let (nlen, ndist, ncode) = (
                    r.bits(5)? as usize + 257,
                    r.bits(5)? as usize + 1,
                    r.bits(4)? as usize + 4,
                );
                const ORDER: [usize; 19] = [
                    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                ];
                let mut cl = [0u8; 19];
                for &o in &ORDER[..ncode] {
                    cl[o] = r.bits(3)? as u8;
                }
                let ct = table(&cl);
                let mut lengths = Vec::with_capacity(nlen + ndist);
                while lengths.len() < nlen + ndist {
                    match decode(&mut r, &ct)? {
                        s @ 0..=15 => lengths.push(s as u8),
                        16 => {
                            let p = *lengths.last()?;
                            let n = 3 + r.bits(2)?;
                            lengths.extend(std::iter::repeat_n(p, n as usize));
                        }
                        17 => lengths.extend(std::iter::repeat_n(0, 3 + r.bits(3)? as usize)),
                        _ => lengths.extend(std::iter::repeat_n(0, 11 + r.bits(7)? as usize)),
                    }
                }
                (table(&lengths[..nlen]), table(&lengths[nlen..]))
            }
            _ => return None,
        };
        loop {
            let s = decode(&mut r, &lit)? as usize;
            if s < 256 {
                out.push(s as u8);
            } else if s == 256 {
                break;
            } else {
                let i = s - 257;
                let len = *LBASE.get(i)? as usize + r.bits(*LEXT.get(i)?)? as usize;
                let di = decode(&mut r, &dist)? as usize;
                let d = *DBASE.get(di)? as usize + r.bits(*DEXT.get(di)?)? as usize;
                if d > out.len() {
                    return None;
                }
                max = max.max(d);
                for _ in 0..len {
                    out.push(out[out.len() - d]);
                }
            }
        }
        if last == 1 {
            return Some((out, max));
        }
    }
}

fn checks() {
    let inputs = inputs();
    let compressors = ["zrs", "miniz", "libdeflate"];
    let inflaters = ["zrs", "miniz_core", "miniz_stream", "libdeflate"];

    // 1. Every compressor's output inflates back with every inflater.
    let mut messages: Vec<Vec<u8>> = inputs.iter().map(|(_, m)| m.clone()).collect();
    messages.push(Vec::new());
    messages.push(b"Hello".to_vec());
    let mut rng = fastrand::Rng::with_seed(1);
    messages.push((0..70_000).map(|_| rng.u8(..)).collect()); // incompressible, > 64 KiB
    for m in &messages {
        for c in compressors {
            for level in [1, 6, 9] {
                let p = compress_bytes(c, level, m);
                for i in inflaters {
                    let got = inflate_bytes(i, &p, CAP);
                    assert_eq!(
                        got.as_deref(),
                        Ok(&m[..]),
                        "{c} level {level} -> {i}, {} bytes",
                        m.len()
                    );
                }
            }
        }
    }
    // An empty message is one 0x00 (RFC 7692 section 7.2.3.6).
    assert_eq!(compress_bytes("zrs", 6, b""), [0x00]);
    assert_eq!(compress_bytes("miniz", 6, b""), [0x00]);
    eprintln!(
        "pkg_deflate: {} messages round-trip, 3 compressors x 3 levels x 4 inflaters",
        messages.len()
    );

    // 2. RFC 7692's examples: section 7.2.3.1 (compressed "Hello"), 7.2.3.3
    // (a stored block), 7.2.3.5 (a final block).
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(
        compress_bytes("zrs", 6, b"Hello"),
        hello,
        "zlib-rs gives RFC 7692's bytes"
    );
    eprintln!(
        "pkg_deflate: \"Hello\": zrs {:02x?}, miniz {:02x?}, libdeflate {:02x?} (RFC 7692: {hello:02x?})",
        compress_bytes("zrs", 6, b"Hello"),
        compress_bytes("miniz", 6, b"Hello"),
        compress_bytes("libdeflate", 6, b"Hello"),
    );
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    for i in inflaters {
        for p in [&hello[..], &stored[..], &bfinal[..]] {
            assert_eq!(
                inflate_bytes(i, p, CAP).as_deref(),
                Ok(&b"Hello"[..]),
                "{i} on {p:02x?}"
            );
        }
    }

    // A final block, then more blocks (RFC 7692 section 7.2.1): "Hel" as
    // libdeflate ends it, then "lo" sync-flushed.
    let mut buf = vec![0u8; 64];
    let n = libdeflate_compressor(6)
        .deflate_compress(b"Hel", &mut buf)
        .unwrap();
    let two = [&buf[..n], &compress_bytes("zrs", 6, b"lo")[..]].concat();
    let mut out = Vec::new();
    inflate_message(&mut Decompress::new(false), &two, &mut out, CAP).unwrap();
    assert_eq!(out, b"Hello");

    // 3. The cap. A bomb: 4 MiB of one byte, ~4 KiB compressed.
    let bomb_plain = vec![b'a'; 4 << 20];
    let bomb = compress_bytes("zrs", 9, &bomb_plain);
    for i in inflaters {
        assert_eq!(
            inflate_bytes(i, &bomb, CAP),
            Err(InflateError::TooBig),
            "{i}: bomb"
        );
        // Exactly at the cap is allowed, one byte over is not.
        let m = &inputs[5].1;
        let p = compress_bytes("zrs", 6, m);
        assert_eq!(
            inflate_bytes(i, &p, m.len()).map(|v| v.len()),
            Ok(m.len()),
            "{i}: at cap"
        );
        assert_eq!(
            inflate_bytes(i, &p, m.len() - 1),
            Err(InflateError::TooBig),
            "{i}: cap - 1"
        );
    }
    // The proposed code's buffer stays within cap + 1 (+ what reserve_exact
    // rounds to).
    let mut out = Vec::new();
    let mut d = Decompress::new(false);
    assert_eq!(
        inflate_message(&mut d, &bomb, &mut out, CAP),
        Err(InflateError::TooBig)
    );
    assert!(out.capacity() <= CAP + 1, "capacity {}", out.capacity());
    // And the state is reusable after a refused message.
    let p = compress_bytes("zrs", 6, &inputs[3].1);
    inflate_message(&mut d, &p, &mut out, CAP).unwrap();
    assert_eq!(out, inputs[3].1);
    eprintln!(
        "pkg_deflate: a {}-byte bomb (4 MiB) stops at the cap in all inflaters; out.capacity() = {} after it",
        bomb.len(),
        CAP + 1
    );

    // 4. A match reaching before the message's start (fixed-code block:
    // literal 'a', then length 3 at distance 2, then end of block). With no
    // context takeover this must fail, not copy from an earlier message.
    let mut w = Bits::default();
    w.put(1, 1); // BFINAL
    w.put(1, 2); // fixed codes
    w.put_rev(0x30 + b'a' as u32, 8); // literal 'a'
    w.put_rev(1, 7); // length code 257: 3
    w.put_rev(1, 5); // distance code 1: distance 2
    w.put_rev(0, 7); // end of block
    let far = w.finish();
    for i in inflaters {
        let got = inflate_bytes(i, &far, CAP);
        eprintln!("pkg_deflate: distance before the start, {i}: {got:?}");
    }
    // The same after a 32 KiB message, with the lighter reset.
    let mut s = InflateState::new_boxed(DataFormat::Raw);
    let mut out = Vec::new();
    let secret = b"SECRET-".repeat(5000);
    inflate_miniz_stream(&mut s, &compress_bytes("zrs", 6, &secret), &mut out, CAP).unwrap();
    s.reset_as(miniz_oxide::inflate::stream::MinReset);
    let r = mz_inflate(&mut s, &far, &mut out, MZFlush::None);
    eprintln!(
        "pkg_deflate: miniz InflateState after MinReset (no zeroing), the last message having been SECRET-..., inflates it to {:?} ({:?})",
        String::from_utf8_lossy(&out[..r.bytes_written]),
        r.status
    );

    // 5. Windows: the longest distance each compressor used on the 16 KiB
    // input, at each window size it can be given.
    let m = &inputs[5].1;
    let check = |p: &[u8]| {
        let (out, max) = inflate_max_distance(&[p, &TAIL[..]].concat()).expect("a valid stream");
        assert_eq!(&out, m);
        max
    };
    let mut line = String::from("pkg_deflate: longest distance on 16K (bytes):");
    for level in [1, 6] {
        let (z, mz, lib) = (
            compress_bytes("zrs", level, m),
            compress_bytes("miniz", level, m),
            compress_bytes("libdeflate", level, m),
        );
        line += &format!(
            " level {level}: zrs {}, miniz {}, libdeflate {};",
            check(&z),
            check(&mz),
            check(&lib)
        );
    }
    for wb in [9u8, 10, 11, 12, 13, 14, 15] {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, wb);
        let mut zrs = Vec::new();
        deflate_message(&mut c, m, &mut zrs);
        let mut mz = Box::new(CompressorOxide::with_params(
            DataFormat::Raw,
            6,
            CompressionStrategy::Default,
            wb,
        ));
        let mut buf = vec![0u8; 64 * 1024];
        let n = deflate_miniz(&mut mz, m, &mut buf);
        line += &format!(
            " w={wb} (window {}): zrs {} ({} B), miniz with_params {} ({} B);",
            1 << wb,
            check(&zrs),
            zrs.len(),
            check(&buf[..n]),
            n
        );
    }
    eprintln!("{line}");
    // The inflaters accept any distance up to 32 KiB: a window-15 message
    // inflates in a zlib-rs "window 9" inflater (which has 32 KiB anyway).
    let full = compress_bytes("zrs", 6, m);
    let mut d = Decompress::new_with_window_bits(false, 9);
    inflate_message(&mut d, &full, &mut out, CAP).unwrap();
    assert_eq!(&out, m);

    // 6. Memory of one state (glibc heap in use before and after).
    let (zc, c) = heap_of(|| Compress::new(Compression::new(6), false));
    drop(c);
    let (zc9, c) = heap_of(|| Compress::new_with_window_bits(Compression::new(6), false, 9));
    drop(c);
    let (zd, mut d) = heap_of(|| Decompress::new(false));
    let full_payload = compress_bytes("zrs", 6, m);
    let (zd_used, _) =
        heap_of(|| inflate_message(&mut d, &full_payload, &mut Vec::with_capacity(CAP), CAP));
    drop(d);
    let (zd9, mut d) = heap_of(|| Decompress::new_with_window_bits(false, 9));
    let (zd9_used, _) =
        heap_of(|| inflate_message(&mut d, &full_payload, &mut Vec::with_capacity(CAP), CAP));
    drop(d);
    let (mc1, c) = heap_of(|| miniz_compressor(1));
    drop(c);
    let (mc6, c) = heap_of(|| miniz_compressor(6));
    drop(c);
    let (md, d) = heap_of(Box::<DecompressorOxide>::default);
    drop(d);
    let (ms, s) = heap_of(|| InflateState::new_boxed(DataFormat::Raw));
    drop(s);
    let mut lc = Vec::new();
    for level in [1u8, 6, 9, 12] {
        let (n, c) = heap_of(|| libdeflate_compressor(level));
        lc.push(format!("level {level}: {n}"));
        drop(c);
    }
    let (ld, d) = heap_of(libdeflater::Decompressor::new);
    drop(d);
    eprintln!(
        "pkg_deflate: heap of one state, bytes: zrs Compress {zc} (window 9: {zc9}); zrs Decompress {zd} + {zd_used} on the first message (window 9: {zd9} + {zd9_used}); \
         miniz CompressorOxide level 1: {mc1}, level 6: {mc6} (size_of {}), DecompressorOxide {md} (size_of {}), InflateState {ms} (size_of {}); \
         libdeflate compressor {}; decompressor {ld}",
        std::mem::size_of::<CompressorOxide>(),
        std::mem::size_of::<DecompressorOxide>(),
        std::mem::size_of::<InflateState>(),
        lc.join(", "),
    );

    // 7. Compressed sizes for the table.
    for (name, m) in &inputs {
        let mut row = format!("pkg_deflate: size {name} ({} B):", m.len());
        for level in [1, 6] {
            for c in compressors {
                let n = compress_bytes(c, level, m).len();
                row += &format!(
                    " {c}@{level} {n} ({:.1}%)",
                    100.0 * n as f64 / m.len() as f64
                );
            }
        }
        for level in [2, 3, 4, 9] {
            let n = compress_bytes("zrs", level, m).len();
            row += &format!(
                " zrs@{level} {n} ({:.1}%)",
                100.0 * n as f64 / m.len() as f64
            );
        }
        eprintln!("{row}");
    }
}

/// An LSB-first bit writer for the hand-made stream.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, v: u32, bits: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, sent most significant bit first.
    fn put_rev(&mut self, code: u32, bits: u32) {
        self.put(code.reverse_bits() >> (32 - bits), bits);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

// ---- measurement ----

fn bench(cr: &mut Criterion) {
    let inputs = inputs();
    for level in [1u8, 6] {
        let mut g = cr.benchmark_group(format!("c{level}"));
        for (name, m) in &inputs {
            g.throughput(Throughput::Bytes(m.len() as u64));
            // Interleaved: all variants of one input, then the next input.
            for v in COMPRESS_VARIANTS {
                let mut f = compressor(v, level);
                g.bench_with_input(BenchmarkId::new(v, name), m, |b, m| {
                    b.iter(|| f(black_box(m)))
                });
            }
        }
        g.finish();
    }
    // zlib-rs's level 1 is zlib-ng's "quick" strategy (fixed codes only),
    // level 2 the first with dynamic codes.
    let mut g = cr.benchmark_group("c2");
    for (name, m) in &inputs {
        g.throughput(Throughput::Bytes(m.len() as u64));
        let mut f = compressor("zrs_reset", 2);
        g.bench_with_input(BenchmarkId::new("zrs_reset", name), m, |b, m| {
            b.iter(|| f(black_box(m)))
        });
    }
    g.finish();
    let mut g = cr.benchmark_group("inflate");
    for (name, m) in &inputs {
        let p = compress_bytes("zrs", 6, m);
        g.throughput(Throughput::Bytes(m.len() as u64));
        for v in INFLATE_VARIANTS {
            let mut f = inflater(v);
            g.bench_with_input(BenchmarkId::new(v, name), &p, |b, p| {
                b.iter(|| f(black_box(p)))
            });
        }
    }
    g.finish();
}

fn main() {
    // The instruction-count driver skips the checks (slow under valgrind).
    if let Ok(variant) = std::env::var("PKG_VARIANT") {
        let input = std::env::var("PKG_INPUT").expect("PKG_INPUT names an input");
        let n: usize = std::env::var("PKG_N").map_or(1000, |n| n.parse().unwrap());
        let (_, m) = inputs().into_iter().find(|(i, _)| *i == input).unwrap();
        let (group, v) = variant
            .split_once('/')
            .expect("PKG_VARIANT is c1/.., c2/.., c6/.. or inflate/..");
        let mut f = match group {
            "c1" => compressor(v, 1),
            "c2" => compressor(v, 2),
            "c6" => compressor(v, 6),
            "inflate" => inflater(v),
            _ => panic!("group c1, c2, c6 or inflate"),
        };
        let arg = if group == "inflate" {
            compress_bytes("zrs", 6, &m)
        } else {
            m.clone()
        };
        let mut total = 0;
        for _ in 0..n {
            total += f(black_box(&arg));
        }
        println!("{variant} {input} ({} bytes) x{n}: {total}", m.len());
        return;
    }
    checks();
    if std::env::var_os("PKG_CHECK").is_some() {
        return;
    }
    let mut cr = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .configure_from_args();
    bench(&mut cr);
    cr.final_summary();
}
