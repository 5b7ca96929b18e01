//! Test harness shared by the integration tests: the real `eventhub` binary
//! as a child process, and a raw-socket WebSocket client that can send bytes
//! no well-behaved client library would.
//!
//! Every wait is bounded by a generous timeout ([`TIMEOUT`]); nothing here
//! depends on how fast the machine is beyond that.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use eventhub::proto::{masked_frame, Decoded, Event, MessageKind, Opcode, Reader, Role};

/// The bound on every wait: server start, reads, process exit.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A well-formed `Sec-WebSocket-Key` (the RFC 6455 sample).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that goes with [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// `127.0.0.last`, a source address of its own for `SO_REUSEPORT` hashing
/// and per-IP rules.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `eventhub` process; killed (SIGKILL) on drop if still alive.
pub struct Server {
    child: Child,
    /// The address it listens on, as printed on its stdout.
    pub addr: SocketAddr,
    /// Everything it wrote to stderr so far (its log).
    log: Arc<Mutex<Vec<u8>>>,
    config: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// `eventhub echo --listen 127.0.0.1:0 --workers N`, with `config` (TOML
    /// text) written to a temporary file and passed as `--config` if given.
    pub fn echo(workers: usize, config: Option<&str>) -> Server {
        let workers = workers.to_string();
        Server::start(
            &["echo", "--listen", "127.0.0.1:0", "--workers", &workers],
            config,
        )
    }

    /// `eventhub serve --listen 127.0.0.1:0 --workers N --config FILE`, with
    /// `config` (TOML text) written to a temporary file.
    pub fn hub(workers: usize, config: &str) -> Server {
        let workers = workers.to_string();
        Server::start(
            &["serve", "--listen", "127.0.0.1:0", "--workers", &workers],
            Some(config),
        )
    }

    /// Starts the binary with `args` (plus `--config FILE` when `config` is
    /// given) and waits for the line on stdout that names its address.
    pub fn start(args: &[&str], config: Option<&str>) -> Server {
        let config_path = config.map(write_temp_config);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventhub"));
        cmd.args(args);
        if let Some(path) = &config_path {
            cmd.arg("--config").arg(path);
        }
        cmd.env_remove("EVENTHUB_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the eventhub binary");

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
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });

        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            config: config_path,
            exit: None,
        };
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => panic!(
                "eventhub exited before announcing its address; stderr:\n{}",
                server.log_text()
            ),
            Err(_) => panic!(
                "eventhub did not announce its address within {TIMEOUT:?}; stderr:\n{}",
                server.log_text()
            ),
        };
        server.addr = parse_listening_line(&line)
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"));
        server
    }

    /// `ws://ADDR/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged to stderr so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn signal_term(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", io::Error::last_os_error());
    }

    /// Waits (up to `timeout`) for the process to exit and returns its
    /// status; panics if it is still running then.
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
            if Instant::now() >= deadline {
                panic!(
                    "eventhub still running {timeout:?} after being asked to stop; stderr:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
        if thread::panicking() {
            eprintln!("--- eventhub stderr ---\n{}", self.log_text());
        }
    }
}

/// `eventhub echo listening on ws://127.0.0.1:PORT (N workers)` or
/// `eventhub listening on http://127.0.0.1:PORT (N workers)` → the address.
fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let rest = line
        .split_once("ws://")
        .or_else(|| line.split_once("http://"))?
        .1;
    let addr = rest.split_whitespace().next()?;
    addr.trim_end_matches('/').parse().ok()
}

fn write_temp_config(text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "eventhub-test-{}-{}.toml",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write the temporary config");
    path
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl HttpResponse {
    /// The body parsed as JSON; panics (showing the response) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {self:?}"))
    }
}

/// Sends `method path` with extra `headers` and `body` (with its
/// `Content-Length`), from `source` if given, and returns the response.
pub fn http_request(
    addr: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http_request(addr, source, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`http_request`], but an error rather than a panic when the server
/// is gone (refuses the connection or closes it before a whole response).
pub fn try_http_request(
    addr: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut c = match source {
        Some(ip) => RawClient::connect_from(ip, addr),
        None => RawClient::try_connect(addr)?,
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413, say) and stop reading before the body
    // is all sent; the response is what matters.
    let _ = c.try_send_bytes(&bytes);
    c.try_read_http_response()
}

/// A WebSocket upgrade request for `path` with extra `headers`, from
/// `source` if given; returns the response (a 101's frames are left
/// unread and the connection dropped).
pub fn upgrade_attempt(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut c = match source {
        Some(ip) => RawClient::connect_from(ip, addr),
        None => RawClient::connect(addr),
    };
    let mut req = upgrade_request(path);
    req.truncate(req.len() - 2);
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    c.send_bytes(req.as_bytes());
    c.read_http_response()
}

/// The value of one Prometheus series in `/metrics` text, named with its
/// labels exactly as rendered, e.g.
/// `eventhub_connections{core="0",endpoint="subscribe"}`.
pub fn metric_value(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// `GET /metrics` as `admin_token`, asserting the 200; the Prometheus text.
pub fn metrics(addr: SocketAddr, admin_token: &str) -> String {
    let auth = format!("Bearer {admin_token}");
    let resp = http_request(
        addr,
        None,
        "GET",
        "/metrics",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 200, "GET /metrics: {resp:?}");
    resp.body
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

/// Subscribers on one core:
/// `eventhub_connections{core="i",endpoint="subscribe"}`.
pub fn subscribers_on(metrics: &str, core: usize) -> u64 {
    metric_value(
        metrics,
        &format!("eventhub_connections{{core=\"{core}\",endpoint=\"subscribe\"}}"),
    )
    .unwrap_or_else(|| panic!("no subscribe connection gauge for core {core} in:\n{metrics}"))
}

/// `[{"id":..,"seq":N},..]` (a publish response's `events`) → the seqs.
pub fn seqs_of(events: &serde_json::Value) -> Vec<u64> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of {{id, seq}}: {events}"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {e}")))
        .collect()
}

/// A valid upgrade request for `path`.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Sends a plain `GET path` and returns the response.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut c = RawClient::connect(addr);
    c.send_bytes(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_http_response()
}

/// The per-core values of a Prometheus counter in `/metrics` text:
/// `(core label, value)`.
pub fn metric_per_core(metrics: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}{{core=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (core, value) = rest.split_once("\"}")?;
            Some((core.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------

/// A frame as the server sent it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Code and reason, if the close frame had a payload.
    Close(Option<(u16, String)>),
}

impl ServerFrame {
    fn from_event(event: Event<'_>) -> ServerFrame {
        match event {
            Event::Message(MessageKind::Text, p) => {
                ServerFrame::Text(String::from_utf8(p.to_vec()).expect("checked by the reader"))
            }
            Event::Message(MessageKind::Binary, p) => ServerFrame::Binary(p.to_vec()),
            Event::Ping(p) => ServerFrame::Ping(p.to_vec()),
            Event::Pong(p) => ServerFrame::Pong(p.to_vec()),
            Event::Close(c) => ServerFrame::Close(c.map(|(code, r)| (code.0, r.to_string()))),
        }
    }
}

/// A client on a plain `TcpStream` that sends whatever bytes it is told to
/// and decodes the server's frames with the crate's own reader.
pub struct RawClient {
    pub stream: TcpStream,
    /// Received bytes not yet decoded.
    buf: Vec<u8>,
    reader: Reader,
    frames_sent: u32,
}

impl RawClient {
    /// A TCP connection, no handshake yet.
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::try_connect(addr).expect("connect to eventhub")
    }

    /// Like [`RawClient::connect`]; an error if the server is not there.
    pub fn try_connect(addr: SocketAddr) -> io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        Ok(RawClient::from_stream(stream))
    }

    /// A TCP connection from a given local address (e.g. 127.0.0.7), so that
    /// `SO_REUSEPORT` hashing sees a different source.
    pub fn connect_from(source: IpAddr, addr: SocketAddr) -> RawClient {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .unwrap_or_else(|e| panic!("bind to {source}: {e}"));
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
        RawClient::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
            reader: Reader::new(Role::Client, u64::MAX),
            frames_sent: 0,
        }
    }

    /// Connects and completes a valid handshake (asserting the 101 and its
    /// `Sec-WebSocket-Accept`).
    pub fn upgrade(addr: SocketAddr) -> RawClient {
        let mut c = RawClient::connect(addr);
        c.handshake();
        c
    }

    /// Like [`RawClient::upgrade`], from a given local address.
    pub fn upgrade_from(source: IpAddr, addr: SocketAddr) -> RawClient {
        let mut c = RawClient::connect_from(source, addr);
        c.handshake();
        c
    }

    fn handshake(&mut self) {
        self.send_bytes(upgrade_request("/").as_bytes());
        let resp = self.read_http_response();
        assert_eq!(resp.status, 101, "upgrade refused: {resp:?}");
        assert_eq!(resp.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
    }

    /// Writes `bytes` as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to eventhub");
    }

    /// Tries to write `bytes`; the server may already have closed.
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A masked frame with a key that changes from frame to frame.
    pub fn masked(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        self.frames_sent = self.frames_sent.wrapping_add(1);
        let key = (0x9e37_79b9u32.wrapping_mul(self.frames_sent)).to_be_bytes();
        masked_frame(fin, opcode, payload, key)
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let f = self.masked(fin, opcode, payload);
        self.send_bytes(&f);
    }

    /// Sends a close frame with `code` and `reason`.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send_frame(true, Opcode::Close, &payload);
    }

    /// Reads the response head (and, unless it is a 101, its
    /// `Content-Length` body). Bytes after a 101 stay buffered as frames.
    pub fn read_http_response(&mut self) -> HttpResponse {
        self.try_read_http_response()
            .unwrap_or_else(|e| panic!("reading the HTTP response: {e}"))
    }

    /// Like [`RawClient::read_http_response`]; an error if the connection
    /// fails or closes before a whole response.
    pub fn try_read_http_response(&mut self) -> io::Result<HttpResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill()? {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a whole response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("UTF-8 head");
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut resp = HttpResponse {
            status,
            headers,
            body: String::new(),
        };
        if status != 101 {
            let len: usize = resp
                .header("content-length")
                .map(|v| v.parse().expect("numeric Content-Length"))
                .unwrap_or(0);
            while self.buf.len() < len {
                if !self.fill()? {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed inside the response body",
                    ));
                }
            }
            resp.body = String::from_utf8(self.buf.drain(..len).collect()).expect("UTF-8 body");
        }
        Ok(resp)
    }

    /// Reads one more chunk into the buffer; `false` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!("nothing from the server within {TIMEOUT:?}"),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next server frame; an error on timeout, end of stream, or a frame
    /// that breaks the protocol.
    pub fn try_read_frame(&mut self) -> io::Result<ServerFrame> {
        loop {
            let (used, frame) = match self.reader.decode(&mut self.buf) {
                Ok(Decoded::NeedMore) => (0, None),
                Ok(Decoded::Consumed(n)) => (n, None),
                Ok(Decoded::Event(n, event)) => (n, Some(ServerFrame::from_event(event))),
                Err(e) => {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("server broke the protocol: {e}"),
                    ))
                }
            };
            if used > 0 {
                self.buf.drain(..used);
            }
            if let Some(frame) = frame {
                return Ok(frame);
            }
            if used == 0 && !self.fill()? {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }

    /// The next server frame; panics on timeout or end of stream.
    pub fn read_frame(&mut self) -> ServerFrame {
        self.try_read_frame()
            .unwrap_or_else(|e| panic!("reading a frame: {e}"))
    }

    /// Asserts that the next frame is a close with `code`; returns its reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        match self.read_frame() {
            ServerFrame::Close(Some((got, reason))) => {
                assert_eq!(got, code, "close code (reason {reason:?})");
                reason
            }
            other => panic!("expected a close frame with {code}, got {other:?}"),
        }
    }

    /// Asserts that the server closes the TCP connection (within
    /// [`TIMEOUT`]) without sending anything more.
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread bytes before end of stream: {:?}",
            self.buf
        );
        match self.fill() {
            Ok(false) => {}
            // A reset also ends the connection.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(true) => panic!("expected end of stream, got bytes {:?}", self.buf),
            Err(e) => panic!("expected end of stream: {e}"),
        }
    }

    /// The usual end after the server started the close: answer its close
    /// frame with the same code, then see the TCP connection closed.
    pub fn finish_close(&mut self, code: u16) {
        // The server may have given up already; the write may then fail.
        let f = self.masked(true, Opcode::Close, &code.to_be_bytes());
        let _ = self.try_send_bytes(&f);
        self.expect_eof();
    }
}

// ---------------------------------------------------------------------------
// tungstenite
// ---------------------------------------------------------------------------

/// A tungstenite client over a plain `TcpStream` with [`TIMEOUT`] on reads
/// and writes.
pub fn ws_connect(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to eventhub");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let (ws, resp) = tungstenite::client(format!("ws://{addr}/"), stream)
        .unwrap_or_else(|e| panic!("tungstenite handshake: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// A TCP connection with [`TIMEOUT`] on reads and writes, from `source`
/// (e.g. 127.0.0.7) if given.
pub fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> TcpStream {
    let stream = match source {
        Some(ip) => RawClient::connect_from(ip, addr).stream,
        None => TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect to eventhub"),
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Like [`tcp_connect`], with a receive buffer (`SO_RCVBUF`) of `rcvbuf`
/// bytes set before connecting.
pub fn tcp_connect_rcvbuf(addr: SocketAddr, source: Option<IpAddr>, rcvbuf: usize) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
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

/// A tungstenite handshake for `path` (e.g. `/v1/ws/subscribe?...`) with
/// extra `headers`, from `source` if given.
pub fn try_ws_connect_with(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<tungstenite::WebSocket<TcpStream>, Box<tungstenite::Error>> {
    try_ws_handshake(addr, tcp_connect(addr, source), path, headers)
}

/// A tungstenite handshake for `path` with extra `headers` over `stream`
/// (already connected to `addr`).
fn try_ws_handshake(
    addr: SocketAddr,
    stream: TcpStream,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<tungstenite::WebSocket<TcpStream>, Box<tungstenite::Error>> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::http::{HeaderName, HeaderValue};
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .map_err(Box::new)?;
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(Box::new(e)),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            panic!("handshake interrupted on a blocking stream")
        }
    }
}

/// Like [`try_ws_connect_with`]; panics unless the upgrade succeeds.
pub fn ws_connect_with(
    addr: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> tungstenite::WebSocket<TcpStream> {
    try_ws_connect_with(addr, source, path, headers)
        .unwrap_or_else(|e| panic!("WebSocket handshake for {path}: {e}"))
}

/// Like [`ws_connect_with`], over a connection with a small receive buffer
/// (see [`tcp_connect_rcvbuf`]).
pub fn ws_connect_rcvbuf(
    addr: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: usize,
    path: &str,
    headers: &[(&str, &str)],
) -> tungstenite::WebSocket<TcpStream> {
    try_ws_handshake(
        addr,
        tcp_connect_rcvbuf(addr, source, rcvbuf),
        path,
        headers,
    )
    .unwrap_or_else(|e| panic!("WebSocket handshake for {path} from {source:?}: {e}"))
}

/// The next text message as JSON, skipping pings and pongs; panics on
/// anything else, on timeout, or on a closed connection.
pub fn read_json(ws: &mut tungstenite::WebSocket<TcpStream>) -> serde_json::Value {
    use tungstenite::Message;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                return serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("message is not JSON ({e}): {:?}", t.as_str()))
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(other) => panic!("expected a JSON text message, got {other:?}"),
            Err(e) => panic!("reading a message: {e}"),
        }
    }
}

/// Sends one text message.
pub fn send_text(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) {
    ws.send(tungstenite::Message::text(text.to_string()))
        .unwrap_or_else(|e| panic!("sending {text:?}: {e}"));
}

/// Starts the closing handshake and reads until the connection is closed.
pub fn ws_close(ws: &mut tungstenite::WebSocket<TcpStream>) {
    let _ = ws.close(None);
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// What a subscriber reads: a text message (as JSON) or a close frame.
#[derive(Debug)]
pub enum Incoming {
    Json(serde_json::Value),
    Close(Option<(u16, String)>),
}

/// The next text message (as JSON) or close frame, skipping pings and
/// pongs; an error when the connection fails.
pub fn read_incoming(
    ws: &mut tungstenite::WebSocket<TcpStream>,
) -> Result<Incoming, Box<tungstenite::Error>> {
    use tungstenite::Message;
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

/// Completes a closing handshake the server started (tungstenite already
/// queued the reply): reads until the connection is gone, bounded.
pub fn drain_after_close(ws: &mut tungstenite::WebSocket<TcpStream>) {
    for _ in 0..1000 {
        if ws.read().is_err() {
            return;
        }
    }
}

/// Reads the confirmation every hub subscriber gets first, asserting its
/// channel and message; returns its `subscriptions`.
pub fn expect_confirmation(ws: &mut tungstenite::WebSocket<TcpStream>) -> Vec<String> {
    let v = read_json(ws);
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
pub fn seq(v: &serde_json::Value) -> u64 {
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected an event with a seq, got {v}"))
}
