//! `eventhub events`: the tail of a hub, as `docker events` tails an
//! engine, that survives dropped connections without losing or repeating
//! an event.
//!
//! Two sources: Events Hub channels (`/v1/ws/subscribe`, every channel by
//! default: `event_types=*`), or Docker's container events
//! (`/events/ws`, chosen by `--filter`, with Docker's `filters` JSON and
//! `since`/`until`). Events go to stdout, one per line; what the hub says
//! about the connection (the confirmation, replay gaps, errors) and what
//! this command does (reconnecting, resuming) go to stderr.
//!
//! Resuming, after any close but `until`'s and a refusal that will not
//! change (a 4xx other than 409/429): on `/v1/ws/subscribe` with
//! `since=<last seq>&epoch=<epoch of the confirmation>`, the hub's exact
//! resume (a restart shows as a new epoch, and seqs start again); on
//! `/events/ws`, whose Docker-shaped frames carry no seq, with
//! `since=<newest event time seen>` (Docker's resolution, seconds),
//! skipping the frames of that second already printed; or, when a 1013
//! close named one, with its exact `since_seq=N&epoch=E`. Reconnects back
//! off from 0.5 s to 5 s, or wait out a 409/429's `Retry-After`.
//!
//! Layer: client. Imports the module's [`connect`](super::connect),
//! [`format`](super::format) and error.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::connect::{close, drain, query_value, timed_out, Hub, Ws};
use super::format::{docker_line, hub_line, json_line, now_s, rfc3339_seconds, Format};
use super::ClientError;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What to tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `/v1/ws/subscribe?event_types=...`; empty: every channel (`*`).
    Channels(Vec<String>),
    /// `/events/ws?filters=...`: Docker's `KEY=VALUE` filters (possibly
    /// none).
    Docker(Vec<(String, String)>),
}

/// `eventhub events`' options.
pub struct Events {
    pub hub: Hub,
    pub source: Source,
    /// Events at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Events at or before this time; the command ends after it.
    pub until: Option<i64>,
    /// Resume after this hub seq (`since` of `/v1/ws/subscribe`,
    /// `since_seq` of `/events/ws`).
    pub since_seq: Option<u64>,
    /// The run `since_seq` belongs to.
    pub epoch: Option<String>,
    pub format: Format,
}

/// A `--filter` value: `KEY=VALUE` (a label's value may hold `=` itself:
/// `label=tier=web`).
pub fn parse_filter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "{s:?} is not KEY=VALUE (e.g. event=start, label=tier=web)"
        )),
    }
}

/// Docker's `filters` JSON: `{"key":{"value":true}}`, keys in the order
/// first given.
pub fn filters_json(filters: &[(String, String)]) -> String {
    let mut map = Map::new();
    for (k, v) in filters {
        let entry = map
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(values) = entry {
            values.insert(v.clone(), Value::Bool(true));
        }
    }
    Value::Object(map).to_string()
}

/// Where the next connection resumes.
#[derive(Debug, Default)]
struct Resume {
    /// The last seq seen (channels), or the one a 1013 close named
    /// (`/events/ws`, used once).
    seq: Option<u64>,
    /// The run `seq` belongs to.
    epoch: Option<String>,
    /// `/events/ws`: the newest event time seen (or, before any, the
    /// command's `--since` or the time it first connected) ...
    time: Option<i64>,
    /// ... and the frames of that second already printed.
    at_time: HashSet<String>,
}

/// How a connection ended.
enum End {
    /// Ctrl-C, `until` reached, or stdout closed: the command is done.
    Done,
    /// Closed or lost; the reason, for stderr.
    Dropped(String),
}

/// What a message asked of the connection.
enum Step {
    Go,
    /// An event after `until` came: the command is done.
    Done,
}

struct Tail<'a> {
    opts: &'a Events,
    resume: Resume,
    out: io::StdoutLock<'static>,
    /// A connection was open before (so this one resumes).
    resumed: bool,
}

/// Runs `eventhub events` until Ctrl-C, `until`, or a refusal.
pub fn run(opts: &Events) -> Result<(), ClientError> {
    let stop = super::stop_flag()?;
    let mut tail = Tail {
        opts,
        resume: Resume {
            seq: opts.since_seq,
            epoch: opts.epoch.clone(),
            time: opts.since,
            at_time: HashSet::new(),
        },
        out: io::stdout().lock(),
        resumed: false,
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        if stop.load(Relaxed) || (tail.until_passed() && tail.docker().is_none()) {
            return Ok(());
        }
        let path = tail.path();
        let wait = match opts.hub.open(&path) {
            Ok(ws) => {
                tail.opened(&path);
                backoff = BACKOFF_MIN;
                match tail.follow(ws, &stop)? {
                    End::Done => return Ok(()),
                    End::Dropped(why) => {
                        eprintln!("eventhub events: connection closed: {why}");
                        backoff
                    }
                }
            }
            Err(ClientError::Refused {
                status: status @ (409 | 429 | 500..),
                retry_after_s,
                body,
                ..
            }) => {
                eprintln!("eventhub events: the hub answered {status} {body}");
                retry_after_s.map_or(backoff, |s| Duration::from_secs(s).max(backoff))
            }
            Err(e @ ClientError::Refused { .. }) => return Err(e),
            Err(e) if !tail.resumed => return Err(e),
            Err(e) => {
                eprintln!("eventhub events: {e}");
                backoff
            }
        };
        eprintln!(
            "eventhub events: reconnecting in {:.1} s",
            wait.as_secs_f64()
        );
        if sleep_unless(&stop, wait) {
            return Ok(());
        }
        tail.resumed = true;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Sleeps `d` unless `stop` is set first; whether it was.
fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Relaxed) {
            return true;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    stop.load(Relaxed)
}

impl Tail<'_> {
    fn docker(&self) -> Option<&[(String, String)]> {
        match &self.opts.source {
            Source::Docker(f) => Some(f),
            Source::Channels(_) => None,
        }
    }

    fn until_passed(&self) -> bool {
        self.opts.until.is_some_and(|u| now_s() > u)
    }

    /// The request of the next connection.
    fn path(&self) -> String {
        let r = &self.resume;
        let mut q: Vec<String> = Vec::new();
        let resume_seq = |q: &mut Vec<String>, name: &str, seq: u64| {
            q.push(format!("{name}={seq}"));
            if let Some(e) = &r.epoch {
                q.push(format!("epoch={}", query_value(e)));
            }
        };
        match &self.opts.source {
            Source::Channels(channels) => {
                let list = if channels.is_empty() {
                    "*".to_string()
                } else {
                    channels.join(",")
                };
                q.push(format!("event_types={}", query_value(&list)));
                match r.seq {
                    Some(seq) => resume_seq(&mut q, "since", seq),
                    // A time is not a seq: the whole ring, filtered here by
                    // the events' timestamps.
                    None if self.opts.since.is_some() => q.push("since=0".into()),
                    None => {}
                }
                return format!("/v1/ws/subscribe?{}", q.join("&"));
            }
            Source::Docker(filters) => {
                if !filters.is_empty() {
                    q.push(format!("filters={}", query_value(&filters_json(filters))));
                }
                match (r.seq, r.time) {
                    (Some(seq), _) => resume_seq(&mut q, "since_seq", seq),
                    (None, Some(t)) => q.push(format!("since={t}")),
                    (None, None) => {}
                }
                if let Some(u) = self.opts.until {
                    q.push(format!("until={u}"));
                }
            }
        }
        format!("/events/ws?{}", q.join("&"))
    }

    /// A connection opened: says what it follows, or how it resumed.
    fn opened(&mut self, path: &str) {
        let docker = self.docker().is_some();
        if docker && !self.resumed {
            // Channels say it with the hub's confirmation.
            eprintln!("eventhub events: following {path}");
        }
        if self.resumed {
            match (docker, self.resume.seq, self.resume.time) {
                (_, Some(seq), _) => eprintln!("eventhub events: resumed after seq {seq}"),
                (true, None, Some(t)) => eprintln!(
                    "eventhub events: resumed from time {t} (events of that second already shown are skipped)"
                ),
                _ => eprintln!("eventhub events: reconnected (no resume point yet: live from now)"),
            }
        }
        if docker {
            // A 1013's seq is used once; later resumes go by time, from
            // the first connection's time if no event came.
            self.resume.seq = None;
            self.resume.time.get_or_insert_with(now_s);
        }
    }

    /// Reads the connection until it ends.
    fn follow(&mut self, mut ws: Ws, stop: &AtomicBool) -> Result<End, ClientError> {
        loop {
            if stop.load(Relaxed) {
                close(&mut ws);
                return Ok(End::Done);
            }
            let step = match ws.read() {
                Ok(Message::Text(text)) => self.on_text(text.as_str())?,
                Ok(Message::Close(frame)) => {
                    drain(&mut ws);
                    return Ok(self.on_close(frame));
                }
                Ok(_) => Step::Go,
                Err(e) if timed_out(&e) => {
                    // Quiet, caught up: an `until` of a channel
                    // subscription has passed (`/events/ws` closes itself).
                    if self.docker().is_none() && self.until_passed() {
                        Step::Done
                    } else {
                        Step::Go
                    }
                }
                Err(e) => return Ok(End::Dropped(e.to_string())),
            };
            match step {
                Step::Go => {}
                Step::Done => {
                    close(&mut ws);
                    return Ok(End::Done);
                }
            }
        }
    }

    /// A close from the hub: done for `until`; a 1013's resume point is
    /// kept for `/events/ws`.
    fn on_close(&mut self, frame: Option<CloseFrame>) -> End {
        let Some(frame) = frame else {
            return End::Dropped("closed by the hub".into());
        };
        let (code, reason) = (u16::from(frame.code), frame.reason.as_str());
        if code == 1000 && reason == "until reached" {
            return End::Done;
        }
        // Channels resume after the last seq printed; before any, or on
        // `/events/ws` (whose frames carry none), after the one named.
        let take = self.docker().is_some() || self.resume.seq.is_none();
        if let (Some(seq), Some(epoch), true) = (
            number_after(reason, "since_seq=").or_else(|| number_after(reason, "since=")),
            word_after(reason, "epoch="),
            take,
        ) {
            self.resume.seq = Some(seq);
            self.resume.epoch = Some(epoch.to_string());
        }
        End::Dropped(format!("closed by the hub: {code} {reason}"))
    }

    /// One text message.
    fn on_text(&mut self, raw: &str) -> Result<Step, ClientError> {
        let Ok(v) = serde_json::from_str::<Value>(raw) else {
            eprintln!("eventhub events: not JSON: {}", json_line(raw));
            return Ok(Step::Go);
        };
        let seq = v.get("seq").and_then(Value::as_u64);
        if self.docker().is_some() {
            if v.get("event_type").is_some() && seq.is_none() {
                self.notice(&v);
                return Ok(Step::Go);
            }
            return self.docker_event(raw, &v);
        }
        let Some(seq) = seq else {
            self.notice(&v);
            return Ok(Step::Go);
        };
        if self.resume.seq.is_some_and(|last| seq <= last) {
            return Ok(Step::Go);
        }
        self.resume.seq = Some(seq);
        let t = v["timestamp"].as_str().and_then(rfc3339_seconds);
        if let (Some(t), Some(u)) = (t, self.opts.until) {
            if t > u {
                return Ok(Step::Done);
            }
        }
        if let (Some(t), Some(s)) = (t, self.opts.since) {
            if t < s {
                return Ok(Step::Go);
            }
        }
        self.print(raw, || hub_line(&v))
    }

    /// A frame of `/events/ws`: printed unless the resume repeats it.
    fn docker_event(&mut self, raw: &str, v: &Value) -> Result<Step, ClientError> {
        let time = v["time"]
            .as_i64()
            .or_else(|| v["time"].as_f64().map(|f| f as i64));
        if let Some(time) = time {
            let r = &mut self.resume;
            match r.time {
                Some(t) if time < t => {}
                Some(t) if time == t => {
                    if !r.at_time.insert(raw.to_string()) {
                        return Ok(Step::Go);
                    }
                }
                _ => {
                    r.time = Some(time);
                    r.at_time.clear();
                    r.at_time.insert(raw.to_string());
                }
            }
        }
        self.print(raw, || docker_line(v))
    }

    /// The hub talking to this connection: the confirmation, a replay gap,
    /// an error; to stderr.
    fn notice(&mut self, v: &Value) {
        let body = &v["body"];
        match v["message"].as_str().unwrap_or("") {
            _ if v["event_type"] == "global" && body.get("epoch").is_some() => {
                let epoch = body["epoch"].as_str().unwrap_or("").to_string();
                if let Some(old) = self.resume.epoch.as_deref().filter(|o| **o != epoch) {
                    eprintln!("eventhub events: the hub restarted (epoch {old}, now {epoch}): its seqs start again");
                    self.resume.seq = None;
                }
                self.resume.epoch = Some(epoch.clone());
                // Where this subscription's events start: a drop before
                // the first one resumes from there, missing nothing.
                if self.resume.seq.is_none() {
                    self.resume.seq = body["last_seq"].as_u64();
                }
                if !self.resumed {
                    eprintln!(
                        "eventhub events: subscribed to {} (client id {}, epoch {epoch})",
                        body["subscriptions"],
                        body["client_id"].as_str().unwrap_or("-")
                    );
                }
            }
            "replay-gap" => {
                let (from, to) = (&body["missed_from"], &body["missed_to"]);
                let reason = body["reason"].as_str().unwrap_or("");
                if from.is_null() {
                    eprintln!("eventhub events: replay gap: {reason}");
                } else {
                    eprintln!(
                        "eventhub events: replay gap: events {from}..={to} are gone ({reason})"
                    );
                }
            }
            "error" => eprintln!("eventhub events: the hub says: {body}"),
            _ => eprintln!("eventhub events: {v}"),
        }
    }

    /// One event on stdout, as received or readable; a closed stdout
    /// ends the command.
    fn print(&mut self, raw: &str, text: impl FnOnce() -> String) -> Result<Step, ClientError> {
        let line = match self.opts.format {
            Format::Json => json_line(raw).into_owned(),
            Format::Text => text(),
        };
        match writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            Ok(()) => Ok(Step::Go),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Step::Done),
            Err(e) => Err(ClientError::Stdout(e)),
        }
    }
}

/// The number after `key` in a close reason (`since=12&epoch=...`).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The word (letters and digits) after `key` in a close reason.
fn word_after<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let at = text.find(key)? + key.len();
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_group_values_by_key_as_docker_json() {
        let f = |s: &str| parse_filter(s).unwrap();
        assert_eq!(
            filters_json(&[f("event=stop"), f("label=tier=s4"), f("event=start")]),
            r#"{"event":{"stop":true,"start":true},"label":{"tier=s4":true}}"#
        );
        assert_eq!(filters_json(&[]), "{}");
        assert!(parse_filter("event").is_err());
        assert!(parse_filter("=x").is_err());
        assert_eq!(f("image="), ("image".into(), String::new()));
    }

    #[test]
    fn a_slow_consumers_close_reason_names_its_resume_point() {
        let r =
            "slow consumer; last seq sent 41; reconnect with since_seq=41&epoch=9f1c2e7a40b3d865";
        assert_eq!(number_after(r, "since_seq="), Some(41));
        assert_eq!(word_after(r, "epoch="), Some("9f1c2e7a40b3d865"));
        assert_eq!(number_after("no seq here", "since="), None);
        assert_eq!(word_after("epoch=", "epoch="), None);
    }
}
