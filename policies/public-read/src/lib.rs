//! `public-read`: the ACL policy of the default config. Anyone may connect
//! and subscribe (except to `$` topics, unless configured otherwise);
//! only authenticated users may publish, each to the topic filters the
//! config grants them.
//!
//! Config (the policy's table in the broker TOML):
//!
//! ```toml
//! deny_dollar = true                              # default: refuse `$...` filters
//! publishers = { ansible = ["ansible/#"], logs = ["logs/+/+"] }
//! ```
//!
//! The rules are plain Rust in this file, tested natively; `component.rs`
//! is the wit-bindgen glue, compiled only for wasm32.

use std::collections::BTreeMap;

#[cfg(target_arch = "wasm32")]
mod component;

/// The config keys this policy reads; any other key is reported.
pub const CONFIG_KEYS: &[&str] = &["deny_dollar", "publishers"];

/// `Ok` allows, `Err` denies with the reason.
pub type Decision = Result<(), String>;

/// The parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    deny_dollar: bool,
    publishers: BTreeMap<String, Vec<String>>,
}

impl Policy {
    /// Reads the config through `get` (the `config.get` import), checking
    /// every value. Errors name the key and what is wrong with it.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let deny_dollar = match get("deny_dollar").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(format!(
                    "config `deny_dollar`: expected true or false, got `{other}`"
                ));
            }
        };
        let publishers = match get("publishers") {
            None => BTreeMap::new(),
            Some(text) => {
                parse_publishers(&text).map_err(|e| format!("config `publishers`: {e}"))?
            }
        };
        Ok(Policy {
            deny_dollar,
            publishers,
        })
    }

    /// Anyone may connect.
    pub fn check_connect(&self) -> Decision {
        Ok(())
    }

    /// Anyone may subscribe, except to `$` filters when `deny_dollar`.
    pub fn check_subscribe(&self, filter: &str) -> Decision {
        if self.deny_dollar && filter.starts_with('$') {
            return Err(format!(
                "subscribing to `$` topics is not allowed: `{filter}`"
            ));
        }
        Ok(())
    }

    /// Only an authenticated `username` with a granted filter that matches
    /// `topic` may publish.
    pub fn check_publish(&self, username: Option<&str>, topic: &str) -> Decision {
        let Some(username) = username else {
            return Err("anonymous clients may not publish".to_owned());
        };
        let granted = self
            .publishers
            .get(username)
            .is_some_and(|filters| filters.iter().any(|f| topic_filter::matches(f, topic)));
        if granted {
            Ok(())
        } else {
            Err(format!("user `{username}` may not publish to `{topic}`"))
        }
    }
}

fn parse_publishers(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let publishers: BTreeMap<String, Vec<String>> = serde_json::from_str(text)
        .map_err(|e| format!("expected a table of user = [topic filters]: {e}"))?;
    for (user, filters) in &publishers {
        for filter in filters {
            topic_filter::validate(filter)
                .map_err(|e| format!("user `{user}`: filter `{filter}`: {e}"))?;
        }
    }
    Ok(publishers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> Result<Policy, String> {
        Policy::from_config(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    fn ansible() -> Policy {
        policy(&[(
            "publishers",
            r#"{"ansible":["ansible/#"],"logs":["logs/+/done","logs/x"]}"#,
        )])
        .unwrap()
    }

    #[test]
    fn anyone_may_connect() {
        assert_eq!(policy(&[]).unwrap().check_connect(), Ok(()));
    }

    #[test]
    fn anyone_may_subscribe_to_ordinary_filters() {
        let p = policy(&[]).unwrap();
        for filter in ["#", "gerrit/#", "+/+/comment-added", "launchpad/nova/bug/1"] {
            assert_eq!(p.check_subscribe(filter), Ok(()), "{filter}");
        }
    }

    #[test]
    fn dollar_filters_are_refused_by_default() {
        let p = policy(&[]).unwrap();
        assert!(p.check_subscribe("$SYS/#").is_err());
        assert!(p.check_subscribe("$internal/x").is_err());
    }

    #[test]
    fn dollar_filters_are_allowed_when_configured() {
        let p = policy(&[("deny_dollar", "false")]).unwrap();
        assert_eq!(p.check_subscribe("$SYS/#"), Ok(()));
    }

    #[test]
    fn anonymous_publish_is_denied() {
        assert_eq!(
            ansible().check_publish(None, "ansible/run"),
            Err("anonymous clients may not publish".to_owned())
        );
    }

    #[test]
    fn user_may_publish_under_granted_filters_only() {
        let p = ansible();
        assert_eq!(p.check_publish(Some("ansible"), "ansible"), Ok(()));
        assert_eq!(
            p.check_publish(Some("ansible"), "ansible/playbook/done"),
            Ok(())
        );
        assert_eq!(p.check_publish(Some("logs"), "logs/worker1/done"), Ok(()));
        assert_eq!(p.check_publish(Some("logs"), "logs/x"), Ok(()));
        assert!(
            p.check_publish(Some("logs"), "logs/worker1/started")
                .is_err()
        );
        assert!(p.check_publish(Some("ansible"), "gerrit/x").is_err());
        assert!(p.check_publish(Some("logs"), "ansible/run").is_err());
    }

    #[test]
    fn unknown_user_may_not_publish() {
        assert_eq!(
            ansible().check_publish(Some("mallory"), "ansible/run"),
            Err("user `mallory` may not publish to `ansible/run`".to_owned())
        );
    }

    #[test]
    fn without_publishers_nobody_may_publish() {
        assert!(
            policy(&[])
                .unwrap()
                .check_publish(Some("ansible"), "ansible/run")
                .is_err()
        );
    }

    #[test]
    fn bad_config_is_reported_against_its_key() {
        let err = policy(&[("deny_dollar", "yes")]).unwrap_err();
        assert!(err.starts_with("config `deny_dollar`"), "{err}");
        let err = policy(&[("publishers", "[1,2]")]).unwrap_err();
        assert!(err.starts_with("config `publishers`"), "{err}");
        let err = policy(&[("publishers", r#"{"a":["x/#/y"]}"#)]).unwrap_err();
        assert_eq!(
            err,
            "config `publishers`: user `a`: filter `x/#/y`: `#` must be the whole last level"
        );
    }
}
