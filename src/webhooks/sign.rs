//! The pure parts of a delivery: its signature and when to retry it.
//!
//! `Callgate-Signature: v1=<hex>` is HMAC-SHA256 under the tenant's secret
//! of `"<timestamp>.<body>"`, the timestamp being `Callgate-Timestamp`
//! (unix seconds): a receiver recomputes it over the raw body and rejects
//! old timestamps, so a captured delivery cannot be replayed later.

use std::time::Duration;

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag: [u8; 32] = mac.finalize().into_bytes().into();
    format!("v1={}", hex::encode(tag))
}

/// How a failed delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Counted from the event, not from the first attempt.
    pub give_up_after: Duration,
}

impl Backoff {
    /// When to try again after `attempts` failed attempts of an event
    /// created at `created_ms`, at `now_ms`; `None` gives it up.
    #[must_use]
    pub fn poll_retry_at(&self, attempts: u32, created_ms: i64, now_ms: i64) -> Option<i64> {
        let doublings = attempts.saturating_sub(1).min(31);
        let wait = self.initial.saturating_mul(1 << doublings).min(self.max);
        let at = now_ms.saturating_add(millis(wait));
        let deadline = created_ms.saturating_add(millis(self.give_up_after));
        (at <= deadline).then_some(at)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(600),
        give_up_after: Duration::from_secs(24 * 3600),
    };

    #[test]
    fn retries_double_from_the_initial_wait_up_to_the_cap() {
        let waits: Vec<i64> = (1..=10)
            .map(|n| BACKOFF.poll_retry_at(n, 0, 0).unwrap() / 1000)
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(BACKOFF.poll_retry_at(u32::MAX, 0, 0), Some(600_000));
    }

    #[test]
    fn a_delivery_is_given_up_once_its_retry_would_pass_the_deadline() {
        let day_ms = 24 * 3600 * 1000;
        assert!(BACKOFF.poll_retry_at(3, 0, day_ms - 60_000).is_some());
        assert_eq!(BACKOFF.poll_retry_at(9, 0, day_ms - 1000), None);
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_every_byte_of_the_body() {
        let sig = signature("secret", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_ne!(sig, signature("secret", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(sig, signature("secret", 1_700_000_000, b"{\"a\":2}"));
        assert_ne!(sig, signature("other", 1_700_000_000, b"{\"a\":1}"));
        // A known answer (Python's hmac module), so receivers in other
        // languages can check their code against it.
        assert_eq!(
            signature("key", 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
