//! Keypad digits a trunk sends in SIP INFO requests rather than as RFC 4733
//! events: the legacy "INFO DTMF" that predates Info Packages (RFC 6086
//! §1), which many carriers and PBXs still use.
//!
//! Two bodies are in use:
//! - `application/dtmf-relay`: lines of `key=value`, the digit in
//!   `Signal=` and its length in milliseconds in `Duration=` (ignored: the
//!   digit is played to the browser at our own tone length);
//! - `application/dtmf`: the digit alone.
//!
//! The digit is a keypad character (`0`-`9`, `*`, `#`, `A`-`D`) or, as some
//! equipment writes it, its RFC 4733 event code (`10` for `*`, `11` for
//! `#`, `12`-`15` for `A`-`D`).
//!
//! Pure: a content type and a body in, an [`InfoDtmf`] out, and the status
//! the INFO is answered with. Digits may be PINs: never log them.

use crate::media::dtmf::{digit_to_event, event_to_digit};

/// What an INFO request carries, as far as keypad digits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoDtmf {
    /// One keypad digit, normalised (`A`-`D` upper case).
    Digit(char),
    /// No body: an INFO used as a keep-alive, answered 200.
    Empty,
    /// A body of another kind (a video update request, say): 415.
    Unsupported,
    /// A DTMF body without a digit we know: 400.
    Malformed,
}

impl InfoDtmf {
    /// The status code the INFO is answered with.
    pub fn status(self) -> u16 {
        match self {
            Self::Digit(_) | Self::Empty => 200,
            Self::Unsupported => 415,
            Self::Malformed => 400,
        }
    }
}

/// The content types this module reads, as a 415 answer's `Accept` lists them.
pub const ACCEPTED_TYPES: &str = "application/dtmf-relay, application/dtmf";

/// Reads an INFO request's body; `content_type` is its `Content-Type`
/// header's value, if it has one.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> InfoDtmf {
    if body.iter().all(u8::is_ascii_whitespace) {
        return InfoDtmf::Empty;
    }
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let Ok(text) = std::str::from_utf8(body) else {
        return match is_dtmf_type(media_type) {
            true => InfoDtmf::Malformed,
            false => InfoDtmf::Unsupported,
        };
    };
    let signal = if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        relay_signal(text)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        Some(text.trim())
    } else {
        return InfoDtmf::Unsupported;
    };
    signal
        .and_then(digit_of)
        .map_or(InfoDtmf::Malformed, InfoDtmf::Digit)
}

fn is_dtmf_type(media_type: &str) -> bool {
    media_type.eq_ignore_ascii_case("application/dtmf-relay")
        || media_type.eq_ignore_ascii_case("application/dtmf")
}

/// The value of the first `Signal=` line, key matched in any case.
fn relay_signal(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("signal")
            .then_some(value.trim())
    })
}

/// A keypad character or an RFC 4733 event code 0-15, as a digit.
fn digit_of(signal: &str) -> Option<char> {
    let mut chars = signal.chars();
    if let (Some(only), None) = (chars.next(), chars.next()) {
        return digit_to_event(only).and_then(event_to_digit);
    }
    signal.parse::<u8>().ok().and_then(event_to_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: Option<&str> = Some("application/dtmf-relay");

    #[test]
    fn dtmf_relay_bodies_as_carriers_write_them() {
        let cases: [(&[u8], char); 7] = [
            (b"Signal=5\r\nDuration=160\r\n", '5'),
            (b"Signal= #\r\nDuration= 250\r\n", '#'),
            (b"signal=*\nduration=100\n", '*'),
            (b"Duration=160\r\nSignal=d\r\n", 'D'),
            (b"Signal=10\r\nDuration=160\r\n", '*'),
            (b"Signal=11\r\nDuration=160\r\n", '#'),
            (b"Signal = 0", '0'),
        ];
        for (body, digit) in cases {
            assert_eq!(
                parse(RELAY, body),
                InfoDtmf::Digit(digit),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_content_type_is_matched_without_case_or_parameters() {
        let body = b"Signal=7\r\n";
        for content_type in [
            "Application/DTMF-Relay",
            "application/dtmf-relay; charset=utf-8",
            " application/dtmf-relay ",
        ] {
            assert_eq!(parse(Some(content_type), body), InfoDtmf::Digit('7'));
        }
        assert_eq!(
            parse(Some("application/dtmf"), b"9\r\n"),
            InfoDtmf::Digit('9')
        );
        assert_eq!(parse(Some("application/dtmf"), b"15"), InfoDtmf::Digit('D'));
    }

    #[test]
    fn other_bodies_and_bad_digits_get_their_own_status() {
        assert_eq!(parse(None, b""), InfoDtmf::Empty);
        assert_eq!(parse(RELAY, b"\r\n"), InfoDtmf::Empty);
        let video = b"<media_control></media_control>";
        assert_eq!(
            parse(Some("application/media_control+xml"), video),
            InfoDtmf::Unsupported
        );
        assert_eq!(parse(None, b"Signal=5"), InfoDtmf::Unsupported);
        for body in [
            &b"Signal=\r\n"[..],
            b"Signal=16",
            b"Signal=55",
            b"Signal=x",
            b"Duration=160",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(RELAY, body), InfoDtmf::Malformed, "{body:?}");
        }
        assert_eq!(
            [
                InfoDtmf::Digit('1'),
                InfoDtmf::Empty,
                InfoDtmf::Unsupported,
                InfoDtmf::Malformed
            ]
            .map(InfoDtmf::status),
            [200, 200, 415, 400]
        );
    }
}
