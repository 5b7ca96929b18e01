//! The hub API's health and metrics: `/healthz` needs no credentials, and
//! `/metrics` counts events in, deliveries and subscribers per core.
//!
//! Each test runs against a real `eventhub serve` process that the shared
//! harness (`tests/common`) starts, over real sockets: HTTP requests and
//! WebSocket connections on the loopback interface.
//!
//! Every wait is bounded by the harness's generous timeout; no test asserts
//! on timing. "Did not receive X" is shown by ordering, not by waiting: an
//! event the client should not get is published before a marker it should
//! get, and the marker must come first (every core delivers in `seq`
//! order).

mod common;

use serde_json::json;

use common::api::{
    config, event, hub, is_event, metrics, publish, subscribe, subscribers_per_core,
};
use common::{http_get, http_request, metric_value, read_json, Server};

// ---------------------------------------------------------------------------
// Health and metrics
// ---------------------------------------------------------------------------

#[test]
fn healthz_needs_no_credentials() {
    let server = hub();
    let resp = http_get(server.addr, "/healthz");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json(), json!({"status": "ok"}));
    // Wrong credentials do not matter either.
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/healthz",
        &[("Authorization", "Bearer not-a-known-token-at-all")],
        b"",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[test]
fn metrics_count_events_in_and_deliveries() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    let deliveries = |text: &str| -> u64 {
        common::metric_per_core(text, "eventhub_deliveries_total")
            .iter()
            .map(|(_, n)| n)
            .sum()
    };
    let before = metrics(addr);
    let events_in_before = metric_value(&before, "eventhub_events_in_total").expect("events_in");
    let (mut a, _) = subscribe(addr, "pdfm");
    let (mut b, _) = subscribe(addr, "pdfm");
    let mut connected = subscribers_per_core(addr, 2);
    assert_eq!(connected.iter().sum::<u64>(), 2, "{connected:?}");
    publish(
        addr,
        &format!("[{},{}]", event("pdfm", "1"), event("pdfm", "2")),
    );
    publish(addr, &event("alerts", "nobody"));
    for ws in [&mut a, &mut b] {
        assert!(is_event(&read_json(ws), "pdfm", "1"));
        assert!(is_event(&read_json(ws), "pdfm", "2"));
    }
    let after = metrics(addr);
    assert_eq!(
        metric_value(&after, "eventhub_events_in_total"),
        Some(events_in_before + 3),
        "{after}"
    );
    assert!(
        deliveries(&after) >= deliveries(&before) + 4,
        "deliveries: {} -> {}",
        deliveries(&before),
        deliveries(&after)
    );
    connected = subscribers_per_core(addr, 2);
    assert_eq!(connected.iter().sum::<u64>(), 2, "{connected:?}");
}

#[test]
fn metrics_show_how_many_frames_each_write_carried() {
    let server = Server::hub(1, &config());
    let addr = server.addr;
    let (mut ws, _) = subscribe(addr, "pdfm");
    // Twenty events in one request: fanned out in one turn, so the
    // subscriber's frames leave in few writes, each carrying several.
    let batch: Vec<String> = (0..20).map(|i| event("pdfm", &i.to_string())).collect();
    publish(addr, &format!("[{}]", batch.join(",")));
    for i in 0..20 {
        assert!(is_event(&read_json(&mut ws), "pdfm", &i.to_string()));
    }
    let text = metrics(addr);
    let value = |key: &str| metric_value(&text, key).unwrap_or_else(|| panic!("{key}: {text}"));
    let writes = value("eventhub_frames_per_write_count{core=\"0\"}");
    let frames = value("eventhub_frames_per_write_sum{core=\"0\"}");
    // The confirmation and the twenty events, at least; in fewer writes.
    assert!(frames >= 21, "{text}");
    assert!(
        writes >= 1 && writes < frames,
        "{writes} writes for {frames} frames: {text}"
    );
    assert_eq!(
        value("eventhub_frames_per_write_bucket{core=\"0\",le=\"+Inf\"}"),
        writes,
        "{text}"
    );
    assert!(
        text.contains("# TYPE eventhub_frames_per_write histogram"),
        "{text}"
    );
}
