//! More of the trunk leg against real peers: SDES-SRTP with baresip, the
//! trunk's in-dialog OPTIONS, and the maximum call duration.

mod support;

use std::time::{Duration, Instant};

use callgate::domain::Disposition;
use callgate::media::endpoint::DropReason;
use callgate::sip::EndCause;
use support::audio::{SPEECH_TURNS, similarity_ulaw};
use support::baresip::{Baresip, BaresipMode};
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::trunk::{
    SAME_SPEECH, TestLeg, TestNode, hang_up_answered, speech, talk, trunk, until_answered,
    until_ended,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdes_srtp_call_with_baresip_echoes_the_speech() {
    // The real-time echo check is starved by calls beside it on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let baresip = Baresip::start(BaresipMode::EchoSrtp);
    let mut t = trunk("baresip", baresip.addr());
    t.srtp = true;
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call_to(baresip.user());
    let mut media = leg.take_media().unwrap();
    until_answered(&mut leg).await;
    // baresip refuses plain RTP here (mediaenc=srtp-mand), so speech coming
    // back proves SRTP was negotiated and works both ways.
    let sent = speech();
    let heard = talk(&leg, &mut media, &sent).await;
    let likeness = similarity_ulaw(&sent, &heard);
    assert!(
        likeness.score > SAME_SPEECH,
        "no SRTP echo: {likeness:?}\n{}",
        baresip.log()
    );
    let stats = leg.endpoint().stats();
    assert_eq!(
        stats.dropped.get(DropReason::SrtpAuth),
        0,
        "SRTP packets failed authentication: {stats:?}"
    );
    leg.hangup();
    assert_eq!(
        until_ended(&mut leg).await.disposition,
        Disposition::Answered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trunks_in_dialog_options_is_answered() {
    // The real-time echo check is starved by calls beside it on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let mut sipp = Sipp::uas("uas_options.xml").rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    let answered = sipp.wait_for_message(Duration::from_secs(5), |m| m.is_response(200, "OPTIONS"));
    assert!(
        answered.is_some(),
        "no 200 for the trunk's OPTIONS\n{}",
        sipp.report()
    );
    leg.hangup();
    until_ended(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maximum_call_duration_ends_the_call_with_bye() {
    // The real-time echo check is starved by calls beside it on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let mut sipp = Sipp::builtin_uas().rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |s| {
        s.max_call_duration = Duration::from_secs(2);
    })
    .await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    let answered_at = Instant::now();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::MaxDuration)
    );
    assert!(
        answered_at.elapsed() >= Duration::from_millis(1900),
        "ended too early"
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("BYE").len(), 1);
}

/// sipp playing `scenario` as the trunk, with `-rtp_echo`; a node on it,
/// and its call, answered.
async fn answered_by(scenario: &str) -> (Sipp, TestNode, TestLeg) {
    let sipp = Sipp::uas(scenario).rtp_echo().spawn();
    let node = TestNode::start(vec![trunk("sipp", sipp.sip_addr())], |_| {}).await;
    let mut leg = node.call();
    until_answered(&mut leg).await;
    (sipp, node, leg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunks_session_refreshes_keep_the_call_and_a_missing_one_ends_it() {
    // The trunk answers with a 12 s session it refreshes itself, three
    // ways 4 s apart (UPDATE, re-INVITE without SDP, re-INVITE with SDP),
    // then stops: the call outlives the first expiry (8 s), and ends with
    // our BYE 8 s after the last refresh. sipp checks each of our 200s.
    let (mut sipp, _node, mut leg) = answered_by("uas_session_timer_trunk_refreshes.xml").await;
    let answered_at = Instant::now();
    let end = until_ended(&mut leg).await;
    let lasted = answered_at.elapsed();
    assert_eq!(
        (end.disposition, end.ended_by),
        (Disposition::Answered, EndCause::SessionExpired)
    );
    assert!(
        (Duration::from_secs(18)..Duration::from_secs(23)).contains(&lasted),
        "the session should expire 8 s after the refresh at 12 s; lasted {lasted:?}"
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("BYE").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_makes_us_refresh_gets_an_update_at_half_the_interval() {
    let (mut sipp, _node, mut leg) = answered_by("uas_session_timer_uac_refreshes.xml").await;
    // Refreshes are due at 5 s and 10 s; the call lives past the 10 s
    // session it would otherwise have lost.
    let deadline = Instant::now() + Duration::from_secs(14);
    while sipp.received_requests("UPDATE").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second refresh\n{}",
            sipp.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    hang_up_answered(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("UPDATE").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_refuses_update_is_refreshed_by_re_invite_offering_the_same_sdp() {
    // 10 s sessions we refresh; the trunk answers our UPDATE at 5 s with
    // 501, so that refresh goes again as a re-INVITE, and so does the one
    // at 10 s. The call outlives the 10 s session it would have lost.
    let (mut sipp, _node, mut leg) = answered_by("uas_session_timer_refuses_update.xml").await;
    let answered_at = Instant::now();
    let deadline = answered_at + Duration::from_secs(14);
    while sipp.received_requests("INVITE").len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no second re-INVITE refresh\n{}",
            sipp.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answered_at.elapsed() > Duration::from_secs(9),
        "the second refresh came early"
    );
    hang_up_answered(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(
        sipp.received_requests("UPDATE").len(),
        1,
        "UPDATE tried once"
    );
    assert_eq!(sipp.sent_responses(501, "UPDATE").len(), 1);
    let invites = sipp.received_requests("INVITE");
    let (offer, refreshes) = invites.split_first().expect("the INVITE");
    for refresh in refreshes {
        assert_eq!(
            refresh.header("Call-ID"),
            offer.header("Call-ID"),
            "in the same dialog"
        );
        assert_eq!(
            refresh.body, offer.body,
            "the refresh offers our SDP unchanged, version and all"
        );
    }
    assert_eq!(sipp.received_requests("ACK").len(), 3, "every 200 ACKed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_is_answered_with_the_interval_the_trunk_asks_for() {
    let (mut sipp, _node, mut leg) = answered_by("uas_session_interval_too_small.xml").await;
    hang_up_answered(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    let invites = sipp.received_requests("INVITE");
    assert_eq!(invites.len(), 2, "one INVITE, then one after the 422");
    assert_eq!(
        invites[0].header("Call-ID"),
        invites[1].header("Call-ID"),
        "the second INVITE is the same call"
    );
}
