//! The subscribers' reading side, two ways (`--reader`), both counting
//! through [`Subscriber::on_message`]:
//!
//! - [`epoll`]: plain threads, each with an edge-triggered epoll set over
//!   its share of the sockets and eventhub's own decoder; the cheapest
//!   reading there is, so the tool's cost is the smallest part of what it
//!   measures.
//! - [`tungstenite`]: one tokio task per subscriber reading through
//!   tokio-tungstenite, as an ordinary client would; the server's figures
//!   under the reading pattern most of its clients have.

mod epoll;
mod tungstenite;

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::ValueEnum;
use hdrhistogram::Histogram;

use crate::accounting::{Subscriber, SubscriberStats};
use crate::client::Upgraded;
use crate::progress::Progress;

/// How the subscribers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReaderKind {
    /// Threads with epoll sets, eventhub's decoder.
    Epoll,
    /// A tokio task per subscriber on tokio-tungstenite.
    Tungstenite,
}

/// How long slow consumers are read, after the run, to see their close code.
const CLOSE_CODE_WAIT: Duration = Duration::from_secs(2);

/// What a reader saw: each subscriber's counts, and the latency of every
/// delivery to its healthy subscribers.
pub struct Seen {
    pub subscribers: Vec<SubscriberStats>,
    pub latency_ns: Histogram<u64>,
}

/// Starts reading `subs` on `threads` threads; each returns what it saw
/// once `progress` is stopped. `inflate_cache`: the epoll reader inflates
/// the same compressed bytes once per thread (see `epoll::Inflating`).
pub fn spawn(
    kind: ReaderKind,
    subs: Vec<(Upgraded, Subscriber)>,
    threads: usize,
    progress: &Progress,
    inflate_cache: bool,
) -> io::Result<Vec<JoinHandle<Seen>>> {
    let threads = threads.max(1);
    match kind {
        ReaderKind::Epoll => epoll::spawn(subs, threads, progress, inflate_cache),
        ReaderKind::Tungstenite => tungstenite::spawn(subs, threads, progress).map(|h| vec![h]),
    }
}
