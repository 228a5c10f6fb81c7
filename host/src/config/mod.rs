//! The broker's configuration: TOML read with serde, then validated, with
//! every error naming the file, the key and (where serde gives it) the line.
//!
//! `Config::default_embedded()` is what `firehose serve` runs without
//! `--config`: the file `default.toml` next to this module.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod components;
mod external;
mod sources;

pub use components::{
    AclConfig, ComponentConfig, OnError, TransformChainConfig, component_dir, flatten,
};
pub use sources::{GrantsConfig, SourceConfig, SourceLimitsConfig, WebhookConfig, WebhookSecret};

/// The embedded default configuration, as TOML text.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax or type error; toml's message names the key and shows
    /// the line.
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    /// A value that parsed but makes no sense; `key` is its path.
    #[error("invalid config {origin}: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where generated TLS material and caches live.
    pub data_dir: Option<PathBuf>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub anonymous: AnonymousConfig,
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    /// An ACL policy component that decides instead of the built-in grants.
    pub acl: Option<AclConfig>,
    /// Transform chains, by topic filter; the first that matches applies.
    #[serde(default, rename = "transform")]
    pub transforms: Vec<TransformChainConfig>,
    /// Sources: publisher components the broker runs and supervises.
    #[serde(default, rename = "source")]
    pub sources: Vec<sources::SourceConfig>,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl ListenerKind {
    pub fn uses_tls(self) -> bool {
        matches!(self, ListenerKind::Mqtts | ListenerKind::Wss)
    }
}

/// One `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub name: String,
    pub kind: ListenerKind,
    pub address: SocketAddr,
}

/// `[tls]`: the certificate for every TLS listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Extra names for the generated certificate.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub connect_timeout_secs: u64,
    pub max_packet_size: u32,
    pub receive_maximum: u16,
    pub max_inflight: u16,
    pub max_queued_messages: usize,
    pub max_queued_qos0: usize,
    pub max_keep_alive: u16,
    pub max_session_expiry_secs: u32,
    pub topic_alias_maximum: u16,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout_secs: 10,
            max_packet_size: 1024 * 1024,
            receive_maximum: 32,
            max_inflight: 32,
            max_queued_messages: 1000,
            max_queued_qos0: 1000,
            max_keep_alive: 65535,
            max_session_expiry_secs: 86_400,
            topic_alias_maximum: 64,
        }
    }
}

/// `[anonymous]`: what clients without a username may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnonymousConfig {
    pub connect: bool,
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
}

impl Default for AnonymousConfig {
    fn default() -> AnonymousConfig {
        AnonymousConfig {
            connect: true,
            subscribe: vec!["#".to_owned()],
            publish: Vec::new(),
        }
    }
}

/// One `[[user]]`: an authenticated client and its grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// An argon2 PHC string (`firehose hash-password` prints one).
    pub password_hash: String,
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default = "default_user_subscribe")]
    pub subscribe: Vec<String>,
}

fn default_user_subscribe() -> Vec<String> {
    vec!["#".to_owned()]
}

impl Config {
    /// The embedded default.
    pub fn default_embedded() -> Config {
        let mut config = Config::from_toml(DEFAULT_TOML, "(embedded default)")
            .expect("the embedded default config is valid");
        config.resolve_component_paths(&component_dir());
        config
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::from_toml_at(&text, &path.display().to_string(), dir)?;
        config.resolve_component_paths(dir);
        Ok(config)
    }

    /// Makes every relative component path absolute against `base`.
    fn resolve_component_paths(&mut self, base: &Path) {
        for component in self.components_mut() {
            component.resolve(base);
        }
        sources::resolve_paths(&mut self.sources, base);
    }

    /// Every policy component entry: `[acl]`, then each chain's components.
    fn components_mut(&mut self) -> impl Iterator<Item = &mut ComponentConfig> {
        self.acl.iter_mut().chain(
            self.transforms
                .iter_mut()
                .flat_map(|chain| chain.components.iter_mut()),
        )
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    /// Relative `{ file = ... }` paths are relative to the working
    /// directory; [`Config::load`] makes them relative to the file.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::from_toml_at(text, origin, Path::new(""))
    }

    /// Parses TOML text, expands values from outside the file (see
    /// `external`) with `base` for relative file paths, and validates.
    fn from_toml_at(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |(key, message)| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        config.expand_external(base).map_err(invalid)?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Expands `${...}` and `{ file = ... }` in the components' config
    /// tables and the sources' grants.
    fn expand_external(&mut self, base: &Path) -> Result<(), (String, String)> {
        if let Some(acl) = &mut self.acl {
            external::expand_table(&mut acl.config, "acl.config", base)?;
        }
        for (i, chain) in self.transforms.iter_mut().enumerate() {
            for (j, component) in chain.components.iter_mut().enumerate() {
                let key = format!("transform[{i}].component[{j}].config");
                external::expand_table(&mut component.config, &key, base)?;
            }
        }
        for (i, source) in self.sources.iter_mut().enumerate() {
            external::expand_table(&mut source.config, &format!("source[{i}].config"), base)?;
            for (j, grant) in source.grants.tcp.iter_mut().enumerate() {
                *grant = external::expand_str(grant, &format!("source[{i}].grants.tcp[{j}]"))?;
            }
            for (j, grant) in source.grants.http.iter_mut().enumerate() {
                *grant = external::expand_str(grant, &format!("source[{i}].grants.http[{j}]"))?;
            }
            if let Some(ca) = &mut source.grants.http_ca {
                let key = format!("source[{i}].grants.http_ca");
                let path = ca
                    .to_str()
                    .ok_or_else(|| (key.clone(), "not UTF-8".to_owned()))?;
                // Resolved here, before validation reads it.
                *ca = base.join(external::expand_str(path, &key)?);
            }
            if let Some(secret) = &mut source.webhook.secret {
                secret.expand(&format!("source[{i}].webhook.secret"))?;
            }
        }
        Ok(())
    }

    /// The data directory: configured, else $FIREHOSE_DATA_DIR, else
    /// $XDG_DATA_HOME/firehose, else ~/.local/share/firehose, else
    /// ./firehose-data.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = env("FIREHOSE_DATA_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = env("XDG_DATA_HOME") {
            return PathBuf::from(dir).join("firehose");
        }
        if let Some(home) = env("HOME") {
            return PathBuf::from(home).join(".local/share/firehose");
        }
        PathBuf::from("firehose-data")
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.listeners.is_empty() {
            return Err(("listener".into(), "at least one listener is needed".into()));
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let key = |field: &str| format!("listener[{i}].{field}");
            if listener.name.is_empty() {
                return Err((key("name"), "must not be empty".into()));
            }
            if !names.insert(listener.name.as_str()) {
                return Err((key("name"), format!("duplicate name {:?}", listener.name)));
            }
            if listener.address.port() != 0 && !addresses.insert(listener.address) {
                return Err((
                    key("address"),
                    format!("{} is used by another listener", listener.address),
                ));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            let missing = if self.tls.cert.is_some() {
                "key"
            } else {
                "cert"
            };
            return Err((
                format!("tls.{missing}"),
                "tls.cert and tls.key go together".into(),
            ));
        }
        let limits = &self.limits;
        if limits.connect_timeout_secs == 0 {
            return Err(("limits.connect_timeout_secs".into(), "must be > 0".into()));
        }
        if !(64..=268_435_460).contains(&limits.max_packet_size) {
            return Err((
                "limits.max_packet_size".into(),
                "must be between 64 and 268435460 bytes".into(),
            ));
        }
        if limits.receive_maximum == 0 {
            return Err(("limits.receive_maximum".into(), "must be > 0".into()));
        }
        if limits.max_inflight == 0 {
            return Err(("limits.max_inflight".into(), "must be > 0".into()));
        }
        if limits.max_keep_alive == 0 {
            return Err(("limits.max_keep_alive".into(), "must be > 0".into()));
        }
        if let Some(acl) = &self.acl {
            acl.limits
                .validate()
                .map_err(|message| ("acl".to_owned(), message))?;
        }
        self.validate_transforms()?;
        sources::validate(&self.sources)?;
        check_filters("anonymous.subscribe", &self.anonymous.subscribe)?;
        check_filters("anonymous.publish", &self.anonymous.publish)?;
        let mut users = HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = |field: &str| format!("user[{i}].{field}");
            if user.name.is_empty() {
                return Err((key("name"), "must not be empty".into()));
            }
            if !users.insert(user.name.as_str()) {
                return Err((key("name"), format!("duplicate user {:?}", user.name)));
            }
            if let Err(e) = argon2::PasswordHash::new(&user.password_hash) {
                return Err((
                    key("password_hash"),
                    format!("not an argon2 PHC string ({e}); `firehose hash-password` makes one"),
                ));
            }
            check_filters(&key("publish"), &user.publish)?;
            check_filters(&key("subscribe"), &user.subscribe)?;
        }
        Ok(())
    }
}

impl Config {
    fn validate_transforms(&self) -> Result<(), (String, String)> {
        let mut names = HashSet::new();
        for (i, chain) in self.transforms.iter().enumerate() {
            let key = |field: &str| format!("transform[{i}].{field}");
            if chain.name.is_empty() {
                return Err((key("name"), "must not be empty".into()));
            }
            if !names.insert(chain.name.as_str()) {
                return Err((key("name"), format!("duplicate chain {:?}", chain.name)));
            }
            if chain.topics.is_empty() {
                return Err((key("topics"), "at least one topic filter is needed".into()));
            }
            check_filters(&key("topics"), &chain.topics)?;
            if chain.components.is_empty() {
                return Err((
                    key("component"),
                    "at least one [[transform.component]] is needed".into(),
                ));
            }
            for (j, component) in chain.components.iter().enumerate() {
                component
                    .limits
                    .validate()
                    .map_err(|message| (key(&format!("component[{j}]")), message))?;
            }
        }
        Ok(())
    }
}

fn check_filters(key: &str, filters: &[String]) -> Result<(), (String, String)> {
    for (i, filter) in filters.iter().enumerate() {
        if !firehose_mqtt::topic::valid_topic_filter(filter) {
            return Err((
                format!("{key}[{i}]"),
                format!("{filter:?} is not a valid MQTT topic filter"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_key(text: &str) -> String {
        match Config::from_toml(text, "test.toml") {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn embedded_default_has_the_four_listeners_and_is_read_only() {
        let config = Config::default_embedded();
        let kinds: Vec<_> = config
            .listeners
            .iter()
            .map(|l| (l.kind, l.address.to_string()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ListenerKind::Mqtt, "127.0.0.1:1883".to_owned()),
                (ListenerKind::Mqtts, "127.0.0.1:8883".to_owned()),
                (ListenerKind::Ws, "127.0.0.1:8080".to_owned()),
                (ListenerKind::Wss, "127.0.0.1:8443".to_owned()),
            ]
        );
        assert!(config.anonymous.publish.is_empty());
        assert_eq!(config.anonymous.subscribe, vec!["#"]);
        assert_eq!(config.limits.connect_timeout_secs, 10);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::from_toml(
            "[[listner]]\nname = \"x\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1\"\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listner"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = Config::from_toml(
            "[[listener]]\nname = \"x\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1\"\n[limits]\nmax_packet_size = \"big\"\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_packet_size"), "{err}");
    }

    #[test]
    fn bad_listener_kind_is_refused() {
        let err = Config::from_toml(
            "[[listener]]\nname = \"x\"\nkind = \"quic\"\naddress = \"127.0.0.1:1\"\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("quic"), "{err}");
    }

    #[test]
    fn two_listeners_on_one_address_name_the_second() {
        let key = invalid_key(
            "[[listener]]\nname = \"a\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1884\"\n\
             [[listener]]\nname = \"b\"\nkind = \"ws\"\naddress = \"127.0.0.1:1884\"\n",
        );
        assert_eq!(key, "listener[1].address");
    }

    #[test]
    fn invalid_grant_filter_names_its_index() {
        let key = invalid_key(
            "[[listener]]\nname = \"a\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1884\"\n\
             [anonymous]\nsubscribe = [\"#\", \"a/#/b\"]\n",
        );
        assert_eq!(key, "anonymous.subscribe[1]");
    }

    #[test]
    fn user_with_a_plain_password_is_refused() {
        let key = invalid_key(
            "[[listener]]\nname = \"a\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1884\"\n\
             [[user]]\nname = \"ansible\"\npassword_hash = \"secret\"\n",
        );
        assert_eq!(key, "user[0].password_hash");
    }
}
