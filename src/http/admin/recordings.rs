//! `/v1/recordings`: list a tenant's recordings, listen to one (decrypted
//! to WAV, every access audited) and delete one (its key destroyed first,
//! then the blob).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::body::parse_query;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use crate::recording::access::{self, AccessError};
use crate::recording::stream;
use crate::store::RecordingRow;
use crate::views::RecordingView;

const MAX_LISTED: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingQuery {
    /// Only the recordings of this call.
    pub call_id: Option<String>,
}

/// Recording `id` of the caller's tenant; another tenant's is missing.
async fn owned(state: &AdminState, caller: &Caller, id: &str) -> Result<RecordingRow, ApiError> {
    state
        .store
        .recording(id)
        .await?
        .filter(|row| row.tenant_id == caller.tenant_id)
        .ok_or(ApiError::NotFound("recording"))
}

#[utoipa::path(get, path = "/v1/recordings", tag = "recordings",
    security(("api_key" = [])), params(RecordingQuery),
    responses((status = 200, body = [RecordingView]), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let query: RecordingQuery = parse_query(query.as_deref())?;
    let rows = state
        .store
        .recordings_of_tenant(&caller.tenant_id, query.call_id.as_deref(), MAX_LISTED)
        .await?;
    Ok(Json(rows.into_iter().map(RecordingView::from).collect()))
}

#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "recordings",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RecordingView>, ApiError> {
    Ok(Json(owned(&state, &caller, &id).await?.into()))
}

#[utoipa::path(get, path = "/v1/recordings/{id}/audio", tag = "recordings",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses(
        (status = 200, description = "two-channel WAV (visitor, callee), 16-bit PCM at 8 kHz",
            content_type = "audio/wav"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody)))]
pub async fn audio(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = owned(&state, &caller, &id).await?;
    let disposition = format!("attachment; filename=\"{id}.wav\"");
    let headers = [
        (header::CONTENT_TYPE, "audio/wav".to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    let actor = caller.actor();
    if row.state == "stored" && row.complete {
        // The usual case: streamed a segment at a time.
        let wav = stream::open_wav_stream(&state.store, &state.storage, &state.keys, &row, &actor)
            .await
            .map_err(access_error)?;
        let length = [(header::CONTENT_LENGTH, wav.len.to_string())];
        return Ok((headers, length, Body::from_stream(wav.body)).into_response());
    }
    // Interrupted recordings (read up to their last whole segment) and ones
    // waiting in the spool are read whole.
    let opened = access::open_row(&state.store, &state.storage, &state.keys, row, &actor).await;
    let (_, decrypted) = opened.map_err(access_error)?;
    let format = &decrypted.header.audio;
    let wav = access::wav(
        &decrypted.audio,
        u16::from(format.channels),
        format.sample_rate,
    );
    Ok((headers, wav).into_response())
}

fn access_error(error: AccessError) -> ApiError {
    match error {
        AccessError::NotFound(_) => ApiError::NotFound("recording"),
        AccessError::Deleted(_) => ApiError::Gone("recording was deleted: its key is destroyed"),
        AccessError::InProgress(_) => ApiError::Conflict("recording is still being written".into()),
        AccessError::Store(error) => ApiError::Store(error),
        other => {
            tracing::warn!(error = %other, "a recording could not be opened");
            ApiError::Unavailable("recording cannot be opened; see the node log".into())
        }
    }
}

#[utoipa::path(delete, path = "/v1/recordings/{id}", tag = "recordings",
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "deleted now or before"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let row = owned(&state, &caller, &id).await?;
    state
        .store
        .delete_recording_as(&id, "api", &caller.actor())
        .await?;
    // The key is gone, so the blob is unreadable already; a blob that
    // cannot be removed now is removed by the retention sweeper later.
    if let Err(error) = state.storage.delete(&id, &row.object_path).await {
        tracing::warn!(recording = %id, %error, "recording key destroyed, blob left for retention");
    }
    Ok(StatusCode::NO_CONTENT)
}
