//! A node's trunk leg driven in-process: a [`TestNode`] (a `SipAgent` and a
//! `PortAllocator`) places calls with `TrunkLeg::start`, each with an
//! `RtpEndpoint` as its media ([`TestLeg`]), and the helpers here wait for
//! its [`LegEvent`]s and speak and listen on a call.
//!
//! Invariants: the agent listens on a free loopback UDP port and refuses
//! inbound calls; every call goes through route `r`, made of the trunks the
//! node was started with, in order; dropping the node stops its agent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use callgate::call::{LegEvent, LocalPorts, TrunkLeg};
use callgate::domain::{Codec, Disposition};
use callgate::media::endpoint::{MediaEvent, RtpEndpoint};
use callgate::media::ports::PortAllocator;
use callgate::sip::{
    AgentSettings, CallEnd, CallRequest, EndCause, RouteSettings, SipAgent, SipTransport,
    TrunkSettings,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::audio::{Similarity, similarity_ulaw, speech_ulaw};

/// The number every test call dials.
pub const CALLEE: &str = "+15550100";
/// Speech must come back at least this alike (see support::audio).
pub const SAME_SPEECH: f64 = 0.8;
/// The longest a test waits for the next event of a call.
pub const EVENT_WAIT: Duration = Duration::from_secs(20);

pub struct TestNode {
    pub agent: SipAgent,
    pub ports: Arc<PortAllocator>,
    cancel: CancellationToken,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.agent.shutdown();
        self.cancel.cancel();
    }
}

/// A UDP trunk at `addr` offering PCMU then PCMA, no credentials.
pub fn trunk(name: &str, addr: SocketAddr) -> TrunkSettings {
    TrunkSettings {
        name: name.into(),
        address: addr.to_string(),
        transport: SipTransport::Udp,
        outbound_proxy: None,
        from_user: "callgate".into(),
        from_domain: None,
        credentials: None,
        tls_ca_pem: None,
        tls_server_name: None,
        srtp: false,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        dtmf_payload_type: 101,
    }
}

impl TestNode {
    /// An agent on a free loopback port with `trunks` as route `r`, reading
    /// SIP from them alone, as a node does; `tweak` adjusts the settings
    /// before it starts.
    pub async fn start(trunks: Vec<TrunkSettings>, tweak: impl FnOnce(&mut AgentSettings)) -> Self {
        super::logs::init();
        let mut settings = AgentSettings::loopback("127.0.0.1:0".parse().unwrap(), "callgate-test");
        settings.accept_inbound = false;
        settings.routes = vec![RouteSettings {
            name: "r".into(),
            trunks: trunks.iter().map(|t| t.name.clone()).collect(),
        }];
        settings.trunks = trunks;
        settings.trusted_sources = Some(Vec::new());
        tweak(&mut settings);
        let cancel = CancellationToken::new();
        let (agent, _) = SipAgent::start(settings, cancel.clone())
            .await
            .expect("agent starts");
        // Below the ephemeral range, so peers' free ports never collide.
        let ports = Arc::new(PortAllocator::new(10000, 12999).unwrap());
        Self {
            agent,
            ports,
            cancel,
        }
    }

    /// A call to [`CALLEE`] on route `r`.
    pub fn call(&self) -> TestLeg {
        self.call_to(CALLEE)
    }

    /// A call to `callee` (the Request-URI's user part) on route `r`.
    pub fn call_to(&self, callee: &str) -> TestLeg {
        let loopback = "127.0.0.1".parse().unwrap();
        let endpoint = RtpEndpoint::bind(&self.ports, loopback).expect("media ports");
        let ports = LocalPorts {
            rtp: endpoint.local_rtp_addr().port(),
            rtcp: endpoint.local_rtcp_addr().port(),
        };
        let request = CallRequest {
            route: "r".into(),
            callee: callee.into(),
            talk_limit: None,
        };
        let leg = TrunkLeg::start(&self.agent, ports, loopback, request).expect("call placed");
        TestLeg { leg, endpoint }
    }

    /// Where the agent receives SIP over UDP.
    pub fn sip_udp_addr(&self) -> SocketAddr {
        *self
            .agent
            .local_addrs()
            .first()
            .expect("the agent listens on UDP")
    }
}

/// A trunk leg and the endpoint that carries its media, kept in step the
/// way a call keeps its media in step with its leg.
pub struct TestLeg {
    leg: TrunkLeg,
    endpoint: RtpEndpoint,
}

impl TestLeg {
    /// The leg's next event; the media descriptions it reports are applied
    /// to the endpoint on the way and not returned.
    pub async fn next_event(&mut self) -> Option<LegEvent> {
        loop {
            match self.leg.next_event().await? {
                LegEvent::Media(remote) => self
                    .endpoint
                    .set_remote(remote)
                    .expect("the leg hands over valid descriptions"),
                event => return Some(event),
            }
        }
    }

    pub fn hangup(&self) {
        self.leg.hangup();
    }

    pub fn endpoint(&self) -> &RtpEndpoint {
        &self.endpoint
    }

    /// Audio frames and DTMF digits from the trunk (once).
    pub fn take_media(&mut self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.endpoint.take_events()
    }
}

/// Events until `stop` matches one (returned last), or a test failure.
pub async fn events_until(leg: &mut TestLeg, stop: impl Fn(&LegEvent) -> bool) -> Vec<LegEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(EVENT_WAIT, leg.next_event())
            .await
            .unwrap_or_else(|_| panic!("no event in time; saw {seen:?}"))
            .unwrap_or_else(|| panic!("events ended; saw {seen:?}"));
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// Hangs up an answered call and checks that it ended answered, by us.
pub async fn hang_up_answered(leg: &mut TestLeg) {
    leg.hangup();
    let end = until_ended(leg).await;
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::Local)
    );
}

pub async fn until_ended(leg: &mut TestLeg) -> CallEnd {
    match events_until(leg, |e| matches!(e, LegEvent::Ended(_)))
        .await
        .pop()
    {
        Some(LegEvent::Ended(end)) => end,
        other => panic!("expected Ended, got {other:?}"),
    }
}

/// Events until the call ends, failing the test if it was ever answered;
/// returns how it ended and every event seen.
pub async fn until_ended_unanswered(leg: &mut TestLeg) -> (CallEnd, Vec<LegEvent>) {
    let events = events_until(leg, |e| matches!(e, LegEvent::Ended(_))).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, LegEvent::Answered { .. })),
        "the call was answered: {events:?}"
    );
    match events.last() {
        Some(LegEvent::Ended(end)) => (end.clone(), events),
        other => panic!("expected Ended, got {other:?}"),
    }
}

pub async fn until_answered(leg: &mut TestLeg) -> Vec<LegEvent> {
    let events = events_until(leg, |e| {
        matches!(e, LegEvent::Answered { .. } | LegEvent::Ended(_))
    })
    .await;
    assert!(
        matches!(events.last(), Some(LegEvent::Answered { .. })),
        "not answered: {events:?}"
    );
    events
}

/// Speak `speech` into the call in 20 ms frames and return what came back.
pub async fn talk(leg: &TestLeg, media: &mut mpsc::Receiver<MediaEvent>, speech: &[u8]) -> Vec<u8> {
    let mut heard = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut frames = speech.chunks(160);
    let mut tail = 50; // one more second to hear the echo of the last words
    while tail > 0 {
        tokio::select! {
            _ = ticker.tick() => match frames.next() {
                Some(frame) => leg.endpoint().send_audio(frame, 160).expect("send audio"),
                None => tail -= 1,
            },
            Some(MediaEvent::Frame(frame)) = media.recv() => heard.extend_from_slice(&frame.payload),
        }
    }
    heard
}

/// Speaks [`speech`] into an answered call and says how alike what came
/// back is (an echoing peer gives a score near 1).
pub async fn echo_likeness(leg: &TestLeg, media: &mut mpsc::Receiver<MediaEvent>) -> Similarity {
    let sent = speech();
    let heard = talk(leg, media, &sent).await;
    similarity_ulaw(&sent, &heard)
}

/// A node whose one trunk is at `addr`, and a call to [`CALLEE`] placed on
/// it, with its media receiver taken.
pub async fn node_and_call(addr: SocketAddr) -> (TestNode, TestLeg, mpsc::Receiver<MediaEvent>) {
    let node = TestNode::start(vec![trunk("sipp", addr)], |_| {}).await;
    let mut leg = node.call();
    let media = leg.take_media().expect("media receiver");
    (node, leg, media)
}

/// About three seconds of spoken English as 8 kHz µ-law.
pub fn speech() -> Vec<u8> {
    speech_ulaw("the quick brown fox jumps over the lazy dog")
}
