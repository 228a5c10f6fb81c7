//! `firehose policy try`: runs one policy component against sample
//! requests, without a broker, and prints what it decided. For policy
//! authors: build, try, adjust, in a loop of seconds.
//!
//! A request is one line (an argument, or a line on stdin):
//!
//! ```text
//! connect [user=NAME] [listener=NAME] [id=CLIENT_ID]
//! subscribe FILTER [user=NAME] ...
//! publish TOPIC [PAYLOAD] [user=NAME] [qos=0|1|2] [retain=true]
//! ```
//!
//! An ACL policy answers every kind; a transform only `publish` (its
//! `apply`). `user=` stands for a user whose password the broker verified.
//! The component runs under the same limits and checks as in the broker
//! (memory cap, deadline, nothing granted), so a trap or a missed deadline
//! shows here as it would there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use firehose_wasm::{
    AclPolicy, Client, ComponentCache, Decision, Limits, Message, Outcome, PolicySpec, Qos,
    StdioMode, TransformPolicy, WasmEngine, World,
};

/// A loaded policy of either kind.
pub enum TrialPolicy {
    Acl(AclPolicy),
    Transform(TransformPolicy),
}

/// One parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect(Client),
    Subscribe(Client, String),
    Publish(Client, Message),
}

/// A request line that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("request {line:?}: {message}")]
pub struct RequestError {
    line: String,
    message: String,
}

impl TrialPolicy {
    /// Checks `path`, and loads it as the policy its world says, with
    /// `config` as its config table.
    pub async fn load(
        path: &Path,
        config: BTreeMap<String, String>,
        stdio: StdioMode,
    ) -> anyhow::Result<TrialPolicy> {
        let engine = WasmEngine::new()?;
        let cache = ComponentCache::disabled();
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let info = firehose_wasm::check_component(&engine, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let spec = PolicySpec {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "policy".into()),
            path: path.to_owned(),
            config,
            limits: Limits::default(),
            stdio,
        };
        Ok(match info.world {
            World::AclPolicy => TrialPolicy::Acl(AclPolicy::load(&engine, &cache, spec).await?),
            World::TransformPolicy => {
                TrialPolicy::Transform(TransformPolicy::load(&engine, &cache, spec).await?)
            }
            World::Source => anyhow::bail!(
                "{} is a source, not a policy: `policy try` runs acl and transform policies",
                path.display()
            ),
        })
    }

    /// One line of what `request` got, for printing.
    pub async fn answer(&self, request: &Request) -> Result<String, RequestError> {
        let mut out = describe(request);
        out.push_str(" -> ");
        match (self, request) {
            (TrialPolicy::Acl(p), Request::Connect(client)) => {
                decision(&mut out, p.check_connect(client).await)
            }
            (TrialPolicy::Acl(p), Request::Subscribe(client, filter)) => {
                decision(&mut out, p.check_subscribe(client, filter).await)
            }
            (TrialPolicy::Acl(p), Request::Publish(client, message)) => {
                decision(&mut out, p.check_publish(client, message).await)
            }
            (TrialPolicy::Transform(p), Request::Publish(_, message)) => {
                outcome(&mut out, p.apply(message).await)
            }
            (TrialPolicy::Transform(_), _) => {
                return Err(RequestError {
                    line: describe(request),
                    message: "a transform only answers `publish`".into(),
                });
            }
        }
        Ok(out)
    }
}

fn decision(out: &mut String, answer: Result<Decision, firehose_wasm::PolicyError>) {
    match answer {
        Ok(Decision::Allow) => out.push_str("allow"),
        Ok(Decision::Deny(reason)) => {
            let _ = write!(out, "deny: {reason}");
        }
        Err(error) => {
            let _ = write!(out, "FAILED ({error}); the broker denies");
        }
    }
}

fn outcome(out: &mut String, answer: Result<Outcome, firehose_wasm::PolicyError>) {
    match answer {
        Ok(Outcome::Pass) => out.push_str("pass"),
        Ok(Outcome::Drop) => out.push_str("drop"),
        Ok(Outcome::Replace(messages)) => {
            let _ = write!(out, "replace with {}:", messages.len());
            for m in messages {
                let _ = write!(
                    out,
                    "\n    {} qos={} retain={}",
                    m.topic,
                    qos_number(m.qos),
                    m.retain
                );
                if let Some(content_type) = &m.content_type {
                    let _ = write!(out, " content-type={content_type}");
                }
                for (name, value) in &m.user_properties {
                    let _ = write!(out, " [{name}={value}]");
                }
                let _ = write!(out, " {}", String::from_utf8_lossy(&m.payload));
            }
        }
        Err(error) => {
            let _ = write!(out, "FAILED ({error}); the chain's on_error applies");
        }
    }
}

fn describe(request: &Request) -> String {
    let who = |c: &Client| match &c.username {
        Some(user) => format!("user={user}"),
        None => "anonymous".to_owned(),
    };
    match request {
        Request::Connect(c) => format!("connect ({})", who(c)),
        Request::Subscribe(c, filter) => format!("subscribe {filter} ({})", who(c)),
        Request::Publish(c, m) => format!("publish {} ({})", m.topic, who(c)),
    }
}

fn qos_number(qos: Qos) -> u8 {
    match qos {
        Qos::AtMostOnce => 0,
        Qos::AtLeastOnce => 1,
        Qos::ExactlyOnce => 2,
    }
}

impl Request {
    /// Parses one request line (see the module doc).
    pub fn parse(line: &str) -> Result<Request, RequestError> {
        let error = |message: &str| RequestError {
            line: line.to_owned(),
            message: message.to_owned(),
        };
        let mut words = split_words(line).map_err(|m| error(&m))?.into_iter();
        let verb = words.next().ok_or_else(|| error("empty request"))?;
        let mut positional = Vec::new();
        let mut client = Client::anonymous("policy-try", "mqtt", "127.0.0.1:50000");
        let mut qos = Qos::AtMostOnce;
        let mut retain = false;
        for word in words {
            match word.split_once('=') {
                Some(("user", v)) => client.username = Some(v.to_owned()),
                Some(("listener", v)) => client.listener = v.to_owned(),
                Some(("id", v)) => client.id = v.to_owned(),
                Some(("qos", v)) => {
                    qos = match v {
                        "0" => Qos::AtMostOnce,
                        "1" => Qos::AtLeastOnce,
                        "2" => Qos::ExactlyOnce,
                        _ => return Err(error("qos must be 0, 1 or 2")),
                    }
                }
                Some(("retain", v)) => {
                    retain = v
                        .parse()
                        .map_err(|_| error("retain must be true or false"))?
                }
                _ => positional.push(word),
            }
        }
        let mut positional = positional.into_iter();
        let request = match verb.as_str() {
            "connect" => Request::Connect(client),
            "subscribe" => {
                let filter = positional
                    .next()
                    .ok_or_else(|| error("subscribe needs a topic filter"))?;
                if !firehose_mqtt::topic::valid_topic_filter(&filter) {
                    return Err(error("not a valid MQTT topic filter"));
                }
                Request::Subscribe(client, filter)
            }
            "publish" => {
                let topic = positional
                    .next()
                    .ok_or_else(|| error("publish needs a topic"))?;
                if !firehose_mqtt::topic::valid_topic_name(&topic) {
                    return Err(error("not a valid MQTT topic name (no wildcards)"));
                }
                let payload = positional.next().unwrap_or_default();
                let mut message = Message::new(topic, payload.into_bytes());
                message.qos = qos;
                message.retain = retain;
                Request::Publish(client, message)
            }
            other => {
                return Err(error(&format!(
                    "unknown request {other:?}: connect, subscribe or publish"
                )));
            }
        };
        if let Some(extra) = positional.next() {
            return Err(error(&format!("unexpected {extra:?}")));
        }
        Ok(request)
    }
}

/// Splits a line into words. A word that starts with a single or double
/// quote runs to the matching quote (spaces and the other quote kept);
/// quotes inside a word are plain characters, so `{"k":1}` stays as is.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') if !in_word => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `KEY=VALUE` settings as the component's config table: VALUE is read as
/// a TOML value (`42`, `true`, `["a/#"]`, `{ u = ["x/#"] }`), else taken as
/// a plain string; then flattened as the broker does.
pub fn config_from_settings(settings: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut table = toml::Table::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set {setting:?}: expected KEY=VALUE"))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        table.insert(key.to_owned(), value);
    }
    Ok(crate::config::flatten(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds_of_request() {
        let Request::Connect(c) = Request::parse("connect user=ansible").unwrap() else {
            panic!()
        };
        assert_eq!(c.username.as_deref(), Some("ansible"));
        let Request::Subscribe(c, f) = Request::parse("subscribe gerrit/# listener=ws").unwrap()
        else {
            panic!()
        };
        assert_eq!((c.listener.as_str(), f.as_str()), ("ws", "gerrit/#"));
        let Request::Publish(c, m) =
            Request::parse(r#"publish a/b '{"k": 1}' qos=1 retain=true"#).unwrap()
        else {
            panic!()
        };
        assert!(c.username.is_none());
        assert_eq!(m.topic, "a/b");
        assert_eq!(m.payload, br#"{"k": 1}"#);
        assert_eq!((m.qos, m.retain), (Qos::AtLeastOnce, true));
        let Request::Publish(_, m) = Request::parse(r#"publish a {"k":"v"}"#).unwrap() else {
            panic!()
        };
        assert_eq!(m.payload, br#"{"k":"v"}"#, "quotes inside a word are kept");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        for (line, says) in [
            ("", "empty"),
            ("frobnicate", "unknown request"),
            ("subscribe", "needs a topic filter"),
            ("subscribe a/#/b", "not a valid MQTT topic filter"),
            ("publish a/+", "no wildcards"),
            ("publish a b c", "unexpected"),
            ("publish a qos=3", "qos must be"),
            ("publish 'a", "unclosed quote"),
            ("publish a {\"k\":1} extra", "unexpected"),
        ] {
            let err = Request::parse(line).unwrap_err().to_string();
            assert!(err.contains(says), "{line:?}: {err}");
        }
    }

    #[test]
    fn settings_are_toml_values_or_plain_strings() {
        let config = config_from_settings(&[
            "fields=[\"email\", \"name\"]".into(),
            "prefix=public/".into(),
            "deny_dollar=false".into(),
        ])
        .unwrap();
        assert_eq!(config["fields"], r#"["email","name"]"#);
        assert_eq!(config["prefix"], "public/");
        assert_eq!(config["deny_dollar"], "false");
        assert!(config_from_settings(&["novalue".into()]).is_err());
    }
}
