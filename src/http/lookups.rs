//! The per-client budget of requests that make the node look something up
//! in its store: a widget by its id, an API key or a session by its id.
//!
//! The budget is taken before the lookup, so a flood of made-up widget ids
//! or wrong keys costs the client its own budget, not the store's time,
//! and a CDR being written never queues behind it. A client over budget
//! gets 429 with `Retry-After`; the client is the TCP peer, or the one a
//! trusted proxy names (grouped as [`client_key`] groups them).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::client_addr::client_ip;
use super::guard::{RateLimiter, RetryAfter, client_key};
use crate::metrics::{Metrics, RefusedReason};

/// Shared by every route that looks something up. Cheap to clone.
#[derive(Clone)]
pub struct LookupBudget {
    limiter: Arc<Mutex<RateLimiter<IpAddr>>>,
    trusted_proxies: Arc<[IpNet]>,
    metrics: Arc<Metrics>,
}

impl LookupBudget {
    /// `per_minute` lookups for each client, burst `per_minute`.
    pub fn new(per_minute: u32, trusted_proxies: Arc<[IpNet]>, metrics: Arc<Metrics>) -> Self {
        Self {
            limiter: Arc::new(Mutex::new(RateLimiter::per_minute(per_minute))),
            trusted_proxies,
            metrics,
        }
    }

    /// Counts one lookup by the request's client, or says how long to wait.
    fn take(&self, peer: IpAddr, request: &Request) -> Result<(), RetryAfter> {
        let client = client_ip(peer, request.headers(), &self.trusted_proxies);
        let now = tokio::time::Instant::now().into_std();
        let mut limiter = self.limiter.lock().unwrap_or_else(PoisonError::into_inner);
        limiter.check(&client_key(client), now)
    }
}

/// Middleware: the request goes on only within its client's budget.
pub async fn within_budget(
    State(budget): State<LookupBudget>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match budget.take(peer.ip(), &request) {
        Ok(()) => next.run(request).await,
        Err(RetryAfter(wait)) => {
            budget.metrics.http_refused(RefusedReason::RateLimited);
            let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            let body = axum::Json(serde_json::json!({
                "error": "too many requests from this address, try again later"
            }));
            let retry = [(header::RETRY_AFTER, HeaderValue::from(seconds))];
            (StatusCode::TOO_MANY_REQUESTS, retry, body).into_response()
        }
    }
}
