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
//!
//! With `--tls-cert` and `--tls-key` it serves wss instead, the way such a
//! user would add it: tokio-rustls (ring provider, TLS 1.3 and 1.2) around
//! each accepted socket, the same tasks over the TLS stream. That gives
//! eventhub's wss a peer to be set beside.

use std::sync::Arc;

use eventhub_peers::{announce, is_publisher, Args, TlsFiles, CAPACITY};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{timeout, Duration};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

const NAME: &str = "tokio-tungstenite";

fn main() {
    let args = Args::parse(NAME, true);
    let tls = args.tls.as_ref().map(|files| {
        acceptor(files).unwrap_or_else(|e| {
            eprintln!("peer-{NAME}: TLS: {e}");
            std::process::exit(2);
        })
    });
    args.runtime().block_on(serve(args, tls));
}

/// A TLS acceptor for the certificate chain and key in `files`.
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let chain = CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(args: Args, tls: Option<TlsAcceptor>) {
    let listener = TcpListener::bind(args.listen).await.expect("bind");
    announce(
        NAME,
        listener.local_addr().expect("local addr"),
        tls.is_some(),
    );
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    let _ = handle(stream, tx).await;
                }
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        let _ = handle(stream, tx).await;
                    }
                }
            }
        });
    }
}

/// A connection (plain or TLS) from its upgrade on.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
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

async fn publish<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
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

async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
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
async fn close_lagged<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
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
