//! The small vocabulary shared by the parser, the writer and offer/answer:
//! directions (RFC 3264 §6.1) and the SDES `a=crypto` attribute (RFC 4568
//! §9.1). Codecs and telephone-event are the crate's ([`crate::domain`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT as KEY_BASE64;

/// Media direction of a stream, from the point of view of whoever wrote it
/// (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    #[must_use]
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    #[must_use]
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: their sendonly is our recvonly.
    #[must_use]
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both directions allow.
    #[must_use]
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name, as in `a=sendonly`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub(super) fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|dir| dir.as_str().eq_ignore_ascii_case(name))
    }
}

/// Encoding, clock rate and channels of an RFC 3551 static payload type.
pub(super) fn static_payload(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    let entry = match pt {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        _ => return None,
    };
    Some(entry)
}

/// SRTP crypto suites named in RFC 4568 §6.2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    /// Any other suite, kept by name so an answer can be matched against it.
    Other(String),
}

impl CryptoSuite {
    #[must_use]
    pub fn parse(name: &str) -> CryptoSuite {
        if name.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_80") {
            CryptoSuite::AesCm128HmacSha1_80
        } else if name.eq_ignore_ascii_case("AES_CM_128_HMAC_SHA1_32") {
            CryptoSuite::AesCm128HmacSha1_32
        } else {
            CryptoSuite::Other(name.to_owned())
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::Other(name) => name,
        }
    }

    /// Master key plus master salt length in bytes, for suites we know.
    #[must_use]
    pub fn key_salt_len(&self) -> Option<usize> {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 | CryptoSuite::AesCm128HmacSha1_32 => Some(30),
            CryptoSuite::Other(_) => None,
        }
    }
}

/// Master key identifier of an `inline:` key parameter (RFC 4568 §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    pub value: u64,
    /// Length of the MKI field in each SRTP packet, in bytes (1 to 128).
    pub length: u8,
}

/// One `a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:len]`
/// attribute (RFC 4568 §9.1). Only the first key parameter is kept: the relay
/// never uses more than one master key per direction.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    pub tag: u32,
    pub suite: CryptoSuite,
    /// Master key followed by master salt, base64-decoded.
    pub key_salt: Vec<u8>,
    /// Master key lifetime in packets.
    pub lifetime: Option<u64>,
    pub mki: Option<Mki>,
    /// Session parameters after the key (`KDR=`, `UNENCRYPTED_SRTP`, ...).
    pub session_params: Vec<String>,
}

impl fmt::Debug for CryptoAttribute {
    /// Never prints the key: Debug output ends up in logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoAttribute")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field(
                "key_salt",
                &format_args!("<{} bytes redacted>", self.key_salt.len()),
            )
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .field("session_params", &self.session_params)
            .finish()
    }
}

/// Longest MKI RFC 4568 §9.2 allows, in bytes.
const MAX_MKI_LEN: u8 = 128;

impl CryptoAttribute {
    /// Parses the value after `a=crypto:`; `None` when it does not follow the
    /// grammar, so the caller can skip the line like any unknown attribute.
    #[must_use]
    pub fn parse(value: &str) -> Option<CryptoAttribute> {
        let mut tokens = value.split_ascii_whitespace();
        let tag_text = tokens.next()?;
        if tag_text.len() > 9 {
            return None;
        }
        let tag = tag_text.parse().ok()?;
        let suite = CryptoSuite::parse(tokens.next()?);
        // Several key parameters are separated by ';'; only the first is used.
        let key_params = tokens.next()?.split(';').next()?;
        let inline = strip_prefix_ignore_case(key_params, "inline:")?;
        let mut parts = inline.split('|');
        let key_salt = KEY_BASE64.decode(parts.next()?).ok()?;
        let (lifetime, mki) = parse_lifetime_and_mki(parts)?;
        Some(CryptoAttribute {
            tag,
            suite,
            key_salt,
            lifetime,
            mki,
            session_params: tokens.map(str::to_owned).collect(),
        })
    }

    /// The attribute value, ready to follow `a=crypto:`.
    #[must_use]
    pub fn to_value(&self) -> String {
        let mut out = format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.as_str(),
            KEY_BASE64.encode(&self.key_salt)
        );
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                out.push_str(&format!("|2^{}", lifetime.trailing_zeros()));
            } else {
                out.push_str(&format!("|{lifetime}"));
            }
        }
        if let Some(mki) = self.mki {
            out.push_str(&format!("|{}:{}", mki.value, mki.length));
        }
        for param in &self.session_params {
            out.push(' ');
            out.push_str(param);
        }
        out
    }

    /// Whether the relay's SRTP layer can use this attribute as it stands: a
    /// known suite, a key of the right length, and nothing it does not
    /// implement (MKI in packets, session parameters such as unencrypted SRTP).
    #[must_use]
    pub fn is_usable(&self) -> bool {
        self.suite.key_salt_len() == Some(self.key_salt.len())
            && self.mki.is_none()
            && self.session_params.is_empty()
    }
}

fn parse_lifetime_and_mki<'a>(
    parts: impl Iterator<Item = &'a str>,
) -> Option<(Option<u64>, Option<Mki>)> {
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        // The MKI is the only part with a colon; the lifetime, when present,
        // comes first (RFC 4568 §9.2).
        if let Some((value, length)) = part.split_once(':') {
            if mki.is_some() {
                return None;
            }
            let length: u8 = length.parse().ok()?;
            if length == 0 || length > MAX_MKI_LEN {
                return None;
            }
            mki = Some(Mki {
                value: value.parse().ok()?,
                length,
            });
        } else if lifetime.is_none() && mki.is_none() {
            lifetime = Some(parse_lifetime(part)?);
        } else {
            return None;
        }
    }
    Some((lifetime, mki))
}

fn parse_lifetime(text: &str) -> Option<u64> {
    match text.strip_prefix("2^") {
        Some(exponent) => {
            let exponent: u32 = exponent.parse().ok()?;
            1u64.checked_shl(exponent)
        }
        None => text.parse().ok(),
    }
}

pub(super) fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn rfc4568_example_crypto_line_parses() {
        let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|2^20|1:4");
        let crypto = CryptoAttribute::parse(&value).expect("parses");
        assert_eq!(crypto.tag, 1);
        assert_eq!(crypto.suite, CryptoSuite::AesCm128HmacSha1_80);
        assert_eq!(crypto.key_salt.len(), 30);
        assert_eq!(crypto.lifetime, Some(1 << 20));
        assert_eq!(
            crypto.mki,
            Some(Mki {
                value: 1,
                length: 4
            })
        );
        assert!(
            !crypto.is_usable(),
            "mki is not implemented by the srtp layer"
        );
        assert_eq!(crypto.to_value(), value);
    }

    #[test]
    fn crypto_without_padding_lifetime_or_mki_round_trips() {
        let crypto = CryptoAttribute {
            tag: 7,
            suite: CryptoSuite::AesCm128HmacSha1_32,
            key_salt: (0u8..30).collect(),
            lifetime: None,
            mki: None,
            session_params: Vec::new(),
        };
        let parsed = CryptoAttribute::parse(&crypto.to_value()).expect("parses");
        assert_eq!(parsed, crypto);
        assert!(parsed.is_usable());
    }

    #[test]
    fn crypto_decimal_lifetime_and_mki_only() {
        let value = format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|1000");
        assert_eq!(
            CryptoAttribute::parse(&value).and_then(|c| c.lifetime),
            Some(1000)
        );
        let value = format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|1:1");
        let crypto = CryptoAttribute::parse(&value).expect("parses");
        assert_eq!(
            (crypto.lifetime, crypto.mki.map(|m| m.length)),
            (None, Some(1))
        );
    }

    #[test]
    fn crypto_session_params_make_it_unusable() {
        let value = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64} UNENCRYPTED_SRTP");
        let crypto = CryptoAttribute::parse(&value).expect("parses");
        assert_eq!(crypto.session_params, vec!["UNENCRYPTED_SRTP".to_owned()]);
        assert!(!crypto.is_usable());
    }

    #[test]
    fn unknown_suite_is_kept_by_name_and_unusable() {
        let value = format!("3 AEAD_AES_256_GCM inline:{KEY_B64}");
        let crypto = CryptoAttribute::parse(&value).expect("parses");
        assert_eq!(crypto.suite.as_str(), "AEAD_AES_256_GCM");
        assert!(!crypto.is_usable());
    }

    #[test]
    fn malformed_crypto_values_are_refused() {
        for value in [
            "",
            "1",
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 keyfile:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^64",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:129",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^20",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20|2^20",
        ] {
            assert_eq!(CryptoAttribute::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn crypto_debug_never_shows_the_key() {
        let crypto = CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}"))
            .expect("parses");
        let debug = format!("{crypto:?}");
        assert!(
            !debug.contains(KEY_B64) && !debug.contains("89, 83"),
            "{debug}"
        );
        assert!(debug.contains("30 bytes redacted"));
    }

    #[test]
    fn direction_algebra_matches_rfc3264_answers() {
        use Direction::*;
        assert_eq!(SendOnly.reversed(), RecvOnly);
        assert_eq!(RecvOnly.reversed(), SendOnly);
        assert_eq!(Inactive.reversed(), Inactive);
        assert_eq!(SendRecv.intersect(SendOnly.reversed()), RecvOnly);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
        assert_eq!(Direction::from_attribute("SENDONLY"), Some(SendOnly));
        assert_eq!(Direction::from_attribute("sendrecvx"), None);
    }

    #[test]
    fn static_payload_table_covers_the_common_trunk_codecs() {
        assert_eq!(static_payload(0), Some(("PCMU", 8000, None)));
        assert_eq!(static_payload(8), Some(("PCMA", 8000, None)));
        assert_eq!(static_payload(18), Some(("G729", 8000, None)));
        assert_eq!(static_payload(2), None, "unassigned since RFC 3551");
        assert_eq!(static_payload(101), None);
    }
}
