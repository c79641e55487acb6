//! A call's own requests that reach a node other than the call's: its
//! hang-up (`DELETE`, and that request's preflight) and its events socket.
//! Behind one public address any node may receive them; the node that
//! carries the call ([`crate::cluster::Cluster::owner_of_call`]) gets them
//! at its `internal_url`, and its answer comes back as it gave it.
//!
//! The owner checks the call's token and the page's Origin as it does for
//! a request of its own, so forwarding grants nothing. A forwarded request
//! carries [`FORWARDED_HEADER`] and is never forwarded again, so a stale
//! view of which node holds a call costs one hop, never a loop.
//!
//! The events socket is relayed message by message: the browser's side is
//! this node's WebSocket (HTTP/1.1 or HTTP/2), the owner's side a WebSocket
//! client over the upgraded connection to the owner. The relay pings the
//! browser as the owner would, so a page that went away frees both sides.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::handoff::HandoffClient;
use crate::cluster::NodeEntry;

/// Marks a request one node forwarded to another.
pub const FORWARDED_HEADER: &str = "x-callgate-forwarded";
/// How long the owner may take to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an owner's answer relayed (its answers are short JSON).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The request headers a forwarded request keeps: what the owner's checks
/// read. Nothing else of the browser's request goes on.
const KEPT_HEADERS: [header::HeaderName; 3] = [
    header::ORIGIN,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    header::ACCESS_CONTROL_REQUEST_HEADERS,
];

/// The owner's socket for a call's events.
pub type OwnerEvents = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether `headers` are those of a request forwarded by another node.
pub fn was_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_HEADER)
}

/// Sends `method path_and_query` to `owner` with the checked headers of
/// `headers`; the owner's answer, or 502 when it gave none.
pub async fn request(
    client: &HandoffClient,
    owner: &NodeEntry,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Response {
    let Some(request) = owner_request(owner, method, path_and_query, headers) else {
        return unreachable();
    };
    let Ok(response) = client.send(request, FORWARD_TIMEOUT).await else {
        return unreachable();
    };
    relay(response).await
}

/// Opens the call's events socket at `owner`: the owner's socket, or the
/// answer that refused it (as the owner gave it).
pub async fn events(
    client: &HandoffClient,
    owner: &NodeEntry,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<OwnerEvents, Response> {
    let key = generate_key();
    let mut request =
        owner_request(owner, Method::GET, path_and_query, headers).ok_or_else(unreachable)?;
    let upgrade = [
        (header::CONNECTION, "upgrade"),
        (header::UPGRADE, "websocket"),
        (header::SEC_WEBSOCKET_VERSION, "13"),
        (header::SEC_WEBSOCKET_KEY, key.as_str()),
    ];
    for (name, value) in upgrade {
        let value = HeaderValue::from_str(value).map_err(|_| unreachable())?;
        request.headers_mut().insert(name, value);
    }
    let response = client
        .send(request, FORWARD_TIMEOUT)
        .await
        .map_err(|_| unreachable())?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(relay(response).await);
    }
    let accept = response.headers().get(header::SEC_WEBSOCKET_ACCEPT);
    if accept.map(HeaderValue::as_bytes) != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err(unreachable());
    }
    let upgraded = tokio::time::timeout(FORWARD_TIMEOUT, hyper::upgrade::on(response))
        .await
        .map_err(|_| unreachable())?
        .map_err(|_| unreachable())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_ANSWER_BYTES))
        .max_frame_size(Some(MAX_ANSWER_BYTES));
    let io = TokioIo::new(upgraded);
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await)
}

/// Relays messages between the browser's socket and the owner's until
/// either closes, or the browser misses `unanswered_pings` pings in a row
/// sent every `ping_interval`.
pub async fn relay_events(
    mut browser: WebSocket,
    mut owner: OwnerEvents,
    ping_interval: Duration,
    unanswered_pings: u32,
) {
    let start = tokio::time::Instant::now() + ping_interval;
    let mut pings = tokio::time::interval_at(start, ping_interval);
    let mut unanswered = 0;
    loop {
        tokio::select! {
            from_browser = browser.recv() => {
                unanswered = 0;
                let message = match from_browser {
                    Some(Ok(ws::Message::Text(text))) => Message::text(text.as_str()),
                    Some(Ok(ws::Message::Binary(bytes))) => Message::binary(bytes),
                    Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => continue,
                    Some(Ok(ws::Message::Close(_)) | Err(_)) | None => break,
                };
                if owner.send(message).await.is_err() {
                    break;
                }
            }
            from_owner = owner.next() => {
                let message = match from_owner {
                    Some(Ok(Message::Text(text))) => ws::Message::Text(text.as_str().into()),
                    Some(Ok(Message::Binary(bytes))) => ws::Message::Binary(bytes),
                    // Answered by the client itself; the browser is pinged
                    // by this relay.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if browser.send(message).await.is_err() {
                    break;
                }
            }
            _ = pings.tick() => {
                if unanswered == unanswered_pings {
                    break;
                }
                unanswered += 1;
                if browser.send(ws::Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = browser.send(ws::Message::Close(None)).await;
    let _ = owner.close(None).await;
}

/// The request to `owner` for `path_and_query`: marked forwarded, with the
/// headers the owner's checks read.
fn owner_request(
    owner: &NodeEntry,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Option<Request<Full<Bytes>>> {
    let url = format!("{}{path_and_query}", owner.internal_url);
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header(FORWARDED_HEADER, "1");
    for name in KEPT_HEADERS {
        for value in headers.get_all(&name) {
            request = request.header(&name, value);
        }
    }
    request.body(Full::new(Bytes::new())).ok()
}

/// The owner's answer as this node gives it: status, the headers a browser
/// reads (CORS, `Retry-After`, the type), and the body.
async fn relay(response: hyper::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_ANSWER_BYTES);
    let Ok(Ok(body)) = tokio::time::timeout(FORWARD_TIMEOUT, body.collect()).await else {
        return unreachable();
    };
    let mut relayed = (parts.status, Body::from(body.to_bytes())).into_response();
    for (name, value) in &parts.headers {
        let name_text = name.as_str();
        let kept = name_text.starts_with("access-control-")
            || name == header::VARY
            || name == header::RETRY_AFTER
            || name == header::CONTENT_TYPE;
        if kept {
            relayed.headers_mut().append(name, value.clone());
        }
    }
    relayed
}

/// 502: the call's node could not be asked.
fn unreachable() -> Response {
    let body = axum::Json(serde_json::json!({
        "error": "the node carrying this call cannot be reached"
    }));
    (StatusCode::BAD_GATEWAY, body).into_response()
}
