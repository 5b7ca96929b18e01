//! Broadcast server written the way a fastwebsockets user would: hyper 1
//! serves the HTTP/1.1 upgrade (`fastwebsockets::upgrade`), a shared registry
//! maps each subscriber to a bounded `tokio::sync::mpsc` sender of `Bytes`,
//! and each subscriber's writer task sends with `write_frame`.
//!
//! A subscriber socket is split (`unstable-split`): a reader task keeps
//! reading so pings and the close handshake are answered (its obligated
//! pong/close frames go to the writer over a control channel), and a writer
//! task owns the write half. Writes go through a `BufWriter` that is flushed
//! whenever the subscriber's queue is momentarily empty, so bursts leave in
//! few syscalls.
//!
//! Slow subscribers: each queue holds `CAPACITY` (1024) messages. The
//! publisher never waits: `try_send` on a full queue drops that subscriber
//! from the registry, and its writer, once it has written what was queued,
//! closes the connection with 1013 (Try Again Later). A subscriber that stops
//! reading entirely parks its own writer on a full socket and nobody else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use eventhub_peers::{announce, is_publisher, Args, CAPACITY};
use fastwebsockets::{
    upgrade, FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError,
};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Duration;

const NAME: &str = "fastwebsockets";

type Ws = fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// Subscriber id → its bounded queue.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    subscribers: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
}

impl Registry {
    fn add(&self, tx: mpsc::Sender<Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscribers.lock().unwrap().insert(id, tx);
        id
    }

    fn remove(&self, id: u64) {
        self.subscribers.lock().unwrap().remove(&id);
    }

    /// Queues `msg` for every subscriber; a full or closed queue is dropped.
    fn broadcast(&self, msg: Bytes) {
        self.subscribers
            .lock()
            .unwrap()
            .retain(|_, tx| tx.try_send(msg.clone()).is_ok());
    }
}

fn main() {
    let args = Args::parse(NAME, false);
    args.runtime().block_on(serve(args));
}

async fn serve(args: Args) {
    let listener = TcpListener::bind(args.listen).await.expect("bind");
    announce(NAME, listener.local_addr().expect("local addr"), false);
    let registry = Arc::new(Registry::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // EMFILE and friends: back off a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| route(req, registry.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn route(
    mut req: Request<Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    if !upgrade::is_upgrade_request(&req) {
        return Ok(status(StatusCode::UPGRADE_REQUIRED));
    }
    let publisher = is_publisher(req.uri().path());
    let (response, fut) = match upgrade::upgrade(&mut req) {
        Ok(ok) => ok,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        let _ = if publisher {
            publish(ws, &registry).await
        } else {
            subscribe(ws, &registry).await
        };
    });
    Ok(response)
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = code;
    resp
}

async fn publish(ws: Ws, registry: &Registry) -> Result<(), WebSocketError> {
    // Unsplit socket: auto-pong and auto-close are written inline by read_frame.
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text => registry.broadcast(Bytes::copy_from_slice(&frame.payload)),
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
}

async fn subscribe(ws: Ws, registry: &Registry) -> Result<(), WebSocketError> {
    let (rd, wr) = ws.split(|io| {
        let (r, w) = tokio::io::split(io);
        (r, BufWriter::new(w))
    });
    let mut rd = FragmentCollectorRead::new(rd);
    let (data_tx, data_rx) = mpsc::channel::<Bytes>(CAPACITY);
    let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel::<Frame<'static>>();
    let id = registry.add(data_tx);
    let writer = tokio::spawn(write_loop(wr, data_rx, ctrl_rx));
    // Read until the client closes or goes away; subscribers send nothing
    // else we care about.
    let result = loop {
        let mut obligated = |frame: Frame<'static>| {
            std::future::ready(ctrl_tx.send(frame).map_err(|_| "writer gone"))
        };
        match rd.read_frame(&mut obligated).await {
            Ok(frame) if frame.opcode == OpCode::Close => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    registry.remove(id);
    drop(ctrl_tx);
    let _ = writer.await;
    result
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: fastwebsockets::WebSocketWrite<BufWriter<W>>,
    mut data: mpsc::Receiver<Bytes>,
    mut ctrl: mpsc::UnboundedReceiver<Frame<'static>>,
) -> Result<(), WebSocketError> {
    loop {
        tokio::select! {
            biased;
            frame = ctrl.recv() => match frame {
                // Pong, or the reply to the client's close (then we are done).
                Some(frame) => {
                    let close = frame.opcode == OpCode::Close;
                    wr.write_frame(frame).await?;
                    wr.flush().await?;
                    if close {
                        return Ok(());
                    }
                }
                // Reader finished (client gone or closed).
                None => return Ok(()),
            },
            msg = data.recv() => match msg {
                Some(msg) => {
                    wr.write_frame(Frame::text(Payload::Borrowed(&msg))).await?;
                    while let Ok(msg) = data.try_recv() {
                        wr.write_frame(Frame::text(Payload::Borrowed(&msg))).await?;
                    }
                    wr.flush().await?;
                }
                // Dropped from the registry: the queue was full.
                None => {
                    wr.write_frame(Frame::close(1013, b"subscriber lagged")).await?;
                    wr.flush().await?;
                    // Wait for the reader to see the client's close reply (or
                    // the socket end); nothing more is written after a close.
                    while ctrl.recv().await.is_some() {}
                    return Ok(());
                }
            },
        }
    }
}
