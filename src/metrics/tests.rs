use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::sip::SipCounters;

const FAMILIES: [(&str, &str); 20] = [
    ("callgate_calls_active", "gauge"),
    ("callgate_node_draining", "gauge"),
    ("callgate_calls_started_total", "counter"),
    ("callgate_calls_ended_total", "counter"),
    ("callgate_packets_relayed_total", "counter"),
    ("callgate_packets_dropped_total", "counter"),
    ("callgate_relay_latency_seconds", "histogram"),
    ("callgate_relay_transcoded_latency_seconds", "histogram"),
    ("callgate_ice_failures_total", "counter"),
    ("callgate_dtls_failures_total", "counter"),
    ("callgate_http_requests_refused_total", "counter"),
    ("callgate_sip_responses_total", "counter"),
    ("callgate_sip_invites_sent_total", "counter"),
    ("callgate_sip_invite_timeouts_total", "counter"),
    ("callgate_sip_transport_errors_total", "counter"),
    ("callgate_sip_options_probe_failures_total", "counter"),
    ("callgate_sip_inbound_refused_total", "counter"),
    ("callgate_sip_unknown_sources_total", "counter"),
    ("callgate_sip_connections_refused_total", "counter"),
    ("callgate_sip_requests_shed_total", "counter"),
];

/// The value of one series line, e.g. `name{a="b"} 3`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Every label name in the output with the values it takes.
fn label_values(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, _)) = rest.split_once('}') else {
            continue;
        };
        for pair in labels.split(',') {
            let (name, value) = pair.split_once('=').unwrap();
            out.entry(name.to_owned())
                .or_default()
                .insert(value.trim_matches('"').to_owned());
        }
    }
    out
}

fn series_count(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn render_has_every_family_with_help_and_type() {
    let metrics = Metrics::new().unwrap();
    let text = metrics.render();
    for (name, kind) in FAMILIES {
        assert!(text.contains(&format!("# HELP {name} ")), "{name} help");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} type"
        );
    }
    // Every series exists at zero before the first event.
    assert_eq!(
        value(
            &text,
            r#"callgate_calls_ended_total{disposition="cancelled"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"callgate_sip_responses_total{class="6xx"}"#),
        Some(0.0)
    );
    let buckets = r#"callgate_relay_latency_seconds_bucket{direction="to_trunk",le="0.00001"}"#;
    assert_eq!(value(&text, buckets), Some(0.0));
}

#[test]
fn calls_are_counted_and_the_gauge_follows_the_guard() {
    let metrics = Metrics::new().unwrap();
    let first = metrics.call_started();
    let second = metrics.call_started();
    assert_eq!(metrics.calls.active(), 2);
    drop(first);
    metrics.call_ended(Disposition::Busy);
    assert_eq!(metrics.calls.active(), 1);
    drop(second);
    metrics.call_ended(Disposition::NoAnswer);
    let text = metrics.render();
    assert_eq!(value(&text, "callgate_calls_active"), Some(0.0));
    assert_eq!(value(&text, "callgate_calls_started_total"), Some(2.0));
    for (disposition, n) in [("busy", 1.0), ("no_answer", 1.0), ("answered", 0.0)] {
        let series = format!(r#"callgate_calls_ended_total{{disposition="{disposition}"}}"#);
        assert_eq!(value(&text, &series), Some(n), "{disposition}");
    }
    assert_eq!(metrics.calls.started(), 2);
    assert_eq!(metrics.calls.ended(Disposition::Busy), 1);
}

#[test]
fn every_disposition_has_its_own_series() {
    let metrics = Metrics::new().unwrap();
    for (i, d) in Disposition::ALL.into_iter().enumerate() {
        for _ in 0..=i {
            metrics.call_ended(d);
        }
    }
    let text = metrics.render();
    for (i, d) in Disposition::ALL.into_iter().enumerate() {
        let series = format!(r#"callgate_calls_ended_total{{disposition="{d}"}}"#);
        assert_eq!(value(&text, &series), Some(i as f64 + 1.0), "{d}");
    }
}

#[test]
fn relay_drop_and_refusal_handles_move_their_series() {
    let metrics = Metrics::new().unwrap();
    metrics.relay.browser_in.inc();
    metrics.relay.trunk_out.inc_by(3);
    metrics
        .relay
        .latency_to_trunk
        .observe(Duration::from_micros(30).as_secs_f64());
    metrics.drops.browser(BrowserDrop::QueueFull).inc();
    metrics.drops.trunk(DropReason::SrtpReplay).inc();
    metrics.ice_failures.inc();
    metrics.dtls_failures.inc();
    metrics.http_refused(RefusedReason::Origin);
    let text = metrics.render();
    let expect = [
        (
            r#"callgate_packets_relayed_total{direction="in",leg="browser"}"#,
            1.0,
        ),
        (
            r#"callgate_packets_relayed_total{direction="out",leg="trunk"}"#,
            3.0,
        ),
        (
            r#"callgate_packets_relayed_total{direction="out",leg="browser"}"#,
            0.0,
        ),
        (
            r#"callgate_relay_latency_seconds_bucket{direction="to_trunk",le="0.000025"}"#,
            0.0,
        ),
        (
            r#"callgate_relay_latency_seconds_bucket{direction="to_trunk",le="0.00005"}"#,
            1.0,
        ),
        (
            r#"callgate_relay_latency_seconds_count{direction="to_browser"}"#,
            0.0,
        ),
        (
            r#"callgate_packets_dropped_total{leg="browser",reason="queue_full"}"#,
            1.0,
        ),
        (
            r#"callgate_packets_dropped_total{leg="trunk",reason="srtp_replay"}"#,
            1.0,
        ),
        (
            r#"callgate_packets_dropped_total{leg="trunk",reason="srtp_auth"}"#,
            0.0,
        ),
        ("callgate_ice_failures_total", 1.0),
        ("callgate_dtls_failures_total", 1.0),
        (
            r#"callgate_http_requests_refused_total{reason="origin"}"#,
            1.0,
        ),
        (
            r#"callgate_http_requests_refused_total{reason="rate_limited"}"#,
            0.0,
        ),
    ];
    for (series, n) in expect {
        assert_eq!(value(&text, series), Some(n), "{series}");
    }
}

#[test]
fn trunk_drop_counts_are_added_reason_by_reason() {
    let metrics = Metrics::new().unwrap();
    let counts = DropCounts {
        not_rtp: 2,
        consumer_lagging: 5,
        ..DropCounts::default()
    };
    metrics.drops.add_trunk(&counts);
    metrics.drops.add_trunk(&counts);
    for reason in TRUNK_DROPS {
        assert_eq!(
            metrics.drops.trunk(reason).get(),
            2 * counts.get(reason),
            "{reason:?}"
        );
    }
}

#[test]
fn sip_counters_are_read_at_scrape_time() {
    let metrics = Metrics::new().unwrap();
    let counters = Arc::new(SipCounters::default());
    metrics.attach_sip(counters.clone());
    assert_eq!(
        value(&metrics.render(), "callgate_sip_invites_sent_total"),
        Some(0.0)
    );
    counters.invites_sent.fetch_add(4, Ordering::Relaxed);
    counters.responses_by_class[1].fetch_add(2, Ordering::Relaxed);
    counters.responses_by_class[5].fetch_add(1, Ordering::Relaxed);
    counters.invite_timeouts.fetch_add(1, Ordering::Relaxed);
    counters.transport_errors.fetch_add(3, Ordering::Relaxed);
    counters
        .options_probe_failures
        .fetch_add(6, Ordering::Relaxed);
    counters.inbound_refused.fetch_add(7, Ordering::Relaxed);
    let text = metrics.render();
    let expect = [
        ("callgate_sip_invites_sent_total", 4.0),
        (r#"callgate_sip_responses_total{class="2xx"}"#, 2.0),
        (r#"callgate_sip_responses_total{class="6xx"}"#, 1.0),
        (r#"callgate_sip_responses_total{class="4xx"}"#, 0.0),
        ("callgate_sip_invite_timeouts_total", 1.0),
        ("callgate_sip_transport_errors_total", 3.0),
        ("callgate_sip_options_probe_failures_total", 6.0),
        ("callgate_sip_inbound_refused_total", 7.0),
    ];
    for (series, n) in expect {
        assert_eq!(value(&text, series), Some(n), "{series}");
    }
}

#[test]
fn label_values_come_only_from_the_fixed_sets() {
    let metrics = Metrics::new().unwrap();
    let before = series_count(&metrics.render());
    // Drive every API that takes a label-bearing argument, with every value.
    for d in Disposition::ALL {
        metrics.call_ended(d);
    }
    for r in BrowserDrop::ALL {
        metrics.drops.browser(r).inc();
    }
    for r in TRUNK_DROPS {
        metrics.drops.trunk(r).inc();
    }
    metrics.drops.trunk_kernel().inc();
    for r in RefusedReason::ALL {
        metrics.http_refused(r);
    }
    for r in DeletionReason::ALL {
        metrics.recording.deleted(r);
    }
    for r in ConnectionRefusal::ALL {
        metrics.http.connection_refused(r);
    }
    for part in CallPart::ALL {
        metrics.call_panicked(part);
    }
    let text = metrics.render();
    assert_eq!(series_count(&text), before, "no series appeared on use");
    let set = |values: &[&str]| {
        values
            .iter()
            .map(|v| v.to_string())
            .collect::<BTreeSet<_>>()
    };
    let mut reasons: Vec<&str> = TRUNK_DROPS.into_iter().map(trunk_drop_label).collect();
    reasons.extend(BrowserDrop::ALL.map(BrowserDrop::as_str));
    reasons.extend(RefusedReason::ALL.map(RefusedReason::as_str));
    reasons.extend(DeletionReason::ALL.map(DeletionReason::as_str));
    reasons.extend(ConnectionRefusal::ALL.map(ConnectionRefusal::as_str));
    let dispositions: Vec<&str> = Disposition::ALL.map(Disposition::as_str).to_vec();
    let mut expected = BTreeMap::new();
    expected.insert("class".to_owned(), set(&CLASSES_FOR_TEST));
    expected.insert(
        "direction".to_owned(),
        set(&["in", "out", "to_browser", "to_trunk"]),
    );
    expected.insert("disposition".to_owned(), set(&dispositions));
    expected.insert("leg".to_owned(), set(&["browser", "trunk"]));
    let mut outcomes = vec!["delivered", "retry", "failed"];
    outcomes.extend(HandoffOutcome::ALL.map(HandoffOutcome::as_str));
    expected.insert("outcome".to_owned(), set(&outcomes));
    expected.insert("part".to_owned(), set(&CallPart::ALL.map(CallPart::as_str)));
    expected.insert("reason".to_owned(), set(&reasons));
    let mut found = label_values(&text);
    let buckets = found.remove("le").unwrap();
    use super::quality::{JITTER_BUCKETS, LOSS_BUCKETS, MOS_BUCKETS, RTT_BUCKETS};
    let bounds: BTreeSet<u64> = [
        &LATENCY_BUCKETS[..],
        &MOS_BUCKETS,
        &LOSS_BUCKETS,
        &JITTER_BUCKETS,
        &RTT_BUCKETS,
    ]
    .concat()
    .into_iter()
    .map(f64::to_bits)
    .collect();
    assert_eq!(buckets.len(), bounds.len() + 1, "+Inf included");
    assert_eq!(found, expected);
}

const CLASSES_FOR_TEST: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

#[test]
fn enum_order_matches_the_handle_arrays() {
    for (i, r) in BrowserDrop::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i, "{r:?}");
    }
    for (i, r) in RefusedReason::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i, "{r:?}");
    }
    for (i, r) in ConnectionRefusal::ALL.into_iter().enumerate() {
        assert_eq!(r as usize, i, "{r:?}");
    }
    for (i, r) in TRUNK_DROPS.into_iter().enumerate() {
        assert_eq!(trunk_drop_index(r), i, "{r:?}");
    }
    for (i, d) in Disposition::ALL.into_iter().enumerate() {
        assert_eq!(d as usize, i, "{d:?}");
    }
}

#[test]
fn two_nodes_in_one_process_do_not_share_series() {
    let a = Metrics::new().unwrap();
    let b = Metrics::new().unwrap();
    a.ice_failures.inc();
    assert_eq!(value(&b.render(), "callgate_ice_failures_total"), Some(0.0));
}
