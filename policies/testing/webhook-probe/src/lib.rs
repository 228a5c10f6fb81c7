//! A purpose-built webhook source for the host's tests. It exports only
//! `wasi:http/incoming-handler` (world `webhook-source`) and decides from
//! the request path, as the host passes it (below `/hooks/<name>`):
//!
//! - `/` (or any other path): a `POST` whose body is JSON is published,
//!   byte for byte, on the topic from config `topic` (default
//!   `<prefix>events`, `prefix` from config, default `webhook/`), QoS 1,
//!   content type `application/json`; the answer is `202` with
//!   `published <n> bytes`. A body that is not JSON gets `400`, another
//!   method `405`, a refused publish `500` naming the error.
//! - `/trap`: panics (the host answers 500).
//! - `/spin`: loops forever without calling the host (the host's
//!   deadline ends it).
//! - `/big`: answers `200` with a body of config `big_bytes` bytes
//!   (default 2 MiB), more than the host relays.
//! - `/outgoing?to=<url>`: sends a GET to `<url>` (percent-decoded;
//!   default `http://127.0.0.1:9/`) and answers `200` with `err: <error>`
//!   or `ok: <status> <body>` (the body's first 4 KiB).
//! - `/headers`: answers `200` with the request's headers, one
//!   `name: value` per line, and `path: <path>` first.
//!
//! The routing and the JSON check are plain Rust, tested natively.

#[cfg(target_arch = "wasm32")]
mod component;

/// What a request asks the probe to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Publish,
    Trap,
    Spin,
    Big,
    Outgoing,
    Headers,
}

/// The action for a request path (the query is ignored).
pub fn action(path: &str) -> Action {
    let path = path.split('?').next().unwrap_or_default();
    match path.trim_end_matches('/') {
        "/trap" => Action::Trap,
        "/spin" => Action::Spin,
        "/big" => Action::Big,
        "/outgoing" => Action::Outgoing,
        "/headers" => Action::Headers,
        _ => Action::Publish,
    }
}

/// The URL `/outgoing?to=<url>` names (percent-decoded), or the default.
pub fn outgoing_target(path_with_query: &str) -> String {
    path_with_query
        .split_once('?')
        .and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("to="))
                .map(percent_decode)
        })
        .unwrap_or_else(|| "http://127.0.0.1:9/".to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(https, authority, path_with_query)` of an `http(s)://` URL.
pub fn split_url(url: &str) -> Option<(bool, &str, &str)> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    match rest.find('/') {
        Some(at) => Some((https, &rest[..at], &rest[at..])),
        None => Some((https, rest, "/")),
    }
}

/// Whether `body` is one JSON value; the error says why not.
pub fn check_json(body: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|_| ())
        .map_err(|e| format!("the body is not JSON: {e}"))
}

/// The topic events are published on.
pub fn topic(configured: Option<String>, prefix: Option<String>) -> String {
    configured.unwrap_or_else(|| {
        let prefix = prefix.unwrap_or_else(|| "webhook/".to_owned());
        format!("{}/events", prefix.trim_end_matches('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_choose_the_action() {
        assert_eq!(action("/"), Action::Publish);
        assert_eq!(action("/?x=1"), Action::Publish);
        assert_eq!(action("/trap"), Action::Trap);
        assert_eq!(action("/spin/"), Action::Spin);
        assert_eq!(action("/big?n=1"), Action::Big);
        assert_eq!(action("/outgoing"), Action::Outgoing);
        assert_eq!(action("/headers"), Action::Headers);
        assert_eq!(action("/other"), Action::Publish);
    }

    #[test]
    fn outgoing_urls_come_from_the_query() {
        assert_eq!(outgoing_target("/outgoing"), "http://127.0.0.1:9/");
        assert_eq!(
            outgoing_target("/outgoing?x=1&to=https%3A%2F%2Fa.org%3A8443%2Fp%3Fq%3D1"),
            "https://a.org:8443/p?q=1"
        );
        assert_eq!(
            split_url("https://a.org:8443/p?q=1"),
            Some((true, "a.org:8443", "/p?q=1"))
        );
        assert_eq!(split_url("http://a.org"), Some((false, "a.org", "/")));
        assert_eq!(split_url("ftp://a.org/"), None);
    }

    #[test]
    fn only_json_bodies_pass() {
        check_json(br#"{"type":"comment-added"}"#).unwrap();
        check_json(b"[1, 2]").unwrap();
        assert!(check_json(b"not json").unwrap_err().contains("not JSON"));
        assert!(check_json(b"").is_err());
    }

    #[test]
    fn the_topic_defaults_below_the_prefix() {
        assert_eq!(topic(None, Some("hooks/".into())), "hooks/events");
        assert_eq!(topic(None, None), "webhook/events");
        assert_eq!(topic(Some("x/y".into()), None), "x/y");
    }
}
