//! What an SDP may be at most, and [`SdpError`]: why one could not be
//! read or negotiated.

/// Largest SDP body we read; a trunk's audio offer is well under 2 KiB.
pub const MAX_SDP_BYTES: usize = 16 * 1024;

/// Most lines we read, blank ones included, so a body of tiny lines cannot
/// make us build thousands of media sections.
pub const MAX_SDP_LINES: usize = 512;

/// Why an SDP could not be read or negotiated.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SdpError {
    #[error("sdp body is empty")]
    Empty,
    #[error("body is not sdp: it does not start with v=0")]
    NotSdp,
    #[error("sdp body is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("sdp body has more than {max} lines")]
    TooManyLines { max: usize },
    #[error("sdp body is truncated")]
    Truncated,
    #[error("malformed sdp line {line}")]
    Malformed { line: usize },
    #[error("bad connection address on sdp line {line}")]
    BadAddress { line: usize },
    #[error("bad port on sdp line {line}")]
    BadPort { line: usize },
    #[error("bad payload type on sdp line {line}")]
    BadPayloadType { line: usize },
    #[error("sdp has no audio media section")]
    NoAudio,
    #[error("no connection address for the audio stream")]
    NoConnection,
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("the audio stream was rejected")]
    AudioRejected,
    #[error("unsupported or mismatched media profile")]
    UnsupportedProfile,
    #[error("srtp is required but no crypto attribute was given")]
    CryptoMissing,
    #[error("no supported crypto suite")]
    UnsupportedCryptoSuite,
    #[error("the peer requires srtp, which is not enabled")]
    SrtpNotEnabled,
    #[error("an answer arrived with no offer outstanding")]
    NoPendingOffer,
    #[error("an offer is already outstanding")]
    OfferPending,
    #[error("bad local media settings: {reason}")]
    BadLocalConfig { reason: &'static str },
}
