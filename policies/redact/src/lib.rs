//! `redact`: a transform that removes configured fields, at any depth,
//! from JSON payloads, e.g. the e-mail addresses in Gerrit events
//! (`owner.email`, `uploader.email`, `patchSet.author.email`).
//!
//! Config (the policy's table in the broker TOML):
//!
//! ```toml
//! fields = ["email", "secret"]      # default: ["email"]
//! ```
//!
//! A payload that is not a JSON object or array passes unchanged, and so
//! does one without any of the fields. A changed payload is re-serialized
//! compactly, keys in their original order, numbers at full precision.
//!
//! The rules are plain Rust in this file, tested natively; `component.rs`
//! is the wit-bindgen glue, compiled only for wasm32.

use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod component;

/// The config keys this policy reads; any other key is reported.
pub const CONFIG_KEYS: &[&str] = &["fields"];

/// The parsed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    fields: Vec<String>,
    /// Each field as it appears as a JSON key without escapes (`"email"`):
    /// a payload that contains none of these and no `\` cannot contain
    /// the fields, and is passed without parsing.
    needles: Vec<Vec<u8>>,
}

impl Redactor {
    /// Reads the config through `get` (the `config.get` import). Errors
    /// name the key and what is wrong with it.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let fields = match get("fields") {
            None => vec!["email".to_owned()],
            Some(text) => serde_json::from_str::<Vec<String>>(&text)
                .map_err(|e| format!("config `fields`: expected a list of field names: {e}"))?,
        };
        if fields.is_empty() {
            return Err("config `fields`: empty; name at least one field".to_owned());
        }
        let needles = fields
            .iter()
            .map(|f| serde_json::to_vec(f).expect("a string serializes"))
            .collect();
        Ok(Redactor { fields, needles })
    }

    /// The payload without the configured fields, or `None` when nothing
    /// was removed (not JSON, not an object or array, no such field).
    pub fn redact(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let first = payload.iter().find(|b| !b.is_ascii_whitespace())?;
        if !matches!(first, b'{' | b'[') {
            return None;
        }
        let maybe_present =
            payload.contains(&b'\\') || self.needles.iter().any(|n| contains(payload, n));
        if !maybe_present {
            return None;
        }
        let mut value: Value = serde_json::from_slice(payload).ok()?;
        if self.remove_fields(&mut value) {
            Some(serde_json::to_vec(&value).expect("a parsed value serializes"))
        } else {
            None
        }
    }

    /// Removes the fields from `value` and everything below it; true if
    /// anything was removed.
    fn remove_fields(&self, value: &mut Value) -> bool {
        match value {
            Value::Object(map) => {
                let before = map.len();
                map.retain(|key, _| !self.fields.iter().any(|f| f == key));
                let mut removed = map.len() != before;
                for child in map.values_mut() {
                    removed |= self.remove_fields(child);
                }
                removed
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |removed, item| self.remove_fields(item) | removed),
            _ => false,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Redactor {
        Redactor::from_config(|_| None).unwrap()
    }

    fn redact_str(r: &Redactor, payload: &str) -> Option<String> {
        r.redact(payload.as_bytes())
            .map(|p| String::from_utf8(p).unwrap())
    }

    const PATCHSET_CREATED: &str = r#"{"uploader":{"name":"Jane Dev","email":"jane@example.org","username":"jane"},"patchSet":{"number":3,"revision":"4a1b","uploader":{"name":"Jane Dev","email":"jane@example.org"},"author":{"name":"Jane Dev","email":"jane@example.org"},"sizeInsertions":12,"sizeDeletions":-1},"change":{"project":"openstack-infra/germqtt","branch":"master","id":"I8b1f","number":12345,"subject":"Fix \"quoting\"\nsecond line","owner":{"name":"Jane Dev","email":"jane@example.org"},"url":"https://review.example.org/12345"},"type":"patchset-created","eventCreatedOn":1500000000}"#;

    #[test]
    fn gerrit_event_loses_every_email_and_nothing_else() {
        let out = redact_str(&default(), PATCHSET_CREATED).unwrap();
        assert!(!out.contains("email"), "{out}");
        assert!(!out.contains("jane@example.org"), "{out}");
        let expected = PATCHSET_CREATED.replace(r#","email":"jane@example.org""#, "");
        assert_eq!(out, expected);
    }

    #[test]
    fn key_order_and_number_precision_are_kept() {
        let out = redact_str(
            &default(),
            r#"{"z":1.50,"email":"x","a":1e+3,"m":123456789012345678901234567890}"#,
        );
        assert_eq!(
            out.as_deref(),
            Some(r#"{"z":1.50,"a":1e+3,"m":123456789012345678901234567890}"#)
        );
    }

    #[test]
    fn fields_inside_arrays_are_removed() {
        let out = redact_str(
            &default(),
            r#"[{"email":"a"},{"reviewers":[{"name":"b","email":"c"}]}]"#,
        );
        assert_eq!(out.as_deref(), Some(r#"[{},{"reviewers":[{"name":"b"}]}]"#));
    }

    #[test]
    fn payload_without_the_fields_passes() {
        assert_eq!(
            redact_str(&default(), r#"{"name":"x","emails":"kept"}"#),
            None
        );
        assert_eq!(
            redact_str(&default(), r#"{"text":"an \"email\" word in a value"}"#),
            None
        );
    }

    #[test]
    fn non_json_payload_passes() {
        assert_eq!(redact_str(&default(), "email=jane@example.org"), None);
        assert_eq!(redact_str(&default(), r#"{"email": broken"#), None);
        assert_eq!(redact_str(&default(), r#""email""#), None);
        assert_eq!(default().redact(&[0xff, 0xfe, b'{']), None);
        assert_eq!(default().redact(b""), None);
    }

    #[test]
    fn escaped_field_names_are_still_found() {
        let out = redact_str(&default(), r#"{"em\u0061il":"x","ok":true}"#);
        assert_eq!(out.as_deref(), Some(r#"{"ok":true}"#));
    }

    #[test]
    fn configured_fields_replace_the_default() {
        let r = Redactor::from_config(|k| {
            (k == "fields").then(|| r#"["token","password"]"#.to_owned())
        })
        .unwrap();
        let out = redact_str(
            &r,
            r#"{"email":"kept","auth":{"token":"t","password":"p"}}"#,
        );
        assert_eq!(out.as_deref(), Some(r#"{"email":"kept","auth":{}}"#));
    }

    #[test]
    fn bad_config_is_reported_against_its_key() {
        let err = Redactor::from_config(|_| Some("email".to_owned())).unwrap_err();
        assert!(err.starts_with("config `fields`: expected a list"), "{err}");
        let err = Redactor::from_config(|_| Some("[]".to_owned())).unwrap_err();
        assert!(err.starts_with("config `fields`: empty"), "{err}");
    }
}
