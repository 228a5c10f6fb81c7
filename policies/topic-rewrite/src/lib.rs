//! `topic-rewrite`: a transform that moves messages to other topics:
//! first renames a leading part of the topic, then prepends a prefix.
//!
//! Config (the policy's table in the broker TOML), either key or both:
//!
//! ```toml
//! rename = { "review/" = "gerrit/", "lp/" = "launchpad/" }
//! prefix = "mirror/"
//! ```
//!
//! With both, `review/nova/change-merged` becomes
//! `mirror/gerrit/nova/change-merged`. When several `rename` keys match,
//! the longest wins. A topic that neither changes passes unchanged.
//!
//! The rules are plain Rust in this file, tested natively; `component.rs`
//! is the wit-bindgen glue, compiled only for wasm32.

use std::collections::BTreeMap;

#[cfg(target_arch = "wasm32")]
mod component;

/// The config keys this policy reads; any other key is reported.
pub const CONFIG_KEYS: &[&str] = &["prefix", "rename"];

/// The parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    prefix: String,
    /// (from, to), longest `from` first.
    rename: Vec<(String, String)>,
}

impl Rewrite {
    /// Reads the config through `get` (the `config.get` import). Errors
    /// name the key and what is wrong with it.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let prefix = get("prefix").unwrap_or_default();
        check_topic_part(&prefix).map_err(|e| format!("config `prefix`: {e}"))?;
        let rename = match get("rename") {
            None => Vec::new(),
            Some(text) => parse_rename(&text).map_err(|e| format!("config `rename`: {e}"))?,
        };
        Ok(Rewrite { prefix, rename })
    }

    /// Whether the config changes nothing (worth a warning).
    pub fn is_identity(&self) -> bool {
        self.prefix.is_empty() && self.rename.is_empty()
    }

    /// The new topic, or `None` when it stays the same.
    pub fn rewrite(&self, topic: &str) -> Option<String> {
        let renamed = self.rename.iter().find_map(|(from, to)| {
            topic
                .strip_prefix(from.as_str())
                .map(|rest| format!("{to}{rest}"))
        });
        let new = match renamed {
            Some(renamed) => format!("{}{renamed}", self.prefix),
            None if self.prefix.is_empty() => return None,
            None => format!("{}{topic}", self.prefix),
        };
        (new != topic).then_some(new)
    }
}

fn parse_rename(text: &str) -> Result<Vec<(String, String)>, String> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| format!("expected a table of \"from/\" = \"to/\": {e}"))?;
    let mut rename = Vec::with_capacity(map.len());
    for (from, to) in map {
        if from.is_empty() {
            return Err("an empty prefix cannot be renamed; use `prefix`".to_owned());
        }
        check_topic_part(&from).map_err(|e| format!("`{from}`: {e}"))?;
        check_topic_part(&to).map_err(|e| format!("`{from}` = `{to}`: {e}"))?;
        rename.push((from, to));
    }
    rename.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    Ok(rename)
}

/// A piece of a topic name: no wildcards, no NUL.
fn check_topic_part(part: &str) -> Result<(), String> {
    match part.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        Some(c) => Err(format!("topic names cannot contain {c:?}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(pairs: &[(&str, &str)]) -> Result<Rewrite, String> {
        Rewrite::from_config(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn prefix_is_prepended() {
        let r = rewrite(&[("prefix", "mirror/")]).unwrap();
        assert_eq!(
            r.rewrite("gerrit/nova/change-merged").as_deref(),
            Some("mirror/gerrit/nova/change-merged")
        );
    }

    #[test]
    fn matching_prefix_is_renamed() {
        let r = rewrite(&[("rename", r#"{"review/":"gerrit/","lp/":"launchpad/"}"#)]).unwrap();
        assert_eq!(
            r.rewrite("review/nova/comment-added").as_deref(),
            Some("gerrit/nova/comment-added")
        );
        assert_eq!(
            r.rewrite("lp/nova/bug/1").as_deref(),
            Some("launchpad/nova/bug/1")
        );
    }

    #[test]
    fn topic_without_a_matching_rename_passes() {
        let r = rewrite(&[("rename", r#"{"review/":"gerrit/"}"#)]).unwrap();
        assert_eq!(r.rewrite("reviews/x"), None);
        assert_eq!(r.rewrite("gerrit/review/x"), None);
    }

    #[test]
    fn longest_rename_wins() {
        let r = rewrite(&[("rename", r#"{"a/":"x/","a/b/":"y/"}"#)]).unwrap();
        assert_eq!(r.rewrite("a/b/c").as_deref(), Some("y/c"));
        assert_eq!(r.rewrite("a/c").as_deref(), Some("x/c"));
    }

    #[test]
    fn rename_then_prefix() {
        let r = rewrite(&[
            ("prefix", "mirror/"),
            ("rename", r#"{"review/":"gerrit/"}"#),
        ])
        .unwrap();
        assert_eq!(
            r.rewrite("review/nova").as_deref(),
            Some("mirror/gerrit/nova")
        );
        assert_eq!(r.rewrite("other").as_deref(), Some("mirror/other"));
    }

    #[test]
    fn rename_to_the_same_topic_passes() {
        let r = rewrite(&[("rename", r#"{"a/":"a/"}"#)]).unwrap();
        assert_eq!(r.rewrite("a/b"), None);
    }

    #[test]
    fn empty_config_changes_nothing() {
        let r = rewrite(&[]).unwrap();
        assert!(r.is_identity());
        assert_eq!(r.rewrite("a/b"), None);
    }

    #[test]
    fn bad_config_is_reported_against_its_key() {
        assert_eq!(
            rewrite(&[("prefix", "a/+/")]).unwrap_err(),
            "config `prefix`: topic names cannot contain '+'"
        );
        assert!(
            rewrite(&[("rename", "[]")])
                .unwrap_err()
                .starts_with("config `rename`: expected a table")
        );
        assert!(
            rewrite(&[("rename", r#"{"":"x/"}"#)])
                .unwrap_err()
                .starts_with("config `rename`: an empty prefix")
        );
        assert_eq!(
            rewrite(&[("rename", r#"{"a/":"b/#"}"#)]).unwrap_err(),
            "config `rename`: `a/` = `b/#`: topic names cannot contain '#'"
        );
    }
}
