//! One Gerrit event JSON to one MQTT message.
//!
//! The project is the first of these that is a non-empty string:
//! `change.project` (change events), `refUpdate.project` (`ref-updated`),
//! the top-level `project` (which newer Gerrit versions add to every
//! project event), the top-level `projectName` (`project-created`,
//! `project-head-updated`). The payload is the input, byte for byte: the
//! JSON is parsed only to read those fields, never re-serialized.

use serde_json::Value;
use thiserror::Error;

use crate::topic::{self, TopicError};

/// One event, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `gerrit/<project>/<type>` or `gerrit/<type>`.
    pub topic: String,
    /// The event's `type` field.
    pub event_type: String,
    /// The project the topic names, if any.
    pub project: Option<String>,
    /// The event JSON exactly as received.
    pub payload: Vec<u8>,
}

/// Why some bytes are not a publishable Gerrit event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// Not one well-formed JSON value.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("the event is not a JSON object")]
    NotAnObject,
    /// The object has no string `type` field.
    #[error("the event has no string \"type\" field")]
    NoType,
    /// The project or type cannot make a topic.
    #[error(transparent)]
    Topic(#[from] TopicError),
}

/// Where the project may be, in order of preference: (field name for
/// messages, path in the event).
const PROJECT_FIELDS: &[(&str, &[&str])] = &[
    ("change.project", &["change", "project"]),
    ("refUpdate.project", &["refUpdate", "project"]),
    ("project", &["project"]),
    ("projectName", &["projectName"]),
];

/// Routes one event: its topic, and its bytes as the payload.
pub fn route(json: &[u8]) -> Result<Event, EventError> {
    let value: Value = serde_json::from_slice(json).map_err(|e| EventError::Json(e.to_string()))?;
    let object = value.as_object().ok_or(EventError::NotAnObject)?;
    let event_type = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or(EventError::NoType)?;
    let project = PROJECT_FIELDS.iter().find_map(|(field, path)| {
        let mut at = &value;
        for key in *path {
            at = at.get(key)?;
        }
        at.as_str().filter(|p| !p.is_empty()).map(|p| (*field, p))
    });
    let topic = topic::build(event_type, project)?;
    Ok(Event {
        topic,
        event_type: event_type.to_owned(),
        project: project.map(|(_, p)| p.to_owned()),
        payload: json.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_byte_for_byte() {
        let json =
            br#"{ "type" : "comment-added", "change": {"project":"a/b", "x": 1.50}, "n":"\u00e9"}"#;
        let event = route(json).unwrap();
        assert_eq!(event.topic, "gerrit/a/b/comment-added");
        assert_eq!(event.payload, json.to_vec());
    }

    #[test]
    fn project_preference_order() {
        let both = br#"{"type":"t","project":"top","refUpdate":{"project":"ref"},"change":{"project":"chg"}}"#;
        assert_eq!(route(both).unwrap().topic, "gerrit/chg/t");
        let ref_only = br#"{"type":"t","project":"top","refUpdate":{"project":"ref"}}"#;
        assert_eq!(route(ref_only).unwrap().topic, "gerrit/ref/t");
        let top = br#"{"type":"t","project":"top","change":{"project":""}}"#;
        assert_eq!(route(top).unwrap().topic, "gerrit/top/t");
        let created = br#"{"type":"project-created","projectName":"new/one","projectHead":"refs/heads/main"}"#;
        assert_eq!(
            route(created).unwrap().topic,
            "gerrit/new/one/project-created"
        );
        let non_string = br#"{"type":"t","project":{"name":"x"}}"#;
        assert_eq!(route(non_string).unwrap().topic, "gerrit/t");
    }

    #[test]
    fn bad_events_are_clear_errors() {
        assert!(matches!(route(b"{\"type\":"), Err(EventError::Json(_))));
        assert!(matches!(route(b"{} trailing"), Err(EventError::Json(_))));
        assert_eq!(route(b"[1]"), Err(EventError::NotAnObject));
        assert_eq!(route(b"{\"type\":3}"), Err(EventError::NoType));
        assert_eq!(
            route(br#"{"type":"t","change":{"project":"a#b"}}"#)
                .unwrap_err()
                .to_string(),
            "change.project \"a#b\" contains the wildcard '#', which MQTT forbids in a topic name"
        );
    }
}
