//! Why a trunk ended or refused a call, in words a customer can read: the
//! reason phrase of its final response, or the `text` of its BYE's
//! `Reason` header, and the Q.850 cause of a `Reason` header (RFC 3326),
//! as the CDR and the `call.ended` webhook keep them.
//!
//! Carriers write what they like into a reason phrase, personal data
//! included (`403 Caller 4915112345678 not allowed`, a SIP URI, an
//! address). [`redact_phrase`] keeps the words and drops every token that
//! could name someone: one with a run of four or more digits, an `@`, a
//! `:` (URIs, IPv6), or the shape of an IPv4 address. A phrase is also cut
//! to [`MAX_PHRASE`] characters of printable ASCII.
//!
//! Pure: messages, header values and phrases in, values out.

use rsipstack::sip::{HeadersExt, Request, Response};

/// The longest phrase kept, in characters.
pub const MAX_PHRASE: usize = 96;
/// What stands where a token was dropped.
const DROPPED: &str = "[redacted]";

/// A reason phrase as a customer may see it, `None` when nothing readable
/// is left.
pub fn redact_phrase(phrase: &str) -> Option<String> {
    let mut kept = Vec::new();
    for token in phrase.split_whitespace() {
        let token: String = token.chars().filter(|c| c.is_ascii_graphic()).collect();
        if token.is_empty() {
            continue;
        }
        if names_someone(&token) {
            if kept.last() != Some(&DROPPED.to_owned()) {
                kept.push(DROPPED.to_owned());
            }
        } else {
            kept.push(token);
        }
    }
    let mut text = kept.join(" ");
    if text.is_empty() || text == DROPPED {
        return None;
    }
    if text.len() > MAX_PHRASE {
        let cut = text[..MAX_PHRASE].rfind(' ').unwrap_or(MAX_PHRASE);
        text.truncate(cut);
    }
    Some(text)
}

fn names_someone(token: &str) -> bool {
    let mut run = 0;
    for c in token.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 4 {
            return true;
        }
    }
    token.contains(['@', ':']) || looks_like_ipv4(token)
}

/// Four dot-separated groups of digits somewhere in the token.
fn looks_like_ipv4(token: &str) -> bool {
    token
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|part| {
            let groups: Vec<&str> = part.split('.').collect();
            groups.len() >= 4
                && groups
                    .iter()
                    .filter(|g| !g.is_empty() && g.len() <= 3)
                    .count()
                    >= 4
        })
}

/// Why the trunk refused or ended a call, as its final response or its BYE
/// said it, stripped of personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkReason {
    /// The reason phrase (`Busy Here`, or the carrier's own words).
    pub phrase: Option<String>,
    /// The Q.850 cause of a `Reason` header (RFC 3326), 1-127.
    pub q850_cause: Option<u8>,
}

impl TrunkReason {
    /// What a final response says about itself.
    pub fn of_response(response: &Response) -> Self {
        let phrase = response
            .wire_reason
            .as_deref()
            .unwrap_or_else(|| response.status_code.text());
        Self {
            phrase: redact_phrase(phrase),
            q850_cause: response
                .reason_header()
                .and_then(|header| q850_cause(header.value())),
        }
    }

    /// What the trunk's BYE says of why it hung up: the `Reason` header's
    /// Q.850 cause and its `text`, when it has them.
    pub fn of_bye(bye: &Request) -> Self {
        let Some(header) = bye.reason_header() else {
            return Self::default();
        };
        Self {
            phrase: text(header.value()).and_then(redact_phrase),
            q850_cause: q850_cause(header.value()),
        }
    }
}

/// The Q.850 cause (1-127) of a `Reason` header's value, which may list
/// several protocols (`SIP;cause=200;text="..."`, `Q.850;cause=16`).
pub fn q850_cause(header_value: &str) -> Option<u8> {
    header_value.split(',').find_map(|value| {
        let mut parts = value.split(';');
        let protocol = parts.next()?.trim();
        if !protocol.eq_ignore_ascii_case("Q.850") {
            return None;
        }
        parts.find_map(|param| {
            let (name, number) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("cause") {
                return None;
            }
            number
                .trim()
                .trim_matches('"')
                .parse::<u8>()
                .ok()
                .filter(|cause| (1..=127).contains(cause))
        })
    })
}

/// The `text` of a `Reason` header's value: that of its Q.850 entry if it
/// has one, else the first given, unquoted.
pub fn text(header_value: &str) -> Option<&str> {
    fn text_of(value: &str) -> Option<&str> {
        value.split(';').skip(1).find_map(|param| {
            let (name, text) = param.split_once('=')?;
            let text = text.trim().trim_matches('"').trim();
            (name.trim().eq_ignore_ascii_case("text") && !text.is_empty()).then_some(text)
        })
    }
    let mut entries = header_value.split(',');
    let q850 = entries.clone().find(|value| {
        let protocol = value.split(';').next().unwrap_or_default().trim();
        protocol.eq_ignore_ascii_case("Q.850")
    });
    q850.and_then(text_of).or_else(|| entries.find_map(text_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_keep_their_words_and_lose_what_names_someone() {
        let cases = [
            ("Busy Here", Some("Busy Here")),
            ("Not Found", Some("Not Found")),
            (
                "Caller Origination Number +4915112345678 is Invalid",
                Some("Caller Origination Number [redacted] is Invalid"),
            ),
            (
                "Forbidden for sip:alice@example.com from 192.0.2.10:5060",
                Some("Forbidden for [redacted] from [redacted]"),
            ),
            ("Blocked (198.51.100.7)", Some("Blocked [redacted]")),
            ("No route to 2001:db8::1", Some("No route to [redacted]")),
            (
                "Call to 030 1234 5678 refused",
                Some("Call to 030 [redacted] refused"),
            ),
            (
                "Q.850 cause 34 circuit busy",
                Some("Q.850 cause 34 circuit busy"),
            ),
            ("   ", None),
            ("4915112345678", None),
            ("B\u{fc}sy\u{7}", Some("Bsy")),
        ];
        for (phrase, expected) in cases {
            assert_eq!(redact_phrase(phrase).as_deref(), expected, "{phrase:?}");
        }
        let long = "word ".repeat(40);
        let kept = redact_phrase(&long).unwrap();
        assert!(kept.len() <= MAX_PHRASE && kept.ends_with("word"), "{kept}");
    }

    #[test]
    fn the_q850_cause_is_read_from_any_place_in_the_header() {
        assert_eq!(
            q850_cause("Q.850;cause=16;text=\"Normal call clearing\""),
            Some(16)
        );
        assert_eq!(q850_cause("Q.850 ; cause = 17"), Some(17));
        assert_eq!(
            q850_cause("SIP;cause=200;text=\"Call completed elsewhere\", Q.850;cause=26"),
            Some(26)
        );
        assert_eq!(q850_cause("q.850;text=\"x\";cause=\"34\""), Some(34));
        for none in [
            "SIP;cause=487",
            "Q.850;cause=0",
            "Q.850;cause=128",
            "Q.850;cause=x",
            "Q.850",
            "",
        ] {
            assert_eq!(q850_cause(none), None, "{none:?}");
        }
    }

    #[test]
    fn the_text_is_the_q850_entrys_or_the_first_given() {
        assert_eq!(
            text("Q.850;cause=16;text=\"Normal call clearing\""),
            Some("Normal call clearing")
        );
        assert_eq!(
            text("SIP;cause=200;text=\"Elsewhere\", Q.850;cause=26;text=\"Non-selected\""),
            Some("Non-selected")
        );
        assert_eq!(
            text("Q.850;cause=16, SIP;cause=200;text=\"Elsewhere\""),
            Some("Elsewhere")
        );
        assert_eq!(text("Q.850 ; Text = plain ;cause=16"), Some("plain"));
        for none in [
            "Q.850;cause=16",
            "Q.850;text=\"\"",
            "",
            "text=\"no protocol\"",
        ] {
            assert_eq!(text(none), None, "{none:?}");
        }
    }
}
