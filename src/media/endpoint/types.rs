//! What the endpoint and its owner exchange: the far end's negotiated
//! media ([`RemoteMedia`]), the endpoint's settings ([`EndpointConfig`]),
//! and what it reports ([`MediaEvent`], [`MediaFrame`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::media::MediaError;
use crate::media::dtmf::DtmfConfig;
use crate::media::rtcp::MIN_REPORT_INTERVAL;
use crate::media::srtp::SrtpKeyMaterial;

/// Largest audio payload we send: well inside a 1500-byte MTU with IP,
/// UDP, RTP and SRTP overhead.
pub const MAX_PAYLOAD: usize = 1200;

/// The negotiated parameters of the far end, from its SDP.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where the SDP says to send RTP (until symmetric RTP latches).
    pub rtp: SocketAddr,
    /// Where to send RTCP; `None` means rtcp-mux on the RTP address.
    pub rtcp: Option<SocketAddr>,
    pub audio_pt: u8,
    pub clock_rate: u32,
    /// telephone-event payload type, if negotiated.
    pub dtmf_pt: Option<u8>,
    /// (ours, theirs) SDES keys when the leg is RTP/SAVP.
    pub srtp: Option<(SrtpKeyMaterial, SrtpKeyMaterial)>,
    /// false on hold (we are `recvonly`/`inactive`).
    pub send: bool,
    /// false when the far end will not send (`sendonly`/`inactive` from us).
    pub recv: bool,
}

impl fmt::Debug for RemoteMedia {
    /// Addresses and keys are personal or secret: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteMedia")
            .field("rtcp_mux", &self.rtcp.is_none())
            .field("audio_pt", &self.audio_pt)
            .field("clock_rate", &self.clock_rate)
            .field("dtmf_pt", &self.dtmf_pt)
            .field("srtp", &self.srtp.is_some())
            .field("send", &self.send)
            .field("recv", &self.recv)
            .finish_non_exhaustive()
    }
}

impl RemoteMedia {
    /// Refuses payload types out of range and a zero clock rate.
    pub fn validate(&self) -> Result<(), MediaError> {
        for pt in std::iter::once(self.audio_pt).chain(self.dtmf_pt) {
            if pt > 127 {
                return Err(MediaError::PayloadTypeRange(pt));
            }
        }
        if self.clock_rate == 0 {
            return Err(MediaError::ClockRate);
        }
        Ok(())
    }
}

/// One received audio packet, header fields as the far end sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
    pub received_at: Instant,
}

/// What the endpoint hands its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Frame(MediaFrame),
    /// A DTMF digit (RFC 4733), once per event, from the telephone-event
    /// packet with RTP sequence number `sequence` that began it.
    Dtmf {
        digit: char,
        sequence: u16,
    },
    /// A later telephone-event packet of an event already delivered (an
    /// update, a repeated end): nothing new, but an owner that relays the
    /// stream accounts for its sequence number. The endpoint's own task
    /// does not pass these on.
    DtmfContinued {
        sequence: u16,
    },
}

/// Tunables of an endpoint; the defaults suit a G.711 trunk leg.
#[derive(Debug, Clone, Copy)]
pub struct EndpointConfig {
    /// Events buffered for the owner; 256 is about 5 s of 20 ms frames.
    pub events_capacity: usize,
    pub dtmf: DtmfConfig,
    /// RFC 3550 §6.2 minimum between reports (5 s); lower only in tests.
    pub rtcp_min_interval: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            events_capacity: 256,
            dtmf: DtmfConfig::default(),
            rtcp_min_interval: MIN_REPORT_INTERVAL,
        }
    }
}
