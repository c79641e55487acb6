//! `/v1/tenants/{id}/allowance`: the operator sets where a tenant's numbers
//! may send calls (the toll-fraud guard, see [`crate::dialing`]).
//!
//! Only `operator` keys reach these routes. `PUT` gives the tenant an
//! allowance of its own, `DELETE` returns it to the node's default
//! (`[limits] dial_routes` and `dial_prefixes`), and `GET` shows the one
//! that applies. Each change is in the tenant's audit log. Numbers already
//! outside a narrowed allowance stay, but their calls are refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Operator;
use super::body::{nullable, parse_json};
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use crate::dialing::{self, Allowance};
use crate::store::Actor;

/// The allowance that applies to a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowanceView {
    pub tenant: String,
    /// Whether the operator gave the tenant its own (else the node's default).
    pub own: bool,
    /// The routes its numbers may take; `null`: every route of the node.
    pub routes: Option<Vec<String>>,
    /// The E.164 prefixes they may dial; `null`: any number outside the
    /// high-cost ranges, which are allowed only where a prefix names them.
    pub prefixes: Option<Vec<String>>,
}

/// `PUT /v1/tenants/{id}/allowance`: both fields are required; `null`
/// means "any".
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowanceBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub routes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub prefixes: Option<Option<Vec<String>>>,
}

impl AllowanceBody {
    pub(super) fn into_allowance(self, node_routes: &[String]) -> Result<Allowance, ApiError> {
        let required = |field| ApiError::bad_field(field, "required: a list, or null for any");
        let routes = self.routes.ok_or_else(|| required("routes"))?;
        let prefixes = self.prefixes.ok_or_else(|| required("prefixes"))?;
        for route in routes.iter().flatten() {
            if !node_routes.contains(route) {
                let message = format!("no route {route:?} on this node");
                return Err(ApiError::bad_field("routes", message));
            }
        }
        for prefix in prefixes.iter().flatten() {
            if !dialing::valid_prefix(prefix) {
                let message = format!("{prefix:?} is not a '+' and 1 to 15 digits");
                return Err(ApiError::bad_field("prefixes", message));
            }
        }
        Ok(Allowance { routes, prefixes })
    }
}

fn view(state: &AdminState, tenant: String, own: Option<Allowance>) -> AllowanceView {
    let is_own = own.is_some();
    let allowance = own.unwrap_or_else(|| state.limits.default_allowance());
    AllowanceView {
        tenant,
        own: is_own,
        routes: allowance.routes,
        prefixes: allowance.prefixes,
    }
}

#[utoipa::path(get, path = "/v1/tenants/{id}/allowance", tag = "tenants",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = AllowanceView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    _operator: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<AllowanceView>, ApiError> {
    let own = state.store.tenant_allowance(&tenant).await?;
    let own = own.ok_or(ApiError::NotFound("tenant"))?;
    Ok(Json(view(&state, tenant, own)))
}

#[utoipa::path(put, path = "/v1/tenants/{id}/allowance", tag = "tenants",
    security(("api_key" = [])), params(("id" = String, Path)), request_body = AllowanceBody,
    responses((status = 200, body = AllowanceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn put(
    State(state): State<AdminState>,
    operator: Operator,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<AllowanceView>, ApiError> {
    let body: AllowanceBody = parse_json(&body)?;
    let allowance = body.into_allowance(&state.routes)?;
    let actor = Actor::Key(operator.key_id);
    if !state
        .store
        .set_tenant_allowance(&tenant, Some(&allowance), &actor)
        .await?
    {
        return Err(ApiError::NotFound("tenant"));
    }
    Ok(Json(view(&state, tenant, Some(allowance))))
}

#[utoipa::path(delete, path = "/v1/tenants/{id}/allowance", tag = "tenants",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "the tenant has the node's default again"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    operator: Operator,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = Actor::Key(operator.key_id);
    match state
        .store
        .set_tenant_allowance(&tenant, None, &actor)
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("tenant")),
    }
}
