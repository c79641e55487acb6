//! Browser calls end to end: a whole node (signalling, the shared WebRTC
//! port, the relay, the built-in echo trunk, the store) started in-process,
//! called by real WebRTC clients: headless Chromium on the demo page and
//! aiortc through the same contract.

mod support;

use std::time::Duration;

use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::{similarity, similarity_coarse, speech_pcm_8k, speech_wav_48k};
use support::browser::{Browser, decode_with_ffmpeg};
use support::coturn::{self, Coturn};
use support::node::{OFFER, RunningNode, http, metric};

/// Trunk media ports of this file's nodes.
const MEDIA_PORTS: std::ops::RangeInclusive<u16> = 14000..=14999;
const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";

async fn echo_node() -> RunningNode {
    RunningNode::start(MEDIA_PORTS, ECHO_ROUTE, &[]).await
}

/// An echo node of its own (media ports `media`) with one setting changed.
async fn echo_node_with(
    media: std::ops::RangeInclusive<u16>,
    setting: &str,
    value: &str,
) -> RunningNode {
    RunningNode::start(media, ECHO_ROUTE, &[(setting, value)]).await
}

const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";

fn speech_8k() -> Vec<i16> {
    speech_pcm_8k(SPEECH)
}

async fn aiortc_echo(codec: &str) {
    let node = echo_node().await;
    let play = speech_wav_48k(SPEECH);
    let out = node.data.path().join(format!("received-{codec}.wav"));
    let outcome = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec(codec)
        .seconds(6.0)
        .record(&out)
        .spawn()
        .wait_async()
        .await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    assert_eq!(
        outcome.states(),
        ["answered", "ended"],
        "{}",
        outcome.report()
    );
    assert_eq!(outcome.ended_reason().as_deref(), Some("completed"));
    let received = outcome.recorded.clone().expect("a recording");
    let score = match codec {
        "opus" => similarity_coarse(&speech_8k(), &received),
        _ => similarity(&speech_8k(), &received),
    };
    assert!(
        score.score >= 0.8,
        "the echo is the speech sent ({codec}): {score:?}"
    );
    let store = node.store().await;
    let cdrs = store.cdrs_for_tenant("demo", 10).await.unwrap();
    assert_eq!(cdrs.len(), 1, "one CDR for one call");
    let cdr = &cdrs[0];
    assert_eq!(cdr.disposition.as_str(), "answered");
    assert_eq!(cdr.ended_by.as_str(), "visitor");
    assert_eq!(cdr.trunk.as_deref(), Some("echo"));
    let browser_codec = if codec == "opus" { "opus" } else { "PCMU" };
    assert_eq!(cdr.browser_codec.as_deref(), Some(browser_codec));
    assert!(cdr.duration_ms >= 5_000, "{cdr:?}");
    assert!(cdr.browser_stats.packets_received > 200, "{cdr:?}");
    assert_eq!(cdr.visitor_network.as_deref(), Some("127.0.0.0/24"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aiortc_pcmu_call_hears_its_own_speech_and_leaves_a_cdr() {
    aiortc_echo("pcmu").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aiortc_opus_only_call_is_transcoded_both_ways() {
    aiortc_echo("opus").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_on_the_demo_page_hears_the_echo_and_hangs_up() {
    let node = echo_node().await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    browser.goto(&format!("{}/demo", node.base())).await;
    browser.disable_audio_processing().await;
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_widget_state("answered", Duration::from_secs(20))
        .await;
    browser.start_recording_remote_audio().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let webm = browser.stop_recording().await;
    // 100 packets: 2 s of the 5 s, however starved the browser was.
    browser.audio_packets().await.assert_echoed(100);
    let heard = decode_with_ffmpeg(&webm);
    let rms = (heard.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
        / heard.len().max(1) as f64)
        .sqrt();
    assert!(rms > 300.0, "speech, not silence, came back (rms {rms:.0})");
    browser.click(".cg-widget .cg-hangup").await;
    browser
        .wait_widget_state("ended", Duration::from_secs(20))
        .await;
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].disposition.as_str(), "answered");
    assert_eq!(cdrs[0].ended_by.as_str(), "visitor");
    assert!(cdrs[0].answered_at_ms.is_some());
    assert!(cdrs[0].ended_at_ms >= cdrs[0].answered_at_ms.unwrap_or(i64::MAX));
    // The visitor is shown the call's privacy reference, the one its CDR
    // can be found by.
    let shown = browser
        .eval("return document.querySelector('.cg-widget .cg-privacy').textContent")
        .await;
    let reference = cdrs[0]
        .privacy_ref
        .clone()
        .expect("the CDR has a privacy reference");
    assert_eq!(
        shown.as_str(),
        Some(format!("Privacy reference for this call: {reference}").as_str())
    );
    browser.close().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_leave_no_call() {
    let node = echo_node().await;
    let addr = node.addr;
    let origin = node.base();
    let calls = "/v1/widgets/demo/calls";
    let offer = |sdp: &str| serde_json::json!({ "offer": sdp, "consent": null }).to_string();
    let cases = [
        (offer("v=0\r\ns=-\r\n"), "no audio section"),
        (
            offer(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=rtpmap:0 PCMU/8000\r\n",
            ),
            "no DTLS fingerprint",
        ),
        (
            offer(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 AA\r\na=rtpmap:0 PCMU/8000\r\n",
            ),
            "no ICE credentials",
        ),
        ("{\"offer\": 5}".to_owned(), "offer"),
        (
            "{\"offer\": \"v=0\", \"callee\": \"+1555\"}".to_owned(),
            "callee",
        ),
    ];
    for (body, expected) in cases {
        let (status, reply) = http(addr, "POST", calls, Some(&origin), body.as_bytes());
        assert_eq!(status, 400, "{expected}: {reply}");
        assert!(reply.contains(expected), "{expected}: {reply}");
    }
    let (status, reply) = http(addr, "POST", calls, Some(&origin), &vec![b'x'; 1 << 20]);
    assert_eq!(
        (status, reply.as_str()),
        (
            413,
            r#"{"error":"request body is larger than 65536 bytes"}"#
        )
    );
    let (status, reply) = http(
        addr,
        "POST",
        calls,
        Some("https://evil.example"),
        offer("v=0").as_bytes(),
    );
    assert_eq!(status, 403, "{reply}");
    let (status, _) = http(
        addr,
        "POST",
        "/v1/widgets/nope/calls",
        Some(&origin),
        offer("v=0").as_bytes(),
    );
    assert_eq!(status, 404);
    assert_eq!(metric(addr, "callgate_calls_started_total"), 0.0);
    assert_eq!(metric(addr, "callgate_calls_active"), 0.0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_the_per_ip_limit_is_refused_with_429() {
    let node = echo_node_with(
        15000..=15999,
        "CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP",
        "3",
    )
    .await;
    let body = serde_json::json!({ "offer": "v=0" }).to_string();
    let statuses: Vec<u16> = (0..5)
        .map(|_| node.post_demo_call(body.as_bytes()).0)
        .collect();
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_over_the_tenant_limit_are_refused_until_one_ends() {
    let node = echo_node_with(
        13000..=13999,
        "CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT",
        "1",
    )
    .await;
    let addr = node.addr;
    let body = serde_json::json!({ "offer": OFFER, "consent": null }).to_string();
    let place = || node.post_demo_call(body.as_bytes());
    let (status, reply) = place();
    assert_eq!(status, 201, "{reply}");
    let first: serde_json::Value = serde_json::from_str(&reply).unwrap();

    let (status, reply) = place();
    assert_eq!(status, 429, "the tenant's second call: {reply}");
    assert_eq!(metric(addr, "callgate_calls_active"), 1.0);
    assert_eq!(metric(addr, "callgate_calls_started_total"), 1.0);

    let hangup = format!(
        "/v1/calls/{}?token={}",
        first["call_id"].as_str().unwrap(),
        first["token"].as_str().unwrap()
    );
    let (status, reply) = http(addr, "DELETE", &hangup, None, b"");
    assert_eq!(status, 204, "{reply}");
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(cdrs[0].ended_by.as_str(), "visitor");

    // The permit is released with the call: the next one gets through.
    let (status, reply) = place();
    assert_eq!(status, 201, "a call after the first ended: {reply}");
    node.stop().await;
}

/// The widget config's ICE servers, as the node hands them to a browser.
fn ice_servers(node: &RunningNode) -> serde_json::Value {
    let path = "/v1/widgets/demo/config";
    let (status, config) = http(node.addr, "GET", path, Some(&node.base()), b"");
    assert_eq!(status, 200, "{config}");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["ice_servers"].clone()
}

/// Whether Chromium gathers a relay candidate from the TURN server at
/// `url` with `username` and `credential`: coturn allocates only for a
/// credential it accepts.
async fn gathers_relay_candidate(
    browser: &Browser,
    url: &str,
    username: &str,
    credential: &str,
) -> bool {
    let server = serde_json::json!({ "urls": url, "username": username, "credential": credential });
    let script = format!(
        "const pc = new RTCPeerConnection({{ iceServers: [{server}], iceTransportPolicy: 'relay' }});
         pc.addTransceiver('audio');
         let relay = false;
         pc.onicecandidate = (e) => {{ if (e.candidate && / relay /.test(e.candidate.candidate)) relay = true; }};
         pc.createOffer().then((o) => pc.setLocalDescription(o));
         setTimeout(() => {{ pc.close(); done(relay); }}, 4000);"
    );
    browser.eval_async(&script).await.as_bool() == Some(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_behind_a_turn_relay_reaches_the_node_with_credentials_that_expire() {
    let turn = Coturn::start();
    let extra = format!(
        "{ECHO_ROUTE}[[webrtc.ice_servers]]\nurls = [\"{}\"]\nauth_secret_env = \"TURN_SECRET\"\n",
        turn.url(),
    );
    let env = [("TURN_SECRET", coturn::AUTH_SECRET)];
    let node = RunningNode::start(MEDIA_PORTS, &extra, &env).await;

    // Each config carries a credential of its own, valid for 10 minutes.
    let (first, second) = (ice_servers(&node), ice_servers(&node));
    assert_eq!(first[0]["urls"][0].as_str(), Some(turn.url().as_str()));
    let username = first[0]["username"].as_str().expect("a TURN username");
    let (expiry, _opaque) = username.split_once(':').expect("EXPIRY:OPAQUE");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().expect("the expiry in Unix seconds");
    assert!((now + 590..=now + 610).contains(&expiry), "{username}");
    assert_ne!(first[0]["username"], second[0]["username"]);
    assert_ne!(first[0]["credential"], second[0]["credential"]);

    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    browser.goto(&format!("{}/demo", node.base())).await;
    // coturn refuses a credential whose time has passed, and takes a fresh one.
    let expired = callgate::webrtc::turn_rest::credential(
        coturn::AUTH_SECRET.as_bytes(),
        now - 60,
        "expired",
    );
    let url = turn.url();
    let refused =
        !gathers_relay_candidate(&browser, &url, &expired.username, &expired.credential).await;
    let fresh = ice_servers(&node);
    let fresh_username = fresh[0]["username"].as_str().unwrap();
    let fresh_credential = fresh[0]["credential"].as_str().unwrap();
    let accepted = gathers_relay_candidate(&browser, &url, fresh_username, fresh_credential).await;
    assert!(
        refused,
        "coturn refused the expired credential\n{}",
        turn.log()
    );
    assert!(
        accepted,
        "coturn accepted the fresh credential\n{}",
        turn.log()
    );

    browser.disable_audio_processing().await;
    browser.force_turn_relay().await;
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_widget_state("answered", Duration::from_secs(20))
        .await;
    // Echoed audio keeps coming back (about 50 packets a second); a loaded
    // machine may take longer than 3 s to pass 150, so poll up to 20 s.
    let mut inbound = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        inbound = browser.inbound_audio_packets().await;
        if inbound > 150 {
            break;
        }
    }
    let candidate = browser.selected_local_candidate_type().await;
    browser.click(".cg-widget .cg-hangup").await;
    browser
        .wait_widget_state("ended", Duration::from_secs(20))
        .await;
    browser.close().await;
    assert_eq!(
        candidate.as_deref(),
        Some("relay"),
        "the media went through the TURN relay\n{}",
        turn.log()
    );
    assert!(
        inbound > 150,
        "the echo came back through the relay: {inbound} packets"
    );
    assert!(
        turn.wait_for_relayed_session(Duration::from_secs(5)),
        "coturn relayed the call\n{}",
        turn.log()
    );
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(cdrs[0].disposition.as_str(), "answered");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_numbers_own_caps_hold_its_calls_at_once_and_its_minutes_a_day() {
    let node = RunningNode::start(17500..=17999, ECHO_ROUTE, &[]).await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let body = serde_json::json!({ "offer": OFFER, "consent": null }).to_string();
    let place = || node.post_demo_call(body.as_bytes());
    let hang_up = |call: &serde_json::Value| {
        let path = format!(
            "/v1/calls/{}?token={}",
            call["call_id"].as_str().unwrap(),
            call["token"].as_str().unwrap()
        );
        http(node.addr, "DELETE", &path, None, b"").0
    };

    // One call to the number at a time.
    let one_at_a_time = serde_json::json!({"limits": {"max_concurrent_calls": 1}});
    let shown = api.expect("PATCH", "/v1/numbers/demo", one_at_a_time, 200);
    assert_eq!(shown["limits"]["max_concurrent_calls"], 1);
    let (status, reply) = place();
    assert_eq!(status, 201, "{reply}");
    let first: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let (status, reply) = place();
    assert_eq!(status, 429, "{reply}");
    assert!(reply.contains("to this number"), "{reply}");
    assert_eq!(hang_up(&first), 204);
    node.wait_for_cdrs(1).await;

    // One minute a day, 58 s of which calls earlier today used: the next
    // call is ended by the node after about 2 s of talk.
    let one_minute = serde_json::json!({"limits": {"minutes_per_day": 1}});
    api.expect("PATCH", "/v1/numbers/demo", one_minute, 200);
    let store = node.store().await;
    let mut earlier = node.wait_for_cdrs(1).await.remove(0);
    earlier.call_id = "earlier-today".into();
    earlier.privacy_ref = None;
    earlier.created_at_ms = callgate::store::now_ms() - 1_000;
    earlier.duration_ms = 58_000 - earlier.duration_ms;
    store.insert_cdr(&earlier).await.unwrap();
    let (status, reply) = place();
    assert_eq!(status, 201, "{reply}");
    let cdrs = node.wait_for_cdrs(3).await;
    let capped = cdrs
        .iter()
        .find(|c| {
            c.call_id != "earlier-today"
                && c.answered_at_ms.is_some()
                && c.ended_by.as_str() == "node"
        })
        .unwrap_or_else(|| panic!("no call ended by the node: {cdrs:?}"));
    assert!(
        (1_000..=3_500).contains(&capped.duration_ms),
        "talked {} ms of the 2 s left",
        capped.duration_ms
    );

    // The minutes are used now: refused until midnight (UTC).
    let (status, reply) = place();
    assert_eq!(status, 429, "{reply}");
    assert!(reply.contains("used up"), "{reply}");
    let refused = "callgate_http_requests_refused_total{reason=\"daily_minutes\"}";
    assert_eq!(metric(node.addr, refused), 1.0);
    store.close().await;
    node.stop().await;
}
