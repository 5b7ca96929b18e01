//! The tungstenite reader: one tokio task per subscriber on a multi-thread
//! runtime (`--threads` workers), reading messages with `StreamExt::next`
//! through tokio-tungstenite with its default configuration, as an
//! ordinary client would: a read per readiness and one more that returns
//! `EAGAIN`, UTF-8 validation, a message allocated each. The server sees
//! the reading pattern most of its clients have, which the epoll reader's
//! one read per burst is not. Every message is stamped when `next`
//! returns it. Over TLS the stream is tokio-rustls's, the one the
//! connection was made with.
//!
//! The bytes it reads are counted by a wrapper around the stream (over
//! TLS, the plaintext: WebSocket bytes, as the epoll reader counts them).
//! tokio-tungstenite 0.30 has no permessage-deflate, so `--deflate` is
//! refused with this reader.
//!
//! Latency goes to one histogram per worker thread (a thread local handed
//! over as the worker stops), like the epoll reader's one per thread: one
//! per task would be some 200 KB for each subscriber.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use super::{Seen, CLOSE_CODE_WAIT};
use crate::accounting::{latency_histogram, Subscriber, SubscriberStats};
use crate::client::{monotonic_ns, Upgraded};
use crate::progress::Progress;
use crate::transport::Stream;

thread_local! {
    /// This worker's latencies.
    static LATENCY: RefCell<Option<Histogram<u64>>> = const { RefCell::new(None) };
}

/// Starts the runtime and a task per subscriber on a thread of their own,
/// which returns what they all saw once `progress` is stopped.
pub fn spawn(
    subs: Vec<(Upgraded, Subscriber)>,
    threads: usize,
    progress: &Progress,
) -> io::Result<JoinHandle<Seen>> {
    // Off the runtime that connected them, onto this one.
    let mut sockets = Vec::with_capacity(subs.len());
    for (mut up, sub) in subs {
        up.stream.detach()?;
        sockets.push((up.stream, up.leftover, sub));
    }
    let handed_over: Arc<Mutex<Vec<Histogram<u64>>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("tungstenite-reader")
        .enable_all()
        .on_thread_stop({
            let handed_over = handed_over.clone();
            move || {
                if let Some(latency) = LATENCY.with(|l| l.borrow_mut().take()) {
                    handed_over.lock().expect("not poisoned").push(latency);
                }
            }
        })
        .build()?;
    let progress = progress.clone();
    std::thread::Builder::new()
        .name("tungstenite-readers".into())
        .spawn(move || {
            let subscribers = runtime.block_on(async {
                let tasks: Vec<_> = sockets
                    .into_iter()
                    .map(|(socket, leftover, sub)| {
                        tokio::spawn(read(socket, leftover, sub, progress.clone()))
                    })
                    .collect();
                let mut stats = Vec::with_capacity(tasks.len());
                for task in tasks {
                    stats.push(task.await.expect("a reader task panicked"));
                }
                stats
            });
            // The workers hand their histograms over as they stop.
            drop(runtime);
            let mut latency_ns = latency_histogram();
            for h in handed_over.lock().expect("not poisoned").iter() {
                latency_ns.add(h).expect("same histogram bounds");
            }
            Seen {
                subscribers,
                latency_ns,
            }
        })
}

/// One subscriber: reads until the run is over (a slow consumer stops
/// after its confirmation, and reads again at the end for its close code).
async fn read(
    mut stream: Stream,
    leftover: Vec<u8>,
    mut sub: Subscriber,
    progress: Progress,
) -> SubscriberStats {
    if stream.attach().is_err() {
        return sub.into_stats();
    }
    let counted = Counted {
        inner: stream,
        bytes: 0,
    };
    let mut ws = WebSocketStream::from_partially_read(counted, leftover, Role::Client, None).await;
    let mut ended = false;
    {
        let stopped = progress.until_stopped();
        tokio::pin!(stopped);
        while sub.reading() && !ended {
            tokio::select! {
                biased;
                () = &mut stopped => break,
                msg = ws.next() => ended = take(&mut sub, msg, &progress),
            }
        }
    }
    if sub.stats().slow && !ended {
        progress.until_stopped().await;
        let _ = tokio::time::timeout(CLOSE_CODE_WAIT, async {
            while !take(&mut sub, ws.next().await, &progress) {}
        })
        .await;
    }
    sub.count_bytes(ws.get_ref().bytes as usize);
    sub.into_stats()
}

/// A stream that counts the bytes read through it.
struct Counted {
    inner: Stream,
    bytes: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.bytes += (buf.filled().len() - before) as u64;
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts what `next` returned; true once nothing more will come.
fn take(sub: &mut Subscriber, msg: Option<Result<Message, Error>>, progress: &Progress) -> bool {
    let now = monotonic_ns();
    let mut count = |payload: &[u8]| {
        LATENCY.with(|l| {
            let mut latency = l.borrow_mut();
            sub.on_message(
                payload,
                now,
                latency.get_or_insert_with(latency_histogram),
                progress,
            );
        });
    };
    match msg {
        Some(Ok(Message::Text(text))) => count(text.as_bytes()),
        Some(Ok(Message::Binary(bytes))) => count(&bytes),
        Some(Ok(Message::Close(frame))) => {
            sub.set_close_code(frame.map_or(1005, |f| f.code.into()));
            return true;
        }
        // Pings are answered by the library.
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
        Some(Err(_)) | None => return true,
    }
    false
}
