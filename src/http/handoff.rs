//! Handing a new call to the node placement chose: the call request goes
//! to that node's `POST /v1/internal/widgets/{id}/calls` (at its
//! `cluster.internal_url`), signed with the cluster secret
//! ([`crate::cluster::handoff`]), and its answer comes back to be relayed
//! to the browser as is: the call's id, the SDP answer with the owner's
//! media address, and the events URL at the owner's public URL.
//!
//! A handoff that fails to get an answer (the owner unreachable, slow, or
//! answering 5xx, a 503 from an owner that began draining included) is not
//! the visitor's problem: the caller places the call itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::cluster::handoff::{AUTH_HEADER, CLIENT_HEADER, Handoff, TIME_HEADER};
use crate::cluster::{Cluster, NodeEntry};

/// How long the owner may take to answer a handoff: placing a call is
/// local work (the INVITE goes out after the answer).
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of an owner's answer relayed.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why a handoff got no answer to relay.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("the owner's internal URL is not usable")]
    BadUrl,
    #[error("the owner did not answer in time")]
    Timeout,
    #[error("the owner could not be reached")]
    Unreachable,
    #[error("the owner failed ({0})")]
    Failed(StatusCode),
}

/// Sends handoffs; cheap to clone.
#[derive(Clone)]
pub struct HandoffClient {
    http: Arc<HttpsClient>,
}

impl HandoffClient {
    pub fn new() -> Self {
        let provider = || rustls::crypto::ring::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        // Without the system's CA certificates, https to another node
        // fails (and the caller places the call itself); http between
        // nodes on a private network still works.
        let builder = builder
            .with_provider_and_native_roots(provider())
            .unwrap_or_else(|_| {
                let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
            });
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(HANDOFF_TIMEOUT));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        Self {
            http: Arc::new(Client::builder(TokioExecutor::new()).build(connector)),
        }
    }

    /// Sends `request` to another node, waiting at most `timeout` for the
    /// answer's head.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<hyper::Response<hyper::body::Incoming>, HandoffError> {
        match tokio::time::timeout(timeout, self.http.request(request)).await {
            Err(_) => Err(HandoffError::Timeout),
            Ok(Err(_)) => Err(HandoffError::Unreachable),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Hands `call` to `owner`; the owner's answer, to relay.
    pub async fn hand_over(
        &self,
        cluster: &Cluster,
        owner: &NodeEntry,
        call: &Handoff<'_>,
    ) -> Result<Response, HandoffError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let url = format!(
            "{}/v1/internal/widgets/{}/calls",
            owner.internal_url, call.widget_id
        );
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(TIME_HEADER, now.to_string())
            .header(AUTH_HEADER, cluster.sign_handoff(now, call))
            .header(CLIENT_HEADER, call.client.to_string());
        if let Some(origin) = call.origin {
            request = request.header(header::ORIGIN, origin);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(call.body)))
            .map_err(|_| HandoffError::BadUrl)?;
        let response = self.send(request, HANDOFF_TIMEOUT).await?;
        let status = response.status();
        // A 503 too: the owner began draining, or has no room, since its
        // last heartbeat; this node may still take the call.
        if status.is_server_error() {
            return Err(HandoffError::Failed(status));
        }
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES);
        let body = tokio::time::timeout(HANDOFF_TIMEOUT, body.collect()).await;
        let body = match body {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return Err(HandoffError::Unreachable),
            Err(_) => return Err(HandoffError::Timeout),
        };
        Ok(relayed(status, retry_after, body))
    }
}

impl Default for HandoffClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The owner's answer as this node gives it: status, JSON body, and the
/// `Retry-After` of a refusal.
fn relayed(status: StatusCode, retry_after: Option<HeaderValue>, body: Bytes) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(body),
    )
        .into_response();
    if let Some(retry_after) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// The client address a handoff names, if it is one.
pub fn client_of(value: Option<&HeaderValue>) -> Option<IpAddr> {
    value?.to_str().ok()?.parse().ok()
}
