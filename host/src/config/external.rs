//! Values a config takes from outside its file, so that secrets and
//! per-host settings need not be written into it:
//!
//! - `${NAME}` inside a string: the environment variable `NAME`; an unset
//!   variable is an error naming the key, unless a default is given as
//!   `${NAME:-default}` (also used when the variable is empty). `$${`
//!   writes a literal `${`.
//! - `{ file = "PATH" }` as a value: the text of the file (PATH may use
//!   `${...}`; relative to the config file). A PATH that expands to
//!   nothing (`{ file = "${CA_FILE:-}" }` with `CA_FILE` unset) drops the
//!   key, so the component sees it as not configured.
//!
//! Expanded are the components' own `config` tables (`[acl]`,
//! `[[transform.component]]`, `[[source]]`) and the sources' grants: the
//! places an operator points a component at a server. The values land in
//! the component's config; they are never logged.

use std::path::Path;

/// Why a value could not be expanded: (key, message), as `validate` reports.
pub type ExpandError = (String, String);

/// Expands `${...}` in `s`; `key` names the value in errors.
pub fn expand_str(s: &str, key: &str) -> Result<String, ExpandError> {
    expand_with(s, key, |name| std::env::var(name).ok())
}

fn expand_with(
    s: &str,
    key: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| (key.to_owned(), "`${` without a closing `}`".to_owned()))?;
            let (name, default) = match tail[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&tail[..end], None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((
                    key.to_owned(),
                    format!("`${{{name}}}`: not an environment variable name"),
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err((
                        key.to_owned(),
                        format!("environment variable {name} is not set"),
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands a component's `config` table in place: `${...}` in every
/// string (at any depth) and `{ file = "..." }` values.
pub fn expand_table(table: &mut toml::Table, key: &str, base: &Path) -> Result<(), ExpandError> {
    let names: Vec<String> = table.keys().cloned().collect();
    for name in names {
        let value_key = format!("{key}.{name}");
        let value = table.remove(&name).expect("key listed above");
        if let Some(value) = expand_value(value, &value_key, base)? {
            table.insert(name, value);
        }
    }
    Ok(())
}

/// One value expanded; `None` drops its key.
fn expand_value(
    value: toml::Value,
    key: &str,
    base: &Path,
) -> Result<Option<toml::Value>, ExpandError> {
    Ok(Some(match value {
        toml::Value::String(s) => toml::Value::String(expand_str(&s, key)?),
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if let Some(item) = expand_value(item, &format!("{key}[{i}]"), base)? {
                    out.push(item);
                }
            }
            toml::Value::Array(out)
        }
        toml::Value::Table(table) if table.len() == 1 && table.contains_key("file") => {
            let Some(toml::Value::String(path)) = table.get("file") else {
                return Err((key.to_owned(), "`file` must be a string (a path)".into()));
            };
            let path = expand_str(path, &format!("{key}.file"))?;
            if path.is_empty() {
                return Ok(None);
            }
            let path = base.join(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    format!("{key}.file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            toml::Value::String(text)
        }
        toml::Value::Table(mut table) => {
            expand_table(&mut table, key, base)?;
            toml::Value::Table(table)
        }
        other => other,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("imap.example.org".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_escapes() {
        let x = |s: &str| expand_with(s, "k", env);
        assert_eq!(x("${HOST}:993").unwrap(), "imap.example.org:993");
        assert_eq!(x("${UNSET:-127.0.0.1}:143").unwrap(), "127.0.0.1:143");
        assert_eq!(x("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(x("$${HOST} $HOST $").unwrap(), "${HOST} $HOST $");
        assert_eq!(x("$argon2id$v=19$m=1").unwrap(), "$argon2id$v=19$m=1");
        let (key, message) = x("${UNSET}").unwrap_err();
        assert_eq!(key, "k");
        assert!(message.contains("UNSET is not set"), "{message}");
        assert!(x("${HOST").unwrap_err().1.contains("closing"));
        assert!(
            x("${A-B}")
                .unwrap_err()
                .1
                .contains("not an environment variable name")
        );
    }

    #[test]
    fn file_values_are_read_relative_to_the_base_and_empty_paths_drop_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        let mut table: toml::Table = toml::from_str(
            "ca = { file = \"ca.pem\" }\nnone = { file = \"${FIREHOSE_TEST_SURELY_UNSET:-}\" }\n\
             list = [\"a\", { file = \"ca.pem\" }]\nkeep = 1\n",
        )
        .unwrap();
        expand_table(&mut table, "source[0].config", dir.path()).unwrap();
        assert_eq!(table["ca"].as_str(), Some("PEM"));
        assert!(!table.contains_key("none"));
        assert_eq!(table["list"][1].as_str(), Some("PEM"));
        assert_eq!(table["keep"].as_integer(), Some(1));
        let mut missing: toml::Table = toml::from_str("ca = { file = \"nope.pem\" }").unwrap();
        let (key, message) = expand_table(&mut missing, "acl.config", dir.path()).unwrap_err();
        assert_eq!(key, "acl.config.ca.file");
        assert!(message.contains("nope.pem"), "{message}");
    }
}
