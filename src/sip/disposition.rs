//! How a call attempt ended, in the terms a CDR and a widget need.
//!
//! Maps SIP final responses (RFC 3261 §21), local timeouts and transport
//! failures to a small set of dispositions. The mapping is pure so it can be
//! tested exhaustively; the SIP cause code is always kept beside it so billing
//! and support can see exactly what the trunk said.

use crate::domain::Disposition;

/// Why we ourselves ended a call attempt before a final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCancel {
    /// The configured ring timeout elapsed.
    RingTimeout,
    /// The caller (the visitor) hung up.
    CallerHangup,
}

/// Disposition for a final non-2xx response to our INVITE.
///
/// `cancelled` says why we sent CANCEL, if we did: the 487 that follows a
/// CANCEL is the trunk confirming our own decision, not its verdict.
/// `authenticated` says the request carried our credentials: a challenge or
/// a 403 then means they were refused, which is our failure, not the callee's.
pub fn for_final_response(
    code: u16,
    cancelled: Option<LocalCancel>,
    authenticated: bool,
) -> Disposition {
    if authenticated && matches!(code, 401 | 403 | 407) {
        return Disposition::Failed;
    }
    match (code, cancelled) {
        (200..=299, _) => Disposition::Answered,
        (487, Some(LocalCancel::RingTimeout)) => Disposition::NoAnswer,
        (487, Some(LocalCancel::CallerHangup)) => Disposition::Cancelled,
        (486 | 600, _) => Disposition::Busy,
        (408 | 480, _) => Disposition::NoAnswer,
        (403 | 404 | 410 | 433 | 484 | 485 | 488 | 603 | 604 | 606, _) => Disposition::Rejected,
        (300..=399, _) => Disposition::Rejected,
        _ => Disposition::Failed,
    }
}

/// Whether the next trunk of a route should be tried after this outcome.
///
/// Only outcomes that say "this trunk could not carry the call" fail over: a
/// busy or rejecting callee would answer the same through any trunk.
pub fn should_fail_over(disposition: Disposition, code: u16) -> bool {
    disposition == Disposition::Unreachable || matches!(code, 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes() {
        assert_eq!(for_final_response(486, None, false), Disposition::Busy);
        assert_eq!(for_final_response(600, None, false), Disposition::Busy);
    }

    #[test]
    fn cancel_487_depends_on_why_we_cancelled() {
        assert_eq!(
            for_final_response(487, Some(LocalCancel::RingTimeout), false),
            Disposition::NoAnswer
        );
        assert_eq!(
            for_final_response(487, Some(LocalCancel::CallerHangup), false),
            Disposition::Cancelled
        );
        // A 487 we did not ask for is the trunk's failure.
        assert_eq!(for_final_response(487, None, false), Disposition::Failed);
    }

    #[test]
    fn rejections_and_failures() {
        for code in [403, 404, 603, 488, 484] {
            assert_eq!(
                for_final_response(code, None, false),
                Disposition::Rejected,
                "{code}"
            );
        }
        for code in [401, 407, 400, 500, 503, 420] {
            assert_eq!(
                for_final_response(code, None, false),
                Disposition::Failed,
                "{code}"
            );
        }
        assert_eq!(for_final_response(480, None, false), Disposition::NoAnswer);
    }

    #[test]
    fn refused_credentials_are_a_failure_not_a_rejection() {
        assert_eq!(for_final_response(403, None, true), Disposition::Failed);
        assert_eq!(for_final_response(407, None, true), Disposition::Failed);
        assert_eq!(for_final_response(403, None, false), Disposition::Rejected);
        assert_eq!(for_final_response(486, None, true), Disposition::Busy);
    }

    #[test]
    fn failover_only_when_the_trunk_is_at_fault() {
        assert!(should_fail_over(Disposition::Unreachable, 408));
        assert!(should_fail_over(Disposition::Failed, 503));
        assert!(!should_fail_over(Disposition::Busy, 486));
        assert!(!should_fail_over(Disposition::Failed, 407));
    }
}
