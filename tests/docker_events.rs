//! `/events/ws` against a real Docker Engine: containers are run and
//! stopped with the `docker` CLI, the hub follows the engine's event stream
//! (`--docker-socket`), and WebSocket clients with each filter form of the
//! monitor-events document must see exactly the expected events, in order.
//!
//! Needs a running dockerd and the `docker` CLI; the image is built here
//! from the static busybox (`docker import`), since no registry can be
//! reached. `scripts/test.sh` installs docker.io and busybox-static and
//! starts dockerd, and sets `EVENTHUB_REQUIRE_DOCKER=1` so that a missing
//! engine fails the run instead of skipping it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use common::{metric_value, metrics, Server};

const TOKEN: &str = "docker-test-token-0123456789";
const IMAGE: &str = "eventhub-test/busybox";
const SOCKET: &str = "/var/run/docker.sock";

/// The engine is shared: docker tests run one at a time.
static ENGINE: Mutex<()> = Mutex::new(());

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when an engine answers; panics if it does not and the run requires
/// one.
fn engine_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("EVENTHUB_REQUIRE_DOCKER").is_some() {
        panic!("EVENTHUB_REQUIRE_DOCKER is set but no Docker Engine answers at {SOCKET}");
    }
    if !ok {
        eprintln!(
            "SKIPPED: no Docker Engine (set EVENTHUB_REQUIRE_DOCKER=1 to make this an error)"
        );
    }
    ok
}

/// The engine, held for this test alone, with the test image; none (the
/// test is skipped) when no engine answers and none is required.
fn engine_with_image() -> Option<std::sync::MutexGuard<'static, ()>> {
    let engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_available() {
        return None;
    }
    ensure_image();
    Some(engine)
}

/// Imports a one-binary busybox image unless it exists.
fn ensure_image() {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return;
    }
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox-static installed (apt-get install busybox-static)");
    let root = std::env::temp_dir().join(format!("eventhub-bbroot-{}", std::process::id()));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "true"] {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = Command::new("docker")
        .args(["import", "-", &format!("{IMAGE}:latest")])
        .stdin(tar.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        tar.wait().unwrap().success(),
        "tar of the image root failed"
    );
    assert!(status.success(), "docker import failed");
    let _ = std::fs::remove_dir_all(root);
}

/// `eventhub serve` following the engine's events (`--docker-socket`);
/// returns once its Docker source is connected.
fn start_hub() -> Server {
    start_hub_with("")
}

/// [`start_hub`] with more config (a `[cluster]` section).
fn start_hub_with(extra: &str) -> Server {
    let config = format!(
        "[hub]\nmax_connections_per_ip = 0\nconnect_rate_per_ip = 0.0\n[[principals]]\nname = \"t\"\ntoken = \"{TOKEN}\"\nadmin = true\npublish = [\"*\"]\n{extra}"
    );
    let hub = Server::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--docker-socket",
            SOCKET,
        ],
        Some(&config),
    );
    wait_for(
        || metric(hub.addr, "eventhub_docker_source_connected") == Some(1),
        "the Docker source to connect",
    );
    hub
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    metric_value(&metrics(addr, TOKEN), name)
}

/// Percent-encodes what a URI may not hold raw (tungstenite insists; the
/// raw form is checked separately with a plain socket).
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b'?'
            | b'&'
            | b'='
            | b'%' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens `path` as a WebSocket.
fn ws(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut req = format!("ws://{addr}{}", encode(path))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (ws, resp) =
        tungstenite::client(req, stream).unwrap_or_else(|e| panic!("upgrade {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// Reads JSON messages until `want` have arrived, then listens a little
/// longer to catch any extra one.
fn collect(ws: &mut WebSocket<TcpStream>, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        let now = Instant::now();
        if now > deadline || quiet_until.is_some_and(|q| now > q) {
            return got;
        }
        match ws.read() {
            Ok(Message::Text(t)) => got.push(serde_json::from_str(&t).unwrap()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
        if got.len() >= want && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
}

fn summary(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let name = e["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            (name, e["Action"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

/// `(container name, action)` pairs, owned, to compare with [`summary`].
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    format!("{prefix}-{n}")
}

#[test]
fn filtered_clients_see_exactly_their_container_starts_and_stops_in_order() {
    let Some(_engine) = engine_with_image() else {
        return;
    };
    let hub = start_hub();
    let (a, b, c) = (unique("eh-a"), unique("eh-b"), unique("eh-c"));
    let filters = [
        ("all", String::new()),
        (
            "container",
            format!(r#"?filters={{"container":{{"{a}":true}}}}"#),
        ),
        (
            "image",
            r#"?filters={"image":{"eventhub-test/busybox":true}}"#.to_string(),
        ),
        ("event", r#"?filters={"event":{"start":true}}"#.to_string()),
        (
            "label_kv",
            r#"?filters={"label":{"sh_hyper_instancetype=s4":true}}"#.to_string(),
        ),
        (
            "label_key",
            "?filters=%7B%22label%22%3A%5B%22tier%22%5D%7D".to_string(),
        ),
        (
            "compound",
            r#"?filters={"event":{"stop":true},"label":{"sh_hyper_instancetype=s4":true}}"#
                .to_string(),
        ),
        (
            "array_form",
            format!(r#"?filters={{"container":["{b}","{c}"],"event":["stop"]}}"#),
        ),
    ];
    let mut clients: Vec<_> = filters
        .iter()
        .map(|(label, q)| (*label, ws(hub.addr, &format!("/events/ws{q}"))))
        .collect();
    let mut hub_side = ws(hub.addr, "/v1/ws/subscribe?event_types=container");
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // a: labelled, exits on its own; b: no labels, tagged image; c: stopped by `docker stop`.
    let exit = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &a,
            "--label",
            "sh_hyper_instancetype=s4",
            "--label",
            "tier=web",
            IMAGE,
            "sh",
            "-c",
            "exit 3",
        ])
        .status()
        .unwrap();
    assert_eq!(
        exit.code(),
        Some(3),
        "the container ran and exited on its own"
    );
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &b,
        &format!("{IMAGE}:latest"),
        "true",
    ]);
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "--name",
        &c,
        "--label",
        "tier=db",
        IMAGE,
        "sleep",
        "60",
    ]);
    docker(&["stop", "-t", "1", &c]);
    docker(&["rm", &c]);

    let all = [
        (&a, "start"),
        (&a, "stop"),
        (&b, "start"),
        (&b, "stop"),
        (&c, "start"),
        (&c, "stop"),
    ];
    let expect = |pick: &dyn Fn(&str, &str) -> bool| -> Vec<(String, String)> {
        let picked: Vec<(&str, &str)> = all
            .iter()
            .map(|(n, act)| (n.as_str(), *act))
            .filter(|(n, act)| pick(n, act))
            .collect();
        pairs(&picked)
    };
    let expected = |label: &str| match label {
        "all" | "image" => expect(&|_, _| true),
        "container" => expect(&|n, _| n == a),
        "event" => expect(&|_, act| act == "start"),
        "label_kv" => expect(&|n, _| n == a),
        "label_key" => expect(&|n, _| n == a || n == c),
        "compound" => expect(&|n, act| n == a && act == "stop"),
        "array_form" => expect(&|n, act| (n == b || n == c) && act == "stop"),
        other => unreachable!("{other}"),
    };
    for (label, client) in &mut clients {
        let want = expected(label);
        let got = collect(client, want.len());
        assert_eq!(summary(&got), want, "filter {label}");
        for e in &got {
            assert_eq!(e["Type"], "container");
            assert_eq!(e["status"], e["Action"]);
            assert!(e["time"].is_i64() && e["timeNano"].is_i64() && e["id"] == e["Actor"]["ID"]);
        }
        if *label == "compound" {
            assert_eq!(
                got[0]["Actor"]["Attributes"]["exitCode"], "3",
                "die's exit code is kept"
            );
        }
    }
    // The same events on the Events Hub side, in the envelope.
    let envelopes = collect(&mut hub_side, 7);
    assert_eq!(
        envelopes[0]["event_type"], "global",
        "the confirmation comes first"
    );
    let bodies: Vec<Value> = envelopes[1..].iter().map(|e| e["body"].clone()).collect();
    assert!(envelopes[1..]
        .iter()
        .all(|e| e["event_type"] == "container" && e["seq"].is_u64()));
    assert_eq!(summary(&bodies), expected("all"));

    // Docker's since replays from the ring; an id prefix matches.
    let id_prefix: String = bodies[0]["id"].as_str().unwrap()[..12].to_string();
    let mut late = ws(
        hub.addr,
        &format!(r#"/events/ws?since={since}&filters={{"container":["{id_prefix}"]}}"#),
    );
    assert_eq!(summary(&collect(&mut late, 2)), expected("container"));
}

#[test]
fn bad_filters_are_refused_with_400_naming_the_problem() {
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_available() {
        return;
    }
    let hub = start_hub();
    let cases = [
        ("%7Bnope", "not valid JSON"),
        (r#"{"colour":["red"]}"#, "unknown filter \\\"colour\\\""),
        (r#"{"image":"ubuntu"}"#, "expected a list"),
        (r#"{"image":[5]}"#, "values must be strings"),
        (
            r#"{"event":{"restart":true}}"#,
            "invalid event \\\"restart\\\"",
        ),
    ];
    for (filters, want) in cases {
        let out = raw_upgrade(hub.addr, &format!("/events/ws?filters={filters}"));
        assert!(out.starts_with("HTTP/1.1 400 "), "{filters}: {out}");
        assert!(
            out.contains("\"error\":\"invalid_filters\""),
            "{filters}: {out}"
        );
        assert!(out.contains(want), "{filters}: want {want:?} in {out}");
    }
    let out = raw_upgrade(hub.addr, "/events/ws?since=yesterday");
    assert!(
        out.starts_with("HTTP/1.1 400 ") && out.contains("Unix timestamp"),
        "{out}"
    );
    // The document's examples, written as they are (not URL-encoded).
    for example in [
        r#"/events/ws?filters={"container":{"test":true}}"#,
        r#"/events/ws?filters={"image":{"ubuntu":true}}"#,
        r#"/events/ws?filters={"event":{"start":true}}"#,
        r#"/events/ws?filters={"label":{"sh_hyper_instancetype=s4":true}}"#,
        r#"/events/ws?filters={"event":{"stop":true},"label":{"sh_hyper_instancetype=s4":true}}"#,
    ] {
        let out = raw_upgrade(hub.addr, example);
        assert!(out.starts_with("HTTP/1.1 101 "), "{example}: {out}");
    }
}

/// Sends an upgrade request for `target` as written; returns what came
/// back within a second.
fn raw_upgrade(addr: SocketAddr, target: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Stops the running dockerd (SIGTERM, as an init system would) and starts
/// a new one; returns once the new one answers.
fn restart_engine() {
    let pid: i32 = std::fs::read_to_string("/var/run/docker.pid")
        .expect("dockerd writes /var/run/docker.pid")
        .trim()
        .parse()
        .unwrap();
    // SAFETY: sending a signal to a process id.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGTERM) },
        0,
        "signal dockerd"
    );
    wait_for(
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the old dockerd to exit",
    );
    let log =
        std::fs::File::create(std::env::temp_dir().join("eventhub-test-dockerd.log")).unwrap();
    // setsid --fork: the daemon outlives this test and is nobody's child.
    let started = Command::new("setsid")
        .args(["--fork", "dockerd"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .expect("start dockerd");
    assert!(started.success(), "setsid --fork dockerd");
    wait_for(
        || {
            Command::new("docker")
                .args(["info"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
        "the new dockerd to answer",
    );
}

#[test]
fn engine_restart_loses_and_doubles_nothing() {
    let Some(_engine) = engine_with_image() else {
        return;
    };
    let hub = start_hub();
    let mut client = ws(hub.addr, "/events/ws");
    let (d, e, f) = (unique("eh-d"), unique("eh-e"), unique("eh-f"));
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "--name",
        &d,
        IMAGE,
        "sleep",
        "300",
    ]);
    // The engine stops d while it shuts down.
    restart_engine();
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &e,
        IMAGE,
        "true",
    ]);
    let _ = Command::new("docker").args(["rm", "-f", &d]).output();
    wait_for(
        || metric(hub.addr, "eventhub_docker_source_connected") == Some(1),
        "the source to reconnect",
    );
    assert!(metric(hub.addr, "eventhub_docker_source_reconnects_total").unwrap() >= 1);
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &f,
        IMAGE,
        "true",
    ]);
    let want = pairs(&[
        (&d, "start"),
        (&d, "stop"),
        (&e, "start"),
        (&e, "stop"),
        (&f, "start"),
        (&f, "stop"),
    ]);
    assert_eq!(summary(&collect(&mut client, want.len())), want);
}

#[test]
fn cluster_nodes_following_one_engine_deliver_each_container_event_once() {
    let Some(_engine) = engine_with_image() else {
        return;
    };
    let nats = common::nats::Nats::start();
    let cluster = format!("[cluster]\nnats_url = \"{}\"\n", nats.url());
    // Both nodes follow the engine and publish each of its events, with
    // the id derived from the engine event: the stream keeps one copy.
    let hubs = [start_hub_with(&cluster), start_hub_with(&cluster)];
    let mut clients: Vec<_> = hubs.iter().map(|h| ws(h.addr, "/events/ws")).collect();
    let name = unique("eh-cl");
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &name,
        IMAGE,
        "true",
    ]);
    let want = pairs(&[(&name, "start"), (&name, "stop")]);
    for client in &mut clients {
        assert_eq!(summary(&collect(client, want.len())), want);
    }
    let dropped: u64 = hubs
        .iter()
        .map(|h| metric(h.addr, "eventhub_cluster_duplicates_total").unwrap())
        .sum();
    assert_eq!(dropped, 2, "each event's second copy was a duplicate");
}

/// Seconds since the epoch, with the fraction.
fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The engine's own `GET /events?since=..&until=..&filters=..`, over its
/// unix socket (HTTP/1.0, so the body is plain and ends at the close):
/// each event as (id, action), `die` mapped to `stop` as the source maps
/// it, only `start` and `stop`.
fn engine_events(since: Option<u64>, until: u64, filters: &str) -> Vec<(String, String)> {
    use std::os::unix::net::UnixStream;
    let mut s = UnixStream::connect(SOCKET).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /events?{}until={until}&filters={} HTTP/1.0\r\nHost: docker\r\n\r\n",
        since.map_or(String::new(), |s| format!("since={s}&")),
        encode_all(filters)
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "engine: {head}\n{body}"
    );
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let e: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let action = match e["Action"].as_str()? {
                "start" => "start",
                "die" => "stop",
                _ => return None,
            };
            Some((e["Actor"]["ID"].as_str()?.to_string(), action.to_string()))
        })
        .collect()
}

fn encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The hub's `/events/ws?since=..&until=..&filters=..`: what it replays,
/// until its close at `until`.
fn hub_events(
    addr: SocketAddr,
    since: Option<u64>,
    until: u64,
    filters: &str,
) -> Vec<(String, String)> {
    let mut ws = ws(
        addr,
        &format!(
            "/events/ws?{}until={until}&filters={}",
            since.map_or(String::new(), |s| format!("since={s}&")),
            encode_all(filters)
        ),
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "{filters}: no close at until");
        match ws.read() {
            Ok(Message::Text(t)) => {
                let e: Value = serde_json::from_str(&t).unwrap();
                got.push((
                    e["id"].as_str().unwrap().to_string(),
                    e["Action"].as_str().unwrap().to_string(),
                ));
            }
            Ok(Message::Close(_)) => return got,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed) => return got,
            Err(e) => panic!("{filters}: read: {e}"),
        }
    }
}

/// The engine's filter for the hub's: the source asks for `start` and
/// `die` only, and the hub's `stop` is the engine's `die`.
fn engine_filter(hub: &str) -> String {
    let mut f: serde_json::Map<String, Value> = serde_json::from_str(hub).unwrap();
    let events: Vec<Value> = match f.get("event") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|e| {
                Value::from(if e == "stop" {
                    "die"
                } else {
                    e.as_str().unwrap()
                })
            })
            .collect(),
        None => vec!["start".into(), "die".into()],
        Some(other) => panic!("write the test's filters as lists: {other}"),
    };
    f.insert("event".into(), Value::Array(events));
    Value::Object(f).to_string()
}

#[test]
fn filters_select_what_the_engine_itself_selects() {
    let Some(_engine) = engine_with_image() else {
        return;
    };
    let hub = start_hub();
    let n = unique("dx");
    let (a, b, c, d) = (
        format!("{n}-a"),
        format!("{n}-b"),
        format!("{n}-c"),
        format!("{n}-d"),
    );
    // Whole seconds, as both take them; the window starts before the first
    // event and ends after the last.
    let since = now_secs() as u64;
    let run = |name: &str, image: &str, labels: &[&str], cmd: &[&str]| -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.push(image);
        args.extend(cmd);
        docker(&args)
    };
    let tagged = format!("{IMAGE}:latest");
    // a: both labels; b: tier only, tagged image; c: the other label only;
    // d: none, stopped by `docker stop`.
    let ida = run(
        &a,
        IMAGE,
        &["tier=web", "sh_hyper_instancetype=s4"],
        &["true"],
    );
    let idb = run(&b, &tagged, &["tier=db"], &["sh", "-c", "exit 3"]);
    let idc = run(&c, IMAGE, &["sh_hyper_instancetype=s4"], &["true"]);
    let idd = run(&d, IMAGE, &[], &["sleep", "60"]);
    for x in [&a, &b, &c] {
        docker(&["wait", x]);
    }
    docker(&["stop", "-t", "1", &d]);
    for x in [&a, &b, &c, &d] {
        docker(&["rm", x]);
    }
    // Let a second pass, so that until is after every event on both sides
    // (the hub compares whole seconds, the engine nanoseconds).
    std::thread::sleep(Duration::from_millis(1100));
    let until = now_secs() as u64;
    let ours = [&ida, &idb, &idc, &idd];
    wait_for(
        || {
            let all = hub_events(hub.addr, Some(since), until, "{}");
            ours.iter()
                .all(|id| all.iter().filter(|(i, _)| i == *id).count() == 2)
        },
        "the hub to have every start and stop",
    );
    // Not compared: a prefix of a name, which the engine matches and the
    // hub (by its contract) does not (README, `/events/ws`).
    let prefix = &idb[..12];
    let cases: Vec<(String, Option<Vec<&String>>)> = vec![
        ("{}".into(), Some(vec![&ida, &idb, &idc, &idd])),
        (format!(r#"{{"container":["{a}"]}}"#), Some(vec![&ida])),
        (format!(r#"{{"container":["{prefix}"]}}"#), Some(vec![&idb])),
        (
            format!(r#"{{"container":["{a}","{prefix}"]}}"#),
            Some(vec![&ida, &idb]),
        ),
        (format!(r#"{{"image":["{IMAGE}"]}}"#), None),
        (format!(r#"{{"image":["{tagged}"]}}"#), None),
        (r#"{"event":["start"]}"#.into(), None),
        (r#"{"event":["stop"]}"#.into(), None),
        (r#"{"label":["tier"]}"#.into(), Some(vec![&ida, &idb])),
        (
            r#"{"label":["sh_hyper_instancetype=s4"]}"#.into(),
            Some(vec![&ida, &idc]),
        ),
        (
            r#"{"label":["tier","sh_hyper_instancetype=s4"]}"#.into(),
            Some(vec![&ida]),
        ),
        (
            r#"{"label":["tier=db","sh_hyper_instancetype"]}"#.into(),
            Some(vec![]),
        ),
        (
            r#"{"type":["container"]}"#.into(),
            Some(vec![&ida, &idb, &idc, &idd]),
        ),
        (r#"{"type":["network"]}"#.into(), Some(vec![])),
        (
            r#"{"type":["container"],"event":["stop"],"label":["tier"]}"#.into(),
            None,
        ),
        (
            format!(r#"{{"container":["{a}","{b}","{c}"],"event":["stop"]}}"#),
            None,
        ),
        (
            format!(r#"{{"image":["{IMAGE}"],"label":["sh_hyper_instancetype=s4"]}}"#),
            None,
        ),
    ];
    let names = [(&ida, &a), (&idb, &b), (&idc, &c), (&idd, &d)];
    let named = |set: &std::collections::BTreeSet<(String, String)>| -> Vec<String> {
        set.iter()
            .map(|(id, act)| {
                let name = names.iter().find(|(i, _)| *i == id).map_or("?", |(_, n)| n);
                format!("{name} {act}")
            })
            .collect()
    };
    let mut differ = Vec::new();
    // Each filter over the window [since, until], and a few with until
    // alone (both replay from the start of their buffer).
    let windows = cases
        .iter()
        .map(|(f, ids)| (Some(since), f, ids.as_ref()))
        .chain(cases.iter().take(1).map(|(f, _)| (None, f, None)))
        .chain(cases.iter().skip(10).take(1).map(|(f, _)| (None, f, None)));
    for (since, filters, expect_ids) in windows {
        let keep = |v: Vec<(String, String)>| -> std::collections::BTreeSet<(String, String)> {
            v.into_iter().filter(|(id, _)| ours.contains(&id)).collect()
        };
        let engine = keep(engine_events(since, until, &engine_filter(filters)));
        let hub_got = keep(hub_events(hub.addr, since, until, filters));
        if engine != hub_got {
            differ.push(format!(
                "{filters} (since {since:?}):\n  engine {:?}\n  hub    {:?}",
                named(&engine),
                named(&hub_got)
            ));
        }
        if since.is_none() {
            // Docker's own rule, checked: until alone replays the buffer.
            assert!(
                !engine.is_empty(),
                "until alone: the engine replays {filters}"
            );
        }
        // And the engine is not vacuously agreeing: where the containers are
        // known, it returns their starts and stops.
        if let Some(ids) = expect_ids {
            let want: std::collections::BTreeSet<(String, String)> = ids
                .iter()
                .flat_map(|id| {
                    [
                        (id.to_string(), "start".into()),
                        (id.to_string(), "stop".into()),
                    ]
                })
                .collect();
            assert_eq!(engine, want, "the engine's own answer to {filters}");
        }
    }
    assert!(
        differ.is_empty(),
        "the hub and the engine differ:\n{}",
        differ.join("\n")
    );
}
