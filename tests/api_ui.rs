//! What the web view stands on, seen over real sockets against a real
//! `eventhub serve`: the page and its security headers, one-time tickets
//! for browsers' WebSockets, the `Origin` rule, and `/v1/stats` (the
//! counters of `/metrics` as JSON). The page itself is driven in headless
//! Chromium by `tests/python/test_ui.py`.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

use common::api::{
    bearer, config, config_with, event, publish, subscribe, ADMIN_TOKEN, VIEWER_KEY,
};
use common::{http_get, http_request, ip, metric_value, upgrade_attempt, HttpResponse, Server};

fn post_ticket(server: &Server, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(server.addr, None, "POST", "/v1/tickets", headers, b"")
}

/// A ticket for the admin, from 127.0.0.1.
fn admin_ticket(server: &Server) -> String {
    let resp = post_ticket(server, &[("Authorization", &bearer(ADMIN_TOKEN))]);
    assert_eq!(resp.status, 201, "{resp:?}");
    resp.json()["ticket"].as_str().expect("ticket").to_string()
}

fn upgrade(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    upgrade_attempt(server.addr, None, path, headers)
}

fn assert_refused(resp: &HttpResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{resp:?}");
    assert_eq!(resp.json()["error"], code, "{resp:?}");
}

#[test]
fn the_page_is_served_with_a_strict_content_security_policy() {
    let server = Server::hub(1, &config());
    let page = http_get(server.addr, "/ui");
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page.body.contains("app.js") && page.body.contains("app.css"));
    let js = http_get(server.addr, "/ui/app.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(http_get(server.addr, "/ui/app.css").status, 200);
    let root = http_get(server.addr, "/");
    assert_eq!(root.status, 302, "{root:?}");
    assert_eq!(root.header("location"), Some("/ui"));
    assert_eq!(http_get(server.addr, "/ui/other.js").status, 404);
}

#[test]
fn a_hub_with_the_page_disabled_serves_none_of_it() {
    let server = Server::hub(1, &format!("[ui]\nenabled = false\n{}", config()));
    for path in ["/ui", "/ui/app.js", "/"] {
        assert_refused(&http_get(server.addr, path), 404, "not_found");
    }
}

#[test]
fn a_ticket_opens_one_websocket_and_only_one() {
    let server = Server::hub(1, &config());
    let resp = post_ticket(&server, &[("Authorization", &bearer(ADMIN_TOKEN))]);
    assert_eq!(resp.status, 201, "{resp:?}");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["expires_in_s"], 30);
    assert_eq!(body["principal"]["name"], "admin");
    assert_eq!(body["principal"]["admin"], true);
    let ticket = body["ticket"].as_str().unwrap();
    assert_eq!(ticket.len(), 64);
    let path = format!("/v1/ws/subscribe?event_types=pdfm&ticket={ticket}");
    assert_eq!(upgrade(&server, &path, &[]).status, 101);
    assert_refused(&upgrade(&server, &path, &[]), 401, "invalid_ticket");
    // The Docker-style and publisher sockets take tickets too.
    let path = format!("/events/ws?ticket={}", admin_ticket(&server));
    assert_eq!(upgrade(&server, &path, &[]).status, 101);
    let path = format!("/v1/ws/publish?ticket={}", admin_ticket(&server));
    assert_eq!(upgrade(&server, &path, &[]).status, 101);
}

#[test]
fn a_ticket_carries_its_principals_rights_and_no_more() {
    let server = Server::hub(1, &config());
    let resp = post_ticket(&server, &[("X-Api-Key", VIEWER_KEY)]);
    assert_eq!(resp.status, 201, "{resp:?}");
    let who = &resp.json()["principal"];
    assert_eq!(who["name"], "viewer");
    assert_eq!(who["admin"], false);
    assert_eq!(who["publish"], serde_json::json!([]));
    let subscribe: BTreeSet<&str> = who["subscribe"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(subscribe, BTreeSet::from(["global", "pdfm", "health"]));
    let ticket = resp.json()["ticket"].as_str().unwrap().to_string();
    let path = format!("/v1/ws/subscribe?event_types=orchestrator&ticket={ticket}");
    assert_refused(&upgrade(&server, &path, &[]), 403, "forbidden");
    let resp = post_ticket(&server, &[("X-Api-Key", VIEWER_KEY)]);
    let ticket = resp.json()["ticket"].as_str().unwrap().to_string();
    let path = format!("/v1/ws/publish?ticket={ticket}");
    assert_refused(&upgrade(&server, &path, &[]), 403, "forbidden");
}

#[test]
fn a_ticket_is_refused_from_another_address_and_then_spent() {
    let server = Server::hub(1, &config());
    let ticket = admin_ticket(&server);
    let path = format!("/v1/ws/subscribe?ticket={ticket}");
    let elsewhere = upgrade_attempt(server.addr, Some(ip(2)), &path, &[]);
    assert_refused(&elsewhere, 401, "invalid_ticket");
    assert!(elsewhere.body.contains("another address"), "{elsewhere:?}");
    assert_refused(&upgrade(&server, &path, &[]), 401, "invalid_ticket");
}

#[test]
fn an_expired_ticket_is_refused() {
    let server = Server::hub(1, &format!("[ui]\nticket_ttl_s = 1\n{}", config()));
    let ticket = admin_ticket(&server);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let path = format!("/v1/ws/subscribe?ticket={ticket}");
    assert_refused(&upgrade(&server, &path, &[]), 401, "invalid_ticket");
}

#[test]
fn tickets_open_websockets_only_and_need_a_real_secret() {
    let server = Server::hub(1, &config());
    let bad = post_ticket(
        &server,
        &[("Authorization", "Bearer not-a-known-token-at-all")],
    );
    assert_refused(&bad, 401, "invalid_credentials");
    assert_refused(&post_ticket(&server, &[]), 401, "missing_credentials");
    // A ticket buys no ticket and publishes nothing over HTTP.
    let ticket = admin_ticket(&server);
    let path = format!("/v1/tickets?ticket={ticket}");
    let resp = http_request(server.addr, None, "POST", &path, &[], b"");
    assert_refused(&resp, 401, "missing_credentials");
    let path = format!("/v1/events?ticket={ticket}");
    let body = event("pdfm", "X");
    let resp = http_request(server.addr, None, "POST", &path, &[], body.as_bytes());
    assert_refused(&resp, 401, "missing_credentials");
    // Made-up tickets count as failed authentications of the address.
    let mut last = None;
    for _ in 0..12 {
        last = Some(upgrade(&server, "/v1/ws/subscribe?ticket=00", &[]));
    }
    assert_refused(&last.unwrap(), 429, "auth_rate_limited");
}

#[test]
fn a_browser_origin_other_than_the_hubs_own_is_refused() {
    let server = Server::hub(1, &config());
    let admin = bearer(ADMIN_TOKEN);
    let auth = ("Authorization", admin.as_str());
    let path = "/v1/ws/subscribe?event_types=pdfm";
    // The test client's Host is "localhost": that is the hub's own origin.
    for own in [
        "http://localhost",
        "https://localhost",
        "http://LOCALHOST:80",
    ] {
        let resp = upgrade(&server, path, &[auth, ("Origin", own)]);
        assert_eq!(resp.status, 101, "{own}: {resp:?}");
    }
    assert_eq!(upgrade(&server, path, &[auth]).status, 101, "no Origin");
    for foreign in ["http://evil.example", "http://localhost:8081", "null"] {
        let resp = upgrade(&server, path, &[auth, ("Origin", foreign)]);
        assert_refused(&resp, 403, "origin_not_allowed");
    }
    // Not only sockets: a cross-site POST is refused before its body.
    let body = event("pdfm", "X");
    let resp = http_request(
        server.addr,
        None,
        "POST",
        "/v1/events",
        &[auth, ("Origin", "http://evil.example")],
        body.as_bytes(),
    );
    assert_refused(&resp, 403, "origin_not_allowed");
    let metrics = common::api::metrics(server.addr);
    assert_eq!(
        metric_value(
            &metrics,
            "eventhub_handshake_refusals_total{reason=\"origin\"}"
        ),
        Some(4)
    );
}

#[test]
fn allowed_origins_admit_the_origins_they_name() {
    let listed = format!(
        "[server]\nallowed_origins = [\"https://dash.example.com\"]\n{}",
        config()
    );
    let server = Server::hub(1, &listed);
    let admin = bearer(ADMIN_TOKEN);
    let auth = ("Authorization", admin.as_str());
    let path = "/v1/ws/subscribe";
    let ok = upgrade(
        &server,
        path,
        &[auth, ("Origin", "https://DASH.example.com:443")],
    );
    assert_eq!(ok.status, 101, "{ok:?}");
    let own = upgrade(&server, path, &[auth, ("Origin", "http://localhost")]);
    assert_eq!(own.status, 101, "{own:?}");
    let other = upgrade(
        &server,
        path,
        &[auth, ("Origin", "http://dash.example.com")],
    );
    assert_refused(&other, 403, "origin_not_allowed");
    let any = format!(
        "[server]\nallowed_origins = [\"*\"]\n{}",
        config_with("", "")
    );
    let server = Server::hub(1, &any);
    for origin in ["http://evil.example", "null"] {
        let resp = upgrade(&server, path, &[auth, ("Origin", origin)]);
        assert_eq!(resp.status, 101, "{origin}: {resp:?}");
    }
}

/// Series (name and labels, as rendered) and values of `/metrics` text.
fn series_of_text(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The same from `/v1/stats`, labels rendered back in their order.
fn series_of_json(doc: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (name, samples) in doc["metrics"].as_object().unwrap() {
        for s in samples.as_array().unwrap() {
            let labels: Vec<String> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap()))
                .collect();
            let series = if labels.is_empty() {
                name.clone()
            } else {
                format!("{name}{{{}}}", labels.join(","))
            };
            out.push((series, s["value"].as_f64().unwrap()));
        }
    }
    out
}

#[test]
fn stats_are_the_metrics_as_json() {
    let server = Server::hub(2, &config());
    let (_ws, confirmation) = subscribe(server.addr, "pdfm");
    for i in 0..3 {
        publish(server.addr, &event("pdfm", &format!("E{i}")));
    }
    let auth = bearer(ADMIN_TOKEN);
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/v1/stats",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    let doc = resp.json();
    assert!(doc["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let text = common::api::metrics(server.addr);
    let from_json = series_of_json(&doc);
    let from_text = series_of_text(&text);
    let names = |s: &[(String, f64)]| s.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>();
    assert_eq!(names(&from_json), names(&from_text));
    // Values that did not move between the two reads are equal.
    let value = |s: &[(String, f64)], name: &str| {
        s.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .1
    };
    for steady in [
        "eventhub_events_in_total",
        "eventhub_seq",
        "eventhub_ring_oldest_seq",
        "eventhub_ring_events",
        "eventhub_deliveries_total{core=\"0\"}",
        "eventhub_deliveries_total{core=\"1\"}",
    ] {
        assert_eq!(
            value(&from_json, steady),
            value(&from_text, steady),
            "{steady}"
        );
    }
    assert_eq!(value(&from_json, "eventhub_seq"), 3.0);
    assert_eq!(value(&from_json, "eventhub_ring_events"), 3.0);
    assert_eq!(value(&from_json, "eventhub_ring_oldest_seq"), 1.0);
    let epoch = confirmation["body"]["epoch"].as_str().unwrap();
    let info = &doc["metrics"]["eventhub_info"][0]["labels"];
    assert_eq!(info["epoch"], epoch);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let drivers = doc["metrics"]["eventhub_core_driver"].as_array().unwrap();
    assert_eq!(drivers.len(), 2, "{drivers:?}");
    for d in drivers {
        let driver = d["labels"]["driver"].as_str().unwrap();
        assert!(driver == "io_uring" || driver == "epoll", "{d}");
    }
}

#[test]
fn stats_need_an_admin() {
    let server = Server::hub(1, &config());
    let resp = http_request(
        server.addr,
        None,
        "GET",
        "/v1/stats",
        &[("X-Api-Key", VIEWER_KEY)],
        b"",
    );
    assert_refused(&resp, 403, "forbidden");
    assert_refused(
        &http_get(server.addr, "/v1/stats"),
        401,
        "missing_credentials",
    );
}

/// The start of a new user's way in: `serve` with no principals prints a
/// generated token and the page's URL; the page is there, and the token
/// buys the page its ticket.
#[test]
fn a_hub_without_principals_prints_a_token_and_the_page_that_takes_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventhub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .env_remove("EVENTHUB_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn eventhub");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l.trim_end().ends_with("/ui")) {
        match rx.recv_timeout(common::TIMEOUT) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("no /ui line in {lines:?}: {e}");
            }
        }
    }
    let at = lines
        .iter()
        .position(|l| l.contains("generated an admin token"))
        .expect("a generated token is announced");
    let token = lines[at + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap()
        .to_string();
    let page = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.ends_with("/ui"))
        .unwrap();
    let addr: std::net::SocketAddr = page
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/ui"))
        .unwrap_or_else(|| panic!("the page's URL: {page}"))
        .parse()
        .unwrap();
    assert!(
        lines[0].contains(&format!("http://{addr} ")),
        "{}",
        lines[0]
    );
    let shown = http_get(addr, "/ui");
    let ticket = http_request(
        addr,
        None,
        "POST",
        "/v1/tickets",
        &[("Authorization", &bearer(&token))],
        b"",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(ticket.status, 201, "{ticket:?}");
    assert_eq!(ticket.json()["principal"]["admin"], true);
}
