//! [`Report`]: the run's figures, computed from its [`Measurements`] and
//! printed as human-readable lines or as one JSON object.
//!
//! - loss: measured packets (sent after a call's first echo) that never
//!   came back, over all calls;
//! - call setup: from sending the offer to the first echo (signalling,
//!   ICE, DTLS, the trunk's answer, one round trip);
//! - echo RTT: client → node → echo trunk → node → client, from the
//!   stamp in each echoed payload;
//! - relay latency: the node's own `callgate_relay_latency_seconds` over
//!   the steady windows, arrival on one leg to send on the other;
//! - load clock lag: how late the load's own sends left their 20 ms
//!   clocks in those windows; what a relay sees as a burst starts here;
//! - node CPU: user + system time over the steady windows, as a share of
//!   one core, in total and per call up, and per packet relayed (each
//!   direction counts);
//! - node memory: VmRSS growth from before the first call to the end of
//!   the last steady window, per call up in that window.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::Measurements;

/// See the module documentation. Figures that could not be measured (no
/// `--node-pid`, no observation) are `None` (`null` in JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    pub calls: u32,
    pub connected: u32,
    pub failed: u32,
    pub calls_with_echo: u32,
    /// Failure reason → how many calls failed so.
    pub failures: BTreeMap<String, u32>,
    pub packets_sent: u64,
    pub packets_echoed: u64,
    /// Echoes that were not the call's own or came twice (a replay the
    /// node let through would show here).
    pub echoes_foreign: u64,
    pub loss_percent: Option<f64>,
    pub setup_p50_ms: Option<f64>,
    pub setup_p99_ms: Option<f64>,
    pub echo_rtt_p50_ms: Option<f64>,
    pub echo_rtt_p99_ms: Option<f64>,
    pub relay_packets: u64,
    pub relay_to_trunk_p50_us: Option<f64>,
    pub relay_to_trunk_p99_us: Option<f64>,
    pub relay_to_browser_p50_us: Option<f64>,
    pub relay_to_browser_p99_us: Option<f64>,
    pub load_lag_p50_us: Option<f64>,
    pub load_lag_p99_us: Option<f64>,
    pub steady_seconds: f64,
    pub calls_up_in_window: u32,
    /// What the node counted in `callgate_calls_active` then.
    pub node_calls_active: Option<u32>,
    pub node_cpu_percent: Option<f64>,
    pub node_cpu_percent_per_call: Option<f64>,
    /// Node CPU time per packet relayed (each direction counts).
    pub node_cpu_us_per_packet: Option<f64>,
    pub node_rss_before_kib: Option<u64>,
    pub node_rss_during_kib: Option<u64>,
    pub node_memory_per_call_kib: Option<f64>,
    /// Junk datagrams sent by `--flood-pps` over the steady windows.
    pub flood_sent: Option<u64>,
}

impl Report {
    pub fn new(measured: &Measurements) -> Self {
        let outcomes = &measured.outcomes;
        let count = |f: fn(&crate::call::CallOutcome) -> bool| {
            u32::try_from(outcomes.iter().filter(|o| f(o)).count()).unwrap_or(u32::MAX)
        };
        let mut failures = BTreeMap::new();
        for reason in outcomes.iter().filter_map(|o| o.failure.as_ref()) {
            *failures.entry(reason.clone()).or_insert(0) += 1;
        }
        let packets_sent: u64 = outcomes.iter().map(|o| o.stats.sent_measured).sum();
        let packets_echoed: u64 = outcomes.iter().map(|o| o.stats.echoed_measured).sum();
        let echoes_foreign: u64 = outcomes.iter().map(|o| o.stats.foreign).sum();
        let loss_percent = (packets_sent > 0).then(|| {
            packets_sent.saturating_sub(packets_echoed) as f64 * 100.0 / packets_sent as f64
        });
        let mut rtts: Vec<u32> = outcomes
            .iter()
            .flat_map(|o| o.stats.rtt_us.iter().copied())
            .collect();
        let mut setups: Vec<u32> = outcomes
            .iter()
            .filter_map(|o| o.setup)
            .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
            .collect();
        let ms = |us: Option<u32>| us.map(|us| f64::from(us) / 1000.0);
        let us = |seconds: Option<f64>| seconds.map(|s| s * 1e6);
        let steady = measured.steady.as_secs_f64();
        let up = measured.last_round_up;
        let cpu_percent = measured
            .node_cpu
            .filter(|_| steady > 0.0)
            .map(|cpu| cpu.as_secs_f64() * 100.0 / steady);
        let relay_packets = measured
            .relayed
            .unwrap_or((measured.to_trunk.count + measured.to_browser.count) as u64);
        let cpu_per_packet = measured
            .node_cpu
            .filter(|_| relay_packets > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / relay_packets as f64);
        let rss_growth = match (measured.rss_before_kib, measured.rss_during_kib) {
            (Some(before), Some(during)) => Some(during as f64 - before as f64),
            _ => None,
        };
        Self {
            calls: u32::try_from(outcomes.len()).unwrap_or(u32::MAX),
            connected: count(|o| o.connected),
            failed: count(|o| o.failure.is_some()),
            calls_with_echo: count(|o| o.echoed),
            failures,
            packets_sent,
            packets_echoed,
            echoes_foreign,
            loss_percent,
            setup_p50_ms: ms(percentile(&mut setups, 0.50)),
            setup_p99_ms: ms(percentile(&mut setups, 0.99)),
            echo_rtt_p50_ms: ms(percentile(&mut rtts, 0.50)),
            echo_rtt_p99_ms: ms(percentile(&mut rtts, 0.99)),
            relay_packets,
            relay_to_trunk_p50_us: us(measured.to_trunk.quantile(0.50)),
            relay_to_trunk_p99_us: us(measured.to_trunk.quantile(0.99)),
            relay_to_browser_p50_us: us(measured.to_browser.quantile(0.50)),
            relay_to_browser_p99_us: us(measured.to_browser.quantile(0.99)),
            load_lag_p50_us: us(measured.load_lag.quantile(0.50)),
            load_lag_p99_us: us(measured.load_lag.quantile(0.99)),
            steady_seconds: steady,
            calls_up_in_window: up,
            node_calls_active: measured.node_calls_active,
            node_cpu_percent: cpu_percent,
            node_cpu_percent_per_call: cpu_percent.filter(|_| up > 0).map(|c| c / f64::from(up)),
            node_cpu_us_per_packet: cpu_per_packet,
            node_rss_before_kib: measured.rss_before_kib,
            node_rss_during_kib: measured.rss_during_kib,
            node_memory_per_call_kib: rss_growth.filter(|_| up > 0).map(|g| g / f64::from(up)),
            flood_sent: measured.flood_sent,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "calls        {} placed, {} connected, {} failed, {} echoed audio",
            self.calls, self.connected, self.failed, self.calls_with_echo
        );
        for (reason, n) in &self.failures {
            let _ = writeln!(out, "  failed     {n} × {reason}");
        }
        let _ = writeln!(
            out,
            "packets      {} sent, {} echoed, loss {} (counted from each call's first echo), {} foreign or twice",
            self.packets_sent,
            self.packets_echoed,
            figure(self.loss_percent, 3, " %"),
            self.echoes_foreign
        );
        if let Some(sent) = self.flood_sent {
            let _ = writeln!(
                out,
                "flood        {sent} junk datagrams at the browser ports"
            );
        }
        let _ = writeln!(
            out,
            "call setup   p50 {}, p99 {} (offer sent to first echo)",
            figure(self.setup_p50_ms, 1, " ms"),
            figure(self.setup_p99_ms, 1, " ms")
        );
        let _ = writeln!(
            out,
            "echo RTT     p50 {}, p99 {} (client → node → echo trunk → node → client)",
            figure(self.echo_rtt_p50_ms, 2, " ms"),
            figure(self.echo_rtt_p99_ms, 2, " ms")
        );
        let _ = writeln!(
            out,
            "node relay   to trunk p50 {}, p99 {}; to browser p50 {}, p99 {} \
             ({} packets in {:.1} s steady, from /metrics)",
            figure(self.relay_to_trunk_p50_us, 0, " µs"),
            figure(self.relay_to_trunk_p99_us, 0, " µs"),
            figure(self.relay_to_browser_p50_us, 0, " µs"),
            figure(self.relay_to_browser_p99_us, 0, " µs"),
            self.relay_packets,
            self.steady_seconds
        );
        if self.load_lag_p50_us.is_some() {
            let _ = writeln!(
                out,
                "load clock   sends left their 20 ms clocks p50 {}, p99 {} late (the load's own bunching)",
                figure(self.load_lag_p50_us, 0, " µs"),
                figure(self.load_lag_p99_us, 0, " µs")
            );
        }
        let _ = writeln!(
            out,
            "node CPU     {} of one core with {} calls up (node counts {} active), {} per call, {} per relayed packet",
            figure(self.node_cpu_percent, 1, " %"),
            self.calls_up_in_window,
            figure(self.node_calls_active.map(f64::from), 0, ""),
            figure(self.node_cpu_percent_per_call, 3, " %"),
            figure(self.node_cpu_us_per_packet, 2, " µs")
        );
        let _ = writeln!(
            out,
            "node memory  VmRSS {} before, {} during, {} per call",
            figure(self.node_rss_before_kib.map(mib), 1, " MiB"),
            figure(self.node_rss_during_kib.map(mib), 1, " MiB"),
            figure(self.node_memory_per_call_kib, 1, " KiB")
        );
        out
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn figure(value: Option<f64>, decimals: usize, unit: &str) -> String {
    match value {
        Some(value) => format!("{value:.decimals$}{unit}"),
        None => "n/a".to_owned(),
    }
}

/// The `q` quantile by rank (nearest rank), `None` for no samples.
fn percentile(samples: &mut [u32], q: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    let (_, value, _) = samples.select_nth_unstable(rank - 1);
    Some(*value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallOutcome;
    use crate::echo::EchoStats;
    use std::time::Duration;

    fn call(sent: u64, echoed: u64, rtt: &[u32]) -> CallOutcome {
        CallOutcome {
            connected: true,
            echoed: echoed > 0,
            setup: Some(Duration::from_millis(250)),
            failure: None,
            stats: EchoStats {
                sent_total: sent + 5,
                sent_measured: sent,
                echoed_measured: echoed,
                rtt_us: rtt.to_vec(),
                foreign: 0,
            },
        }
    }

    #[test]
    fn figures_add_up_over_calls_and_per_call_shares_use_the_calls_up() {
        let mut failed = CallOutcome {
            failure: Some("ICE or DTLS failed".to_owned()),
            ..CallOutcome::default()
        };
        failed.stats.sent_total = 0;
        let measured = Measurements {
            outcomes: vec![
                call(100, 100, &[1000; 100]),
                call(100, 98, &[3000; 98]),
                failed,
            ],
            steady: Duration::from_secs(10),
            node_cpu: Some(Duration::from_secs(2)),
            rss_before_kib: Some(10_000),
            rss_during_kib: Some(10_200),
            last_round_up: 2,
            relayed: Some(400_000),
            ..Measurements::default()
        };
        let report = Report::new(&measured);
        assert_eq!(report.relay_packets, 400_000);
        assert_eq!(report.node_cpu_us_per_packet, Some(5.0));
        assert_eq!((report.calls, report.connected, report.failed), (3, 2, 1));
        assert_eq!(report.calls_with_echo, 2);
        assert_eq!(report.failures.get("ICE or DTLS failed"), Some(&1));
        assert_eq!((report.packets_sent, report.packets_echoed), (200, 198));
        assert_eq!(report.loss_percent, Some(1.0));
        assert_eq!(report.echo_rtt_p50_ms, Some(1.0));
        assert_eq!(report.echo_rtt_p99_ms, Some(3.0));
        assert_eq!(report.setup_p50_ms, Some(250.0));
        assert_eq!(report.node_cpu_percent, Some(20.0));
        assert_eq!(report.node_cpu_percent_per_call, Some(10.0));
        assert_eq!(report.node_memory_per_call_kib, Some(100.0));
        assert_eq!(report.relay_to_trunk_p50_us, None);
        let text = report.to_text();
        assert!(text.contains("loss 1.000 %"), "{text}");
        assert!(text.contains("1 × ICE or DTLS failed"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["calls_with_echo"], 2);
        assert!(json["relay_to_browser_p99_us"].is_null());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut samples, 0.5), Some(50));
        assert_eq!(percentile(&mut samples, 0.99), Some(99));
        assert_eq!(percentile(&mut [], 0.5), None);
    }
}
