//! [`CallService`]: places browser calls and keeps the live call table.
//!
//! Placing a call checks the offer, picks the browser leg's codec and the
//! media shard with the fewest calls, answers the offer with that shard's
//! port as the candidate, hands the call's media to the shard, starts the
//! trunk leg towards the widget's number, begins the call's record (a
//! [`CdrRecord`] that reads as failed by the node until the call says
//! otherwise) and spawns the call's driver. The driver returns the record
//! completed; it goes to the [`CdrWriter`] (which writes it and queues its
//! `call.ended` webhook), and the call leaves the table. The callee always
//! comes from the widget's number: the request that places a call has no
//! say in where it goes.

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
use super::report::Ending;
use super::requests::{CallCommand, CallView, HangupRequest};
use super::shard::{Engine, MediaLink, NewCall};
use super::state::CallState;
use super::{LocalPorts, MediaPlan, TrunkLeg};
use crate::config::BrowserCodec;
use crate::domain::{CallId, Codec, Consent, Disposition, EndedBy, RecordingPolicy};
use crate::media::endpoint::{EndpointConfig, EndpointCore};
use crate::media::ports::PortAllocator;
use crate::metrics::Metrics;
use crate::recording::gate::ConsentGate;
use crate::recording::receipt::notice_hash;
use crate::recording::recorder::{RecordedCall, RecorderHandle, Recorders};
use crate::sip::{CallRequest, SipAgent};
use crate::store::{CdrRecord, Store, WidgetRoute};
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
        talk_limit: Option<Duration>,
    ) -> Result<PlacedCall, PlaceError> {
        if self.inner.draining.load(Ordering::Relaxed) {
            return Err(PlaceError::Draining);
        }
        let started = tokio::time::Instant::now().into_std();
        let call_id = CallId::new(uuid::Uuid::new_v4().to_string());
        let media = self.start_media(widget, offer, &call_id, started)?;
        let request = CallRequest {
            route: widget.trunk.clone(),
            callee: widget.e164.clone(),
            talk_limit,
        };
        let parts = &self.inner.parts;
        let leg = match TrunkLeg::start(&parts.agent, media.trunk, parts.plan.announce_ip, request)
        {
            Ok(leg) => leg,
            Err(_) => {
                tokio::spawn(media.link.close());
                return Err(PlaceError::Capacity);
            }
        };
        let token = random_string(32);
        let privacy_ref = super::privacy_ref::new_privacy_ref();
        let (live, ends) = self.enter_call(&call_id, widget, token.clone());
        let mut skeleton = CdrRecord::begin(
            call_id.clone(),
            widget,
            parts.node_id.as_str(),
            SystemTime::now(),
        );
        skeleton.set_visitor_ip(visitor_ip);
        skeleton.browser_codec = Some(media.codec.name().to_owned());
        skeleton.privacy_ref = Some(privacy_ref.clone());
        self.follow_progress(widget, &call_id, ends.progress_rx, &skeleton);
        info!(call = %call_id, codec = media.codec.name(), "browser call placed");
        let call_parts = CallParts {
            media: media.link,
            ending: Ending {
                record: skeleton.clone(),
                started,
            },
            leg,
            commands: live.commands,
            hangup: live.hangup,
            view: ends.view,
            progress: ends.progress,
            gate: ConsentGate::new(widget.recording, widget.on_revoke, consent),
            recorder: media.recorder,
        };
        self.spawn_driver(call_parts, skeleton, permit);
        Ok(PlacedCall {
            call_id,
            answer: media.answer,
            token,
            privacy_ref,
        })
    }

    /// Answers the browser's offer and puts the call's media on the shard
    /// with the fewest calls, with trunk ports of its own and, where the
    /// number may record, the tap to its recorder.
    fn start_media(
        &self,
        widget: &WidgetRoute,
        offer: &str,
        call_id: &CallId,
        now: Instant,
    ) -> Result<StartedMedia, PlaceError> {
        let parts = &self.inner.parts;
        let offered = crate::webrtc::offer::inspect(offer)?;
        let trunk_codecs = parts
            .route_codecs
            .get(&widget.trunk)
            .map_or(&[][..], Vec::as_slice);
        let chosen = offered.choose(parts.browser_codec, trunk_codecs)?;
        let (ufrag, pwd) = (random_string(16), random_string(32));
        let shard = parts.engine.pick();
        let settings = parts
            .settings
            .get(shard.index())
            .ok_or(PlaceError::Capacity)?;
        let (session, answer) = BrowserSession::answer(settings, offer, chosen, &ufrag, &pwd, now)?;
        let trunk_ports = parts
            .ports
            .allocate(parts.plan.bind_ip)
            .map_err(|_| PlaceError::Capacity)?;
        let trunk = LocalPorts {
            rtp: trunk_ports.lease.rtp_port(),
            rtcp: trunk_ports.lease.rtcp_port(),
        };
        let endpoint =
            EndpointCore::new(&EndpointConfig::default(), now).map_err(|_| PlaceError::Capacity)?;
        let recorder = self.recorder_for(widget, call_id);
        let call_media = CallMedia::new(
            CallMediaParts {
                session,
                trunk: endpoint,
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
        Ok(StartedMedia {
            link,
            answer,
            codec: chosen.codec,
            trunk,
            recorder,
        })
    }

    /// Enters the call in the live call table, where the widget's requests
    /// find it; returns the call's ends of the channels.
    fn enter_call(
        &self,
        call_id: &CallId,
        widget: &WidgetRoute,
        token: String,
    ) -> (LiveEnds, ViewEnds) {
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (hangup_tx, hangup) = watch::channel(None);
        let (view_tx, view) = watch::channel(CallView::default());
        let (progress, progress_rx) = mpsc::unbounded_channel();
        self.inner.calls.insert(
            call_id.clone(),
            LiveCall {
                token,
                allowed_origins: widget.allowed_origins.as_slice().into(),
                commands: commands_tx,
                hangup: hangup_tx,
                view,
                followers: Arc::default(),
            },
        );
        (
            LiveEnds { commands, hangup },
            ViewEnds {
                view: view_tx,
                progress,
                progress_rx,
            },
        )
    }

    /// Queues the call's progress webhooks as it rings and is answered and,
    /// in a cluster, announces the call with its record so far.
    fn follow_progress(
        &self,
        widget: &WidgetRoute,
        call_id: &CallId,
        progress: mpsc::UnboundedReceiver<CallState>,
        skeleton: &CdrRecord,
    ) {
        let announced = self.inner.announcer.get().map(|announcer| {
            announcer.carrying(call_id, skeleton);
            (announcer.clone(), skeleton.clone())
        });
        tokio::spawn(announce_progress(
            self.inner.parts.webhooks.clone(),
            widget.clone(),
            call_id.clone(),
            progress,
            announced,
        ));
    }

    /// Runs the call's driver to the call's end, then writes its record.
    /// A driver that panics ends its call alone, as failed by the node,
    /// with what `skeleton` knew.
    fn spawn_driver<P: Send + 'static>(&self, parts: CallParts, skeleton: CdrRecord, permit: P) {
        let service = self.clone();
        let active = self.inner.parts.metrics.call_started();
        let failed_view = parts.view.clone();
        tokio::spawn(async move {
            let driven = AssertUnwindSafe(driver::run(parts)).catch_unwind();
            let record = driven.await.unwrap_or_else(|_| {
                // Dropped in the unwind, the call's media link took it off
                // its shard and its trunk leg hangs up: the call alone ends.
                error!(call = %skeleton.call_id, "the call's control panicked: it ends as failed");
                let metrics = &service.inner.parts.metrics;
                metrics.call_panicked(crate::metrics::CallPart::Control);
                failed_view.send_replace(CallView {
                    state: CallState::Ended,
                    reason: Some(Disposition::Failed.as_str()),
                    ..CallView::default()
                });
                let mut record = skeleton;
                record.on_ended(SystemTime::now(), EndedBy::Node, Disposition::Failed);
                record
            });
            drop(permit);
            drop(active);
            service.on_ended(record).await;
        });
    }

    async fn on_ended(&self, record: CdrRecord) {
        let parts = &self.inner.parts;
        parts.metrics.call_ended(record.disposition);
        info!(
            call = %record.call_id,
            disposition = record.disposition.as_str(),
            ended_by = record.ended_by.as_str(),
            "browser call ended"
        );
        let call_id = record.call_id.clone();
        parts.cdrs.write(record);
        if let Some(announcer) = self.inner.announcer.get() {
            announcer.ended(&call_id);
        }
        let Some((call_id, call)) = self.inner.calls.remove(&call_id) else {
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

/// A call's media, started on its shard.
struct StartedMedia {
    link: MediaLink,
    /// The SDP answer for the browser.
    answer: String,
    /// The browser leg's codec.
    codec: Codec,
    /// The trunk leg's RTP and RTCP ports.
    trunk: LocalPorts,
    /// Present when the number records at all.
    recorder: Option<RecorderHandle>,
}

/// The call's ends of the live call table's channels.
struct LiveEnds {
    commands: mpsc::Receiver<CallCommand>,
    hangup: watch::Receiver<Option<HangupRequest>>,
}

/// Where the call says how it goes: its view for the widget, and each
/// state it enters for the progress webhooks.
struct ViewEnds {
    view: watch::Sender<CallView>,
    progress: mpsc::UnboundedSender<CallState>,
    progress_rx: mpsc::UnboundedReceiver<CallState>,
}
