//! `/v1/privacy/{reference}`: a visitor's privacy request, by the reference
//! the widget showed them at the end of the call (or the call id).
//!
//! `GET .../export` answers one tar archive with everything held about the
//! call: `call.json` (the CDR), `consent_receipts.json`, `recordings.json`
//! (metadata) and `recordings/<id>.wav` for each recording that can still be
//! opened. The archive is streamed: a recording's audio is read from the
//! store and decrypted a segment at a time as it is sent.
//!
//! `POST .../erase` destroys the call's recording keys, deletes its consent
//! receipts and reduces its CDR to the billing fields. Both are audited.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::state::AdminState;
use super::tar_stream::{EntryError, TarStream};
use super::times;
use crate::call::privacy_ref;
use crate::domain::CallId;
use crate::recording::access::{self, AccessError};
use crate::recording::stream;
use crate::store::{CdrRecord, ConsentReceiptRow, NewAuditEvent};
use crate::views::CdrView;
use crate::views::RecordingView;

/// A consent receipt as exported.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    pub hash: String,
    pub policy: String,
    /// SHA-256 of the notice text the visitor was shown.
    pub notice_hash: String,
    /// `api`, `button` or `notice`.
    pub method: String,
    pub granted_at: String,
    /// HMAC-SHA256 by the node, for an auditor holding its key.
    pub signature: String,
}

impl From<ConsentReceiptRow> for ReceiptView {
    fn from(row: ConsentReceiptRow) -> Self {
        ReceiptView {
            hash: row.hash,
            policy: row.policy,
            notice_hash: row.notice_hash,
            method: row.method,
            granted_at: times::format(row.granted_at),
            signature: row.signature,
        }
    }
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub call_id: CallId,
    pub privacy_ref: Option<String>,
    /// Recordings whose keys were destroyed by this request.
    pub recordings_erased: usize,
    pub consent_receipts_deleted: u64,
    /// The CDR as it is kept now.
    pub cdr: CdrView,
}

/// The caller's call that `reference` names.
async fn find_call(
    state: &AdminState,
    caller: &Caller,
    reference: &str,
) -> Result<CdrRecord, ApiError> {
    let key = privacy_ref::normalise(reference).unwrap_or_else(|| reference.to_owned());
    state
        .store
        .cdr_by_reference(&caller.tenant_id, &key)
        .await?
        .ok_or(ApiError::NotFound("call with this privacy reference"))
}

#[utoipa::path(get, path = "/v1/privacy/{reference}/export", tag = "privacy",
    security(("api_key" = [])), params(("reference" = String, Path, description = "privacy reference or call id")),
    responses((status = 200, description = "tar archive: call.json, consent_receipts.json, recordings.json, recordings/<id>.wav",
        content_type = "application/x-tar"), (status = 404, body = ErrorBody)))]
pub async fn export(
    State(state): State<AdminState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let cdr = find_call(&state, &caller, &reference).await?;
    let call_id = cdr.call_id.clone();
    let receipts = state.store.consent_receipts_for_call(&call_id).await?;
    let recordings = state.store.recordings_for_call(&call_id).await?;
    let mut archive = TarStream::default();
    json(&mut archive, "call.json", &CdrView::from(cdr))?;
    let receipts: Vec<ReceiptView> = receipts.into_iter().map(ReceiptView::from).collect();
    json(&mut archive, "consent_receipts.json", &receipts)?;
    let views: Vec<RecordingView> = recordings
        .iter()
        .cloned()
        .map(RecordingView::from)
        .collect();
    json(&mut archive, "recordings.json", &views)?;
    let actor = caller.actor();
    // Every recording is opened (key, header, size: all checked, and the
    // access audited) before the first byte goes out; their audio is then
    // read a segment at a time as the archive is sent.
    for row in recordings.into_iter().filter(|r| r.state == "stored") {
        let name = format!("recordings/{}.wav", row.id);
        let id = row.id.clone();
        let unopenable = |error: AccessError| {
            tracing::warn!(recording = %id, %error, "recording left out of a privacy export");
            ApiError::Unavailable(format!("recording {id} cannot be opened"))
        };
        if row.complete {
            let wav =
                stream::open_wav_stream(&state.store, &state.storage, &state.keys, &row, &actor)
                    .await
                    .map_err(unopenable)?;
            archive
                .stream(&name, wav.len, wav.body)
                .map_err(archive_error)?;
            continue;
        }
        // An interrupted recording is read up to its last whole segment.
        let opened = access::open_row(&state.store, &state.storage, &state.keys, row, &actor).await;
        let (_, decrypted) = opened.map_err(unopenable)?;
        let format = &decrypted.header.audio;
        let wav = access::wav(
            &decrypted.audio,
            u16::from(format.channels),
            format.sample_rate,
        );
        archive.file(&name, wav).map_err(archive_error)?;
    }
    state
        .store
        .audit(&NewAuditEvent {
            tenant_id: &caller.tenant_id,
            actor: &actor,
            action: "exported",
            target_kind: "call",
            target_id: &call_id,
            reason: "",
        })
        .await?;
    let (len, body) = archive.finish();
    let headers = [
        (header::CONTENT_TYPE, "application/x-tar".to_owned()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"call-{call_id}.tar\""),
        ),
        (header::CACHE_CONTROL, "no-store".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

fn json<T: Serialize>(archive: &mut TarStream, name: &str, value: &T) -> Result<(), ApiError> {
    let body =
        serde_json::to_vec_pretty(value).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    archive.file(name, body).map_err(archive_error)
}

fn archive_error(error: EntryError) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

#[utoipa::path(post, path = "/v1/privacy/{reference}/erase", tag = "privacy",
    security(("api_key" = [])), params(("reference" = String, Path, description = "privacy reference or call id")),
    responses((status = 200, body = ErasureView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn erase(
    State(state): State<AdminState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<Json<ErasureView>, ApiError> {
    caller.require_admin()?;
    let cdr = find_call(&state, &caller, &reference).await?;
    let erased = state
        .store
        .erase_call(&caller.tenant_id, &cdr.call_id, &caller.actor())
        .await?;
    for recording in &erased.recordings {
        // Unreadable already (its key is gone); a blob that cannot be
        // removed now goes with the retention sweep.
        if let Err(error) = state
            .storage
            .delete(&recording.id, &recording.object_path)
            .await
        {
            tracing::warn!(recording = %recording.id, %error, "erased recording's blob left for retention");
        }
    }
    let kept = state
        .store
        .cdr(&cdr.call_id)
        .await?
        .ok_or(ApiError::NotFound("call"))?;
    Ok(Json(ErasureView {
        call_id: erased.call_id,
        privacy_ref: kept.privacy_ref.clone(),
        recordings_erased: erased.recordings.len(),
        consent_receipts_deleted: erased.consent_receipts,
        cdr: CdrView::from(kept),
    }))
}
