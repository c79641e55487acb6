//! Opening a stored recording: from its row to the key, the blob, the
//! checks that bind them together, and the WAV a person listens to.
//!
//! Every opening is audited by the caller's door (`cli`, `api`). A deleted
//! recording cannot be opened: its wrapped key is gone.
//!
//! A finished recording still waiting for the store (it was down) is read
//! from the spool of the node that made it, which holds the same bytes the
//! store will; elsewhere it opens once it is stored.

use super::format::{self, Completeness, Decrypted, FormatError, RecordingHeader};
use super::storage::{RecordingStorage, StorageError};
use crate::domain::RecordingId;
use crate::keys::{DataKey, KeyError, KeyId, KeyRing, WrappedKey};
use crate::store::{Actor, RecordingRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no recording {0}")]
    NotFound(RecordingId),
    #[error("recording {0} was deleted: its key is destroyed and it cannot be opened")]
    Deleted(RecordingId),
    #[error("recording {0} is still being written")]
    InProgress(RecordingId),
    #[error("recording {0} waits in the spool of the node that made it until the store takes it")]
    AwaitingUpload(RecordingId),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording {0}: the file's header names another recording or consent receipt")]
    Mismatch(RecordingId),
}

/// Decrypts recording `id` and audits `actor` reading it.
pub async fn open(
    store: &Store,
    storage: &RecordingStorage,
    keys: &KeyRing,
    id: &str,
    actor: &Actor,
) -> Result<(RecordingRow, Decrypted), AccessError> {
    let row = store
        .recording(id)
        .await?
        .ok_or_else(|| AccessError::NotFound(id.into()))?;
    open_row(store, storage, keys, row, actor).await
}

/// Decrypts the recording of `row` (already looked up, and scoped to its
/// tenant by the caller) and audits `actor` reading it.
pub async fn open_row(
    store: &Store,
    storage: &RecordingStorage,
    keys: &KeyRing,
    row: RecordingRow,
    actor: &Actor,
) -> Result<(RecordingRow, Decrypted), AccessError> {
    let data_key = data_key(keys, &row)?;
    let blob = read_blob(storage, &row).await?;
    let expect = match row.complete {
        true => Completeness::Complete,
        false => Completeness::Interrupted,
    };
    let decrypted = format::decrypt(&data_key, &blob, expect)?;
    check_header(&row, &decrypted.header)?;
    store.audit_access(&row, actor, door_of(actor)).await?;
    Ok((row, decrypted))
}

/// The data key of `row`, unless the recording was deleted or is still
/// being written.
pub(super) fn data_key(keys: &KeyRing, row: &RecordingRow) -> Result<DataKey, AccessError> {
    let Some(wrapped) = row.wrapped_key.clone() else {
        return Err(AccessError::Deleted(row.id.clone()));
    };
    if row.state == "recording" && row.ended_at.is_none() {
        return Err(AccessError::InProgress(row.id.clone()));
    }
    let wrapped = WrappedKey {
        key_id: KeyId(row.key_id.clone()),
        bytes: wrapped,
    };
    Ok(keys.unwrap(&wrapped, &row.id)?)
}

/// The file must be the one the row describes: its header names the same
/// recording and consent receipt.
pub(super) fn check_header(
    row: &RecordingRow,
    header: &RecordingHeader,
) -> Result<(), AccessError> {
    if header.recording_id != row.id || hex::encode(header.consent_hash) != row.receipt_hash {
        return Err(AccessError::Mismatch(row.id.clone()));
    }
    Ok(())
}

/// The audit reason for an access: the door it came through.
pub(super) fn door_of(actor: &Actor) -> &'static str {
    match actor {
        Actor::Key(_) => "api",
        Actor::Cli => "cli",
        Actor::Node => "node",
    }
}

/// The encrypted bytes of `row`: from the store, or from the spool while
/// it waits for upload (checked first, as the upload may end meanwhile).
async fn read_blob(storage: &RecordingStorage, row: &RecordingRow) -> Result<Vec<u8>, AccessError> {
    if row.state != "recording" {
        return Ok(storage.read(&row.object_path).await?);
    }
    match storage.read_spooled(&row.id).await {
        Ok(blob) => return Ok(blob),
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    match storage.read(&row.object_path).await {
        Ok(blob) => Ok(blob),
        Err(error) if error.is_not_found() => Err(AccessError::AwaitingUpload(row.id.clone())),
        Err(error) => Err(error.into()),
    }
}

/// A RIFF/WAVE file of 16-bit PCM, `channels` interleaved at `rate` Hz.
pub fn wav(pcm: &[u8], channels: u16, rate: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(&wav_header(pcm.len() as u64, channels, rate));
    out.extend_from_slice(pcm);
    out
}

/// The 44-byte RIFF/WAVE header for `data_len` bytes of 16-bit PCM.
pub fn wav_header(data_len: u64, channels: u16, rate: u32) -> Vec<u8> {
    let data_len = u32::try_from(data_len).unwrap_or(u32::MAX);
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}
