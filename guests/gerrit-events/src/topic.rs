//! The MQTT topic of a Gerrit event: `gerrit/<project>/<type>`, or
//! `gerrit/<type>` when the event names no project.
//!
//! Project names keep their `/` (they become topic levels, as with
//! germqtt: `gerrit/openstack-infra/germqtt/comment-added`). What cannot be
//! part of an MQTT topic name is refused, not rewritten, so a topic always
//! names the project exactly: the wildcards `+` and `#`, NUL, and a topic
//! longer than MQTT's 65,535 bytes. The event type is a single level: a
//! `/` in it, or an empty type, is refused too.

use thiserror::Error;

/// The first level of every topic this source publishes.
pub const TOPIC_ROOT: &str = "gerrit";

/// The longest topic name MQTT can carry (a two-byte length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why an event's project or type cannot make a topic name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The value contains a character MQTT forbids in topic names.
    #[error("{field} {value:?} contains {what}, which MQTT forbids in a topic name")]
    ForbiddenChar {
        /// Which field of the event (`change.project`, `type`, ...).
        field: &'static str,
        /// The value, as in the event.
        value: String,
        /// The offending character, described (`the wildcard '+'`).
        what: &'static str,
    },
    /// The event type is empty.
    #[error("the event type is empty")]
    EmptyType,
    /// The event type contains `/`, which would add topic levels.
    #[error("event type {0:?} contains '/'")]
    SlashInType(String),
    /// The topic would be longer than MQTT allows.
    #[error("topic of {len} bytes is longer than MQTT's limit of {MAX_TOPIC_BYTES}")]
    TooLong {
        /// The length the topic would have.
        len: usize,
    },
}

/// Builds the topic for an event of type `event_type` in `project`, given
/// as (the event field it came from, for error messages; its value).
pub fn build(
    event_type: &str,
    project: Option<(&'static str, &str)>,
) -> Result<String, TopicError> {
    if event_type.is_empty() {
        return Err(TopicError::EmptyType);
    }
    check_chars("type", event_type)?;
    if event_type.contains('/') {
        return Err(TopicError::SlashInType(event_type.to_owned()));
    }
    let topic = match project {
        Some((field, project)) => {
            check_chars(field, project)?;
            format!("{TOPIC_ROOT}/{project}/{event_type}")
        }
        None => format!("{TOPIC_ROOT}/{event_type}"),
    };
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong { len: topic.len() });
    }
    Ok(topic)
}

fn check_chars(field: &'static str, value: &str) -> Result<(), TopicError> {
    let what = value.chars().find_map(|c| match c {
        '+' => Some("the wildcard '+'"),
        '#' => Some("the wildcard '#'"),
        '\0' => Some("a NUL character"),
        _ => None,
    });
    match what {
        Some(what) => Err(TopicError::ForbiddenChar {
            field,
            value: value.to_owned(),
            what,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_levels_are_kept() {
        assert_eq!(
            build(
                "comment-added",
                Some(("change.project", "openstack-infra/germqtt"))
            )
            .unwrap(),
            "gerrit/openstack-infra/germqtt/comment-added"
        );
    }

    #[test]
    fn no_project_means_type_under_root() {
        assert_eq!(
            build("dropped-output", None).unwrap(),
            "gerrit/dropped-output"
        );
    }

    #[test]
    fn wildcards_and_nul_are_refused_naming_the_field() {
        let err = build("ref-updated", Some(("refUpdate.project", "a+b"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refUpdate.project \"a+b\" contains the wildcard '+', which MQTT forbids in a topic name"
        );
        assert!(matches!(
            build("x", Some(("project", "a/#"))),
            Err(TopicError::ForbiddenChar {
                what: "the wildcard '#'",
                ..
            })
        ));
        assert!(matches!(
            build("x\0", None),
            Err(TopicError::ForbiddenChar {
                field: "type",
                what: "a NUL character",
                ..
            })
        ));
    }

    #[test]
    fn empty_levels_are_fine_but_type_must_be_one_level() {
        assert_eq!(
            build("t", Some(("project", "a//b"))).unwrap(),
            "gerrit/a//b/t"
        );
        assert_eq!(build("", None), Err(TopicError::EmptyType));
        assert_eq!(
            build("a/b", None),
            Err(TopicError::SlashInType("a/b".into()))
        );
    }

    #[test]
    fn too_long_topics_are_refused() {
        let project = "p".repeat(MAX_TOPIC_BYTES);
        assert_eq!(
            build("t", Some(("project", &project))),
            Err(TopicError::TooLong {
                len: MAX_TOPIC_BYTES + 9
            })
        );
    }
}
