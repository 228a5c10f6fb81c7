//! Config entries that name a WASM component: the `[acl]` policy and the
//! `[[transform]]` chains, and where a relative component path points.
//!
//! A relative `path` is relative to the config file's directory; in the
//! embedded default config (which has no file) it is relative to the
//! component directory ([`component_dir`]): `$FIREHOSE_WASM_DIR`, else
//! `wasm/` beside the directory of the `firehose` executable, which is
//! where `guests/build` puts them for a cargo build (`target/wasm/` for
//! `target/release/firehose`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One component: its file, its own settings, its limits and its stdio.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The `.wasm` file; a relative path is resolved as the module doc says.
    pub path: PathBuf,
    /// The component's own settings, read with the WIT `config` import:
    /// strings as they are, other scalars as TOML text, arrays and tables
    /// as JSON.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub limits: firehose_wasm::Limits,
    /// Where the component's stdout/stderr go: "discard" (default) or "log".
    #[serde(default)]
    pub stdio: firehose_wasm::StdioMode,
}

/// `[acl]`: an ACL policy component (world `acl-policy`). Passwords of
/// `[[user]]` entries are still verified by the broker; the policy then
/// decides every connect, subscribe and publish, and a policy that fails or
/// runs out of time denies.
pub type AclConfig = ComponentConfig;

impl ComponentConfig {
    /// The component's settings flattened to strings for its `config` import.
    pub fn flattened(&self) -> BTreeMap<String, String> {
        flatten(&self.config)
    }

    /// `path` made absolute against `base` when it is relative.
    pub(super) fn resolve(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }
}

/// A TOML table flattened to strings, as the WIT `config` import gives it.
pub fn flatten(table: &toml::Table) -> BTreeMap<String, String> {
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    serde_json::to_string(value).unwrap_or_default()
                }
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// `[[transform]]`: a chain of transform components (world
/// `transform-policy`) for the messages whose topic matches one of
/// `topics`. The first chain (in config order) that matches a topic is the
/// one applied; its components run in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformChainConfig {
    /// Names the chain in logs and counters.
    pub name: String,
    /// Topic filters (`+` and `#` allowed) the chain applies to.
    pub topics: Vec<String>,
    /// What a failed call (trap, deadline, out of memory, an invalid
    /// replacement) does to the message.
    #[serde(default)]
    pub on_error: OnError,
    /// The components, applied in order.
    #[serde(rename = "component")]
    pub components: Vec<ComponentConfig>,
}

/// What a failing transform does to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The message is not routed (and counted). The safe default: a
    /// redaction that fails must not leak what it should have removed.
    #[default]
    Drop,
    /// The failing transform is skipped: the message goes on unchanged to
    /// the rest of the chain.
    Pass,
}

/// Where relative component paths of the embedded default config point:
/// `$FIREHOSE_WASM_DIR`, else `<dir of the executable>/../wasm`.
pub fn component_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FIREHOSE_WASM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|p| p.join("wasm")))
        .unwrap_or_else(|| PathBuf::from("wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_keeps_strings_and_writes_the_rest_as_toml_or_json() {
        let table: toml::Table =
            toml::from_str("s = \"x\"\nn = 42\nb = true\na = [\"a/#\", \"b\"]\n[t]\nk = [\"v\"]\n")
                .unwrap();
        let flat = flatten(&table);
        assert_eq!(flat["s"], "x");
        assert_eq!(flat["n"], "42");
        assert_eq!(flat["b"], "true");
        assert_eq!(flat["a"], r#"["a/#","b"]"#);
        assert_eq!(flat["t"], r#"{"k":["v"]}"#);
    }

    #[test]
    fn relative_paths_resolve_against_the_base_and_absolute_ones_stay() {
        let mut c: ComponentConfig = toml::from_str("path = \"p.wasm\"").unwrap();
        c.resolve(Path::new("/etc/firehose"));
        assert_eq!(c.path, Path::new("/etc/firehose/p.wasm"));
        let mut c: ComponentConfig = toml::from_str("path = \"/abs/p.wasm\"").unwrap();
        c.resolve(Path::new("/etc/firehose"));
        assert_eq!(c.path, Path::new("/abs/p.wasm"));
    }

    #[test]
    fn on_error_defaults_to_drop() {
        let chain: TransformChainConfig =
            toml::from_str("name = \"c\"\ntopics = [\"#\"]\n[[component]]\npath = \"r.wasm\"\n")
                .unwrap();
        assert_eq!(chain.on_error, OnError::Drop);
        assert_eq!(chain.components.len(), 1);
    }
}
