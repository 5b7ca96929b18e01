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

#[test]
fn a_silent_holder_of_the_ips_place_is_probed_and_closed_so_a_retry_gets_in() {
    let server = Server::hub(
        1,
        &config_with(
            "max_connections_per_ip = 1\nconnect_rate_per_ip = 0.0\nconflict_probe_ms = 500",
            "",
        ),
    );
    let addr = server.addr;
    let auth = bearer(ADMIN_TOKEN);
    let headers: &[(&str, &str)] = &[("Authorization", &auth)];
    let path = "/v1/ws/subscribe?event_types=pdfm";
    let is_409 = |e: &tungstenite::Error| matches!(e, tungstenite::Error::Http(resp) if resp.status().as_u16() == 409);

    // A live subscriber on 127.0.0.6, read on a thread of its own, so it
    // answers pings (tungstenite queues the pong; the flush sends it).
    let (mut live, _) = subscribe_from(addr, Some(ip(6)), "pdfm");
    let reader = thread::spawn(move || loop {
        match live.read() {
            Ok(tungstenite::Message::Text(t)) if t.contains("stop-reading") => return live,
            Ok(tungstenite::Message::Ping(_)) => live.flush().expect("the pong"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the live subscriber lost its connection: {e}"),
        }
    });
    // A silent one on 127.0.0.5: subscribed, then never reads or writes
    // again, as a client whose network dropped without a FIN.
    let (_silent, _) = subscribe_from(addr, Some(ip(5)), "pdfm");

    // Its owner reconnects: 409, with the holder probed and Retry-After.
    let resp = upgrade_attempt(addr, Some(ip(5)), path, headers);
    let answer = assert_error(&resp, 409, "conflict");
    assert!(
        answer["message"].as_str().unwrap().contains("probed"),
        "{answer}"
    );
    let retry: u64 = resp
        .header("retry-after")
        .expect("Retry-After on a probed 409")
        .parse()
        .unwrap();
    // A retry after Retry-After gets in: the silent holder was closed.
    let mut retries = 0;
    let mut again = loop {
        thread::sleep(Duration::from_secs(retry));
        match try_ws_connect_with(addr, Some(ip(5)), path, headers) {
            Ok(ws) => break ws,
            Err(e) if is_409(&e) => {
                retries += 1;
                assert!(retries < 5, "still 409 after {retries} retries");
            }
            Err(e) => panic!("reconnecting: {e}"),
        }
    };
    assert_eq!(read_json(&mut again)["event_type"], "global");
    assert_eq!(retries, 0, "the first retry after Retry-After got in");

    // The live one is probed the same way and keeps its place.
    assert_error(
        &upgrade_attempt(addr, Some(ip(6)), path, headers),
        409,
        "conflict",
    );
    thread::sleep(Duration::from_secs(retry));
    assert_error(
        &upgrade_attempt(addr, Some(ip(6)), path, headers),
        409,
        "conflict",
    );
    let text = metrics(addr);
    assert!(
        metric_value(&text, "eventhub_conflict_probes_total").unwrap() >= 3,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "eventhub_conflict_probe_closes_total"),
        Some(1),
        "{text}"
    );
    publish(addr, &event("pdfm", "stop-reading"));
    let mut live = reader.join().expect("the live subscriber was kept");
    ws_close(&mut live);
}
