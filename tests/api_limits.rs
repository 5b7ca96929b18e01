//! The hub API's per-IP rules: one subscription per address (409 until
//! the first closes) and the connect rate (429 with `Retry-After`).
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

use std::thread;
use std::time::{Duration, Instant};

use common::api::{
    assert_error, bearer, config_with, event, is_event, metrics, publish, subscribe_from,
    ADMIN_TOKEN,
};
use common::{
    ip, metric_value, read_json, try_ws_connect_with, upgrade_attempt, ws_close, Server, TIMEOUT,
};

// ---------------------------------------------------------------------------
// Per-IP rules
// ---------------------------------------------------------------------------

#[test]
fn second_subscription_from_one_ip_is_409_until_the_first_closes() {
    let server = Server::hub(
        1,
        &config_with("max_connections_per_ip = 1\nconnect_rate_per_ip = 0.0", ""),
    );
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let headers: &[(&str, &str)] = &[("Authorization", &auth)];
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let (mut first, _) = subscribe_from(addr, Some(ip(5)), "pdfm");
    let answer = assert_error(
        &upgrade_attempt(addr, Some(ip(5)), path, headers),
        409,
        "conflict",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("127.0.0.5"),
        "{answer}"
    );
    // Another address is not affected.
    let (_other, _) = subscribe_from(addr, Some(ip(6)), "pdfm");
    // The first still works.
    publish(addr, &event("pdfm", "m"));
    assert!(is_event(&read_json(&mut first), "pdfm", "m"));

    ws_close(&mut first);
    let deadline = Instant::now() + TIMEOUT;
    let mut again = loop {
        match try_ws_connect_with(addr, Some(ip(5)), path, headers) {
            Ok(ws) => break ws,
            Err(e) if matches!(&*e, tungstenite::Error::Http(resp) if resp.status().as_u16() == 409) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "still 409 after the first closed"
                );
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reconnecting: {e}"),
        }
    };
    assert_eq!(read_json(&mut again)["event_type"], "global");
}

#[test]
fn burst_of_attempts_over_the_rate_is_429_with_retry_after() {
    // A slow refill (one attempt per 5 s) so that the burst is spent
    // however slowly this machine makes the attempts.
    let server = Server::hub(
        1,
        &config_with(
            "max_connections_per_ip = 0\nconnect_rate_per_ip = 0.2\nconnect_burst_per_ip = 3",
            "",
        ),
    );
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let headers: &[(&str, &str)] = &[("Authorization", &auth)];
    let path = "/v1/ws/subscribe?event_types=pdfm";
    for i in 0..3 {
        let resp = upgrade_attempt(addr, Some(ip(9)), path, headers);
        assert_eq!(resp.status, 101, "attempt {i}: {resp:?}");
    }
    let resp = upgrade_attempt(addr, Some(ip(9)), path, headers);
    assert_error(&resp, 429, "rate_limited");
    let retry: u64 = resp
        .header("retry-after")
        .unwrap_or_else(|| panic!("Retry-After on {resp:?}"))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{resp:?}");
    // Another address has its own bucket.
    assert_eq!(
        upgrade_attempt(addr, Some(ip(10)), path, headers).status,
        101
    );
    let text = metrics(addr);
    assert!(
        metric_value(
            &text,
            "eventhub_handshake_refusals_total{reason=\"rate_limited\"}"
        )
        .is_some_and(|n| n >= 1),
        "{text}"
    );
}
