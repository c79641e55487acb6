//! The Origin check for signalling (RFC 6454): a browser's call request must
//! come from one of the widget's allowed origins.
//!
//! Origins compare as (scheme, host, port) after normalising: the scheme and
//! host are case-insensitive, a missing port is the scheme's default
//! (`https://a.com` is `https://a.com:443`), IPv6 literals compare as
//! addresses. Only `http` and `https` origins exist for this purpose.
//!
//! Deliberate refusals:
//! - A missing Origin header is refused. Browsers always send Origin on a
//!   cross-origin POST and on a WebSocket upgrade; scripted clients must
//!   send one too, so nothing reaches a call without naming its origin.
//! - `null` (sandboxed frames, `file:` pages) is never allowed.
//! - `*` and wildcard hosts (`https://*.a.com`) are not supported: an entry
//!   that is not a plain origin matches nothing. A widget that rings a real
//!   phone must name the sites that may embed it.
//!
//! The token `self` in an allowed list stands for the node's own origin
//! (the demo widget uses it).

use std::net::Ipv6Addr;

/// The allowed-list token for the node's own origin.
pub const SELF_TOKEN: &str = "self";

/// Whether `origin` (the request's Origin header) is in `allowed`.
pub fn origin_allowed(origin: Option<&str>, allowed: &[String], own_origin: &str) -> bool {
    let Some(origin) = origin.and_then(normalize_origin) else {
        return false;
    };
    allowed.iter().any(|entry| {
        let entry = entry.trim();
        let entry = if entry.eq_ignore_ascii_case(SELF_TOKEN) {
            own_origin
        } else {
            entry
        };
        normalize_origin(entry).is_some_and(|e| e == origin)
    })
}

/// `scheme://host[:port]` of a base URL (its path dropped): the origin a
/// browser sends for pages the node serves at that URL.
pub fn origin_of(base_url: &str) -> String {
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("http", base_url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// `scheme://host:port` in canonical form, or `None` when `text` is not an
/// http(s) origin. Also fit for checking an allowed-origins list on input.
pub fn normalize_origin(text: &str) -> Option<String> {
    let (scheme, rest) = text.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    // An origin has no path; tolerate the lone "/" people type after a host.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok()?
        }
        Some(_) => return None,
    };
    Some(format!("{scheme}://{}:{port}", normalize_host(host)?))
}

/// Splits `host[:port]`, with `[v6]` literals kept whole.
fn split_host_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match rest.split_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((rest, None)),
    }
}

fn normalize_host(host: &str) -> Option<String> {
    if let Some(literal) = host.strip_prefix('[') {
        let v6: Ipv6Addr = literal.strip_suffix(']')?.parse().ok()?;
        return Some(format!("[{v6}]"));
    }
    // Browsers send hosts in ASCII (IDNs as punycode); anything else here,
    // such as userinfo, a path or a wildcard, is not an origin.
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://gw.example.net";

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    fn allowed(origin: &str, entries: &[&str]) -> bool {
        origin_allowed(Some(origin), &list(entries), OWN)
    }

    #[test]
    fn exact_match_after_normalisation() {
        let entries = ["https://shop.example.com"];
        assert!(allowed("https://shop.example.com", &entries));
        assert!(allowed("https://shop.example.com:443", &entries));
        assert!(allowed("HTTPS://Shop.Example.COM", &entries));
        assert!(origin_allowed(
            Some("https://shop.example.com"),
            &list(&["https://shop.example.com:443/"]),
            OWN
        ));
        assert!(allowed("http://localhost:8080", &["http://LOCALHOST:8080"]));
        assert!(allowed("http://a.test", &["http://a.test:80"]));
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let entries = ["https://shop.example.com"];
        assert!(!allowed("http://shop.example.com", &entries));
        assert!(!allowed("https://shop.example.com:8443", &entries));
        assert!(!allowed("https://evil.shop.example.com", &entries));
        assert!(!allowed("https://shop.example.com.evil.net", &entries));
        assert!(!allowed("https://shop.example.co", &entries));
        assert!(!allowed("http://a.test:443", &["https://a.test"]));
    }

    #[test]
    fn missing_null_and_malformed_origins_are_refused() {
        let entries = list(&["https://a.test"]);
        assert!(!origin_allowed(None, &entries, OWN));
        for bad in [
            "null",
            "",
            "a.test",
            "https://",
            "https://a.test/path",
            "https://user@a.test",
            "https://a.test:",
            "https://a.test:+443",
            "https://a.test:99999",
            "https://a.test:443:443",
            "ftp://a.test",
            "chrome-extension://abc",
        ] {
            assert!(!origin_allowed(Some(bad), &entries, OWN), "{bad:?}");
        }
    }

    #[test]
    fn self_means_the_nodes_own_origin() {
        assert!(allowed("https://gw.example.net:443", &["self"]));
        assert!(allowed("https://gw.example.net", &["SELF"]));
        assert!(!allowed("https://other.example.net", &["self"]));
        let local = "http://127.0.0.1:8080";
        assert!(origin_allowed(Some(local), &list(&["self"]), local));
    }

    #[test]
    fn wildcards_are_not_supported() {
        assert!(!allowed("https://a.test", &["*"]));
        assert!(!allowed("https://x.a.test", &["https://*.a.test"]));
        assert!(!allowed("*", &["*"]));
        assert_eq!(normalize_origin("*"), None);
    }

    #[test]
    fn ipv6_literals_compare_as_addresses() {
        assert!(allowed("http://[::1]:8080", &["http://[0:0::1]:8080"]));
        assert!(allowed(
            "https://[2001:DB8::1]",
            &["https://[2001:db8::1]:443"]
        ));
        assert!(!allowed("http://[::1]:8080", &["http://[::2]:8080"]));
        assert_eq!(normalize_origin("http://::1"), None, "brackets required");
        assert_eq!(normalize_origin("http://[::1"), None);
        assert_eq!(normalize_origin("http://[::1]8080"), None);
    }

    #[test]
    fn a_base_urls_origin_drops_its_path() {
        assert_eq!(origin_of("https://gw.example.net/callgate"), OWN);
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn canonical_form() {
        assert_eq!(
            normalize_origin(" HTTPS://A.Test/ ").as_deref(),
            Some("https://a.test:443")
        );
        assert_eq!(
            normalize_origin("http://a.test:8080").as_deref(),
            Some("http://a.test:8080")
        );
    }
}
