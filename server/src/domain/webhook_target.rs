//! Which alert webhook targets the server may POST to. A webhook carries students' sessions and
//! emails, so by default it goes over HTTPS to a public address only (as Gitea's webhook
//! allow-list does): `http://` targets and loopback, private (RFC 1918, RFC 4193), link-local,
//! CGNAT (RFC 6598), unspecified and documentation-free internal addresses are refused unless
//! `--alert-webhook-allow-private` is given (a receiver on the same machine or network, and the
//! tests). A name is judged by every address it resolves to at start; the check is not repeated
//! per delivery (a name that later resolves elsewhere is the operator's DNS).

use std::net::IpAddr;

/// Whether `ip` is an address a default server must not POST to.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)) // CGNAT, RFC 6598
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// A webhook URL split into what the check needs: `(https, host, port)`. Errors: a message naming
/// the URL when it is not `http(s)://host[:port][/path]`.
pub fn parse(url: &str) -> Result<(bool, String, u16), String> {
    let bad = |why: &str| format!("--alert-webhook {url:?}: {why}");
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("must start with https:// (or http:// with --alert-webhook-allow-private)"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("user info in the URL is not supported; sign with --alert-webhook-secret instead"));
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed [ in the host"))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| bad("the port must be a number up to 65535"))?,
        None => default_port,
    };
    Ok((https, host, port))
}

/// Checks one target given the addresses its host resolved to (an IP literal resolves to
/// itself). Errors: a message naming the URL and why, when `allow_private` is off and the URL is
/// `http://` or any address is internal ([`is_internal`]).
pub fn check(url: &str, https: bool, addresses: &[IpAddr], allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    if !https {
        return Err(format!(
            "--alert-webhook {url:?}: plain http:// is refused (alerts carry students' sessions); use https:// or pass --alert-webhook-allow-private"
        ));
    }
    if let Some(ip) = addresses.iter().find(|ip| is_internal(**ip)) {
        return Err(format!(
            "--alert-webhook {url:?}: {ip} is a loopback, private or link-local address; pass --alert-webhook-allow-private to send there"
        ));
    }
    if addresses.is_empty() {
        return Err(format!("--alert-webhook {url:?}: its host did not resolve"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    // Internal addresses of both families are recognised; public ones are not.
    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    // A target is refused over http:// or at an internal address, unless private targets are
    // allowed; the message names the URL.
    #[test]
    fn targets_are_https_and_public_by_default() {
        assert_eq!(parse("https://hooks.example.com/x?y=1"), Ok((true, "hooks.example.com".into(), 443)));
        assert_eq!(parse("http://127.0.0.1:9000/hook"), Ok((false, "127.0.0.1".into(), 9000)));
        assert_eq!(parse("https://[::1]:8443/"), Ok((true, "::1".into(), 8443)));
        assert!(parse("ftp://x").is_err() && parse("https://u:p@x/").is_err() && parse("https://x:99999").is_err());
        let url = "http://hooks.example.com/";
        assert!(check(url, false, &[ip("93.184.216.34")], false).unwrap_err().contains(url));
        assert!(check("https://x/", true, &[ip("10.0.0.5")], false).unwrap_err().contains("10.0.0.5"));
        assert!(check("https://x/", true, &[ip("93.184.216.34")], false).is_ok());
        assert!(check("http://127.0.0.1:9/", false, &[ip("127.0.0.1")], true).is_ok());
    }
}
