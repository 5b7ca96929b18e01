//! Docker-shaped container events published to the hub (`POST
//! /v1/events`, `event_type` `container`): they reach `/events/ws`
//! filtered as Docker's API filters, replay between `since` and `until`,
//! and ones with the wrong shape are 400.
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

use common::api::{bearer, hub, post_events, publish, ADMIN_TOKEN};
use common::{read_json, ws_connect_with};

/// A Docker-shaped container event for `POST /v1/events`.
fn container_event(name: &str, action: &str, time: u64, labels: &str) -> String {
    format!(
        r#"{{"event_type":"container","body":{{"id":"{name}0123456789","Type":"container","Action":"{action}","Actor":{{"ID":"{name}0123456789","Attributes":{{"name":"{name}","image":"busybox:latest"{labels}}}}},"time":{time}}}}}"#
    )
}

#[test]
fn published_container_events_reach_events_ws_filtered_and_replay_between_since_and_until() {
    let server = hub();
    let auth = bearer(ADMIN_TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let path = "/events/ws?filters=%7B%22event%22%3A%7B%22stop%22%3Atrue%7D%2C%22label%22%3A%7B%22tier%3Ds4%22%3Atrue%7D%7D";
    let mut live = ws_connect_with(server.addr, None, path, &headers);
    for (name, action, time, labels) in [
        ("web", "start", 1_000, r#","tier":"s4""#),
        ("web", "stop", 1_010, r#","tier":"s4""#),
        ("db", "stop", 1_020, r#","tier":"s5""#),
        ("api", "stop", 1_030, r#","tier":"s4""#),
    ] {
        publish(server.addr, &container_event(name, action, time, labels));
    }
    let first = read_json(&mut live);
    assert_eq!(
        (
            first["Actor"]["Attributes"]["name"].as_str(),
            first["Action"].as_str()
        ),
        (Some("web"), Some("stop"))
    );
    assert_eq!(first["status"], "stop");
    assert_eq!(first["from"], "busybox:latest");
    let second = read_json(&mut live);
    assert_eq!(
        second["Actor"]["Attributes"]["name"], "api",
        "db is tier s5 and web's start is not a stop"
    );

    // since/until are Docker's: Unix seconds, both inclusive; after until
    // the server closes with 1000.
    let mut window = ws_connect_with(
        server.addr,
        None,
        "/events/ws?since=1005&until=1025",
        &headers,
    );
    let names: Vec<String> = (0..2)
        .map(|_| {
            read_json(&mut window)["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["web", "db"]);
    loop {
        match window.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "until reached");
                break;
            }
            Ok(tungstenite::Message::Close(None)) => panic!("close without a code"),
            Ok(tungstenite::Message::Text(t)) => panic!("nothing after until, got {t}"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame: {e}"),
        }
    }

    // until without since is Docker's too: from the start of the buffer
    // (the replay ring) up to until, then the close.
    let mut up_to = ws_connect_with(server.addr, None, "/events/ws?until=1015", &headers);
    let names: Vec<(String, String)> = (0..2)
        .map(|_| {
            let e = read_json(&mut up_to);
            (
                e["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["Action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("web".to_string(), "start".to_string()),
            ("web".to_string(), "stop".to_string())
        ]
    );
    loop {
        match up_to.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => {
                assert_eq!(frame.reason.as_str(), "until reached");
                break;
            }
            Ok(tungstenite::Message::Text(t)) => panic!("nothing after until, got {t}"),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame: {e}"),
        }
    }
}

#[test]
fn container_events_with_the_wrong_shape_are_400() {
    let server = hub();
    for (body, want) in [
        (container_event("web", "die", 1, ""), "Action must be \\\"start\\\" or \\\"stop\\\""),
        (r#"{"event_type":"container","body":{"id":"a","Type":"network","Action":"start","Actor":{"ID":"a"},"time":1}}"#.to_string(), "Type must be"),
        (r#"{"event_type":"container"}"#.to_string(), "container event body"),
    ] {
        let resp = post_events(server.addr, ADMIN_TOKEN, &body);
        assert_eq!(resp.status, 400, "{body}");
        assert!(resp.body.contains(want), "{body}: want {want:?} in {}", resp.body);
    }
}
