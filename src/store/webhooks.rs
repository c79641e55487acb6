//! A tenant's webhook endpoint and the queue of deliveries to it.
//!
//! Endpoint changes are scoped to one tenant and write their audit event
//! in the same transaction. An event is queued only for a tenant that has
//! an endpoint, in one statement, so queueing never races a delete. A
//! delivery is claimed by moving its next attempt into the future before
//! it is sent, so two workers on one database never send it twice at once.

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::database::{Store, now_ms};
use super::error::StoreError;
use crate::domain::TenantId;

/// A tenant's endpoint; `secret` signs every delivery. The store keeps the
/// secret as it is given: the admin API gives it sealed under the KEK
/// (`KeyRing::seal_secret`), so a copy of the database does not hold it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookEndpoint {
    /// The events it receives, comma-separated (`call.ended,recording.ready`).
    pub events: String,
    pub url: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery that is due, with what it takes to send it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: String,
    pub tenant_id: TenantId,
    pub event: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
}

/// A delivery's state, for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub event: String,
    pub body: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    /// The endpoint of `tenant`, if it set one.
    pub async fn webhook(&self, tenant: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        sqlx::query_as(
            "SELECT events, url, secret, created_at, updated_at FROM webhook_endpoints \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("webhook lookup"))
    }

    /// Sets (or replaces) the endpoint of `tenant`, receiving `events`
    /// (comma-separated names).
    pub async fn set_webhook(
        &self,
        tenant: &str,
        url: &str,
        secret: &str,
        events: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let op = "webhook update";
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(StoreError::query(op))?;
        let replaced = sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, secret = $3, updated_at = $4, events = $5 \
             WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(url)
        .bind(secret)
        .bind(now)
        .bind(events)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(op))?
        .rows_affected();
        if replaced == 0 {
            sqlx::query(
                "INSERT INTO webhook_endpoints \
                 (tenant_id, url, secret, created_at, updated_at, events) \
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(tenant)
            .bind(url)
            .bind(secret)
            .bind(now)
            .bind(events)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(op))?;
        }
        let action = if replaced == 0 { "created" } else { "updated" };
        insert_event(
            &mut tx,
            now,
            &NewAuditEvent::new("webhook", tenant, actor, action, tenant, ""),
        )
        .await?;
        tx.commit().await.map_err(StoreError::query(op))
    }

    /// Removes the endpoint of `tenant` and drops its undelivered events
    /// (they were to be signed with the removed secret); false when it had
    /// none.
    pub async fn delete_webhook(&self, tenant: &str, actor: &Actor) -> Result<bool, StoreError> {
        let op = "webhook delete";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(op))?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(op))?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE tenant_id = $1 \
             AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(op))?;
        insert_event(
            &mut tx,
            now_ms(),
            &NewAuditEvent::new("webhook", tenant, actor, "deleted", tenant, ""),
        )
        .await?;
        tx.commit().await.map_err(StoreError::query(op))?;
        Ok(true)
    }

    /// Queues `event` with `body` for `tenant`, due now; does nothing (and
    /// answers false) when the tenant has no endpoint or its endpoint does
    /// not receive `event`.
    pub async fn enqueue_webhook(
        &self,
        tenant: &str,
        event: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let queued = sqlx::query(
            "INSERT INTO webhook_deliveries (id, tenant_id, event, body, created_at, \
             next_attempt_at) SELECT $1, $2, $3, $4, $5, $5 WHERE EXISTS \
             (SELECT 1 FROM webhook_endpoints WHERE tenant_id = $2 \
             AND ',' || events || ',' LIKE '%,' || $3 || ',%')",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(tenant)
        .bind(event)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("webhook enqueue"))?
        .rows_affected();
        Ok(queued > 0)
    }

    /// Deletes deliveries delivered or given up before `cutoff_ms`: their
    /// bodies hold CDRs, which should not outlive their use.
    pub async fn delete_finished_webhooks_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE COALESCE(delivered_at, failed_at) < $1",
        )
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("webhook retention"))?
        .rows_affected();
        Ok(deleted)
    }

    /// Claims up to `limit` deliveries due at `now`: each claimed one is
    /// not due again before `lease_until`, so a crash mid-send retries it.
    pub async fn claim_webhooks(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let op = "webhook claim";
        let due: Vec<DueDelivery> = sqlx::query_as(
            "SELECT d.id, d.tenant_id, d.event, d.body, d.attempts, d.created_at, e.url, \
                    e.secret \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id \
             WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(op))?;
        let mut claimed = Vec::with_capacity(due.len());
        for delivery in due {
            let won = sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 \
                 WHERE id = $1 AND next_attempt_at <= $3 AND delivered_at IS NULL",
            )
            .bind(&delivery.id)
            .bind(lease_until)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query(op))?
            .rows_affected();
            if won > 0 {
                claimed.push(delivery);
            }
        }
        Ok(claimed)
    }

    /// Tenants whose endpoint's secret is not in `sealed` form yet (one
    /// set before secrets were sealed), with that secret.
    pub async fn unsealed_webhook_secrets(
        &self,
        sealed_prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, secret FROM webhook_endpoints ORDER BY tenant_id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("webhook secrets"))?;
        Ok(rows
            .into_iter()
            .filter(|(_, secret)| !secret.starts_with(sealed_prefix))
            .collect())
    }

    /// Replaces the secret of `tenant`'s endpoint with `sealed`, if it is
    /// still `was` (so a concurrent `PUT` is never undone).
    pub async fn reseal_webhook_secret(
        &self,
        tenant: &str,
        was: &str,
        sealed: &str,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $3 WHERE tenant_id = $1 AND secret = $2",
        )
        .bind(tenant)
        .bind(was)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("webhook secret reseal"))?
        .rows_affected();
        Ok(updated > 0)
    }

    /// The earliest next attempt of any pending delivery.
    pub async fn next_webhook_due(&self) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("webhook next due"))
    }

    /// Marks delivery `id` delivered.
    pub async fn webhook_delivered(&self, id: &str, attempts: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET delivered_at = $2, attempts = $3, last_error = NULL \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(attempts)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("webhook delivered"))?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up when
    /// that is `None`.
    pub async fn webhook_failed(
        &self,
        id: &str,
        attempts: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $2, last_error = $3, \
             next_attempt_at = $4, failed_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(error)
        .bind(retry_at.unwrap_or(now))
        .bind(retry_at.is_none().then_some(now))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("webhook failed"))?;
        Ok(())
    }

    /// The deliveries of `tenant`, oldest first.
    pub async fn webhook_deliveries(&self, tenant: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, tenant_id, event, body, attempts, next_attempt_at, delivered_at, \
             failed_at, last_error FROM webhook_deliveries WHERE tenant_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("webhook deliveries"))
    }
}
