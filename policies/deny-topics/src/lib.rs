//! `deny-topics`: an ACL policy that keeps everyone away from a configured
//! list of topic filters and allows everything else. Put it in front of
//! (or instead of) a broader policy to close off part of the tree.
//!
//! Config (the policy's table in the broker TOML):
//!
//! ```toml
//! deny = ["internal/#", "+/secrets/#"]
//! ```
//!
//! A subscription is refused when its filter could receive a message under
//! a denied filter (the two overlap: `#` overlaps `internal/#`); a publish
//! is refused when its topic matches a denied filter. Connecting is always
//! allowed.
//!
//! The rules are plain Rust in this file, tested natively; `component.rs`
//! is the wit-bindgen glue, compiled only for wasm32.

#[cfg(target_arch = "wasm32")]
mod component;

/// The config keys this policy reads; any other key is reported.
pub const CONFIG_KEYS: &[&str] = &["deny"];

/// `Ok` allows, `Err` denies with the reason.
pub type Decision = Result<(), String>;

/// The parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    deny: Vec<String>,
}

impl Policy {
    /// Reads the config through `get` (the `config.get` import). Errors
    /// name the key and what is wrong with it.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let deny = match get("deny") {
            None => Vec::new(),
            Some(text) => parse_filters(&text).map_err(|e| format!("config `deny`: {e}"))?,
        };
        Ok(Policy { deny })
    }

    /// Whether the config denies nothing (worth a warning: the policy is
    /// then a no-op).
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
    }

    /// Connecting is always allowed.
    pub fn check_connect(&self) -> Decision {
        Ok(())
    }

    /// Refuses a filter that overlaps a denied filter.
    pub fn check_subscribe(&self, filter: &str) -> Decision {
        match self
            .deny
            .iter()
            .find(|denied| topic_filter::overlaps(filter, denied))
        {
            Some(denied) => Err(format!("filter `{filter}` overlaps denied `{denied}`")),
            None => Ok(()),
        }
    }

    /// Refuses a topic that a denied filter matches.
    pub fn check_publish(&self, topic: &str) -> Decision {
        match self
            .deny
            .iter()
            .find(|denied| topic_filter::matches(denied, topic))
        {
            Some(denied) => Err(format!("topic `{topic}` is denied by `{denied}`")),
            None => Ok(()),
        }
    }
}

fn parse_filters(text: &str) -> Result<Vec<String>, String> {
    let filters: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("expected a list of topic filters: {e}"))?;
    for filter in &filters {
        topic_filter::validate(filter).map_err(|e| format!("filter `{filter}`: {e}"))?;
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(deny: &str) -> Result<Policy, String> {
        Policy::from_config(|key| (key == "deny").then(|| deny.to_owned()))
    }

    fn internal() -> Policy {
        policy(r#"["internal/#", "+/secrets/#", "$SYS/#"]"#).unwrap()
    }

    #[test]
    fn connect_is_always_allowed() {
        assert_eq!(internal().check_connect(), Ok(()));
    }

    #[test]
    fn subscribing_inside_a_denied_filter_is_refused() {
        let p = internal();
        assert!(p.check_subscribe("internal/#").is_err());
        assert!(p.check_subscribe("internal/db/password").is_err());
        assert!(p.check_subscribe("gerrit/secrets/key").is_err());
        assert!(p.check_subscribe("$SYS/broker/uptime").is_err());
    }

    #[test]
    fn subscribing_to_a_wider_filter_that_would_receive_denied_topics_is_refused() {
        let p = internal();
        assert_eq!(
            p.check_subscribe("#"),
            Err("filter `#` overlaps denied `internal/#`".to_owned())
        );
        assert!(p.check_subscribe("+/db").is_err());
        assert!(p.check_subscribe("gerrit/+/key").is_err());
        // `gerrit/secrets/...` is under `+/secrets/#`.
        assert!(p.check_subscribe("gerrit/#").is_err());
    }

    #[test]
    fn subscribing_elsewhere_is_allowed() {
        let p = internal();
        assert_eq!(p.check_subscribe("gerrit/nova/#"), Ok(()));
        assert_eq!(p.check_subscribe("launchpad/nova/bug/+"), Ok(()));
        assert_eq!(p.check_subscribe("gerrit/public"), Ok(()));
    }

    #[test]
    fn publishing_to_a_denied_topic_is_refused() {
        let p = internal();
        assert_eq!(
            p.check_publish("internal/db"),
            Err("topic `internal/db` is denied by `internal/#`".to_owned())
        );
        assert!(p.check_publish("internal").is_err());
        assert!(p.check_publish("ansible/secrets/vault").is_err());
    }

    #[test]
    fn publishing_elsewhere_is_allowed() {
        let p = internal();
        assert_eq!(p.check_publish("gerrit/nova/comment-added"), Ok(()));
        assert_eq!(p.check_publish("secrets"), Ok(()));
        assert_eq!(p.check_publish("internalx/y"), Ok(()));
    }

    #[test]
    fn without_deny_everything_is_allowed() {
        let p = Policy::from_config(|_| None).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.check_subscribe("#"), Ok(()));
        assert_eq!(p.check_publish("internal/x"), Ok(()));
    }

    #[test]
    fn bad_config_is_reported_against_its_key() {
        assert!(
            policy(r#"{"a":1}"#)
                .unwrap_err()
                .starts_with("config `deny`: expected a list")
        );
        assert_eq!(
            policy(r#"["a+"]"#).unwrap_err(),
            "config `deny`: filter `a+`: `+` must be a whole level"
        );
    }
}
