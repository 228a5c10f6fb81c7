//! `host:port` as the sources' configs name a server (`[v6]:port` for an
//! IPv6 literal), checked when the config is read so that a typo is a
//! clear error at start rather than a failed connect later.

/// Splits `host:port`; the brackets of `[v6]:port` are removed.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?}: expected host:port"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{addr:?}: unbalanced '[' in the host"))?,
        None if host.contains(':') => {
            return Err(format!("{addr:?}: write an IPv6 address as [address]:port"));
        }
        None => host,
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{addr:?}: the port must be a number from 1 to 65535"))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("{addr:?}: expected host:port"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ipv6() {
        assert_eq!(
            split_host_port("review.example.org:29418"),
            Ok(("review.example.org", 29418))
        );
        assert_eq!(split_host_port("127.0.0.1:143"), Ok(("127.0.0.1", 143)));
        assert_eq!(split_host_port("[::1]:993"), Ok(("::1", 993)));
    }

    #[test]
    fn mistakes_are_named() {
        for bad in [
            "review.example.org",
            "host:0",
            "host:http",
            ":143",
            "::1:993",
            "[::1:993",
            "http://h:1",
        ] {
            let e = split_host_port(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
