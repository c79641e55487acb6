//! [`NodeClient`]: the node's HTTP surface as the load tool uses it: the
//! signalling contract (`POST /v1/widgets/{id}/calls`, `DELETE
//! /v1/calls/{id}`), `GET /healthz` and `GET /metrics`.
//!
//! Every request has a deadline, so a stalled node fails the run instead of
//! hanging it. Errors carry the node's own one-line reason (its JSON
//! `{"error"}` body) and never an SDP.

use std::time::Duration;

use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Longer than any request a healthy node takes, even at saturation.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot reach the node at {base}: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("the node did not answer within {}s: {what}", REQUEST_TIMEOUT.as_secs())]
    Timeout { what: &'static str },
    #[error("the node refused {what}: {status}: {message}{hint}")]
    Refused {
        what: &'static str,
        status: StatusCode,
        message: String,
        hint: &'static str,
    },
    #[error("unexpected answer from the node to {what}: {reason}")]
    Protocol { what: &'static str, reason: String },
}

/// A call the node accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct PlacedCall {
    pub call_id: String,
    pub answer: String,
    pub token: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// See the module documentation. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct NodeClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    widget: String,
    origin: String,
    /// `consent` of every call request (`None`: null).
    consent: Option<String>,
}

impl NodeClient {
    /// `base` is `http://host:port` without a trailing slash; `origin` is
    /// sent as the `Origin` of every call request, as a browser would.
    pub fn new(base: String, widget: String, origin: String) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Self {
            client,
            base,
            widget,
            origin,
            consent: None,
        }
    }

    /// Every call request carries `consent` (`granted`, `declined`).
    pub fn with_consent(mut self, consent: Option<String>) -> Self {
        self.consent = consent;
        self
    }

    /// Fails unless `GET /healthz` answers 200.
    pub async fn check_health(&self) -> Result<(), NodeError> {
        self.get("/healthz", "the health check").await.map(drop)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> Result<String, NodeError> {
        let body = self.get("/metrics", "the metrics scrape").await?;
        String::from_utf8(body.to_vec()).map_err(|_| NodeError::Protocol {
            what: "the metrics scrape",
            reason: "the body is not UTF-8".to_owned(),
        })
    }

    /// Places one call with `offer`; the node's answer SDP comes back.
    pub async fn place_call(&self, offer: &str) -> Result<PlacedCall, NodeError> {
        const WHAT: &str = "a call";
        let path = format!("/v1/widgets/{}/calls", self.widget);
        let body = serde_json::json!({ "offer": offer, "consent": self.consent }).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ORIGIN, &self.origin)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| protocol(WHAT, e))?;
        let (status, body) = self.send(request, WHAT).await?;
        if status != StatusCode::CREATED {
            return Err(refused(WHAT, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| protocol(WHAT, e))
    }

    /// Hangs `call` up (`DELETE /v1/calls/{id}`). A call the node already
    /// ended answers 404, which is no failure here.
    pub async fn hang_up(&self, call: &PlacedCall) -> Result<(), NodeError> {
        const WHAT: &str = "the hang-up";
        let uri = format!(
            "{}/v1/calls/{}?token={}",
            self.base, call.call_id, call.token
        );
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| protocol(WHAT, e))?;
        match self.send(request, WHAT).await? {
            (status, _) if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            (status, body) => Err(refused(WHAT, status, &body)),
        }
    }

    async fn get(&self, path: &str, what: &'static str) -> Result<Bytes, NodeError> {
        let request = Request::builder()
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .map_err(|e| protocol(what, e))?;
        match self.send(request, what).await? {
            (StatusCode::OK, body) => Ok(body),
            (status, body) => Err(refused(what, status, &body)),
        }
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        what: &'static str,
    ) -> Result<(StatusCode, Bytes), NodeError> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    NodeError::Unreachable {
                        base: self.base.clone(),
                        reason: innermost(&e),
                    }
                } else {
                    protocol(what, innermost(&e))
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| protocol(what, e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| NodeError::Timeout { what })?
    }
}

fn protocol(what: &'static str, reason: impl ToString) -> NodeError {
    NodeError::Protocol {
        what,
        reason: reason.to_string(),
    }
}

fn refused(what: &'static str, status: StatusCode, body: &[u8]) -> NodeError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect());
    let hint = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            " (raise CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP, \
             CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET, \
             CALLGATE_LIMITS_LOOKUPS_PER_MINUTE_PER_IP or \
             CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT on the node)"
        }
        StatusCode::FORBIDDEN => " (pass the widget's allowed origin with --origin)",
        _ => "",
    };
    NodeError::Refused {
        what,
        status,
        message,
        hint,
    }
}

/// The deepest cause: hyper's own messages ("client error (Connect)") say
/// less than the socket error beneath them.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
