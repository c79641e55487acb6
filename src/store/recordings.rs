//! Recordings, consent receipts and the audit log, as rows.
//!
//! Deleting a recording here is crypto-shredding: its wrapped data key is
//! set to NULL in the same transaction that marks it deleted and writes the
//! audit entry, so no copy of the blob can be opened afterwards, whether or
//! not the blob itself is gone yet.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::database::{Store, now_ms};
use super::error::StoreError;
use crate::domain::{CallId, NumberId, RecordingId, TenantId};

/// A recording as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub id: RecordingId,
    pub call_id: CallId,
    pub tenant_id: TenantId,
    pub number_id: NumberId,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub object_path: String,
    pub receipt_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A stored recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub id: RecordingId,
    pub call_id: CallId,
    pub tenant_id: TenantId,
    pub number_id: NumberId,
    pub key_id: String,
    /// `None` once deleted: the recording can no longer be opened.
    pub wrapped_key: Option<Vec<u8>>,
    pub object_path: String,
    /// `recording`, `stored` or `deleted`.
    pub state: String,
    pub complete: bool,
    pub frames_dropped: i64,
    pub duration_ms: i64,
    pub bytes: i64,
    pub receipt_hash: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub expires_at: i64,
    pub deleted_at: Option<i64>,
}

/// A signed record of one grant of consent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentReceiptRow {
    pub hash: String,
    pub call_id: CallId,
    pub number_id: NumberId,
    pub policy: String,
    pub notice_hash: String,
    pub method: String,
    pub granted_at: i64,
    pub signature: String,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for RecordingRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            call_id: row.try_get("call_id")?,
            tenant_id: row.try_get("tenant_id")?,
            number_id: row.try_get("number_id")?,
            key_id: row.try_get("key_id")?,
            wrapped_key: row.try_get("wrapped_key")?,
            object_path: row.try_get("object_path")?,
            state: row.try_get("state")?,
            // An INTEGER 0/1 column (see the module's invariants).
            complete: row.try_get::<i64, _>("complete")? != 0,
            frames_dropped: row.try_get("frames_dropped")?,
            duration_ms: row.try_get("duration_ms")?,
            bytes: row.try_get("bytes")?,
            receipt_hash: row.try_get("receipt_hash")?,
            created_at: row.try_get("created_at")?,
            ended_at: row.try_get("ended_at")?,
            expires_at: row.try_get("expires_at")?,
            deleted_at: row.try_get("deleted_at")?,
        })
    }
}

pub(super) const RECORDING_COLUMNS: &str = "id, call_id, tenant_id, number_id, key_id, wrapped_key, \
     object_path, state, complete, frames_dropped, duration_ms, bytes, receipt_hash, \
     created_at, ended_at, expires_at, deleted_at";

impl Store {
    pub async fn insert_recording(&self, new: &NewRecording) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recordings (id, call_id, tenant_id, number_id, key_id, wrapped_key, \
             object_path, receipt_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&new.id)
        .bind(&new.call_id)
        .bind(&new.tenant_id)
        .bind(&new.number_id)
        .bind(&new.key_id)
        .bind(&new.wrapped_key)
        .bind(&new.object_path)
        .bind(&new.receipt_hash)
        .bind(new.created_at_ms)
        .bind(new.expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording insert"))?;
        Ok(())
    }

    /// Marks a recording stored with its final figures (unless it was
    /// deleted meanwhile).
    pub async fn finish_recording(
        &self,
        id: &str,
        complete: bool,
        frames_dropped: u64,
        duration_ms: i64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE recordings SET state = 'stored', complete = $2, frames_dropped = $3, \
             duration_ms = $4, bytes = $5, ended_at = $6 \
             WHERE id = $1 AND state = 'recording'",
        )
        .bind(id)
        .bind(i32::from(complete))
        .bind(i64::try_from(frames_dropped).unwrap_or(i64::MAX))
        .bind(duration_ms)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording finish"))?;
        Ok(())
    }

    /// Records a recording's final figures as its call ends. It stays
    /// `recording` (with `ended_at` set) until the store has it, see
    /// [`Store::mark_recording_stored`]; meanwhile it waits in the spool.
    pub async fn end_recording(
        &self,
        id: &str,
        complete: bool,
        frames_dropped: u64,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE recordings SET complete = $2, frames_dropped = $3, duration_ms = $4, \
             ended_at = $5 WHERE id = $1 AND state = 'recording'",
        )
        .bind(id)
        .bind(i32::from(complete))
        .bind(i64::try_from(frames_dropped).unwrap_or(i64::MAX))
        .bind(duration_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording end"))?;
        Ok(())
    }

    /// Marks an ended recording stored, `bytes` long. False when it was
    /// not waiting for that (deleted meanwhile).
    pub async fn mark_recording_stored(&self, id: &str, bytes: u64) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE recordings SET state = 'stored', bytes = $2 \
             WHERE id = $1 AND state = 'recording'",
        )
        .bind(id)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording stored"))?
        .rows_affected();
        Ok(changed > 0)
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = $1");
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("recording lookup"))
    }

    /// The recordings of a call, oldest first, deleted ones included.
    pub async fn recordings_for_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE call_id = $1 \
             ORDER BY created_at, id"
        );
        sqlx::query_as(&sql)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("recordings of a call"))
    }

    /// Recordings still marked in progress: after a restart, the ones the
    /// node was writing when it stopped.
    pub async fn unfinished_recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE state = 'recording'");
        sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("unfinished recordings"))
    }

    /// Stored recordings whose retention ended at or before `now_ms`.
    pub async fn expired_recordings(&self, now_ms: i64) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE state <> 'deleted' AND expires_at <= $1"
        );
        sqlx::query_as(&sql)
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("expired recordings"))
    }

    /// Destroys the recording's key and records why, as the node (retention,
    /// a revoked consent). See [`Store::delete_recording_as`].
    pub async fn delete_recording(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        self.delete_recording_as(id, reason, &Actor::Node).await
    }

    /// Destroys the recording's key and audits `actor` doing it for
    /// `reason`, atomically. Returns false when it was already deleted (or
    /// never existed).
    pub async fn delete_recording_as(
        &self,
        id: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("recording delete"))?;
        let tenant = shred(&mut tx, now, id).await?;
        let Some(tenant) = tenant else {
            return Ok(false);
        };
        let event = NewAuditEvent::new("recording", &tenant, actor, "deleted", id, reason);
        insert_event(&mut tx, now, &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("recording delete"))?;
        Ok(true)
    }

    /// Records that `actor` read a recording (`reason`: `cli`, `api`).
    pub async fn audit_access(
        &self,
        recording: &RecordingRow,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), StoreError> {
        let event = NewAuditEvent::new(
            "recording",
            &recording.tenant_id,
            actor,
            "accessed",
            &recording.id,
            reason,
        );
        self.audit(&event).await
    }

    /// The recordings of `tenant`, newest first, optionally of one call,
    /// deleted ones included (their rows say when and carry no key).
    pub async fn recordings_of_tenant(
        &self,
        tenant: &str,
        call_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE tenant_id = $1 AND ($2 IS NULL OR call_id = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        sqlx::query_as(&sql)
            .bind(tenant)
            .bind(call_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("recordings of a tenant"))
    }

    pub async fn insert_consent_receipt(
        &self,
        receipt: &ConsentReceiptRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consent_receipts (hash, call_id, number_id, policy, notice_hash, \
             method, granted_at, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&receipt.hash)
        .bind(&receipt.call_id)
        .bind(&receipt.number_id)
        .bind(&receipt.policy)
        .bind(&receipt.notice_hash)
        .bind(&receipt.method)
        .bind(receipt.granted_at)
        .bind(&receipt.signature)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("consent receipt insert"))?;
        Ok(())
    }

    pub async fn consent_receipts_for_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<ConsentReceiptRow>, StoreError> {
        sqlx::query_as(
            "SELECT hash, call_id, number_id, policy, notice_hash, method, granted_at, \
             signature FROM consent_receipts WHERE call_id = $1 ORDER BY granted_at, hash",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("consent receipts"))
    }
}

/// Destroys recording `id`'s key and marks it deleted at `now`; its tenant,
/// or `None` when it was already deleted (or never existed).
pub(super) async fn shred(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    id: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(
        "UPDATE recordings SET state = 'deleted', wrapped_key = NULL, deleted_at = $2 \
         WHERE id = $1 AND state <> 'deleted' RETURNING tenant_id",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(StoreError::query("recording delete"))
}
