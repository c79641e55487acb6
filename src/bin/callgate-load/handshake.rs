//! [`Handshake`]: a call's browser side up to its SRTP keys, sans-IO: the
//! offer, then a nominating ICE check to the node's one candidate, then the
//! DTLS handshake as the client, the way a browser meets an ICE-lite node.
//!
//! Once the keys are out, the call's audio runs on the thin SRTP of
//! [`callgate::media::srtp`] in the [`crate::pump`], as the node's own
//! browser leg does after its handshake; nothing of the handshake stays.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use callgate::media::srtp::{SrtpReceiver, SrtpSender};
use callgate::webrtc::WebrtcError;
use callgate::webrtc::demux::{self, PacketClass};
use callgate::webrtc::dtls::{DtlsHandshake, DtlsProgress, fingerprint_of};
use callgate::webrtc::stun;
use rtc::dtls::crypto::Certificate;

use crate::flood;
use crate::pump::SrtpPair;

/// A browser paces its checks about this far apart (RFC 8445 §14.2, Ta).
const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks sent before the node is given up on (RFC 8445's Rc is 7; a
/// loaded node may answer late).
const MAX_CHECKS: u32 = 40;

/// An answer the load tool cannot call with.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(
        "the node answered without {rtpmap} (payload type {payload_type}); the load tool \
         needs the node's webrtc.browser_codec to be \"g711\""
    )]
    CodecMissing {
        rtpmap: &'static str,
        payload_type: u8,
    },
    #[error("the node's answer has no {0}")]
    Missing(&'static str),
}

/// The certificate every call of a run presents, with its fingerprint.
pub struct Identity {
    certificate: Certificate,
    fingerprint: String,
}

impl Identity {
    pub fn generate() -> Result<Arc<Self>, WebrtcError> {
        let certificate = callgate::webrtc::generate_certificate()?.dtls_certificate;
        let fingerprint = fingerprint_of(&certificate);
        Ok(Arc::new(Self {
            certificate,
            fingerprint,
        }))
    }
}

/// The node's side, from its answer.
struct NodeDescription {
    ufrag: String,
    password: String,
    fingerprint: Vec<u8>,
    candidate: SocketAddr,
}

enum Stage {
    /// The offer is out; no answer yet.
    Offered,
    /// Checking the node's candidate.
    Checking { sent: u32, next: Instant },
    /// Checked; DTLS under way.
    Dtls(Box<DtlsHandshake>),
}

/// What a datagram or a timeout did.
pub enum Progress {
    Pending,
    /// The handshake is done: SRTP for the call's audio.
    Keys(Box<SrtpPair>),
    Failed(String),
}

/// See the module documentation.
pub struct Handshake {
    identity: Arc<Identity>,
    local: SocketAddr,
    ufrag: String,
    codec: OfferedCodec,
    tie_breaker: u64,
    transaction: [u8; 12],
    node: Option<NodeDescription>,
    stage: Stage,
    /// Datagrams to send, to the node's candidate.
    outbox: VecDeque<Vec<u8>>,
}

impl Handshake {
    /// A call's browser side on the socket bound at `local`, and its offer
    /// of PCMU, or of Opus only when `opus` (so the node transcodes it).
    pub fn new(
        identity: Arc<Identity>,
        local: SocketAddr,
        ssrc: u32,
        opus: bool,
    ) -> (Self, String) {
        let ufrag = token(8);
        let password = token(24);
        let codec = match opus {
            true => OFFER_OPUS,
            false => OFFER_PCMU,
        };
        let offer = offer_sdp(local, &ufrag, &password, &identity.fingerprint, ssrc, codec);
        let handshake = Self {
            identity,
            local,
            ufrag,
            codec,
            tie_breaker: rand::random(),
            transaction: rand::random(),
            node: None,
            stage: Stage::Offered,
            outbox: VecDeque::new(),
        };
        (handshake, offer)
    }

    /// The node's answer: checks start at the next timeout.
    pub fn handle_answer(&mut self, now: Instant, answer: &str) -> Result<SocketAddr, AnswerError> {
        let node = parse_answer(answer, self.codec)?;
        let candidate = node.candidate;
        self.node = Some(node);
        self.stage = Stage::Checking { sent: 0, next: now };
        Ok(candidate)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Offered => None,
            Stage::Checking { next, .. } => Some(*next),
            Stage::Dtls(dtls) => dtls.poll_timeout(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Progress {
        match &mut self.stage {
            Stage::Offered => Progress::Pending,
            Stage::Checking { sent, next } => {
                if now < *next {
                    return Progress::Pending;
                }
                if *sent >= MAX_CHECKS {
                    return Progress::Failed("the node answered no ICE check".to_owned());
                }
                *sent += 1;
                *next = now + CHECK_INTERVAL;
                self.queue_check();
                Progress::Pending
            }
            Stage::Dtls(dtls) => match dtls.handle_timeout(now) {
                Ok(()) => {
                    self.drain_dtls();
                    Progress::Pending
                }
                Err(e) => Progress::Failed(e.to_string()),
            },
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Progress {
        match (&mut self.stage, demux::classify(datagram)) {
            (Stage::Checking { .. }, PacketClass::Stun) => {
                if !stun::is_success_for(datagram, &self.transaction) {
                    return Progress::Pending;
                }
                let Some(node) = &self.node else {
                    return Progress::Pending;
                };
                match DtlsHandshake::client(
                    now,
                    &self.identity.certificate,
                    node.fingerprint.clone(),
                    self.local,
                ) {
                    Ok(dtls) => {
                        self.stage = Stage::Dtls(Box::new(dtls));
                        self.drain_dtls();
                        Progress::Pending
                    }
                    Err(e) => Progress::Failed(e.to_string()),
                }
            }
            (Stage::Dtls(dtls), PacketClass::Dtls) => {
                let progress = dtls.handle_record(now, BytesMut::from(datagram));
                self.drain_dtls();
                match progress {
                    Ok(DtlsProgress::Keys(ours, theirs)) => Progress::Keys(Box::new(SrtpPair {
                        sender: SrtpSender::new(&ours),
                        receiver: SrtpReceiver::new(&theirs),
                    })),
                    Ok(DtlsProgress::Pending) => Progress::Pending,
                    Ok(DtlsProgress::Closed) => {
                        Progress::Failed("the node closed DTLS during the handshake".to_owned())
                    }
                    Err(e) => Progress::Failed(e.to_string()),
                }
            }
            _ => Progress::Pending,
        }
    }

    /// The next datagram for the node's candidate.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    fn queue_check(&mut self) {
        let Some(node) = &self.node else { return };
        let mut check = Vec::with_capacity(128);
        stun::write_check(
            &mut check,
            &self.transaction,
            &format!("{}:{}", node.ufrag, self.ufrag),
            &node.password,
            self.tie_breaker,
            true,
        );
        self.outbox.push_back(check);
    }

    fn drain_dtls(&mut self) {
        if let Stage::Dtls(dtls) = &mut self.stage {
            while let Some(record) = dtls.poll_transmit() {
                self.outbox.push_back(record.to_vec());
            }
        }
    }
}

/// `len` random characters of ICE's alphabet (RFC 8839 §5.4).
fn token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// The one codec an offer names: its payload type and rtpmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OfferedCodec {
    payload_type: u8,
    rtpmap: &'static str,
}

const OFFER_PCMU: OfferedCodec = OfferedCodec {
    payload_type: 0,
    rtpmap: "PCMU/8000",
};
const OFFER_OPUS: OfferedCodec = OfferedCodec {
    payload_type: 111,
    rtpmap: "opus/48000/2",
};

/// An offer as a browser makes one for a microphone: one bundled audio
/// section, one codec, rtcp-mux, one host candidate, DTLS role actpass.
fn offer_sdp(
    local: SocketAddr,
    ufrag: &str,
    password: &str,
    fingerprint: &str,
    ssrc: u32,
    codec: OfferedCodec,
) -> String {
    let pt = codec.payload_type;
    let (ip, port) = (local.ip(), local.port());
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let session: u64 = rand::random::<u64>() >> 1;
    [
        "v=0".to_owned(),
        format!("o=- {session} 2 {family} {ip}"),
        "s=-".to_owned(),
        "t=0 0".to_owned(),
        "a=group:BUNDLE 0".to_owned(),
        format!("m=audio {port} UDP/TLS/RTP/SAVPF {pt}"),
        format!("c={family} {ip}"),
        format!("a=candidate:1 1 udp 2130706431 {ip} {port} typ host"),
        "a=end-of-candidates".to_owned(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{password}"),
        format!("a=fingerprint:sha-256 {fingerprint}"),
        "a=setup:actpass".to_owned(),
        "a=mid:0".to_owned(),
        "a=sendrecv".to_owned(),
        "a=rtcp-mux".to_owned(),
        format!("a=rtpmap:{pt} {}", codec.rtpmap),
        format!("a=ssrc:{ssrc} cname:callgate-load"),
        String::new(),
    ]
    .join("\r\n")
}

/// The node's ICE credentials, fingerprint and candidate (the last two
/// as the flood reads them, [`flood::target_of`]).
fn parse_answer(answer: &str, codec: OfferedCodec) -> Result<NodeDescription, AnswerError> {
    let mut password = None;
    let mut fingerprint = None;
    let mut offered = false;
    let offered_pt = codec.payload_type.to_string();
    for line in answer.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("a=ice-pwd:") {
            password = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("a=fingerprint:sha-256 ") {
            fingerprint = value
                .split(':')
                .map(|byte| u8::from_str_radix(byte, 16).ok())
                .collect::<Option<Vec<u8>>>();
        } else if let Some(value) = line.strip_prefix("m=audio ") {
            offered = value.split_whitespace().nth(2) == Some(offered_pt.as_str());
        }
    }
    if !offered {
        return Err(AnswerError::CodecMissing {
            rtpmap: codec.rtpmap,
            payload_type: codec.payload_type,
        });
    }
    let missing = AnswerError::Missing;
    let target =
        flood::target_of(answer).ok_or_else(|| missing("candidate or ICE username fragment"))?;
    Ok(NodeDescription {
        ufrag: target.ufrag,
        password: password.ok_or_else(|| missing("ICE password"))?,
        fingerprint: fingerprint.ok_or_else(|| missing("sha-256 fingerprint"))?,
        candidate: target.port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n\
        a=ice-ufrag:node\r\na=ice-pwd:nodepassword\r\n\
        a=fingerprint:sha-256 AB:01:FF\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";

    #[test]
    fn the_answer_gives_the_node_credentials_and_candidate() {
        let node = parse_answer(ANSWER, OFFER_PCMU).unwrap();
        assert_eq!(
            (node.ufrag.as_str(), node.password.as_str()),
            ("node", "nodepassword")
        );
        assert_eq!(node.fingerprint, [0xab, 0x01, 0xff]);
        assert_eq!(node.candidate, SocketAddr::from(([127, 0, 0, 1], 40000)));
        let opus = ANSWER.replace("SAVPF 0 101", "SAVPF 111");
        let refused = |answer: &str, codec| parse_answer(answer, codec).err().unwrap().to_string();
        assert!(refused(&opus, OFFER_PCMU).contains("PCMU"));
        assert!(parse_answer(&opus, OFFER_OPUS).is_ok());
        assert!(refused(ANSWER, OFFER_OPUS).contains("opus"));
        let no_candidate = ANSWER.replace("a=candidate", "a=other");
        assert!(refused(&no_candidate, OFFER_PCMU).contains("candidate"));
    }

    #[test]
    fn checks_start_at_the_answer_and_give_up_after_their_count() {
        let identity = Identity::generate().unwrap();
        let local = "127.0.0.1:50000".parse().unwrap();
        let (mut handshake, offer) = Handshake::new(identity, local, 7, false);
        assert!(offer.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"));
        let now = Instant::now();
        assert_eq!(handshake.poll_timeout(), None);
        handshake.handle_answer(now, ANSWER).unwrap();
        let mut at = now;
        for _ in 0..MAX_CHECKS {
            assert!(matches!(handshake.handle_timeout(at), Progress::Pending));
            let check = handshake.poll_transmit().unwrap();
            assert_eq!(demux::classify(&check), PacketClass::Stun);
            at = handshake.poll_timeout().unwrap();
        }
        assert!(matches!(handshake.handle_timeout(at), Progress::Failed(_)));
    }
}
