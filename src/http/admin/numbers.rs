//! `/v1/numbers`: a tenant's numbers, their trunk route, recording policy
//! and retention.
//!
//! A number may carry its own caps: calls to it at once, and minutes of
//! talk a day (UTC). A number's route and destination must be within the
//! tenant's dialing allowance (the toll-fraud guard, see [`crate::dialing`]); a refusal
//! names only the routes and prefixes this tenant may use.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{nullable, parse_json};
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::{times, validate};
use crate::config::LimitsConfig;
use crate::domain::{OnRevoke, RecordingPolicy};
use crate::store::{Number, NumberChange, NumberDelete, NumberLimits, now_ms};

/// A number as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberView {
    pub id: String,
    /// The callee in E.164.
    pub e164: String,
    /// The `[[sip.routes]]` name calls to this number take.
    pub trunk: String,
    pub recording: RecordingPolicy,
    pub on_revoke: OnRevoke,
    pub retention_days: u32,
    /// The notice the widget shows before a call that may be recorded.
    pub notice_text: Option<String>,
    pub limits: NumberLimitsView,
    pub created_at: String,
}

/// A number's own caps; `null` (or absent) is no cap of its own.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberLimitsView {
    /// Calls to this number in progress at once (on each node); 1 to the
    /// node's `max_concurrent_calls_per_tenant`.
    #[serde(default)]
    pub max_concurrent_calls: Option<u32>,
    /// Minutes of talk a day (UTC) over all its calls, 1 to 1,000,000. A
    /// call is refused once they are used, and one placed with minutes left
    /// is ended when they run out.
    #[serde(default)]
    pub minutes_per_day: Option<u32>,
}

/// The most minutes a day a cap may name (about 694 calls all day).
const MAX_MINUTES_PER_DAY: u32 = 1_000_000;

impl NumberLimitsView {
    pub(super) fn checked(self, node: &LimitsConfig) -> Result<NumberLimits, ApiError> {
        let within = |field: &str, value: Option<u32>, ceiling: u32| match value {
            Some(v) if v == 0 || v > ceiling => Err(ApiError::bad_field(
                field,
                format!("must be between 1 and {ceiling}, or null"),
            )),
            _ => Ok(value),
        };
        Ok(NumberLimits {
            max_concurrent_calls: within(
                "limits.max_concurrent_calls",
                self.max_concurrent_calls,
                node.max_concurrent_calls_per_tenant,
            )?,
            minutes_per_day: within(
                "limits.minutes_per_day",
                self.minutes_per_day,
                MAX_MINUTES_PER_DAY,
            )?,
        })
    }
}

impl From<NumberLimits> for NumberLimitsView {
    fn from(limits: NumberLimits) -> Self {
        NumberLimitsView {
            max_concurrent_calls: limits.max_concurrent_calls,
            minutes_per_day: limits.minutes_per_day,
        }
    }
}

impl From<Number> for NumberView {
    fn from(number: Number) -> Self {
        NumberView {
            created_at: times::format(number.created_at_ms),
            id: number.id,
            e164: number.e164,
            trunk: number.trunk,
            recording: number.recording,
            on_revoke: number.on_revoke,
            retention_days: number.retention_days,
            notice_text: number.notice_text,
            limits: number.limits.into(),
        }
    }
}

/// `POST /v1/numbers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    pub id: String,
    pub e164: String,
    pub trunk: String,
    #[serde(default = "default_policy")]
    pub recording: RecordingPolicy,
    #[serde(default = "default_on_revoke")]
    pub on_revoke: OnRevoke,
    /// 1 to 3650; 30 when absent.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    #[serde(default)]
    pub notice_text: Option<String>,
    #[serde(default)]
    pub limits: NumberLimitsView,
}

impl NewNumber {
    /// What can be checked without the store (the allowance needs it).
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        validate::id("id", &self.id)?;
        validate::e164("e164", &self.e164)?;
        validate::retention_days("retention_days", self.retention_days)?;
        if let Some(notice) = &self.notice_text {
            validate::notice_text("notice_text", notice)?;
        }
        Ok(())
    }
}

fn default_policy() -> RecordingPolicy {
    RecordingPolicy::Off
}

fn default_on_revoke() -> OnRevoke {
    OnRevoke::Discard
}

fn default_retention() -> u32 {
    30
}

/// `PATCH /v1/numbers/{id}`: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    pub e164: Option<String>,
    pub trunk: Option<String>,
    pub recording: Option<RecordingPolicy>,
    pub on_revoke: Option<OnRevoke>,
    pub retention_days: Option<u32>,
    /// `null` removes the notice.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notice_text: Option<Option<String>>,
    /// Replaces both caps; a cap left out is lifted.
    pub limits: Option<NumberLimitsView>,
}

impl NumberPatch {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        if let Some(e164) = &self.e164 {
            validate::e164("e164", e164)?;
        }
        if let Some(days) = self.retention_days {
            validate::retention_days("retention_days", days)?;
        }
        if let Some(Some(notice)) = &self.notice_text {
            validate::notice_text("notice_text", notice)?;
        }
        Ok(())
    }
}

/// Refuses a route or destination outside `tenant`'s allowance, naming
/// only what the tenant may use (never another tenant's routes).
async fn check_allowed(
    state: &AdminState,
    tenant: &str,
    trunk: &str,
    e164: &str,
) -> Result<(), ApiError> {
    let own = state.store.tenant_allowance(tenant).await?.flatten();
    let allowance = own.unwrap_or_else(|| state.limits.default_allowance());
    let usable = allowance.usable_routes(&state.routes);
    if !usable.contains(&trunk) {
        let message = format!(
            "no route {trunk:?} for this tenant (routes: {})",
            usable.join(", ")
        );
        return Err(ApiError::bad_field("trunk", message));
    }
    if !allowance.may_dial(e164) {
        let message = format!(
            "outside the destinations this tenant may call ({})",
            allowance.describe_destinations()
        );
        return Err(ApiError::bad_field("e164", message));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/numbers", tag = "numbers",
    security(("api_key" = [])),
    responses((status = 200, body = [NumberView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Vec<NumberView>>, ApiError> {
    let numbers = state.store.numbers(&caller.tenant_id).await?;
    Ok(Json(numbers.into_iter().map(NumberView::from).collect()))
}

#[utoipa::path(get, path = "/v1/numbers/{id}", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = NumberView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NumberView>, ApiError> {
    let number = state.store.number(&caller.tenant_id, &id).await?;
    number
        .map(|n| Json(n.into()))
        .ok_or(ApiError::NotFound("number"))
}

#[utoipa::path(post, path = "/v1/numbers", tag = "numbers",
    security(("api_key" = [])), request_body = NewNumber,
    responses((status = 201, body = NumberView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let new: NewNumber = parse_json(&body)?;
    new.validate()?;
    check_allowed(&state, &caller.tenant_id, &new.trunk, &new.e164).await?;
    let limits = new.limits.checked(&state.limits)?;
    let number = Number {
        id: new.id,
        e164: new.e164,
        trunk: new.trunk,
        recording: new.recording,
        on_revoke: new.on_revoke,
        retention_days: new.retention_days,
        notice_text: new.notice_text,
        limits,
        created_at_ms: now_ms(),
    };
    match state
        .store
        .insert_number(&caller.tenant_id, &number, &caller.actor())
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(NumberView::from(number))).into_response()),
        Err(error) if error.is_duplicate() => Err(ApiError::Conflict(
            "id: a number with this id exists".into(),
        )),
        Err(error) => Err(error.into()),
    }
}

#[utoipa::path(patch, path = "/v1/numbers/{id}", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path)), request_body = NumberPatch,
    responses((status = 200, body = NumberView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<NumberView>, ApiError> {
    caller.require_admin()?;
    let patch: NumberPatch = parse_json(&body)?;
    patch.validate()?;
    if patch.trunk.is_some() || patch.e164.is_some() {
        let current = state.store.number(&caller.tenant_id, &id).await?;
        let current = current.ok_or(ApiError::NotFound("number"))?;
        let trunk = patch.trunk.as_deref().unwrap_or(&current.trunk);
        let e164 = patch.e164.as_deref().unwrap_or(&current.e164);
        check_allowed(&state, &caller.tenant_id, trunk, e164).await?;
    }
    let limits = patch.limits.map(|l| l.checked(&state.limits)).transpose()?;
    let change = NumberChange {
        e164: patch.e164,
        trunk: patch.trunk,
        recording: patch.recording,
        on_revoke: patch.on_revoke,
        retention_days: patch.retention_days,
        notice_text: patch.notice_text,
        limits,
    };
    let updated = state
        .store
        .update_number(&caller.tenant_id, &id, change, &caller.actor())
        .await?;
    updated
        .map(|n| Json(n.into()))
        .ok_or(ApiError::NotFound("number"))
}

#[utoipa::path(delete, path = "/v1/numbers/{id}", tag = "numbers",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    match state
        .store
        .delete_number(&caller.tenant_id, &id, &caller.actor())
        .await?
    {
        NumberDelete::Deleted => Ok(StatusCode::NO_CONTENT),
        NumberDelete::NotFound => Err(ApiError::NotFound("number")),
        NumberDelete::InUse => Err(ApiError::Conflict(
            "widgets still dial this number: delete or repoint them first".into(),
        )),
    }
}
