//! [`RecordingView`]: a recording's metadata, as the admin API lists it
//! and the `recording.ready` webhook sends it.

use serde::Serialize;
use utoipa::ToSchema;

use super::times;
use crate::domain::{CallId, NumberId, RecordingId};
use crate::store::RecordingRow;

/// A recording's metadata; never its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingView {
    pub id: RecordingId,
    pub call_id: CallId,
    pub number_id: NumberId,
    /// `recording` while the call runs, `stored`, or `deleted`.
    pub state: String,
    /// False when frames were dropped or the node stopped mid-call.
    pub complete: bool,
    pub frames_dropped: i64,
    pub duration_ms: i64,
    /// Encrypted size.
    pub bytes: i64,
    /// The key-encryption key its data key is wrapped under.
    pub key_id: String,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// When retention deletes it.
    pub expires_at: String,
    pub deleted_at: Option<String>,
}

impl From<RecordingRow> for RecordingView {
    fn from(row: RecordingRow) -> Self {
        RecordingView {
            created_at: times::format(row.created_at),
            ended_at: row.ended_at.map(times::format),
            expires_at: times::format(row.expires_at),
            deleted_at: row.deleted_at.map(times::format),
            id: row.id,
            call_id: row.call_id,
            number_id: row.number_id,
            state: row.state,
            complete: row.complete,
            frames_dropped: row.frames_dropped,
            duration_ms: row.duration_ms,
            bytes: row.bytes,
            key_id: row.key_id,
        }
    }
}
