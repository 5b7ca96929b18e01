//! The hub API's REST unsubscribe (`POST /v1/ws/unsubscribe`): for a
//! client on either core of a two-core hub, and the requests it refuses.
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

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use common::api::{
    assert_error, bearer, client_id, config, event, hub, is_event, pairs, publish, read_until,
    subscribe, subscribe_from, subscribers_per_core, Ws, ADMIN_TOKEN, PRODUCER_TOKEN,
};
use common::{http_request, ip, read_json, ws_close, HttpResponse, Server, TIMEOUT};

// ---------------------------------------------------------------------------
// REST unsubscribe
// ---------------------------------------------------------------------------

/// `POST /v1/ws/unsubscribe` as `Authorization: Bearer token` with `body`.
fn post_unsubscribe(addr: SocketAddr, token: &str, body: &str) -> HttpResponse {
    http_request(
        addr,
        None,
        "POST",
        "/v1/ws/unsubscribe",
        &[("Authorization", &bearer(token))],
        body.as_bytes(),
    )
}

#[test]
fn rest_unsubscribe_works_for_a_client_on_either_core() {
    let server = Server::hub(2, &config());
    let addr = server.addr;
    // One subscriber per core, found by connecting from new source
    // addresses until each core's gauge has gone up.
    let mut on_core: [Option<(Ws, String)>; 2] = [None, None];
    let mut extra = Vec::new();
    for last in 2..=120u8 {
        if on_core.iter().all(Option::is_some) {
            break;
        }
        let before = subscribers_per_core(addr, 2);
        let (ws, c) = subscribe_from(addr, Some(ip(last)), "pdfm,alerts");
        let after = subscribers_per_core(addr, 2);
        let grew: Vec<usize> = (0..2).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(
            grew.len(),
            1,
            "one core gained the subscriber: {before:?} -> {after:?}"
        );
        let core = grew[0];
        if on_core[core].is_none() {
            on_core[core] = Some((ws, client_id(&c)));
        } else {
            extra.push(ws);
        }
    }
    let [Some(c0), Some(c1)] = on_core else {
        panic!("every subscriber landed on one core");
    };
    for (core, (mut ws, id)) in [c0, c1].into_iter().enumerate() {
        let body = json!({"client_id": id, "event_types": ["pdfm"]}).to_string();
        let resp = post_unsubscribe(addr, ADMIN_TOKEN, &body);
        assert_eq!(resp.status, 200, "core {core}: {resp:?}");
        let answer = resp.json();
        assert_eq!(
            answer["message"],
            "Successfully unsubscribed from event types"
        );
        assert_eq!(
            answer["remaining_subscriptions"],
            json!(["alerts", "global"])
        );
        // The client is told (after whatever earlier events it had queued).
        let seen = read_until(&mut ws, |m| m["message"] == "subscriptions");
        let note = seen.last().unwrap();
        assert_eq!(note["event_type"], "system", "{note}");
        assert_eq!(note["body"]["action"], "unsubscribe", "{note}");
        assert_eq!(
            note["body"]["subscriptions"],
            json!(["alerts", "global"]),
            "{note}"
        );
        // pdfm no longer arrives; alerts and global still do.
        let (p, a, g) = (format!("p{core}"), format!("a{core}"), format!("g{core}"));
        publish(addr, &event("pdfm", &p));
        publish(addr, &event("alerts", &a));
        publish(addr, &event("global", &g));
        let got = pairs(&[read_json(&mut ws), read_json(&mut ws)]);
        assert_eq!(
            got,
            vec![("alerts".to_string(), a), ("global".to_string(), g)],
            "core {core}"
        );
    }
    drop(extra);
}

#[test]
fn rest_unsubscribe_refusals() {
    let server = hub();
    let addr = server.addr;
    let (mut ws, c) = subscribe(addr, "pdfm,alerts");
    let id = client_id(&c);

    let unknown = json!({"client_id": uuid::Uuid::new_v4().to_string(), "event_types": ["pdfm"]});
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &unknown.to_string()),
        404,
        "not_found",
    );

    // An id that names the live subscriber's core and slot (its last six
    // bytes) but not its random part finds nothing either.
    let forged = format!(
        "{}{}",
        if id.starts_with('0') { '1' } else { '0' },
        &id[1..]
    );
    let forged = json!({"client_id": forged, "event_types": ["pdfm"]});
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &forged.to_string()),
        404,
        "not_found",
    );

    let body = json!({"client_id": id, "event_types": ["pdfm"]}).to_string();
    assert_error(
        &post_unsubscribe(addr, PRODUCER_TOKEN, &body),
        403,
        "forbidden",
    );

    let global = json!({"client_id": id, "event_types": ["global"]}).to_string();
    let answer = assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &global),
        400,
        "bad_request",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("global"),
        "{answer}"
    );

    for malformed in [
        "not json".to_string(),
        "{}".to_string(),
        json!({"client_id": id}).to_string(),
        json!({"client_id": id, "event_types": "pdfm"}).to_string(),
        json!({"client_id": id, "event_types": ["pdfm"], "extra": 1}).to_string(),
    ] {
        assert_error(
            &post_unsubscribe(addr, ADMIN_TOKEN, &malformed),
            400,
            "bad_request",
        );
    }
    let not_uuid = json!({"client_id": "not-a-uuid", "event_types": ["pdfm"]}).to_string();
    let answer = assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &not_uuid),
        400,
        "bad_request",
    );
    assert!(
        answer["message"].as_str().unwrap().contains("UUID"),
        "{answer}"
    );
    let nope = json!({"client_id": id, "event_types": ["nope"]}).to_string();
    assert_error(
        &post_unsubscribe(addr, ADMIN_TOKEN, &nope),
        400,
        "unknown_channel",
    );

    // None of these changed the subscription.
    publish(addr, &event("pdfm", "still-subscribed"));
    let got = read_json(&mut ws);
    assert!(is_event(&got, "pdfm", "still-subscribed"), "{got}");

    // Once closed, the client id is unknown.
    ws_close(&mut ws);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let resp = post_unsubscribe(addr, ADMIN_TOKEN, &body);
        if resp.status == 404 {
            break;
        }
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(
            Instant::now() < deadline,
            "client id still known after close"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
