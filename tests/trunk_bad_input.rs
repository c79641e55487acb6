//! Hostile and broken input at the trunk leg, each test with sipp as the
//! trunk: malformed SIP at the node's port beside a running call, answers
//! the node cannot use (a truncated SDP, no common codec, no SDP at all),
//! garbage and a hijack attempt on a call's RTP port, strangers and other
//! trunks speaking for a call, and a trunk past its connection cap or its
//! request budget.
//!
//! What a user would check: every call ends with a clean disposition (never
//! a hang or a panic), or the bad input is dropped and counted, and the
//! call running beside it carries on (its echo still comes back).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use callgate::domain::Disposition;
use callgate::media::endpoint::{DropCounts, MediaEvent};
use callgate::sip::{EndCause, SourceLimits};
use support::audio::similarity_ulaw;
use support::ports::free_tcp_port;
use support::rtp::RtpPacket;
use support::sip_raw::{self, Malformed};
use support::sip_trace::{Direction, SipMessage, sdp_audio_addr};
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::trunk::{
    SAME_SPEECH, TestLeg, TestNode, echo_likeness, node_and_call, speech, talk, trunk,
    until_answered, until_ended, until_ended_unanswered,
};
use tokio::sync::mpsc;

const SIPP_EXIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sip_beside_a_call_is_refused_and_the_call_carries_on() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let (node, mut leg, mut media) = node_and_call(sipp.sip_addr()).await;
    until_answered(&mut leg).await;

    let target = node.sip_udp_addr();
    let attack = tokio::task::spawn_blocking(move || {
        sip_raw::send_all_malformed(target, Duration::from_millis(300))
    });
    let likeness = echo_likeness(&leg, &mut media).await;
    let replies = attack.await.expect("malformed sender");

    assert!(
        likeness.score > SAME_SPEECH,
        "echo lost beside malformed SIP: {likeness:?}"
    );
    // The INVITEs whose SIP parses (a cut SDP, a Content-Length past the
    // datagram, clamped) are refused, since the node takes no inbound calls,
    // and counted. What cannot be parsed as SIP gets no answer at all: the
    // SIP stack drops it before any request exists.
    for (kind, reply) in &replies {
        let status = reply.as_deref().and_then(|r| r.get(8..11));
        let expected = match kind {
            Malformed::TruncatedSdp | Malformed::HugeContentLength => Some("403"),
            Malformed::Garbage | Malformed::MissingCallId | Malformed::OverlongHeaderLine => None,
        };
        assert_eq!(status, expected, "{kind:?}: {reply:?}");
    }
    assert_eq!(
        node.agent
            .counters()
            .inbound_refused
            .load(Ordering::Relaxed),
        2
    );
    let ping =
        tokio::task::spawn_blocking(move || sip_raw::options_ping(target, Duration::from_secs(2)))
            .await
            .expect("OPTIONS ping");
    assert_eq!(ping, Some(200), "the node's SIP port stopped answering");

    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::Local)
    );
    sipp.expect_exit(SIPP_EXIT, EXIT_ALL_CALLS_OK);
}

/// A trunk whose 200 OK carries no usable answer: the call must end
/// `failed` with 488 (RFC 3264 gives no way to refuse an answer but BYE),
/// never reach `Answered`, and the trunk must get that BYE.
async fn unusable_answer_fails_with_488_and_a_bye(scenario: &str) {
    let mut sipp = Sipp::uas(scenario).spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    let (end, events) = until_ended_unanswered(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code, end.ended_by),
        (Disposition::Failed, Some(488), EndCause::Local),
        "{events:?}"
    );
    sipp.expect_exit(SIPP_EXIT, EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("BYE").len(), 1, "{}", sipp.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_sdp_answer_fails_with_488_and_a_bye() {
    unusable_answer_fails_with_488_and_a_bye("uas_truncated_sdp.xml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_no_common_codec_fails_with_488_and_a_bye() {
    unusable_answer_fails_with_488_and_a_bye("uas_no_common_codec.xml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_without_sdp_fails_and_does_not_hang() {
    unusable_answer_fails_with_488_and_a_bye("uas_no_sdp_answer.xml").await;
}

/// A small deterministic generator: the same bytes on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// What the attacker sprayed at one RTP port.
#[derive(Debug, Default)]
struct Spray {
    garbage: u64,
    short: u64,
    hijack: u64,
}

impl Spray {
    fn total(&self) -> u64 {
        self.garbage + self.short + self.hijack
    }
}

/// The payload of every hijack packet: a byte the echo of speech never
/// repeats 160 times.
const HIJACK_BYTE: u8 = 0x55;

/// Rounds (garbage, short, hijack) a spray sends at least, however slowly
/// a loaded machine runs the attacker's thread: the tests count on more
/// than 100 hijack packets.
const MIN_SPRAY_ROUNDS: u64 = 120;

/// For `length` (and at least [`MIN_SPRAY_ROUNDS`] rounds), from a socket
/// of its own on `from_host`, one datagram every 2 ms in turn: random
/// bytes, a datagram shorter than an RTP header, and a well-formed PCMU
/// packet with another SSRC (what a hijacker sends to be latched).
fn spray_rtp_port(from_host: &str, target: SocketAddr, length: Duration) -> Spray {
    let socket = UdpSocket::bind((from_host, 0)).expect("bind attacker socket");
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut spray = Spray::default();
    let end = Instant::now() + length;
    let mut seq: u16 = 0;
    let mut rounds = 0_u64;
    while Instant::now() < end || rounds < MIN_SPRAY_ROUNDS {
        rounds += 1;
        let len = 13 + usize::try_from(random.next() % 300).unwrap_or(0);
        let garbage = random.bytes(len);
        let short_len = usize::try_from(random.next() % 12).unwrap_or(0);
        let short = random.bytes(short_len);
        seq = seq.wrapping_add(1);
        let hijack = RtpPacket {
            payload_type: 0,
            marker: seq == 1,
            sequence: seq,
            timestamp: u32::from(seq).wrapping_mul(160),
            ssrc: 0xbad0_5eed,
            payload: vec![HIJACK_BYTE; 160],
        }
        .to_bytes();
        for (datagram, count) in [
            (garbage, &mut spray.garbage),
            (short, &mut spray.short),
            (hijack, &mut spray.hijack),
        ] {
            if socket.send_to(&datagram, target).is_ok() {
                *count += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    spray
}

fn drops_since(before: &DropCounts, after: &DropCounts) -> u64 {
    after.total() - before.total()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_hijack_on_the_rtp_port_are_dropped_and_counted() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let (_node, mut leg, mut media) = node_and_call(sipp.sip_addr()).await;
    until_answered(&mut leg).await;
    // Our RTP port as anyone on the signalling path sees it: our offer.
    let invite = sipp.received_requests("INVITE");
    let our_rtp = invite
        .first()
        .and_then(|m| sdp_audio_addr(&m.body))
        .expect("the INVITE carries our SDP offer");

    let sent = speech();
    let before = leg.endpoint().stats().dropped;
    let attacker = std::thread::spawn(move || {
        // Let the echo latch first: this is an attack on a call in progress.
        std::thread::sleep(Duration::from_millis(300));
        spray_rtp_port("127.0.0.1", our_rtp, Duration::from_secs(2))
    });
    let heard = talk(&leg, &mut media, &sent).await;
    let spray = attacker.join().expect("attacker thread");
    // Datagrams still in our socket's buffer are counted within moments.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = leg.endpoint().stats();

    let likeness = similarity_ulaw(&sent, &heard);
    assert!(
        likeness.score > SAME_SPEECH,
        "the echo did not survive the spray: {likeness:?}"
    );
    assert!(
        !heard
            .chunks(160)
            .any(|frame| frame.iter().all(|&b| b == HIJACK_BYTE)),
        "the hijacker's audio reached the call"
    );
    assert!(spray.hijack > 100, "{spray:?}");
    assert_eq!(
        drops_since(&before, &stats.dropped),
        spray.total(),
        "every sprayed datagram is dropped and counted: {spray:?} {:?}",
        stats.dropped
    );
    // The source is checked first, so everything from the attacker's
    // address is `unexpected_source`, except random bytes that look like
    // RTCP, which the RTP port refuses before that (no rtcp-mux here).
    let by_source = stats.dropped.unexpected_source - before.unexpected_source;
    let as_rtcp = stats.dropped.rtcp_on_rtp_port - before.rtcp_on_rtp_port;
    assert_eq!(by_source + as_rtcp, spray.total(), "{:?}", stats.dropped);
    assert!(
        by_source >= spray.hijack + spray.short,
        "{:?}",
        stats.dropped
    );
    assert!(stats.latched, "{stats:?}");

    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(end.disposition, Disposition::Answered);
    sipp.expect_exit(SIPP_EXIT, EXIT_ALL_CALLS_OK);
}

/// A host other than the trunk's: all of 127.0.0.0/8 is loopback on Linux.
const STRANGER_HOST: &str = "127.0.0.2";

/// RTP bleed: a stranger sprays our RTP port from the moment the call is
/// placed, and the trunk stays silent for a while after its answer. The
/// stranger must not latch: it would receive the caller's audio and speak
/// into the call. Only after the trunk speaks does the echo flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_bleed_a_stranger_spraying_before_the_trunk_speaks_gets_nothing() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let (_node, mut leg, mut media) = node_and_call(sipp.sip_addr()).await;
    // Our RTP ports come from a small known range: a stranger can find them.
    let our_rtp = leg.endpoint().local_rtp_addr();
    let attacker = std::thread::spawn(move || {
        spray_rtp_port(STRANGER_HOST, our_rtp, Duration::from_millis(4500))
    });
    until_answered(&mut leg).await;
    // sipp echoes only what it hears: it is silent until we speak.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = speech();
    let heard = talk(&leg, &mut media, &sent).await;
    let spray = attacker.join().expect("attacker thread");
    let stats = leg.endpoint().stats();

    assert!(
        !heard
            .chunks(160)
            .any(|frame| frame.iter().all(|&b| b == HIJACK_BYTE)),
        "the stranger's audio reached the call"
    );
    let likeness = similarity_ulaw(&sent, &heard);
    assert!(
        likeness.score > SAME_SPEECH,
        "our speech went to the stranger, not the trunk: {likeness:?} {stats:?}"
    );
    assert!(spray.hijack > 100, "{spray:?}");
    assert!(
        stats.dropped.unexpected_source >= spray.hijack,
        "{spray:?} {:?}",
        stats.dropped
    );
    leg.hangup();
    until_ended(&mut leg).await;
    sipp.expect_exit(SIPP_EXIT, EXIT_ALL_CALLS_OK);
}

/// A BYE for the call `invite` and `ok` set up, as the trunk would send it,
/// from `from`: the Call-ID and both tags of the live dialog.
fn bye_for(invite: &SipMessage, ok: &SipMessage, from: SocketAddr) -> Vec<u8> {
    let header = |message: &SipMessage, name: &str| {
        let value = message.header(name).map(str::to_owned);
        value.unwrap_or_else(|| panic!("no {name} in {message}"))
    };
    let contact = header(invite, "Contact");
    let target = contact.trim_matches(['<', '>']);
    format!(
        "BYE {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-stranger-{port}\r\n\
         Max-Forwards: 70\r\n\
         From: {callee}\r\n\
         To: {caller}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 7 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        port = from.port(),
        callee = header(ok, "To"),
        caller = header(invite, "From"),
        call_id = header(invite, "Call-ID"),
    )
    .into_bytes()
}

/// The BYE naming the call, sent from the trunk's own address (loopback),
/// gets 200 and ends the call as hung up by the trunk.
async fn the_trunks_own_bye_ends(
    leg: &mut TestLeg,
    target: SocketAddr,
    invite: SipMessage,
    ok: SipMessage,
) {
    let bye = tokio::task::spawn_blocking(move || {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let wait = Duration::from_millis(500);
        sip_raw::send_from(loopback, target, |from| bye_for(&invite, &ok, from), wait)
    });
    let reply = bye.await.expect("trunk's BYE");
    assert!(reply.is_some_and(|r| r.starts_with("SIP/2.0 200")));
    let end = until_ended(leg).await;
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::Remote)
    );
}

/// A call through `node` that `sipp` answered: its leg, the trunk's audio,
/// and the INVITE and 200 that set it up (to forge requests naming it).
async fn answered_call(
    node: &TestNode,
    sipp: &Sipp,
) -> (TestLeg, mpsc::Receiver<MediaEvent>, SipMessage, SipMessage) {
    let mut leg = node.call();
    let media = leg.take_media().expect("media receiver");
    until_answered(&mut leg).await;
    let ok = sent_ok(sipp);
    let invite = sipp.received_requests("INVITE").pop().expect("the INVITE");
    (leg, media, invite, ok)
}

/// The 200 sipp answered the INVITE with, once its trace holds it (the
/// call may be up a moment before sipp has written what it sent).
fn sent_ok(sipp: &Sipp) -> SipMessage {
    let sent_ok = |m: &SipMessage| m.direction == Direction::Sent && m.is_response(200, "INVITE");
    sipp.wait_for_message(Duration::from_secs(5), sent_ok)
        .expect("the 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_no_answer_even_naming_the_call_and_the_call_carries_on() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |settings| {
        settings.trusted_sources = Some(Vec::new());
    })
    .await;
    let (mut leg, mut media, invite, ok) = answered_call(&node, &sipp).await;

    // 127.0.0.2 is on loopback like the trunk, but it is not the trunk.
    let stranger = IpAddr::from([127, 0, 0, 2]);
    let target = node.sip_udp_addr();
    let wait = Duration::from_millis(500);
    let (ping, inbound, bye) = {
        let (invite, ok) = (invite.clone(), ok.clone());
        tokio::task::spawn_blocking(move || {
            let ping = sip_raw::options_ping_from(stranger, target, wait);
            let inbound = sip_raw::send_from(
                stranger,
                target,
                |from| Malformed::TruncatedSdp.datagram(from, target),
                wait,
            );
            let bye =
                sip_raw::send_from(stranger, target, |from| bye_for(&invite, &ok, from), wait);
            (ping, inbound, bye)
        })
        .await
        .expect("stranger")
    };
    assert_eq!((ping, &inbound, &bye), (None, &None, &None));
    let counters = node.agent.counters();
    assert_eq!(counters.unknown_sources.load(Ordering::Relaxed), 3);
    assert_eq!(counters.inbound_refused.load(Ordering::Relaxed), 0);
    let likeness = echo_likeness(&leg, &mut media).await;
    assert!(
        likeness.score > SAME_SPEECH,
        "echo lost after a stranger's BYE: {likeness:?}"
    );
    let from_trunk =
        tokio::task::spawn_blocking(move || sip_raw::options_ping(target, Duration::from_secs(2)));
    assert_eq!(from_trunk.await.expect("ping"), Some(200));

    // The same BYE from the trunk's own address ends the call: the address
    // was refused, not the request.
    the_trunks_own_bye_ends(&mut leg, target, invite, ok).await;
    sipp.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_trunk_cannot_end_a_call_it_does_not_carry() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    // Both trunks may speak to the port; the call goes out on the first.
    let other: SocketAddr = "127.0.0.3:5060".parse().expect("an address");
    let trunks = vec![trunk("sipp", sipp.sip_addr()), trunk("other", other)];
    let node = TestNode::start(trunks, |_| {}).await;
    let (mut leg, mut media, invite, ok) = answered_call(&node, &sipp).await;

    let target = node.sip_udp_addr();
    let wait = Duration::from_millis(500);
    let foreign_bye = {
        let (invite, ok) = (invite.clone(), ok.clone());
        tokio::task::spawn_blocking(move || {
            sip_raw::send_from(other.ip(), target, |from| bye_for(&invite, &ok, from), wait)
        })
    };
    let reply = foreign_bye.await.expect("the other trunk's BYE");
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("SIP/2.0 481")),
        "the other trunk is told the call does not exist: {reply:?}"
    );
    let counters = node.agent.counters();
    assert_eq!(counters.foreign_dialog_requests.load(Ordering::Relaxed), 1);
    assert_eq!(counters.unknown_sources.load(Ordering::Relaxed), 0);
    let likeness = echo_likeness(&leg, &mut media).await;
    assert!(
        likeness.score > SAME_SPEECH,
        "echo lost after another trunk's BYE: {likeness:?}"
    );

    // The same BYE from the call's own trunk ends it.
    the_trunks_own_bye_ends(&mut leg, target, invite, ok).await;
    assert_eq!(counters.foreign_dialog_requests.load(Ordering::Relaxed), 1);
    sipp.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_past_its_connection_cap_or_request_budget_is_shed_and_the_call_carries_on() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |settings| {
        settings.listen_tcp = Some(tcp);
        settings.source_limits = SourceLimits {
            max_connections: 3,
            requests_per_second: 20,
        };
    })
    .await;
    let (mut leg, mut media, invite, ok) = answered_call(&node, &sipp).await;
    let counters = node.agent.counters();
    let wait = Duration::from_secs(1);

    // The trunk's address holds three connections, each answered; a fourth
    // is closed unread.
    let (held, fourth_answered, fourth_closed) = tokio::task::spawn_blocking(move || {
        let connect = || TcpStream::connect(tcp).expect("connect to the SIP port");
        let held: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut stream = connect();
                assert_eq!(sip_raw::options_over_tcp(&mut stream, wait), Some(200));
                stream
            })
            .collect();
        let mut fourth = connect();
        let answered = sip_raw::options_over_tcp(&mut fourth, wait);
        (held, answered, sip_raw::closed_by_node(&mut fourth, wait))
    })
    .await
    .expect("connections");
    assert_eq!(fourth_answered, None, "past the cap nothing is answered");
    assert!(fourth_closed, "the node closes the connection past the cap");
    assert_eq!(counters.connections_refused.load(Ordering::Relaxed), 1);

    // One closed frees its place for the next.
    drop(held.into_iter().next());
    let replaced = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut stream = TcpStream::connect(tcp).expect("connect to the SIP port");
            let answer = sip_raw::options_over_tcp(&mut stream, Duration::from_millis(300));
            if answer.is_some() || Instant::now() > deadline {
                return answer;
            }
        }
    });
    assert_eq!(replaced.await.expect("replacement"), Some(200));

    // A burst of 100 requests from the trunk's address: two seconds' worth
    // (40, less the few just used) is answered, the rest dropped unread.
    let target = node.sip_udp_addr();
    let shed_before = counters.requests_shed.load(Ordering::Relaxed);
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let answered = tokio::task::spawn_blocking(move || {
        sip_raw::options_burst_from(loopback, target, 100, wait)
    })
    .await
    .expect("burst");
    let shed = counters.requests_shed.load(Ordering::Relaxed) - shed_before;
    assert!((30..=50).contains(&answered), "answered {answered} of 100");
    assert_eq!(
        shed,
        100 - answered as u64,
        "every unanswered request was shed"
    );

    let likeness = echo_likeness(&leg, &mut media).await;
    assert!(
        likeness.score > SAME_SPEECH,
        "echo lost beside the shedding: {likeness:?}"
    );
    // Once its budget has refilled, the trunk's BYE is heard and ends the
    // call.
    tokio::time::sleep(Duration::from_secs(1)).await;
    the_trunks_own_bye_ends(&mut leg, target, invite, ok).await;
    sipp.stop();
}
