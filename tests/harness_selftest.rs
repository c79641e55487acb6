//! Tests of the integration-test harness itself and of our understanding of
//! the real peers: every sipp scenario under `tests/sipp/` runs against a
//! sipp caller (built in, or scripted under `tests/sipp/selftest/`) and does
//! what its header comment promises; baresip answers and echoes; kamailio
//! relays a dialog. The toolkit's own checks are in `harness_selftest/`,
//! and so are the browser side's (headless Chromium, the fake microphone,
//! the widget without a node, the aiortc client's virtualenv).
//! A peer program that is missing fails these tests (run
//! scripts/install-test-deps.sh), it never skips them.

mod support;

#[path = "harness_selftest/toolkit.rs"]
mod toolkit;

#[path = "harness_selftest/browser.rs"]
mod browser;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::audio::{self, DIFFERENT_MAX, SAME_SPEECH_MIN};
use support::baresip::{Baresip, BaresipMode};
use support::digest::{Algorithm, DigestCredentials, DigestInput};
use support::kamailio::Kamailio;
use support::rtp::{self, RtpSocket};
use support::sip_raw::{self, Malformed};
use support::sip_trace::{Direction, SipMessage, sdp_audio_addr, sdp_direction};
use support::sipp::{EXIT_ALL_CALLS_OK as OK, EXIT_CALL_FAILED as FAILED, Sipp, SippBuilder};

const WAIT: Duration = Duration::from_secs(20);
const SENTENCE_A: &str = "The quick brown fox jumps over the lazy dog near the river bank";
const SENTENCE_B: &str = "Please hold the line while we connect your call to the next operator";
const SENTENCE_C: &str = "One two three four five six seven eight nine ten";
const REALM: &str = "callgate.test";

/// The trunk account the auth scenarios expect: alice / s3cret.
fn alice(algorithm: Algorithm, nonce: &'static str) -> DigestInput<'static> {
    DigestInput {
        algorithm,
        user: "alice",
        realm: REALM,
        password: "s3cret",
        method: "INVITE",
        uri: "sip:trunk@127.0.0.1",
        nonce,
    }
}

/// The Digest credentials in the second INVITE the UAS received (the one
/// answering its challenge), from `header`.
fn answered_credentials(uas: &Sipp, header: &str) -> DigestCredentials {
    let invites = uas.received_requests("INVITE");
    assert_eq!(invites.len(), 2, "{}", uas.report());
    let value = invites[1]
        .header(header)
        .unwrap_or_else(|| panic!("no {header}"));
    DigestCredentials::parse(value).expect("Digest credentials")
}

/// Checks that credentials prove alice's password, and no other.
fn assert_alice(credentials: &DigestCredentials) {
    credentials
        .verify("INVITE", "alice", REALM, "s3cret")
        .expect("alice's password");
    let other = credentials.verify("INVITE", "alice", REALM, "s3cret!");
    assert!(other.is_err(), "another password passes too");
}

fn ms_of_ulaw(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len() / 8).unwrap_or(u64::MAX)
}

// ------------------------------------------------------- sipp scenarios

/// Starts the UAS, then the caller built against its address; waits for
/// both to exit with the expected codes (caller's, callee's).
fn call(
    uas: SippBuilder,
    uac: impl FnOnce(SocketAddr) -> SippBuilder,
    codes: (i32, i32),
) -> (Sipp, Sipp) {
    let mut uas = uas.spawn();
    let mut uac = uac(uas.sip_addr()).spawn();
    uac.expect_exit(WAIT, codes.0);
    uas.expect_exit(WAIT, codes.1);
    (uac, uas)
}

/// [`call`] through a kamailio proxy, both sides expected to succeed.
fn call_via_proxy(
    uas: SippBuilder,
    uac: impl FnOnce(SocketAddr) -> SippBuilder,
) -> (Sipp, Sipp, Kamailio) {
    let mut uas = uas.spawn();
    let proxy = Kamailio::start(uas.sip_addr());
    let mut uac = uac(proxy.addr()).spawn();
    uac.expect_exit(WAIT, OK);
    uas.expect_exit(WAIT, OK);
    (uac, uas, proxy)
}

fn received_from(message: &SipMessage) -> bool {
    message.direction == Direction::Received
}

#[test]
fn uas_busy_answers_486_and_waits_for_the_ack() {
    let (uac, uas) = call(Sipp::uas("uas_busy.xml"), Sipp::builtin_uac, (FAILED, OK));
    assert_eq!(
        uac.received_responses(486, "INVITE").len(),
        1,
        "{}",
        uac.report()
    );
    assert_eq!(uas.received_requests("ACK").len(), 1, "{}", uas.report());
    let counts = uac.call_counts().expect("final statistics");
    assert_eq!((counts.successful, counts.failed), (0, 1));
}

#[test]
fn uas_no_answer_rings_until_cancel_then_sends_487() {
    let (uac, uas) = call(
        Sipp::uas("uas_no_answer.xml"),
        |to| Sipp::uac("selftest/uac_cancel.xml", to),
        (OK, OK),
    );
    assert_eq!(uas.received_requests("CANCEL").len(), 1);
    assert_eq!(uac.received_responses(200, "CANCEL").len(), 1);
    assert_eq!(uac.received_responses(487, "INVITE").len(), 1);
}

#[test]
fn uas_silent_then_ringing_absorbs_retransmissions_and_takes_a_cancel_only_after_the_180() {
    let start = Instant::now();
    let (uac, uas) = call(
        Sipp::uas("uas_silent_then_ringing.xml"),
        |to| Sipp::uac("selftest/uac_cancel.xml", to),
        (OK, OK),
    );
    assert!(start.elapsed() >= Duration::from_secs(3), "3 s of silence");
    let messages = uas.messages();
    let ringing = messages
        .iter()
        .position(|m| m.is_response(180, "INVITE"))
        .unwrap_or_else(|| panic!("no 180\n{}", uas.report()));
    let cancel = messages
        .iter()
        .position(|m| m.is_request("CANCEL"))
        .unwrap_or_else(|| panic!("no CANCEL\n{}", uas.report()));
    assert!(ringing < cancel, "CANCEL before any provisional response");
    // While silent it gets the INVITE and its retransmissions, all expected.
    let silent = &messages[..ringing];
    assert!(silent.len() > 1, "{}", uas.report());
    assert!(
        silent
            .iter()
            .all(|m| received_from(m) && m.is_request("INVITE") && !m.unexpected),
        "{}",
        uas.report()
    );
    assert_eq!(uas.received_requests("CANCEL").len(), 1);
    assert_eq!(uac.received_responses(200, "CANCEL").len(), 1);
    assert_eq!(uac.received_responses(487, "INVITE").len(), 1);
    assert_eq!(uas.received_requests("ACK").len(), 1);
}

#[test]
fn uas_trying_then_cancel_says_only_100_until_cancelled_then_sends_487() {
    let (uac, uas) = call(
        Sipp::uas("uas_trying_then_cancel.xml"),
        |to| Sipp::uac("selftest/uac_cancel_after_trying.xml", to),
        (OK, OK),
    );
    assert_eq!(uas.received_requests("CANCEL").len(), 1, "{}", uas.report());
    let sent = uas.sent();
    let mut answers: Vec<u16> = sent
        .iter()
        .filter(|m| m.cseq_method() == Some("INVITE"))
        .filter_map(SipMessage::status)
        .collect();
    answers.dedup();
    assert_eq!(answers, [100, 487]);
    assert_eq!(uac.received_responses(200, "CANCEL").len(), 1);
    assert_eq!(uac.received_responses(487, "INVITE").len(), 1);
    assert_eq!(uas.received_requests("ACK").len(), 1);
}

#[test]
fn uas_answer_crosses_cancel_answers_200_after_the_cancel_and_takes_the_bye() {
    let (uac, uas) = call(
        Sipp::uas("uas_answer_crosses_cancel.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_cancel_crossed_by_answer.xml", to),
        (OK, OK),
    );
    assert_eq!(uas.received_requests("CANCEL").len(), 1, "{}", uas.report());
    // The CANCEL's 200 first, then the INVITE's 200 instead of a 487.
    let received = uac.received();
    let mut answered: Vec<&str> = received
        .iter()
        .filter(|m| m.status() == Some(200))
        .filter_map(SipMessage::cseq_method)
        .collect();
    answered.dedup();
    assert_eq!(answered, ["CANCEL", "INVITE", "BYE"], "{}", uac.report());
    assert!(uac.received_responses(487, "INVITE").is_empty());
    assert_eq!(uas.received_requests("ACK").len(), 1);
    let bye = uas.received_requests("BYE");
    assert_eq!(bye.len(), 1);
    // The BYE ends the dialog the crossing 200 set up.
    let answer = &uas.sent_responses(200, "INVITE")[0];
    assert_eq!(bye[0].header("To"), answer.header("To"));
}

#[test]
fn uas_401_accepts_the_right_md5_password() {
    let (_, uas) = call(
        Sipp::uas("uas_401.xml")
            .key("auth_user", "alice")
            .key("auth_password", "s3cret")
            .rtp_echo(),
        |to| Sipp::uac("selftest/uac_auth.xml", to).credentials("alice", "s3cret"),
        (OK, OK),
    );
    assert_alice(&answered_credentials(&uas, "Authorization"));
}

#[test]
fn uas_401_refuses_a_wrong_password_with_403_and_fails_the_call() {
    let (uac, _) = call(
        Sipp::uas("uas_401.xml")
            .key("auth_user", "alice")
            .key("auth_password", "s3cret"),
        |to| Sipp::uac("selftest/uac_auth_refused.xml", to).credentials("alice", "guess"),
        (OK, FAILED),
    );
    assert_eq!(uac.received_responses(403, "INVITE").len(), 1);
}

#[test]
fn uas_auth_wrong_password_passes_only_when_the_password_is_wrong() {
    for (password, expected) in [("guess", OK), ("s3cret", FAILED)] {
        let (_, uas) = call(
            Sipp::uas("uas_auth_wrong_password.xml")
                .key("auth_user", "alice")
                .key("auth_password", "s3cret"),
            |to| Sipp::uac("selftest/uac_auth_refused.xml", to).credentials("alice", password),
            (OK, expected),
        );
        assert_eq!(uas.received_requests("ACK").len(), 2, "{}", uas.report());
    }
}

#[test]
fn uas_auth_407_leaves_the_md5_check_to_the_trace() {
    let (_, uas) = call(
        Sipp::uas("uas_auth_407.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_auth.xml", to).credentials("alice", "s3cret"),
        (OK, OK),
    );
    let challenge = uas.sent_responses(407, "INVITE");
    let offered = challenge[0]
        .header("Proxy-Authenticate")
        .expect("challenge");
    let credentials = answered_credentials(&uas, "Proxy-Authorization");
    let nonce = credentials.get("nonce").expect("nonce");
    assert!(
        offered.contains(&format!("nonce=\"{nonce}\"")),
        "nonce echoed"
    );
    assert_alice(&credentials);
}

#[test]
fn uas_auth_407_fails_the_call_without_proxy_authorization() {
    let input = alice(Algorithm::Md5, "not-the-challenge");
    // The right kind of answer to a 401, in the wrong header for a 407.
    call(
        Sipp::uas("uas_auth_407.xml"),
        |to| {
            Sipp::uac("selftest/uac_fixed_auth.xml", to)
                .key("auth_header", &input.header_line("Authorization"))
        },
        (OK, FAILED),
    );
}

#[test]
fn uas_auth_sha256_leaves_the_check_to_the_trace() {
    let nonce = "selftest-nonce-0001";
    let input = alice(Algorithm::Sha256, nonce);
    let (uac, uas) = call(
        Sipp::uas("uas_auth_sha256.xml").key("nonce", nonce),
        |to| {
            Sipp::uac("selftest/uac_fixed_auth.xml", to)
                .key("auth_header", &input.header_line("Authorization"))
        },
        (OK, OK),
    );
    let challenge = uac.received_responses(401, "INVITE");
    let offered = challenge[0].header("WWW-Authenticate").expect("challenge");
    assert!(
        offered.contains("algorithm=SHA-256") && offered.contains(nonce),
        "{offered}"
    );
    assert_alice(&answered_credentials(&uas, "Authorization"));
}

#[test]
fn uas_remote_bye_hangs_up_first() {
    let (uac, uas) = call(
        Sipp::uas("uas_remote_bye.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_wait_bye.xml", to),
        (OK, OK),
    );
    let bye = uac.received_requests("BYE");
    assert_eq!(bye.len(), 1);
    let invite = &uas.received_requests("INVITE")[0];
    // The BYE swaps the INVITE's From and To (RFC 3261 12.2.1.1).
    assert!(
        bye[0]
            .header("To")
            .expect("To")
            .starts_with(invite.header("From").expect("From"))
    );
    assert_eq!(uas.received_responses(200, "BYE").len(), 1);
}

#[test]
fn uas_reinvite_hold_holds_then_resumes_on_a_new_port() {
    let (_, uas) = call(
        Sipp::uas("uas_reinvite_hold.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_reinvite.xml", to),
        (OK, OK),
    );
    let reinvites = uas.sent_requests("INVITE");
    assert_eq!(reinvites.len(), 2, "{}", uas.report());
    assert_eq!(sdp_direction(&reinvites[0].body), "sendonly");
    assert_eq!(sdp_audio_addr(&reinvites[0].body), Some(uas.media_addr()));
    assert_eq!(sdp_direction(&reinvites[1].body), "sendrecv");
    let moved = sdp_audio_addr(&reinvites[1].body).expect("unhold address");
    assert_eq!(moved.port(), uas.media_addr().port() + 2);
    let answers = uas.received_responses(200, "INVITE");
    assert_eq!(
        answers
            .iter()
            .map(|a| sdp_direction(&a.body))
            .collect::<Vec<_>>(),
        ["recvonly", "sendrecv"]
    );
}

#[test]
fn uas_hold_then_wait_bye_holds_until_the_caller_hangs_up() {
    let (uac, uas) = call(
        Sipp::uas("uas_hold_then_wait_bye.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_hold_then_bye.xml", to),
        (OK, OK),
    );
    let reinvites = uas.sent_requests("INVITE");
    assert_eq!(reinvites.len(), 1, "{}", uas.report());
    assert_eq!(sdp_direction(&reinvites[0].body), "sendonly");
    assert_eq!(sdp_audio_addr(&reinvites[0].body), Some(uas.media_addr()));
    let answer = &uas.received_responses(200, "INVITE")[0];
    assert_eq!(sdp_direction(&answer.body), "recvonly");
    assert!(
        uas.logs().contains("hold answered with a=recvonly"),
        "{}",
        uas.logs()
    );
    assert_eq!(uas.received_requests("BYE").len(), 1);
    assert_eq!(uac.received_responses(200, "BYE").len(), 1);
}

#[test]
fn uas_options_probes_the_dialog_and_answers_the_callers_probe() {
    let (uac, uas) = call(
        Sipp::uas("uas_options.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_options.xml", to).auto_answer(),
        (OK, OK),
    );
    assert_eq!(
        uas.received_responses(200, "OPTIONS").len(),
        1,
        "{}",
        uas.report()
    );
    assert_eq!(uas.received_requests("OPTIONS").len(), 1);
    assert_eq!(uac.received_responses(200, "OPTIONS").len(), 1);
}

#[test]
fn uas_answer_echo_bye_wait_answers_in_dialog_options() {
    let (uac, _) = call(
        Sipp::uas("uas_answer_echo_bye_wait.xml").rtp_echo(),
        |to| Sipp::uac("selftest/uac_options.xml", to).auto_answer(),
        (OK, OK),
    );
    let answer = &uac.received_responses(200, "INVITE")[0];
    assert!(answer.body.contains("a=rtpmap:101 telephone-event/8000"));
    assert_eq!(uac.received_responses(200, "OPTIONS").len(), 1);
}

/// Calls `target` with `uac_echo_call.xml`, streams `speech` from a test
/// socket to the answer's media address and returns what came back.
fn echo_call(target: SocketAddr, service: &str, speech: &[u8]) -> (Sipp, Vec<u8>) {
    let socket = RtpSocket::bind();
    let speech_ms = ms_of_ulaw(speech);
    let uac = Sipp::uac("uac_echo_call.xml", target)
        .service(service)
        .key("rtp_port", &socket.port().to_string())
        .pause_ms(speech_ms + 1500)
        .spawn();
    let answer = uac
        .wait_for_message(WAIT, |m| received_from(m) && m.is_response(200, "INVITE"))
        .unwrap_or_else(|| panic!("no answer\n{}", uac.report()));
    let media = sdp_audio_addr(&answer.body).expect("answer SDP names a media address");
    let sender = socket.send_ulaw(media, speech);
    let arrivals = socket.capture(
        Duration::from_millis(speech_ms + 1500),
        Duration::from_millis(600),
    );
    sender.join().expect("sender thread");
    assert!(
        arrivals.iter().all(|a| a.from == media),
        "echo comes from the answered address"
    );
    (uac, rtp::ulaw_audio(&rtp::packets(&arrivals), 0))
}

#[test]
fn uas_answer_echo_bye_wait_echoes_the_speech_sent() {
    let mut uas = Sipp::uas("uas_answer_echo_bye_wait.xml").rtp_echo().spawn();
    let speech = audio::speech_ulaw(SENTENCE_A);
    let (mut uac, echoed) = echo_call(uas.sip_addr(), "echo", &speech);
    let similarity = audio::similarity_ulaw(&speech, &echoed);
    assert!(similarity.score >= SAME_SPEECH_MIN, "{similarity:?}");
    let other = audio::similarity_ulaw(&audio::speech_ulaw(SENTENCE_B), &echoed);
    assert!(
        other.score < DIFFERENT_MAX,
        "echo is not any speech: {other:?}"
    );
    uac.expect_exit(WAIT, OK);
    uas.expect_exit(WAIT, OK);
    assert!(
        uac.logs()
            .contains(&format!("answer media {}", uas.media_addr()))
    );
}

#[test]
fn uas_early_media_plays_the_file_before_answering() {
    let speech = audio::speech_ulaw(SENTENCE_B);
    let mut uas = Sipp::uas("uas_early_media.xml")
        .file("early_media.ulaw", &speech)
        .spawn();
    let socket = RtpSocket::bind();
    let start = Instant::now();
    // Hang up about when the file ends (2 s of it play before the answer).
    let mut uac = Sipp::uac("uac_echo_call.xml", uas.sip_addr())
        .key("rtp_port", &socket.port().to_string())
        .pause_ms(ms_of_ulaw(&speech).saturating_sub(1500))
        .spawn();
    let arrivals = socket.capture(
        Duration::from_millis(ms_of_ulaw(&speech) + 3000),
        Duration::from_millis(600),
    );
    uac.expect_exit(WAIT, OK);
    uas.expect_exit(WAIT, OK);
    let first = arrivals.first().expect("early media arrived");
    // The INVITE leaves after `start` and the 200 comes 2 s after the 183,
    // so the 200 cannot arrive before start + 2 s: audio before that is early.
    assert!(
        first.at - start < Duration::from_millis(2000),
        "first packet after {:?}",
        first.at - start
    );
    let progress = &uac.received_responses(183, "INVITE")[0];
    assert_eq!(sdp_audio_addr(&progress.body), Some(first.from));
    let played = rtp::ulaw_audio(&rtp::packets(&arrivals), 0);
    let similarity = audio::similarity_ulaw(&speech, &played);
    assert!(similarity.score >= SAME_SPEECH_MIN, "{similarity:?}");
}

#[test]
fn uas_early_media_then_cancel_offers_media_in_the_183_until_cancelled() {
    let (uac, uas) = call(
        Sipp::uas("uas_early_media_then_cancel.xml"),
        |to| Sipp::uac("selftest/uac_cancel_early_media.xml", to),
        (OK, OK),
    );
    let progress = uac.received_responses(183, "INVITE");
    assert_eq!(progress.len(), 1, "{}", uac.report());
    assert_eq!(sdp_audio_addr(&progress[0].body), Some(uas.media_addr()));
    assert_eq!(uas.received_requests("CANCEL").len(), 1);
    assert_eq!(uac.received_responses(200, "CANCEL").len(), 1);
    assert_eq!(uac.received_responses(487, "INVITE").len(), 1);
    assert!(uac.received_responses(200, "INVITE").is_empty());
    assert_eq!(uas.received_requests("ACK").len(), 1);
}

// ---------------------------------------------------- baresip, kamailio

#[test]
fn baresip_echo_answers_a_sipp_call_and_echoes_speech() {
    let baresip = Baresip::start(BaresipMode::Echo);
    let speech = audio::speech_ulaw(SENTENCE_C);
    let (mut uac, echoed) = echo_call(baresip.addr(), baresip.user(), &speech);
    uac.expect_exit(WAIT, OK);
    let similarity = audio::similarity_ulaw(&speech, &echoed);
    assert!(
        similarity.score >= SAME_SPEECH_MIN,
        "{similarity:?}\n{}",
        baresip.log()
    );
}

#[test]
fn baresip_play_answers_plays_the_file_and_hangs_up() {
    let wav = audio::speech_wav(SENTENCE_A, 8000);
    let baresip = Baresip::start(BaresipMode::Play(wav.clone()));
    let mut uac = Sipp::uac("selftest/uac_wait_bye.xml", baresip.addr())
        .service(baresip.user())
        .spawn();
    uac.expect_exit(WAIT, OK);
    assert_eq!(
        uac.received_requests("BYE").len(),
        1,
        "baresip hangs up at the end of the file"
    );
    let sent = baresip.sent_recordings();
    assert_eq!(sent.len(), 1, "{}", baresip.log());
    let (rate, recorded) = audio::read_wav(&sent[0]);
    assert_eq!(rate, 8000);
    let (_, original) = audio::read_wav(&wav);
    let similarity = audio::similarity(&original, &recorded);
    assert!(similarity.score >= SAME_SPEECH_MIN, "{similarity:?}");
}

#[test]
fn malformed_sip_does_not_stop_baresip_answering_options() {
    let baresip = Baresip::start(BaresipMode::Echo);
    let wait = Duration::from_secs(2);
    // Any final answer shows the SIP port alive (baresip says 404: no user).
    let before = sip_raw::options_ping(baresip.addr(), wait);
    assert!(before.is_some(), "{}", baresip.log());
    let replies = sip_raw::send_all_malformed(baresip.addr(), Duration::from_millis(300));
    assert_eq!(replies.len(), Malformed::ALL.len());
    assert_eq!(
        sip_raw::options_ping(baresip.addr(), wait),
        before,
        "{}",
        baresip.log()
    );
}

#[test]
fn kamailio_record_routes_and_relays_in_dialog_requests_both_ways() {
    let (_, uas, proxy) = call_via_proxy(Sipp::uas("uas_options.xml").rtp_echo(), |to| {
        Sipp::uac("selftest/uac_options.xml", to).auto_answer()
    });
    let invite = &uas.received_requests("INVITE")[0];
    assert_eq!(invite.header_all("Via").len(), 2, "{}", proxy.log());
    assert!(
        invite
            .header("Record-Route")
            .is_some_and(|rr| rr.contains(&proxy.addr().to_string()))
    );
    let probe = uas.sent_requests("OPTIONS");
    assert!(
        probe[0].header("Route").is_some_and(|r| r.contains(";lr")),
        "loose route via the proxy"
    );
    for method in ["ACK", "OPTIONS", "BYE"] {
        let request = &uas.received_requests(method)[0];
        assert_eq!(
            request.header_all("Via").len(),
            2,
            "{method} crossed the proxy"
        );
    }
}

#[test]
fn kamailio_relays_cancel_and_the_487_keeps_every_via() {
    let (uac, uas, proxy) = call_via_proxy(Sipp::uas("uas_no_answer.xml"), |to| {
        Sipp::uac("selftest/uac_cancel.xml", to)
    });
    let invite = &uas.received_requests("INVITE")[0];
    let terminated = uas.sent_responses(487, "INVITE");
    assert_eq!(
        terminated[0].header_all("Via"),
        invite.header_all("Via"),
        "{}",
        proxy.log()
    );
    assert_eq!(uac.received_responses(487, "INVITE").len(), 1);
}

#[test]
fn kamailio_routes_the_callees_bye() {
    let (uac, _, proxy) = call_via_proxy(Sipp::uas("uas_remote_bye.xml"), |to| {
        Sipp::uac("selftest/uac_wait_bye.xml", to)
    });
    let bye = &uac.received_requests("BYE")[0];
    assert_eq!(bye.header_all("Via").len(), 2, "{}", proxy.log());
    assert!(bye.header("Record-Route").is_none() && bye.header("Route").is_none());
}
