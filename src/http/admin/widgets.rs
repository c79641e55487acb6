//! `/v1/widgets`: a tenant's call buttons, the number each dials, the
//! origins that may embed it and its own limits on calls.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::parse_json;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::{times, validate};
use crate::config::LimitsConfig;
use crate::domain::NumberId;
use crate::store::{Widget, WidgetChange, WidgetLimits, WidgetWrite, now_ms};

/// A widget as the API shows it, with the snippet that embeds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetView {
    pub id: String,
    pub number_id: NumberId,
    /// `self` (the node's own origin) or `https://host[:port]`.
    pub allowed_origins: Vec<String>,
    pub limits: LimitsView,
    /// The one script tag a page adds to show this widget's call button.
    pub embed: String,
    pub created_at: String,
}

impl WidgetView {
    fn new(widget: Widget, base_url: &str) -> Self {
        WidgetView {
            embed: embed_snippet(base_url, &widget.id),
            created_at: times::format(widget.created_at_ms),
            id: widget.id,
            number_id: widget.number_id,
            allowed_origins: widget.allowed_origins,
            limits: LimitsView {
                calls_per_minute: widget.limits.calls_per_minute,
                max_concurrent_calls: widget.limits.max_concurrent_calls,
            },
        }
    }
}

/// A widget's own limits; `null` (or absent) leaves the node's limit. They
/// can only be tighter than the node's.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsView {
    /// New calls per minute through this widget, from all visitors.
    #[serde(default)]
    pub calls_per_minute: Option<u32>,
    /// Calls in progress through this widget at once.
    #[serde(default)]
    pub max_concurrent_calls: Option<u32>,
}

impl LimitsView {
    /// The limits, each between 1 and the node's own limit.
    pub(super) fn checked(self, node: &LimitsConfig) -> Result<WidgetLimits, ApiError> {
        let within = |field: &str, value: Option<u32>, ceiling: u32| match value {
            Some(v) if v == 0 || v > ceiling => Err(ApiError::bad_field(
                field,
                format!("must be between 1 and {ceiling} (this node's limit), or null"),
            )),
            _ => Ok(value),
        };
        Ok(WidgetLimits {
            calls_per_minute: within(
                "limits.calls_per_minute",
                self.calls_per_minute,
                node.calls_per_minute_per_widget,
            )?,
            max_concurrent_calls: within(
                "limits.max_concurrent_calls",
                self.max_concurrent_calls,
                node.max_concurrent_calls_per_tenant,
            )?,
        })
    }
}

/// The tag the widget script reads its id from (see `widget/callgate.js`).
pub fn embed_snippet(base_url: &str, widget_id: &str) -> String {
    format!(
        "<script src=\"{base_url}/widget/callgate.js\" data-widget=\"{widget_id}\" async></script>"
    )
}

/// `POST /v1/widgets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWidget {
    pub id: String,
    pub number_id: NumberId,
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub limits: LimitsView,
}

/// `PATCH /v1/widgets/{id}`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetPatch {
    pub number_id: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    /// Replaces both limits; a limit left out goes back to the node's.
    pub limits: Option<LimitsView>,
}

impl NewWidget {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        validate::id("id", &self.id)?;
        validate::id("number_id", &self.number_id)?;
        validate::origins("allowed_origins", &self.allowed_origins)
    }
}

impl WidgetPatch {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        if let Some(number_id) = &self.number_id {
            validate::id("number_id", number_id)?;
        }
        if let Some(origins) = &self.allowed_origins {
            validate::origins("allowed_origins", origins)?;
        }
        Ok(())
    }
}

fn written(write: WidgetWrite, base_url: &str) -> Result<WidgetView, ApiError> {
    match write {
        WidgetWrite::Done(widget) => Ok(WidgetView::new(widget, base_url)),
        WidgetWrite::NotFound => Err(ApiError::NotFound("widget")),
        WidgetWrite::NoSuchNumber => Err(ApiError::bad_field(
            "number_id",
            "no such number for this tenant",
        )),
    }
}

#[utoipa::path(get, path = "/v1/widgets", tag = "widgets",
    security(("api_key" = [])),
    responses((status = 200, body = [WidgetView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Vec<WidgetView>>, ApiError> {
    let widgets = state.store.widgets(&caller.tenant_id).await?;
    let views = widgets
        .into_iter()
        .map(|w| WidgetView::new(w, &state.base_url))
        .collect();
    Ok(Json(views))
}

#[utoipa::path(get, path = "/v1/widgets/{id}", tag = "widgets",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = WidgetView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WidgetView>, ApiError> {
    let widget = state.store.widget(&caller.tenant_id, &id).await?;
    widget
        .map(|w| Json(WidgetView::new(w, &state.base_url)))
        .ok_or(ApiError::NotFound("widget"))
}

#[utoipa::path(post, path = "/v1/widgets", tag = "widgets",
    security(("api_key" = [])), request_body = NewWidget,
    responses((status = 201, body = WidgetView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let new: NewWidget = parse_json(&body)?;
    new.validate()?;
    let limits = new.limits.checked(&state.limits)?;
    let widget = Widget {
        id: new.id,
        number_id: new.number_id,
        allowed_origins: new.allowed_origins,
        limits,
        created_at_ms: now_ms(),
    };
    match state
        .store
        .insert_widget(&caller.tenant_id, widget, &caller.actor())
        .await
    {
        Ok(write) => {
            Ok((StatusCode::CREATED, Json(written(write, &state.base_url)?)).into_response())
        }
        Err(error) if error.is_duplicate() => Err(ApiError::Conflict(
            "id: a widget with this id exists".into(),
        )),
        Err(error) => Err(error.into()),
    }
}

#[utoipa::path(patch, path = "/v1/widgets/{id}", tag = "widgets",
    security(("api_key" = [])), params(("id" = String, Path)), request_body = WidgetPatch,
    responses((status = 200, body = WidgetView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<WidgetView>, ApiError> {
    caller.require_admin()?;
    let patch: WidgetPatch = parse_json(&body)?;
    patch.validate()?;
    let limits = patch
        .limits
        .map(|limits| limits.checked(&state.limits))
        .transpose()?;
    let change = WidgetChange {
        number_id: patch.number_id,
        allowed_origins: patch.allowed_origins,
        limits,
    };
    let write = state
        .store
        .update_widget(&caller.tenant_id, &id, change, &caller.actor())
        .await?;
    written(write, &state.base_url).map(Json)
}

#[utoipa::path(delete, path = "/v1/widgets/{id}", tag = "widgets",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if state
        .store
        .delete_widget(&caller.tenant_id, &id, &caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("widget"))
    }
}
