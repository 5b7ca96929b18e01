//! Docker's event filters: the `filters` parameter of `/events/ws`, parsed
//! and evaluated directly (for the replay, and as the reference the index
//! is tested against).
//!
//! Layer: hub. Imports the container [`event`](super::event) model.

use serde_json::Value;

use super::event::{Action, DockerKeys};

/// Why a `filters` parameter was refused; each names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filters is not valid JSON: {0}")]
    Json(String),
    #[error("filters must be a JSON object such as {{\"event\":[\"start\"]}}")]
    NotAnObject,
    #[error("unknown filter {0:?}: valid filters are container, image, event, label, type")]
    UnknownFilter(String),
    #[error("filter {key:?}: values must be strings, not {value}")]
    NotAString { key: String, value: String },
    #[error("filter {key:?}: {{\"{name}\": {value}}} must map to true")]
    NotTrue {
        key: String,
        name: String,
        value: String,
    },
    #[error("filter {key:?}: expected a list of strings or an object of true, not {value}")]
    WrongType { key: String, value: String },
    #[error("invalid event {0:?}: valid values are start and stop")]
    InvalidEvent(String),
}

/// A parsed `filters` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerFilter {
    pub container: Vec<String>,
    pub image: Vec<String>,
    pub event: Vec<Action>,
    /// Every label named must be present (AND), as in Docker.
    pub label: Vec<String>,
    /// Docker's `type`: this stream carries only `container` events, so
    /// `container` among the values matches and any other set of values
    /// matches nothing (as the engine does).
    pub kind: Vec<String>,
}

impl DockerFilter {
    /// Parses Docker's `filters` JSON: `{"key":{"value":true}}` or
    /// `{"key":["value"]}`, keys `container`, `image`, `event`, `label`,
    /// `type`.
    pub fn parse(json: &str) -> Result<DockerFilter, FilterError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| FilterError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(FilterError::NotAnObject);
        };
        let mut f = DockerFilter::default();
        for (key, values) in map {
            if !["container", "image", "event", "label", "type"].contains(&key.as_str()) {
                return Err(FilterError::UnknownFilter(key));
            }
            let list: Vec<String> = match values {
                Value::Array(items) => items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(FilterError::NotAString {
                            key: key.clone(),
                            value: other.to_string(),
                        }),
                    })
                    .collect::<Result<_, _>>()?,
                Value::Object(m) => m
                    .into_iter()
                    .filter_map(|(v, on)| match on {
                        Value::Bool(true) => Some(Ok(v)),
                        Value::Bool(false) => None,
                        other => Some(Err(FilterError::NotTrue {
                            key: key.clone(),
                            name: v,
                            value: other.to_string(),
                        })),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(FilterError::WrongType {
                        key,
                        value: other.to_string(),
                    })
                }
            };
            match key.as_str() {
                "container" => f.container = list,
                "image" => f.image = list,
                "label" => f.label = list,
                "type" => f.kind = list,
                "event" => {
                    f.event = list
                        .iter()
                        .map(|v| {
                            Action::parse(v).ok_or_else(|| FilterError::InvalidEvent(v.clone()))
                        })
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(FilterError::UnknownFilter(key)),
            }
        }
        Ok(f)
    }

    /// Direct evaluation, for the replay and as the reference the index is
    /// tested against.
    pub fn matches(&self, k: &DockerKeys) -> bool {
        let container = self.container.is_empty()
            || self
                .container
                .iter()
                .any(|c| *c == k.name || (!c.is_empty() && k.id.starts_with(c.as_str())));
        let image = self.image.is_empty()
            || self
                .image
                .iter()
                .any(|i| *i == k.image || *i == k.image_untagged);
        let event = self.event.is_empty() || k.action.is_some_and(|a| self.event.contains(&a));
        let label = self.label.iter().all(|l| k.labels.contains(l));
        let kind = self.kind.is_empty() || self.kind.iter().any(|t| t == "container");
        container && image && event && label && kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::docker::event::ContainerEvent;

    fn start_event() -> ContainerEvent {
        ContainerEvent::from_json(
            r#"{"Action":"start","Actor":{"Attributes":{"exitCode":"0","image":"xjimmyshcn/busybox","name":"test4","sh_hyper_instancetype":"s4","test1":"","test3":"test3=test3"},"ID":"f29698cac3f6"},"Type":"container","from":"xjimmyshcn/busybox","id":"f29698cac3f6","status":"start","time":1.476375852e+09,"timeNano":1.4763758521916593e+18}"#,
        )
        .unwrap()
    }

    #[test]
    fn both_filter_forms_parse_and_bad_ones_are_named() {
        let a = DockerFilter::parse(
            r#"{"event":{"stop":true},"label":{"sh_hyper_instancetype=s4":true}}"#,
        )
        .unwrap();
        let b = DockerFilter::parse(r#"{"event":["stop"],"label":["sh_hyper_instancetype=s4"]}"#)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.event, vec![Action::Stop]);
        let err = |j: &str| DockerFilter::parse(j).unwrap_err().to_string();
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[1]").contains("must be a JSON object"));
        assert!(err(r#"{"colour":["red"]}"#).contains("unknown filter \"colour\""));
        assert!(err(r#"{"event":["restart"]}"#).contains("invalid event \"restart\""));
        assert!(err(r#"{"image":[1]}"#).contains("values must be strings"));
        assert!(err(r#"{"image":"ubuntu"}"#).contains("expected a list"));
        assert!(err(r#"{"colour":1}"#).contains("unknown filter \"colour\""));
    }

    #[test]
    fn filter_semantics_follow_docker() {
        let k = start_event().keys();
        let m = |j: &str| DockerFilter::parse(j).unwrap().matches(&k);
        assert!(m("{}"));
        assert!(m(r#"{"container":{"test4":true}}"#));
        assert!(m(r#"{"container":["f2969"]}"#), "id prefix");
        assert!(!m(r#"{"container":["test"]}"#), "a name is matched exactly");
        assert!(m(r#"{"image":["xjimmyshcn/busybox"]}"#));
        assert!(m(r#"{"event":["start","stop"]}"#));
        assert!(!m(r#"{"event":["stop"]}"#));
        assert!(m(r#"{"label":["test1"]}"#));
        assert!(m(r#"{"label":["sh_hyper_instancetype=s4"]}"#));
        assert!(!m(r#"{"label":["sh_hyper_instancetype=s5"]}"#));
        assert!(!m(
            r#"{"event":{"stop":true},"label":{"sh_hyper_instancetype=s4":true}}"#
        ));
        assert!(
            !m(r#"{"event":{"start":true},"label":{"nope":true,"test1":true}}"#),
            "every label named must be present"
        );
        assert!(m(
            r#"{"event":{"start":true},"label":{"sh_hyper_instancetype=s4":true,"test1":true}}"#
        ));
        assert!(m(r#"{"label":["test3=test3=test3","test1"]}"#));
    }

    #[test]
    fn type_container_is_accepted_and_other_types_match_nothing() {
        let k = start_event().keys();
        let m = |j: &str| DockerFilter::parse(j).unwrap().matches(&k);
        assert!(m(r#"{"type":["container"]}"#));
        assert!(m(r#"{"type":{"container":true},"event":["start"]}"#));
        assert!(m(r#"{"type":["image","container"]}"#));
        assert!(!m(r#"{"type":["network"]}"#));
        assert!(!m(r#"{"type":["container"],"event":["stop"]}"#));
    }
}
