//! The trunk leg against sipp as the trunk: answer and echo, busy, no
//! answer, digest challenges, remote BYE, re-INVITE hold/unhold, early
//! media, TCP, failover and trunk health. Other peers are in
//! `trunk_peers.rs`, hostile input in `trunk_bad_input.rs`.
//!
//! The node side is the library itself (a `SipAgent` and a `TrunkLeg`, see
//! `support::trunk`), so each test can speak and listen on the call like the
//! relay will.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use callgate::call::LegEvent;
use callgate::domain::Disposition;
use callgate::media::endpoint::MediaEvent;
use callgate::sip::{DigestCredentials, EndCause, SipTransport, TrunkReason};
use support::audio::similarity_ulaw;
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::trunk::{
    SAME_SPEECH, TestNode, events_until, speech, talk, trunk, until_answered, until_ended,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_answers_and_echoes_the_speech_we_send() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    let mut media = leg.take_media().unwrap();
    let events = until_answered(&mut leg).await;
    assert!(
        matches!(events.first(), Some(LegEvent::Trying { trunk }) if trunk == "sipp"),
        "{events:?}"
    );

    let sent = speech();
    let heard = talk(&leg, &mut media, &sent).await;
    let likeness = similarity_ulaw(&sent, &heard);
    assert!(
        likeness.score > SAME_SPEECH,
        "echo does not match the speech sent: {likeness:?}"
    );

    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code, end.ended_by),
        (Disposition::Answered, Some(200), EndCause::Local)
    );
    let stats = leg.endpoint().stats();
    assert!(stats.packets_received > 100, "{stats:?}");
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("BYE").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_trunk_gives_busy_with_486() {
    let mut sipp = Sipp::uas("uas_busy.xml").spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code),
        (Disposition::Busy, Some(486))
    );
    assert_eq!(
        end.reason,
        TrunkReason {
            phrase: Some("Subscriber [redacted] Busy".into()),
            q850_cause: Some(17),
        },
        "the trunk's words, without the callee's number"
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_timeout_cancels_and_ends_as_no_answer() {
    let mut sipp = Sipp::uas("uas_no_answer.xml").spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |s| {
        s.ring_timeout = Duration::from_secs(2);
    })
    .await;
    let mut leg = node.call();
    let events = events_until(&mut leg, |e| matches!(e, LegEvent::Ended(_))).await;
    assert!(events.contains(&LegEvent::Ringing), "{events:?}");
    let Some(LegEvent::Ended(end)) = events.last() else {
        unreachable!()
    };
    assert_eq!(
        (end.disposition, end.sip_code, end.ended_by),
        (Disposition::NoAnswer, Some(487), EndCause::RingTimeout)
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("CANCEL").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_auth_challenge_is_answered_and_the_call_connects() {
    let mut sipp = Sipp::uas("uas_auth_407.xml").rtp_echo().spawn();
    let mut t = trunk("sipp", sipp.sip_addr());
    t.credentials = Some(DigestCredentials {
        username: "alice".into(),
        password: "s3cret-pw".into(),
    });
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(end.disposition, Disposition::Answered);
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    verified_digest(&sipp, "Proxy-Authorization");
}

/// The credentials the INVITE carried in `header`, checked against the
/// trunk's password; fails the test if they are missing or wrong.
fn verified_digest(sipp: &Sipp, header: &str) -> support::digest::DigestCredentials {
    let invites = sipp.received_requests("INVITE");
    let value = invites
        .iter()
        .find_map(|m| m.header(header))
        .unwrap_or_else(|| panic!("no INVITE carried {header}"));
    let digest = support::digest::DigestCredentials::parse(value).expect("digest header parses");
    digest
        .verify("INVITE", "alice", "callgate.test", "s3cret-pw")
        .expect("digest response matches the password");
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_digest_challenge_is_answered() {
    let mut sipp = Sipp::uas("uas_auth_sha256.xml")
        .key("nonce", "c0ffee5eed")
        .rtp_echo()
        .spawn();
    let mut t = trunk("sipp", sipp.sip_addr());
    t.credentials = Some(DigestCredentials {
        username: "alice".into(),
        password: "s3cret-pw".into(),
    });
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    leg.hangup();
    until_ended(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    let digest = verified_digest(&sipp, "Authorization");
    assert_eq!(digest.get("algorithm"), Some("SHA-256"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_with_the_trunks_cause() {
    let mut sipp = Sipp::uas("uas_auth_wrong_password.xml")
        .key("auth_user", "alice")
        .key("auth_password", "the-right-one")
        .spawn();
    let mut t = trunk("sipp", sipp.sip_addr());
    t.credentials = Some(DigestCredentials {
        username: "alice".into(),
        password: "a-wrong-one".into(),
    });
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call();
    let end = until_ended(&mut leg).await;
    assert_eq!(end.disposition, Disposition::Failed, "{end:?}");
    assert!(matches!(end.sip_code, Some(401 | 403 | 407)), "{end:?}");
    sipp.wait_exit(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_bye_ends_an_answered_call() {
    let mut sipp = Sipp::uas("uas_remote_bye.xml").rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::Remote)
    );
    assert_eq!(
        end.reason,
        TrunkReason {
            phrase: Some("Normal call clearing by [redacted]".into()),
            q850_cause: Some(16),
        },
        "the BYE's Reason, without the number in its text"
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_hold_and_unhold_are_answered_and_followed() {
    let mut sipp = Sipp::uas("uas_reinvite_hold.xml").rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    events_until(&mut leg, |e| *e == LegEvent::Hold(true)).await;
    events_until(&mut leg, |e| *e == LegEvent::Hold(false)).await;
    // After unhold the trunk's media moved: the echo must still come back.
    let mut media = leg.take_media().unwrap();
    let sent = speech();
    let heard = talk(&leg, &mut media, &sent).await;
    assert!(
        similarity_ulaw(&sent, &heard).score > SAME_SPEECH,
        "no echo from the new media address"
    );
    leg.hangup();
    until_ended(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_from_183_arrives_before_the_answer() {
    let announcement = speech();
    let mut sipp = Sipp::uas("uas_early_media.xml")
        .file("early_media.ulaw", &announcement)
        .spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    let mut media = leg.take_media().unwrap();
    events_until(&mut leg, |e| *e == LegEvent::EarlyMedia).await;
    let mut early = Vec::new();
    let answered = loop {
        tokio::select! {
            Some(MediaEvent::Frame(f)) = media.recv() => early.extend_from_slice(&f.payload),
            event = leg.next_event() => break event,
        }
    };
    assert!(
        matches!(answered, Some(LegEvent::Answered { .. })),
        "{answered:?}"
    );
    assert!(
        early.len() >= 8000,
        "expected over a second of early audio, got {} bytes",
        early.len()
    );
    leg.hangup();
    until_ended(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(15), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_transport_carries_the_call() {
    let mut sipp = Sipp::builtin_uas().rtp_echo().arg("-t").arg("t1").spawn();
    let mut t = trunk("sipp", sipp.sip_addr());
    t.transport = SipTransport::Tcp;
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(end.disposition, Disposition::Answered);
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_next_trunk_when_the_first_is_unreachable() {
    let dead: SocketAddr = format!("127.0.0.1:{}", support::ports::free_udp_port())
        .parse()
        .unwrap();
    let mut sipp = Sipp::builtin_uas().rtp_echo().calls(2).spawn();
    let node = TestNode::start(
        vec![trunk("dead", dead), trunk("live", sipp.sip_addr())],
        |s| {
            s.invite_timeout = Duration::from_secs(2);
            s.trunk_down_after_failures = 1;
        },
    )
    .await;
    let tried = |events: &[LegEvent]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                LegEvent::Trying { trunk } => Some(trunk.clone()),
                _ => None,
            })
            .collect()
    };
    let mut leg = node.call();
    assert_eq!(tried(&until_answered(&mut leg).await), ["dead", "live"]);
    assert_eq!(node.agent.trunk_is_up("dead"), Some(false));
    leg.hangup();
    until_ended(&mut leg).await;

    // The next call skips the trunk that is down and goes straight through.
    let mut next = node.call();
    assert_eq!(tried(&until_answered(&mut next).await), ["live"]);
    next.hangup();
    until_ended(&mut next).await;
    sipp.expect_exit(Duration::from_secs(15), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_never_answers_ends_unreachable() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let node = TestNode::start(vec![trunk("silent", silent.local_addr().unwrap())], |s| {
        s.invite_timeout = Duration::from_secs(2);
    })
    .await;
    let mut leg = node.call();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code),
        (Disposition::Unreachable, Some(408))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_probes_mark_a_dead_trunk_down() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let node = TestNode::start(vec![trunk("silent", silent.local_addr().unwrap())], |s| {
        s.options_interval = Some(Duration::from_millis(300));
        s.invite_timeout = Duration::from_secs(1);
        s.trunk_down_after_failures = 2;
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while node.agent.trunk_is_up("silent") == Some(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trunk never marked down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        node.agent
            .counters()
            .options_probe_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}
