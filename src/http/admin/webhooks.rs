//! `/v1/webhook`: the tenant's webhook endpoint. `PUT` sets it (its url and
//! the events it receives) and answers a fresh signing secret, the only
//! time the secret is ever shown (the database keeps it sealed under the
//! KEK); `GET` answers the url and the events.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::parse_json;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::{times, validate};
use crate::webhooks::DEFAULT_EVENTS;

/// The endpoint as `GET` shows it: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// False when the tenant has no endpoint (`url` is then null).
    pub set: bool,
    pub url: Option<String>,
    /// The events it receives.
    pub events: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// `PUT /v1/webhook`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPut {
    /// `https://...` to a public host; private addresses and `http://` to
    /// a loopback host only where the node allows private targets.
    pub url: String,
    /// The events to receive, any of `call.ringing`, `call.answered`,
    /// `call.ended` and `recording.ready`; by default `call.ended` and
    /// `recording.ready`.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The answer to `PUT`: the secret is shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    pub url: String,
    pub events: Vec<String>,
    /// 32 random bytes, base64url: the HMAC-SHA256 key of
    /// `Callgate-Signature`. A new `PUT` replaces it.
    pub secret: String,
}

#[utoipa::path(get, path = "/v1/webhook", tag = "webhooks",
    security(("api_key" = [])),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<WebhookView>, ApiError> {
    let endpoint = state.store.webhook(&caller.tenant_id).await?;
    Ok(Json(WebhookView {
        set: endpoint.is_some(),
        url: endpoint.as_ref().map(|e| e.url.clone()),
        events: endpoint
            .as_ref()
            .map(|e| split_events(&e.events))
            .unwrap_or_default(),
        created_at: endpoint.as_ref().map(|e| times::format(e.created_at)),
        updated_at: endpoint.as_ref().map(|e| times::format(e.updated_at)),
    }))
}

#[utoipa::path(put, path = "/v1/webhook", tag = "webhooks",
    security(("api_key" = [])), request_body = WebhookPut,
    responses((status = 200, body = WebhookCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put(
    State(state): State<AdminState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<WebhookCreated>, ApiError> {
    caller.require_admin()?;
    let put: WebhookPut = parse_json(&body)?;
    validate::webhook_url("url", &put.url, state.webhooks_allow_private)?;
    let events = match &put.events {
        Some(events) => validate::webhook_events("events", events)?,
        None => DEFAULT_EVENTS.to_owned(),
    };
    let secret = URL_SAFE_NO_PAD.encode(rand::rng().random::<[u8; 32]>());
    let sealed = state.keys.seal_secret(&secret, &caller.tenant_id);
    state
        .store
        .set_webhook(
            &caller.tenant_id,
            &put.url,
            &sealed,
            &events,
            &caller.actor(),
        )
        .await?;
    Ok(Json(WebhookCreated {
        url: put.url,
        events: split_events(&events),
        secret,
    }))
}

fn split_events(events: &str) -> Vec<String> {
    events.split(',').map(str::to_owned).collect()
}

#[utoipa::path(delete, path = "/v1/webhook", tag = "webhooks",
    security(("api_key" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if state
        .store
        .delete_webhook(&caller.tenant_id, &caller.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}
