//! The guards in front of call signalling: per-client and per-widget rate
//! limits, per-tenant, per-widget and per-number concurrency, a number's
//! daily minutes, and the Origin check. A widget's own limits
//! ([`WidgetLimits`]) only ever tighten the node's.
//!
//! Pure policy, no I/O: every time-dependent check takes `now`. [`Guards`]
//! is the thread-safe form the HTTP handlers share; each of its locks is a
//! `std::sync::Mutex` held only for one O(1) table operation (never across
//! an await), one lock per table so the checks do not contend.
//!
//! Order of checks in the call-creation handler: Origin, then
//! [`Guards::check_new_call`] (client, then widget), then
//! [`Guards::try_acquire_call`] once the widget's tenant is known. Check
//! that the widget exists before rate-limiting by its id, so made-up ids
//! never reach the widget table.
//!
//! Every refusal is a 429 with `Retry-After` (whole seconds, rounded up) and
//! a JSON body `{"error": "..."}`; see [`Refusal`].

mod origin;
mod rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use self::origin::{SELF_TOKEN, normalize_origin, origin_allowed, origin_of};
pub use self::rate::{DEFAULT_MAX_KEYS, RateLimiter, RetryAfter, client_key};
use crate::cluster::Lease;
use crate::config::LimitsConfig;
use crate::metrics::RefusedReason;
use crate::store::WidgetLimits;

/// The retry hint when a tenant is at its concurrency limit: no wait is
/// known (calls end when people hang up), so suggest a short one.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Why a new call was refused before any call work began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many calls from this address, try again later")]
    RateLimitedIp { retry_after: Duration },
    #[error("too many calls through this widget, try again later")]
    RateLimitedWidget { retry_after: Duration },
    #[error("too many calls in progress, try again later")]
    TooManyCalls { limit: u32 },
    #[error("too many calls in progress through this widget, try again later")]
    WidgetBusy { limit: u32 },
    #[error("too many calls in progress to this number, try again later")]
    NumberBusy { limit: u32 },
    #[error("this number's minutes for today are used up, try again tomorrow")]
    DailyMinutesUsed { retry_after: Duration },
}

impl Refusal {
    /// Always 429 Too Many Requests.
    pub fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    pub fn retry_after(&self) -> Duration {
        match *self {
            Refusal::RateLimitedIp { retry_after }
            | Refusal::RateLimitedWidget { retry_after }
            | Refusal::DailyMinutesUsed { retry_after } => retry_after,
            Refusal::TooManyCalls { .. }
            | Refusal::WidgetBusy { .. }
            | Refusal::NumberBusy { .. } => BUSY_RETRY_AFTER,
        }
    }

    /// The `Retry-After` value: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after();
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.max(1)
    }

    pub fn retry_after_header(&self) -> HeaderValue {
        HeaderValue::from(self.retry_after_secs())
    }

    /// `{"error": "<message>"}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string() })
    }

    /// The `callgate_http_requests_refused_total` reason.
    pub fn reason(&self) -> RefusedReason {
        match self {
            Refusal::RateLimitedIp { .. } | Refusal::RateLimitedWidget { .. } => {
                RefusedReason::RateLimited
            }
            Refusal::TooManyCalls { .. }
            | Refusal::WidgetBusy { .. }
            | Refusal::NumberBusy { .. } => RefusedReason::Concurrency,
            Refusal::DailyMinutesUsed { .. } => RefusedReason::DailyMinutes,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let headers = [(header::RETRY_AFTER, self.retry_after_header())];
        (self.status(), headers, Json(self.body())).into_response()
    }
}

/// Calls in progress per tenant (or per widget); one with none has no
/// entry.
type CallCounts = Mutex<HashMap<String, u32>>;

struct Inner {
    per_ip: Mutex<RateLimiter<IpAddr>>,
    config_per_ip: Mutex<RateLimiter<IpAddr>>,
    per_widget: Mutex<RateLimiter<String>>,
    tenants: Arc<CallCounts>,
    widgets: Arc<CallCounts>,
    numbers: Arc<CallCounts>,
    max_calls_per_tenant: u32,
}

/// The shared guards; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Guards {
    inner: Arc<Inner>,
}

impl Guards {
    pub fn new(limits: &LimitsConfig) -> Self {
        let inner = Inner {
            per_ip: Mutex::new(RateLimiter::per_minute(limits.calls_per_minute_per_ip)),
            config_per_ip: Mutex::new(RateLimiter::per_minute(
                limits.config_requests_per_minute_per_ip,
            )),
            per_widget: Mutex::new(RateLimiter::per_minute(limits.calls_per_minute_per_widget)),
            tenants: Arc::new(Mutex::new(HashMap::new())),
            widgets: Arc::new(Mutex::new(HashMap::new())),
            numbers: Arc::new(Mutex::new(HashMap::new())),
            max_calls_per_tenant: limits.max_concurrent_calls_per_tenant.max(1),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Counts one new call from `ip` (grouped by [`client_key`]).
    pub fn check_ip(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        lock(&self.inner.per_ip)
            .check(&client_key(ip), now)
            .map_err(|RetryAfter(retry_after)| Refusal::RateLimitedIp { retry_after })
    }

    /// Counts one widget config fetched by `ip` (grouped by [`client_key`]):
    /// each carries TURN credentials, so handing them out is rate-limited
    /// like calls, on a budget of its own.
    pub fn check_config_request(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        lock(&self.inner.config_per_ip)
            .check(&client_key(ip), now)
            .map_err(|RetryAfter(retry_after)| Refusal::RateLimitedIp { retry_after })
    }

    /// Counts one new call through `widget_id` (an existing widget's id),
    /// under the widget's own per-minute limit where it is lower.
    pub fn check_widget(
        &self,
        widget_id: &str,
        limits: &WidgetLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        let mut limiter = lock(&self.inner.per_widget);
        let checked = match limits.calls_per_minute {
            Some(limit) => limiter.check_at_most(widget_id, limit, now),
            None => limiter.check(widget_id, now),
        };
        checked.map_err(|RetryAfter(retry_after)| Refusal::RateLimitedWidget { retry_after })
    }

    /// Both rate limits, client first. A client refused by the widget limit
    /// has still spent its own token: retrying into a saturated widget is
    /// itself load.
    pub fn check_new_call(
        &self,
        ip: IpAddr,
        widget_id: &str,
        limits: &WidgetLimits,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.check_ip(ip, now)?;
        self.check_widget(widget_id, limits, now)
    }

    /// Takes one of `tenant`'s concurrent-call slots, and one of
    /// `widget_id`'s where the widget has its own limit, for as long as the
    /// returned permit lives (the call driver holds it for the whole call).
    pub fn try_acquire_call(
        &self,
        tenant: &str,
        widget_id: &str,
        limits: &WidgetLimits,
    ) -> Result<CallPermit, Refusal> {
        let tenant_limit = self.inner.max_calls_per_tenant;
        let tenant_slot =
            Slot::take(&self.inner.tenants, tenant, tenant_limit).ok_or(Refusal::TooManyCalls {
                limit: tenant_limit,
            })?;
        let widget_slot = match limits.max_concurrent_calls {
            Some(limit) => Some(
                Slot::take(&self.inner.widgets, widget_id, limit)
                    .ok_or(Refusal::WidgetBusy { limit })?,
            ),
            None => None,
        };
        Ok(CallPermit {
            tenant: tenant_slot,
            _widget: widget_slot,
            _number: None,
            _lease: None,
        })
    }

    /// [`Guards::try_acquire_call`], then one of `number_id`'s slots where
    /// the number has a cap of its own (`number_limit`).
    pub fn try_acquire_call_to(
        &self,
        tenant: &str,
        widget_id: &str,
        limits: &WidgetLimits,
        number_id: &str,
        number_limit: Option<u32>,
    ) -> Result<CallPermit, Refusal> {
        let mut permit = self.try_acquire_call(tenant, widget_id, limits)?;
        if let Some(limit) = number_limit {
            let slot = Slot::take(&self.inner.numbers, number_id, limit);
            permit._number = Some(slot.ok_or(Refusal::NumberBusy { limit })?);
        }
        Ok(permit)
    }

    /// Calls `tenant` has in progress (for the dashboard and tests).
    pub fn calls_in_progress(&self, tenant: &str) -> u32 {
        lock(&self.inner.tenants).get(tenant).copied().unwrap_or(0)
    }
}

/// A call's concurrent-call slots (its tenant's, and its widget's and its
/// number's where they have a limit), and in a cluster its lease on the
/// same slots cluster-wide; dropping the permit frees them all.
#[must_use = "the call's slots are freed as soon as the permit is dropped"]
pub struct CallPermit {
    tenant: Slot,
    _widget: Option<Slot>,
    _number: Option<Slot>,
    _lease: Option<Lease>,
}

impl CallPermit {
    pub fn tenant(&self) -> &str {
        &self.tenant.key
    }

    /// The permit, also holding the call's cluster-wide `lease`.
    pub fn holding(mut self, lease: Lease) -> Self {
        self._lease = Some(lease);
        self
    }
}

impl std::fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPermit")
            .field("tenant", &self.tenant.key)
            .finish()
    }
}

/// One counted call under `key` in a [`CallCounts`] table.
struct Slot {
    counts: Arc<CallCounts>,
    key: String,
}

impl Slot {
    /// Counts one more call under `key`, unless it already has `limit`.
    fn take(counts: &Arc<CallCounts>, key: &str, limit: u32) -> Option<Slot> {
        let mut table = lock(counts);
        let count = table.get(key).copied().unwrap_or(0);
        if count >= limit.max(1) {
            return None;
        }
        table.insert(key.to_owned(), count + 1);
        Some(Slot {
            counts: counts.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.counts);
        if let Some(count) = table.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.remove(&self.key);
            }
        }
    }
}

/// The tables stay consistent even if a holder panicked (every update is a
/// single insert or remove), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
