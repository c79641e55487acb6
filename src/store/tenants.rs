//! Tenants (the customers of a node), the allowance the operator gave
//! each (where its numbers may call), and their API keys.
//!
//! A key is stored only as a keyed hash beside its public id and role; the
//! key itself is shown once, when made, and never again. A revoked key stays
//! as a row (its id appears in the audit log) but no longer authenticates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::database::{Store, now_ms};
use super::error::StoreError;
use crate::dialing::Allowance;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and changes its tenant's numbers, widgets and recordings.
    Admin,
    /// Reads its tenant's data; every change is refused.
    Read,
    /// Belongs to no tenant: the node's own endpoints.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "read" => Ok(Role::Read),
            "operator" => Ok(Role::Operator),
            other => Err(StoreError::Corrupt {
                column: "api_keys.role",
                detail: format!("unknown role {other:?}"),
            }),
        }
    }
}

/// An API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key, also its audit name.
    pub id: String,
    /// `None` for operator keys.
    pub tenant_id: Option<String>,
    pub role: Role,
    /// The KEK the hash was made under.
    pub hash_key_id: String,
    /// Hex of the keyed hash.
    pub hash: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    tenant_id: Option<String>,
    role: String,
    hash_key_id: String,
    hash: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, Self::Error> {
        Ok(ApiKeyRecord {
            role: row.role.parse()?,
            id: row.id,
            tenant_id: row.tenant_id,
            hash_key_id: row.hash_key_id,
            hash: row.hash,
            created_at_ms: row.created_at,
            revoked_at_ms: row.revoked_at,
        })
    }
}

const KEY_COLUMNS: &str = "id, tenant_id, role, hash_key_id, hash, created_at, revoked_at";

impl Store {
    /// Adds tenant `id`; false when it already exists.
    pub async fn create_tenant(&self, id: &str) -> Result<bool, StoreError> {
        let created = sqlx::query(
            "INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("tenant insert"))?
        .rows_affected();
        Ok(created == 1)
    }

    pub async fn tenant_exists(&self, id: &str) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT id FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("tenant lookup"))?;
        Ok(found.is_some())
    }

    /// Stores a new key and audits its creation by `actor`. A tenant that
    /// does not exist is a [`StoreError::MissingReference`].
    pub async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("api key insert"))?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, role, hash_key_id, hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(key.role.as_str())
        .bind(&key.hash_key_id)
        .bind(&key.hash)
        .bind(key.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("api key insert"))?;
        if let Some(tenant) = &key.tenant_id {
            let event = NewAuditEvent::new(
                "api_key",
                tenant,
                actor,
                "created",
                &key.id,
                key.role.as_str(),
            );
            insert_event(&mut tx, now_ms(), &event).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("api key insert"))
    }

    /// Key `id`, revoked or not.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<ApiKeyRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("api key lookup"))?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    /// Every key of `tenant`, revoked ones included, oldest first.
    pub async fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<ApiKeyRow> = sqlx::query_as(&sql)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("api key listing"))?;
        rows.into_iter().map(ApiKeyRecord::try_from).collect()
    }

    /// Revokes key `id`; false when there is no such key or it was already
    /// revoked. Effective for the next request.
    pub async fn revoke_api_key(&self, id: &str, actor: &Actor) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("api key revoke"))?;
        let revoked: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
             RETURNING tenant_id",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("api key revoke"))?;
        let Some(tenant) = revoked else {
            return Ok(false);
        };
        if let Some(tenant) = tenant {
            let event = NewAuditEvent::new("api_key", &tenant, actor, "revoked", id, "");
            insert_event(&mut tx, now, &event).await?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("api key revoke"))?;
        Ok(true)
    }

    /// The allowance the operator gave `tenant`: `Ok(None)` when there is
    /// no such tenant, `Ok(Some(None))` when it has the node's default.
    pub async fn tenant_allowance(
        &self,
        tenant: &str,
    ) -> Result<Option<Option<Allowance>>, StoreError> {
        let row: Option<Option<String>> =
            sqlx::query_scalar("SELECT dial_allowance FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("tenant allowance lookup"))?;
        row.map(|json| json.as_deref().map(parse_allowance).transpose())
            .transpose()
    }

    /// Gives `tenant` its own allowance, or (`None`) the node's default
    /// again, audited in the tenant's log; false when there is no such
    /// tenant.
    pub async fn set_tenant_allowance(
        &self,
        tenant: &str,
        allowance: Option<&Allowance>,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let json = allowance.map(encode_allowance);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("tenant allowance update"))?;
        let updated = sqlx::query("UPDATE tenants SET dial_allowance = $2 WHERE id = $1")
            .bind(tenant)
            .bind(json.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("tenant allowance update"))?
            .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        let action = if allowance.is_some() {
            "updated"
        } else {
            "deleted"
        };
        let event = NewAuditEvent::new("allowance", tenant, actor, action, tenant, "");
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("tenant allowance update"))?;
        Ok(true)
    }
}

/// Decodes `tenants.dial_allowance`.
pub(super) fn parse_allowance(json: &str) -> Result<Allowance, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        column: "tenants.dial_allowance",
        detail: e.to_string(),
    })
}

fn encode_allowance(allowance: &Allowance) -> String {
    // Lists of strings always serialise; the fallback is unreachable.
    serde_json::to_string(allowance).unwrap_or_else(|_| "{}".to_owned())
}
