//! [`MediaError`], the one error type of the media module.
//!
//! Variants are grouped by the part that raises them (RTP, RTCP, DTMF, SRTP,
//! ports, endpoint) so a caller can count drops by reason without matching
//! on message text. Messages never carry addresses, keys or digits.

use std::io;

use thiserror::Error;

/// Everything that can go wrong in the media module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("rtp packet too short: {len} bytes")]
    RtpTooShort { len: usize },
    #[error("unsupported rtp version {0}")]
    RtpVersion(u8),
    #[error("rtp csrc list runs past the packet")]
    RtpCsrcOverrun,
    #[error("rtp header extension runs past the packet")]
    RtpExtensionOverrun,
    #[error("rtp padding count {padding} invalid for {available} bytes after the header")]
    RtpPadding { padding: u8, available: usize },
    #[error("payload type {0} does not fit in 7 bits")]
    PayloadTypeRange(u8),

    #[error("rtcp packet too short: {len} bytes")]
    RtcpTooShort { len: usize },
    #[error("unsupported rtcp version {0}")]
    RtcpVersion(u8),
    #[error("rtcp length field runs past the datagram")]
    RtcpLengthOverrun,
    #[error("rtcp padding on a packet that is not last in its compound")]
    RtcpPadding,
    #[error("malformed rtcp {kind}")]
    RtcpMalformed { kind: &'static str },
    #[error("rtcp item longer than 255 bytes")]
    RtcpItemTooLong,

    #[error("telephone-event payload too short: {len} bytes")]
    DtmfTooShort { len: usize },
    #[error("{0:?} is not a dtmf digit")]
    DtmfDigit(char),
    #[error("telephone-event was not negotiated")]
    DtmfNotNegotiated,
    #[error("dtmf tone of {ms} ms does not fit the 16-bit duration field")]
    DtmfToneTooLong { ms: u128 },

    #[error("srtp authentication failed")]
    SrtpAuth,
    #[error("srtp packet replayed")]
    SrtpReplay,
    #[error("srtp packet too short")]
    SrtpTooShort,
    #[error("srtp: {0}")]
    Srtp(#[source] crate::media::srtp::SrtpError),

    #[error("port range {min}..={max} holds no even rtp port with rtcp above it")]
    PortRange { min: u16, max: u16 },
    #[error("no free rtp port pair in the range")]
    PortsExhausted,
    #[error("binding a media socket failed")]
    Bind(#[source] io::Error),

    #[error("rtp clock rate must be positive")]
    ClockRate,
    #[error("audio payload empty or larger than {max} bytes")]
    PayloadSize { max: usize },
    #[error("the endpoint must run inside a tokio runtime")]
    NoRuntime,
}

impl From<crate::media::srtp::SrtpError> for MediaError {
    fn from(error: crate::media::srtp::SrtpError) -> Self {
        use crate::media::srtp::SrtpError;
        match error {
            SrtpError::AuthenticationFailed => MediaError::SrtpAuth,
            SrtpError::ReplayedPacket => MediaError::SrtpReplay,
            SrtpError::PacketTooShort => MediaError::SrtpTooShort,
            other => MediaError::Srtp(other),
        }
    }
}
