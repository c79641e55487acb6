//! Browser calls end to end: a whole node (signalling, the shared WebRTC
//! port, the relay, the built-in echo trunk, the store) started in-process,
//! called by real WebRTC clients: headless Chromium on the demo page and
//! aiortc through the same contract.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use callgate::config::Config;
use callgate::node::Node;
use callgate::store::Store;
use tokio_util::sync::CancellationToken;

use support::aiortc::AiortcCall;
use support::audio::{similarity, similarity_opus, speech_ulaw, speech_wav_48k};
use support::browser::{Browser, decode_with_ffmpeg};
use support::ports::free_udp_port;

const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";

struct RunningNode {
    addr: SocketAddr,
    data: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let text = format!(
            "[node]\ndata_dir = {data:?}\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [sip]\nlisten_udp = \"127.0.0.1:{sip}\"\noptions_interval_secs = 0\n\
             [media]\nrtp_port_min = 14000\nrtp_port_max = 14999\n\
             [webrtc]\nlisten = \"127.0.0.1:{webrtc}\"\n\
             [limits]\ncalls_per_minute_per_ip = 1000\n\
             [echo_trunk]\nenabled = true\nlisten = \"127.0.0.1:{echo}\"\n\
             [[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n",
            data = data.path().display().to_string(),
            sip = free_udp_port(),
            webrtc = free_udp_port(),
            echo = free_udp_port(),
        );
        let config = Config::load(Some(&text), Vec::new()).expect("test config");
        let node = Node::start(config).await.expect("node starts");
        let addr = node.http_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            node.run_until(stop).await.expect("node drains cleanly");
        });
        Self {
            addr,
            data,
            shutdown,
            task,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn store(&self) -> Store {
        let url = format!(
            "sqlite://{}",
            self.data.path().join("callgate.db").display()
        );
        Store::open(&url).await.unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

/// One HTTP/1.1 request; returns the status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    origin: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{origin}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A refused oversized body may close the socket before all is written.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, body) = http(addr, "GET", "/metrics", None, b"");
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

fn speech_8k() -> Vec<i16> {
    speech_ulaw(SPEECH)
        .iter()
        .map(|&b| callgate::media::g711::decode_ulaw(b))
        .collect()
}

async fn aiortc_echo(codec: &str) {
    let node = RunningNode::start().await;
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
        "opus" => similarity_opus(&speech_8k(), &received),
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
    assert_eq!(cdr.disposition, "answered");
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
    let node = RunningNode::start().await;
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
    let inbound = browser.inbound_audio_packets().await;
    assert!(
        inbound > 150,
        "the browser received the echo: {inbound} packets"
    );
    let heard = decode_with_ffmpeg(&webm);
    let rms = (heard.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
        / heard.len().max(1) as f64)
        .sqrt();
    assert!(rms > 300.0, "speech, not silence, came back (rms {rms:.0})");
    browser.click(".cg-widget .cg-hangup").await;
    browser
        .wait_widget_state("ended", Duration::from_secs(20))
        .await;
    let store = node.store().await;
    let mut cdrs = Vec::new();
    for _ in 0..50 {
        cdrs = store.cdrs_for_tenant("demo", 10).await.unwrap();
        if !cdrs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].disposition, "answered");
    assert_eq!(cdrs[0].ended_by.as_str(), "visitor");
    assert!(cdrs[0].answered_at_ms.is_some());
    assert!(cdrs[0].ended_at_ms >= cdrs[0].answered_at_ms.unwrap_or(i64::MAX));
    browser.close().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_leave_no_call() {
    let node = RunningNode::start().await;
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
        (
            String::from_utf8_lossy(&vec![b'x'; 1 << 20]).into_owned(),
            "larger than",
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
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[node]\ndata_dir = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [sip]\nlisten_udp = \"127.0.0.1:{}\"\noptions_interval_secs = 0\n\
         [media]\nrtp_port_min = 15000\nrtp_port_max = 15999\n\
         [webrtc]\nlisten = \"127.0.0.1:{}\"\n[limits]\ncalls_per_minute_per_ip = 3\n\
         [echo_trunk]\nenabled = true\nlisten = \"127.0.0.1:{}\"\n\
         [[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n",
        data.path().display().to_string(),
        free_udp_port(),
        free_udp_port(),
        free_udp_port()
    );
    let node = Node::start(Config::load(Some(&text), Vec::new()).unwrap())
        .await
        .unwrap();
    let addr = node.http_addr();
    let origin = format!("http://{addr}");
    let body = serde_json::json!({ "offer": "v=0" }).to_string();
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            http(
                addr,
                "POST",
                "/v1/widgets/demo/calls",
                Some(&origin),
                body.as_bytes(),
            )
            .0
        })
        .collect();
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    node.run_until(shutdown).await.unwrap();
}
