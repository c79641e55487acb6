//! Browser calls to a real SIP trunk: headless Chromium on the demo page
//! (and aiortc beside it) calling through an in-process node to sipp as the
//! trunk. sipp does the signalling; the media its SDP names is a port the
//! test owns ([`EchoSink`]), so the test hears exactly what the callee hears
//! (the visitor's speech, keypad tones as RFC 4733 events) and sends it back
//! as the callee's voice, or plays the callee's phone pressing keys.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::aiortc::AiortcCall;
use support::audio::{
    SAME_SPEECH_MIN, SPEECH_TURNS, Similarity, similarity, similarity_coarse_within, speech_pcm_8k,
    speech_wav_48k,
};
use support::browser::{AudioPackets, Browser, decode_with_ffmpeg};
use support::impair::ImpairedEcho;
use support::keypad::{Press, TrunkPhone, keypad_tones};
use support::node::{RunningNode, metric};
use support::rtp::{EchoSink, RtpPacket, streams, telephone_event_digits, ulaw_audio};
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};

const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";
const TELEPHONE_EVENT: u8 = 101;
const WAIT: Duration = Duration::from_secs(20);

/// The node's trunks: `answer` (sipp answering, media at the sink) on route
/// `demo`, and whatever `others` add.
fn trunks(answer: SocketAddr, others: &str) -> String {
    format!(
        "[[sip.trunks]]\nname = \"answer\"\naddress = \"{answer}\"\n\
         [[sip.routes]]\nname = \"demo\"\ntrunks = [\"answer\"]\n{others}"
    )
}

/// sipp answering every call with its media at `sink`.
fn answering_trunk(scenario: &str, sink: &EchoSink, calls: u32) -> Sipp {
    Sipp::uas(scenario)
        .key("sink_port", &sink.port().to_string())
        .calls(calls)
        .timeout(Duration::from_secs(120))
        .spawn()
}

fn speech_8k() -> Vec<i16> {
    speech_pcm_8k(SPEECH)
}

/// The fake microphone loops the speech from when the page took it, so the
/// speech can start anywhere in a capture: search a whole loop of lags.
/// Everything here came from Chromium's microphone: coarse frames (see
/// `support::audio`).
fn speech_in_loop(received: &[i16]) -> Similarity {
    let sent = speech_8k();
    let one_loop = Duration::from_millis(sent.len() as u64 / 8);
    similarity_coarse_within(&sent, received, one_loop * 2)
}

/// What the callee heard on one stream: its audio as 8 kHz samples.
fn heard_by_callee(stream: &[RtpPacket]) -> Vec<i16> {
    ulaw_audio(stream, 0)
        .iter()
        .map(|&b| callgate::media::g711::decode_ulaw(b))
        .collect()
}

/// Sequence gaps in a stream (lost packets), wrap-aware.
fn lost_packets(stream: &[RtpPacket]) -> u32 {
    let audio: Vec<u16> = stream
        .iter()
        .filter(|p| p.payload_type != TELEPHONE_EVENT)
        .map(|p| p.sequence)
        .collect();
    audio
        .windows(2)
        .map(|w| u32::from(w[1].wrapping_sub(w[0]).saturating_sub(1)))
        .filter(|&gap| gap < 1000)
        .sum()
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

/// Calls from the demo page offering `codecs` and starts recording what
/// the browser hears once the callee's audio arrives.
async fn call_and_listen(browser: &Browser, node: &RunningNode, codecs: &str) {
    browser
        .goto(&format!("{}/demo?cg-codecs={codecs}", node.base()))
        .await;
    browser.disable_audio_processing().await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", WAIT).await;
    // The trunk can answer before the browser's DTLS handshake is done:
    // the window starts when the callee's audio does.
    let answered = Instant::now();
    while browser.inbound_audio_packets().await == 0 && answered.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.start_recording_remote_audio().await;
}

/// Calls from the demo page and lets it talk for 8 s: what the browser
/// counted and heard in that time.
async fn talk(browser: &Browser, node: &RunningNode, codecs: &str) -> Talk {
    call_and_listen(browser, node, codecs).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let webm = browser.stop_recording().await;
    Talk {
        packets: browser.audio_packets().await,
        heard: decode_with_ffmpeg(&webm),
    }
}

/// What the browser counted and heard over [`talk`].
struct Talk {
    packets: AudioPackets,
    heard: Vec<i16>,
}

fn assert_browser_heard_the_echo(talk: &Talk) {
    // 150 packets: 3 s of the 8 s window, however starved the browser was.
    talk.packets.assert_echoed(150);
    let score = speech_in_loop(&talk.heard);
    assert!(
        score.score >= SAME_SPEECH_MIN,
        "the browser heard its speech come back (rms {:.0}): {score:?}",
        rms(&talk.heard)
    );
}

fn assert_callee_heard_the_visitor(stream: &[RtpPacket]) {
    let heard = heard_by_callee(stream);
    let score = speech_in_loop(&heard);
    assert!(
        score.score >= SAME_SPEECH_MIN,
        "the callee heard the visitor's speech ({} packets, rms {:.0}): {score:?}",
        stream.len(),
        rms(&heard)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_talks_to_sipp_sends_keypad_digits_and_hangs_up() {
    // Real-time browsers beside each other starve on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let sink = EchoSink::start(TELEPHONE_EVENT);
    let mut sipp = answering_trunk("uas_media_sink_wait_bye.xml", &sink, 1);
    let node = RunningNode::start(16000..=16499, &trunks(sipp.sip_addr(), ""), &[]).await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;

    let talked = talk(&browser, &node, "pcmu,pcma,opus").await;
    for digit in ["1", "5", "#"] {
        browser
            .click(&format!(".cg-widget .cg-key[data-digit='{digit}']"))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", WAIT).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    browser.close().await;

    assert_browser_heard_the_echo(&talked);
    let arrived = sink.stop();
    let streams = streams(&arrived);
    assert_eq!(streams.len(), 1, "one call, one stream to the callee");
    assert_callee_heard_the_visitor(&streams[0]);
    assert_eq!(
        telephone_event_digits(&streams[0], TELEPHONE_EVENT),
        "15#",
        "the keypad digits arrive as RFC 4733 events"
    );

    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by.as_str()),
        ("answered", "visitor")
    );
    assert_eq!(cdr.sip_code, Some(200));
    assert_eq!(cdr.trunk.as_deref(), Some("answer"));
    assert_eq!(
        (cdr.browser_codec.as_deref(), cdr.trunk_codec.as_deref()),
        (Some("PCMU"), Some("PCMU"))
    );
    let answered = cdr.answered_at_ms.expect("answered time");
    assert!(cdr.created_at_ms <= answered && answered < cdr.ended_at_ms);
    assert!(cdr.duration_ms >= 9_000, "{cdr:?}");
    node.stop().await;
}

/// The callee presses 1 on its phone (RFC 4733 events as a carrier sends
/// them: unmarked, the end packet four times), its PBX sends 9 in a SIP
/// INFO, then a re-INVITE renumbers telephone-event from 101 to 96 and the
/// callee presses 3 under the new number. The visitor hears all three keys,
/// in order, from Chromium's own playout of the events we send it.
#[tokio::test(flavor = "multi_thread")]
async fn the_callees_keys_reach_the_visitor_from_rtp_events_and_sip_info() {
    // Real-time browsers beside each other starve on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let phone_socket =
        std::net::UdpSocket::bind(("127.0.0.1", support::ports::free_udp_port_pair()))
            .expect("bind the phone's socket");
    let phone_port = phone_socket.local_addr().unwrap().port();
    let mut sipp = Sipp::uas("uas_media_sink_keypad.xml")
        .key("sink_port", &phone_port.to_string())
        .timeout(Duration::from_secs(120))
        .spawn();
    let node = RunningNode::start(27600..=27699, &trunks(sipp.sip_addr(), ""), &[]).await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    // The scenario sends its INFO 8 s after the ACK and renumbers at 9 s;
    // the phone starts when our first packet reaches it, after the ACK.
    let presses = vec![
        Press {
            at: Duration::from_secs(2),
            event: 1,
            payload_type: TELEPHONE_EVENT,
        },
        Press {
            at: Duration::from_secs(11),
            event: 3,
            payload_type: 96,
        },
    ];
    let phone = TrunkPhone::start(phone_socket, presses, Duration::from_secs(13), WAIT);

    call_and_listen(&browser, &node, "pcmu,pcma,opus").await;
    let phone_started = tokio::task::block_in_place(|| phone.finish());
    let webm = browser.stop_recording().await;
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", WAIT).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    browser.close().await;

    assert!(phone_started.is_some(), "the node sent the callee audio");
    let heard = decode_with_ffmpeg(&webm);
    assert_eq!(
        keypad_tones(&heard, 8000),
        "193",
        "the visitor heard the callee's keys ({} samples, rms {:.0})",
        heard.len(),
        rms(&heard)
    );
    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by.as_str()),
        ("answered", "visitor")
    );
    node.stop().await;
}

/// The network between the node and the trunk goes bad 2 s into the call,
/// for 12 s: the echo loses every fourth packet and holds every other one
/// back 60 ms.
/// The visitor's widget shows its "poor connection" hint with the warnings
/// the node measured, and drops it once the network has been clean for two
/// windows; the CDR keeps the trunk leg's worst MOS (the bad minute) apart
/// from its average, and the browser leg's stays good.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_trunk_network_warns_the_visitor_and_lowers_the_trunk_legs_mos_in_the_cdr() {
    // Real-time browsers beside each other starve on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let bad = Duration::from_secs(2)..Duration::from_secs(14);
    let echo = ImpairedEcho::start(TELEPHONE_EVENT, bad);
    let mut sipp = Sipp::uas("uas_media_sink_wait_bye.xml")
        .key("sink_port", &echo.port().to_string())
        .timeout(Duration::from_secs(120))
        .spawn();
    let node = RunningNode::start(27800..=27899, &trunks(sipp.sip_addr(), ""), &[]).await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    browser
        .goto(&format!("{}/demo?cg-codecs=pcmu", node.base()))
        .await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", WAIT).await;

    let warned = "['high-loss', 'high-jitter', 'low-mos'].every((w) => \
        document.querySelector('.cg-widget').callgate.warnings.includes(w))";
    browser.wait_for(warned, Duration::from_secs(20)).await;
    let hint = browser
        .eval(
            "const q = document.querySelector('.cg-widget .cg-quality'); \
             return [q.hidden, q.getAttribute('role'), q.getAttribute('aria-live'), q.textContent, \
             document.querySelector('.cg-widget').dataset.quality];",
        )
        .await;
    assert_eq!(hint[0], false, "the hint shows: {hint}");
    assert_eq!(
        (hint[1].as_str(), hint[2].as_str()),
        (Some("status"), Some("polite"))
    );
    assert!(
        hint[3].as_str().unwrap().starts_with("Poor connection"),
        "{hint}"
    );
    assert!(
        !hint[4].as_str().unwrap().contains("high-rtt"),
        "loopback has no long round trip: {hint}"
    );

    let cleared = "document.querySelector('.cg-widget .cg-quality').hidden && \
        document.querySelector('.cg-widget').callgate.warnings.length === 0 && \
        !('quality' in document.querySelector('.cg-widget').dataset)";
    browser.wait_for(cleared, Duration::from_secs(30)).await;
    assert_eq!(browser.widget_state().await.as_deref(), Some("answered"));
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", WAIT).await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    browser.close().await;
    let treated = echo.stop();
    assert!(treated.lost > 100 && treated.held > 200, "{treated:?}");

    let cdr = node.cdr_of_widget("demo").await;
    let (trunk, visitor) = (&cdr.trunk_stats, &cdr.browser_stats);
    let trunk_worst = trunk.mos_worst_x100.expect("the trunk leg was measured");
    let trunk_average = trunk.mos_average_x100.expect("and averaged");
    assert!(trunk_worst < 300, "25 % loss rates poor: {trunk:?}");
    assert!(
        trunk_average > trunk_worst,
        "the clean windows count: {trunk:?}"
    );
    assert!(
        visitor
            .mos_worst_x100
            .expect("the browser leg was measured")
            >= 400,
        "{visitor:?}"
    );
    let poor_windows = metric(
        node.addr,
        "callgate_call_quality_mos_bucket{leg=\"trunk\",le=\"3\"}",
    );
    assert!(
        poor_windows >= 2.0,
        "the poor windows are in the histogram: {poor_windows}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn opus_only_chromium_is_transcoded_and_the_trunk_hangs_up() {
    // Real-time browsers beside each other starve on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let sink = EchoSink::start(TELEPHONE_EVENT);
    let mut sipp = Sipp::uas("uas_media_sink_remote_bye.xml")
        .key("sink_port", &sink.port().to_string())
        .arg("-d")
        .arg("12000")
        .timeout(Duration::from_secs(120))
        .spawn();
    let node = RunningNode::start(16500..=16999, &trunks(sipp.sip_addr(), ""), &[]).await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;

    let talked = talk(&browser, &node, "opus").await;
    // The callee hangs up 12 s after answering.
    browser.wait_widget_state("ended", WAIT).await;
    assert_eq!(browser.widget_reason().await.as_deref(), Some("completed"));
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    browser.close().await;

    assert_browser_heard_the_echo(&talked);
    let arrived = sink.stop();
    let streams = streams(&arrived);
    assert_eq!(streams.len(), 1);
    assert_callee_heard_the_visitor(&streams[0]);
    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by.as_str()),
        ("answered", "callee")
    );
    assert_eq!(
        (cdr.browser_codec.as_deref(), cdr.trunk_codec.as_deref()),
        (Some("opus"), Some("PCMU"))
    );
    assert_eq!(
        (cdr.sip_reason.as_deref(), cdr.q850_cause),
        (Some("Normal call clearing by [redacted]"), Some(16)),
        "why the callee's BYE says the call ended, without its number"
    );
    assert!(cdr.duration_ms >= 11_000, "{cdr:?}");
    node.stop().await;
}

/// Waits until sipp has received BYEs for `count` calls; returns when.
async fn wait_for_byes(sipp: &Sipp, count: usize, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if sipp.received_requests("BYE").len() >= count {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_end_cleanly_while_another_call_carries_on() {
    // Real-time browsers beside each other starve on two cores.
    let _turn = SPEECH_TURNS.lock().await;
    let sink = EchoSink::start(TELEPHONE_EVENT);
    // The aiortc call, a tab that is closed, a browser that is killed.
    let mut answer = answering_trunk("uas_media_sink_wait_bye.xml", &sink, 3);
    let mut busy = Sipp::uas("uas_busy.xml").spawn();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let others = format!(
        "[[sip.trunks]]\nname = \"busy\"\naddress = \"{}\"\n\
         [[sip.trunks]]\nname = \"silent\"\naddress = \"{}\"\n\
         [[sip.routes]]\nname = \"busy\"\ntrunks = [\"busy\"]\n\
         [[sip.routes]]\nname = \"silent\"\ntrunks = [\"silent\"]\n",
        busy.sip_addr(),
        silent.local_addr().unwrap()
    );
    let node = RunningNode::start(
        17000..=17499,
        &trunks(answer.sip_addr(), &others),
        &[("CALLGATE_SIP_INVITE_TIMEOUT_SECS", "2")],
    )
    .await;
    node.add_widget("busy", "busy").await;
    node.add_widget("silent", "silent").await;

    // The call that must carry on undisturbed.
    let play = speech_wav_48k(SPEECH);
    let recorded = node.data.path().join("steady.wav");
    let steady = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec("pcmu")
        .seconds(40.0)
        .record(&recorded)
        .spawn();
    steady.until_answered(WAIT);

    // Bad requests beside it: clear errors, no call started.
    let calls = "/v1/widgets/demo/calls";
    let origin = node.base();
    let no_audio = serde_json::json!({ "offer": "v=0\r\ns=-\r\n" }).to_string();
    let garbage = vec![b'x'; 1 << 20];
    for (body, from, status) in [
        (no_audio.as_bytes(), origin.as_str(), 400),
        (&garbage[..], origin.as_str(), 413),
        (no_audio.as_bytes(), "https://evil.example", 403),
    ] {
        let (got, reply) = support::node::http(node.addr, "POST", calls, Some(from), body);
        assert_eq!(got, status, "{reply}");
    }
    assert_eq!(
        support::node::metric(node.addr, "callgate_calls_started_total"),
        1.0
    );

    let browser = Browser::start(&play).await;
    browser.goto(&format!("{}/demo", node.base())).await;

    // A busy callee: the widget says so, the CDR says busy.
    browser.embed_widget("busy").await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("ended", WAIT).await;
    assert_eq!(browser.widget_reason().await.as_deref(), Some("busy"));
    assert!(browser.widget_status().await.contains("busy"));
    busy.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);

    // A trunk that never answers: the call fails as unreachable.
    browser.embed_widget("silent").await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("ended", WAIT).await;
    assert_eq!(
        browser.widget_reason().await.as_deref(),
        Some("unreachable")
    );

    // A tab closed mid-call: the trunk gets its BYE.
    let first_tab = browser.open_tab().await;
    browser.goto(&format!("{}/demo", node.base())).await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", WAIT).await;
    let closed = Instant::now();
    browser.close_tab(first_tab).await;
    let bye = wait_for_byes(&answer, 1, Duration::from_secs(30)).await;
    let bye = bye.unwrap_or_else(|| panic!("no BYE after the tab closed\n{}", answer.report()));
    println!("BYE {:?} after the tab closed", bye - closed);

    // A browser that vanishes without a word: no pagehide, no DTLS alert,
    // only silence. The disconnect timeout (15 s) hangs up.
    browser.goto(&format!("{}/demo", node.base())).await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", WAIT).await;
    let killed = Instant::now();
    drop(browser);
    let bye = wait_for_byes(&answer, 2, Duration::from_secs(30)).await;
    let bye =
        bye.unwrap_or_else(|| panic!("no BYE after the browser vanished\n{}", answer.report()));
    println!("BYE {:?} after the browser vanished", bye - killed);

    // Meanwhile the steady call went on: its audio came back and nothing
    // was lost between the node and the trunk.
    let outcome = steady.wait_async().await;
    answer.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    assert_eq!(outcome.ended_reason().as_deref(), Some("completed"));
    let echo = outcome.recorded.clone().expect("a recording");
    let score = similarity(&speech_8k(), &echo);
    assert!(score.score >= SAME_SPEECH_MIN, "steady echo: {score:?}");
    let arrived = sink.stop();
    let streams = streams(&arrived);
    // The steady call's stream is the longest; the browsers' calls were
    // short or silent (a vanished browser sends nothing).
    let steady_stream = streams
        .iter()
        .max_by_key(|s| s.len())
        .expect("the steady call reached the callee");
    assert!(
        steady_stream.len() > 1_500,
        "{} packets",
        steady_stream.len()
    );
    assert_eq!(lost_packets(steady_stream), 0, "steady call lost packets");

    let cdrs = node.wait_for_cdrs(5).await;
    let by_widget = |w: &str| -> Vec<_> { cdrs.iter().filter(|c| c.widget_id == w).collect() };
    let busy_cdr = by_widget("busy")[0];
    assert_eq!(
        (busy_cdr.disposition.as_str(), busy_cdr.sip_code),
        ("busy", Some(486))
    );
    assert_eq!(
        (busy_cdr.sip_reason.as_deref(), busy_cdr.q850_cause),
        (Some("Subscriber [redacted] Busy"), Some(17)),
        "the trunk's reason, without the callee's number"
    );
    let silent_cdr = by_widget("silent")[0];
    assert_eq!(silent_cdr.disposition.as_str(), "unreachable");
    let demo: Vec<_> = by_widget("demo");
    assert_eq!(demo.len(), 3);
    assert!(demo.iter().all(|c| c.disposition.as_str() == "answered"));
    assert!(demo.iter().all(|c| c.ended_by.as_str() == "visitor"));
    node.stop().await;
}
