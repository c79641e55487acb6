//! A panic is contained. One in a call's control task or in its media on a
//! shard ends that call alone, as failed, with its CDR and its `call.ended`
//! webhook, while a call beside it on the same shard carries on and hears
//! its echo. One in a core task (a media shard's thread, the SIP
//! dispatcher, the webhook worker) turns the node unready and stops it
//! with an error that names the task, never leaving it half-alive.
//!
//! The panics are set off with fail points: this file needs the
//! `failpoints` feature, which the test script builds with. Fail points
//! are global to the process, so each test holds the scenario lock.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use callgate::config::Config;
use callgate::metrics::Metrics;
use callgate::node::Node;
use fail::FailScenario;
use serde_json::json;
use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::{similarity, speech_pcm_8k, speech_wav_48k};
use support::node::{OFFER, RunningNode, metric, node_config, placed_call_at};
use tokio_util::sync::CancellationToken;

const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";
const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";

/// One call panics (`failpoint`, set off by its keypad digit) while
/// another shares its shard.
async fn one_call_panics(failpoint: &str, part: &str, media: RangeInclusive<u16>) {
    let scenario = FailScenario::setup();
    let node = RunningNode::start(media, ECHO_ROUTE, &[("CALLGATE_WEBRTC_SHARDS", "1")]).await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let hook = json!({ "url": "https://hooks.example.com/callgate" });
    api.expect("PUT", "/v1/webhook", hook, 200);
    node.add_widget("victim", "demo").await;
    fail::cfg(failpoint, "panic").unwrap();

    let play = speech_wav_48k(SPEECH);
    let heard = node.data.path().join("bystander.wav");
    let bystander = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .seconds(7.0)
        .record(&heard)
        .spawn();
    let answered = bystander.wait_for_event(Duration::from_secs(15), |event| {
        event["type"] == "state" && event["state"] == "answered"
    });
    assert!(answered.is_some(), "the bystander's call was answered");
    let victim = AiortcCall::new(&node.base(), "victim", &node.base(), &play)
        .seconds(5.0)
        .dtmf("5")
        .spawn()
        .wait_async()
        .await;
    assert_eq!(
        victim.ended_reason().as_deref(),
        Some("failed"),
        "the call that panicked ends as failed, at once:\n{}",
        victim.report()
    );

    let bystander = bystander.wait_async().await;
    assert_eq!(bystander.code, Some(0), "{}", bystander.report());
    assert_eq!(
        bystander.ended_reason().as_deref(),
        Some("completed"),
        "the other call carries on to its own end:\n{}",
        bystander.report()
    );
    let received = bystander.recorded.clone().expect("the bystander's audio");
    let echo = similarity(&speech_pcm_8k(SPEECH), &received);
    assert!(echo.score >= 0.8, "the bystander heard its echo: {echo:?}");

    let failed = node.cdr_of_widget("victim").await;
    assert_eq!(failed.disposition.as_str(), "failed", "{failed:?}");
    assert_eq!(failed.ended_by.as_str(), "node", "{failed:?}");
    let completed = node.cdr_of_widget("demo").await;
    assert_eq!(completed.disposition.as_str(), "answered", "{completed:?}");
    assert_eq!(completed.ended_by.as_str(), "visitor", "{completed:?}");
    let deliveries = node.store().await.webhook_deliveries("demo").await.unwrap();
    assert!(
        deliveries
            .iter()
            .any(|d| d.body.contains(failed.call_id.as_str())),
        "the failed call's call.ended webhook is queued"
    );
    let panics = format!("callgate_call_panics_total{{part=\"{part}\"}}");
    assert_eq!(metric(node.addr, &panics), 1.0);
    assert_eq!(metric(node.addr, "callgate_calls_active"), 0.0);
    fail::remove(failpoint);
    node.stop().await;
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_a_calls_control_ends_that_call_alone_as_failed() {
    one_call_panics("call-control-dtmf", "control", 27400..=27449).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_a_calls_media_ends_that_call_alone_as_failed() {
    one_call_panics("media-shard-dtmf", "media", 27450..=27499).await;
}

/// What sets a core task's fail point off.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A call placed: its media goes to a shard, which wakes.
    Call,
    /// An OPTIONS request to the node's SIP port.
    SipOptions,
    /// Nothing: the task wakes on its own within a few seconds.
    Time,
}

struct CoreRow {
    failpoint: &'static str,
    trigger: Trigger,
    /// What the node's error names.
    part: &'static str,
}

const CORE_ROWS: &[CoreRow] = &[
    CoreRow {
        failpoint: "media-shard-turn",
        trigger: Trigger::Call,
        part: "media shard",
    },
    CoreRow {
        failpoint: "sip-dispatch",
        trigger: Trigger::SipOptions,
        part: "sip dispatcher",
    },
    CoreRow {
        failpoint: "webhook-worker",
        trigger: Trigger::Time,
        part: "webhook worker",
    },
];

fn options_request(to: SocketAddr, from: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-panics-1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{from}>;tag=panics\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: panics-1@{from}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_core_task_that_panics_stops_the_node_with_an_error_that_names_it() {
    let scenario = FailScenario::setup();
    for row in CORE_ROWS {
        let data = tempfile::tempdir().unwrap();
        let text = node_config(
            data.path(),
            "listen = \"127.0.0.1:0\"",
            27300..=27399,
            ECHO_ROUTE,
        );
        let config = Config::load(Some(&text), Vec::new()).expect("test config");
        let sip = config.sip.listen_udp;
        let node = Node::start(config, Arc::new(Metrics::new().expect("a registry")))
            .await
            .expect("node starts");
        let (addr, readiness) = (node.http_addr(), node.readiness().clone());
        let running = tokio::spawn(node.run_until(CancellationToken::new()));
        assert!(readiness.is_ready());

        fail::cfg(row.failpoint, "panic").unwrap();
        match row.trigger {
            Trigger::Call => {
                placed_call_at(addr, &format!("http://{addr}"), OFFER);
            }
            Trigger::SipOptions => {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let request = options_request(sip, socket.local_addr().unwrap());
                socket.send_to(request.as_bytes(), sip).unwrap();
            }
            Trigger::Time => {}
        }
        let stopped = tokio::time::timeout(Duration::from_secs(20), running).await;
        let ended = stopped
            .unwrap_or_else(|_| panic!("{}: the node stops on its own", row.part))
            .expect("run_until returns");
        let error = ended.expect_err("the node reports the failure");
        assert!(
            error.to_string().contains(row.part),
            "the error names the {}: {error}",
            row.part
        );
        assert!(!readiness.is_ready(), "{}: the node is unready", row.part);
        fail::remove(row.failpoint);
    }
    scenario.teardown();
}
