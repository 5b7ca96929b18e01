//! Broadcast server written the way a tokio-tungstenite user would: one
//! `tokio::sync::broadcast` channel of `Utf8Bytes` (a refcounted `Bytes`, so
//! each subscriber's `Message::Text` is a cheap clone of the publisher's
//! payload), one task per connection.
//!
//! Slow subscribers: the broadcast ring holds `CAPACITY` (1024) messages and
//! never blocks the publisher. A subscriber task that falls further behind
//! gets `RecvError::Lagged` and is closed with code 1013 (Try Again Later).
//! A subscriber that stops reading entirely leaves its task parked in
//! `feed`/`flush` on a full socket; it holds no more than its socket buffers
//! and the shared ring, stalls nobody else, and is closed with 1013 (via
//! `Lagged`) as soon as the socket drains again.

use eventhub_peers::{announce, is_publisher, Args, CAPACITY};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{timeout, Duration};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

const NAME: &str = "tokio-tungstenite";

fn main() {
    let args = Args::parse(NAME);
    args.runtime().block_on(serve(args));
}

async fn serve(args: Args) {
    let listener = TcpListener::bind(args.listen).await.expect("bind");
    announce(NAME, listener.local_addr().expect("local addr"));
    let (tx, _) = broadcast::channel::<Utf8Bytes>(CAPACITY);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // EMFILE and friends: back off a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let _ = handle(stream, tx).await;
        });
    }
}

async fn handle(
    stream: TcpStream,
    tx: broadcast::Sender<Utf8Bytes>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut publisher = false;
    // The error type (an HTTP response) is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    let route = |req: &Request, resp: Response| {
        publisher = is_publisher(req.uri().path());
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, route).await?;
    if publisher {
        publish(ws, tx).await
    } else {
        // Subscribe before anything else so no message published after the
        // handshake completes is missed.
        let rx = tx.subscribe();
        drop(tx);
        subscribe(ws, rx).await
    }
}

async fn publish(
    mut ws: WebSocketStream<TcpStream>,
    tx: broadcast::Sender<Utf8Bytes>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    // tungstenite answers pings and close frames itself while we read.
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg? {
            // Err only means "no subscribers right now".
            let _ = tx.send(text);
        }
    }
    Ok(())
}

async fn subscribe(
    mut ws: WebSocketStream<TcpStream>,
    mut rx: broadcast::Receiver<Utf8Bytes>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    loop {
        tokio::select! {
            recv = rx.recv() => match recv {
                Ok(text) => {
                    // Batch: queue everything already waiting, then flush once.
                    ws.feed(Message::Text(text)).await?;
                    loop {
                        match rx.try_recv() {
                            Ok(text) => ws.feed(Message::Text(text)).await?,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Lagged(_)) => return close_lagged(ws).await,
                            Err(TryRecvError::Closed) => return ws.close(None).await,
                        }
                    }
                    ws.flush().await?;
                }
                Err(RecvError::Lagged(_)) => return close_lagged(ws).await,
                Err(RecvError::Closed) => return ws.close(None).await,
            },
            // Subscribers only receive, but reading drives pongs and the
            // close handshake (tungstenite queues the replies and flushes
            // them on the next read); the stream ends after a close.
            msg = ws.next() => match msg {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

/// Closes a subscriber that fell more than `CAPACITY` messages behind with
/// 1013, then waits (briefly) for the client's close reply.
async fn close_lagged(
    mut ws: WebSocketStream<TcpStream>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Again,
        reason: "subscriber lagged".into(),
    })))
    .await?;
    let _ = timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}
