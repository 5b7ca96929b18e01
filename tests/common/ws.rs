//! The WebSocket client helpers: `tungstenite` over plain TCP connections
//! (optionally from a given source address or with a small receive
//! buffer), and reading, sending and closing as the tests need.

use std::net::{IpAddr, SocketAddr, TcpStream};

use super::{RawClient, TIMEOUT};

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
