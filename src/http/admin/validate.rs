//! The checks on admin values, each naming the field it refuses.

use super::error::ApiError;
use crate::store::SELF_ORIGIN;
use crate::webhooks::target::{is_public, literal_ip};

/// Retention a number may have: the usual choices are 7, 30, 90 and 365
/// days; any whole number of days in this range is accepted.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3650;
const MAX_NOTICE_CHARS: usize = 2000;
const MAX_ORIGINS: usize = 32;

/// Ids of numbers and widgets: 1 to 64 of `a-z 0-9 _ -`, starting with a
/// letter or digit, so they are safe in URLs, logs and file names.
pub fn id(field: &str, value: &str) -> Result<(), ApiError> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && value.len() <= 64 {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            field,
            "must be 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or digit",
        ))
    }
}

/// E.164 (ITU-T E.164 §6): `+`, a country code that does not start with 0,
/// at most 15 digits in all.
pub fn e164(field: &str, value: &str) -> Result<(), ApiError> {
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            field,
            "must be an E.164 number: '+' and 2 to 15 digits, not starting with 0",
        ))
    }
}

pub fn retention_days(field: &str, days: u32) -> Result<(), ApiError> {
    if RETENTION_DAYS.contains(&days) {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            field,
            format!(
                "must be between {} and {} days (e.g. 7, 30, 90 or 365)",
                RETENTION_DAYS.start(),
                RETENTION_DAYS.end()
            ),
        ))
    }
}

pub fn notice_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() <= MAX_NOTICE_CHARS && !value.trim().is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            field,
            format!("must be 1 to {MAX_NOTICE_CHARS} characters"),
        ))
    }
}

/// Each origin is `self` or `http(s)://host[:port]` with nothing after it
/// (what browsers send in `Origin`, RFC 6454 §7).
pub fn origins(field: &str, origins: &[String]) -> Result<(), ApiError> {
    if origins.is_empty() || origins.len() > MAX_ORIGINS {
        return Err(ApiError::bad_field(
            field,
            format!("must list 1 to {MAX_ORIGINS} origins"),
        ));
    }
    for (index, origin) in origins.iter().enumerate() {
        if !origin_ok(origin) {
            return Err(ApiError::bad_field(
                format!("{field}[{index}]"),
                "must be \"self\" or scheme://host[:port] with scheme http or https and no path",
            ));
        }
    }
    Ok(())
}

fn origin_ok(origin: &str) -> bool {
    if origin == SELF_ORIGIN {
        return true;
    }
    let Some(host_port) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, rest)) => (v6, Some(rest.strip_prefix(':').unwrap_or("x"))),
            None => return false,
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    host_ok && port_ok
}

/// The events a webhook endpoint receives: at least one, each known
/// ([`crate::webhooks::EVENTS`]); answered comma-separated, in the order
/// given, without repeats.
pub fn webhook_events(field: &str, events: &[String]) -> Result<String, ApiError> {
    let known = crate::webhooks::EVENTS;
    let message = || format!("must list one or more of {}", known.join(", "));
    if events.is_empty() {
        return Err(ApiError::bad_field(field, message()));
    }
    let mut chosen: Vec<&str> = Vec::new();
    for event in events {
        let known_event = known
            .iter()
            .find(|k| **k == event.as_str())
            .ok_or_else(|| ApiError::bad_field(field, message()))?;
        if !chosen.contains(known_event) {
            chosen.push(known_event);
        }
    }
    Ok(chosen.join(","))
}

/// A webhook endpoint: an absolute `https` URL, or `http` to a loopback
/// host (a receiver on the same machine); no user info, at most 2048 bytes.
pub fn webhook_url(field: &str, value: &str, allow_private: bool) -> Result<(), ApiError> {
    const MESSAGE: &str = "must be an https:// URL with a host and no user info, at most 2048 \
        characters";
    const PRIVATE: &str = "must name a public host: this node sends webhooks to no private, \
        loopback or link-local address, nor over http:// (webhooks.allow_private_targets)";
    const PRIVATE_HTTP: &str = "must be an https:// URL (http:// only to localhost, \
        127.0.0.0/8 or [::1]) with a host and no user info, at most 2048 characters";
    let uri: axum::http::Uri = value
        .parse()
        .map_err(|_| ApiError::bad_field(field, MESSAGE))?;
    let host = uri.host().unwrap_or("");
    let no_user_info = uri.authority().is_some_and(|a| !a.as_str().contains('@'));
    if value.len() > 2048 || host.is_empty() || !no_user_info {
        return Err(ApiError::bad_field(field, MESSAGE));
    }
    let inside =
        host.eq_ignore_ascii_case("localhost") || literal_ip(host).is_some_and(|ip| !is_public(ip));
    match (uri.scheme_str(), allow_private) {
        (Some("https"), false) if inside => Err(ApiError::bad_field(field, PRIVATE)),
        (Some("https"), _) => Ok(()),
        (Some("http"), false) if is_loopback_host(host) => Err(ApiError::bad_field(field, PRIVATE)),
        (Some("http"), true) if is_loopback_host(host) => Ok(()),
        (_, true) => Err(ApiError::bad_field(field, PRIVATE_HTTP)),
        (_, false) => Err(ApiError::bad_field(field, MESSAGE)),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || literal_ip(host).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<(), ApiError>) -> Option<String> {
        match result {
            Err(ApiError::BadField { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn e164_numbers() {
        for good in ["+15555550100", "+442079460000", "+12"] {
            assert!(e164("e164", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "+",
            "15555550100",
            "+0123",
            "+1555 555",
            "+1234567890123456",
            "+1a",
        ] {
            assert_eq!(field(e164("e164", bad)).as_deref(), Some("e164"), "{bad}");
        }
    }

    #[test]
    fn retention_limits() {
        for good in [1, 7, 30, 90, 365, 3650] {
            assert!(retention_days("retention_days", good).is_ok());
        }
        for bad in [0, 3651, u32::MAX] {
            assert!(retention_days("retention_days", bad).is_err());
        }
    }

    #[test]
    fn ids() {
        for good in ["demo", "n1", "sales-line_2", &"a".repeat(64)] {
            assert!(id("id", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "Demo", "a b", "a/b", "../x", &"a".repeat(65)] {
            assert!(id("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_name_the_bad_entry() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            origins(
                "o",
                &list(&["self", "https://shop.example", "http://127.0.0.1:8080"])
            )
            .is_ok()
        );
        assert!(origins("o", &list(&["http://[::1]:8080"])).is_ok());
        assert_eq!(
            field(origins("o", &list(&["self", "https://shop.example/path"]))).as_deref(),
            Some("o[1]")
        );
        for bad in [
            "ftp://x",
            "https://",
            "shop.example",
            "https://a:0",
            "https://a:99999",
            "*",
        ] {
            assert!(origins("o", &list(&[bad])).is_err(), "{bad}");
        }
        assert!(origins("o", &[]).is_err());
    }

    #[test]
    fn webhook_events_are_known_ones_without_repeats() {
        let list = |events: &[&str]| events.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            webhook_events(
                "events",
                &list(&["call.answered", "call.ended", "call.answered"])
            )
            .unwrap(),
            "call.answered,call.ended"
        );
        for bad in [
            &[][..],
            &["call.ended", "call.started"],
            &["CALL.ENDED"],
            &[""],
        ] {
            let error = webhook_events("events", &list(bad)).unwrap_err();
            assert!(error.to_string().contains("call.ringing"), "{error}");
        }
    }

    #[test]
    fn webhook_urls_are_https_to_public_hosts_unless_private_targets_are_allowed() {
        let public = ["https://hooks.example.com/callgate", "https://8.8.8.8/hook"];
        let inside = [
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest",
            "https://[fd00::1]/",
            "https://localhost/",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8080/",
        ];
        for ok in public {
            assert!(webhook_url("url", ok, false).is_ok(), "{ok}");
            assert!(webhook_url("url", ok, true).is_ok(), "{ok}");
        }
        for ok in inside {
            assert!(webhook_url("url", ok, true).is_ok(), "{ok}");
            assert_eq!(
                field(webhook_url("url", ok, false)).as_deref(),
                Some("url"),
                "{ok}"
            );
        }
        for bad in [
            "http://hooks.example.com/",
            "http://10.0.0.1/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "/relative",
            "",
        ] {
            for allow_private in [false, true] {
                assert_eq!(
                    field(webhook_url("url", bad, allow_private)).as_deref(),
                    Some("url"),
                    "{bad}"
                );
            }
        }
    }
}
