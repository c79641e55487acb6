//! [`CallService`]: places browser calls and keeps the live call table.
//!
//! Placing a call checks the offer, picks the browser leg's codec and the
//! media shard with the fewest calls, answers the offer with that shard's
//! port as the candidate, hands the call's media to the shard, starts the
//! trunk leg towards the widget's number and spawns the call's driver. When
//! the driver returns, the CDR goes to the [`CdrWriter`] (which writes it
//! and queues its `call.ended` webhook), and the call leaves the table. The callee always comes from the widget's number: the
//! request that places a call has no say in where it goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use futures_util::FutureExt as _;
use rand::RngExt as _;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use super::announce::CallAnnouncer;
use super::cdr_writer::CdrWriter;
use super::driver::{self, CallParts};
use super::media::{CallMedia, CallMediaParts};
use super::observer::RelayObserver;
use super::report::{CallReport, LegStats};
use super::requests::{CallCommand, CallView, HangupRequest};
use super::shard::{Engine, NewCall};
use super::state::CallState;
use super::{LocalPorts, MediaPlan, TrunkLeg};
use crate::config::BrowserCodec;
use crate::domain::{CallId, Codec, Consent, RecordingPolicy};
use crate::media::endpoint::{EndpointConfig, EndpointCore};
use crate::media::ports::PortAllocator;
use crate::metrics::Metrics;
use crate::recording::gate::ConsentGate;
use crate::recording::receipt::notice_hash;
use crate::recording::recorder::{RecordedCall, RecorderHandle, Recorders};
use crate::sip::{CallRequest, Disposition, SipAgent};
use crate::store::{CdrRecord, LegStats as StoredLegStats, Store, WidgetRoute};
use crate::webhooks::{self, Webhooks};
use crate::webrtc::{BrowserSession, OfferError, SessionSettings, WebrtcError};

/// Commands queued per call; a visitor cannot usefully send more.
const COMMAND_CAPACITY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("{0}")]
    Webrtc(#[from] WebrtcError),
    #[error("no capacity for another call on this node")]
    Capacity,
    #[error("the node is shutting down")]
    Draining,
}

/// A call in progress, as the signalling side sees it.
#[derive(Clone)]
pub struct LiveCall {
    pub token: String,
    /// The origins its widget allowed when it was placed: the ones that may
    /// hang it up or follow its events from a browser.
    pub allowed_origins: Arc<[String]>,
    /// DTMF and consent changes.
    pub commands: mpsc::Sender<CallCommand>,
    hangup: watch::Sender<Option<HangupRequest>>,
    pub view: watch::Receiver<CallView>,
    /// Events sockets following the call now.
    followers: Arc<AtomicUsize>,
}

/// At most this many events sockets follow one call at once: a page, and
/// the same page reloaded before the first one closed.
pub const MAX_FOLLOWERS: usize = 2;

/// One events socket's place among a call's followers; dropping it frees
/// the place.
#[derive(Debug)]
pub struct Follower(Arc<AtomicUsize>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LiveCall {
    /// A place for one more events socket, or `None` when
    /// [`MAX_FOLLOWERS`] follow the call already.
    pub fn follow(&self) -> Option<Follower> {
        let taken = self
            .followers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_FOLLOWERS).then_some(n + 1)
            });
        taken.ok().map(|_| Follower(self.followers.clone()))
    }

    /// Asks the call to end. Never lost, whatever else is queued; the
    /// first request stands.
    pub fn hang_up(&self, request: HangupRequest) {
        self.hangup.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(request);
            }
            first
        });
    }
}

/// A placed call's reply to the widget.
#[derive(Debug)]
pub struct PlacedCall {
    pub call_id: CallId,
    pub answer: String,
    pub token: String,
    /// Shown to the visitor when the call ends, for privacy requests.
    pub privacy_ref: String,
}

/// What the service needs from the rest of the node.
pub struct CallServiceParts {
    pub node_id: String,
    pub engine: Engine,
    /// Each shard's session settings (its port is the candidate), in shard
    /// order.
    pub settings: Vec<SessionSettings>,
    pub agent: SipAgent,
    pub ports: Arc<PortAllocator>,
    pub plan: MediaPlan,
    pub browser_codec: BrowserCodec,
    pub disconnect_timeout: Duration,
    /// The codecs of each route's first trunk, to avoid transcoding.
    pub route_codecs: HashMap<String, Vec<Codec>>,
    pub store: Store,
    pub observer: Arc<dyn RelayObserver>,
    pub metrics: Arc<Metrics>,
    /// `None` when recording is not set up on this node.
    pub recorders: Option<Recorders>,
    /// Writes each call's CDR, then queues its `call.ended` webhook.
    pub cdrs: CdrWriter,
    /// Queues each call's `call.ringing` and `call.answered` webhooks.
    pub webhooks: Webhooks,
}

/// How long an ended call still answers its events socket and DELETE: a
/// call can end (busy, unreachable) before the widget has opened its events
/// socket, and the widget must still learn how it ended.
const ENDED_CALL_LINGER: Duration = Duration::from_secs(10);

struct Inner {
    parts: CallServiceParts,
    calls: DashMap<CallId, LiveCall>,
    /// Calls that ended less than [`ENDED_CALL_LINGER`] ago; their view
    /// holds the final state.
    recently_ended: DashMap<CallId, LiveCall>,
    draining: AtomicBool,
    /// In a cluster: who hears of each call's start, answer and end.
    announcer: OnceLock<Arc<dyn CallAnnouncer>>,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct CallService {
    inner: Arc<Inner>,
}

fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl CallService {
    pub fn new(parts: CallServiceParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                calls: DashMap::new(),
                recently_ended: DashMap::new(),
                draining: AtomicBool::new(false),
                announcer: OnceLock::new(),
            }),
        }
    }

    /// Tells `announcer` of every call placed from now on (once; a second
    /// announcer is ignored).
    pub fn announce_to(&self, announcer: Arc<dyn CallAnnouncer>) {
        let _ = self.inner.announcer.set(announcer);
    }

    /// Hears of a media thread that stopped on a panic, taking its calls
    /// with it.
    pub fn media_failure(&self) -> &crate::supervise::CoreFailure {
        self.inner.parts.engine.failure()
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.inner.calls.len()
    }

    /// A call in progress, or one that ended moments ago.
    pub fn call(&self, call_id: &str) -> Option<LiveCall> {
        let inner = &self.inner;
        let live = inner.calls.get(call_id).map(|c| c.clone());
        live.or_else(|| inner.recently_ended.get(call_id).map(|c| c.clone()))
    }

    /// Places a call from `widget` with the browser's `offer`. `permit` is
    /// held until the call ends (the tenant's concurrency slot). Once
    /// answered, the call talks at most `talk_limit` (what is left of its
    /// number's minutes today), or the node's maximum call duration.
    pub fn place<P: Send + 'static>(
        &self,
        widget: &WidgetRoute,
        offer: &str,
        visitor_ip: IpAddr,
        consent: Option<Consent>,
        permit: P,
        talk_limit: Option<std::time::Duration>,
    ) -> Result<PlacedCall, PlaceError> {
        let inner = &self.inner;
        if inner.draining.load(Ordering::Relaxed) {
            return Err(PlaceError::Draining);
        }
        let parts = &inner.parts;
        let offered = crate::webrtc::offer::inspect(offer)?;
        let trunk_codecs = parts
            .route_codecs
            .get(&widget.trunk)
            .map_or(&[][..], Vec::as_slice);
        let media = offered.choose(parts.browser_codec, trunk_codecs)?;
        let (ufrag, pwd) = (random_string(16), random_string(32));
        let shard = parts.engine.pick();
        let settings = parts
            .settings
            .get(shard.index())
            .ok_or(PlaceError::Capacity)?;
        let now = tokio::time::Instant::now().into_std();
        let (session, answer) = BrowserSession::answer(settings, offer, media, &ufrag, &pwd, now)?;
        let trunk_ports = parts
            .ports
            .allocate(parts.plan.bind_ip)
            .map_err(|_| PlaceError::Capacity)?;
        let local = LocalPorts {
            rtp: trunk_ports.lease.rtp_port(),
            rtcp: trunk_ports.lease.rtcp_port(),
        };
        let call_id = CallId::new(uuid::Uuid::new_v4().to_string());
        let recorder = self.recorder_for(widget, &call_id);
        let trunk =
            EndpointCore::new(&EndpointConfig::default(), now).map_err(|_| PlaceError::Capacity)?;
        let call_media = CallMedia::new(
            CallMediaParts {
                session,
                trunk,
                disconnect_timeout: parts.disconnect_timeout,
                observer: parts.observer.clone(),
                tap: recorder.as_ref().map(RecorderHandle::tap),
                transcode_elsewhere: true,
            },
            now,
        );
        let new_call = NewCall {
            ufrag,
            media: call_media,
            trunk_ports,
        };
        let link = parts
            .engine
            .start_call(shard, new_call)
            .ok_or(PlaceError::Capacity)?;
        let request = CallRequest {
            route: widget.trunk.clone(),
            callee: widget.e164.clone(),
            talk_limit,
        };
        let leg = match TrunkLeg::start(&parts.agent, local, parts.plan.announce_ip, request) {
            Ok(leg) => leg,
            Err(_) => {
                tokio::spawn(link.close());
                return Err(PlaceError::Capacity);
            }
        };
        let token = random_string(32);
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (hangup_tx, hangup) = watch::channel(None);
        let (view_tx, view) = watch::channel(CallView::default());
        let (progress_tx, progress) = mpsc::unbounded_channel();
        inner.calls.insert(
            call_id.clone(),
            LiveCall {
                token: token.clone(),
                allowed_origins: widget.allowed_origins.as_slice().into(),
                commands: commands_tx,
                hangup: hangup_tx,
                view,
                followers: Arc::default(),
            },
        );
        let failed_view = view_tx.clone();
        let call_parts = CallParts {
            media: link,
            browser_codec: media.codec,
            leg,
            commands,
            hangup,
            view: view_tx,
            progress: progress_tx,
            gate: ConsentGate::new(widget.recording, widget.on_revoke, consent),
            recorder,
        };
        let privacy_ref = super::privacy_ref::new_privacy_ref();
        let context = CdrContext {
            call_id: call_id.clone(),
            privacy_ref: privacy_ref.clone(),
            widget: widget.clone(),
            visitor_ip,
            created_at: SystemTime::now(),
            started: now,
        };
        let announced = inner.announcer.get().map(|announcer| {
            let skeleton = context.skeleton(&parts.node_id, media.codec.name());
            announcer.carrying(&call_id, &skeleton);
            (announcer.clone(), skeleton)
        });
        tokio::spawn(announce_progress(
            parts.webhooks.clone(),
            widget.clone(),
            call_id.clone(),
            progress,
            announced,
        ));
        info!(call = %call_id, codec = media.codec.name(), "browser call placed");
        let service = self.clone();
        let active = parts.metrics.call_started();
        let (metrics, browser_codec) = (parts.metrics.clone(), media.codec);
        tokio::spawn(async move {
            let driven = AssertUnwindSafe(driver::run(call_parts)).catch_unwind();
            let report = driven.await.unwrap_or_else(|_| {
                // Dropped in the unwind, the call's media link took it off
                // its shard and its trunk leg hangs up: the call alone ends.
                error!(call = %context.call_id, "the call's control panicked: it ends as failed");
                metrics.call_panicked(crate::metrics::CallPart::Control);
                failed_view.send_replace(CallView {
                    state: CallState::Ended,
                    reason: Some(Disposition::Failed.as_str()),
                    ..CallView::default()
                });
                CallReport::failed(browser_codec, tokio::time::Instant::now().into_std())
            });
            drop(permit);
            drop(active);
            service.on_ended(context, report).await;
        });
        Ok(PlacedCall {
            call_id,
            answer,
            token,
            privacy_ref,
        })
    }

    async fn on_ended(&self, context: CdrContext, report: CallReport) {
        let parts = &self.inner.parts;
        parts.metrics.call_ended(report.outcome.disposition);
        parts.cdrs.write(context.record(&parts.node_id, &report));
        if let Some(announcer) = self.inner.announcer.get() {
            announcer.ended(&context.call_id);
        }
        info!(
            call = %context.call_id,
            disposition = report.outcome.disposition.as_str(),
            ended_by = report.outcome.ended_by.as_str(),
            "browser call ended"
        );
        let Some((call_id, call)) = self.inner.calls.remove(&context.call_id) else {
            return;
        };
        self.inner.recently_ended.insert(call_id.clone(), call);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(ENDED_CALL_LINGER).await;
            inner.recently_ended.remove(&call_id);
        });
    }

    /// A recorder for calls on numbers that record at all.
    fn recorder_for(&self, widget: &WidgetRoute, call_id: &str) -> Option<RecorderHandle> {
        if widget.recording == RecordingPolicy::Off {
            return None;
        }
        let recorders = self.inner.parts.recorders.as_ref()?;
        Some(recorders.start(RecordedCall {
            call_id: call_id.into(),
            tenant_id: widget.tenant_id.clone(),
            number_id: widget.number_id.clone(),
            policy: widget.recording.as_str(),
            notice_hash: notice_hash(widget.notice_text.as_deref()),
            retention_days: widget.retention_days,
        }))
    }

    /// Refuses new calls and asks every call in progress to hang up.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        for call in self.inner.calls.iter() {
            call.hang_up(HangupRequest::Shutdown);
        }
    }
}

/// Queues `call.ringing` and `call.answered` as the call reaches them,
/// each at most once, until the call's control is gone, and announces the
/// answer to the cluster with the call's record so far. Off the call's
/// path: the control never waits for the store.
async fn announce_progress(
    webhooks: Webhooks,
    widget: WidgetRoute,
    call_id: CallId,
    mut progress: mpsc::UnboundedReceiver<CallState>,
    mut announced: Option<(Arc<dyn CallAnnouncer>, CdrRecord)>,
) {
    let mut sent = Vec::new();
    while let Some(state) = progress.recv().await {
        let event = match state {
            CallState::Ringing => webhooks::CALL_RINGING,
            CallState::Answered => webhooks::CALL_ANSWERED,
            CallState::Setup | CallState::Ended => continue,
        };
        if sent.contains(&event) {
            continue;
        }
        sent.push(event);
        if let (CallState::Answered, Some((announcer, skeleton))) = (state, announced.as_mut()) {
            skeleton.on_answered(SystemTime::now());
            announcer.carrying(&call_id, skeleton);
        }
        webhooks
            .on_call_progress(&widget, &call_id, event, SystemTime::now())
            .await;
    }
}

struct CdrContext {
    call_id: CallId,
    privacy_ref: String,
    widget: WidgetRoute,
    visitor_ip: IpAddr,
    created_at: SystemTime,
    started: Instant,
}

impl CdrContext {
    /// The record as far as placing the call knows it: the call as it
    /// would be recorded if it ended now, unanswered, by the node.
    fn skeleton(&self, node_id: &str, browser_codec: &str) -> CdrRecord {
        let mut record = CdrRecord::begin(
            self.call_id.as_str(),
            &self.widget,
            node_id,
            self.created_at,
        );
        record.set_visitor_ip(self.visitor_ip);
        record.browser_codec = Some(browser_codec.to_owned());
        record.privacy_ref = Some(self.privacy_ref.clone());
        record
    }

    fn record(&self, node_id: &str, report: &CallReport) -> CdrRecord {
        let outcome = &report.outcome;
        let wall = |at: Instant| self.created_at + at.saturating_duration_since(self.started);
        let mut record = self.skeleton(node_id, report.browser_codec);
        if let Some(answered_at) = outcome.answered_at {
            record.on_answered(wall(answered_at));
        }
        record.on_ended(
            wall(outcome.ended_at),
            outcome.ended_by,
            outcome.disposition.as_str(),
        );
        record.trunk = outcome.trunk.clone();
        record.sip_code = outcome.sip_code;
        record.sip_reason = outcome.reason.phrase.clone();
        record.q850_cause = outcome.reason.q850_cause;
        record.trunk_codec = report.trunk_codec.map(str::to_owned);
        record.recorded = report.recorded;
        record.browser_stats = leg_stats(&report.browser);
        record.trunk_stats = leg_stats(&report.trunk);
        record
    }
}

fn leg_stats(stats: &LegStats) -> StoredLegStats {
    StoredLegStats {
        packets_sent: stats.packets_sent,
        packets_received: stats.packets_received,
        packets_lost: stats.packets_lost,
        jitter_us: StoredLegStats::jitter_us_from_ms(stats.jitter_ms),
        mos_worst_x100: stats.mos.worst.and_then(StoredLegStats::mos_x100),
        mos_average_x100: stats.mos.average.and_then(StoredLegStats::mos_x100),
    }
}
