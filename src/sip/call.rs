//! One outbound call on the trunk leg: INVITE, progress, answer, re-INVITEs,
//! hang-up, timers and failover, driven by one task per call.
//!
//! The owner holds a [`TrunkCall`]: it reads [`TrunkEvent`]s and sends
//! commands (hang up). The task tries the route's trunks in order; a trunk
//! that cannot carry the call (no response, transport error, 5xx before any
//! ringing) is marked unhealthy and the next one is tried with a fresh offer.
//! Exactly one `TrunkEvent::Ended` is sent, last.
//!
//! An end we decide ourselves (the owner hangs up or goes away, the ring
//! timeout, the maximum duration) is reported at once, whatever the trunk
//! does next; the task then finishes the SIP on its own: a CANCEL once the
//! INVITE has a provisional response (RFC 3261 §9.1: never before), a BYE
//! to a 2xx that crosses it, a BYE to an answered call, each bounded by the
//! transaction timers. So the call is over for the visitor, and its limits
//! are free, even while a trunk that never answers keeps the INVITE open
//! for Timer B.
//!
//! The ring timeout, the talk limit and the RFC 4028 session timer are
//! [`super::dialog_timers`], which the task only sleeps on. An answered
//! call keeps the session timer its 2xx set up
//! ([`super::session_timer`]): the trunk's refreshes restart it and our
//! answers carry it; when we are the refresher, an UPDATE goes out at half
//! the interval; a session the trunk lets expire ends with our BYE.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, HeadersExt, Method, Request, Response, StatusCodeKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::agent_inner::AgentInner;
use super::dialog_timers::{Alarm, DialogTimers, next_alarm};
use super::disposition::{self, LocalCancel};
use super::dtmf_info::{self, InfoDtmf};
use super::error::SipError;
pub use super::reason::TrunkReason;
use super::session_timer::{self, RefreshMethod, SessionTimer, TimerRequest};
use super::settings::TrunkSettings;
use super::trunk::Trunk;
use crate::domain::Disposition;

/// What to call, and where.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The route (an ordered list of trunks) to place the call on.
    pub route: String,
    /// The user part of the Request-URI: the callee's number as the trunk expects it.
    pub callee: String,
    /// Once answered, the call ends after this long (or the agent's
    /// maximum call duration, whichever is shorter).
    pub talk_limit: Option<Duration>,
}

/// Builds the SDP offer for the trunk about to be tried.
pub type OfferBuilder = Arc<dyn Fn(&TrunkSettings) -> Vec<u8> + Send + Sync>;

/// Who or what ended an answered call, or why an attempt stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// We hung up (the visitor, or the owner dropped the call).
    Local,
    /// The trunk sent BYE, or a final response ended the attempt.
    Remote,
    RingTimeout,
    MaxDuration,
    /// The trunk was to refresh the session (RFC 4028) and did not: we
    /// sent the BYE when it expired.
    SessionExpired,
}

/// The end of a call on the trunk leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub disposition: Disposition,
    /// The SIP status that decided it (408 for a local timeout, 503 for a
    /// transport failure, as RFC 3261 §8.1.3.1 suggests treating them).
    pub sip_code: Option<u16>,
    pub ended_by: EndCause,
    /// The trunk that carried (or last refused) the call.
    pub trunk: Option<String>,
    /// In the trunk's own words, when its final response refused the call.
    pub reason: TrunkReason,
}

/// Progress of a call on the trunk leg.
#[derive(Debug)]
pub enum TrunkEvent {
    /// A trunk is being tried (failover may send this more than once).
    Trying {
        trunk: String,
    },
    /// 180 without SDP.
    Ringing,
    /// 180/183 with SDP: early media (ringback, announcements) flows now.
    EarlyMedia {
        sdp: Vec<u8>,
    },
    /// 200 OK: the answer SDP to our offer.
    Answered {
        sdp: Vec<u8>,
    },
    /// The trunk sent a new offer (re-INVITE or UPDATE): hold, unhold, a new
    /// media address. Answer it through `reply`.
    RemoteOffer {
        sdp: Vec<u8>,
        reply: OfferReply,
    },
    /// A keypad digit the trunk sent in an INFO request (already answered
    /// 200); digits sent as RFC 4733 events come with the media instead.
    Dtmf(char),
    Ended(CallEnd),
}

/// The pending answer to a trunk's in-dialog offer.
#[derive(Debug)]
pub struct OfferReply {
    handle: TransactionHandle,
    /// Headers our 2xx carries besides the SDP (the session timer's).
    headers: Vec<Header>,
    /// Where the SDP we answer is kept, as the last we sent.
    sent: Option<LocalSdp>,
}

impl OfferReply {
    pub(crate) fn new(handle: TransactionHandle) -> Self {
        Self {
            handle,
            headers: Vec::new(),
            sent: None,
        }
    }

    /// Answer with our SDP (200 OK).
    pub async fn accept(self, answer_sdp: Vec<u8>) {
        if let Some(sent) = &self.sent {
            sent.set(&answer_sdp);
        }
        let mut headers = self.headers;
        headers.push(Header::ContentType("application/sdp".into()));
        if self
            .handle
            .respond(
                rsipstack::sip::StatusCode::OK,
                Some(headers),
                Some(answer_sdp),
            )
            .await
            .is_err()
        {
            debug!("re-INVITE transaction ended before our answer");
        }
    }

    /// Refuse the offer, e.g. 488 Not Acceptable Here when no codec matches.
    pub async fn reject(self, code: u16) {
        let _ = self.handle.reply(code.into()).await;
    }
}

/// The SDP we last sent the trunk (our offer, or our last answer): what a
/// 200 to a re-INVITE without SDP offers again, unchanged.
#[derive(Debug, Clone, Default)]
struct LocalSdp(Arc<Mutex<Vec<u8>>>);

impl LocalSdp {
    fn set(&self, sdp: &[u8]) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.clear();
        slot.extend_from_slice(sdp);
    }

    fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The owner's side of a call on the trunk leg.
#[derive(Debug)]
pub struct TrunkCall {
    events: mpsc::Receiver<TrunkEvent>,
    hangup: mpsc::Sender<()>,
}

impl TrunkCall {
    /// The next event; `None` after `Ended` has been delivered.
    pub async fn next_event(&mut self) -> Option<TrunkEvent> {
        self.events.recv().await
    }

    /// Hang up: CANCEL before an answer, BYE after. Idempotent.
    pub fn hangup(&self) {
        let _ = self.hangup.try_send(());
    }
}

pub(crate) fn spawn(
    inner: Arc<AgentInner>,
    request: CallRequest,
    offer: OfferBuilder,
) -> Result<TrunkCall, SipError> {
    let candidates = inner.routes.candidates(&request.route)?;
    let (events_tx, events) = mpsc::channel(32);
    let (hangup, hangup_rx) = mpsc::channel(1);
    let driver = CallDriver {
        inner,
        request,
        offer,
        events: events_tx,
        hangup: hangup_rx,
        end_reported: false,
        timers: DialogTimers::default(),
        local_sdp: LocalSdp::default(),
    };
    let calls = driver.inner.calls.clone();
    calls.spawn(driver.run(candidates));
    Ok(TrunkCall { events, hangup })
}

struct CallDriver {
    inner: Arc<AgentInner>,
    request: CallRequest,
    offer: OfferBuilder,
    events: mpsc::Sender<TrunkEvent>,
    hangup: mpsc::Receiver<()>,
    /// `TrunkEvent::Ended` has gone to the owner.
    end_reported: bool,
    /// The attempt's ring timeout, and the answered call's talk limit and
    /// RFC 4028 session timer.
    timers: DialogTimers,
    local_sdp: LocalSdp,
}

/// How one trunk attempt ended.
enum Attempt {
    Final(CallEnd),
    FailOver(CallEnd),
    /// 422: the trunk wants a session interval of at least its `Min-SE`.
    IntervalTooSmall(Option<Duration>, CallEnd),
}

/// An UPDATE or re-INVITE refreshing the session, in flight.
type Refreshing =
    Pin<Box<dyn Future<Output = rsipstack::Result<Option<Response>>> + Send + 'static>>;

impl CallDriver {
    async fn run(mut self, candidates: Vec<Arc<Trunk>>) {
        let mut last = CallEnd {
            disposition: Disposition::Unreachable,
            sip_code: None,
            ended_by: EndCause::Remote,
            trunk: None,
            reason: TrunkReason::default(),
        };
        for trunk in candidates {
            match self.attempt(&trunk).await {
                // `attempt` has already asked again after a 422 it could meet.
                Attempt::Final(end) | Attempt::IntervalTooSmall(_, end) => {
                    last = end;
                    break;
                }
                Attempt::FailOver(end) => {
                    info!(trunk = trunk.name(), disposition = %end.disposition, "trunk could not carry the call, trying the next");
                    last = end;
                }
            }
        }
        self.report_end(last).await;
    }

    /// Tells the owner of progress, while the call is not over for it.
    async fn tell(&self, event: TrunkEvent) {
        if !self.end_reported {
            let _ = self.events.send(event).await;
        }
    }

    /// Tells the owner how the call ended, once: the first end reported
    /// stands, whatever the trunk says after it.
    async fn report_end(&mut self, end: CallEnd) {
        if std::mem::replace(&mut self.end_reported, true) {
            return;
        }
        info!(disposition = %end.disposition, sip_code = ?end.sip_code, trunk = ?end.trunk, "trunk call ended");
        let _ = self.events.send(TrunkEvent::Ended(end)).await;
    }

    /// We stop the attempt before its answer: the owner hears the end now,
    /// and the CANCEL goes out in the background (rsipstack holds it until
    /// a provisional response has arrived). The INVITE's own outcome still
    /// comes to [`Self::until_answer`], which keeps the trunk's health.
    async fn cancel(&mut self, leg: &mut Leg, reason: LocalCancel) {
        leg.cancelled = Some(reason);
        self.timers.cancelled();
        let disposition = disposition::for_final_response(487, Some(reason), false);
        let end = self.end(disposition, Some(487), ended_by(reason), &leg.trunk);
        self.report_end(end).await;
        let dialog = leg.dialog.clone();
        // Tracked with the calls, so a shutdown waits for it too.
        self.inner.calls.spawn(async move {
            if let Err(e) = dialog.cancel().await {
                debug!(error = %e, "CANCEL failed");
            }
        });
    }

    /// One trunk's attempt, asked again with a larger session interval
    /// when it answers 422 (RFC 4028 §7.4), under the same Call-ID (RFC
    /// 3261 §8.1.3.5).
    async fn attempt(&mut self, trunk: &Arc<Trunk>) -> Attempt {
        let mut timer = self
            .inner
            .settings
            .session_expires
            .map(|interval| TimerRequest {
                interval,
                min_se: session_timer::SMALLEST_INTERVAL,
            });
        // Pinned before the INVITE leaves: only this trunk speaks for it.
        let pin = self.inner.pin_call(trunk);
        loop {
            match self.attempt_with(trunk, pin.call_id(), timer).await {
                Attempt::IntervalTooSmall(min_se, end) => {
                    match timer.and_then(|t| t.after_too_small(min_se)) {
                        Some(raised) => timer = Some(raised),
                        None => return Attempt::Final(end),
                    }
                }
                other => return other,
            }
        }
    }

    async fn attempt_with(
        &mut self,
        trunk: &Arc<Trunk>,
        call_id: &str,
        timer: Option<TimerRequest>,
    ) -> Attempt {
        self.tell(TrunkEvent::Trying {
            trunk: trunk.name().to_owned(),
        })
        .await;
        if let Err(e) = self.connect(trunk).await {
            debug!(trunk = trunk.name(), error = %e, "could not connect to the trunk");
            return self.transport_failure(trunk);
        }
        let (state_tx, states) = self.inner.dialogs.new_dialog_state_channel();
        let mut option = self.invite_option(trunk, timer);
        option.call_id = Some(call_id.to_owned());
        self.local_sdp
            .set(option.offer.as_deref().unwrap_or_default());
        self.inner
            .counters
            .invites_sent
            .fetch_add(1, Ordering::Relaxed);
        let (dialog, invite) = match self.inner.dialogs.do_invite_async(option, state_tx) {
            Ok(started) => started,
            Err(e) => {
                debug!(trunk = trunk.name(), error = %e, "could not send INVITE");
                return self.transport_failure(trunk);
            }
        };
        let mut leg = Leg {
            trunk: trunk.clone(),
            dialog,
            states,
            answered: None,
            provisional_seen: false,
            cancelled: None,
        };
        match self.until_answer(&mut leg, invite, timer.is_some()).await {
            Some(attempt) => attempt,
            None => Attempt::Final(self.while_answered(&mut leg).await),
        }
    }

    /// The trunk could not be reached at all: count it, mark the trunk
    /// unhealthy, and let the next trunk of the route try.
    fn transport_failure(&self, trunk: &Trunk) -> Attempt {
        self.inner
            .counters
            .transport_errors
            .fetch_add(1, Ordering::Relaxed);
        trunk.health.handle_failure();
        Attempt::FailOver(self.end(Disposition::Unreachable, Some(503), EndCause::Remote, trunk))
    }

    /// Opens (or reuses) the TCP or TLS connection to the trunk's next hop.
    /// rsipstack treats a failed connect as a lost datagram and retries until
    /// Timer B, so a refused connection or certificate would hold the call
    /// for `invite_timeout` before failing over; connecting first fails at
    /// once. The INVITE then reuses the connection. UDP has nothing to open.
    async fn connect(&self, trunk: &Trunk) -> Result<(), SipError> {
        if trunk.next_hop.r#type == Some(rsipstack::sip::Transport::Udp) {
            return Ok(());
        }
        let layer = &self.inner.endpoint.inner.transport_layer;
        let limit = self.inner.settings.invite_timeout;
        match tokio::time::timeout(limit, layer.lookup(&trunk.next_hop, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SipError::Stack(e.to_string())),
            Err(_) => Err(SipError::Timeout),
        }
    }

    fn invite_option(&self, trunk: &Trunk, timer: Option<TimerRequest>) -> InviteOption {
        let contact = self
            .inner
            .dialogs
            .build_local_contact(Some(trunk.settings.from_user.clone()), None)
            .unwrap_or_default();
        InviteOption {
            caller: trunk.caller_uri(&self.inner.local_host),
            callee: trunk.request_uri(&self.request.callee),
            destination: Some(trunk.next_hop.clone()),
            content_type: Some("application/sdp".into()),
            offer: Some((self.offer)(&trunk.settings)),
            contact,
            credential: trunk.credential(),
            route_set: trunk
                .proxy_route
                .iter()
                .map(|uri| rsipstack::sip::typed::Route {
                    display_name: None,
                    uri: uri.clone(),
                    params: vec![],
                })
                .collect(),
            headers: timer.map(|timer| {
                vec![
                    Header::Supported("timer".into()),
                    Header::SessionExpires(timer.session_expires().value().into()),
                    Header::MinSE(timer.min_se.as_secs().to_string().into()),
                ]
            }),
            ..Default::default()
        }
    }

    /// Drive the INVITE transaction; `None` once the call is answered.
    async fn until_answer(
        &mut self,
        leg: &mut Leg,
        mut invite: tokio::task::JoinHandle<rsipstack::dialog::invitation::InviteAsyncResult>,
        asked_for_timer: bool,
    ) -> Option<Attempt> {
        let now = Instant::now().into_std();
        self.timers = DialogTimers::ringing(now, self.inner.settings.ring_timeout);
        loop {
            tokio::select! {
                result = &mut invite => return self.on_invite_result(leg, result, asked_for_timer),
                Some(state) = leg.states.recv() => self.on_early_state(leg, state).await,
                alarm = next_alarm(&mut self.timers) => {
                    // Only the ring timeout is set before an answer.
                    if alarm == Alarm::RingTimeout {
                        debug!(trunk = leg.trunk.name(), "ring timeout, cancelling");
                        self.cancel(leg, LocalCancel::RingTimeout).await;
                    }
                }
                // A closed channel (the owner went away) hangs up too.
                _ = self.hangup.recv(), if leg.cancelled.is_none() => {
                    self.cancel(leg, LocalCancel::CallerHangup).await;
                }
            }
        }
    }

    fn on_invite_result(
        &mut self,
        leg: &mut Leg,
        result: Result<rsipstack::dialog::invitation::InviteAsyncResult, tokio::task::JoinError>,
        asked_for_timer: bool,
    ) -> Option<Attempt> {
        let trunk = leg.trunk.clone();
        let counters = &self.inner.counters;
        match result {
            Ok(Ok((id, Some(response))))
                if response.status_code.kind() == StatusCodeKind::Successful =>
            {
                counters.count_response(response.status_code.code());
                trunk.health.handle_success();
                if leg.cancelled.is_some() {
                    // rsipstack ends a 2xx that crossed our CANCEL with a BYE.
                    let reason = leg.cancelled.unwrap_or(LocalCancel::CallerHangup);
                    let disposition = disposition::for_final_response(487, Some(reason), false);
                    return Some(Attempt::Final(self.end(
                        disposition,
                        Some(487),
                        ended_by(reason),
                        &trunk,
                    )));
                }
                leg.answered = Some((id, response));
                None
            }
            Ok(Ok((_, Some(response))))
                if response.status_code.code() == 422
                    && asked_for_timer
                    && leg.cancelled.is_none() =>
            {
                counters.count_response(422);
                let disposition = disposition::for_final_response(422, None, false);
                let end = self.end(disposition, Some(422), EndCause::Remote, &trunk);
                Some(Attempt::IntervalTooSmall(min_se_of(&response), end))
            }
            Ok(Ok((_, Some(response)))) if is_local_timeout(&response, leg) => {
                counters.invite_timeouts.fetch_add(1, Ordering::Relaxed);
                self.unreachable(leg, 408)
            }
            Ok(Ok((_, Some(response)))) => {
                let code = response.status_code.code();
                counters.count_response(code);
                let authenticated = carries_credentials(&leg.dialog);
                let disposition =
                    disposition::for_final_response(code, leg.cancelled, authenticated);
                let ended = leg.cancelled.map(ended_by).unwrap_or(EndCause::Remote);
                let end = CallEnd {
                    reason: TrunkReason::of_response(&response),
                    ..self.end(disposition, Some(code), ended, &trunk)
                };
                if disposition::should_fail_over(disposition, code) && !leg.provisional_seen {
                    trunk.health.handle_failure();
                    return Some(Attempt::FailOver(end));
                }
                trunk.health.handle_success();
                Some(Attempt::Final(end))
            }
            Ok(Ok((_, None))) => {
                counters.invite_timeouts.fetch_add(1, Ordering::Relaxed);
                self.unreachable(leg, 408)
            }
            Ok(Err(e)) => {
                debug!(trunk = trunk.name(), error = %e, "INVITE failed");
                counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                self.unreachable(leg, 503)
            }
            Err(_) => Some(Attempt::Final(self.end(
                Disposition::Failed,
                None,
                EndCause::Remote,
                &trunk,
            ))),
        }
    }

    fn unreachable(&self, leg: &Leg, code: u16) -> Option<Attempt> {
        let trunk = &leg.trunk;
        if let Some(reason) = leg.cancelled {
            // We asked to stop and the trunk never confirmed: our reason stands.
            let disposition = disposition::for_final_response(487, Some(reason), false);
            return Some(Attempt::Final(self.end(
                disposition,
                Some(code),
                ended_by(reason),
                trunk,
            )));
        }
        trunk.health.handle_failure();
        let end = self.end(
            Disposition::Unreachable,
            Some(code),
            EndCause::Remote,
            trunk,
        );
        Some(if leg.provisional_seen {
            Attempt::Final(end)
        } else {
            Attempt::FailOver(end)
        })
    }

    async fn on_early_state(&mut self, leg: &mut Leg, state: DialogState) {
        match state {
            DialogState::Early(_, response) => {
                leg.provisional_seen = true;
                self.inner
                    .counters
                    .count_response(response.status_code.code());
                let event = if response.body.is_empty() {
                    TrunkEvent::Ringing
                } else {
                    TrunkEvent::EarlyMedia { sdp: response.body }
                };
                self.tell(event).await;
            }
            DialogState::Trying(_) => leg.provisional_seen = true,
            other => self.on_in_dialog_request(other).await,
        }
    }

    /// The answered phase: until BYE from either side, the duration limit
    /// or the session's expiry.
    async fn while_answered(&mut self, leg: &mut Leg) -> CallEnd {
        let Some((id, response)) = leg.answered.take() else {
            return self.end(Disposition::Failed, None, EndCause::Remote, &leg.trunk);
        };
        let now = Instant::now().into_std();
        let session = SessionTimer::from_answer(
            session_expires_of(&response),
            allow_of(&response.headers).as_deref(),
            now,
        );
        let most = self.inner.settings.max_call_duration;
        let talk = self
            .request
            .talk_limit
            .map_or(most, |limit| limit.min(most));
        self.timers.answered(now, talk, session);
        if let Some(timer) = &self.timers.session {
            debug!(
                trunk = leg.trunk.name(),
                we_refresh = timer.we_refresh(),
                "session timer running"
            );
        }
        self.tell(TrunkEvent::Answered {
            sdp: response.body.clone(),
        })
        .await;
        let mut refreshing: Option<Refreshing> = None;
        let mut trunk_said = None;
        let ended_by = loop {
            tokio::select! {
                state = leg.states.recv() => match state {
                    Some(DialogState::Terminated(_, reason)) => {
                        if matches!(reason, TerminatedReason::UasBye) {
                            trunk_said = self.inner.take_bye_reason(&id.call_id);
                        }
                        break terminated_by(&reason);
                    }
                    Some(other) => self.on_in_dialog_request(other).await,
                    None => break EndCause::Remote,
                },
                _ = self.hangup.recv() => break EndCause::Local,
                alarm = next_alarm(&mut self.timers) => match alarm {
                    Alarm::TalkLimit => break EndCause::MaxDuration,
                    Alarm::SessionExpired => break EndCause::SessionExpired,
                    Alarm::Refresh => {
                        refreshing = self.refresh(leg);
                        if refreshing.is_none() {
                            self.timers.refresh_done();
                        }
                    }
                    Alarm::RingTimeout => {}
                },
                result = poll_some(&mut refreshing) => {
                    refreshing = None;
                    self.timers.refresh_done();
                    if self.on_refreshed(result) {
                        break EndCause::Remote;
                    }
                }
            }
        };
        let mut end = self.end(Disposition::Answered, Some(200), ended_by, &leg.trunk);
        end.reason = trunk_said.unwrap_or_default();
        if ended_by != EndCause::Remote {
            // The call is over for the owner now; the BYE may take its time.
            self.report_end(end.clone()).await;
            if let Err(e) = bye_within(&leg.dialog, Duration::from_secs(5)).await {
                debug!(error = %e, "BYE was not confirmed");
            }
        }
        self.inner.dialogs.remove_dialog(&id);
        end
    }

    /// Sends our refresh, in the background of the answered loop: an
    /// UPDATE without SDP (RFC 4028 §7.4 prefers it; no media changes), or
    /// for a trunk without UPDATE a re-INVITE offering the SDP we last sent,
    /// unchanged to its version (RFC 3264 §8), so the media stays as it is.
    fn refresh(&self, leg: &Leg) -> Option<Refreshing> {
        let timer = self.timers.session.as_ref()?;
        let mut headers = vec![
            Header::Supported("timer".into()),
            Header::SessionExpires(timer.refresh_request().value().into()),
        ];
        let dialog = leg.dialog.clone();
        Some(match timer.refresh_method() {
            RefreshMethod::Update => {
                Box::pin(async move { dialog.update(Some(headers), None).await })
            }
            RefreshMethod::Invite => {
                headers.push(Header::ContentType("application/sdp".into()));
                let offer = self.local_sdp.get();
                Box::pin(async move { dialog.reinvite(Some(headers), Some(offer)).await })
            }
        })
    }

    /// Our refresh's outcome; `true` when it says the dialog is gone (408
    /// or 481, RFC 4028 §10), so the call is over.
    fn on_refreshed(&mut self, result: rsipstack::Result<Option<Response>>) -> bool {
        let now = Instant::now().into_std();
        let Some(timer) = self.timers.session.as_mut() else {
            return false;
        };
        match result {
            Ok(Some(response)) if response.status_code.kind() == StatusCodeKind::Successful => {
                timer.refreshed_by_us(session_expires_of(&response), now);
                false
            }
            Ok(Some(response)) if matches!(response.status_code.code(), 408 | 481) => true,
            Ok(Some(response)) if matches!(response.status_code.code(), 405 | 501) => {
                debug!(
                    method = ?timer.refresh_method(),
                    "the trunk does not take this refresh method"
                );
                timer.method_refused(now);
                false
            }
            Ok(Some(response)) if response.status_code.code() == 491 => {
                // We chose the Call-ID, so we wait 2.1 to 4 s (RFC 3261 §14.1).
                let wait = Duration::from_millis(rand::random_range(2100..=4000));
                timer.refresh_again_at(now + wait);
                false
            }
            other => {
                let code = other.ok().flatten().map(|r| r.status_code.code());
                debug!(
                    ?code,
                    "session refresh refused; the session ends when it expires"
                );
                timer.refresh_failed();
                false
            }
        }
    }

    /// Requests the trunk sends inside the dialog.
    async fn on_in_dialog_request(&mut self, state: DialogState) {
        match state {
            DialogState::Updated(_, request, handle) => {
                let headers = self.on_trunk_refresh(&request);
                let is_offer = matches!(request.method, Method::Invite | Method::Update);
                if is_offer && !request.body.is_empty() {
                    let reply = OfferReply {
                        handle,
                        headers,
                        sent: Some(self.local_sdp.clone()),
                    };
                    self.tell(TrunkEvent::RemoteOffer {
                        sdp: request.body,
                        reply,
                    })
                    .await;
                } else if request.method == Method::Invite {
                    // A re-INVITE without an offer (a refresh, often): our
                    // 200 offers what we last sent, unchanged (RFC 3264 §8).
                    OfferReply {
                        handle,
                        headers,
                        sent: None,
                    }
                    .accept(self.local_sdp.get())
                    .await;
                } else {
                    let reply = handle.respond(rsipstack::sip::StatusCode::OK, Some(headers), None);
                    let _ = reply.await;
                }
            }
            DialogState::Options(_, _, handle) => {
                let _ = handle.reply(rsipstack::sip::StatusCode::OK).await;
            }
            DialogState::Info(_, request, handle) => {
                let info = dtmf_info::parse(content_type_of(&request), &request.body);
                let headers = (info == InfoDtmf::Unsupported)
                    .then(|| vec![Header::Accept(dtmf_info::ACCEPTED_TYPES.into())]);
                let status = rsipstack::sip::StatusCode::from(info.status());
                let _ = handle.respond(status, headers, None).await;
                if let InfoDtmf::Digit(digit) = info {
                    self.tell(TrunkEvent::Dtmf(digit)).await;
                }
            }
            DialogState::Notify(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Refer(_, _, handle) => {
                let _ = handle
                    .reply(rsipstack::sip::StatusCode::MethodNotAllowed)
                    .await;
            }
            _ => {}
        }
    }

    /// A re-INVITE or UPDATE from the trunk refreshes the session (RFC 4028
    /// §9): the timer restarts, and our 2xx carries the headers returned.
    fn on_trunk_refresh(&mut self, request: &Request) -> Vec<Header> {
        let now = Instant::now().into_std();
        let asked = session_expires_of(request);
        let timer = match (&mut self.timers.session, asked) {
            (Some(timer), _) => timer,
            // A trunk may start a session timer in the middle of a call.
            (None, Some(_)) => {
                match SessionTimer::from_answer(asked, allow_of(&request.headers).as_deref(), now) {
                    Some(timer) => self.timers.session.insert(timer),
                    None => return Vec::new(),
                }
            }
            (None, None) => return Vec::new(),
        };
        let answer = timer.refreshed_by_trunk(asked, now);
        let mut headers = vec![Header::SessionExpires(answer.value().into())];
        if request.header_contains_token("Supported", "timer") {
            headers.push(Header::Require("timer".into()));
        }
        headers
    }

    fn end(
        &self,
        disposition: Disposition,
        sip_code: Option<u16>,
        ended_by: EndCause,
        trunk: &Trunk,
    ) -> CallEnd {
        CallEnd {
            disposition,
            sip_code,
            ended_by,
            trunk: Some(trunk.name().to_owned()),
            reason: TrunkReason::default(),
        }
    }
}

struct Leg {
    trunk: Arc<Trunk>,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    answered: Option<(DialogId, Response)>,
    provisional_seen: bool,
    cancelled: Option<LocalCancel>,
}

/// rsipstack reports Timer B as a 408 of its own; a 408 with nothing heard
/// from the trunk before it is that timeout, not the trunk's verdict.
fn is_local_timeout(response: &Response, leg: &Leg) -> bool {
    response.status_code.code() == 408 && !leg.provisional_seen
}

/// Whether the INVITE in flight carried our digest credentials.
fn carries_credentials(dialog: &InviteDialog) -> bool {
    dialog
        .initial_request()
        .headers
        .iter()
        .any(|h| matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)))
}

fn ended_by(reason: LocalCancel) -> EndCause {
    match reason {
        LocalCancel::RingTimeout => EndCause::RingTimeout,
        LocalCancel::CallerHangup => EndCause::Local,
    }
}

fn terminated_by(reason: &TerminatedReason) -> EndCause {
    match reason {
        TerminatedReason::UacBye | TerminatedReason::UacCancel => EndCause::Local,
        _ => EndCause::Remote,
    }
}

/// The `Session-Expires` value of a request or response, if it has one.
fn session_expires_of(message: &impl HeadersExt) -> Option<&str> {
    message.session_expires_header().map(|h| h.value())
}

/// The media type a request's body declares, if it declares one.
fn content_type_of(request: &Request) -> Option<&str> {
    request.headers.iter().find_map(|header| match header {
        Header::ContentType(value) => Some(value.value()),
        _ => None,
    })
}

/// The methods a message's `Allow` headers list, joined, if it has any.
fn allow_of(headers: &rsipstack::sip::Headers) -> Option<String> {
    let lists: Vec<&str> = headers
        .iter()
        .filter_map(|header| match header {
            Header::Allow(value) => Some(value.value()),
            _ => None,
        })
        .collect();
    (!lists.is_empty()).then(|| lists.join(","))
}

/// The `Min-SE` of a 422, if it has one.
fn min_se_of(response: &Response) -> Option<Duration> {
    response.headers.iter().find_map(|header| match header {
        Header::MinSE(value) => session_timer::parse_min_se(value.value()),
        _ => None,
    })
}

/// The refresh in flight, or for ever when there is none.
async fn poll_some(refreshing: &mut Option<Refreshing>) -> rsipstack::Result<Option<Response>> {
    match refreshing {
        Some(refresh) => refresh.await,
        None => std::future::pending().await,
    }
}

async fn bye_within(dialog: &InviteDialog, limit: Duration) -> Result<(), SipError> {
    match tokio::time::timeout(limit, dialog.bye()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SipError::Stack(e.to_string())),
        Err(_) => Err(SipError::Timeout),
    }
}
