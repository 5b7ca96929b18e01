//! The raw client: a plain `TcpStream` that sends whatever bytes it is told
//! to, even ones no well-behaved client library would, and decodes the
//! server's frames with the crate's own reader.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use eventhub::proto::{masked_frame, Decoded, Event, MessageKind, Opcode, Reader, Role};

use super::{upgrade_request, upgrade_request_with, HttpResponse, SAMPLE_ACCEPT, TIMEOUT};

/// A frame as the server sent it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// Code and reason, if the close frame had a payload.
    Close(Option<(u16, String)>),
    /// A permessage-deflate compressed message, as sent (RSV1).
    Compressed(Vec<u8>),
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
            Event::Compressed(_, p) => ServerFrame::Compressed(p.to_vec()),
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

    /// Connects with a receive buffer of about `bytes` (set before the
    /// connection, so that it also bounds the window the server sees) and
    /// completes the handshake: a client whose kernel absorbs little of
    /// what it does not read.
    pub fn upgrade_with_recv_buffer(addr: SocketAddr, bytes: usize) -> RawClient {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let mut c = RawClient::from_stream(socket.into());
        c.handshake();
        c
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

    /// Connects and upgrades `path` with `headers` added to a valid
    /// request; returns the client (reading compressed frames if the
    /// answer agreed permessage-deflate) and the answer.
    pub fn upgrade_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (RawClient, HttpResponse) {
        let mut c = RawClient::connect(addr);
        c.send_bytes(upgrade_request_with(path, headers).as_bytes());
        let resp = c.read_http_response();
        let agreed = resp
            .header("sec-websocket-extensions")
            .is_some_and(|e| e.starts_with("permessage-deflate"));
        c.reader = Reader::with_deflate(Role::Client, u64::MAX, agreed);
        (c, resp)
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
