//! The client's address for per-IP limits and the CDR's network, when the
//! node sits behind proxies or load balancers that name it in `Forwarded`
//! (RFC 7239) or the older `X-Forwarded-For`.
//!
//! Those headers are written by whoever sends the request, so they are
//! believed only from a peer in `[http] trusted_proxies`. Each proxy appends
//! the address it received the request from, so the list is read from the
//! right (the hop nearest to the node): trusted proxies are skipped, and the
//! first address that is not one is the client. A visitor can put anything
//! at the left of the list; it is never reached while an untrusted address
//! stands to its right. `Forwarded` wins when both headers are present.
//!
//! Pure: no I/O, no logging (the addresses are personal data).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request came from: `peer` (the TCP peer), or the client a
/// trusted proxy names.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded = forwarded_for(headers);
    let hops = match forwarded.is_empty() {
        true => x_forwarded_for(headers),
        false => forwarded,
    };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop else {
            // An entry that is no address ("unknown", an obfuscated name,
            // garbage): nothing left of it can be placed, so the hop that
            // wrote it is the best answer.
            return nearest;
        };
        if !is_trusted(*ip, trusted) {
            return *ip;
        }
        nearest = *ip;
    }
    nearest
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The `for=` of every element of every `Forwarded` header, in order;
/// `None` for one that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let elements = headers
        .get_all("forwarded")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("for=invalid").split(','));
    let node = |element: &str| {
        element.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("for")
                .then(|| node_ip(value))
        })
    };
    // An element without `for=` says nothing about the client's address.
    elements.filter_map(node).collect()
}

/// Every entry of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("invalid").split(','));
    entries.map(node_ip).collect()
}

/// An RFC 7239 node (`192.0.2.60`, `"[2001:db8::1]:4711"`,
/// `198.51.100.17:80`) or a bare address, without its port.
fn node_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(bracketed) = text.strip_prefix('[') {
        let (v6, _port) = bracketed.split_once(']')?;
        return v6.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (v4, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5";

    fn from_proxy(pairs: &[(&'static str, &'static str)]) -> IpAddr {
        client_ip(ip(PROXY), &headers(pairs), &nets(&["10.0.0.0/8"]))
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let peer = ip("198.51.100.7");
        assert_eq!(client_ip(peer, &spoofed, &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(client_ip(peer, &spoofed, &[]), peer);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        assert_eq!(
            from_proxy(&[("x-forwarded-for", "203.0.113.9")]),
            ip("203.0.113.9")
        );
        assert_eq!(
            from_proxy(&[("forwarded", "for=203.0.113.9;proto=https")]),
            ip("203.0.113.9")
        );
        assert_eq!(from_proxy(&[]), ip(PROXY), "no header: the proxy itself");
    }

    #[test]
    fn the_list_is_read_from_the_nearest_hop_and_spoofed_entries_stay_unread() {
        // The visitor wrote "1.1.1.1"; the edge proxy appended the address
        // it saw; an inner proxy appended the edge's.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.2.3.4")];
        assert_eq!(from_proxy(&chain), ip("203.0.113.9"));
        let split = [
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(
            from_proxy(&split),
            ip("203.0.113.9"),
            "headers join in order"
        );
        let all_trusted = [("x-forwarded-for", "10.9.9.9, 10.2.3.4")];
        assert_eq!(from_proxy(&all_trusted), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_wins_and_its_node_forms_parse() {
        let both = [
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "1.1.1.1"),
        ];
        assert_eq!(from_proxy(&both), ip("203.0.113.9"));
        let v6 = [(
            "forwarded",
            "for=\"[2001:db8:cafe::17]:4711\", for=10.1.1.1",
        )];
        assert_eq!(from_proxy(&v6), ip("2001:db8:cafe::17"));
        let with_port = [("forwarded", "proto=https;For=198.51.100.17:80;by=10.0.0.5")];
        assert_eq!(from_proxy(&with_port), ip("198.51.100.17"));
        let no_for = [
            ("forwarded", "proto=https"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(from_proxy(&no_for), ip("203.0.113.9"));
    }

    #[test]
    fn an_entry_that_is_no_address_stops_at_the_hop_that_wrote_it() {
        let unknown = [("forwarded", "for=unknown, for=10.7.7.7")];
        assert_eq!(from_proxy(&unknown), ip("10.7.7.7"));
        let garbage = [("x-forwarded-for", "203.0.113.9, not-an-ip")];
        assert_eq!(from_proxy(&garbage), ip(PROXY));
        let obfuscated = [("forwarded", "for=_hidden")];
        assert_eq!(from_proxy(&obfuscated), ip(PROXY));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_proxies() {
        let peer = ip("::ffff:10.0.0.5");
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
        assert_eq!(
            client_ip(peer, &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }
}
