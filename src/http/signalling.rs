//! The signalling contract between the widget and the node:
//! `POST /v1/widgets/{id}/calls`, `GET /v1/widgets/{id}/config`, the call's
//! events WebSocket and `DELETE /v1/calls/{id}`, plus the widget script and
//! the demo page.
//!
//! Checks run cheapest first, and nothing is created until all have passed:
//! the widget exists (404), the browser's Origin is one the widget allows
//! (403), the node is not draining (503), the client IP and the widget are
//! under their rate limits (429), the body is a well-formed request with a
//! usable offer (400), the tenant has a free call slot (429). The callee
//! comes from the widget's number.
//!
//! The widget runs on customers' own sites, so these routes answer CORS
//! preflights and let an allowed origin read their answers, refusals
//! included (see [`super::cors`]); a refused origin learns nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Readiness;
use super::admission::{Admission, NumberSlot};
use super::client_addr::client_ip;
use super::cors;
use super::forward;
use super::guard::{Refusal, origin_allowed};
use super::handoff::HandoffClient;
use super::lookups::{LookupBudget, within_budget};
use crate::call::requests::{CallCommand, CallView, HangupRequest};
use crate::call::service::{CallService, Follower, LiveCall, PlaceError};
use crate::call::state::CallState;
use crate::cluster::Cluster;
use crate::cluster::handoff::{self, HandoffOutcome};
use crate::config::IceServerConfig;
use crate::dialing::Allowance;
use crate::domain::{CallId, Consent};
use crate::media::quality::{Warning, Warnings};
use crate::metrics::{Metrics, RefusedReason};
use crate::store::{Store, WidgetRoute, now_ms};
use crate::webrtc::turn_rest;

/// A browser offer is a few KiB; this bounds what a request can make the
/// node buffer before it is refused.
const MAX_BODY_BYTES: usize = super::serve::MAX_BODY_BYTES;
/// The largest message (and frame) the widget may send on its events
/// socket: its messages are a few dozen bytes.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;
/// How often the events socket pings the widget; after
/// [`UNANSWERED_PINGS`] with no word back the socket is closed, so a
/// vanished browser does not hold it (nor its connection) open.
const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const UNANSWERED_PINGS: u32 = 2;
/// The `Retry-After` (seconds) of a call refused while the node drains: a
/// load balancer will have moved the visitor's retry to another node.
const DRAINING_RETRY_AFTER: u64 = 5;
const WIDGET_SCRIPT: &str = include_str!("../../widget/callgate.js");
const DEMO_PAGE: &str = include_str!("../../widget/demo.html");

/// What the signalling routes share.
#[derive(Clone)]
pub struct SignallingState {
    pub calls: CallService,
    pub store: Store,
    /// The guards, and in a cluster the cluster-wide limits.
    pub admission: Admission,
    /// `scheme://host[:port]` of this node, what `"self"` stands for.
    pub own_origin: String,
    /// Base URL for links (`http://…`).
    pub base_url: String,
    /// Where browsers reach this node (`cluster.public_url`, or the base
    /// URL): the events URL of its calls is derived from it.
    pub public_url: String,
    /// In a cluster: placement, and handoffs to other nodes.
    pub cluster: Option<Cluster>,
    pub handoffs: HandoffClient,
    pub ice_servers: Vec<IceServerConfig>,
    /// How long a TURN credential made from an auth secret is valid.
    pub turn_credential_ttl: std::time::Duration,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    pub metrics: Arc<Metrics>,
    /// While it says draining, new calls are refused.
    pub readiness: Readiness,
    /// Where a tenant the operator gave no allowance may call.
    pub default_allowance: Arc<Allowance>,
}

/// The signalling routes. The widget's (its config, its calls and their
/// preflights) look the widget up, within the client's `lookups` budget;
/// a call's own routes check its token in memory.
pub fn routes(state: SignallingState, lookups: LookupBudget) -> Router {
    let budget = axum::middleware::from_fn_with_state(lookups, within_budget);
    Router::new()
        .route(
            "/v1/widgets/{id}/config",
            get(widget_config).options(|s, p, h| widget_preflight(s, p, h, "GET")),
        )
        .route(
            "/v1/widgets/{id}/calls",
            post(place_call).options(|s, p, h| widget_preflight(s, p, h, "POST")),
        )
        .route_layer(budget)
        .route("/v1/internal/widgets/{id}/calls", post(handed_over))
        .route("/widget/callgate.js", get(widget_script))
        .route("/demo", get(demo_page))
        // WebSockets over HTTP/2 (RFC 8441) arrive as CONNECT.
        .route(
            "/v1/calls/{id}/events",
            on(MethodFilter::GET.or(MethodFilter::CONNECT), events),
        )
        .route(
            "/v1/calls/{id}",
            axum::routing::delete(hang_up).options(call_preflight),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

/// The widget script's entity tag: a digest of its text, so a browser
/// revalidates a cached copy for the price of a 304.
static WIDGET_SCRIPT_ETAG: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(WIDGET_SCRIPT.as_bytes());
    let tag = format!("\"{}\"", hex::encode(&digest[..12]));
    HeaderValue::from_str(&tag).expect("hex is a valid header value")
});

/// The script customers embed with one tag on their own sites: loadable
/// cross-origin (`Cross-Origin-Resource-Policy`, for sites that isolate
/// themselves), cached for five minutes so a fix reaches every site soon.
async fn widget_script(headers: HeaderMap) -> Response {
    let etag = &*WIDGET_SCRIPT_ETAG;
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| if_none_match(value, etag));
    let response_headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ),
        (header::ETAG, etag.clone()),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    (response_headers, WIDGET_SCRIPT).into_response()
}

/// Whether an `If-None-Match` list (RFC 9110 §13.1.2) names `etag`; the
/// weak comparison applies, so `W/` prefixes are ignored.
fn if_none_match(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = value.to_str() else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

async fn demo_page(State(state): State<SignallingState>) -> Response {
    let script = format!("{}/widget/callgate.js", state.base_url);
    let page = DEMO_PAGE
        .replace("{{WIDGET_SCRIPT_URL}}", &script)
        .replace("{{WIDGET_ID}}", "demo");
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             connect-src 'self' ws: wss:; media-src 'self' blob:",
        ),
    ];
    (headers, page).into_response()
}

/// A widget a request may use, and the Origin its answer may be read from.
struct CheckedWidget {
    widget: WidgetRoute,
    /// `None` for a same-origin request that sent no Origin.
    origin: Option<HeaderValue>,
}

/// `response` as the request's origin may see it: readable cross-origin
/// when `origin` was allowed, otherwise only marked as depending on it.
fn for_origin(response: Response, origin: Option<&HeaderValue>) -> Response {
    match origin {
        Some(origin) => cors::allow(response, origin),
        None => cors::vary_on_origin(response),
    }
}

/// A refused widget or call request: answered with its status and message,
/// `Vary: Origin` and no CORS header, so a page on another site cannot read
/// it.
#[derive(Debug, Clone, Copy)]
struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        cors::vary_on_origin(error(self.0, self.1))
    }
}

const ORIGIN_REFUSED: Refused =
    Refused(StatusCode::FORBIDDEN, "origin not allowed for this widget");

/// The request's Origin if `allowed_origins` lists it; `Err` with the 403
/// for an Origin it does not. `Ok(None)` when no Origin was sent.
fn checked_origin(
    state: &SignallingState,
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<Option<HeaderValue>, Refused> {
    let Some(origin) = cors::request_origin(headers) else {
        return Ok(None);
    };
    if origin_allowed(origin.to_str().ok(), allowed_origins, &state.own_origin) {
        return Ok(Some(origin.clone()));
    }
    state.metrics.http_refused(RefusedReason::Origin);
    Err(ORIGIN_REFUSED)
}

/// The widget, or the response that refuses the request.
/// `same_origin_ok`: a browser sends no Origin on a same-origin GET, and
/// the widget config is no secret, so a missing Origin is accepted there.
async fn checked_widget(
    state: &SignallingState,
    widget_id: &str,
    headers: &HeaderMap,
    same_origin_ok: bool,
) -> Result<CheckedWidget, Refused> {
    let widget = widget_route(state, widget_id).await?;
    let origin = checked_origin(state, headers, &widget.allowed_origins)?;
    if origin.is_none() && !same_origin_ok {
        state.metrics.http_refused(RefusedReason::Origin);
        return Err(ORIGIN_REFUSED);
    }
    Ok(CheckedWidget { widget, origin })
}

/// The widget with this id, or the response that refuses the request.
async fn widget_route(state: &SignallingState, widget_id: &str) -> Result<WidgetRoute, Refused> {
    match state.store.widget_route(widget_id).await {
        Ok(Some(widget)) => Ok(widget),
        Ok(None) => Err(Refused(StatusCode::NOT_FOUND, "no such widget")),
        Err(e) => {
            tracing::warn!(error = %e, "widget lookup failed");
            Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable",
            ))
        }
    }
}

/// A preflight for one of a widget's routes (`methods`): answered only for
/// an origin the widget allows.
async fn widget_preflight(
    State(state): State<SignallingState>,
    Path(widget_id): Path<String>,
    headers: HeaderMap,
    methods: &'static str,
) -> Response {
    match checked_widget(&state, &widget_id, &headers, false).await {
        Ok(CheckedWidget {
            origin: Some(origin),
            ..
        }) => cors::preflight(&origin, methods),
        Ok(_) => ORIGIN_REFUSED.into_response(),
        Err(refused) => refused.into_response(),
    }
}

#[derive(Serialize)]
struct IceServer {
    urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
}

#[derive(Serialize)]
struct WidgetConfig {
    ice_servers: Vec<IceServer>,
    recording: String,
    notice: Option<String>,
}

async fn widget_config(
    State(state): State<SignallingState>,
    Path(widget_id): Path<String>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let CheckedWidget { widget, origin } =
        match checked_widget(&state, &widget_id, &headers, true).await {
            Ok(checked) => checked,
            Err(refused) => return refused.into_response(),
        };
    let client = client_ip(peer.ip(), &headers, &state.trusted_proxies);
    let now = tokio::time::Instant::now().into_std();
    if let Err(refusal) = state.admission.guards.check_config_request(client, now) {
        state.metrics.http_refused(refusal.reason());
        return for_origin(refusal.into_response(), origin.as_ref());
    }
    let config = WidgetConfig {
        ice_servers: state
            .ice_servers
            .iter()
            .map(|s| ice_server(&state, s))
            .collect(),
        recording: widget.recording.as_str().to_owned(),
        notice: widget.notice_text.clone(),
    };
    for_origin(Json(config).into_response(), origin.as_ref())
}

/// `server` as the widget gets it: with a fresh TURN credential of its own
/// when the node shares a secret with the TURN server.
fn ice_server(state: &SignallingState, server: &IceServerConfig) -> IceServer {
    let urls = server.urls.clone();
    if let Some(secret) = &server.auth_secret {
        let expires = std::time::SystemTime::now() + state.turn_credential_ttl;
        let expires_unix = expires
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let opaque = uuid::Uuid::new_v4().simple().to_string();
        let made = turn_rest::credential(secret.expose().as_bytes(), expires_unix, &opaque);
        return IceServer {
            urls,
            username: Some(made.username),
            credential: Some(made.credential),
        };
    }
    IceServer {
        urls,
        username: server.username.clone(),
        credential: server.credential.as_ref().map(|c| c.expose().to_owned()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceRequest {
    offer: String,
    #[serde(default)]
    consent: Option<Consent>,
}

#[derive(Serialize)]
struct PlaceResponse {
    call_id: CallId,
    answer: String,
    token: String,
    events: String,
    /// Shown to the visitor when the call ends, for privacy requests.
    privacy_ref: String,
}

async fn place_call(
    State(state): State<SignallingState>,
    Path(widget_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let CheckedWidget { widget, origin } =
        match checked_widget(&state, &widget_id, &headers, false).await {
            Ok(checked) => checked,
            Err(refused) => return refused.into_response(),
        };
    let client = client_ip(peer.ip(), &headers, &state.trusted_proxies);
    let placing = Placing::Received {
        origin: headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()),
    };
    let response = match talk_left_today(&state, &widget).await {
        Ok(talk_limit) => place_checked(&state, &widget, client, &body, talk_limit, placing).await,
        Err(refused) => refused,
    };
    for_origin(response, origin.as_ref())
}

/// A call another node of the cluster hands over
/// (`POST /v1/internal/widgets/{id}/calls`): signed with the cluster secret
/// and naming the visitor's address. The receiving node has checked the
/// rates and the page's Origin; this node checks the rest, as for a call
/// of its own. The answer goes back to that node, which adds the CORS
/// headers.
async fn handed_over(
    State(state): State<SignallingState>,
    Path(widget_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(cluster) = &state.cluster else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let time = text(handoff::TIME_HEADER).and_then(|t| t.parse::<u64>().ok());
    let client = crate::http::handoff::client_of(headers.get(handoff::CLIENT_HEADER));
    let (Some(time), Some(client), Some(tag)) = (time, client, text(handoff::AUTH_HEADER)) else {
        return error(StatusCode::FORBIDDEN, "not a handoff from this cluster");
    };
    let call = handoff::Handoff {
        widget_id: &widget_id,
        client,
        origin: text(header::ORIGIN.as_str()),
        body: &body,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if let Err(refused) = cluster.verify_handoff(now, time, &call, tag) {
        tracing::warn!(%refused, "a call handed over was refused");
        return error(StatusCode::FORBIDDEN, "not a handoff from this cluster");
    }
    // The handing node checked the page's Origin against the widget's list
    // (a `self` there meaning that node's own origin); the call answers to
    // that page alone, here too.
    let Some(origin) = call.origin else {
        return error(
            StatusCode::FORBIDDEN,
            "a call handed over names its page's Origin",
        );
    };
    let mut widget = match widget_route(&state, &widget_id).await {
        Ok(widget) => widget,
        Err(refused) => return refused.into_response(),
    };
    widget.allowed_origins = vec![origin.to_owned()];
    match talk_left_today(&state, &widget).await {
        Ok(talk_limit) => {
            let placing = Placing::HandedOver;
            place_checked(&state, &widget, client, &body, talk_limit, placing).await
        }
        Err(refused) => refused,
    }
}

/// Where a call request came from.
#[derive(Clone, Copy)]
enum Placing<'a> {
    /// From a browser; `origin` as it sent it. In a cluster the call may be
    /// handed to another node.
    Received { origin: Option<&'a str> },
    /// From another node, which checked the rates: placed here.
    HandedOver,
}

const DAY_MS: i64 = 86_400_000;

/// What is left of the number's minutes today (UTC) where it has a cap:
/// the longest the call may talk. Used up, the call is refused (429 until
/// midnight); a store that cannot say refuses it too (503), since a cap
/// that fails open is no cap.
async fn talk_left_today(
    state: &SignallingState,
    widget: &WidgetRoute,
) -> Result<Option<Duration>, Response> {
    let Some(minutes) = widget.number_limits.minutes_per_day else {
        return Ok(None);
    };
    let now = now_ms();
    let midnight = now - now.rem_euclid(DAY_MS);
    let used = state
        .store
        .talk_ms_since(&widget.tenant_id, &widget.number_id, midnight)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "a number's minutes today could not be read");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this number's minutes cannot be checked now: try again",
            )
        })?;
    let left = i64::from(minutes) * 60_000 - used;
    if left <= 0 {
        let until_midnight = u64::try_from(midnight + DAY_MS - now).unwrap_or(0);
        let refusal = Refusal::DailyMinutesUsed {
            retry_after: Duration::from_millis(until_midnight),
        };
        state.metrics.http_refused(refusal.reason());
        return Err(refusal.into_response());
    }
    Ok(Some(Duration::from_millis(left.unsigned_abs())))
}

/// Places a call through `widget`, whose Origin check has passed, to talk
/// at most `talk_limit` where the number's minutes are capped.
/// In a cluster a call received from a browser may be handed to the node
/// placement chose, after the checks every node would make the same: the
/// allowance, the rates and the body. A draining node then hands its new
/// calls over rather than refusing them.
async fn place_checked(
    state: &SignallingState,
    widget: &WidgetRoute,
    client: IpAddr,
    body: &[u8],
    talk_limit: Option<Duration>,
    placing: Placing<'_>,
) -> Response {
    let may_hand_over = matches!(placing, Placing::Received { .. }) && state.cluster.is_some();
    if !may_hand_over && state.readiness.is_draining() {
        return draining(state);
    }
    if let Some(refused) = allowance_refusal(state, widget) {
        return refused;
    }
    if let Placing::Received { .. } = placing {
        let now = tokio::time::Instant::now().into_std();
        let rates = state
            .admission
            .check_rates(client, &widget.widget_id, &widget.limits, now);
        if let Err(refusal) = rates.await {
            state.metrics.http_refused(refusal.reason());
            return refusal.into_response();
        }
    }
    let request: PlaceRequest = match parse_body(body) {
        Ok(request) => request,
        Err(refused) => {
            state.metrics.http_refused(RefusedReason::BadRequest);
            return error(StatusCode::BAD_REQUEST, refused.to_string());
        }
    };
    if let (Placing::Received { origin }, Some(cluster)) = (placing, &state.cluster) {
        let call = handoff::Handoff {
            widget_id: &widget.widget_id,
            client,
            origin,
            body,
        };
        if let Some(answer) = hand_over(state, cluster, &call).await {
            return answer;
        }
        if state.readiness.is_draining() {
            return draining(state);
        }
    }
    place_here(state, widget, client, &request, talk_limit).await
}

/// The refusal of a call to a number outside its tenant's dialing
/// allowance; `None` for a number inside it.
fn allowance_refusal(state: &SignallingState, widget: &WidgetRoute) -> Option<Response> {
    let allowance = widget.allowance.as_ref();
    let allowance = allowance.unwrap_or(&state.default_allowance);
    let refusal = allowance.check(&widget.trunk, &widget.e164).err()?;
    tracing::warn!(
        tenant = %widget.tenant_id,
        number = %widget.number_id,
        %refusal,
        "call refused: the number is outside its tenant's dialing allowance"
    );
    state.metrics.http_refused(RefusedReason::NotAllowed);
    Some(error(
        StatusCode::FORBIDDEN,
        "calls to this number are not allowed",
    ))
}

/// Places the call on this node, once the tenant, the widget and the
/// number each have a slot for it.
async fn place_here(
    state: &SignallingState,
    widget: &WidgetRoute,
    client: IpAddr,
    request: &PlaceRequest,
    talk_limit: Option<Duration>,
) -> Response {
    let number = NumberSlot {
        id: &widget.number_id,
        limit: widget.number_limits.max_concurrent_calls,
    };
    let slots =
        state
            .admission
            .take_slots(&widget.tenant_id, &widget.widget_id, &widget.limits, number);
    let permit = match slots.await {
        Ok(permit) => permit,
        Err(refusal) => {
            state.metrics.http_refused(refusal.reason());
            return refusal.into_response();
        }
    };
    match state.calls.place(
        widget,
        &request.offer,
        client,
        request.consent,
        permit,
        talk_limit,
    ) {
        Ok(placed) => {
            let events = events_url(&state.public_url, &placed.call_id, &placed.token);
            let body = PlaceResponse {
                call_id: placed.call_id,
                answer: placed.answer,
                token: placed.token,
                events,
                privacy_ref: placed.privacy_ref,
            };
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e @ (PlaceError::Offer(_) | PlaceError::Webrtc(_))) => {
            state.metrics.http_refused(RefusedReason::BadRequest);
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The answer of the node placement chose for `call`; `None` to place it
/// here: this node was chosen, or the chosen one did not answer.
async fn hand_over(
    state: &SignallingState,
    cluster: &Cluster,
    call: &handoff::Handoff<'_>,
) -> Option<Response> {
    let owner = cluster.owner_for_new_call()?;
    match state.handoffs.hand_over(cluster, &owner, call).await {
        Ok(answer) => {
            cluster.count_handoff(HandoffOutcome::HandedOver);
            Some(answer)
        }
        Err(error) => {
            cluster.count_handoff(HandoffOutcome::Failed);
            tracing::warn!(owner = %owner.id, %error, "handing a call over failed: placing it here");
            None
        }
    }
}

/// 503 with `Retry-After`: the node takes no new calls.
fn draining(state: &SignallingState) -> Response {
    state.metrics.http_refused(RefusedReason::Draining);
    let headers = [(header::RETRY_AFTER, HeaderValue::from(DRAINING_RETRY_AFTER))];
    let body = Json(serde_json::json!({ "error": "this node is draining: try again" }));
    (StatusCode::SERVICE_UNAVAILABLE, headers, body).into_response()
}

/// Why a call request's body was refused; its text is the 400's message.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body is not a valid call request: {0}")]
    NotARequest(serde_json::Error),
    /// A field's path (`offer`) and what is wrong with it.
    #[error("{0}: {1}")]
    BadField(String, serde_json::Error),
}

/// The body as a [`PlaceRequest`], or what is wrong with it.
fn parse_body(body: &[u8]) -> Result<PlaceRequest, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." => BodyError::NotARequest(e.into_inner()),
            _ => BodyError::BadField(path, e.into_inner()),
        }
    })
}

fn events_url(base_url: &str, call_id: &str, token: &str) -> String {
    let ws_base = base_url
        .strip_prefix("https://")
        .map(|rest| format!("wss://{rest}"))
        .or_else(|| {
            base_url
                .strip_prefix("http://")
                .map(|r| format!("ws://{r}"))
        })
        .unwrap_or_else(|| base_url.to_owned());
    format!("{ws_base}/v1/calls/{call_id}/events?token={token}")
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

/// The live call if `token` is its token (compared in constant time).
fn authorised(
    state: &SignallingState,
    call_id: &str,
    token: &str,
) -> Option<crate::call::service::LiveCall> {
    let call = state.calls.call(call_id)?;
    let equal = crate::privacy::constant_time_eq(call.token.as_bytes(), token.as_bytes());
    equal.then_some(call)
}

/// The live call the request names, with the Origin its answer may be
/// read from; or the response that refuses it: 404 for an unknown call or
/// a wrong token, 403 for an Origin its widget does not allow.
fn checked_call(
    state: &SignallingState,
    call_id: &str,
    token: &str,
    headers: &HeaderMap,
) -> Result<(crate::call::service::LiveCall, Option<HeaderValue>), Refused> {
    let Some(call) = authorised(state, call_id, token) else {
        return Err(Refused(StatusCode::NOT_FOUND, "no such call"));
    };
    let origin = checked_origin(state, headers, &call.allowed_origins)?;
    Ok((call, origin))
}

/// The node of the cluster that carries `call_id`, when this node does
/// not know the call and the request was not forwarded already. Only a
/// call id as nodes make them (a UUID) costs a look in Redis.
async fn carried_elsewhere(
    state: &SignallingState,
    refused: &Refused,
    call_id: &str,
    headers: &HeaderMap,
) -> Option<crate::cluster::NodeEntry> {
    let unknown = refused.0 == StatusCode::NOT_FOUND && uuid::Uuid::parse_str(call_id).is_ok();
    if !unknown || forward::was_forwarded(headers) {
        return None;
    }
    state.cluster.as_ref()?.owner_of_call(call_id).await
}

/// `refused`, or the answer of the node that carries the call, which gets
/// the request as `method`.
async fn refused_or_forwarded(
    state: &SignallingState,
    refused: Refused,
    method: Method,
    call_id: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let owner = carried_elsewhere(state, &refused, call_id, headers).await;
    match (owner, uri.path_and_query()) {
        (Some(owner), Some(path)) => {
            forward::request(&state.handoffs, &owner, method, path.as_str(), headers).await
        }
        _ => refused.into_response(),
    }
}

/// A preflight for the hang-up (`DELETE`, which a page closing sends with
/// `keepalive`).
async fn call_preflight(
    State(state): State<SignallingState>,
    Path(call_id): Path<String>,
    Query(query): Query<TokenQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match checked_call(&state, &call_id, &query.token, &headers) {
        Ok((_, Some(origin))) => cors::preflight(&origin, "DELETE"),
        Ok((_, None)) => ORIGIN_REFUSED.into_response(),
        Err(refused) => {
            let method = Method::OPTIONS;
            refused_or_forwarded(&state, refused, method, &call_id, &uri, &headers).await
        }
    }
}

async fn hang_up(
    State(state): State<SignallingState>,
    Path(call_id): Path<String>,
    Query(query): Query<TokenQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match checked_call(&state, &call_id, &query.token, &headers) {
        Ok((call, origin)) => {
            call.hang_up(HangupRequest::Visitor);
            for_origin(StatusCode::NO_CONTENT.into_response(), origin.as_ref())
        }
        Err(refused) => {
            let method = Method::DELETE;
            refused_or_forwarded(&state, refused, method, &call_id, &uri, &headers).await
        }
    }
}

async fn events(
    State(state): State<SignallingState>,
    Path(call_id): Path<String>,
    Query(query): Query<TokenQuery>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let call = match checked_call(&state, &call_id, &query.token, &headers) {
        Ok((call, _)) => call,
        Err(refused) => {
            let owner = carried_elsewhere(&state, &refused, &call_id, &headers).await;
            let (Some(owner), Some(path)) = (owner, uri.path_and_query()) else {
                return refused.into_response();
            };
            let path = path.as_str();
            return match forward::events(&state.handoffs, &owner, path, &headers).await {
                Ok(owner_socket) => upgrade
                    .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
                    .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
                    .on_upgrade(move |socket| {
                        forward::relay_events(socket, owner_socket, PING_INTERVAL, UNANSWERED_PINGS)
                    }),
                Err(answer) => answer,
            };
        }
    };
    let Some(follower) = call.follow() else {
        state.metrics.http_refused(RefusedReason::RateLimited);
        let message = "this call already has its events sockets open";
        return error(StatusCode::TOO_MANY_REQUESTS, message);
    };
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_events(socket, call, follower))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Hangup,
    Dtmf { digits: String },
    Consent { value: ConsentChange },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConsentChange {
    Granted,
    Revoked,
}

/// What the widget has been told so far.
#[derive(Default)]
struct Told {
    state: Option<CallState>,
    recording: Option<bool>,
    quality: Warnings,
}

fn view_messages(view: &CallView, sent: &mut Told) -> Vec<String> {
    let mut out = Vec::new();
    if view.state != CallState::Setup && sent.state != Some(view.state) {
        let message = match view.reason {
            Some(reason) => {
                serde_json::json!({"type":"state","state":view.state.as_str(),"reason":reason})
            }
            None => serde_json::json!({"type":"state","state":view.state.as_str()}),
        };
        out.push(message.to_string());
        sent.state = Some(view.state);
    }
    if sent.recording != Some(view.recording) {
        out.push(serde_json::json!({"type":"recording","active":view.recording}).to_string());
        sent.recording = Some(view.recording);
    }
    for warning in Warning::ALL {
        let active = view.quality.contains(warning);
        if active != sent.quality.contains(warning) {
            let message =
                serde_json::json!({"type":"quality","warning":warning.as_str(),"active":active});
            out.push(message.to_string());
        }
    }
    sent.quality = view.quality;
    out
}

/// Follows the call for the widget until it ends, the widget goes away, or
/// [`UNANSWERED_PINGS`] pings in a row get no answer.
async fn serve_events(mut socket: WebSocket, call: LiveCall, _follower: Follower) {
    let mut view = call.view.clone();
    let mut sent = Told::default();
    let start = tokio::time::Instant::now() + PING_INTERVAL;
    let mut pings = tokio::time::interval_at(start, PING_INTERVAL);
    let mut unanswered = 0;
    loop {
        let current = view.borrow_and_update().clone();
        for text in view_messages(&current, &mut sent) {
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        if current.state == CallState::Ended {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        tokio::select! {
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            message = socket.recv() => {
                unanswered = 0;
                match message {
                    Some(Ok(Message::Text(text))) => on_client_message(&call, &text),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
            _ = pings.tick() => {
                if unanswered == UNANSWERED_PINGS {
                    return;
                }
                unanswered += 1;
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn on_client_message(call: &LiveCall, text: &str) {
    let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
        return;
    };
    let command = match message {
        ClientMessage::Hangup => return call.hang_up(HangupRequest::Visitor),
        ClientMessage::Dtmf { digits } => {
            let valid = !digits.is_empty()
                && digits.len() <= 32
                && digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'));
            if !valid {
                return;
            }
            CallCommand::Dtmf(digits)
        }
        ClientMessage::Consent { value } => CallCommand::Consent(match value {
            ConsentChange::Granted => Consent::Granted,
            ConsentChange::Revoked => Consent::Declined,
        }),
    };
    let _ = call.commands.try_send(command);
}

/// Reads `body` as a call request (and its offer, as placing a call checks
/// it) and as a message on a call's events socket. For the fuzzer and its
/// corpus test only: none of this may panic, whatever the bytes.
#[cfg(any(feature = "fuzzing", test))]
pub(crate) fn fuzz_request(body: &[u8]) {
    if let Ok(request) = parse_body(body) {
        if let Ok(offered) = crate::webrtc::offer::inspect(&request.offer) {
            let trunk = [crate::domain::Codec::Pcma];
            let _ = offered.choose(crate::config::BrowserCodec::G711, &trunk);
            let _ = offered.choose(crate::config::BrowserCodec::Opus, &trunk);
        }
    }
    let _ = serde_json::from_slice::<ClientMessage>(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widget_is_told_each_quality_warning_as_it_rises_and_clears() {
        let mut told = Told::default();
        let mut view = CallView {
            state: CallState::Answered,
            ..CallView::default()
        };
        let first = view_messages(&view, &mut told);
        assert_eq!(first.len(), 2, "state and recording: {first:?}");
        view.quality = Warnings::NONE.with(Warning::HighLoss).with(Warning::LowMos);
        assert_eq!(
            view_messages(&view, &mut told),
            [
                r#"{"active":true,"type":"quality","warning":"high-loss"}"#,
                r#"{"active":true,"type":"quality","warning":"low-mos"}"#,
            ]
        );
        assert!(view_messages(&view, &mut told).is_empty(), "said once");
        view.quality = Warnings::NONE.with(Warning::LowMos);
        assert_eq!(
            view_messages(&view, &mut told),
            [r#"{"active":false,"type":"quality","warning":"high-loss"}"#]
        );
    }
}
