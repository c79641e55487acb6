//! Call quality, pure: a leg's loss, jitter and round trip over a window,
//! the estimated MOS of that window by the ITU-T G.107 E-model, the tally
//! of a leg's windows for its record, and the warnings a visitor is shown.
//!
//! Invariants:
//! - Quality is judged per window ([`WINDOW`]), never cumulatively: a bad
//!   minute is not hidden by a good hour. A window in which nothing was
//!   expected on a leg (hold, before the answer) has no figure at all.
//! - A leg is judged by what we receive on it (loss and jitter, RFC 3550
//!   A.3 and A.8) and by its round trip from RTCP (§6.4.1). The far end's
//!   report of our stream is not used for loss or jitter: what we relay
//!   carries the other leg's gaps and timing, which would count twice.
//! - A warning is raised by one window past its threshold and cleared only
//!   after [`CLEAR_AFTER`] windows in a row within it, so a warning does
//!   not flicker at its threshold.

use std::time::Duration;

/// How long each judged window lasts.
pub const WINDOW: Duration = Duration::from_secs(5);
/// Good windows in a row before a raised warning clears.
pub const CLEAR_AFTER: u8 = 2;
/// Twilio's thresholds for its voice SDK warnings.
pub const HIGH_RTT_MS: f64 = 400.0;
pub const HIGH_JITTER_MS: f64 = 30.0;
pub const HIGH_LOSS: f64 = 0.03;
pub const LOW_MOS: f64 = 3.5;

/// G.107 defaults: R0 - Is for a narrowband connection with default
/// noise and loudness.
const R_DEFAULT: f64 = 93.2;
/// G.113 Appendix I: G.711 with packet loss concealment (Ie 0, Bpl 25.1).
/// Opus is judged on the same narrowband scale so that calls compare
/// across codecs; its concealment is at least as good.
const IE_CODEC: f64 = 0.0;
const BPL_CODEC: f64 = 25.1;
/// One 20 ms packet of audio waits to be filled before it is sent.
const PACKETISATION_MS: f64 = 20.0;

/// The two legs of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Browser,
    Trunk,
}

impl Leg {
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Browser => "browser",
            Leg::Trunk => "trunk",
        }
    }
}

/// One leg's figures over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegWindow {
    /// Fraction of the packets expected in the window that never came.
    pub loss: f64,
    /// Interarrival jitter at the window's end.
    pub jitter_ms: f64,
    /// The leg's latest round trip, when its RTCP gave one.
    pub rtt_ms: Option<f64>,
    /// The E-model's estimate for these figures.
    pub mos: f64,
}

impl LegWindow {
    pub fn new(loss: f64, jitter_ms: f64, rtt_ms: Option<f64>) -> Self {
        let loss = if loss.is_finite() {
            loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jitter_ms = if jitter_ms.is_finite() {
            jitter_ms.max(0.0)
        } else {
            0.0
        };
        let rtt_ms = rtt_ms.filter(|r| r.is_finite() && *r >= 0.0);
        Self {
            loss,
            jitter_ms,
            rtt_ms,
            mos: estimated_mos(loss, jitter_ms, rtt_ms),
        }
    }

    /// The warnings these figures raise.
    pub fn warnings(&self) -> Warnings {
        let mut warnings = Warnings::NONE;
        let checks = [
            (
                Warning::HighRtt,
                self.rtt_ms.is_some_and(|r| r > HIGH_RTT_MS),
            ),
            (Warning::HighJitter, self.jitter_ms > HIGH_JITTER_MS),
            (Warning::HighLoss, self.loss > HIGH_LOSS),
            (Warning::LowMos, self.mos < LOW_MOS),
        ];
        for (warning, raised) in checks {
            if raised {
                warnings = warnings.with(warning);
            }
        }
        warnings
    }
}

/// The E-model's MOS for a leg with `loss` (a fraction), `jitter_ms` and
/// `rtt_ms` (unknown counts as none). The one-way delay is half the round
/// trip, a jitter buffer of twice the jitter and one packet's worth.
pub fn estimated_mos(loss: f64, jitter_ms: f64, rtt_ms: Option<f64>) -> f64 {
    let delay = rtt_ms.unwrap_or(0.0) / 2.0 + 2.0 * jitter_ms + PACKETISATION_MS;
    let r = R_DEFAULT - delay_impairment(delay) - loss_impairment(loss * 100.0);
    mos_of_r(r)
}

/// Id for a one-way delay in ms (Cole and Rosenbluth's fit of G.107).
fn delay_impairment(delay_ms: f64) -> f64 {
    let knee = 177.3;
    0.024 * delay_ms + 0.11 * (delay_ms - knee).max(0.0)
}

/// Ie-eff for random loss of `percent` packets (G.107 §3.5, BurstR 1).
fn loss_impairment(percent: f64) -> f64 {
    IE_CODEC + (95.0 - IE_CODEC) * percent / (percent + BPL_CODEC)
}

/// G.107 Annex B: the rating R as a MOS from 1 to 4.5.
fn mos_of_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// Turns a leg's cumulative counters into per-window figures.
#[derive(Debug, Clone, Default)]
pub struct LegMeter {
    lost: i64,
    received: u64,
    tally: MosTally,
}

impl LegMeter {
    /// The window that ends with these cumulative counts (`lost` as RFC
    /// 3550 A.3 counts it), or `None` when nothing was expected in it.
    pub fn close_window(
        &mut self,
        lost: i64,
        received: u64,
        jitter_ms: f64,
        rtt_ms: Option<f64>,
    ) -> Option<LegWindow> {
        let received_in = received.saturating_sub(self.received);
        // Duplicates make the loss count fall; they do not make up for loss.
        let lost_in = u64::try_from(lost.saturating_sub(self.lost)).unwrap_or(0);
        self.lost = lost;
        self.received = received;
        let expected = received_in + lost_in;
        if expected == 0 {
            return None;
        }
        let window = LegWindow::new(lost_in as f64 / expected as f64, jitter_ms, rtt_ms);
        self.tally.add(window.mos);
        Some(window)
    }

    /// The worst and the average MOS of the windows so far.
    pub fn summary(&self) -> MosSummary {
        self.tally.summary()
    }
}

/// The worst and the average MOS of a leg's windows; `None` without any.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MosSummary {
    pub worst: Option<f64>,
    pub average: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct MosTally {
    worst: Option<f64>,
    sum: f64,
    windows: u32,
}

impl MosTally {
    fn add(&mut self, mos: f64) {
        self.worst = Some(self.worst.map_or(mos, |w| w.min(mos)));
        self.sum += mos;
        self.windows += 1;
    }

    fn summary(&self) -> MosSummary {
        MosSummary {
            worst: self.worst,
            average: (self.windows > 0).then(|| self.sum / f64::from(self.windows)),
        }
    }
}

/// One reason a call sounds poor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    HighRtt,
    HighJitter,
    HighLoss,
    LowMos,
}

impl Warning {
    pub const ALL: [Warning; 4] = [
        Warning::HighRtt,
        Warning::HighJitter,
        Warning::HighLoss,
        Warning::LowMos,
    ];

    /// The name the widget's events socket uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Warning::HighRtt => "high-rtt",
            Warning::HighJitter => "high-jitter",
            Warning::HighLoss => "high-loss",
            Warning::LowMos => "low-mos",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Warnings(u8);

impl Warnings {
    pub const NONE: Warnings = Warnings(0);

    #[must_use]
    pub fn with(self, warning: Warning) -> Warnings {
        Warnings(self.0 | warning.bit())
    }

    #[must_use]
    pub fn union(self, other: Warnings) -> Warnings {
        Warnings(self.0 | other.0)
    }

    pub fn contains(self, warning: Warning) -> bool {
        self.0 & warning.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which warnings are active, window after window.
#[derive(Debug, Clone, Default)]
pub struct WarningTracker {
    active: Warnings,
    /// Good windows in a row, per warning, while it is active.
    good_streak: [u8; Warning::ALL.len()],
}

impl WarningTracker {
    /// A window's warnings (over all legs); the active set when it changed.
    pub fn handle_window(&mut self, raised: Warnings) -> Option<Warnings> {
        let before = self.active;
        for (index, warning) in Warning::ALL.into_iter().enumerate() {
            if raised.contains(warning) {
                self.active = self.active.with(warning);
                self.good_streak[index] = 0;
            } else if self.active.contains(warning) {
                self.good_streak[index] += 1;
                if self.good_streak[index] >= CLEAR_AFTER {
                    self.active = Warnings(self.active.0 & !warning.bit());
                    self.good_streak[index] = 0;
                }
            }
        }
        (self.active != before).then_some(self.active)
    }

    pub fn active(&self) -> Warnings {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_leg_rates_about_four_point_four() {
        let mos = estimated_mos(0.0, 0.0, Some(2.0));
        assert!((4.38..=4.42).contains(&mos), "{mos}");
    }

    #[test]
    fn loss_lowers_the_estimate_as_g113_says_for_g711_with_concealment() {
        // 5 % random loss: Ie-eff = 95 * 5 / 30.1 = 15.8, R about 77.
        let five = estimated_mos(0.05, 0.0, None);
        assert!((3.85..=3.95).contains(&five), "{five}");
        let ten = estimated_mos(0.10, 0.0, None);
        assert!(ten < LOW_MOS, "{ten}");
        assert!(estimated_mos(1.0, 0.0, None) < 1.6);
    }

    #[test]
    fn delay_past_the_knee_costs_more_than_before_it() {
        let before = estimated_mos(0.0, 0.0, Some(200.0)) - estimated_mos(0.0, 0.0, Some(300.0));
        let after = estimated_mos(0.0, 0.0, Some(500.0)) - estimated_mos(0.0, 0.0, Some(600.0));
        assert!(after > 2.0 * before, "{before} {after}");
    }

    #[test]
    fn mos_stays_between_one_and_four_and_a_half() {
        assert_eq!(mos_of_r(-20.0), 1.0);
        assert_eq!(mos_of_r(120.0), 4.5);
        let awful = LegWindow::new(f64::NAN, f64::INFINITY, Some(f64::NAN));
        assert!((1.0..=4.5).contains(&awful.mos), "{awful:?}");
        assert_eq!(awful.rtt_ms, None);
    }

    #[test]
    fn each_threshold_raises_its_own_warning() {
        let clean = LegWindow::new(0.0, 5.0, Some(40.0));
        assert!(clean.warnings().is_empty(), "{clean:?}");
        let rtt = LegWindow::new(0.0, 0.0, Some(450.0)).warnings();
        assert!(rtt.contains(Warning::HighRtt) && !rtt.contains(Warning::HighLoss));
        let jitter = LegWindow::new(0.0, 35.0, None).warnings();
        assert!(jitter.contains(Warning::HighJitter) && !jitter.contains(Warning::LowMos));
        let loss = LegWindow::new(0.04, 0.0, None).warnings();
        assert!(loss.contains(Warning::HighLoss) && !loss.contains(Warning::LowMos));
        let worse = LegWindow::new(0.15, 0.0, None).warnings();
        assert!(worse.contains(Warning::HighLoss) && worse.contains(Warning::LowMos));
    }

    #[test]
    fn windows_judge_each_stretch_on_its_own() {
        let mut meter = LegMeter::default();
        assert_eq!(
            meter.close_window(0, 0, 0.0, None),
            None,
            "nothing expected"
        );
        let good = meter.close_window(0, 250, 2.0, None).unwrap();
        assert_eq!(good.loss, 0.0);
        // 50 of 250 lost in the next window, however many came before.
        let bad = meter.close_window(50, 450, 2.0, None).unwrap();
        assert!((bad.loss - 0.2).abs() < 1e-9, "{bad:?}");
        // On hold: nothing expected, no figure.
        assert_eq!(meter.close_window(50, 450, 2.0, None), None);
        // Duplicates lower the count; they are not negative loss.
        let duplicates = meter.close_window(45, 700, 2.0, None).unwrap();
        assert_eq!(duplicates.loss, 0.0);
        let summary = meter.summary();
        assert_eq!(summary.worst, Some(bad.mos));
        let average = (good.mos + bad.mos + duplicates.mos) / 3.0;
        assert!((summary.average.unwrap() - average).abs() < 1e-9);
        assert_eq!(LegMeter::default().summary(), MosSummary::default());
    }

    #[test]
    fn a_warning_rises_at_once_and_clears_after_two_good_windows() {
        let mut tracker = WarningTracker::default();
        let loss = Warnings::NONE.with(Warning::HighLoss);
        assert_eq!(tracker.handle_window(Warnings::NONE), None);
        assert_eq!(tracker.handle_window(loss), Some(loss));
        assert_eq!(tracker.handle_window(loss), None);
        assert_eq!(
            tracker.handle_window(Warnings::NONE),
            None,
            "one good window"
        );
        assert_eq!(tracker.handle_window(loss), None, "the streak restarts");
        assert_eq!(tracker.handle_window(Warnings::NONE), None);
        assert_eq!(tracker.handle_window(Warnings::NONE), Some(Warnings::NONE));
        let both = loss.with(Warning::HighJitter);
        assert_eq!(tracker.handle_window(both), Some(both));
        let jitter = Warnings::NONE.with(Warning::HighJitter);
        assert_eq!(tracker.handle_window(jitter), None);
        assert_eq!(tracker.handle_window(jitter), Some(jitter));
        assert_eq!(tracker.active(), jitter);
    }
}
