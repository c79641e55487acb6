//! RFC 4028 session timers on the trunk leg, with no I/O.
//!
//! Carriers end calls whose session is not refreshed, so every INVITE we
//! send says `Supported: timer` and asks for `Session-Expires: N` with
//! `refresher=uas`: a carrier that keeps session timers copies our choice
//! and refreshes the session itself, and we answer its refreshes (re-INVITE
//! or UPDATE, with or without SDP). A carrier that insists on our refreshing
//! (`refresher=uac` in its 2xx) gets an UPDATE at half the interval, or a
//! re-INVITE offering our last SDP again when its `Allow` leaves UPDATE out
//! or it refuses the UPDATE as a method it does not do (405, 501). A 422
//! naming a larger `Min-SE` is answered with a new INVITE asking for it.
//!
//! [`SessionTimer`] holds the running timer of one answered call: who
//! refreshes, and when the next refresh is due or the session has expired
//! (RFC 4028 §10: the interval, less a third of it or 32 s, whichever is
//! less). The call's driver does the sending and the BYE.

use std::time::{Duration, Instant};

/// The smallest interval RFC 4028 allows (§4, the default `Min-SE`).
pub(crate) const SMALLEST_INTERVAL: Duration = Duration::from_secs(90);
/// The largest interval a `Min-SE` in a 422 may push us to.
const LARGEST_INTERVAL: Duration = Duration::from_secs(86_400);

/// Which end of a transaction refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

/// A `Session-Expires` header's value: the interval and, if named, the
/// refresher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionExpires {
    pub(crate) interval: Duration,
    pub(crate) refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses `1800;refresher=uac` (any case, spaces around the parts).
    /// `None` when the delta is not a whole number of seconds above 0.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let seconds: u32 = parts.next()?.trim().parse().ok()?;
        if seconds == 0 {
            return None;
        }
        let refresher = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match value.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(Self {
            interval: Duration::from_secs(seconds.into()),
            refresher,
        })
    }

    /// The header value, e.g. `1800;refresher=uas`.
    pub(crate) fn value(&self) -> String {
        let seconds = self.interval.as_secs();
        match self.refresher {
            None => seconds.to_string(),
            Some(Refresher::Uac) => format!("{seconds};refresher=uac"),
            Some(Refresher::Uas) => format!("{seconds};refresher=uas"),
        }
    }
}

/// Parses a `Min-SE` value (`90`, parameters ignored).
pub(crate) fn parse_min_se(value: &str) -> Option<Duration> {
    let seconds: u32 = value.split(';').next()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.into()))
}

/// What our INVITE asks for: `Session-Expires: interval;refresher=uas` and
/// `Min-SE: min_se`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerRequest {
    pub(crate) interval: Duration,
    pub(crate) min_se: Duration,
}

impl TimerRequest {
    /// The `Session-Expires` our INVITE carries.
    pub(crate) fn session_expires(&self) -> SessionExpires {
        SessionExpires {
            interval: self.interval,
            refresher: Some(Refresher::Uas),
        }
    }

    /// The request to send again after a 422 whose `Min-SE` is `min_se`
    /// (RFC 4028 §7.4); `None` when it asks for nothing larger (sending
    /// the same again would loop) or for more than a day.
    pub(crate) fn after_too_small(&self, min_se: Option<Duration>) -> Option<Self> {
        let min_se = min_se?;
        if min_se <= self.interval || min_se > LARGEST_INTERVAL {
            return None;
        }
        Some(Self {
            interval: min_se,
            min_se,
        })
    }
}

/// The request our refreshes go out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshMethod {
    /// UPDATE without SDP: no media renegotiation (RFC 4028 §7.4 prefers it).
    Update,
    /// re-INVITE offering our last SDP unchanged (RFC 3264 §8), for a
    /// trunk without UPDATE.
    Invite,
}

impl RefreshMethod {
    /// The method for a trunk whose 2xx carried `allow` (RFC 3261 §20.5):
    /// UPDATE unless the list is there and leaves it out. A trunk that says
    /// nothing is tried with UPDATE, and a refusal moves it to re-INVITE.
    pub(crate) fn for_allow(allow: Option<&str>) -> Self {
        let Some(allow) = allow else {
            return Self::Update;
        };
        let lists_update = allow
            .split(',')
            .any(|method| method.trim().eq_ignore_ascii_case("UPDATE"));
        match lists_update {
            true => Self::Update,
            false => Self::Invite,
        }
    }
}

/// What is due on an answered call's session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// We refresh: send the refresh now.
    Refresh,
    /// The trunk refreshes and has not: the session is over, send BYE.
    Expired,
}

/// The session timer of one answered call on which we are the UAC of the
/// INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    method: RefreshMethod,
    refreshed_at: Instant,
    /// Our refresh met a re-INVITE or UPDATE of the trunk's (491) and is
    /// tried again then (RFC 3261 §14.1).
    retry_at: Option<Instant>,
}

impl SessionTimer {
    /// The timer the 2xx to our INVITE set up, from its `Session-Expires`
    /// (RFC 4028 §7.2) and `Allow`: none without a `Session-Expires`. A 2xx
    /// that names no refresher leaves the refreshing to us.
    pub(crate) fn from_answer(
        session_expires: Option<&str>,
        allow: Option<&str>,
        now: Instant,
    ) -> Option<Self> {
        let answer = SessionExpires::parse(session_expires?)?;
        Some(Self {
            interval: answer.interval,
            we_refresh: answer.refresher != Some(Refresher::Uas),
            method: RefreshMethod::for_allow(allow),
            refreshed_at: now,
            retry_at: None,
        })
    }

    /// Whether we send the refreshes.
    pub(crate) fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// The request our next refresh goes out as.
    pub(crate) fn refresh_method(&self) -> RefreshMethod {
        self.method
    }

    /// When [`Self::due`] next has something: half the interval after the
    /// last refresh when we refresh; when the trunk does, the interval less
    /// a third of it or 32 s, whichever is less (RFC 4028 §10).
    pub(crate) fn deadline(&self) -> Instant {
        match (self.we_refresh, self.retry_at) {
            (true, Some(retry_at)) => retry_at,
            (true, None) => self.refreshed_at + self.interval / 2,
            (false, _) => self.expiry(),
        }
    }

    /// When the session ends unless refreshed (RFC 4028 §10).
    fn expiry(&self) -> Instant {
        let margin = (self.interval / 3).min(Duration::from_secs(32));
        self.refreshed_at + self.interval - margin
    }

    /// Our refresh crossed one of the trunk's (491): it goes again at `at`,
    /// unless the session would expire first, which then ends it.
    pub(crate) fn refresh_again_at(&mut self, at: Instant) {
        if at < self.expiry() {
            self.retry_at = Some(at);
        } else {
            self.refresh_failed();
        }
    }

    /// What is due at `now`, if anything.
    pub(crate) fn due(&self, now: Instant) -> Option<Due> {
        if now < self.deadline() {
            return None;
        }
        Some(match self.we_refresh {
            true => Due::Refresh,
            false => Due::Expired,
        })
    }

    /// The `Session-Expires` our refresh request carries: we are its UAC
    /// and stay the refresher.
    pub(crate) fn refresh_request(&self) -> SessionExpires {
        SessionExpires {
            interval: self.interval,
            refresher: Some(Refresher::Uac),
        }
    }

    /// Our refresh got a 2xx carrying `session_expires` (RFC 4028 §7.2,
    /// as for the INVITE: the answer may change the interval or hand the
    /// refreshing over).
    pub(crate) fn refreshed_by_us(&mut self, session_expires: Option<&str>, now: Instant) {
        if let Some(answer) = session_expires.and_then(SessionExpires::parse) {
            self.interval = answer.interval;
            self.we_refresh = answer.refresher != Some(Refresher::Uas);
        }
        self.refreshed_at = now;
        self.retry_at = None;
    }

    /// The trunk refused our refresh's method (405, 501): an UPDATE is
    /// sent again at once as a re-INVITE, and every refresh after it is
    /// one. A refused re-INVITE fails the refreshing for good.
    pub(crate) fn method_refused(&mut self, now: Instant) {
        match self.method {
            RefreshMethod::Update => {
                self.method = RefreshMethod::Invite;
                self.retry_at = Some(now);
            }
            RefreshMethod::Invite => self.refresh_failed(),
        }
    }

    /// Our refresh failed for good (not 2xx): the session runs until it
    /// expires (§10), so the next deadline is its end, when the driver
    /// hangs up.
    pub(crate) fn refresh_failed(&mut self) {
        self.we_refresh = false;
        self.retry_at = None;
    }

    /// The trunk refreshed the session with a re-INVITE or UPDATE carrying
    /// `session_expires` (we are that request's UAS, RFC 4028 §9). Returns
    /// the `Session-Expires` our 2xx carries: the interval it asked for (or
    /// the one we had) and who refreshes from now on, which stays the
    /// trunk unless it names us.
    pub(crate) fn refreshed_by_trunk(
        &mut self,
        session_expires: Option<&str>,
        now: Instant,
    ) -> SessionExpires {
        let asked = session_expires.and_then(SessionExpires::parse);
        if let Some(asked) = asked {
            self.interval = asked.interval;
            self.we_refresh = asked.refresher == Some(Refresher::Uas);
        } else {
            self.we_refresh = false;
        }
        self.refreshed_at = now;
        self.retry_at = None;
        SessionExpires {
            interval: self.interval,
            refresher: Some(match self.we_refresh {
                true => Refresher::Uas,
                false => Refresher::Uac,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn session_expires_reads_as_carriers_write_it() {
        let read = |v| SessionExpires::parse(v);
        assert_eq!(
            read("1800;refresher=uac"),
            Some(SessionExpires {
                interval: 1800 * SECOND,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            read(" 90 ; Refresher = UAS "),
            Some(SessionExpires {
                interval: 90 * SECOND,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(read("600").map(|s| s.refresher), Some(None));
        assert_eq!(read("600;other=1").map(|s| s.refresher), Some(None));
        assert_eq!(read("600;refresher=both").map(|s| s.refresher), Some(None));
        for bad in ["", "0", "-5", "abc", "1e3;refresher=uac", "99999999999"] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
        let written = SessionExpires {
            interval: 1800 * SECOND,
            refresher: Some(Refresher::Uas),
        };
        assert_eq!(written.value(), "1800;refresher=uas");
        assert_eq!(read(&written.value()), Some(written));
        assert_eq!(parse_min_se("120;x=y"), Some(120 * SECOND));
        assert_eq!(parse_min_se("soon"), None);
    }

    #[test]
    fn a_422_raises_the_interval_once_and_never_loops() {
        let ours = TimerRequest {
            interval: 90 * SECOND,
            min_se: 90 * SECOND,
        };
        let raised = ours.after_too_small(Some(300 * SECOND)).expect("raised");
        assert_eq!(
            (raised.interval, raised.min_se),
            (300 * SECOND, 300 * SECOND)
        );
        assert_eq!(raised.session_expires().value(), "300;refresher=uas");
        assert_eq!(raised.after_too_small(Some(300 * SECOND)), None, "no loop");
        assert_eq!(ours.after_too_small(None), None, "a 422 without Min-SE");
        assert_eq!(ours.after_too_small(Some(2 * LARGEST_INTERVAL)), None);
    }

    #[test]
    fn a_trunk_that_refreshes_has_until_the_interval_less_a_third_or_32_s() {
        let start = Instant::now();
        let timer =
            SessionTimer::from_answer(Some("90;refresher=uas"), None, start).expect("a timer");
        assert!(!timer.we_refresh());
        assert_eq!(timer.deadline(), start + 60 * SECOND, "90 less 30");
        assert_eq!(timer.due(start + 59 * SECOND), None);
        assert_eq!(timer.due(start + 60 * SECOND), Some(Due::Expired));

        let long =
            SessionTimer::from_answer(Some("1800;refresher=uas"), None, start).expect("a timer");
        assert_eq!(long.deadline(), start + 1768 * SECOND, "1800 less 32");
    }

    #[test]
    fn we_refresh_at_half_the_interval_when_asked_or_when_no_one_is_named() {
        let start = Instant::now();
        for answer in ["120;refresher=uac", "120"] {
            let mut timer = SessionTimer::from_answer(Some(answer), None, start).expect("a timer");
            assert!(timer.we_refresh(), "{answer}");
            assert_eq!(timer.due(start + 59 * SECOND), None);
            assert_eq!(timer.due(start + 60 * SECOND), Some(Due::Refresh));
            assert_eq!(timer.refresh_request().value(), "120;refresher=uac");

            // The refresh's 2xx may shorten the interval.
            timer.refreshed_by_us(Some("100;refresher=uac"), start + 60 * SECOND);
            assert_eq!(timer.deadline(), start + 110 * SECOND);
        }
        assert_eq!(SessionTimer::from_answer(None, None, start), None);
        assert_eq!(SessionTimer::from_answer(Some("junk"), None, start), None);
    }

    #[test]
    fn a_refresh_that_fails_leaves_the_session_until_it_expires() {
        let start = Instant::now();
        let mut timer =
            SessionTimer::from_answer(Some("90;refresher=uac"), None, start).expect("a timer");
        timer.refresh_failed();
        assert_eq!(timer.due(start + 59 * SECOND), None);
        assert_eq!(timer.due(start + 60 * SECOND), Some(Due::Expired));
    }

    #[test]
    fn a_refresh_that_crosses_the_trunks_is_tried_again_until_the_session_would_expire() {
        let start = Instant::now();
        let mut timer =
            SessionTimer::from_answer(Some("90;refresher=uac"), None, start).expect("a timer");
        let sent = start + 45 * SECOND;
        timer.refresh_again_at(sent + 3 * SECOND);
        assert_eq!(timer.due(sent + 2 * SECOND), None);
        assert_eq!(timer.due(sent + 3 * SECOND), Some(Due::Refresh));
        timer.refreshed_by_us(None, sent + 3 * SECOND);
        assert_eq!(
            timer.deadline(),
            sent + 48 * SECOND,
            "half the interval again"
        );

        // Past the session's end there is no retry: it expires.
        timer.refresh_again_at(start + 1000 * SECOND);
        assert!(!timer.we_refresh());
        assert_eq!(timer.deadline(), sent + 3 * SECOND + 60 * SECOND);
    }

    #[test]
    fn the_trunks_refresh_restarts_the_clock_and_our_answer_names_the_refresher() {
        let start = Instant::now();
        let mut timer =
            SessionTimer::from_answer(Some("90;refresher=uas"), None, start).expect("a timer");
        let later = start + 50 * SECOND;
        let answer = timer.refreshed_by_trunk(Some("120;refresher=uac"), later);
        assert_eq!(
            answer.value(),
            "120;refresher=uac",
            "the trunk keeps refreshing"
        );
        assert_eq!(timer.deadline(), later + 88 * SECOND);

        // A refresh without Session-Expires keeps the interval; the trunk
        // stays the refresher.
        let again = later + 60 * SECOND;
        let answer = timer.refreshed_by_trunk(None, again);
        assert_eq!(answer.value(), "120;refresher=uac");
        assert_eq!(timer.due(again + 87 * SECOND), None);

        // A trunk may hand the refreshing to us.
        let answer = timer.refreshed_by_trunk(Some("120;refresher=uas"), again);
        assert_eq!(answer.value(), "120;refresher=uas");
        assert!(timer.we_refresh());
        assert_eq!(timer.due(again + 60 * SECOND), Some(Due::Refresh));
    }

    #[test]
    fn a_trunk_without_update_is_refreshed_by_re_invite() {
        let read = |allow| RefreshMethod::for_allow(allow);
        assert_eq!(read(None), RefreshMethod::Update, "silence: try UPDATE");
        assert_eq!(
            read(Some("INVITE, ACK, BYE, CANCEL, OPTIONS, update")),
            RefreshMethod::Update
        );
        assert_eq!(
            read(Some("INVITE,ACK,BYE,CANCEL,OPTIONS,INFO")),
            RefreshMethod::Invite
        );
        assert_eq!(read(Some("")), RefreshMethod::Invite);

        let start = Instant::now();
        let listed =
            SessionTimer::from_answer(Some("90;refresher=uac"), Some("INVITE, ACK, BYE"), start)
                .expect("a timer");
        assert_eq!(listed.refresh_method(), RefreshMethod::Invite);
    }

    #[test]
    fn a_refused_update_is_sent_again_at_once_as_a_re_invite_and_a_refused_re_invite_gives_up() {
        let start = Instant::now();
        let mut timer =
            SessionTimer::from_answer(Some("90;refresher=uac"), None, start).expect("a timer");
        assert_eq!(timer.refresh_method(), RefreshMethod::Update);
        let refused = start + 45 * SECOND;
        timer.method_refused(refused);
        assert_eq!(timer.refresh_method(), RefreshMethod::Invite);
        assert_eq!(timer.due(refused), Some(Due::Refresh), "at once");

        timer.refreshed_by_us(Some("90;refresher=uac"), refused);
        assert_eq!(timer.deadline(), refused + 45 * SECOND);
        assert_eq!(timer.refresh_method(), RefreshMethod::Invite, "from now on");

        timer.method_refused(refused + 45 * SECOND);
        assert!(!timer.we_refresh());
        assert_eq!(timer.due(refused + 59 * SECOND), None);
        assert_eq!(timer.due(refused + 60 * SECOND), Some(Due::Expired));
    }
}
