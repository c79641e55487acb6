//! A call's quality windows: every [`WINDOW`] both legs' counters are read
//! and judged ([`crate::media::quality`]), and the visitor's warnings move
//! with them. Pure: the media passes in its counters and the time.

use std::time::Instant;

use crate::media::quality::{LegMeter, LegWindow, MosSummary, WINDOW, WarningTracker, Warnings};

/// One leg's cumulative counters when a window closes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegCounters {
    /// RFC 3550 A.3 cumulative loss.
    pub lost: i64,
    pub received: u64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
}

/// What one closed window found.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClosedWindow {
    pub browser: Option<LegWindow>,
    pub trunk: Option<LegWindow>,
    /// The active warnings, when the window changed them.
    pub warnings: Option<Warnings>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CallQuality {
    next_window: Instant,
    browser: LegMeter,
    trunk: LegMeter,
    warnings: WarningTracker,
}

impl CallQuality {
    pub fn new(now: Instant) -> Self {
        Self {
            next_window: now + WINDOW,
            browser: LegMeter::default(),
            trunk: LegMeter::default(),
            warnings: WarningTracker::default(),
        }
    }

    /// When the current window closes.
    pub fn poll_timeout(&self) -> Instant {
        self.next_window
    }

    /// Closes the window if it is due at `now`, with both legs' counters.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        counters: impl FnOnce() -> (LegCounters, LegCounters),
    ) -> Option<ClosedWindow> {
        if now < self.next_window {
            return None;
        }
        // A late turn closes one window, not a burst of empty ones.
        let next = self.next_window + WINDOW;
        self.next_window = if next <= now { now + WINDOW } else { next };
        let (browser, trunk) = counters();
        let close = |meter: &mut LegMeter, c: LegCounters| {
            meter.close_window(c.lost, c.received, c.jitter_ms, c.rtt_ms)
        };
        let browser = close(&mut self.browser, browser);
        let trunk = close(&mut self.trunk, trunk);
        let raised = [browser, trunk]
            .iter()
            .flatten()
            .fold(Warnings::NONE, |all, leg| all.union(leg.warnings()));
        Some(ClosedWindow {
            browser,
            trunk,
            warnings: self.warnings.handle_window(raised),
        })
    }

    /// Each leg's worst and average MOS so far.
    pub fn summaries(&self) -> (MosSummary, MosSummary) {
        (self.browser.summary(), self.trunk.summary())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::media::quality::Warning;

    fn leg(lost: i64, received: u64) -> LegCounters {
        LegCounters {
            lost,
            received,
            jitter_ms: 1.0,
            rtt_ms: None,
        }
    }

    #[test]
    fn a_window_closes_every_five_seconds_and_loss_on_either_leg_warns() {
        let start = Instant::now();
        let mut quality = CallQuality::new(start);
        let early = start + Duration::from_secs(4);
        assert!(
            quality
                .handle_timeout(early, || panic!("read before the window closed"))
                .is_none()
        );
        let first = quality
            .handle_timeout(quality.poll_timeout(), || (leg(0, 250), leg(0, 0)))
            .unwrap();
        assert!(first.browser.is_some() && first.trunk.is_none());
        assert_eq!(first.warnings, None);
        assert_eq!(quality.poll_timeout(), start + 2 * WINDOW);
        let second = quality
            .handle_timeout(quality.poll_timeout(), || (leg(0, 500), leg(50, 200)))
            .unwrap();
        let warned = second.warnings.unwrap();
        assert!(warned.contains(Warning::HighLoss) && warned.contains(Warning::LowMos));
        let (browser, trunk) = quality.summaries();
        assert!(browser.worst.unwrap() > 4.0);
        assert!(trunk.worst.unwrap() < 3.0);
    }

    #[test]
    fn a_late_turn_closes_one_window() {
        let start = Instant::now();
        let mut quality = CallQuality::new(start);
        let late = start + Duration::from_secs(23);
        assert!(quality.handle_timeout(late, Default::default).is_some());
        assert_eq!(quality.poll_timeout(), late + WINDOW);
        assert!(quality.handle_timeout(late, Default::default).is_none());
    }
}
