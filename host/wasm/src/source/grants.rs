//! Network grants of a source: which `host:port` a source may connect to,
//! parsed and checked once, when the config is read.
//!
//! A TCP grant is `host:port`:
//!
//! - `host` is a DNS name (`imap.example.org`, matched without regard to
//!   case), a wildcard for the subdomains of one (`*.example.org`: any
//!   name ending in `.example.org`, not `example.org` itself), or an IP
//!   address (`192.0.2.7`, `[2001:db8::1]`). A bare `*` is refused: a grant
//!   names the hosts it grants.
//! - `port` is a number from 1 to 65535, or `*` for any port.
//!
//! An HTTP grant is a URL pattern, `scheme://host[:port][/path]`:
//!
//! - `scheme` is `http` or `https`; `host` and `port` as for TCP (the port
//!   defaults to the scheme's, 80 or 443);
//! - `path`, if given, is matched exactly, or as a prefix when it ends in
//!   `*` (`https://review.example.org/a/*`); without it, any path.
//!
//! This module only parses and matches; resolving names and checking the
//! addresses a guest connects to is [`super::net`]'s job, sending granted
//! HTTP requests [`super::webhook`]'s.

use std::fmt;
use std::net::IpAddr;

/// A grant that could not be parsed; the message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?}: {reason}")]
pub struct GrantError {
    /// The grant as written in the config.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Which hosts a grant admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// One DNS name, lowercase, without a trailing dot.
    Name(String),
    /// Every name ending in this suffix (which starts with a dot).
    Subdomains(String),
    /// One IP address.
    Ip(IpAddr),
}

/// Which ports a grant admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortPattern {
    Any,
    Port(u16),
}

impl PortPattern {
    pub fn admits(self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Port(p) => p == port,
        }
    }
}

/// One `host:port` TCP grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpGrant {
    pub host: HostPattern,
    pub port: PortPattern,
}

impl TcpGrant {
    /// Parses `host:port`; the error names the entry and what is wrong.
    pub fn parse(entry: &str) -> Result<TcpGrant, GrantError> {
        let fail = |reason: &str| GrantError {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| fail("an IPv6 grant is written [address]:port"))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| fail("not an IPv6 address between the brackets"))?;
            (HostPattern::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = entry
                .rsplit_once(':')
                .ok_or_else(|| fail("expected host:port (use host:* for any port)"))?;
            (parse_host(host).map_err(|reason| fail(&reason))?, port)
        };
        let port = match port {
            "*" => PortPattern::Any,
            p => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(fail("the port must be 1 to 65535, or *")),
                Ok(p) => PortPattern::Port(p),
            },
        };
        Ok(TcpGrant { host, port })
    }

    /// Whether this grant admits a connection to `name` (a DNS name or an
    /// IP address in text) on `port`.
    pub fn admits_name(&self, name: &str, port: u16) -> bool {
        self.port.admits(port) && self.admits_host(name)
    }

    /// Whether this grant admits the host `name`, on some port.
    pub fn admits_host(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match &self.host {
            HostPattern::Name(n) => *n == name,
            HostPattern::Subdomains(suffix) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            HostPattern::Ip(ip) => name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|n| n == *ip),
        }
    }
}

impl fmt::Display for TcpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Subdomains(s) => write!(f, "*{s}")?,
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Port(p) => write!(f, ":{p}"),
        }
    }
}

/// One URL-pattern HTTP grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpGrant {
    /// `https` (else `http`).
    pub https: bool,
    /// Host and port, as a TCP grant.
    pub authority: TcpGrant,
    /// The path: exact, or a prefix when it ended in `*`; empty: any.
    pub path: String,
    pub path_is_prefix: bool,
}

impl HttpGrant {
    /// Parses `scheme://host[:port][/path[*]]`.
    pub fn parse(entry: &str) -> Result<HttpGrant, GrantError> {
        let fail = |reason: &str| GrantError {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let (https, rest) = if let Some(rest) = entry.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = entry.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(fail("an HTTP grant starts with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(fail("expected a host (and port) after the scheme, no user"));
        }
        if path.contains(['?', '#']) {
            return Err(fail("a grant names a path, not a query or fragment"));
        }
        let has_port = match authority.rsplit_once(':') {
            Some((_, port)) => !authority.ends_with(']') && !port.contains(']'),
            None => false,
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let authority = TcpGrant::parse(&authority).map_err(|e| fail(&e.reason))?;
        let (path, path_is_prefix) = match path.strip_suffix('*') {
            Some(prefix) => (prefix.to_owned(), true),
            None => (path.to_owned(), false),
        };
        Ok(HttpGrant {
            https,
            authority,
            path,
            path_is_prefix,
        })
    }

    /// Whether this grant admits a request to `uri` (scheme, host, port
    /// and path; the query is not looked at).
    pub fn admits(&self, uri: &http::Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if https != self.https || !self.authority.admits_name(host, port) {
            return false;
        }
        let path = uri.path();
        if !self.path.is_empty() && has_dot_segment(path) {
            // `/a/../b` would leave `/a/*` on the server.
            return false;
        }
        match (self.path.is_empty(), self.path_is_prefix) {
            (true, _) => true,
            (false, true) => path.starts_with(&self.path),
            (false, false) => path == self.path,
        }
    }
}

/// Whether `path` has a `.` or `..` segment, plain or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

impl fmt::Display for HttpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let star = if self.path_is_prefix { "*" } else { "" };
        write!(f, "{scheme}://{}{}{star}", self.authority, self.path)
    }
}

/// Parses every entry of a grant list; the error carries the index of the
/// first bad one.
pub fn parse_tcp_grants(entries: &[String]) -> Result<Vec<TcpGrant>, (usize, GrantError)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| TcpGrant::parse(e).map_err(|err| (i, err)))
        .collect()
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Err("`*` alone would grant every host; name the host or use *.domain".into());
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    if host.contains(':') {
        return Err("an IPv6 address goes in brackets: [address]:port".into());
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("not a DNS name".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(if label.contains('*') {
                "a wildcard is allowed only as the whole first label (*.example.org)".into()
            } else {
                format!("{label:?} is not a valid DNS label")
            });
        }
    }
    Ok(if wildcard {
        HostPattern::Subdomains(format!(".{name}"))
    } else {
        HostPattern::Name(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> TcpGrant {
        TcpGrant::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_wildcards_and_addresses_parse_and_print_back() {
        for text in [
            "imap.example.org:993",
            "*.example.org:*",
            "127.0.0.1:8080",
            "[::1]:443",
        ] {
            assert_eq!(grant(text).to_string(), text);
        }
        assert_eq!(
            grant("IMAP.Example.org.:993").to_string(),
            "imap.example.org:993"
        );
    }

    #[test]
    fn an_exact_grant_admits_only_its_host_and_port() {
        let g = grant("imap.example.org:993");
        assert!(g.admits_name("imap.example.org", 993));
        assert!(g.admits_name("IMAP.example.org.", 993));
        assert!(!g.admits_name("imap.example.org", 143));
        assert!(!g.admits_name("example.org", 993));
        assert!(!g.admits_name("evil-imap.example.org", 993));
    }

    #[test]
    fn a_wildcard_admits_subdomains_but_not_the_domain_or_lookalikes() {
        let g = grant("*.example.org:*");
        assert!(g.admits_name("a.example.org", 1));
        assert!(g.admits_name("a.b.example.org", 65535));
        assert!(!g.admits_name("example.org", 1));
        assert!(!g.admits_name("badexample.org", 1));
    }

    #[test]
    fn an_address_grant_admits_that_address_written_either_way() {
        let g = grant("[::1]:443");
        assert!(g.admits_name("::1", 443));
        assert!(g.admits_name("[::1]", 443));
        assert!(!g.admits_name("127.0.0.1", 443));
    }

    #[test]
    fn bad_entries_are_refused_saying_why() {
        for (text, why) in [
            ("example.org", "expected host:port"),
            ("example.org:0", "1 to 65535"),
            ("example.org:http", "1 to 65535"),
            ("*:443", "every host"),
            (":443", "host is empty"),
            ("a.*.org:1", "wildcard"),
            ("::1:443", "brackets"),
            ("[::1:443", "[address]:port"),
            ("exa mple.org:1", "not a valid DNS label"),
        ] {
            let e = TcpGrant::parse(text).unwrap_err();
            assert_eq!(e.entry, text);
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_list_error_carries_the_index_of_the_bad_entry() {
        let entries = ["a.org:1".to_owned(), "b.org".to_owned()];
        let (i, e) = parse_tcp_grants(&entries).unwrap_err();
        assert_eq!(i, 1);
        assert_eq!(e.entry, "b.org");
    }

    #[test]
    fn http_grants_match_scheme_host_port_and_path() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        let g = HttpGrant::parse("https://review.example.org/a/*").unwrap();
        assert!(g.admits(&uri("https://review.example.org/a/changes/?q=1")));
        assert!(g.admits(&uri("https://REVIEW.example.org:443/a/")));
        assert!(!g.admits(&uri("http://review.example.org/a/x")), "scheme");
        assert!(
            !g.admits(&uri("https://review.example.org:8443/a/x")),
            "port"
        );
        assert!(!g.admits(&uri("https://review.example.org/b")), "path");
        assert!(!g.admits(&uri("https://evil.example.org/a/x")), "host");
        assert!(
            !g.admits(&uri("https://review.example.org/a/../b")),
            "dot segment"
        );
        assert!(
            !g.admits(&uri("https://review.example.org/a/%2E%2e/b")),
            "encoded dots"
        );
        let exact = HttpGrant::parse("http://127.0.0.1:8000/status").unwrap();
        assert!(exact.admits(&uri("http://127.0.0.1:8000/status")));
        assert!(!exact.admits(&uri("http://127.0.0.1:8000/status/x")));
        let any = HttpGrant::parse("https://*.example.org").unwrap();
        assert!(any.admits(&uri("https://api.example.org/anything")));
        assert!(!any.admits(&uri("https://example.org/")));
        assert_eq!(g.to_string(), "https://review.example.org:443/a/*");
    }

    #[test]
    fn bad_http_grants_say_why() {
        for (entry, says) in [
            ("ftp://x/", "http:// or https://"),
            ("review.example.org", "http:// or https://"),
            ("https://", "expected a host"),
            ("https://user@x/", "no user"),
            ("https://x/a?q=1", "not a query"),
            ("https://*/", "every host"),
            ("http://x:0/", "port"),
        ] {
            let e = HttpGrant::parse(entry).unwrap_err();
            assert!(e.to_string().contains(says), "{entry}: {e}");
        }
    }
}
