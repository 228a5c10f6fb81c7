//! Topic names and topic filters: what is valid, what matches what, and
//! shared subscriptions (`$share/{group}/{filter}`).
//!
//! Pure string functions, no allocation. `matches` and `covers` expect
//! arguments that already passed [`valid_topic_name`] / [`valid_topic_filter`]
//! and that are not shared filters (strip those with [`parse_shared`] first).

/// The longest topic a UTF-8 string field can carry.
const MAX_TOPIC_LEN: usize = u16::MAX as usize;

/// The prefix of a shared subscription filter.
pub const SHARE_PREFIX: &str = "$share/";

/// A topic a PUBLISH may name: non-empty, no wildcard, no NUL, at most
/// 65535 bytes.
pub fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TOPIC_LEN && !s.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// A topic filter a SUBSCRIBE may name: non-empty, no NUL, at most 65535
/// bytes, `+` only as a whole level, `#` only as the whole last level.
pub fn valid_topic_filter(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_TOPIC_LEN || s.contains('\0') {
        return false;
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "+" => {}
            "#" if levels.peek().is_none() => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// True if `topic` is matched by `filter`.
///
/// A filter whose first character is a wildcard does not match a topic
/// starting with `$` (MQTT-4.7.2-1): `#` does not see `$SYS/...`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True if every topic `filter` can match is also matched by `grant`: the
/// check behind "may subscribe to `filter`" when the ACL grants `grant`.
///
/// `#` covers `a/+/b` but not `$SYS/#`; `a/#` covers `a/+` and `a`;
/// `a/+` does not cover `a/#` (nor `a`).
pub fn covers(grant: &str, filter: &str) -> bool {
    // `filter` can match a `$` topic only if its first level is a literal
    // starting with `$`; a grant starting with a wildcard matches none.
    if filter.starts_with('$') && grant.starts_with(['+', '#']) {
        return false;
    }
    // Every topic has a first level, so at the root `+/#` is `#`.
    let grant = if grant == "+/#" { "#" } else { grant };
    let mut g = grant.split('/');
    let mut f = filter.split('/');
    loop {
        match (g.next(), f.next()) {
            // `#` matches whatever remains, including the parent level.
            (Some("#"), _) => return true,
            // `+` covers one level, literal or `+`, but not `#`.
            (Some("+"), Some(fl)) if fl != "#" => {}
            (Some(gl), Some(fl)) if gl == fl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A shared subscription `$share/{group}/{filter}`, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name: non-empty, no `/`, `+` or `#`.
    pub group: &'a str,
    /// The topic filter proper, valid per [`valid_topic_filter`].
    pub filter: &'a str,
}

/// Splits a shared subscription filter.
///
/// `Ok(None)` if `filter` is not a shared filter (does not start with
/// `$share/`); `Err` with a reason if it starts so but is not a valid shared
/// filter (`$share/`, `$share/g`, an empty group or one holding a wildcard,
/// an invalid inner filter).
pub fn parse_shared(filter: &str) -> Result<Option<SharedFilter<'_>>, &'static str> {
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        return Ok(None);
    };
    let Some((group, inner)) = rest.split_once('/') else {
        return Err("shared subscription without a topic filter");
    };
    if group.is_empty() {
        return Err("shared subscription with an empty share name");
    }
    if group.contains(['+', '#']) {
        return Err("share name contains a wildcard");
    }
    if !valid_topic_filter(inner) {
        return Err("shared subscription with an invalid topic filter");
    }
    Ok(Some(SharedFilter {
        group,
        filter: inner,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_reject_wildcards_nul_and_empty() {
        for (name, ok) in [
            ("a", true),
            ("a/b/c", true),
            ("/", true),
            ("a//b", true),
            ("$SYS/broker", true),
            ("", false),
            ("a/+", false),
            ("a/#", false),
            ("a+b", false),
            ("a\0b", false),
        ] {
            assert_eq!(valid_topic_name(name), ok, "{name:?}");
        }
        assert!(valid_topic_name(&"a".repeat(65535)));
        assert!(!valid_topic_name(&"a".repeat(65536)));
    }

    #[test]
    fn topic_filters_place_wildcards_on_whole_levels() {
        for (filter, ok) in [
            ("#", true),
            ("+", true),
            ("a/#", true),
            ("a/+/b", true),
            ("+/+", true),
            ("/+", true),
            ("a//b", true),
            ("$SYS/#", true),
            ("", false),
            ("a#", false),
            ("a/#/b", false),
            ("#/a", false),
            ("a/b#", false),
            ("a+", false),
            ("a/+b/c", false),
            ("##", false),
            ("a\0", false),
        ] {
            assert_eq!(valid_topic_filter(filter), ok, "{filter:?}");
        }
    }

    #[test]
    fn matching_follows_levels_and_the_dollar_rule() {
        for (filter, topic, ok) in [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a/b", true),
            ("#", "/", true),
            ("+/#", "a", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("+", "$SYS", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/+", "$SYS/x", true),
            ("a/$x", "a/$x", true),
            ("a/+", "a/$x", true),
        ] {
            assert_eq!(matches(filter, topic), ok, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn covers_means_every_matched_topic_is_granted() {
        for (grant, filter, ok) in [
            ("#", "a/+/b", true),
            ("#", "#", true),
            ("#", "a", true),
            ("#", "$SYS/#", false),
            ("#", "$SYS", false),
            ("+/#", "$x/y", false),
            ("$SYS/#", "$SYS/#", true),
            ("$SYS/#", "$SYS/a/+", true),
            ("a/#", "a/+", true),
            ("a/#", "a", true),
            ("a/#", "a/#", true),
            ("a/#", "a/b/#", true),
            ("a/#", "#", false),
            ("a/#", "b", false),
            ("a/+", "a/#", false),
            ("a/+", "a", false),
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/b/c", false),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("+/b", "a/b", true),
            ("+/b", "+/b", true),
            ("+/b", "#", false),
            ("+/#", "a", true),
            ("+/#", "#", true),
            ("a/+/#", "a/#", false),
            ("a/+/#", "a/b", true),
            ("a", "a/#", false),
            ("+/+/#", "+/#", false),
            ("a/+/#", "a/+", true),
        ] {
            assert_eq!(covers(grant, filter), ok, "{grant:?} covers {filter:?}");
        }
    }

    #[test]
    fn covers_agrees_with_matches_on_samples() {
        let filters = [
            "#", "+", "a/#", "a/+", "+/b", "a/b", "a/+/#", "$SYS/#", "a", "+/#", "+/+/#",
        ];
        let topics = [
            "a", "a/b", "a/c", "b", "a/b/c", "x/b", "$SYS/a", "$SYS", "/", "a/", "x/y/z",
        ];
        for grant in filters {
            for filter in filters {
                if covers(grant, filter) {
                    for topic in topics {
                        if matches(filter, topic) {
                            assert!(
                                matches(grant, topic),
                                "{grant} covers {filter} but misses {topic}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shared_filters_split_into_group_and_filter() {
        assert_eq!(
            parse_shared("$share/g/x/y"),
            Ok(Some(SharedFilter {
                group: "g",
                filter: "x/y"
            }))
        );
        assert_eq!(
            parse_shared("$share/g/#"),
            Ok(Some(SharedFilter {
                group: "g",
                filter: "#"
            }))
        );
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert_eq!(parse_shared("$share"), Ok(None));
        assert_eq!(parse_shared("$SHARE/g/x"), Ok(None));
        for bad in [
            "$share/",
            "$share/g",
            "$share//x",
            "$share/g/",
            "$share/g+/x",
            "$share/#/x",
            "$share/+/x",
            "$share/g/a#",
            "$share/g/#/a",
        ] {
            assert!(parse_shared(bad).is_err(), "{bad:?}");
        }
    }
}
