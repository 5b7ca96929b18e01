//! `eventhub publish`: events from the arguments or stdin, over the
//! publisher WebSocket `GET /v1/ws/publish?ack=true`.
//!
//! Why the socket and not `POST /v1/events`: one connection for a whole
//! stream of events, and the hub answers each message in order, with its
//! ids and seqs or with the error the hub found (the same socket goes on),
//! so a line of stdin that is refused is named and the rest still go. Up
//! to [`WINDOW`] messages are in flight at once; each accepted event's
//! `SEQ ID` goes to stdout, each refusal, as the hub sent it, to stderr,
//! and any refusal makes the exit status 1.
//!
//! Stdin holds one JSON value per line: an event (the object `POST
//! /v1/events` takes) or an array of them; `--channel` fills in the
//! `event_type` of those without one. (In a cluster the hub acknowledges
//! accepted messages once its stream has, so an error for a later line can
//! come before an earlier line's ack; the line numbers of refusals then
//! follow the order of the answers.)
//!
//! Layer: client. Imports the module's [`connect`](super::connect) and
//! error.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::Value;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::connect::{close, drain, timed_out, Hub, Ws, POLL};
use super::ClientError;

/// Messages sent and not yet answered, at most.
pub const WINDOW: usize = 64;

/// Where the events come from.
pub enum Input {
    /// One event from the arguments; `body` is JSON text (kept verbatim).
    Event {
        channel: String,
        message: Option<String>,
        body: Option<String>,
    },
    /// Stdin, a JSON event or array per line; `channel` is the
    /// `event_type` of events that name none.
    Stdin { channel: Option<String> },
}

/// `eventhub publish`'s options.
pub struct Publish {
    pub hub: Hub,
    pub input: Input,
}

/// A `--body` value: any JSON, kept as written.
pub fn parse_body(s: &str) -> Result<String, String> {
    serde_json::from_str::<&RawValue>(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not JSON: {e}"))
}

/// The event of `--channel`, `--message` and `--body`.
fn event_json(channel: &str, message: Option<&str>, body: Option<&str>) -> String {
    let mut s = format!("{{\"event_type\":{}", Value::from(channel));
    if let Some(m) = message {
        s.push_str(&format!(",\"message\":{}", Value::from(m)));
    }
    if let Some(b) = body {
        s.push_str(&format!(",\"body\":{b}"));
    }
    s.push('}');
    s
}

/// `obj` (an object's JSON text) with `"event_type":channel` first if it
/// names none; the rest as written.
fn with_channel_in(obj: &str, channel: &str) -> Option<String> {
    let keys: HashMap<String, IgnoredAny> = serde_json::from_str(obj).ok()?;
    if keys.contains_key("event_type") {
        return Some(obj.to_string());
    }
    let inner = obj.trim().strip_prefix('{')?;
    let sep = if inner.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    Some(format!(
        "{{\"event_type\":{}{sep}{inner}",
        Value::from(channel)
    ))
}

/// A line of stdin as the message to send: with `channel` filled in where
/// the events lack one; anything not an event or array of events is sent
/// as it is (the hub says what is wrong with it).
fn line_message(line: &str, channel: Option<&str>) -> String {
    let Some(channel) = channel else {
        return line.to_string();
    };
    if let Some(one) = with_channel_in(line, channel) {
        return one;
    }
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(line) else {
        return line.to_string();
    };
    let filled: Option<Vec<String>> = items
        .iter()
        .map(|item| with_channel_in(item.get(), channel))
        .collect();
    filled.map_or_else(|| line.to_string(), |f| format!("[{}]", f.join(",")))
}

/// What to send, and what to call it in a refusal.
type Item = io::Result<(String, String)>;

/// Reads stdin on a thread of its own, so that the socket is read (acks,
/// pings) while stdin is quiet.
fn stdin_items(channel: Option<String>) -> Receiver<Item> {
    let (tx, rx) = mpsc::sync_channel(WINDOW);
    std::thread::spawn(move || {
        for (i, line) in io::stdin().lock().lines().enumerate() {
            let item = line.map(|l| (format!("line {}", i + 1), l));
            let item = match item {
                Ok((_, l)) if l.trim().is_empty() => continue,
                Ok((at, l)) => Ok((at, line_message(l.trim(), channel.as_deref()))),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Runs `eventhub publish`.
pub fn run(opts: &Publish) -> Result<(), ClientError> {
    let stop = super::stop_flag()?;
    let rx = match &opts.input {
        Input::Event {
            channel,
            message,
            body,
        } => {
            let (tx, rx) = mpsc::sync_channel(1);
            let json = event_json(channel, message.as_deref(), body.as_deref());
            tx.send(Ok(("the event".to_string(), json)))
                .expect("the receiver is here");
            rx
        }
        Input::Stdin { channel } => stdin_items(channel.clone()),
    };
    let mut ws = opts.hub.open("/v1/ws/publish?ack=true")?;
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut refused = 0;
    let mut input_done = false;
    let mut out = io::stdout().lock();
    loop {
        if stop.load(Relaxed) {
            close(&mut ws);
            return match pending.len() {
                0 if refused > 0 => Err(ClientError::Refusals(refused)),
                0 => Ok(()),
                count => Err(ClientError::Unacknowledged {
                    why: "interrupted".into(),
                    count,
                }),
            };
        }
        while !input_done && pending.len() < WINDOW {
            let next = if pending.is_empty() {
                // Nothing to read back: wait on stdin instead (the socket
                // is read again within POLL, for its pings).
                rx.recv_timeout(POLL).map_err(|e| match e {
                    RecvTimeoutError::Timeout => TryRecvError::Empty,
                    RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                })
            } else {
                rx.try_recv()
            };
            match next {
                Ok(Ok((at, text))) => {
                    ws.send(Message::text(text))?;
                    pending.push_back(at);
                }
                Ok(Err(e)) => return Err(ClientError::Stdin(e)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => input_done = true,
            }
        }
        if input_done && pending.is_empty() {
            close(&mut ws);
            return match refused {
                0 => Ok(()),
                n => Err(ClientError::Refusals(n)),
            };
        }
        if pending.is_empty() {
            // Keep the connection answered while stdin is quiet.
            match ws.read() {
                Ok(Message::Close(frame)) => return Err(closed(&mut ws, frame, 0)),
                Ok(Message::Text(t)) => eprintln!("eventhub publish: {}", t.as_str()),
                Ok(_) => {}
                Err(e) if timed_out(&e) => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                if answer(text.as_str(), &mut pending, &mut out)? {
                    refused += 1;
                }
            }
            Ok(Message::Close(frame)) => return Err(closed(&mut ws, frame, pending.len())),
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => {
                return Err(ClientError::Unacknowledged {
                    why: e.to_string(),
                    count: pending.len(),
                })
            }
        }
    }
}

/// The hub's answer to the oldest message in flight: its events' `SEQ ID`
/// on stdout, or its error on stderr (whether it was one).
fn answer(
    text: &str,
    pending: &mut VecDeque<String>,
    out: &mut impl Write,
) -> Result<bool, ClientError> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        eprintln!("eventhub publish: {text}");
        return Ok(false);
    };
    let body = &v["body"];
    match (v["event_type"].as_str(), v["message"].as_str()) {
        (Some("system"), Some("published")) => {
            pending.pop_front();
            for e in body["events"].as_array().into_iter().flatten() {
                let line = format!("{} {}", e["seq"], e["id"].as_str().unwrap_or("-"));
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map_err(ClientError::Stdout)?;
            }
            Ok(false)
        }
        (Some("system"), Some("error")) => {
            let at = pending.pop_front().unwrap_or_default();
            eprintln!("eventhub publish: {at} refused: {body}");
            Ok(true)
        }
        _ => {
            eprintln!("eventhub publish: {text}");
            Ok(false)
        }
    }
}

/// The hub closed the publisher socket.
fn closed(ws: &mut Ws, frame: Option<CloseFrame>, count: usize) -> ClientError {
    let why = frame.map_or("closed by the hub".to_string(), |f| {
        format!("closed by the hub: {} {}", u16::from(f.code), f.reason)
    });
    drain(ws);
    ClientError::Unacknowledged { why, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_event_keeps_its_body_as_written() {
        assert_eq!(
            event_json("pdfm", Some("VM \"X\""), Some(r#"{"b": [1, 2]}"#)),
            r#"{"event_type":"pdfm","message":"VM \"X\"","body":{"b": [1, 2]}}"#
        );
        assert_eq!(event_json("a", None, None), r#"{"event_type":"a"}"#);
        assert!(parse_body("{").is_err());
        assert_eq!(parse_body(" 1 ").unwrap(), " 1 ");
    }

    #[test]
    fn the_channel_flag_fills_in_missing_event_types_only() {
        let m = |l: &str| line_message(l, Some("pdfm"));
        assert_eq!(
            m(r#"{"message":"x","body":{"k": 1}}"#),
            r#"{"event_type":"pdfm","message":"x","body":{"k": 1}}"#
        );
        assert_eq!(m(r#"{}"#), r#"{"event_type":"pdfm"}"#);
        assert_eq!(
            m(r#"{"event_type":"health"}"#),
            r#"{"event_type":"health"}"#
        );
        assert_eq!(
            m(r#"[{"message":"a"}, {"event_type":"x"}]"#),
            r#"[{"event_type":"pdfm","message":"a"},{"event_type":"x"}]"#
        );
        assert_eq!(m("not json"), "not json");
        assert_eq!(line_message(r#"{"a":1}"#, None), r#"{"a":1}"#);
    }
}
