//! Privacy requests about one call: find it by the reference the visitor
//! was shown (or its call id), and erase what is held about it.
//!
//! Erasing destroys the keys of the call's recordings (crypto-shredding:
//! every copy of their blobs is unreadable from then on), deletes its
//! consent receipts and the webhook bodies about it, and reduces its CDR to what billing needs: ids, times,
//! duration, number and disposition. The audit log keeps that it happened.
//! All of it is one transaction: a request is either done or not at all.

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::cdr::CdrRecord;
use super::database::{Store, now_ms};
use super::error::StoreError;
use super::recordings::RecordingRow;
use crate::domain::CallId;

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub call_id: CallId,
    /// Recordings whose keys were destroyed now, with their blobs' paths
    /// (for the caller to remove; they are unreadable already).
    pub recordings: Vec<RecordingRow>,
    pub consent_receipts: u64,
}

impl Store {
    /// The CDR of `tenant` whose privacy reference or call id is `reference`.
    pub async fn cdr_by_reference(
        &self,
        tenant: &str,
        reference: &str,
    ) -> Result<Option<CdrRecord>, StoreError> {
        let call_id: Option<String> = sqlx::query_scalar(
            "SELECT call_id FROM cdrs WHERE tenant_id = $1 AND (privacy_ref = $2 OR call_id = $2)",
        )
        .bind(tenant)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("privacy lookup"))?;
        match call_id {
            Some(call_id) => self.cdr(&call_id).await,
            None => Ok(None),
        }
    }

    /// Erases call `call_id` of `tenant` (see the module doc). Erasing twice
    /// is harmless: the second finds nothing left to destroy.
    pub async fn erase_call(
        &self,
        tenant: &str,
        call_id: &str,
        actor: &Actor,
    ) -> Result<Erased, StoreError> {
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("erase"))?;
        let recordings = shred_recordings(&mut tx, now, tenant, call_id, actor).await?;
        let consent_receipts = delete_traces(&mut tx, tenant, call_id).await?;
        reduce_cdr(&mut tx, now, tenant, call_id).await?;
        let event = NewAuditEvent {
            tenant_id: tenant,
            actor,
            action: "erased",
            target_kind: "call",
            target_id: call_id,
            reason: "",
        };
        insert_event(&mut tx, now, &event).await?;
        tx.commit().await.map_err(StoreError::query("erase"))?;
        Ok(Erased {
            call_id: call_id.into(),
            recordings,
            consent_receipts,
        })
    }
}

/// Destroys the keys of the call's recordings, each with its audit entry;
/// returns the recordings it destroyed.
async fn shred_recordings(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    tenant: &str,
    call_id: &str,
    actor: &Actor,
) -> Result<Vec<RecordingRow>, StoreError> {
    let recordings: Vec<RecordingRow> = sqlx::query_as(&format!(
        "SELECT {} FROM recordings WHERE tenant_id = $1 AND call_id = $2 AND state <> 'deleted'",
        super::recordings::RECORDING_COLUMNS
    ))
    .bind(tenant)
    .bind(call_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::query("erase"))?;
    for recording in &recordings {
        super::recordings::shred(conn, now, &recording.id).await?;
        let event = NewAuditEvent {
            tenant_id: tenant,
            actor,
            action: "deleted",
            target_kind: "recording",
            target_id: &recording.id,
            reason: "erasure",
        };
        insert_event(conn, now, &event).await?;
    }
    Ok(recordings)
}

/// Deletes the call's consent receipts and the webhook bodies about it
/// (its CDR, its recordings), queued or already sent; returns how many
/// receipts went.
async fn delete_traces(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    call_id: &str,
) -> Result<u64, StoreError> {
    let consent_receipts = sqlx::query("DELETE FROM consent_receipts WHERE call_id = $1")
        .bind(call_id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("erase"))?
        .rows_affected();
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND body LIKE $2")
        .bind(tenant)
        .bind(format!(
            "%\"call_id\":\"{}\"%",
            call_id.replace(['%', '_'], "")
        ))
        .execute(&mut *conn)
        .await
        .map_err(StoreError::query("erase"))?;
    Ok(consent_receipts)
}

/// Reduces the call's CDR to what billing needs, stamped erased (once).
async fn reduce_cdr(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    tenant: &str,
    call_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cdrs SET widget_id = '', trunk = NULL, node_id = '', sip_code = NULL, \
         sip_reason = NULL, q850_cause = NULL, \
         browser_codec = NULL, trunk_codec = NULL, browser_packets_sent = 0, \
         browser_packets_received = 0, browser_packets_lost = 0, browser_jitter_us = 0, \
         trunk_packets_sent = 0, trunk_packets_received = 0, trunk_packets_lost = 0, \
         trunk_jitter_us = 0, browser_mos_worst_x100 = NULL, \
         browser_mos_average_x100 = NULL, trunk_mos_worst_x100 = NULL, \
         trunk_mos_average_x100 = NULL, visitor_network = NULL, recorded = 0, \
         erased_at = COALESCE(erased_at, $3) \
         WHERE tenant_id = $1 AND call_id = $2",
    )
    .bind(tenant)
    .bind(call_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("erase"))?;
    Ok(())
}
