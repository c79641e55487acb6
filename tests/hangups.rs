//! Every way a call can end, in every state of the trunk leg, ends it for
//! the visitor and frees its limits within a second, with the SIP the
//! trunk must see and the CDR that tells what happened.
//!
//! One table: each row is a trunk (a sipp scenario, which fails unless it
//! gets exactly the requests it expects: a CANCEL only once a provisional
//! response has come, a BYE for a 2xx that crossed our CANCEL, a BYE for an
//! answered call) and a way to end the call (the visitor hanging up over
//! the events socket or by DELETE, the browser going silent, the maximum
//! duration, the node shutting down). The visitor is a real WebRTC client
//! (aiortc) of a whole node.

mod support;

use std::time::{Duration, Instant};

use support::aiortc::{AiortcCall, AiortcOutcome, AiortcRun};
use support::audio::speech_wav_48k;
use support::node::{RunningNode, metric};
use support::sip_trace::Direction;
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};

/// How long an end may take to reach the visitor and free the call's
/// limits.
const PROMPT: Duration = Duration::from_secs(1);

/// How the call is made to end.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The visitor hangs up `seconds` after `when` (`connected`, `ringing`,
    /// `answered`), over the events socket or (`by_delete`) by the DELETE
    /// the widget sends when its page goes away.
    Visitor {
        when: &'static str,
        seconds: f64,
        by_delete: bool,
    },
    /// The browser vanishes once answered (its process killed): the node's
    /// disconnect timeout ends the call.
    BrowserGone,
    /// The call runs into the node's maximum duration.
    MaxDuration,
    /// The node shuts down once the trunk has the INVITE.
    Shutdown,
}

struct Row {
    name: &'static str,
    scenario: &'static str,
    ending: Ending,
    /// The request the trunk must get, exactly once; `None` when it can
    /// get nothing: an INVITE with no provisional response yet cannot be
    /// cancelled (RFC 3261 §9.1), and a node shutting down does not wait.
    trunk_gets: Option<&'static str>,
    disposition: &'static str,
    ended_by: &'static str,
}

const fn visitor(when: &'static str, seconds: f64, by_delete: bool) -> Ending {
    Ending::Visitor {
        when,
        seconds,
        by_delete,
    }
}

const ROWS: &[Row] = &[
    Row {
        name: "before any response, the trunk rings later",
        scenario: "uas_silent_then_ringing.xml",
        ending: visitor("connected", 0.5, false),
        trunk_gets: Some("CANCEL"),
        disposition: "cancelled",
        ended_by: "visitor",
    },
    Row {
        name: "after 100 Trying, the page goes away",
        scenario: "uas_trying_then_cancel.xml",
        ending: visitor("connected", 0.5, true),
        trunk_gets: Some("CANCEL"),
        disposition: "cancelled",
        ended_by: "visitor",
    },
    Row {
        name: "ringing",
        scenario: "uas_no_answer.xml",
        ending: visitor("ringing", 0.5, false),
        trunk_gets: Some("CANCEL"),
        disposition: "cancelled",
        ended_by: "visitor",
    },
    Row {
        name: "early media, the page goes away",
        scenario: "uas_early_media_then_cancel.xml",
        ending: visitor("ringing", 0.5, true),
        trunk_gets: Some("CANCEL"),
        disposition: "cancelled",
        ended_by: "visitor",
    },
    Row {
        name: "ringing, and the answer crosses the CANCEL",
        scenario: "uas_answer_crosses_cancel.xml",
        ending: visitor("ringing", 0.5, false),
        trunk_gets: Some("BYE"),
        disposition: "cancelled",
        ended_by: "visitor",
    },
    Row {
        name: "answered",
        scenario: "uas_answer_echo_bye_wait.xml",
        ending: visitor("answered", 1.0, false),
        trunk_gets: Some("BYE"),
        disposition: "answered",
        ended_by: "visitor",
    },
    Row {
        name: "on hold",
        scenario: "uas_hold_then_wait_bye.xml",
        ending: visitor("answered", 1.5, true),
        trunk_gets: Some("BYE"),
        disposition: "answered",
        ended_by: "visitor",
    },
    Row {
        name: "answered, the browser vanishes",
        scenario: "uas_answer_echo_bye_wait.xml",
        ending: Ending::BrowserGone,
        trunk_gets: Some("BYE"),
        disposition: "answered",
        ended_by: "visitor",
    },
    Row {
        name: "answered, up to the maximum duration",
        scenario: "uas_answer_echo_bye_wait.xml",
        ending: Ending::MaxDuration,
        trunk_gets: Some("BYE"),
        disposition: "answered",
        ended_by: "node",
    },
    Row {
        name: "after 100 Trying, the node shuts down",
        scenario: "uas_trying_then_cancel.xml",
        ending: Ending::Shutdown,
        trunk_gets: Some("CANCEL"),
        disposition: "cancelled",
        ended_by: "node",
    },
    Row {
        name: "before any response, the node shuts down",
        scenario: "uas_silent_then_ringing.xml",
        ending: Ending::Shutdown,
        trunk_gets: None,
        disposition: "cancelled",
        ended_by: "node",
    },
];

/// The shortest settings the node accepts, so the slow rows stay short.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CALL_DURATION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn every_hangup_ends_the_call_at_once_with_the_right_sip_and_cdr() {
    for row in ROWS {
        check_row(row).await;
    }
}

async fn check_row(row: &Row) {
    let name = row.name;
    let mut sipp = Sipp::uas(row.scenario).rtp_echo().spawn();
    let trunk = format!(
        "[[sip.trunks]]\nname = \"trunk\"\naddress = \"{}\"\n\
         [[sip.routes]]\nname = \"demo\"\ntrunks = [\"trunk\"]\n",
        sipp.sip_addr()
    );
    let limits = [
        (
            "CALLGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS",
            DISCONNECT_TIMEOUT.as_secs().to_string(),
        ),
        (
            "CALLGATE_SIP_MAX_CALL_DURATION_SECS",
            MAX_CALL_DURATION.as_secs().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = limits.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let node = RunningNode::start(26000..=26099, &trunk, &env).await;
    let store = node.store().await;

    let play = speech_wav_48k("Hello, I am calling about my order.");
    let client = AiortcCall::new(&node.base(), "demo", &node.base(), &play).codec("pcmu");
    match row.ending {
        Ending::Visitor {
            when,
            seconds,
            by_delete,
        } => {
            let client = client.hangup_at(when, seconds);
            let client = if by_delete {
                client.hangup_by_delete()
            } else {
                client
            };
            let outcome = client.spawn().wait_async().await;
            assert_eq!(outcome.code, Some(0), "{name}: {}", outcome.report());
            let took = ended_after_hangup(&outcome)
                .unwrap_or_else(|| panic!("{name}: no hangup or ended: {}", outcome.report()));
            assert!(
                took < PROMPT,
                "{name}: the visitor saw the end {took:?} after hanging up"
            );
            assert_limits_free_within(&node, PROMPT, name).await;
        }
        Ending::BrowserGone => {
            let mut run = client.hangup_at("answered", 60.0).spawn();
            wait_for_state(&run, "answered", name);
            run.kill();
            let gone = Instant::now();
            assert_limits_free_within(&node, DISCONNECT_TIMEOUT + PROMPT, name).await;
            assert!(
                gone.elapsed() >= DISCONNECT_TIMEOUT - PROMPT,
                "{name}: the call ended before the browser could be missed"
            );
        }
        Ending::MaxDuration => {
            let outcome = client
                .hangup_at("answered", 60.0)
                .spawn()
                .wait_async()
                .await;
            assert_eq!(outcome.code, Some(0), "{name}: {}", outcome.report());
            assert_limits_free_within(&node, PROMPT, name).await;
        }
        Ending::Shutdown => {
            let run = client.hangup_at("answered", 60.0).spawn();
            let invited = sipp.wait_for_message(Duration::from_secs(20), |m| {
                m.is_request("INVITE") && m.direction == Direction::Received
            });
            assert!(invited.is_some(), "{name}: the trunk never got the INVITE");
            // The INVITE leaves as the call is placed, before the visitor
            // opens its events socket; its first event (the recording
            // state) says it is open, so it can hear the end.
            let following =
                run.wait_for_event(Duration::from_secs(20), |e| e["type"] == "recording");
            assert!(
                following.is_some(),
                "{name}: the events socket never opened"
            );
            let stopping = Instant::now();
            let data = node.stop_keeping_data().await;
            let took = stopping.elapsed();
            assert!(
                took < Duration::from_secs(3),
                "{name}: the node took {took:?} to shut down"
            );
            let outcome = run.wait_async().await;
            assert_eq!(
                outcome.ended_reason().as_deref(),
                Some("cancelled"),
                "{name}: {}",
                outcome.report()
            );
            check_cdr(row, &store).await;
            check_trunk(row, &mut sipp);
            drop(data);
            return;
        }
    }
    check_cdr(row, &store).await;
    check_trunk(row, &mut sipp);
    node.stop().await;
}

/// Seconds from the client's hang-up to its receipt of `ended`.
fn ended_after_hangup(outcome: &AiortcOutcome) -> Option<Duration> {
    let hangup = outcome.local_at("hangup")?;
    let ended = outcome.local_at("ended")?;
    Some(Duration::from_secs_f64((ended - hangup).max(0.0)))
}

fn wait_for_state(run: &AiortcRun, state: &str, name: &str) {
    let seen = run.wait_for_event(Duration::from_secs(20), |e| {
        e["type"] == "state" && e["state"] == state
    });
    assert!(seen.is_some(), "{name}: the call never got to {state}");
}

/// The node holds no call (its tenant slot and the gauge are freed
/// together) within `limit`.
async fn assert_limits_free_within(node: &RunningNode, limit: Duration, name: &str) {
    let start = Instant::now();
    loop {
        let addr = node.addr;
        let active = tokio::task::spawn_blocking(move || metric(addr, "callgate_calls_active"))
            .await
            .unwrap();
        if active == 0.0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{name}: the call still held its limits {limit:?} after its end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check_cdr(row: &Row, store: &callgate::store::Store) {
    let name = row.name;
    let mut cdrs = Vec::new();
    for _ in 0..50 {
        cdrs = store.cdrs_for_tenant("demo", 10).await.unwrap();
        if !cdrs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cdrs.len(), 1, "{name}: one CDR: {cdrs:#?}");
    let cdr = &cdrs[0];
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by.as_str()),
        (row.disposition, row.ended_by),
        "{name}: {cdr:#?}"
    );
    if let Ending::MaxDuration = row.ending {
        let limit = MAX_CALL_DURATION.as_millis() as i64;
        assert!(
            (limit..limit + 1_000).contains(&cdr.duration_ms),
            "{name}: a call cut at {limit} ms lasted {} ms",
            cdr.duration_ms
        );
    }
}

/// The trunk's scenario ran to its end: it got what it waited for, and
/// exactly one of `trunk_gets`.
fn check_trunk(row: &Row, sipp: &mut Sipp) {
    let name = row.name;
    let Some(request) = row.trunk_gets else {
        assert!(
            sipp.received_requests("CANCEL").is_empty(),
            "{name}: a CANCEL before any provisional response: {}",
            sipp.report()
        );
        return;
    };
    sipp.expect_exit(Duration::from_secs(15), EXIT_ALL_CALLS_OK);
    let got = sipp.received_requests(request);
    assert_eq!(got.len(), 1, "{name}: {}", sipp.report());
}
