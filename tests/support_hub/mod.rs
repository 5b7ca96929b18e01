//! A small, self-contained harness for the hub fan-out tests: the real
//! `eventhub serve` as a child process with a temporary TOML config, plain
//! HTTP over `TcpStream`, and tungstenite subscribers from chosen source
//! addresses (127.0.0.x), optionally with a small `SO_RCVBUF`.
//!
//! Every wait is bounded by [`TIMEOUT`]; nothing here asserts on timing.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::{Message, WebSocket};

/// The bound on every wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub type Ws = WebSocket<TcpStream>;

static NEXT_CONFIG: AtomicU32 = AtomicU32::new(0);

/// `127.0.0.last`.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A running `eventhub serve`; killed on drop if still alive.
pub struct Hub {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<u8>>>,
    config: PathBuf,
    exit: Option<ExitStatus>,
}

impl Hub {
    /// `eventhub serve --listen 127.0.0.1:0 --workers N --config FILE`, with
    /// `config` written to a temporary file; waits for
    /// `eventhub listening on http://ADDR (N workers)`.
    pub fn start(workers: usize, config: &str) -> Hub {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "eventhub-fanout-{}-{}.toml",
            std::process::id(),
            NEXT_CONFIG.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, config).expect("write the temporary config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventhub"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers"])
            .arg(workers.to_string())
            .arg("--config")
            .arg(&path)
            .env_remove("EVENTHUB_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the eventhub binary");

        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });

        let mut hub = Hub {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            config: path,
            exit: None,
        };
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            _ => panic!(
                "eventhub did not announce its address; stderr:\n{}",
                hub.log_text()
            ),
        };
        hub.addr = line
            .strip_prefix("eventhub listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"));
        hub
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Sends SIGTERM to the server process.
    pub fn signal_term(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "eventhub still running {timeout:?} after SIGTERM; stderr:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /metrics` with an admin token; the Prometheus text.
    pub fn metrics(&self, admin_token: &str) -> String {
        let auth = format!("Bearer {admin_token}");
        let resp = http(
            self.addr,
            None,
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            b"",
        )
        .expect("GET /metrics");
        assert_eq!(resp.status, 200, "GET /metrics: {resp:?}");
        resp.body
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        if thread::panicking() {
            eprintln!("--- eventhub stderr ---\n{}", self.log_text());
        }
    }
}

/// A value of one series in Prometheus text, e.g.
/// `eventhub_connections{core="0",endpoint="subscribe"}`.
pub fn metric(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The sum of a per-core counter over every core.
pub fn metric_sum(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            rest.rsplit_once(' ')?.1.trim().parse::<u64>().ok()
        })
        .sum()
}

/// Subscribers per core: `eventhub_connections{core="i",endpoint="subscribe"}`.
pub fn subscribers_on(metrics: &str, core: usize) -> u64 {
    metric(
        metrics,
        &format!("eventhub_connections{{core=\"{core}\",endpoint=\"subscribe\"}}"),
    )
    .unwrap_or_else(|| panic!("no subscribe connection gauge for core {core} in:\n{metrics}"))
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {self:?}"))
    }
}

/// A TCP connection from `source` (if given) with [`TIMEOUT`] on I/O and,
/// if given, a receive buffer of `rcvbuf` bytes set before connecting.
pub fn tcp(addr: SocketAddr, source: Option<IpAddr>, rcvbuf: Option<usize>) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    if let Some(ip) = source {
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .unwrap_or_else(|e| panic!("bind to {ip}: {e}"));
    }
    socket
        .connect_timeout(&addr.into(), TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// One HTTP/1.1 request on a fresh connection, like `curl` would send it;
/// an error rather than a panic when the server is gone.
pub fn http(
    addr: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut stream = match source {
        Some(ip) => tcp(addr, Some(ip), None),
        None => TcpStream::connect_timeout(&addr, TIMEOUT)?,
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed before a response head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, format!("bad head {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed inside the body",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `POST /v1/events` with `json`; asserts the 202 and returns the seqs in
/// the order of the events sent.
pub fn post_events(addr: SocketAddr, token: &str, json: &str) -> Vec<u64> {
    let auth = format!("Bearer {token}");
    let resp = http(
        addr,
        None,
        "POST",
        "/v1/events",
        &[("Authorization", &auth)],
        json.as_bytes(),
    )
    .expect("POST /v1/events");
    assert_eq!(resp.status, 202, "POST /v1/events {json:.200}: {resp:?}");
    seqs_of(&resp.json()["events"])
}

/// `[{"id":..,"seq":N},..]` → the seqs.
pub fn seqs_of(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of {{id, seq}}: {events}"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {e}")))
        .collect()
}

// ---------------------------------------------------------------------------
// WebSocket clients
// ---------------------------------------------------------------------------

/// A tungstenite client for `path` with extra `headers`, from `source`,
/// with an optional small receive buffer.
pub fn ws(
    addr: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: Option<usize>,
    path: &str,
    headers: &[(&str, &str)],
) -> Ws {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("client request");
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let stream = tcp(addr, source, rcvbuf);
    match tungstenite::client(req, stream) {
        Ok((ws, resp)) => {
            assert_eq!(resp.status().as_u16(), 101);
            ws
        }
        Err(e) => panic!("WebSocket handshake for {path} from {source:?}: {e}"),
    }
}

/// What a subscriber reads.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Close(Option<(u16, String)>),
}

/// The next text message (as JSON) or close frame, skipping pings/pongs.
pub fn next(ws: &mut Ws) -> Result<Incoming, Box<tungstenite::Error>> {
    loop {
        match ws.read().map_err(Box::new)? {
            Message::Text(t) => {
                let v = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("message is not JSON ({e}): {:?}", t.as_str()));
                return Ok(Incoming::Json(v));
            }
            Message::Close(frame) => {
                return Ok(Incoming::Close(
                    frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                ))
            }
            Message::Binary(b) => panic!("unexpected binary message {b:?}"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// The next text message as JSON; panics on anything else.
pub fn next_json(ws: &mut Ws) -> Value {
    match next(ws) {
        Ok(Incoming::Json(v)) => v,
        Ok(Incoming::Close(c)) => panic!("expected a message, got close {c:?}"),
        Err(e) => panic!("reading a message: {e}"),
    }
}

/// Reads the confirmation every subscriber gets first; returns its
/// `subscriptions`.
pub fn expect_confirmation(ws: &mut Ws) -> Vec<String> {
    let v = next_json(ws);
    assert_eq!(v["event_type"], "global", "confirmation: {v}");
    assert_eq!(
        v["message"], "WebSocket connection established subscribed to global by default",
        "confirmation: {v}"
    );
    v["body"]["subscriptions"]
        .as_array()
        .unwrap_or_else(|| panic!("no subscriptions in {v}"))
        .iter()
        .map(|s| s.as_str().expect("channel name").to_string())
        .collect()
}

/// The `seq` of an event message; panics (showing it) if it has none.
pub fn seq(v: &Value) -> u64 {
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected an event with a seq, got {v}"))
}

/// Completes a closing handshake the server started (tungstenite already
/// queued the reply): reads until the connection is gone, bounded.
pub fn drain_after_close(ws: &mut Ws) {
    for _ in 0..1000 {
        if ws.read().is_err() {
            return;
        }
    }
}

/// Sends one text message.
pub fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .unwrap_or_else(|e| panic!("sending {text:.200}: {e}"));
}
