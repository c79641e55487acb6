//! More of the trunk leg against real peers: SDES-SRTP with baresip, the
//! trunk's in-dialog OPTIONS, and the maximum call duration.

mod support;

use std::time::{Duration, Instant};

use callgate::media::endpoint::DropReason;
use callgate::sip::{Disposition, EndedBy};
use support::audio::{SPEECH_TURNS, similarity_ulaw};
use support::baresip::{Baresip, BaresipMode};
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::trunk::{SAME_SPEECH, TestNode, speech, talk, trunk, until_answered, until_ended};

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
        (Disposition::Answered, EndedBy::MaxDuration)
    );
    assert!(
        answered_at.elapsed() >= Duration::from_millis(1900),
        "ended too early"
    );
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(sipp.received_requests("BYE").len(), 1);
}
