//! [`SrtpError`]: why a packet or a key was refused.

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short")]
    PacketTooShort,
    #[error("not an rtp packet")]
    NotRtp,
    #[error("not an rtcp packet")]
    NotRtcp,
    #[error("authentication failed")]
    AuthenticationFailed,
    #[error("replayed packet")]
    ReplayedPacket,
    /// The sequence number maps to no valid 48-bit index (before the stream's first packet).
    #[error("packet index out of range")]
    IndexOutOfRange,
    #[error("srtcp index exhausted")]
    SrtcpIndexExhausted,
    #[error("bad key length")]
    BadKeyLength,
    #[error("too many streams")]
    TooManyStreams,
}
