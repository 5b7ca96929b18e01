//! wss end to end: the hub serving TLS itself, tested with a rustls client
//! (the library's client side, not the server code under test), OpenSSL's
//! `s_client`, and raw sockets for what no client library sends. The test
//! PKI is made here with rcgen (`common::tls`). Python `websockets` and
//! wscat over wss are in `tests/python/test_tls.py`; the Autobahn
//! fuzzingclient over wss is in `scripts/test.sh`.
//!
//! Every wait is bounded by the harness's generous timeout; no test
//! asserts on timing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::api::{bearer, config, event, ADMIN_TOKEN};
use common::tls::{
    https_request, served_certificate, tls_connect, wss_connect, wss_json, Leaf, TestCa, TlsFiles,
    Wss,
};
use common::{metric_value, Server, TIMEOUT};

/// A hub serving wss only (on its one address), with `leaf` and `extra`
/// `[tls]` keys.
fn tls_hub(files: &TlsFiles, leaf: &Leaf, extra: &str) -> Server {
    let text = format!("{}\n[tls]\n{}{extra}", config(), files.pair(leaf));
    let server = Server::hub(1, &text);
    assert!(
        server.tls_addr.is_some(),
        "the hub announces its wss address"
    );
    server
}

fn subscribe(addr: SocketAddr, ca: &TestCa, config: Option<Arc<rustls::ClientConfig>>) -> Wss {
    let auth = bearer(ADMIN_TOKEN);
    let config = config.unwrap_or_else(|| ca.client_config());
    let mut ws = wss_connect(
        addr,
        config,
        "/v1/ws/subscribe?event_types=pdfm",
        &[("Authorization", &auth)],
    );
    let confirmation = wss_json(&mut ws);
    assert!(
        confirmation["body"]["client_id"].is_string(),
        "{confirmation}"
    );
    ws
}

fn post(addr: SocketAddr, ca: &TestCa, body: &str) -> (u16, String) {
    let auth = bearer(ADMIN_TOKEN);
    https_request(
        addr,
        ca.client_config(),
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        body,
    )
}

fn tls_metrics(addr: SocketAddr, ca: &TestCa) -> String {
    let auth = bearer(ADMIN_TOKEN);
    let (status, body) = https_request(
        addr,
        ca.client_config(),
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn failures(metrics: &str, reason: &str) -> u64 {
    let series = format!("eventhub_tls_handshake_failures_total{{reason=\"{reason}\"}}");
    metric_value(metrics, &series).unwrap_or_else(|| panic!("{series} in:\n{metrics}"))
}

#[test]
fn wss_carries_the_subscribe_and_publish_flow_over_tls_1_3_and_1_2() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("flow");
    let server = tls_hub(&files, &ca.server("hub"), "");
    let addr = server.addr;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut ws = subscribe(addr, &ca, Some(ca.client_config_with(Some(version), None)));
        let (status, body) = post(addr, &ca, &event("pdfm", "over-tls"));
        assert_eq!(status, 202, "{body}");
        let got = wss_json(&mut ws);
        assert_eq!(got["message"], "over-tls", "{got}");
        assert_eq!(
            ws.get_ref().conn.protocol_version(),
            Some(version.version),
            "negotiated what the client offered"
        );
        assert_eq!(ws.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    }
    let m = tls_metrics(addr, &ca);
    assert!(
        metric_value(&m, "eventhub_tls_handshakes_total").unwrap() >= 4,
        "{m}"
    );
    let expiry = m
        .lines()
        .find_map(|l| l.strip_prefix("eventhub_tls_certificate_expiry_seconds "))
        .and_then(|v| v.parse::<i64>().ok())
        .expect("the expiry gauge");
    assert!(expiry > 60 * 365 * 86_400, "the 2090 certificate: {expiry}");
}

#[test]
fn large_messages_cross_tls_records_both_ways() {
    // The echo server sends back what it gets: 200 KB spans 13 records.
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("large");
    let text = format!("[tls]\n{}", files.pair(&ca.server("echo")));
    let server = Server::echo(1, Some(&text));
    let mut ws = wss_connect(server.addr, ca.client_config(), "/", &[]);
    for size in [1usize, 16 * 1024 - 10, 16 * 1024 + 10, 200_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(tungstenite::Message::Binary(payload.clone().into()))
            .unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Binary(got) => assert!(got[..] == payload[..], "size {size}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn min_version_1_3_refuses_a_tls_1_2_client_and_counts_it() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("minver");
    let server = tls_hub(&files, &ca.server("hub"), "min_version = \"1.3\"\n");
    let old = ca.client_config_with(Some(&rustls::version::TLS12), None);
    assert!(tls_connect(server.addr, old).is_err(), "TLS 1.2 refused");
    assert!(tls_connect(server.addr, ca.client_config()).is_ok());
    let m = tls_metrics(server.addr, &ca);
    assert_eq!(failures(&m, "incompatible"), 1, "{m}");
}

#[test]
fn plain_http_on_the_tls_port_is_told_tls_is_required() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("plain");
    let server = tls_hub(&files, &ca.server("hub"), "");
    let resp = common::http_get(server.addr, "/healthz");
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.json()["error"], "tls_required");
    let m = tls_metrics(server.addr, &ca);
    assert_eq!(failures(&m, "plain_http"), 1, "{m}");
}

/// Reads until the peer closes; returns what came.
fn read_to_close(mut tcp: TcpStream) -> Vec<u8> {
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("not closed after {:?}: {e}", started.elapsed()),
        }
    }
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_the_hub_serves_on() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("garbage");
    let server = tls_hub(&files, &ca.server("hub"), "");
    for garbage in [
        // A handshake record whose message is nonsense.
        &b"\x16\x03\x01\x00\x08\x01\x00\x00\x04garb"[..],
        // Not a TLS record type at all.
        b"\x00\x01\x02\x03\x04\x05\x06\x07",
        // A record longer than TLS allows.
        b"\x16\x03\x01\xff\xff",
    ] {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.write_all(garbage).unwrap();
        let got = read_to_close(tcp);
        if let Some(&first) = got.first() {
            assert_eq!(first, 0x15, "only an alert record comes back: {got:?}");
        }
    }
    let mut ws = subscribe(server.addr, &ca, None);
    post(server.addr, &ca, &event("pdfm", "still-serving"));
    assert_eq!(wss_json(&mut ws)["message"], "still-serving");
    let m = tls_metrics(server.addr, &ca);
    assert_eq!(failures(&m, "malformed"), 3, "{m}");
}

#[test]
fn a_handshake_that_stalls_is_cut_at_the_handshake_deadline() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("stall");
    let text = format!(
        "{}\n[tls]\n{}",
        common::api::config_with("", "handshake_timeout_ms = 300"),
        files.pair(&ca.server("hub"))
    );
    let server = Server::hub(1, &text);
    // The header of a ClientHello record, and then nothing.
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"\x16\x03\x01\x01\x00").unwrap();
    let got = read_to_close(tcp);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    let m = tls_metrics(server.addr, &ca);
    assert_eq!(failures(&m, "timeout"), 1, "{m}");
}

/// Runs `eventhub serve` with `tls` as its `[tls]` section; returns its
/// exit code and stderr (it must exit by itself).
fn start_up_error(tls: &str) -> (Option<i32>, String) {
    let files = TlsFiles::new("bad-config");
    let path = files.write("hub.toml", &format!("{}\n[tls]\n{tls}", config()));
    let out = Command::new(env!("CARGO_BIN_EXE_eventhub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_files_stop_start_up_with_exit_code_2_naming_the_file_and_the_cause() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("bad");
    let good = ca.server("good");
    let other = ca.server("other");
    let cert = files.write("good.pem", &good.chain_pem);
    let key = files.write("good.key", &good.key_pem);
    let other_key = files.write("other.key", &other.key_pem);
    let expired = ca.expired_server();
    let expired_cert = files.write("expired.pem", &expired.chain_pem);
    let expired_key = files.write("expired.key", &expired.key_pem);
    let garbage = files.write("garbage.pem", "this is not PEM\n");
    let missing = files.dir.join("missing.pem");
    let p = |p: &std::path::Path| p.display().to_string();
    let cases = [
        (p(&missing), p(&key), p(&missing), "No such file"),
        (p(&cert), p(&other_key), p(&other_key), "does not match"),
        (
            p(&expired_cert),
            p(&expired_key),
            p(&expired_cert),
            "expired",
        ),
        (p(&garbage), p(&key), p(&garbage), "no CERTIFICATE"),
        (p(&cert), p(&garbage), p(&garbage), "no private key"),
    ];
    for (cert, key, named, cause) in cases {
        let (code, stderr) = start_up_error(&format!("cert = {cert:?}\nkey = {key:?}\n"));
        assert_eq!(code, Some(2), "{cert} / {key}: {stderr}");
        assert!(
            stderr.contains(&named) && stderr.contains(cause),
            "names {named} and says {cause:?}: {stderr}"
        );
    }
    let (code, stderr) = start_up_error(&format!("cert = {:?}\n", p(&cert)));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("tls.key"), "{stderr}");
}

#[test]
fn ed25519_and_rsa_keys_serve_wss() {
    let ca = TestCa::new("test CA");
    let mut keys = vec![(
        "ed25519",
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    )];
    let rsa = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl (scripts/setup.sh installs it)");
    assert!(rsa.status.success());
    let rsa_pem = String::from_utf8(rsa.stdout).unwrap();
    keys.push(("rsa", rcgen::KeyPair::from_pem(&rsa_pem).unwrap()));
    for (name, key) in keys {
        let files = TlsFiles::new(name);
        let leaf = ca.server_with_key(name, key);
        let server = tls_hub(&files, &leaf, "");
        let mut ws = subscribe(server.addr, &ca, None);
        post(server.addr, &ca, &event("pdfm", name));
        assert_eq!(wss_json(&mut ws)["message"], name);
    }
}

#[test]
fn openssl_s_client_verifies_the_chain_and_gets_http_1_1_by_alpn() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("s_client");
    let server = tls_hub(&files, &ca.server("hub"), "");
    let ca_file = files.write("ca.pem", &ca.cert_pem);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(server.addr.to_string())
        .args([
            "-servername",
            "localhost",
            "-alpn",
            "http/1.1",
            "-ign_eof",
            "-CAfile",
        ])
        .arg(&ca_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
    assert!(text.contains("HTTP/1.1 200"), "{text}");
}

/// Waits until a new handshake presents `want` (bounded).
fn await_served(addr: SocketAddr, ca: &TestCa, want: &Leaf) {
    let deadline = Instant::now() + TIMEOUT;
    while served_certificate(addr, ca.client_config()) != want.der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sighup_serves_a_new_certificate_to_new_clients_and_keeps_every_open_connection() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("reload");
    let (first, second) = (ca.server("first"), ca.server("second"));
    let server = tls_hub(&files, &first, "reload_check_s = 0\n");
    let addr = server.addr;
    assert!(served_certificate(addr, ca.client_config()) == first.der);
    let mut subscribers: Vec<Wss> = (0..20).map(|_| subscribe(addr, &ca, None)).collect();
    // Publishing runs through the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, ca_config) = (stop.clone(), ca.client_config());
        std::thread::spawn(move || {
            let auth = bearer(ADMIN_TOKEN);
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) || sent == 0 {
                let (status, body) = https_request(
                    addr,
                    ca_config.clone(),
                    "POST",
                    "/v1/events",
                    &[("Authorization", &auth)],
                    &event("pdfm", "during-reload"),
                );
                assert_eq!(status, 202, "{body}");
                sent += 1;
            }
            sent
        })
    };
    files.pair(&second);
    server.signal(libc::SIGHUP);
    await_served(addr, &ca, &second);
    stop.store(true, Ordering::Relaxed);
    let sent = publisher.join().unwrap();
    post(addr, &ca, &event("pdfm", "after-reload"));
    for ws in &mut subscribers {
        let mut got = 0;
        loop {
            let msg = wss_json(ws);
            if msg["message"] == "after-reload" {
                break;
            }
            assert_eq!(msg["message"], "during-reload", "{msg}");
            got += 1;
        }
        assert_eq!(got, sent, "every event reached every open connection");
    }
    // A broken pair is refused and the served one stays.
    files.write("cert.pem", "not a certificate\n");
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + TIMEOUT;
    while !server
        .log_text()
        .contains("keeping the current certificate")
    {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(served_certificate(addr, ca.client_config()) == second.der);
    let m = tls_metrics(addr, &ca);
    assert_eq!(
        metric_value(&m, "eventhub_tls_reloads_total{result=\"loaded\"}"),
        Some(1)
    );
    assert_eq!(
        metric_value(&m, "eventhub_tls_reloads_total{result=\"refused\"}"),
        Some(1)
    );
}

#[test]
fn changed_files_are_served_without_a_signal() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("watch");
    let (first, second) = (ca.server("first"), ca.server("second"));
    let server = tls_hub(&files, &first, "reload_check_s = 1\n");
    assert!(served_certificate(server.addr, ca.client_config()) == first.der);
    files.pair(&second);
    await_served(server.addr, &ca, &second);
}

#[test]
fn mutual_tls_admits_the_cas_clients_and_refuses_the_rest() {
    let ca = TestCa::new("test CA");
    let clients = TestCa::new("client CA");
    let stranger = TestCa::new("stranger CA");
    let files = TlsFiles::new("mtls");
    let client_ca = files.write("clients.pem", &clients.cert_pem);
    let extra = format!(
        "client_ca = {:?}\nclient_cert_required = true\n",
        client_ca.display().to_string()
    );
    let server = tls_hub(&files, &ca.server("hub"), &extra);
    let addr = server.addr;
    let healthz = |config| {
        let mut s = match tls_connect(addr, config) {
            Ok(s) => s,
            Err(_) => return None,
        };
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all).into_owned();
        text.starts_with("HTTP/1.1 200").then_some(text)
    };
    let good = clients.client("dashboard");
    assert!(
        healthz(ca.client_config_with(None, Some(&good))).is_some(),
        "the CA's client"
    );
    assert!(healthz(ca.client_config()).is_none(), "no certificate");
    let wrong = stranger.client("intruder");
    assert!(
        healthz(ca.client_config_with(None, Some(&wrong))).is_none(),
        "another CA's"
    );
    // The refusals were counted (read as the admitted client).
    let auth = bearer(ADMIN_TOKEN);
    let (_, m) = https_request(
        addr,
        ca.client_config_with(None, Some(&good)),
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(failures(&m, "client_certificate"), 2, "{m}");
}

#[test]
fn wss_and_plain_ws_are_served_side_by_side() {
    let ca = TestCa::new("test CA");
    let files = TlsFiles::new("both");
    let text = format!(
        "{}\n[tls]\n{}listen = \"127.0.0.1:0\"\n",
        config(),
        files.pair(&ca.server("hub"))
    );
    let server = Server::hub(1, &text);
    let tls_addr = server.tls_addr.expect("a wss address");
    assert_ne!(tls_addr, server.addr);
    let mut secure = subscribe(tls_addr, &ca, None);
    let (mut plain, _) = common::api::subscribe(server.addr, "pdfm");
    common::api::publish(server.addr, &event("pdfm", "both"));
    assert_eq!(wss_json(&mut secure)["message"], "both");
    assert_eq!(common::read_json(&mut plain)["message"], "both");
}

#[test]
fn a_client_certificate_stands_for_the_principal_that_names_it() {
    let ca = TestCa::new("test CA");
    let clients = TestCa::new("client CA");
    let files = TlsFiles::new("cert-principal");
    let client_ca = files.write("clients.pem", &clients.cert_pem);
    let text = format!(
        "{}\n[[principals]]\nname = \"dashboard\"\nclient_cert_cn = \"dash-01\"\nsubscribe = [\"pdfm\"]\nadmin = true\n\n[tls]\n{}client_ca = {:?}\n",
        config(),
        files.pair(&ca.server("hub")),
        client_ca.display().to_string()
    );
    let server = Server::hub(1, &text);
    let addr = server.addr;
    let dash = ca.client_config_with(None, Some(&clients.client("dash-01")));
    let mut ws = wss_connect(addr, dash.clone(), "/v1/ws/subscribe?event_types=pdfm", &[]);
    let confirmation = wss_json(&mut ws);
    assert!(
        confirmation["body"]["client_id"].is_string(),
        "{confirmation}"
    );
    post(addr, &ca, &event("pdfm", "for-dash"));
    assert_eq!(wss_json(&mut ws)["message"], "for-dash");
    let (status, _) = https_request(addr, dash, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "the certificate's principal is an admin");
    let other = ca.client_config_with(None, Some(&clients.client("dash-02")));
    let (status, body) = https_request(addr, other, "GET", "/metrics", &[], "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unknown_client_certificate"), "{body}");
    let (status, body) = https_request(addr, ca.client_config(), "GET", "/metrics", &[], "");
    assert_eq!(status, 401, "no certificate, no token: {body}");
    assert!(body.contains("missing_credentials"), "{body}");
}

#[test]
fn sighup_without_tls_is_logged_and_the_hub_serves_on() {
    // `systemctl reload` sends SIGHUP whatever the config; its default
    // action would end the process.
    let server = common::api::hub();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + TIMEOUT;
    while !server.log_text().contains("SIGHUP: no TLS configured") {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(common::http_get(server.addr, "/healthz").status, 200);
}
