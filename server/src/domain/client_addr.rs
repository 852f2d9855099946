//! The client's address behind trusted proxies (`--trusted-proxy`): the rule that keeps the
//! per-address rate limit per student behind a load balancer, and unspoofable without one.
//!
//! When the peer (the TCP connection's address) is not a trusted proxy, it is the client, and
//! forwarding headers are ignored: anybody can send them. When it is, the client is the
//! right-most address of `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
//! the address it received the request from, so everything left of the first untrusted hop may
//! be forged). Without `X-Forwarded-For`, the `for=` parameters of `Forwarded` (RFC 7239) are
//! read the same way. An entry that is not an IP address (`unknown`, an obfuscated identifier,
//! garbage) ends the walk: the last trusted hop is then the client.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// The client's address of a request from `peer` carrying `x_forwarded_for` (every
/// `X-Forwarded-For` header line, in order) and `forwarded` (every `Forwarded` line), given
/// the trusted proxies' networks.
pub fn client_address(peer: IpAddr, x_forwarded_for: &[&str], forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = if x_forwarded_for.iter().any(|line| !line.trim().is_empty()) {
        x_forwarded_for.iter().flat_map(|line| line.split(',')).map(str::trim).filter(|h| !h.is_empty()).collect()
    } else {
        forwarded.iter().flat_map(|line| line.split(',')).filter_map(forwarded_for).collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// An IPv4-mapped IPv6 address as its IPv4 address, so `127.0.0.1/32` matches `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
    })
}

/// One hop's address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok()).map(canonical);
    }
    hop.rsplit_once(':').and_then(|(ip, port)| port.parse::<u16>().ok().and(ip.parse().ok())).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    // An untrusted peer is the client whatever headers it sends: forged headers change nothing.
    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_address(ip("198.51.100.9"), &["203.0.113.7"], &[], &trusted), ip("198.51.100.9"));
        assert_eq!(client_address(ip("198.51.100.9"), &[], &["for=203.0.113.7"], &trusted), ip("198.51.100.9"));
        assert_eq!(client_address(ip("127.0.0.1"), &["203.0.113.7"], &[], &[]), ip("127.0.0.1"));
    }

    // Behind trusted proxies the client is the right-most untrusted hop; what it forged to the left is skipped.
    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let peer = ip("127.0.0.1");
        assert_eq!(client_address(peer, &["203.0.113.7"], &[], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(peer, &["1.2.3.4, 203.0.113.7, 10.0.0.5"], &[], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(peer, &["1.2.3.4", "203.0.113.7, 10.0.0.5"], &[], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(peer, &["10.0.0.9, 10.0.0.5"], &[], &trusted), ip("10.0.0.9"), "all trusted");
        assert_eq!(client_address(peer, &[], &[], &trusted), peer, "no header: the proxy itself");
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &["203.0.113.7"], &[], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(peer, &["[2001:db8::1]:4711"], &[], &trusted), ip("2001:db8::1"));
        assert_eq!(client_address(peer, &["203.0.113.7:5000"], &[], &trusted), ip("203.0.113.7"));
        assert_eq!(client_address(peer, &["203.0.113.7, garbage"], &[], &trusted), peer, "unparsable hop");
    }

    // RFC 7239 `Forwarded` is read when there is no X-Forwarded-For.
    #[test]
    fn forwarded_is_read_without_x_forwarded_for() {
        let trusted = nets(&["127.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        let forwarded = ["for=1.2.3.4, for=\"[2001:db8::7]:80\";proto=https"];
        assert_eq!(client_address(peer, &[], &forwarded, &trusted), ip("2001:db8::7"));
        assert_eq!(client_address(peer, &["203.0.113.7"], &forwarded, &trusted), ip("203.0.113.7"), "XFF first");
        assert_eq!(client_address(peer, &[], &["for=unknown"], &trusted), peer);
    }
}
