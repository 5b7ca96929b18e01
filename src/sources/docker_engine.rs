//! Follows a Docker Engine's event stream and publishes container starts
//! and stops on the `container` channel (and so on `/events/ws`).
//!
//! The engine's API is HTTP/1.1 over a unix socket; `GET /events` answers
//! with a chunked body holding one JSON object per event. Only `start` and
//! `die` are asked for: `start` stays `start`, `die` becomes `stop` (its
//! `exitCode` kept), so each run of a container yields exactly one start and
//! one stop however it ended (`docker stop` also emits `kill` and `stop`,
//! exiting on its own only `die`).
//!
//! When the engine goes away the source retries with exponential backoff
//! (100 ms doubling to 10 s) and asks for `since=<time of the last event
//! it published>`. The engine's `since` is inclusive, so events at exactly
//! that nanosecond which were already published are skipped by identity:
//! nothing is missed or doubled across an engine restart. The first
//! connection starts at the hub's start time. State is logged and counted
//! in `/metrics` (`eventhub_docker_source_*`).
//!
//! This runs on a plain thread with blocking I/O: one connection, a few
//! events per second at most, no reason to occupy a core's event loop.
//! Events enter the hub as every producer's do, through
//! [`crate::hub::publish`], as the hub itself (no principal).
//!
//! Layer: a source beside the API, over the hub: imports the hub's event
//! model, channels and publish service; nothing of the API or runtime.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::hub::channels::CONTAINER;
use crate::hub::docker::event::{Action, ContainerEvent};
use crate::hub::ingest::NewEvent;
use crate::hub::publish::{flush, publish};
use crate::hub::Shared;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why following the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("engine I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("engine answered {0}")]
    Status(String),
    #[error("malformed chunked body: {0}")]
    Chunked(String),
    #[error("the engine closed the event stream")]
    Closed,
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
    /// `timeNano` of the last event published.
    last_nano: i64,
    /// Identities (id, action) published at exactly `last_nano`.
    at_last: HashSet<(String, Action)>,
}

impl Cursor {
    /// True if `ev` is new (and records it).
    fn admit(&mut self, ev: &ContainerEvent) -> bool {
        let key = (ev.id.clone(), ev.action);
        if ev.time_nano < self.last_nano
            || (ev.time_nano == self.last_nano && self.at_last.contains(&key))
        {
            return false;
        }
        if ev.time_nano > self.last_nano {
            self.last_nano = ev.time_nano;
            self.at_last.clear();
        }
        self.at_last.insert(key);
        true
    }

    /// The engine's `since` parameter: seconds and nanoseconds.
    fn since(&self) -> String {
        format!(
            "{}.{:09}",
            self.last_nano / 1_000_000_000,
            self.last_nano % 1_000_000_000
        )
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
    let mut cursor = Cursor {
        last_nano: start,
        at_last: HashSet::new(),
    };
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

/// One connection: request the stream, publish until it ends.
fn follow(
    socket: &Path,
    shared: &Shared,
    cursor: &mut Cursor,
    backoff: &mut Duration,
) -> SourceError {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(source) => {
            return SourceError::Connect {
                path: socket.to_path_buf(),
                source,
            }
        }
    };
    match stream_events(stream, shared, cursor, backoff, socket) {
        Ok(()) => SourceError::Closed,
        Err(e) => e,
    }
}

fn stream_events(
    mut stream: UnixStream,
    shared: &Shared,
    cursor: &mut Cursor,
    backoff: &mut Duration,
    socket: &Path,
) -> Result<(), SourceError> {
    let filters = r#"{"type":["container"],"event":["start","die"]}"#;
    let query: String = filters
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    write!(
        stream,
        "GET /events?filters={query}&since={} HTTP/1.1\r\nHost: docker\r\nUser-Agent: eventhub\r\n\r\n",
        cursor.since()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Err(SourceError::Status(status.trim().to_string()));
    }
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(SourceError::Closed);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    shared.stats.docker_connected.store(1, Relaxed);
    *backoff = BACKOFF_MIN;
    log::info!(
        "docker source: following {} (since={})",
        socket.display(),
        cursor.since()
    );
    let mut pending = Vec::new();
    loop {
        let got = if chunked {
            read_chunk(&mut reader)?
        } else {
            read_some(&mut reader)?
        };
        let Some(data) = got else {
            return Ok(());
        };
        pending.extend_from_slice(&data);
        let consumed = publish_complete(&pending, shared, cursor);
        pending.drain(..consumed);
    }
}

/// One chunk of a chunked body; `None` at its end.
fn read_chunk(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>, SourceError> {
    let mut size_line = String::new();
    if reader.read_line(&mut size_line)? == 0 {
        return Err(SourceError::Closed);
    }
    let size_hex = size_line.trim().split(';').next().unwrap_or("");
    let size = usize::from_str_radix(size_hex, 16)
        .map_err(|_| SourceError::Chunked(format!("bad chunk size {size_hex:?}")))?;
    if size == 0 {
        return Ok(None);
    }
    let mut data = vec![0u8; size + 2];
    reader.read_exact(&mut data)?;
    if &data[size..] != b"\r\n" {
        return Err(SourceError::Chunked("chunk not followed by CRLF".into()));
    }
    data.truncate(size);
    Ok(Some(data))
}

fn read_some(reader: &mut impl Read) -> Result<Option<Vec<u8>>, SourceError> {
    let mut buf = vec![0u8; 8192];
    let n = reader.read(&mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some(buf))
}

/// Publishes every complete JSON object at the front of `buf`; returns
/// the bytes used.
fn publish_complete(buf: &[u8], shared: &Shared, cursor: &mut Cursor) -> usize {
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    let mut batch = Vec::new();
    while let Some(item) = stream.next() {
        match item {
            Ok(value) => {
                used = stream.byte_offset();
                match serde_json::from_value::<EngineEvent>(value)
                    .ok()
                    .and_then(map_event)
                {
                    Some(ev) if cursor.admit(&ev) => batch.push(NewEvent {
                        channel: CONTAINER,
                        message: ev.action.as_str().to_string(),
                        body: Cow::Owned(ev.to_json()),
                        container: Some(ev),
                    }),
                    _ => {}
                }
            }
            Err(e) if e.is_eof() => break,
            Err(e) => {
                log::warn!("docker source: skipping malformed event: {e}");
                used = buf.len();
                break;
            }
        }
    }
    if !batch.is_empty() {
        publish(shared, &batch);
        flush(shared);
        shared
            .stats
            .docker_events
            .fetch_add(batch.len() as u64, Relaxed);
    }
    used
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

    #[test]
    fn cursor_skips_what_it_has_seen_at_the_inclusive_since() {
        let mut c = Cursor {
            last_nano: 0,
            at_last: HashSet::new(),
        };
        let ev = |id: &str, action, nano| ContainerEvent {
            id: id.into(),
            action,
            attributes: BTreeMap::new(),
            time: nano / 1_000_000_000,
            time_nano: nano,
        };
        assert!(c.admit(&ev("a", Action::Start, 5_000_000_001)));
        assert!(c.admit(&ev("b", Action::Start, 5_000_000_001)));
        assert_eq!(c.since(), "5.000000001");
        // After a reconnect with since=5.000000001 the engine repeats both.
        assert!(!c.admit(&ev("a", Action::Start, 5_000_000_001)));
        assert!(!c.admit(&ev("b", Action::Start, 5_000_000_001)));
        assert!(!c.admit(&ev("z", Action::Stop, 4_000_000_000)));
        assert!(c.admit(&ev("a", Action::Stop, 6_000_000_000)));
    }

    #[test]
    fn chunks_are_read_and_split_json_is_kept_for_later() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        let mut r = &body[..];
        assert_eq!(read_chunk(&mut r).unwrap(), Some(b"hello".to_vec()));
        assert_eq!(read_chunk(&mut r).unwrap(), None);
        let mut bad = &b"zz\r\n"[..];
        assert!(matches!(read_chunk(&mut bad), Err(SourceError::Chunked(_))));
    }
}
