//! [`LegStats`]: one leg's media figures as a call's record keeps them:
//! packet counts, loss, jitter and the estimated MOS, in integer units so
//! they store and compare exactly.

use serde::{Deserialize, Serialize};

/// Media counters of one leg, as received by this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Cumulative loss (RFC 3550 A.3); negative when duplicates outnumber losses.
    pub packets_lost: i64,
    /// Interarrival jitter in microseconds.
    pub jitter_us: u64,
    /// The worst and the average MOS of the leg's quality windows, in
    /// hundredths (412 is 4.12); `None` when no window measured the leg.
    #[serde(default)]
    pub mos_worst_x100: Option<u16>,
    #[serde(default)]
    pub mos_average_x100: Option<u16>,
}

impl LegStats {
    /// Jitter in milliseconds, the unit media statistics use.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_us as f64 / 1000.0
    }

    /// Microseconds for a jitter in milliseconds; negative or NaN gives 0.
    pub fn jitter_us_from_ms(jitter_ms: f64) -> u64 {
        // `as` saturates and maps NaN to 0, which is what a counter wants.
        (jitter_ms * 1000.0).round().max(0.0) as u64
    }

    /// Hundredths for a MOS (1 to 4.5); NaN gives `None`.
    pub fn mos_x100(mos: f64) -> Option<u16> {
        // `as` saturates, so anything out of range stays a u16.
        mos.is_finite()
            .then(|| (mos * 100.0).round().max(0.0) as u16)
    }
}
