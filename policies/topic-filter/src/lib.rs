//! MQTT topic filters, as the policies in this workspace need them: check
//! that a filter is valid, match a topic against a filter, and tell whether
//! two filters can match a common topic.
//!
//! The rules are MQTT 3.1.1 / 5.0 section 4.7: levels are separated by `/`,
//! `+` matches exactly one level (which may be empty), `#` matches the
//! parent level and any number of levels below it and must be last, and a
//! filter that starts with a wildcard does not match topics that start
//! with `$` (such as `$SYS/...`).
//!
//! Pure Rust, no allocation; it knows nothing of WIT or wasm.

use std::fmt;

/// Why a string is not a valid topic filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// The filter is the empty string.
    Empty,
    /// `#` is not the whole of the last level.
    MisplacedMultiLevel,
    /// `+` is not the whole of its level.
    MisplacedSingleLevel,
    /// The filter contains a NUL character.
    Nul,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterError::Empty => "topic filter is empty",
            FilterError::MisplacedMultiLevel => "`#` must be the whole last level",
            FilterError::MisplacedSingleLevel => "`+` must be a whole level",
            FilterError::Nul => "topic filter contains NUL",
        })
    }
}

impl std::error::Error for FilterError {}

/// Checks that `filter` is a valid MQTT topic filter.
pub fn validate(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.contains('\0') {
        return Err(FilterError::Nul);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(FilterError::MisplacedMultiLevel);
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::MisplacedSingleLevel);
        }
    }
    Ok(())
}

/// Does the (valid) `filter` match the topic name `topic`?
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && starts_with_wildcard(filter) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// Can the (valid) filters `a` and `b` both match some topic? A subscriber
/// to `a` could then receive a message published under `b`.
pub fn overlaps(a: &str, b: &str) -> bool {
    // A literal first level starting with `$` is never matched by a
    // wildcard first level, so the two filters have no topic in common.
    let dollar_vs_wildcard = |x: &str, y: &str| x.starts_with('$') && starts_with_wildcard(y);
    if dollar_vs_wildcard(a, b) || dollar_vs_wildcard(b, a) {
        return false;
    }
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            // `x/#` also matches `x`, handled above when `#` comes next;
            // any other difference in length means no common topic.
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                if x != "+" && y != "+" && x != y {
                    return false;
                }
            }
        }
    }
}

fn starts_with_wildcard(filter: &str) -> bool {
    filter.starts_with('+') || filter.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_filters_are_accepted() {
        for filter in [
            "#", "+", "a", "a/b", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#", "+/#",
        ] {
            assert_eq!(validate(filter), Ok(()), "{filter}");
        }
    }

    #[test]
    fn invalid_filters_are_rejected_with_the_rule_they_break() {
        assert_eq!(validate(""), Err(FilterError::Empty));
        assert_eq!(validate("a/#/b"), Err(FilterError::MisplacedMultiLevel));
        assert_eq!(validate("a#"), Err(FilterError::MisplacedMultiLevel));
        assert_eq!(validate("a/b#"), Err(FilterError::MisplacedMultiLevel));
        assert_eq!(validate("a+/b"), Err(FilterError::MisplacedSingleLevel));
        assert_eq!(validate("a/+b"), Err(FilterError::MisplacedSingleLevel));
        assert_eq!(validate("a\0b"), Err(FilterError::Nul));
    }

    #[test]
    fn literal_filter_matches_only_the_same_topic() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b", "a"));
        assert!(!matches("a/b", "a/B"));
        assert!(!matches("a/b", "a/b/"));
    }

    #[test]
    fn single_level_wildcard_matches_exactly_one_level() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/+/c", "a//c"));
        assert!(!matches("a/+/c", "a/b/x/c"));
        assert!(!matches("a/+", "a"));
        assert!(matches("a/+", "a/"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
    }

    #[test]
    fn multi_level_wildcard_matches_parent_and_descendants() {
        assert!(matches("#", "a"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("#", "/"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/#", "ab"));
        assert!(!matches("a/#", "b/a"));
        assert!(matches("a/+/#", "a/b"));
        assert!(!matches("a/+/#", "a"));
    }

    #[test]
    fn wildcards_at_the_first_level_do_not_match_dollar_topics() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(!matches("+/#", "$SYS"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
        assert!(matches("a/#", "a/$b"));
    }

    #[test]
    fn gerrit_topics_match_project_filters() {
        let topic = "gerrit/openstack-infra/germqtt/comment-added";
        assert!(matches("gerrit/#", topic));
        assert!(matches("gerrit/+/+/comment-added", topic));
        assert!(!matches("gerrit/+/comment-added", topic));
    }

    #[test]
    fn filters_overlap_when_some_topic_matches_both() {
        assert!(overlaps("a/b", "a/b"));
        assert!(overlaps("#", "a/b"));
        assert!(overlaps("a/+", "a/b"));
        assert!(overlaps("a/+", "+/b"));
        assert!(overlaps("a/#", "a"));
        assert!(overlaps("a", "a/#"));
        assert!(overlaps("a/#", "+/b/c"));
        assert!(overlaps("secret/#", "+/x"));
        assert!(overlaps("+/+", "a/#"));
    }

    #[test]
    fn filters_do_not_overlap_when_no_topic_matches_both() {
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/+", "a/b/c"));
        assert!(!overlaps("a/+", "b/#"));
        assert!(!overlaps("a", "a/b"));
        assert!(!overlaps("a/+/c", "a/b/d"));
    }

    #[test]
    fn dollar_filters_overlap_only_dollar_literals() {
        assert!(!overlaps("#", "$SYS/#"));
        assert!(!overlaps("$SYS/#", "+/broker"));
        assert!(overlaps("$SYS/#", "$SYS/broker"));
        assert!(overlaps("$SYS/+", "$SYS/#"));
        assert!(!overlaps("$SYS/#", "$share/#"));
    }

    #[test]
    fn overlap_agrees_with_matching_on_sample_topics() {
        let filters = [
            "#", "+", "a", "a/#", "a/+", "+/b", "a/b", "a/+/c", "$SYS/#", "+/#", "/+",
        ];
        let topics = [
            "a", "b", "a/b", "a/c", "x/b", "a/b/c", "a/x/c", "$SYS", "$SYS/x", "/", "/a", "a/",
        ];
        for x in filters {
            for y in filters {
                let common = topics.iter().any(|t| matches(x, t) && matches(y, t));
                if common {
                    assert!(overlaps(x, y), "{x} and {y} share a sample topic");
                }
            }
        }
    }
}
