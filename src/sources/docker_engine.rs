//! Follows a Docker Engine's event stream and publishes container starts
//! and stops on the `container` channel (and so on `/events/ws`).
//!
//! The engine's API is HTTP/1.1 over a unix socket; `GET /events` answers
//! with a chunked body holding one JSON object per line. Only `start` and
//! `die` are asked for: `start` stays `start`, `die` becomes `stop` (its
//! `exitCode` kept), so each run of a container yields exactly one start and
//! one stop however it ended (`docker stop` also emits `kill` and `stop`,
//! exiting on its own only `die`).
//!
//! The HTTP client is hyper's (its chunked decoding refuses a chunk size
//! that overflows, and streams a huge one instead of allocating it), on a
//! current-thread tokio runtime that lives on this source's own thread, one
//! per connection. What can go wrong with the engine is a clean
//! [`SourceError`] and a reconnect, never an abort:
//! - connecting, and the head of every answer, are bounded by
//!   [`CONNECT_TIMEOUT`] and [`RESPONSE_TIMEOUT`];
//! - a stream quiet for [`QUIET_CHECK`] (the engine sends nothing between
//!   events) is checked with `GET /_ping` on a new connection: an engine
//!   that does not answer it in time is given up and reconnected;
//! - a malformed or oversized chunked body is hyper's error;
//! - a line (an event) longer than [`MAX_EVENT_BYTES`] is an error;
//! - a malformed event (not JSON, or fields of the wrong type) is logged
//!   and skipped, alone: the events after it in the same read are kept.
//!
//! When the engine goes away the source retries with exponential backoff
//! (100 ms doubling to 10 s) and asks for `since` a [`DEDUP_WINDOW`] before
//! the newest event it published. The engine can emit events out of
//! timestamp order, so the [`Cursor`] does not drop events older than the
//! newest: it remembers the identity (timeNano, id, action) of what it
//! published within the window and skips only those, so nothing is missed
//! or doubled across an engine restart. The first connection starts at the
//! hub's start time. State is logged and counted in `/metrics`
//! (`eventhub_docker_source_*`).
//!
//! Events enter the hub as every producer's do, through
//! [`crate::hub::publish`], as the hub itself (no principal).
//!
//! Layer: a source beside the API, over the hub: imports the hub's event
//! model, channels and publish service; nothing of the API or runtime.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::hub::channels::CONTAINER;
use crate::hub::docker::event::{Action, ContainerEvent};
use crate::hub::ingest::NewEvent;
use crate::hub::log::LogError;
use crate::hub::publish::{flush, keeping_up, publish, Accepted};
use crate::hub::Shared;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Connecting to the engine's socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From sending a request to the head of its answer.
pub const RESPONSE_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(10)
};
/// After this long without a byte on the event stream the engine is pinged.
pub const QUIET_CHECK: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(30)
};
/// The longest event line accepted (the engine's are well under 4 KiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// How far out of timestamp order an event may come and still be
/// de-duplicated across a reconnect (nanoseconds).
pub const DEDUP_WINDOW: i64 = 5_000_000_000;

/// Why following the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("engine I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("engine HTTP failed: {0}")]
    Http(String),
    #[error("engine answered {0}")]
    Status(String),
    #[error("an event line longer than {MAX_EVENT_BYTES} bytes")]
    EventTooLong,
    #[error("the engine closed the event stream")]
    Closed,
    #[error("publishing to the event log failed: {0}")]
    Log(#[from] LogError),
}

/// An event as the engine sends it.
#[derive(Debug, Deserialize)]
struct EngineEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: EngineActor,
    #[serde(default)]
    time: i64,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Debug, Default, Deserialize)]
struct EngineActor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

/// Maps an engine event to a hub container event (`start`, or `die` as
/// `stop`); anything else is not ours.
fn map_event(ev: EngineEvent) -> Option<ContainerEvent> {
    if ev.kind != "container" || ev.actor.id.is_empty() {
        return None;
    }
    let action = match ev.action.as_str() {
        "start" => Action::Start,
        "die" => Action::Stop,
        _ => return None,
    };
    Some(ContainerEvent {
        id: ev.actor.id,
        action,
        attributes: ev.actor.attributes,
        time: ev.time,
        time_nano: ev.time_nano,
    })
}

/// Where the source is in the engine's stream.
#[derive(Debug)]
struct Cursor {
    /// Never ask for events before this (the hub's start).
    floor: i64,
    /// `timeNano` of the newest event published.
    newest: i64,
    /// Identities (timeNano, id, action) published within two windows of
    /// `newest`.
    seen: HashSet<(i64, String, Action)>,
}

impl Cursor {
    fn new(start_nano: i64) -> Cursor {
        Cursor {
            floor: start_nano,
            newest: start_nano,
            seen: HashSet::new(),
        }
    }

    /// True if `ev` is new (and records it). An event older than the newest
    /// is new unless its identity was published.
    fn admit(&mut self, ev: &ContainerEvent) -> bool {
        let key = (ev.time_nano, ev.id.clone(), ev.action);
        if !self.seen.insert(key) {
            return false;
        }
        if ev.time_nano > self.newest {
            self.newest = ev.time_nano;
            let keep_from = self.newest.saturating_sub(2 * DEDUP_WINDOW);
            if self.seen.len() > 64 {
                self.seen.retain(|(t, _, _)| *t >= keep_from);
            }
        }
        true
    }

    /// Takes back the admission of `batch` (which could not be published)
    /// and the newest time to `newest`, so that asking again from
    /// [`Cursor::since`] brings those events back.
    fn forget(&mut self, batch: &[NewEvent<'_>], newest: i64) {
        for ev in batch.iter().filter_map(|e| e.container.as_ref()) {
            self.seen.remove(&(ev.time_nano, ev.id.clone(), ev.action));
        }
        self.newest = newest;
    }

    /// The engine's `since` parameter (seconds and nanoseconds): a window
    /// before the newest event, so that late, out-of-order ones are asked
    /// for again (and those already published skipped by identity).
    fn since(&self) -> String {
        let at = self
            .newest
            .saturating_sub(DEDUP_WINDOW)
            .max(self.floor)
            .max(0);
        format!("{}.{:09}", at / 1_000_000_000, at % 1_000_000_000)
    }
}

/// Starts the source thread.
pub fn spawn(socket: PathBuf, shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("eventhub-docker".into())
        .spawn(move || run(&socket, &shared))
}

fn run(socket: &Path, shared: &Shared) {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let mut cursor = Cursor::new(start);
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        let err = follow(socket, shared, &mut cursor, &mut backoff);
        shared.stats.docker_connected.store(0, Relaxed);
        failures += 1;
        // Say it once when it starts failing, then every 30th time.
        if failures == 1 || failures % 30 == 0 {
            log::warn!("docker source: {err}; retrying (since={})", cursor.since());
        }
        shared.stats.docker_reconnects.fetch_add(1, Relaxed);
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if matches!(err, SourceError::Closed) {
            failures = 0;
        }
    }
}

/// One connection: request the stream, publish until it ends; on a
/// current-thread runtime of its own, dropped (with its tasks) on return.
fn follow(
    socket: &Path,
    shared: &Shared,
    cursor: &mut Cursor,
    backoff: &mut Duration,
) -> SourceError {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return SourceError::Io(e),
    };
    match rt.block_on(stream_events(socket, shared, cursor, backoff)) {
        Ok(()) => SourceError::Closed,
        Err(e) => e,
    }
}

/// `GET path` on a new connection to the engine, bounded by the timeouts.
async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>, SourceError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(socket))
        .await
        .map_err(|_| SourceError::Timeout("connecting to the engine"))?
        .map_err(|source| SourceError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SourceError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::USER_AGENT, "eventhub")
        .body(Empty::<Bytes>::new())
        .map_err(|e| SourceError::Http(e.to_string()))?;
    tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| SourceError::Timeout("waiting for the engine's answer"))?
        .map_err(|e| SourceError::Http(e.to_string()))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn stream_events(
    socket: &Path,
    shared: &Shared,
    cursor: &mut Cursor,
    backoff: &mut Duration,
) -> Result<(), SourceError> {
    let filters = percent_encode(r#"{"type":["container"],"event":["start","die"]}"#);
    let since = cursor.since();
    let resp = get(socket, &format!("/events?filters={filters}&since={since}")).await?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(SourceError::Status(resp.status().to_string()));
    }
    shared.stats.docker_connected.store(1, Relaxed);
    *backoff = BACKOFF_MIN;
    log::info!(
        "docker source: following {} (since={since})",
        socket.display()
    );
    let mut body = resp.into_body();
    let mut lines = Lines::default();
    loop {
        let frame = match tokio::time::timeout(QUIET_CHECK, body.frame()).await {
            Err(_) => {
                // Quiet: is the engine still there?
                let pong = get(socket, "/_ping").await?;
                if !pong.status().is_success() {
                    return Err(SourceError::Status(format!("{} to /_ping", pong.status())));
                }
                continue;
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(SourceError::Http(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut batch = Vec::new();
        let newest = cursor.newest;
        let fed = lines.feed(&data, |line| collect_events(line, cursor, &mut batch));
        // The cores are behind: wait (the engine's stream waits with us)
        // rather than add to what they have not delivered yet.
        while !batch.is_empty() && !keeping_up(shared) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = publish_batch(shared, &batch).await {
            // Not published: asked for again after the reconnect.
            cursor.forget(&batch, newest);
            return Err(e.into());
        }
        fed?;
    }
}

/// The engine's stream cut into lines (one event each), however the
/// chunks fall.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Adds `data`; calls `each` with every line it completes.
    fn feed(&mut self, mut data: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), SourceError> {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                each(&data[..nl]);
            } else {
                self.partial.extend_from_slice(&data[..nl]);
                each(&self.partial);
                self.partial.clear();
            }
            data = &data[nl + 1..];
        }
        if self.partial.len() + data.len() > MAX_EVENT_BYTES {
            self.partial.clear();
            return Err(SourceError::EventTooLong);
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }
}

/// Adds the new events of one line to `batch`; a malformed event is
/// skipped alone (and whatever follows it on the same line).
fn collect_events(line: &[u8], cursor: &mut Cursor, batch: &mut Vec<NewEvent<'static>>) {
    let mut events = serde_json::Deserializer::from_slice(line).into_iter::<EngineEvent>();
    for item in &mut events {
        match item {
            Ok(ev) => match map_event(ev) {
                Some(ev) if cursor.admit(&ev) => batch.push(NewEvent {
                    channel: CONTAINER,
                    message: ev.action.as_str().to_string(),
                    body: Cow::Owned(ev.to_json()),
                    id: Some(engine_event_id(&ev)),
                    container: Some(ev),
                }),
                _ => {}
            },
            Err(e) => {
                log::warn!("docker source: skipping a malformed event: {e}");
                return;
            }
        }
    }
}

/// The id of the hub event made of engine event `ev`: the SHA-256 of its
/// identity (timeNano, container id, action), so that every hub following
/// one engine gives it the same id, and a cluster's log keeps one copy.
fn engine_event_id(ev: &ContainerEvent) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let mut h = sha2::Sha256::new();
    h.update(ev.time_nano.to_be_bytes());
    h.update(ev.id.as_bytes());
    h.update([0]);
    h.update(ev.action.as_str().as_bytes());
    let mut id = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// Publishes `batch`; in a cluster, waits for the log's acknowledgement.
async fn publish_batch(shared: &Shared, batch: &[NewEvent<'static>]) -> Result<(), LogError> {
    if batch.is_empty() {
        return Ok(());
    }
    match publish(shared, batch)? {
        Accepted::Sequenced(_) => flush(shared),
        Accepted::Sent(pending) => {
            pending.published().await?;
        }
    }
    shared
        .stats
        .docker_events
        .fetch_add(batch.len() as u64, Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(json: &str) -> Option<ContainerEvent> {
        map_event(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn die_becomes_stop_with_its_exit_code_and_start_stays_start() {
        let die = engine(include_str!("../../tests/data/docker-engine-die.json")).unwrap();
        assert_eq!(die.action, Action::Stop);
        assert_eq!(die.attributes["exitCode"], "0");
        assert_eq!(die.time_nano, 1_795_414_565_456_283_332);
        let start = engine(include_str!("../../tests/data/docker-engine-start.json")).unwrap();
        assert_eq!(start.action, Action::Start);
    }

    #[test]
    fn other_actions_and_types_are_ignored() {
        assert!(engine(r#"{"Type":"container","Action":"kill","Actor":{"ID":"a"}}"#).is_none());
        assert!(engine(r#"{"Type":"network","Action":"start","Actor":{"ID":"a"}}"#).is_none());
    }

    fn ev(id: &str, action: Action, nano: i64) -> ContainerEvent {
        ContainerEvent {
            id: id.into(),
            action,
            attributes: BTreeMap::new(),
            time: nano / 1_000_000_000,
            time_nano: nano,
        }
    }

    #[test]
    fn cursor_skips_by_identity_and_keeps_out_of_order_events() {
        let mut c = Cursor::new(0);
        assert!(c.admit(&ev("a", Action::Start, 9_000_000_001)));
        assert!(c.admit(&ev("b", Action::Start, 9_000_000_001)));
        // A window before the newest, so late ones are asked for again.
        assert_eq!(c.since(), "4.000000001");
        // After a reconnect the engine repeats what it sent.
        assert!(!c.admit(&ev("a", Action::Start, 9_000_000_001)));
        assert!(!c.admit(&ev("b", Action::Start, 9_000_000_001)));
        // Older than the newest, but never seen: the engine emitted it out
        // of timestamp order.
        assert!(c.admit(&ev("z", Action::Stop, 8_000_000_000)));
        assert!(!c.admit(&ev("z", Action::Stop, 8_000_000_000)));
        // Same container and action at another time: another event.
        assert!(c.admit(&ev("a", Action::Start, 9_500_000_000)));
        assert!(c.admit(&ev("a", Action::Stop, 10_000_000_000)));
        // The hub's start is a floor for since.
        assert_eq!(Cursor::new(7_000_000_000).since(), "7.000000000");
    }

    #[test]
    fn lines_are_joined_across_reads_and_bounded() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        l.feed(b"{\"a\":1}\n{\"b\"", |x| got.push(x.to_vec()))
            .unwrap();
        l.feed(b":2}\n\n", |x| got.push(x.to_vec())).unwrap();
        assert_eq!(got, [&b"{\"a\":1}"[..], b"{\"b\":2}", b""]);
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            l.feed(&big, |_| {}),
            Err(SourceError::EventTooLong)
        ));
    }

    // A fake engine on a unix socket: each accepted connection gets the
    // next script (bytes to write, then whether to hold the connection
    // open without a word); one that is not scripted is held open silently.

    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::time::Instant;

    use crate::config::Config;
    use crate::hub::auth::Auth;
    use crate::hub::channels::Channels;

    const HEAD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

    fn line(id: &str, action: &str, nano: i64) -> String {
        format!(
            "{{\"Type\":\"container\",\"Action\":\"{action}\",\"Actor\":{{\"ID\":\"{id}\",\"Attributes\":{{\"name\":\"{id}\",\"image\":\"busybox\"}}}},\"time\":{},\"timeNano\":{nano}}}\n",
            nano / 1_000_000_000
        )
    }

    fn chunk(s: &str) -> String {
        format!("{:x}\r\n{s}\r\n", s.len())
    }

    fn fake_engine(scripts: Vec<(String, bool)>) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "eventhub-fake-engine-{}-{}.sock",
            std::process::id(),
            fastrand::u64(..)
        ));
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let mut scripts = scripts.into_iter();
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut b).unwrap_or(0) == 1 {
                    head.push(b[0]);
                }
                match scripts.next() {
                    Some((bytes, hold)) => {
                        let _ = conn.write_all(bytes.as_bytes());
                        if hold {
                            held.push(conn);
                        }
                    }
                    None => held.push(conn),
                }
            }
        });
        path
    }

    fn shared() -> Shared {
        let config = Config::default_config();
        let channels = Channels::new(&config.hub.channels).unwrap();
        let auth = Auth::single_admin("fake-engine-test-token-0123456789", &channels);
        Shared::new(&config, auth, 1).unwrap()
    }

    /// Runs one `follow` against `socket` on a thread; what it returned
    /// (within `limit`, else a panic: it hung) and what it published.
    fn follow_once(socket: PathBuf, limit: Duration) -> (String, Vec<(String, Action)>) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let shared = shared();
            let mut cursor = Cursor::new(0);
            let mut backoff = BACKOFF_MIN;
            let err = follow(&socket, &shared, &mut cursor, &mut backoff);
            let mut got = Vec::new();
            shared.sequencer.read_after(0, usize::MAX, 0, true, |e| {
                if let Some(d) = &e.docker {
                    got.push((d.keys.id.clone(), d.keys.action.unwrap()));
                }
                None
            });
            let _ = tx.send((err.to_string(), got));
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("follow did not return within {limit:?} (or panicked)"))
    }

    #[test]
    fn a_malformed_event_skips_itself_not_the_rest_of_the_read() {
        let events = format!(
            "{}{{\"Type\":\"container\",\"Action\":\"start\",\"time\":\"not a number\"}}\n{{not json at all\n{}",
            line("a", "start", 1),
            line("b", "start", 2)
        );
        let script = format!("{HEAD}{}0\r\n\r\n", chunk(&events));
        let (err, got) = follow_once(fake_engine(vec![(script, false)]), Duration::from_secs(5));
        assert!(err.contains("closed"), "{err}");
        assert_eq!(
            got,
            [
                ("a".to_string(), Action::Start),
                ("b".to_string(), Action::Start)
            ]
        );
    }

    #[test]
    fn an_overflowing_or_absurd_chunk_size_is_a_clean_error() {
        for size in [
            "fffffffffffffffe",
            "fffffffffffffff0",
            "ffffffffffffffffffff",
        ] {
            let script = format!(
                "{HEAD}{}{size}\r\n{}",
                chunk(&line("a", "start", 1)),
                line("b", "die", 2)
            );
            let (err, got) =
                follow_once(fake_engine(vec![(script, false)]), Duration::from_secs(5));
            assert!(
                err.contains("HTTP") || err.contains("longer than"),
                "{size}: {err}"
            );
            // What came before the bad chunk was published (and, of an
            // absurd one that fits 64 bits, what it held before the end).
            assert_eq!(got[0], ("a".to_string(), Action::Start), "{size}");
            if size.len() > 16 {
                assert_eq!(got.len(), 1, "{size}");
            }
        }
    }

    #[test]
    fn an_absurd_chunk_is_not_allocated_and_its_endless_line_is_an_error() {
        // 16 TiB announced; 1 MiB and a bit of it sent without a newline,
        // the connection then held open.
        let junk = "x".repeat(MAX_EVENT_BYTES + 10);
        let script = format!(
            "{HEAD}{}fffffffffff\r\n{}{junk}",
            chunk(&line("a", "start", 1)),
            line("b", "start", 2)
        );
        let (err, got) = follow_once(fake_engine(vec![(script, true)]), Duration::from_secs(5));
        assert!(err.contains("longer than"), "{err}");
        assert_eq!(
            got,
            [
                ("a".to_string(), Action::Start),
                ("b".to_string(), Action::Start)
            ]
        );
    }

    #[test]
    fn an_engine_that_never_answers_times_out() {
        let started = Instant::now();
        let (err, got) = follow_once(fake_engine(vec![]), Duration::from_secs(5));
        assert!(err.contains("timed out"), "{err}");
        assert!(got.is_empty());
        assert!(started.elapsed() >= RESPONSE_TIMEOUT);
    }

    #[test]
    fn a_quiet_stream_whose_engine_stops_answering_is_given_up() {
        // The stream sends one event and goes quiet; the ping is never
        // answered.
        let script = format!("{HEAD}{}", chunk(&line("a", "start", 1)));
        let (err, got) = follow_once(fake_engine(vec![(script, true)]), Duration::from_secs(5));
        assert!(err.contains("timed out"), "{err}");
        assert_eq!(got, [("a".to_string(), Action::Start)]);
    }

    #[test]
    fn a_quiet_stream_of_a_live_engine_is_kept() {
        let script = format!("{HEAD}{}", chunk(&line("a", "start", 1)));
        let pong = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK".to_string();
        let socket = fake_engine(vec![(script, true), (pong.clone(), true), (pong, true)]);
        // Two quiet checks answered, then the third ping hangs.
        let (err, got) = follow_once(socket, Duration::from_secs(5));
        assert!(err.contains("timed out"), "{err}");
        assert_eq!(got, [("a".to_string(), Action::Start)]);
    }
}
