//! `limits.write_coalesce_us`: a core holds its writes that long once
//! frames are queued, so that events published one by one leave in the
//! same write; with 0 (the default) each leaves at once.
//!
//! Runs a real `eventhub serve` (one worker) and counts writes in its
//! `eventhub_frames_per_write` histogram. Two events are published by two
//! POSTs in a row; whether the second came within the hold is known from
//! the clock of the test, and only then is one write expected (the test
//! never fails on a slow machine, it says so).

mod common;

use std::time::{Duration, Instant};

use common::api::{config_with, event, is_event, metrics, publish, subscribe};
use common::{metric_value, read_json, Server};

/// Writes and frames the core has counted so far.
fn writes_and_frames(addr: std::net::SocketAddr) -> (u64, u64) {
    let text = metrics(addr);
    let value = |key: &str| metric_value(&text, key).unwrap_or_else(|| panic!("{key}: {text}"));
    (
        value("eventhub_frames_per_write_count{core=\"0\"}"),
        value("eventhub_frames_per_write_sum{core=\"0\"}"),
    )
}

/// Publishes two events in two POSTs to one subscriber; returns the writes
/// they took and how far apart the POSTs were answered.
fn two_events(hold_us: u64) -> (u64, Duration) {
    let server = Server::hub(
        1,
        &config_with("", &format!("write_coalesce_us = {hold_us}")),
    );
    let addr = server.addr;
    let (mut ws, _) = subscribe(addr, "pdfm");
    let (writes_before, frames_before) = writes_and_frames(addr);
    let started = Instant::now();
    publish(addr, &event("pdfm", "a"));
    publish(addr, &event("pdfm", "b"));
    let apart = started.elapsed();
    assert!(is_event(&read_json(&mut ws), "pdfm", "a"));
    assert!(is_event(&read_json(&mut ws), "pdfm", "b"));
    let (writes, frames) = writes_and_frames(addr);
    assert_eq!(
        frames - frames_before,
        2,
        "two frames, each written whole once"
    );
    (writes - writes_before, apart)
}

#[test]
fn events_published_within_the_hold_leave_in_one_write() {
    let hold = Duration::from_millis(100);
    let (writes, apart) = two_events(hold.as_micros() as u64);
    if apart < hold / 2 {
        assert_eq!(writes, 1, "both events in one write ({apart:?} apart)");
    } else {
        eprintln!("the POSTs were {apart:?} apart, too slow to show the hold; {writes} writes");
    }
}

#[test]
fn without_a_hold_each_event_is_written_at_once() {
    let (writes, apart) = two_events(0);
    // The first event is written before the second POST is answered.
    assert_eq!(writes, 2, "{apart:?} apart");
}

#[test]
fn a_hold_over_a_tenth_of_a_second_is_refused_at_start_up() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eventhub"));
    let path = std::env::temp_dir().join(format!("eventhub-coalesce-{}.toml", std::process::id()));
    std::fs::write(&path, "[limits]\nwrite_coalesce_us = 100001\n").unwrap();
    let out = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.write_coalesce_us"), "{err}");
}
