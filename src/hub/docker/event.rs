//! Docker-shaped container events and what the filters match them on.
//!
//! A container event is kept in Docker's own JSON shape (`status`, `id`,
//! `from`, `Type`, `Action`, `Actor{ID, Attributes}`, `time`, `timeNano`)
//! so that clients of Docker's events API read it unchanged. Only two
//! actions exist here, `start` and `stop`: the engine source maps Docker's
//! `die` to `stop` (with `exitCode`), so each run of a container gives one
//! of each.
//!
//! [`DockerKeys`] are what the filter index matches on, computed once per
//! event: the container's name and id, its image with and without the tag,
//! the action, and each label as `key` and `key=value`.
//!
//! Layer: hub. Imports only the protocol crate's JSON string escaping.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use crate::proto::json::push_string as push_json_string;

/// The two container actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
        }
    }
}

/// Attributes that describe the container rather than label it.
const NOT_LABELS: [&str; 4] = ["name", "image", "exitCode", "signal"];

/// A valid container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub id: String,
    pub action: Action,
    pub attributes: BTreeMap<String, String>,
    pub time: i64,
    pub time_nano: i64,
}

/// Why a published body is not a container event in Docker's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerEventError {
    /// Not the JSON of an event object (serde's message, without its
    /// position).
    #[error("{0}")]
    Json(String),
    #[error("Type must be \"container\", not {0:?}")]
    Type(String),
    #[error("Action must be \"start\" or \"stop\", not {0:?}")]
    Action(String),
    #[error("status {status:?} differs from Action {action:?}")]
    StatusMismatch { status: String, action: String },
    #[error("id must be non-empty and equal Actor.ID")]
    Id,
    #[error("Actor.Attributes.{key} must be a string, not {value}")]
    AttributeNotAString { key: String, value: String },
    #[error("Actor.Attributes.{0} is missing")]
    MissingAttribute(&'static str),
    #[error("time or timeNano is required")]
    NoTime,
}

/// What the filter index matches an event on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerKeys {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The image without its tag (`ubuntu` for `ubuntu:latest`).
    pub image_untagged: String,
    pub action: Option<Action>,
    /// Each label as `key` and as `key=value`.
    pub labels: Vec<String>,
    /// Seconds since the epoch (for `since`/`until`).
    pub time: i64,
}

#[derive(Deserialize)]
struct ActorIn {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct EventIn {
    #[serde(default)]
    status: Option<String>,
    id: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: ActorIn,
    #[serde(default)]
    scope: Option<String>,
    /// Numbers, not floats: a `timeNano` of today (about 1.8e18) is past
    /// what a double holds exactly; Docker writes integers, some samples
    /// floats.
    time: Option<serde_json::Number>,
    #[serde(rename = "timeNano")]
    time_nano: Option<serde_json::Number>,
}

/// A JSON number as an integer: exactly when it is one, else truncated.
fn integer(n: &serde_json::Number) -> i64 {
    n.as_i64()
        .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64)
}

impl ContainerEvent {
    /// Checks a published body against Docker's shape; errors say what is
    /// wrong.
    pub fn from_json(raw: &str) -> Result<ContainerEvent, ContainerEventError> {
        let ev: EventIn = serde_json::from_str(raw).map_err(|e| {
            let msg = e.to_string();
            ContainerEventError::Json(
                msg.rfind(" at line ")
                    .map_or(msg.clone(), |i| msg[..i].to_string()),
            )
        })?;
        let _ = (&ev.scope, &ev.from);
        if ev.kind != "container" {
            return Err(ContainerEventError::Type(ev.kind));
        }
        let action = Action::parse(&ev.action)
            .ok_or_else(|| ContainerEventError::Action(ev.action.clone()))?;
        if let Some(status) = &ev.status {
            if status != &ev.action {
                return Err(ContainerEventError::StatusMismatch {
                    status: status.clone(),
                    action: ev.action,
                });
            }
        }
        if ev.id.is_empty() || ev.actor.id != ev.id {
            return Err(ContainerEventError::Id);
        }
        let mut attributes = BTreeMap::new();
        for (k, v) in ev.actor.attributes {
            match v {
                Value::String(s) => {
                    attributes.insert(k, s);
                }
                other => {
                    return Err(ContainerEventError::AttributeNotAString {
                        key: k,
                        value: other.to_string(),
                    })
                }
            }
        }
        for required in ["name", "image"] {
            if !attributes.contains_key(required) {
                return Err(ContainerEventError::MissingAttribute(required));
            }
        }
        let (time, time_nano) = match (ev.time.as_ref(), ev.time_nano.as_ref()) {
            (Some(t), Some(n)) => (integer(t), integer(n)),
            (Some(t), None) => (
                integer(t),
                t.as_i64().map_or_else(
                    || (t.as_f64().unwrap_or(0.0) * 1e9) as i64,
                    |secs| secs.saturating_mul(1_000_000_000),
                ),
            ),
            (None, Some(n)) => (integer(n) / 1_000_000_000, integer(n)),
            (None, None) => return Err(ContainerEventError::NoTime),
        };
        Ok(ContainerEvent {
            id: ev.id,
            action,
            attributes,
            time,
            time_nano,
        })
    }

    /// Docker's JSON for this event (`status` equals `Action`, `from` is the
    /// image).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256);
        let image = self.attributes.get("image").map_or("", String::as_str);
        let action = self.action.as_str();
        s.push_str("{\"status\":\"");
        s.push_str(action);
        s.push_str("\",\"id\":");
        push_json_string(&mut s, &self.id);
        s.push_str(",\"from\":");
        push_json_string(&mut s, image);
        let _ = write!(
            s,
            ",\"Type\":\"container\",\"Action\":\"{action}\",\"Actor\":{{\"ID\":"
        );
        push_json_string(&mut s, &self.id);
        s.push_str(",\"Attributes\":{");
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_json_string(&mut s, k);
            s.push(':');
            push_json_string(&mut s, v);
        }
        let _ = write!(
            s,
            "}}}},\"scope\":\"local\",\"time\":{},\"timeNano\":{}}}",
            self.time, self.time_nano
        );
        s
    }

    /// The keys the filter index matches on.
    pub fn keys(&self) -> DockerKeys {
        let attr = |k: &str| self.attributes.get(k).cloned().unwrap_or_default();
        let image = attr("image");
        let mut labels = Vec::new();
        for (k, v) in &self.attributes {
            if NOT_LABELS.contains(&k.as_str()) {
                continue;
            }
            labels.push(k.clone());
            labels.push(format!("{k}={v}"));
        }
        DockerKeys {
            id: self.id.clone(),
            name: attr("name"),
            image_untagged: untagged(&image).to_string(),
            image,
            action: Some(self.action),
            labels,
            time: self.time,
        }
    }
}

/// `repo:tag` without `:tag` (a `:` before the last `/` is a registry port).
pub fn untagged(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIE: &str = include_str!("../../../tests/data/docker-engine-die.json");

    fn start_event() -> ContainerEvent {
        ContainerEvent::from_json(
            r#"{"Action":"start","Actor":{"Attributes":{"exitCode":"0","image":"xjimmyshcn/busybox","name":"test4","sh_hyper_instancetype":"s4","test1":"","test3":"test3=test3"},"ID":"f29698cac3f6"},"Type":"container","from":"xjimmyshcn/busybox","id":"f29698cac3f6","status":"start","time":1.476375852e+09,"timeNano":1.4763758521916593e+18}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_time_nano_of_today_is_kept_to_the_nanosecond() {
        let body = r#"{"id":"c1","Type":"container","Action":"stop","Actor":{"ID":"c1","Attributes":{"name":"web","image":"busybox"}},"time":1796147375,"timeNano":1796147375691960979}"#;
        let ev = ContainerEvent::from_json(body).unwrap();
        assert_eq!((ev.time, ev.time_nano), (1796147375, 1796147375691960979));
        assert_eq!(
            ContainerEvent::from_json(&ev.to_json()).unwrap().time_nano,
            ev.time_nano
        );
    }

    #[test]
    fn the_documents_example_event_is_accepted_with_float_times() {
        let ev = start_event();
        assert_eq!(ev.time, 1_476_375_852);
        assert_eq!(ev.action, Action::Start);
        let json: Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(json["status"], "start");
        assert_eq!(json["from"], "xjimmyshcn/busybox");
        assert_eq!(json["Actor"]["Attributes"]["test3"], "test3=test3");
        assert_eq!(json["time"], 1_476_375_852);
    }

    #[test]
    fn engine_die_is_not_a_hub_action() {
        let e = ContainerEvent::from_json(DIE).unwrap_err().to_string();
        assert!(e.contains("Action must be \"start\" or \"stop\""), "{e}");
    }

    #[test]
    fn wrong_shapes_are_named() {
        let bad = [
            (
                r#"{"id":"a","Type":"network","Action":"start","Actor":{"ID":"a"},"time":1}"#,
                "Type must be",
            ),
            (
                r#"{"id":"a","Type":"container","Action":"start","Actor":{"ID":"b","Attributes":{"name":"n","image":"i"}},"time":1}"#,
                "equal Actor.ID",
            ),
            (
                r#"{"id":"a","Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"name":"n"}},"time":1}"#,
                "image is missing",
            ),
            (
                r#"{"id":"a","Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"name":"n","image":"i","x":1}},"time":1}"#,
                "x must be a string",
            ),
            (
                r#"{"id":"a","Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"name":"n","image":"i"}}}"#,
                "time or timeNano",
            ),
            (r#"{"Type":"container"}"#, "missing field"),
        ];
        for (json, want) in bad {
            let e = ContainerEvent::from_json(json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn keys_hold_name_id_both_image_forms_and_labels() {
        let k = start_event().keys();
        assert_eq!(k.name, "test4");
        assert_eq!(k.image_untagged, "xjimmyshcn/busybox");
        assert!(k.labels.contains(&"sh_hyper_instancetype=s4".to_string()));
        assert!(k.labels.contains(&"test1".to_string()));
        assert!(!k.labels.iter().any(|l| l.starts_with("image")));
    }

    #[test]
    fn untagged_keeps_registry_ports() {
        assert_eq!(untagged("ubuntu:latest"), "ubuntu");
        assert_eq!(untagged("localhost:5000/busybox"), "localhost:5000/busybox");
        assert_eq!(
            untagged("localhost:5000/busybox:1.36"),
            "localhost:5000/busybox"
        );
        assert_eq!(untagged("busybox@sha256:abc"), "busybox");
    }
}
