//! simd-json against serde_json for `POST /v1/events` bodies
//! (benches/PACKAGES.md has the figures and the verdict).
//!
//! `serde` is the hub's own [`parse_events`]. `simd` is a simd-json path
//! written here to do the same job at the same strictness: the same bodies
//! accepted and refused, each event's `body` kept byte-for-byte. simd-json
//! alone does not get there, so the path adds what it lacks:
//!
//! - simd-json parses in place, so the body is first copied into a scratch
//!   buffer (the request buffer is shared, and the original bytes are
//!   needed for the verbatim `body`);
//! - its tape holds decoded values, not byte offsets, so the span of each
//!   `body` is found by walking the original text alongside the tape
//!   ([`value_end`]): one more pass over the body's bytes;
//! - it accepts a lone surrogate escape (`"\ud800"`, decoded as U+0000),
//!   so every `\u` escape is checked here ([`lone_surrogate`]);
//! - serde's path limits the depth of a body only when it parses it in
//!   full (a body with an escape or an exponent): the walk counts depth and
//!   does the same; duplicate members of an event are refused here, as
//!   serde's derive does;
//! - it refuses numbers serde_json accepts (integers beyond 64 bits), so on
//!   any simd-json error the serde path decides, and words the message.
//!
//! The measurement also had a third path, `serde_lean`: the hub's serde
//! path with the strict check of a body deserializing into a value that
//! keeps nothing instead of a `serde_json::Value`. The hub has taken that
//! change (`StrictAny` in `src/hub/ingest.rs`), so `serde` here is it; the
//! figures of all three, before the change, are in benches/PACKAGES.md.
//!
//! Before measuring, all three paths run over a table of accepted and refused
//! bodies and over every bench input, and must agree (accepted events
//! equal, field by field).
//!
//! `cargo bench --bench pkg_json`. For instruction counts, the same binary
//! runs `PKG_N` iterations of one variant on one input and exits:
//! `PKG_VARIANT=simd PKG_INPUT=4K PKG_N=2000 valgrind --tool=callgrind
//! target/release/deps/pkg_json-*` (and `PKG_N=0` for the setup to
//! subtract).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use eventhub::hub::channels::{Channels, CONTAINER, HEALTH, SYSTEM};
use eventhub::hub::docker::ContainerEvent;
use eventhub::hub::ingest::{parse_events, NewEvent, MAX_MESSAGE_CHARS};
use simd_json::{Buffers, Node};

const MAX_EVENTS: usize = 1_000;
/// The example messages of the project's shared documents.
const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/events");

/// Deepest nesting serde_json accepts (the 128th open bracket fails).
const MAX_DEPTH: usize = 127;

/// What the simd path keeps between bodies (one per core in the hub).
#[derive(Default)]
struct Scratch {
    input: Vec<u8>,
    buffers: Buffers,
}

/// The simd-json path: same result as [`parse_events`] on every body the
/// serde path accepts, an error on every body it refuses.
fn parse_events_simd<'a>(
    text: &'a str,
    channels: &Channels,
    max_events: usize,
    scratch: &mut Scratch,
) -> Result<Vec<NewEvent<'a>>, String> {
    scratch.input.clear();
    scratch.input.extend_from_slice(text.as_bytes());
    let tape = match simd_json::to_tape_with_buffers(&mut scratch.input, &mut scratch.buffers) {
        Ok(t) => t.0,
        // Rare: let serde_json decide (it accepts integers simd-json
        // refuses) and word the error.
        Err(_) => return parse_events(text, channels, max_events).map_err(|e| e.to_string()),
    };
    if text.contains("\\u") && lone_surrogate(text.as_bytes()) {
        return Err("lone surrogate in a \\u escape".into());
    }
    let b = text.as_bytes();
    let mut p = skip_ws(b, 0);
    // (tape index, byte offset) of each event.
    let mut items = Vec::new();
    match tape[0] {
        Node::Object { .. } => items.push((0, p)),
        Node::Array { len, .. } => {
            if len == 0 {
                return Err("the array of events is empty".into());
            }
            if len > max_events {
                return Err(format!("{len} events in one request; at most {max_events}"));
            }
            items.reserve(len);
            let mut ti = 1;
            p += 1;
            for _ in 0..len {
                p = skip_ws(b, p);
                items.push((ti, p));
                ti += nodes(&tape[ti]);
                p = value_end(b, p, &mut 0);
                p = skip_ws(b, p) + 1; // `,` or `]`
            }
        }
        _ => return Err("body must be an event object or an array of them".into()),
    }
    let mut out = Vec::with_capacity(items.len());
    for (index, (ti, p)) in items.into_iter().enumerate() {
        out.push(check_event(index, &tape, ti, b, p, channels)?);
    }
    Ok(out)
}

/// Tape nodes taken by the value at `n`, itself included.
fn nodes(n: &Node) -> usize {
    match n {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// One event: the object at tape index `ti` and byte offset `p`.
fn check_event<'a>(
    index: usize,
    tape: &[Node],
    mut ti: usize,
    b: &'a [u8],
    mut p: usize,
    channels: &Channels,
) -> Result<NewEvent<'a>, String> {
    let invalid = |m: &str| format!("event {index}: {m}");
    let Node::Object { len, .. } = tape[ti] else {
        return Err(invalid("must be a JSON object"));
    };
    let (mut event_type, mut message, mut body) = (None, None, None);
    let mut seen = [false; 6];
    let mut body_depth = 0;
    ti += 1;
    p += 1;
    for _ in 0..len {
        let Node::String(key) = tape[ti] else {
            unreachable!("object keys are strings")
        };
        p = skip_ws(b, p);
        p = string_end(b, p);
        p = skip_ws(b, p) + 1; // `:`
        p = skip_ws(b, p);
        let start = p;
        let mut depth = 0;
        let end = value_end(b, p, &mut depth);
        p = skip_ws(b, end) + 1; // `,` or `}`
        let value = &tape[ti + 1];
        ti += 1 + nodes(value);
        let field = ["event_type", "message", "body", "id", "timestamp", "seq"]
            .iter()
            .position(|f| *f == key)
            .ok_or_else(|| invalid(&format!("unknown field `{key}`")))?;
        if std::mem::replace(&mut seen[field], true) {
            return Err(invalid(&format!("duplicate field `{key}`")));
        }
        let null = matches!(value, Node::Static(simd_json::StaticNode::Null));
        match (field, value) {
            (0, Node::String(s)) => event_type = Some(*s),
            (1, Node::String(s)) => message = Some(*s),
            (1, _) if null => {}
            (2, _) if null => {}
            (2, _) => (body, body_depth) = (Some(&b[start..end]), depth),
            (0 | 1, _) => return Err(invalid("invalid type, expected a string")),
            _ => {} // id, timestamp, seq: ignored
        }
    }
    let event_type = event_type.ok_or_else(|| invalid("missing field `event_type`"))?;
    let channel = channels
        .id(event_type)
        .map_err(|e| invalid(&e.to_string()))?;
    if channel == SYSTEM || channel == HEALTH {
        return Err(invalid("channel is reserved for the hub's own messages"));
    }
    let message = message.unwrap_or_default().to_string();
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(invalid("message too long"));
    }
    let raw_body = match body {
        // The span lies between ASCII delimiters of a &str.
        Some(s) => std::str::from_utf8(s).expect("a span of the text"),
        None => "{}",
    };
    if body_depth > MAX_DEPTH && needs_strict_check(raw_body) {
        return Err(invalid("body: recursion limit exceeded"));
    }
    if channel != CONTAINER {
        let ev = NewEvent {
            channel,
            message,
            body: Cow::Borrowed(raw_body),
            container: None,
            id: None,
        };
        return Ok(ev);
    }
    let container = ContainerEvent::from_json(raw_body).map_err(|e| invalid(&e.to_string()))?;
    let ev = NewEvent {
        channel,
        message: if message.is_empty() {
            container.action.as_str().to_string()
        } else {
            message
        },
        body: Cow::Owned(container.to_json()),
        container: Some(container),
        id: None,
    };
    Ok(ev)
}

/// A copy of the private `needs_strict_check` of `src/hub/ingest.rs`: which
/// bodies serde's path parses in full (and so refuses beyond its depth).
fn needs_strict_check(raw: &str) -> bool {
    raw.contains("\\u")
        || raw
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && (w[1] == b'e' || w[1] == b'E'))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Just past the string starting at `i` (valid JSON).
fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    loop {
        match b[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Just past the value starting at `i` in text already validated; `depth`
/// becomes its deepest nesting.
fn value_end(b: &[u8], mut i: usize, depth: &mut usize) -> usize {
    let mut open = 0usize;
    loop {
        match b[i] {
            b'"' => i = string_end(b, i),
            b'{' | b'[' => {
                open += 1;
                *depth = (*depth).max(open);
                i += 1;
                continue;
            }
            b'}' | b']' => {
                open -= 1;
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => {
                i += 1;
                continue;
            }
            _ => {
                while !matches!(
                    b.get(i),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    i += 1;
                }
            }
        }
        if open == 0 {
            return i;
        }
    }
}

/// Whether a `\u` escape in (valid) JSON text is half of a surrogate pair
/// without its other half. Backslashes occur only inside strings.
fn lone_surrogate(b: &[u8]) -> bool {
    let hex = |i: usize| {
        std::str::from_utf8(&b[i..i + 4])
            .ok()
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b[i + 1] != b'u' {
            i += 2;
            continue;
        }
        let Some(c) = hex(i + 2) else { return true };
        i += 6;
        match c {
            0xD800..=0xDBFF => {
                let low = b.get(i..i + 2) == Some(b"\\u") && i + 6 <= b.len();
                match low.then(|| hex(i + 2)).flatten() {
                    Some(0xDC00..=0xDFFF) => i += 6,
                    _ => return true,
                }
            }
            0xDC00..=0xDFFF => return true,
            _ => {}
        }
    }
    false
}

// ---- inputs ----

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS_DIR}/{name}.json"))
        .unwrap_or_else(|e| panic!("{EVENTS_DIR}/{name}.json: {e}"))
        .trim()
        .to_string()
}

/// A pdfm `VM_STATE_CHANGED` event (the example's fields) whose body is
/// padded with host records as an orchestrator would send them, to about
/// `size` bytes in all.
fn padded_event(size: usize) -> String {
    let mut records = String::new();
    let mut i = 0;
    let head = r#"{"event_type":"pdfm","message":"VM_STATE_CHANGED","body":{"previous_state":"suspended","current_state":"resuming","vm_id":"fb83295e-0ccb-46b1-8205-b03997f82b00","hosts":["#;
    while head.len() + records.len() + 8 < size {
        if i > 0 {
            records.push(',');
        }
        records.push_str(&format!(
            r#"{{"host_id":"445fb9aefa6914be7d7575ba8fe96d7cebfe2b3c0001442b7628a9ae5fa588d{}","state":"healthy","load":[0.{},1.25,2],"vm":{{"vm_id":"fb83295e-0ccb-46b1-8205-b03997f82b{:02}","memory_mb":{},"tags":["s4","linux"]}}}}"#,
            i % 10,
            i % 97,
            i % 100,
            2048 + i
        ));
        i += 1;
    }
    format!("{head}{records}]}}}}")
}

/// The examples a producer may publish, as events.
fn example_events() -> Vec<String> {
    let publishable = |name: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&example(name)).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("id");
        o.remove("timestamp");
        serde_json::to_string(&v).unwrap()
    };
    let container =
        |name: &str| format!(r#"{{"event_type":"container","body":{}}}"#, example(name));
    vec![
        publishable("pdfm-vm-state-changed"),
        publishable("orchestrator-host-health-update"),
        publishable("orchestrator-host-vm-state-changed"),
        publishable("hub-confirmation"),
        container("docker-engine-start"),
        container("container-start-monitor-doc"),
    ]
}

fn inputs() -> Vec<(&'static str, String)> {
    let ex = example_events();
    let array = |evs: Vec<String>| format!("[{}]", evs.join(","));
    let plain: Vec<String> = (0..MAX_EVENTS).map(|i| ex[i % 4].clone()).collect();
    let mixed: Vec<String> = (0..MAX_EVENTS).map(|i| ex[i % ex.len()].clone()).collect();
    let mut v = vec![
        ("one_example", ex[0].clone()),
        ("256B", padded_event(256)),
        ("1K", padded_event(1024)),
        ("4K", padded_event(4096)),
        ("16K", padded_event(16 * 1024)),
        ("64K", padded_event(64 * 1024)),
        (
            // An escape sends serde's body through its full second parse.
            "4K_escape",
            padded_event(4096).replacen("linux", r"linux \u00e9", 1),
        ),
        ("x1000_hub_examples", array(plain)),
        ("x1000_with_container", array(mixed)),
    ];
    v.retain(|(_, s)| !s.is_empty());
    v
}

/// Bodies that must be accepted (`true`) or refused, both paths agreeing.
fn strictness_table() -> Vec<(String, bool)> {
    let ev = |body: &str| format!(r#"{{"event_type":"pdfm","body":{body}}}"#);
    let nest = |n: usize| ev(&format!("{}{}", "[".repeat(n), "]".repeat(n)));
    let mut t: Vec<(String, bool)> = [
        (r#"{"event_type":"pdfm","body":{"a":"\ud800"}}"#, false),
        (r#"{"event_type":"pdfm","body":{"a":"x\ud800y"}}"#, false),
        (r#"{"event_type":"pdfm","body":{"a":"\udc00"}}"#, false),
        (r#"{"event_type":"pdfm","message":"\ud800"}"#, false),
        (r#"{"event_type":"pdfm","body":{"a":"\\ud800"}}"#, true),
        (r#"{"event_type":"pdfm","body":{"a":"\ud83d\ude00"}}"#, true),
        (r#"{"event_type":"pdfm","body":{"x":0.47E669}}"#, false),
        (r#"{"event_type":"pdfm","body":{"x":1e999}}"#, false),
        (
            r#"{"event_type":"pdfm","body":{"x":1.5e300,"id":"fb83295e"}}"#,
            true,
        ),
        (r#"{"event_type":"pdfm","body":{"x":1e-400}}"#, true),
        (
            r#"{"event_type":"pdfm","body":{"x":123456789012345678901234567890}}"#,
            true,
        ),
        (
            r#"{"event_type":"pdfm","body":{"x":-9223372036854775809}}"#,
            true,
        ),
        (r#"{"event_type":"pdfm","body":{"x":01}}"#, false),
        (r#"{"event_type":"pdfm","body":{"a":1,"a":2}}"#, true),
        (r#"{"event_type":"pdfm","event_type":"pdfm"}"#, false),
        (r#"{"event_type":"pdfm","colour":1}"#, false),
        (r#"{"event_type":5}"#, false),
        (r#"{"event_type":"pdfm","message":null,"body":null}"#, true),
        (
            r#"{"event_type":"pdfm","id":"x","timestamp":"y","seq":3}"#,
            true,
        ),
        (r#"{"message":"m"}"#, false),
        (r#"{"event_type":"system"}"#, false),
        (r#"{"event_type":"nope"}"#, false),
        (r#"[{"event_type":"pdfm"},{"event_type":"nope"}]"#, false),
        (r#"[{"event_type":"pdfm"}, 1]"#, false),
        (r#"[]"#, false),
        (r#"42"#, false),
        (r#"{nope"#, false),
        (r#"{"event_type":"pdfm"} x"#, false),
        (
            " [ {\"event_type\" : \"pdfm\" , \"body\" : { \"a\" : [ 1 , 2 ] } } ] ",
            true,
        ),
        ("{\"event_type\":\"pdfm\",\"body\":\"tab\there\"}", false),
    ]
    .iter()
    .map(|(s, ok)| (s.to_string(), *ok))
    .collect();
    // serde's grammar pass has no depth limit; its full parse of a body
    // that needs one (an escape or an exponent) stops at 128.
    let nest_escape = |n: usize| ev(&format!("{}\"\\u00e9\"{}", "[".repeat(n), "]".repeat(n)));
    for n in [126, 127, 128, 200, 5000] {
        t.push((nest(n), true));
        t.push((nest_escape(n), n <= MAX_DEPTH));
    }
    for f in std::fs::read_dir("fuzz/corpus/publish_body")
        .into_iter()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(f.unwrap().path()) {
            let ok = parse_events(&s, &channels(), MAX_EVENTS).is_ok();
            t.push((s, ok));
        }
    }
    t
}

fn channels() -> Channels {
    Channels::new(&["alerts".into()]).unwrap()
}

/// Both paths agree on the table and on every input.
fn check_agreement() {
    let (c, mut s) = (channels(), Scratch::default());
    let mut cases = strictness_table();
    cases.extend(inputs().into_iter().map(|(_, t)| (t, true)));
    for (text, want) in &cases {
        let serde = parse_events(text, &c, MAX_EVENTS);
        let simd = parse_events_simd(text, &c, MAX_EVENTS, &mut s);
        let short: String = text.chars().take(80).collect();
        assert_eq!(serde.is_ok(), *want, "serde on {short}: {serde:?}");
        match (serde, simd) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "results differ on {short}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("paths disagree on {short}: serde {a:?}, simd {b:?}"),
        }
    }
    eprintln!("pkg_json: both paths agree on {} bodies", cases.len());
}

fn run(variant: &str, text: &str, c: &Channels, s: &mut Scratch) -> usize {
    let n = match variant {
        "serde" => parse_events(text, c, MAX_EVENTS)
            .map(|v| v.len())
            .map_err(|e| e.to_string()),
        "simd" => parse_events_simd(text, c, MAX_EVENTS, s).map(|v| v.len()),
        _ => panic!("PKG_VARIANT is serde or simd"),
    };
    n.expect("bench inputs are valid")
}

fn bench(cr: &mut Criterion) {
    let (c, mut s) = (channels(), Scratch::default());
    let mut g = cr.benchmark_group("publish_body");
    for (name, text) in inputs() {
        g.throughput(Throughput::Bytes(text.len() as u64));
        // Interleaved: both variants of one input, then the next input.
        for variant in ["serde", "simd"] {
            g.bench_with_input(BenchmarkId::new(variant, name), &text, |b, t| {
                b.iter(|| run(variant, black_box(t), &c, &mut s))
            });
        }
    }
    g.finish();
}

fn main() {
    check_agreement();
    if let Ok(variant) = std::env::var("PKG_VARIANT") {
        let input = std::env::var("PKG_INPUT").expect("PKG_INPUT names an input");
        let n: usize = std::env::var("PKG_N").map_or(1000, |n| n.parse().unwrap());
        let (_, text) = inputs().into_iter().find(|(i, _)| *i == input).unwrap();
        let (c, mut s) = (channels(), Scratch::default());
        let mut total = 0;
        for _ in 0..n {
            total += run(&variant, black_box(&text), &c, &mut s);
        }
        println!(
            "{variant} {input} ({} bytes) x{n}: {total} events",
            text.len()
        );
        return;
    }
    let mut cr = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    bench(&mut cr);
    cr.final_summary();
}
