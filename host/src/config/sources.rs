//! `[[source]]` entries: the sources (world `source`) the broker runs, each
//! with its component file, topic prefix, own config table, grants and
//! limits. Checked when the config is read, with errors naming the key
//! (`source[2].grants.tcp[0]: ...`).
//!
//! ```toml
//! [[source]]
//! name = "gerrit"                       # unique; in logs; publisher id "$source/gerrit"
//! path = "gerrit-source.wasm"           # relative to the config file (embedded default: the component dir)
//! prefix = "gerrit"                     # it may publish under gerrit/... only
//!
//! [source.config]                       # read by the component (WIT `config`)
//! host = "review.example.org"
//!
//! [source.grants]                       # nothing is granted unless named here
//! tcp = ["review.example.org:29418"]    # host:port, *.domain:port, [v6]:port, port * for any
//! http = ["https://api.example.org/v1/*"] # scheme://host[:port][/path], path* for a prefix
//! http_ca = "internal-ca.pem"           # extra CA certificates for its https requests
//! stdio = "log"                         # its stdout/stderr into the log (default "discard")
//!
//! [source.limits]
//! memory_mib = 64
//!
//! [source.webhook]                      # only for a component that exports wasi:http/incoming-handler
//! secret = "${GERRIT_HOOK_SECRET}"     # 16-256 of A-Z a-z 0-9 - . _ ~; never logged, never in Debug
//! deadline_ms = 5000                    # per request (default 5000)
//! ```
//!
//! Relative paths are resolved like every other component path (see
//! [`super::component_dir`]).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firehose_wasm::source::DEFAULT_MEMORY_MIB;
use firehose_wasm::source::grants::HttpGrant;
use firehose_wasm::{SourceSpec, StdioMode, TcpGrant, TopicPrefix};
use serde::Deserialize;

use super::flatten;

/// One `[[source]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source in logs, counters and its publisher id.
    pub name: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// The topic subtree it may publish in (`gerrit` admits `gerrit/...`).
    pub prefix: String,
    /// The component's own settings (WIT `config`), flattened like
    /// `[acl.config]`.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub grants: GrantsConfig,
    #[serde(default)]
    pub limits: SourceLimitsConfig,
    /// `[source.webhook]`: for a component that exports
    /// `wasi:http/incoming-handler`, mounted at `/hooks/<name>`.
    #[serde(default)]
    pub webhook: WebhookConfig,
}

/// `[source.webhook]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The shared secret a request must present (see `crate::hooks`);
    /// without one the hook is open to anyone who reaches the port.
    pub secret: Option<WebhookSecret>,
    /// How long one request may take, in milliseconds.
    pub deadline_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            deadline_ms: firehose_wasm::source::webhook::DEFAULT_WEBHOOK_DEADLINE.as_millis()
                as u64,
        }
    }
}

/// A webhook's shared secret. Its `Debug` never shows it, and nothing
/// logs it; compare it only with [`WebhookSecret::matches`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// The shortest secret accepted.
    pub const MIN_LEN: usize = 16;
    /// The longest secret accepted.
    pub const MAX_LEN: usize = 256;

    /// Wraps `secret` (checked by the config's validation, not here).
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookSecret(secret.into())
    }

    /// Expands `${NAME}` in the secret (`key` names it in errors, which
    /// never quote the value).
    pub(super) fn expand(&mut self, key: &str) -> Result<(), super::external::ExpandError> {
        self.0 = super::external::expand_str(&self.0, key)?;
        Ok(())
    }

    /// Whether `presented` is this secret, in time that depends only on
    /// the lengths (not on where the first difference is).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = expected.len() ^ presented.len();
        for (i, e) in expected.iter().enumerate() {
            let p = presented.get(i).copied().unwrap_or(0);
            diff |= usize::from(e ^ p);
        }
        diff == 0
    }

    fn check(&self) -> Result<(), String> {
        let len = self.0.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(format!(
                "must be {} to {} characters (it has {len})",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !self
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(
                "use A-Z, a-z, 0-9, '-', '.', '_' and '~' only (it may travel in a URL)".into(),
            );
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// `[source.grants]`: what the source may use beyond publishing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Outbound TCP: `host:port` patterns.
    #[serde(default)]
    pub tcp: Vec<String>,
    /// Outbound HTTP(S) through `wasi:http`: URL patterns
    /// (`https://api.example.org/v1/*`; see `firehose_wasm::source::grants`).
    #[serde(default)]
    pub http: Vec<String>,
    /// A PEM file of CA certificates trusted for the source's `https`
    /// requests besides the Mozilla roots (relative to the config file).
    #[serde(default)]
    pub http_ca: Option<PathBuf>,
    /// Its stdout and stderr: "discard" (default) or "log".
    #[serde(default = "discard")]
    pub stdio: StdioMode,
}

impl Default for GrantsConfig {
    fn default() -> Self {
        GrantsConfig {
            tcp: Vec::new(),
            http: Vec::new(),
            http_ca: None,
            stdio: StdioMode::Discard,
        }
    }
}

fn discard() -> StdioMode {
    StdioMode::Discard
}

/// `[source.limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceLimitsConfig {
    /// Cap on the source's linear memory, in MiB.
    pub memory_mib: u32,
}

impl Default for SourceLimitsConfig {
    fn default() -> Self {
        SourceLimitsConfig {
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }
}

impl SourceConfig {
    /// The runtime's spec for this entry; `max_message_bytes` is the
    /// broker's packet size limit. Fails only for an entry that did not
    /// pass [`validate`].
    pub fn spec(&self, max_message_bytes: u32) -> Result<SourceSpec, String> {
        let prefix = TopicPrefix::parse(&self.prefix).map_err(|e| format!("prefix: {e}"))?;
        let mut spec = SourceSpec::new(&self.name, &self.path, prefix);
        spec.config = flatten(&self.config);
        spec.tcp = self
            .grants
            .tcp
            .iter()
            .map(|g| TcpGrant::parse(g))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("grants.tcp: {e}"))?;
        spec.http = self
            .grants
            .http
            .iter()
            .map(|g| HttpGrant::parse(g))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("grants.http: {e}"))?;
        if let Some(path) = &self.grants.http_ca {
            spec.http_ca = firehose_wasm::source::read_ca_file(path)
                .map_err(|e| format!("grants.http_ca: {e}"))?;
        }
        spec.stdio = self.grants.stdio;
        spec.memory_mib = self.limits.memory_mib;
        spec.max_message_bytes = max_message_bytes;
        spec.webhook_deadline = Duration::from_millis(self.webhook.deadline_ms);
        Ok(spec)
    }
}

/// Makes each relative source path absolute against `base`.
pub(super) fn resolve_paths(sources: &mut [SourceConfig], base: &Path) {
    for source in sources {
        if source.path.is_relative() {
            source.path = base.join(&source.path);
        }
    }
}

/// Checks every entry; the error is `(key, message)`.
pub(super) fn validate(sources: &[SourceConfig]) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, source) in sources.iter().enumerate() {
        let key = |field: &str| format!("source[{i}].{field}");
        let name = &source.name;
        if name.is_empty() || name.len() > 64 {
            return Err((key("name"), "must be 1 to 64 characters".into()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err((
                key("name"),
                format!("{name:?}: use letters, digits, '-', '_' and '.' only"),
            ));
        }
        if !names.insert(name.as_str()) {
            return Err((key("name"), format!("duplicate source {name:?}")));
        }
        if source.path.as_os_str().is_empty() {
            return Err((key("path"), "must name the source's .wasm file".into()));
        }
        TopicPrefix::parse(&source.prefix).map_err(|message| (key("prefix"), message))?;
        firehose_wasm::source::grants::parse_tcp_grants(&source.grants.tcp)
            .map_err(|(j, e)| (key(&format!("grants.tcp[{j}]")), e.to_string()))?;
        for (j, entry) in source.grants.http.iter().enumerate() {
            HttpGrant::parse(entry)
                .map_err(|e| (key(&format!("grants.http[{j}]")), e.to_string()))?;
        }
        if let Some(path) = &source.grants.http_ca {
            if source.grants.http.is_empty() {
                return Err((
                    key("grants.http_ca"),
                    "given without any grants.http entry to use it".into(),
                ));
            }
            firehose_wasm::source::read_ca_file(path)
                .map_err(|message| (key("grants.http_ca"), message))?;
        }
        if !(1..=4096).contains(&source.limits.memory_mib) {
            return Err((
                key("limits.memory_mib"),
                format!("{}: must be between 1 and 4096", source.limits.memory_mib),
            ));
        }
        if let Some(secret) = &source.webhook.secret {
            secret
                .check()
                .map_err(|message| (key("webhook.secret"), message))?;
        }
        if !(1..=60_000).contains(&source.webhook.deadline_ms) {
            return Err((
                key("webhook.deadline_ms"),
                format!(
                    "{}: must be between 1 and 60000",
                    source.webhook.deadline_ms
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str =
        "[[listener]]\nname = \"a\"\nkind = \"mqtt\"\naddress = \"127.0.0.1:1884\"\n";

    fn invalid(sources: &str) -> (String, String) {
        let text = format!("{LISTENER}{sources}");
        match super::super::Config::from_toml(&text, "test.toml") {
            Err(super::super::ConfigError::Invalid { key, message, .. }) => (key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    const OK: &str = "[[source]]\nname = \"g\"\npath = \"g.wasm\"\nprefix = \"gerrit\"\n";

    #[test]
    fn a_secret_and_a_ca_file_from_outside_the_file_are_checked_at_load() {
        let (key, message) = invalid(&format!(
            "{OK}[source.webhook]\nsecret = \"${{FIREHOSE_TEST_SURELY_UNSET_SECRET}}\"\n"
        ));
        assert_eq!(key, "source[0].webhook.secret");
        assert!(
            message.contains("FIREHOSE_TEST_SURELY_UNSET_SECRET"),
            "{message}"
        );
        let (key, message) = invalid(&format!("{OK}[source.grants]\nhttp_ca = \"ca.pem\"\n"));
        assert_eq!(key, "source[0].grants.http_ca");
        assert!(message.contains("without any grants.http"), "{message}");
        let (key, message) = invalid(&format!(
            "{OK}[source.grants]\nhttp = [\"https://a.org/*\"]\nhttp_ca = \"/surely/missing.pem\"\n"
        ));
        assert_eq!(key, "source[0].grants.http_ca");
        assert!(message.contains("/surely/missing.pem"), "{message}");
    }

    #[test]
    fn a_full_entry_becomes_a_spec() {
        let text = format!(
            "{LISTENER}{OK}[source.config]\nhost = \"h\"\nport = 29418\n\
             [source.grants]\ntcp = [\"review.example.org:29418\"]\nstdio = \"log\"\n\
             [source.limits]\nmemory_mib = 32\n"
        );
        let config = super::super::Config::from_toml(&text, "t.toml").unwrap();
        let spec = config.sources[0].spec(1000).unwrap();
        assert_eq!(spec.name, "g");
        assert_eq!(spec.prefix.as_str(), "gerrit/");
        assert_eq!(spec.config["port"], "29418");
        assert_eq!(spec.tcp[0].to_string(), "review.example.org:29418");
        assert_eq!(spec.stdio, StdioMode::Log);
        assert_eq!(spec.memory_mib, 32);
        assert_eq!(spec.max_message_bytes, 1000);
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let config = super::super::Config::from_toml(&format!("{LISTENER}{OK}"), "t").unwrap();
        let spec = config.sources[0].spec(1000).unwrap();
        assert!(spec.tcp.is_empty());
        assert_eq!(spec.stdio, StdioMode::Discard);
        assert_eq!(spec.memory_mib, DEFAULT_MEMORY_MIB);
    }

    #[test]
    fn a_bad_grant_is_named_by_its_key_and_entry() {
        let (key, message) = invalid(&format!(
            "{OK}[[source]]\nname = \"h\"\npath = \"h.wasm\"\nprefix = \"h\"\n\
             [source.grants]\ntcp = [\"ok.example.org:1\", \"nope\"]\n"
        ));
        assert_eq!(key, "source[1].grants.tcp[1]");
        assert!(message.contains("\"nope\""), "{message}");
    }

    #[test]
    fn duplicate_names_bad_prefixes_http_grants_and_limits_are_refused() {
        let (key, _) = invalid(&format!("{OK}{OK}"));
        assert_eq!(key, "source[1].name");
        let (key, _) = invalid("[[source]]\nname = \"g\"\npath = \"g.wasm\"\nprefix = \"a/#\"\n");
        assert_eq!(key, "source[0].prefix");
        let (key, message) = invalid(&format!("{OK}[source.grants]\nhttp = [\"ftp://x/*\"]\n"));
        assert_eq!(key, "source[0].grants.http[0]");
        assert!(message.contains("http:// or https://"), "{message}");
        let (key, _) = invalid(&format!("{OK}[source.limits]\nmemory_mib = 0\n"));
        assert_eq!(key, "source[0].limits.memory_mib");
        let (key, _) = invalid("[[source]]\nname = \"a b\"\npath = \"g.wasm\"\nprefix = \"a\"\n");
        assert_eq!(key, "source[0].name");
    }

    #[test]
    fn a_webhook_secret_is_checked_and_never_shown() {
        const SECRET: &str = "s3cret-token_0123456789";
        let text =
            format!("{LISTENER}{OK}[source.webhook]\nsecret = \"{SECRET}\"\ndeadline_ms = 250\n");
        let config = super::super::Config::from_toml(&text, "t").unwrap();
        let webhook = &config.sources[0].webhook;
        let secret = webhook.secret.as_ref().unwrap();
        assert!(secret.matches(SECRET.as_bytes()));
        assert!(!secret.matches(b"s3cret-token_012345678"));
        assert!(!secret.matches(b"s3cret-token_01234567890"));
        assert!(!secret.matches(b""));
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let spec = config.sources[0].spec(1000).unwrap();
        assert_eq!(spec.webhook_deadline, Duration::from_millis(250));

        for (bad, why) in [
            ("short", "16 to 256"),
            ("has a space in it, long enough", "A-Z"),
            ("quote\\\"d-but-long-enough", "A-Z"),
        ] {
            let (key, message) = invalid(&format!("{OK}[source.webhook]\nsecret = \"{bad}\"\n"));
            assert_eq!(key, "source[0].webhook.secret");
            assert!(message.contains(why), "{bad}: {message}");
            assert!(
                !message.contains(bad),
                "the secret is not echoed: {message}"
            );
        }
        let (key, _) = invalid(&format!("{OK}[source.webhook]\ndeadline_ms = 0\n"));
        assert_eq!(key, "source[0].webhook.deadline_ms");
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        let mut config = super::super::Config::from_toml(&format!("{LISTENER}{OK}"), "t").unwrap();
        resolve_paths(&mut config.sources, Path::new("/etc/firehose"));
        assert_eq!(config.sources[0].path, Path::new("/etc/firehose/g.wasm"));
    }
}
