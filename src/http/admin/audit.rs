//! `GET /v1/audit`: the tenant's audit log, oldest first.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::body::parse_query;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::times;
use crate::store::AuditEvent;

const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

/// Who did what to which object, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: String,
    /// `key:<api key id>`, `cli` or `node`.
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub reason: String,
}

impl From<AuditEvent> for AuditView {
    fn from(event: AuditEvent) -> Self {
        AuditView {
            at: times::format(event.at),
            actor: event.actor,
            action: event.action,
            target_kind: event.target_kind,
            target_id: event.target_id,
            reason: event.reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// 1 to 10000; 1000 when absent.
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    security(("api_key" = [])), params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let query: AuditQuery = parse_query(query.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let from = times::parse("from", query.from.as_deref())?.unwrap_or(i64::MIN);
    let to = times::parse("to", query.to.as_deref())?.unwrap_or(i64::MAX);
    let events = state
        .store
        .audit_events(&caller.tenant_id, from, to, limit)
        .await?;
    Ok(Json(events.into_iter().map(AuditView::from).collect()))
}
