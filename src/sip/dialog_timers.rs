//! The trunk leg's clocks, with no I/O: the ring timeout while the callee
//! rings, the talk limit once answered, and the RFC 4028 session timer's
//! refreshes and expiry ([`super::session_timer`]).
//!
//! [`DialogTimers`] holds each deadline and says which fired when asked
//! with the time ([`DialogTimers::poll`]); the call's driver only sleeps
//! until [`DialogTimers::next_deadline`] and acts on the [`Alarm`]
//! ([`next_alarm`] is that sleep). Every rule is here, and the tests set
//! the clock themselves.

use std::time::{Duration, Instant};

use super::session_timer::{Due, SessionTimer};

/// What a deadline asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alarm {
    /// Nobody answered in time: cancel the INVITE.
    RingTimeout,
    /// The answered call reached its talk limit: hang up.
    TalkLimit,
    /// We refresh the session: send the refresh now.
    Refresh,
    /// The trunk was to refresh the session and did not: hang up.
    SessionExpired,
}

/// One call attempt's clocks; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct DialogTimers {
    ring_until: Option<Instant>,
    talk_until: Option<Instant>,
    /// The answered call's session timer, if the trunk keeps one.
    pub(crate) session: Option<SessionTimer>,
    /// Our refresh is in flight: the session's deadline waits for its
    /// answer.
    refreshing: bool,
}

impl DialogTimers {
    /// An attempt that has just sent its INVITE: the callee may ring for
    /// `ring_timeout`.
    pub(crate) fn ringing(now: Instant, ring_timeout: Duration) -> Self {
        Self {
            ring_until: Some(now + ring_timeout),
            ..Self::default()
        }
    }

    /// We cancelled the INVITE, for the ring timeout or the caller's
    /// hang-up: the ring timeout has nothing more to say.
    pub(crate) fn cancelled(&mut self) {
        self.ring_until = None;
    }

    /// The callee answered at `now`: the call may talk for `talk`, and the
    /// answer's session timer, if any, starts.
    pub(crate) fn answered(&mut self, now: Instant, talk: Duration, session: Option<SessionTimer>) {
        self.ring_until = None;
        self.talk_until = Some(now + talk);
        self.session = session;
        self.refreshing = false;
    }

    /// Our refresh was answered, or gave up; the session timer has been
    /// told what came of it.
    pub(crate) fn refresh_done(&mut self) {
        self.refreshing = false;
    }

    /// The earliest deadline still set; `None` while nothing is due ever.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let session = self
            .session
            .as_ref()
            .filter(|_| !self.refreshing)
            .map(SessionTimer::deadline);
        [self.ring_until, self.talk_until, session]
            .into_iter()
            .flatten()
            .min()
    }

    /// The alarm due at `now`, each once: the ring timeout first, then the
    /// talk limit, then the session's. A refresh it asks for is in flight
    /// until [`Self::refresh_done`].
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Alarm> {
        if self.ring_until.is_some_and(|at| at <= now) {
            self.ring_until = None;
            return Some(Alarm::RingTimeout);
        }
        if self.talk_until.is_some_and(|at| at <= now) {
            self.talk_until = None;
            return Some(Alarm::TalkLimit);
        }
        if self.refreshing {
            return None;
        }
        match self.session.as_ref()?.due(now)? {
            Due::Refresh => {
                self.refreshing = true;
                Some(Alarm::Refresh)
            }
            Due::Expired => {
                self.session = None;
                Some(Alarm::SessionExpired)
            }
        }
    }
}

/// Sleeps until the next alarm and returns it; for ever while no deadline
/// is set. Cancel-safe: dropped before it returns, it fired nothing.
pub(crate) async fn next_alarm(timers: &mut DialogTimers) -> Alarm {
    loop {
        match timers.next_deadline() {
            Some(deadline) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
            }
            None => std::future::pending().await,
        }
        if let Some(alarm) = timers.poll(tokio::time::Instant::now().into_std()) {
            return alarm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn session(value: &str, now: Instant) -> Option<SessionTimer> {
        SessionTimer::from_answer(Some(value), Some("INVITE, ACK, BYE, UPDATE"), now)
    }

    #[test]
    fn the_ring_timeout_fires_once_at_its_deadline_unless_cancelled_first() {
        let start = Instant::now();
        let mut timers = DialogTimers::ringing(start, 30 * SECOND);
        assert_eq!(timers.next_deadline(), Some(start + 30 * SECOND));
        assert_eq!(timers.poll(start + 29 * SECOND), None);
        assert_eq!(timers.poll(start + 30 * SECOND), Some(Alarm::RingTimeout));
        assert_eq!(timers.poll(start + 31 * SECOND), None, "said once");
        assert_eq!(timers.next_deadline(), None);

        let mut hung_up = DialogTimers::ringing(start, 30 * SECOND);
        hung_up.cancelled();
        assert_eq!(hung_up.poll(start + 60 * SECOND), None);
    }

    #[test]
    fn an_answer_stops_the_ring_timeout_and_starts_the_talk_limit() {
        let start = Instant::now();
        let mut timers = DialogTimers::ringing(start, 30 * SECOND);
        let answered_at = start + 20 * SECOND;
        timers.answered(answered_at, 60 * SECOND, None);
        assert_eq!(timers.poll(start + 45 * SECOND), None, "no ring timeout");
        assert_eq!(timers.next_deadline(), Some(answered_at + 60 * SECOND));
        assert_eq!(
            timers.poll(answered_at + 60 * SECOND),
            Some(Alarm::TalkLimit)
        );
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn we_refresh_at_half_the_interval_and_the_next_waits_for_the_answer() {
        let start = Instant::now();
        let mut timers = DialogTimers::default();
        let timer = session("1800;refresher=uac", start);
        timers.answered(start, 7_200 * SECOND, timer);
        assert_eq!(timers.next_deadline(), Some(start + 900 * SECOND));
        assert_eq!(timers.poll(start + 899 * SECOND), None);
        assert_eq!(timers.poll(start + 900 * SECOND), Some(Alarm::Refresh));
        // While the refresh is in flight only the talk limit can fire.
        assert_eq!(timers.next_deadline(), Some(start + 7_200 * SECOND));
        assert_eq!(timers.poll(start + 1_000 * SECOND), None);

        let answered = start + 901 * SECOND;
        let session = timers.session.as_mut().unwrap();
        session.refreshed_by_us(Some("1800;refresher=uac"), answered);
        timers.refresh_done();
        assert_eq!(timers.next_deadline(), Some(answered + 900 * SECOND));
    }

    #[test]
    fn a_trunk_that_does_not_refresh_expires_the_session_before_the_talk_limit() {
        let start = Instant::now();
        let mut timers = DialogTimers::default();
        timers.answered(start, 7_200 * SECOND, session("90;refresher=uas", start));
        // 90 s less a third of it.
        assert_eq!(timers.next_deadline(), Some(start + 60 * SECOND));
        assert_eq!(
            timers.poll(start + 60 * SECOND),
            Some(Alarm::SessionExpired)
        );
        assert_eq!(timers.poll(start + 61 * SECOND), None, "said once");
        assert_eq!(timers.next_deadline(), Some(start + 7_200 * SECOND));
    }

    #[test]
    fn a_talk_limit_before_the_session_deadline_ends_the_call_first() {
        let start = Instant::now();
        let mut timers = DialogTimers::default();
        timers.answered(start, 10 * SECOND, session("1800", start));
        assert_eq!(timers.poll(start + 10 * SECOND), Some(Alarm::TalkLimit));
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_sleeps_exactly_until_each_alarm() {
        let start = tokio::time::Instant::now();
        let mut timers = DialogTimers::ringing(start.into_std(), 30 * SECOND);
        assert_eq!(next_alarm(&mut timers).await, Alarm::RingTimeout);
        assert_eq!(start.elapsed(), 30 * SECOND);

        let answered = tokio::time::Instant::now().into_std();
        let timer = session("120;refresher=uac", answered);
        timers.answered(answered, 100 * SECOND, timer);
        assert_eq!(next_alarm(&mut timers).await, Alarm::Refresh);
        assert_eq!(start.elapsed(), 90 * SECOND);
        assert_eq!(next_alarm(&mut timers).await, Alarm::TalkLimit);
        assert_eq!(start.elapsed(), 130 * SECOND);

        let never = tokio::time::timeout(3_600 * SECOND, next_alarm(&mut timers)).await;
        assert!(never.is_err(), "no deadline left: it waits for ever");
    }
}
