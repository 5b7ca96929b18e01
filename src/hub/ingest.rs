//! Validating what producers publish: `POST /v1/events` bodies and
//! publisher WebSocket messages share these rules.
//!
//! A body is one event object or a non-empty array of them. An event has a
//! string `event_type` naming a configured channel, an optional string
//! `message`, and an optional `body` of any JSON (kept verbatim: it is
//! validated, never re-serialized). `id`, `timestamp` and `seq` are
//! assigned by the hub; if a producer sends them they are ignored. Any other
//! member is refused, so that a typo is reported rather than dropped.
//!
//! Layer: hub. Imports the hub's [`channels`](super::channels) and the
//! Docker event model; [`crate::hub::publish`] is its caller.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use std::borrow::Cow;

use super::channels::{ChannelId, Channels, UnknownChannel, CONTAINER, HEALTH, SYSTEM};
use super::docker::event::{ContainerEvent, ContainerEventError};

/// Longest `message` accepted.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Why a publish body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body must be an event object or an array of them")]
    NotAnEventOrArray,
    #[error("the array of events is empty")]
    EmptyBatch,
    #[error("{count} events in one request; at most {max}")]
    TooManyEvents { count: usize, max: usize },
    #[error("event {index}: {message}")]
    InvalidEvent { index: usize, message: String },
    #[error("event {index}: container event body: {source}")]
    ContainerBody {
        index: usize,
        source: ContainerEventError,
    },
    #[error("event {index}: {source}")]
    UnknownChannel {
        index: usize,
        source: UnknownChannel,
    },
    #[error("event {index}: channel {name:?} is reserved for the hub's own messages")]
    ReservedChannel { index: usize, name: String },
}

/// A valid event, not yet serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<'a> {
    pub channel: ChannelId,
    pub message: String,
    /// Raw JSON of the body (`{}` when absent; Docker's shape, normalized,
    /// for a container event).
    pub body: Cow<'a, str>,
    /// The Docker-shaped event, on the `container` channel.
    pub container: Option<ContainerEvent>,
    /// The event id, when the producer derives it (the Docker source does,
    /// so that several hubs following one engine publish one id and a
    /// cluster's log drops the copies); none: a new random one.
    pub id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn<'a> {
    event_type: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "seq")]
    _seq: Option<IgnoredAny>,
}

/// Parses and checks a publish body.
pub fn parse_events<'a>(
    text: &'a str,
    channels: &Channels,
    max_events: usize,
) -> Result<Vec<NewEvent<'a>>, IngestError> {
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| IngestError::InvalidJson(e.to_string()))?;
    let items: Vec<&RawValue> = match raw.get().as_bytes().first() {
        Some(b'{') => vec![raw],
        Some(b'[') => {
            serde_json::from_str(raw.get()).map_err(|e| IngestError::InvalidJson(e.to_string()))?
        }
        _ => return Err(IngestError::NotAnEventOrArray),
    };
    if items.is_empty() {
        return Err(IngestError::EmptyBatch);
    }
    if items.len() > max_events {
        return Err(IngestError::TooManyEvents {
            count: items.len(),
            max: max_events,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| check_event(index, item, channels))
        .collect()
}

fn check_event<'a>(
    index: usize,
    item: &'a RawValue,
    channels: &Channels,
) -> Result<NewEvent<'a>, IngestError> {
    let invalid = |message: String| IngestError::InvalidEvent { index, message };
    if !item.get().starts_with('{') {
        return Err(invalid("must be a JSON object".into()));
    }
    let ev: EventIn<'a> =
        serde_json::from_str(item.get()).map_err(|e| invalid(strip_position(&e.to_string())))?;
    let channel = channels
        .id(&ev.event_type)
        .map_err(|source| IngestError::UnknownChannel { index, source })?;
    if channel == SYSTEM || channel == HEALTH {
        return Err(IngestError::ReservedChannel {
            index,
            name: ev.event_type,
        });
    }
    let message = ev.message.unwrap_or_default();
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(invalid(format!(
            "message longer than {MAX_MESSAGE_CHARS} characters"
        )));
    }
    let raw_body = ev.body.map_or("{}", RawValue::get);
    if needs_strict_check(raw_body) {
        serde_json::from_str::<StrictAny>(raw_body)
            .map_err(|e| invalid(format!("body: {}", strip_position(&e.to_string()))))?;
    }
    if channel != CONTAINER {
        return Ok(NewEvent {
            channel,
            message,
            body: Cow::Borrowed(raw_body),
            container: None,
            id: None,
        });
    }
    let container = ContainerEvent::from_json(raw_body)
        .map_err(|source| IngestError::ContainerBody { index, source })?;
    Ok(NewEvent {
        channel,
        message: if message.is_empty() {
            container.action.as_str().to_string()
        } else {
            message
        },
        body: Cow::Owned(container.to_json()),
        container: Some(container),
        id: None,
    })
}

/// A raw value is checked for grammar only, not for what its `\u`
/// escapes mean or whether its numbers fit a double: a lone surrogate
/// (`"\ud800"`) or `1e999` would pass, go out verbatim, and fail strict
/// clients. Bodies that hold an escape or an exponent get a full parse; the
/// common body, with neither, does not pay for one.
fn needs_strict_check(raw: &str) -> bool {
    raw.contains("\\u")
        || raw
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && (w[1] == b'e' || w[1] == b'E'))
}

/// Any JSON value, checked as strictly as a `serde_json::Value` would be
/// (every string decoded, every number parsed, the depth limited) and
/// dropped: the strict check builds nothing (2.3x fewer instructions than
/// building a `Value` for a 4 KiB body; benches/PACKAGES.md).
struct StrictAny;

impl<'de> serde::Deserialize<'de> for StrictAny {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StrictAny, D::Error> {
        d.deserialize_any(StrictAny)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictAny {
    type Value = StrictAny;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_i64<E>(self, _: i64) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_u64<E>(self, _: u64) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_f64<E>(self, _: f64) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_str<E>(self, _: &str) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_unit<E>(self) -> Result<StrictAny, E> {
        Ok(StrictAny)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<StrictAny, A::Error> {
        while a.next_element::<StrictAny>()?.is_some() {}
        Ok(StrictAny)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<StrictAny, A::Error> {
        while a.next_key::<StrictAny>()?.is_some() {
            a.next_value::<StrictAny>()?;
        }
        Ok(StrictAny)
    }
}

/// serde's messages end in " at line 1 column 17", meaningless inside one
/// element of an array.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch() -> Channels {
        Channels::new(&["alerts".into()]).unwrap()
    }

    #[test]
    fn single_event_and_array_are_accepted() {
        let one = parse_events(
            r#"{"event_type":"pdfm","message":"VM_STATE_CHANGED","body":{"a": [1, 2]}}"#,
            &ch(),
            10,
        )
        .unwrap();
        assert_eq!(
            one,
            vec![NewEvent {
                channel: 1,
                message: "VM_STATE_CHANGED".into(),
                body: Cow::Borrowed(r#"{"a": [1, 2]}"#),
                container: None,
                id: None,
            }]
        );
        let many = parse_events(
            r#"[{"event_type":"alerts"},{"event_type":"global","message":"m"}]"#,
            &ch(),
            10,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].body, "{}");
    }

    #[test]
    fn container_events_are_checked_against_dockers_shape() {
        let ok = r#"{"event_type":"container","body":{"id":"abc","Type":"container","Action":"stop","Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox","exitCode":"3"}},"time":1700000000}}"#;
        let ev = &parse_events(ok, &ch(), 10).unwrap()[0];
        assert_eq!(ev.message, "stop");
        assert!(ev.body.contains("\"status\":\"stop\""));
        assert!(ev.container.is_some());
        let bad = r#"{"event_type":"container","body":{"id":"abc","Type":"container","Action":"die","Actor":{"ID":"abc"},"time":1}}"#;
        let e = parse_events(bad, &ch(), 10).unwrap_err().to_string();
        assert!(
            e.starts_with("event 0: container event body: Action must be"),
            "{e}"
        );
        let e = parse_events(r#"{"event_type":"container"}"#, &ch(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("container event body"), "{e}");
    }

    #[test]
    fn body_with_a_lone_surrogate_escape_is_refused() {
        let e = parse_events(r#"{"event_type":"pdfm","body":{"a":"\ud800"}}"#, &ch(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("event 0: body: "), "{e}");
        assert!(parse_events(
            r#"{"event_type":"pdfm","body":{"a":"\ud83d\ude00"}}"#,
            &ch(),
            10
        )
        .is_ok());
    }

    #[test]
    fn body_with_a_number_beyond_a_double_is_refused() {
        let e = parse_events(r#"{"event_type":"pdfm","body":{"x":0.47E669}}"#, &ch(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("event 0: body: number out of range"), "{e}");
        assert!(parse_events(
            r#"{"event_type":"pdfm","body":{"x":1.5e300,"id":"fb83295e"}}"#,
            &ch(),
            10
        )
        .is_ok());
    }

    #[test]
    fn assigned_fields_from_the_producer_are_ignored() {
        let ev = parse_events(
            r#"{"event_type":"pdfm","id":"x","timestamp":"y","seq":3}"#,
            &ch(),
            10,
        )
        .unwrap();
        assert_eq!(ev[0].channel, 1);
    }

    #[test]
    fn each_bad_body_gets_a_message_naming_the_problem() {
        let c = ch();
        let err = |t: &str| parse_events(t, &c, 2).unwrap_err().to_string();
        assert!(err("{nope").starts_with("body is not valid JSON"));
        assert_eq!(
            err("42"),
            "body must be an event object or an array of them"
        );
        assert_eq!(err("[]"), "the array of events is empty");
        assert_eq!(
            err(r#"[{"event_type":"pdfm"},{"event_type":"pdfm"},{"event_type":"pdfm"}]"#),
            "3 events in one request; at most 2"
        );
        assert_eq!(
            err(r#"{"message":"m"}"#),
            "event 0: missing field `event_type`"
        );
        assert_eq!(
            err(r#"{"event_type":5}"#),
            "event 0: invalid type: integer `5`, expected a string"
        );
        assert!(err(r#"{"event_type":"pdfm","colour":1}"#).contains("unknown field `colour`"));
        assert!(err(r#"[{"event_type":"pdfm"},{"event_type":"nope"}]"#)
            .starts_with("event 1: unknown channel \"nope\"; valid channels: global, pdfm"));
        assert!(err(r#"{"event_type":"system"}"#).contains("reserved"));
        assert_eq!(err(r#"[1]"#), "event 0: must be a JSON object");
    }
}
