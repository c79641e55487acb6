//! The audit log: who did what to which object of a tenant, and when.
//!
//! Every admin change, every recording access and every deletion writes one
//! event, in the same transaction as the change where there is one, so the
//! log never misses a change that happened. Events name objects by id and
//! changes by field name only: no key, phone number or address is written.

use std::fmt;

use serde::Serialize;

use super::database::{Store, now_ms};
use super::error::StoreError;
use crate::domain::RecordingId;

/// Who made a change: an API key (by its public id), the command line or
/// the node itself (retention, a revoked consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Key(String),
    Cli,
    Node,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Key(id) => write!(f, "key:{id}"),
            Actor::Cli => f.write_str("cli"),
            Actor::Node => f.write_str("node"),
        }
    }
}

/// One event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent<'a> {
    pub tenant_id: &'a str,
    pub actor: &'a Actor,
    /// `created`, `updated`, `deleted`, `revoked`, `accessed`, `exported`, `erased`.
    pub action: &'a str,
    /// `number`, `widget`, `api_key`, `recording`, `call`.
    pub target_kind: &'a str,
    pub target_id: &'a str,
    /// Why, or which fields changed.
    pub reason: &'a str,
}

impl<'a> NewAuditEvent<'a> {
    /// `actor` did `action` to the `target_kind` object `target_id` of
    /// `tenant_id`, for `reason`.
    pub fn new(
        target_kind: &'a str,
        tenant_id: &'a str,
        actor: &'a Actor,
        action: &'a str,
        target_id: &'a str,
        reason: &'a str,
    ) -> Self {
        NewAuditEvent {
            tenant_id,
            actor,
            action,
            target_kind,
            target_id,
            reason,
        }
    }
}

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub reason: String,
}

/// One line of a recording's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub at: i64,
    pub recording_id: RecordingId,
    pub action: String,
    pub reason: String,
}

/// Writes `event` at `at` on `conn` (a transaction, usually).
pub(super) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    at: i64,
    event: &NewAuditEvent<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, at, actor, action, target_kind, target_id, \
         reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    // Time-ordered ids (monotonic within the process) keep the events of
    // one millisecond in the order they were written.
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(event.tenant_id)
    .bind(at)
    .bind(event.actor.to_string())
    .bind(event.action)
    .bind(event.target_kind)
    .bind(event.target_id)
    .bind(event.reason)
    .execute(conn)
    .await
    .map_err(StoreError::query("audit insert"))?;
    Ok(())
}

impl Store {
    /// Writes one event on its own, for actions that change no row
    /// (an export, an access).
    pub async fn audit(&self, event: &NewAuditEvent<'_>) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query("audit"))?;
        insert_event(&mut conn, now_ms(), event).await
    }

    /// The events of `tenant` between `from_ms` (inclusive) and `to_ms`
    /// (exclusive), oldest first, at most `limit`.
    pub async fn audit_events(
        &self,
        tenant: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query_as(
            "SELECT id, at, actor, action, target_kind, target_id, reason FROM audit_events \
             WHERE tenant_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id LIMIT $4",
        )
        .bind(tenant)
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("audit events"))
    }

    /// The accesses and deletion of one recording, oldest first.
    pub async fn audit_entries(&self, recording_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query_as(
            "SELECT at, target_id AS recording_id, action, reason FROM audit_events \
             WHERE target_kind = 'recording' AND target_id = $1 ORDER BY at, id",
        )
        .bind(recording_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("audit entries"))
    }
}
