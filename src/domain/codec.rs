//! [`Codec`]: the audio the relay carries, on either leg, and
//! [`TelephoneEvent`], the RFC 4733 keypad events beside it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::unknown_name::UnknownName;

/// An audio codec. G.711 travels on both legs; Opus only on the browser
/// leg, where the node converts it to and from the trunk's G.711.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    #[serde(rename = "PCMU")]
    Pcmu,
    /// G.711 A-law, static payload type 8.
    #[serde(rename = "PCMA")]
    Pcma,
    /// Opus (RFC 7587), a dynamic payload type.
    #[serde(rename = "opus")]
    Opus,
}

impl Codec {
    /// The name in CDRs, metrics and config: `PCMU`, `PCMA`, `opus`.
    pub fn name(self) -> &'static str {
        self.encoding_name()
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
        }
    }

    /// RTP clock ticks per second.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8_000,
            Self::Opus => 48_000,
        }
    }

    /// The payload type RFC 3551 assigns; Opus has none.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::Opus => None,
        }
    }

    /// PCMU or PCMA: what a SIP trunk carries.
    pub fn is_g711(self) -> bool {
        matches!(self, Self::Pcmu | Self::Pcma)
    }

    /// The codec an encoding name and clock rate denote; names compare
    /// without case because carriers write `pcmu` as often as `PCMU`.
    pub fn from_encoding(name: &str, clock_rate: u32) -> Option<Self> {
        [Self::Pcmu, Self::Pcma, Self::Opus]
            .into_iter()
            .find(|codec| {
                codec.encoding_name().eq_ignore_ascii_case(name) && codec.clock_rate() == clock_rate
            })
    }
}

impl FromStr for Codec {
    type Err = UnknownName;

    /// Reads a codec's name such as `"PCMU"`, `"pcma"` or `"opus"`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Pcmu, Self::Pcma, Self::Opus]
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownName::new("codec", name))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RFC 4733 `telephone-event` as negotiated: its payload type and clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    pub payload_type: u8,
    pub clock_rate: u32,
}

impl TelephoneEvent {
    pub const ENCODING_NAME: &'static str = "telephone-event";
}

impl Default for TelephoneEvent {
    /// PT 101 at 8 kHz: the number nearly every SIP device uses.
    fn default() -> Self {
        TelephoneEvent {
            payload_type: 101,
            clock_rate: 8000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_encodings_read_back() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::Opus] {
            assert_eq!(codec.name().parse::<Codec>(), Ok(codec));
            let found =
                Codec::from_encoding(&codec.encoding_name().to_lowercase(), codec.clock_rate());
            assert_eq!(found, Some(codec));
        }
        assert_eq!(Codec::from_encoding("PcMa", 8_000), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding("PCMU", 16_000), None);
        assert!("G729".parse::<Codec>().is_err());
        assert_eq!(Codec::Opus.static_payload_type(), None);
        assert!(!Codec::Opus.is_g711());
    }
}
