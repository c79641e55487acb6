//! The trunk leg against peers other than a bare sipp trunk: baresip as an
//! independent callee with real media, over UDP and over TLS, and kamailio
//! as an outbound proxy between the node and a sipp trunk (Record-Route
//! honoured in-dialog).
//!
//! TLS runs against baresip because Debian's sipp 3.6.1 is built without
//! OpenSSL: `sipp -t l1` exits 1 with "To use a TLS transport you must
//! compile SIPp with OpenSSL".
//!
//! What a user would check: the call connects, the speech we send comes
//! back, hanging up ends the call `answered`, and every request of the
//! dialog crossed the proxy when one is configured.

mod support;

use std::time::Duration;

use callgate::domain::Disposition;
use callgate::sip::{EndCause, SipTransport, TrunkSettings};
use support::baresip::{Baresip, BaresipMode};
use support::kamailio::Kamailio;
use support::pki::TestPki;
use support::sip_trace::SipMessage;
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::trunk::{
    SAME_SPEECH, TestNode, echo_likeness, hang_up_answered, trunk, until_answered, until_ended,
    until_ended_unanswered,
};

/// Calls `baresip` (echo) through `trunk`: the call is answered, our speech
/// comes back, and hanging up ends it answered/200.
async fn echo_call_to_baresip(baresip: &Baresip, trunk: TrunkSettings) {
    let node = TestNode::start(vec![trunk], |_| {}).await;
    // baresip answers only the user its account names.
    let mut leg = node.call_to(baresip.user());
    let mut media = leg.take_media().unwrap();
    until_answered(&mut leg).await;

    let likeness = echo_likeness(&leg, &mut media).await;
    assert!(
        likeness.score > SAME_SPEECH,
        "baresip's echo does not match the speech sent: {likeness:?}\n{}",
        baresip.log()
    );

    leg.hangup();
    let end = until_ended(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code, end.ended_by),
        (Disposition::Answered, Some(200), EndCause::Local),
        "{}",
        baresip.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_answers_and_echoes_our_speech() {
    let baresip = Baresip::start(BaresipMode::Echo);
    echo_call_to_baresip(&baresip, trunk("baresip", baresip.addr())).await;
}

/// Whether `message` came through the proxy at `proxy`: the topmost Via is
/// the proxy's, above ours.
fn crossed_proxy(message: &SipMessage, proxy: &str) -> bool {
    let vias = message.header_all("Via");
    vias.len() == 2 && vias[0].contains(proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_as_outbound_proxy_carries_the_whole_dialog() {
    let mut sipp = Sipp::uas("uas_answer_echo_bye_wait.xml").rtp_echo().spawn();
    let proxy = Kamailio::start(sipp.sip_addr());
    let mut t = trunk("sipp", sipp.sip_addr());
    t.outbound_proxy = Some(proxy.addr().to_string());
    let node = TestNode::start(vec![t], |_| {}).await;
    let mut leg = node.call();
    let mut media = leg.take_media().unwrap();
    until_answered(&mut leg).await;

    let likeness = echo_likeness(&leg, &mut media).await;
    assert!(
        likeness.score > SAME_SPEECH,
        "no echo through the proxied call: {likeness:?}"
    );
    hang_up_answered(&mut leg).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);

    let proxy_addr = proxy.addr().to_string();
    let report = || format!("{}\n--- kamailio ---\n{}", sipp.report(), proxy.log());
    let invite = &sipp.received_requests("INVITE")[0];
    assert!(crossed_proxy(invite, &proxy_addr), "{}", report());
    assert!(
        invite
            .header("Record-Route")
            .is_some_and(|rr| rr.contains(&proxy_addr)),
        "kamailio record-routes: {}",
        report()
    );
    // In-dialog requests follow the route set the 200 OK brought back.
    for method in ["ACK", "BYE"] {
        let request = &sipp.received_requests(method)[0];
        assert!(
            crossed_proxy(request, &proxy_addr),
            "{method} bypassed the proxy: {}",
            report()
        );
    }
}

/// A TLS trunk to `baresip` trusting the CA of `pki`.
fn tls_trunk(baresip: &Baresip, pki: &TestPki) -> TrunkSettings {
    let mut t = trunk("baresip-tls", baresip.tls_addr());
    t.transport = SipTransport::Tls;
    t.tls_ca_pem = Some(pki.ca_pem());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trunk_signed_by_the_trusted_ca_carries_the_call() {
    let pki = TestPki::generate("trunk");
    let baresip = Baresip::start_tls(BaresipMode::Echo, &pki.server_bundle());
    echo_call_to_baresip(&baresip, tls_trunk(&baresip, &pki)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trunk_with_a_certificate_from_another_ca_is_refused() {
    let pki = TestPki::generate("trunk");
    let stranger = TestPki::generate("stranger");
    let baresip = Baresip::start_tls(BaresipMode::Echo, &pki.server_bundle());
    // The default INVITE timeout (32 s): a refused certificate must not wait
    // for it.
    let node = TestNode::start(vec![tls_trunk(&baresip, &stranger)], |_| {}).await;
    let placed = std::time::Instant::now();
    let mut leg = node.call_to(baresip.user());
    let (end, events) = until_ended_unanswered(&mut leg).await;
    assert_eq!(
        (end.disposition, end.sip_code),
        (Disposition::Unreachable, Some(503)),
        "{events:?}"
    );
    assert!(
        placed.elapsed() < Duration::from_secs(5),
        "the refused certificate took {:?} to end the call",
        placed.elapsed()
    );
}
