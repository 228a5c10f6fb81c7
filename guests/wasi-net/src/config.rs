//! Config value helpers for the sources' `[source.config]` tables, read
//! through the WIT `config.get` and `config.keys`. Errors and warnings
//! name the key.

use std::ops::RangeInclusive;

/// The optional whole number `key` within `range`; `default` when the key
/// is not set.
pub fn number(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<u64, String> {
    match get(key) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!(
                "config `{key}` = {text:?}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            )),
        },
    }
}

/// A warning for each of `keys` (the WIT `config.keys`) that is not one
/// of `known`, to be logged: such a key is ignored, most likely a typo.
pub fn unknown_keys(keys: impl IntoIterator<Item = String>, known: &[&str]) -> Vec<String> {
    keys.into_iter()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| format!("config `{key}`: unknown key, ignored"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_default_parse_and_stay_in_range() {
        let get = |key: &str| {
            let value = match key {
                "qos" => " 2 ",
                "big" => "3",
                "word" => "ten",
                "neg" => "-1",
                _ => return None,
            };
            Some(value.to_owned())
        };
        assert_eq!(number(&get, "unset", 7, 0..=10), Ok(7));
        assert_eq!(number(&get, "qos", 1, 0..=2), Ok(2));
        assert_eq!(
            number(&get, "big", 1, 0..=2),
            Err("config `big` = \"3\": expected a whole number from 0 to 2".into())
        );
        assert_eq!(
            number(&get, "word", 1, 1..=600),
            Err("config `word` = \"ten\": expected a whole number from 1 to 600".into())
        );
        assert!(number(&get, "neg", 1, 0..=2).is_err());
    }

    #[test]
    fn unknown_keys_are_named_in_order() {
        let keys = ["qos", "stream", "strem", "qso"].map(String::from);
        assert_eq!(
            unknown_keys(keys, &["stream", "qos"]),
            [
                "config `strem`: unknown key, ignored",
                "config `qso`: unknown key, ignored"
            ]
        );
        assert!(unknown_keys(Vec::new(), &["stream"]).is_empty());
    }
}
