//! Call quality histograms: each leg's figures per closed quality window
//! (`crate::media::quality::WINDOW`), labelled by leg only, so the worst
//! few percent of calls show in a quantile without any per-call series.

use prometheus::{Histogram, HistogramOpts, HistogramVec, Registry};

use super::register::MetricsError;
use crate::media::quality::{HIGH_JITTER_MS, HIGH_LOSS, HIGH_RTT_MS, LOW_MOS, Leg, LegWindow};

/// MOS from bad (1) to excellent (4.5), finer where calls start to sound
/// poor; 3.5 is the visitor's warning.
pub(super) const MOS_BUCKETS: [f64; 10] = [1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4];
/// Loss as a fraction; 0.03 is the visitor's warning.
pub(super) const LOSS_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
/// Jitter in seconds; 30 ms is the visitor's warning.
pub(super) const JITTER_BUCKETS: [f64; 8] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1];
/// Round trip in seconds; 400 ms is the visitor's warning.
pub(super) const RTT_BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.8];

/// One leg's four histograms.
#[derive(Clone)]
struct LegHistograms {
    mos: Histogram,
    loss: Histogram,
    jitter: Histogram,
    rtt: Histogram,
}

/// The quality families, resolved once per leg.
#[derive(Clone)]
pub struct QualityMetrics {
    browser: LegHistograms,
    trunk: LegHistograms,
}

fn family(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let family = HistogramVec::new(opts, &["leg"])?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

impl QualityMetrics {
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let mos = family(
            registry,
            "callgate_call_quality_mos",
            "Estimated MOS (ITU-T G.107 E-model) of each leg per quality window.",
            &MOS_BUCKETS,
        )?;
        let loss = family(
            registry,
            "callgate_call_quality_loss_ratio",
            "Fraction of a leg's expected packets lost, per quality window.",
            &LOSS_BUCKETS,
        )?;
        let jitter = family(
            registry,
            "callgate_call_quality_jitter_seconds",
            "Interarrival jitter of what a leg sends us, per quality window.",
            &JITTER_BUCKETS,
        )?;
        let rtt = family(
            registry,
            "callgate_call_quality_rtt_seconds",
            "A leg's round trip from RTCP, per quality window where one is known.",
            &RTT_BUCKETS,
        )?;
        let leg = |leg: Leg| -> Result<LegHistograms, MetricsError> {
            let label = [leg.as_str()];
            Ok(LegHistograms {
                mos: mos.get_metric_with_label_values(&label)?,
                loss: loss.get_metric_with_label_values(&label)?,
                jitter: jitter.get_metric_with_label_values(&label)?,
                rtt: rtt.get_metric_with_label_values(&label)?,
            })
        };
        Ok(Self {
            browser: leg(Leg::Browser)?,
            trunk: leg(Leg::Trunk)?,
        })
    }

    /// One leg's closed window.
    pub fn observe(&self, leg: Leg, window: &LegWindow) {
        let histograms = match leg {
            Leg::Browser => &self.browser,
            Leg::Trunk => &self.trunk,
        };
        histograms.mos.observe(window.mos);
        histograms.loss.observe(window.loss);
        histograms.jitter.observe(window.jitter_ms / 1000.0);
        if let Some(rtt) = window.rtt_ms {
            histograms.rtt.observe(rtt / 1000.0);
        }
    }
}

// The warnings' thresholds are bucket bounds, so a dashboard can count
// the windows past each one exactly.
const _: () = {
    assert!(MOS_BUCKETS[4] == LOW_MOS);
    assert!(LOSS_BUCKETS[4] == HIGH_LOSS);
    assert!(JITTER_BUCKETS[5] == HIGH_JITTER_MS / 1000.0);
    assert!(RTT_BUCKETS[7] == HIGH_RTT_MS / 1000.0);
};
