//! A tenant's numbers: the callee a widget dials, the route to its trunk,
//! the recording policy and retention that apply to its calls, and its own
//! caps on them (calls at once, minutes a day).
//!
//! Every query is scoped to one tenant: another tenant's number reads as
//! missing. Every change writes its audit event in the same transaction.
//! Values arrive validated (E.164, route name, retention range) from the
//! admin API; the store only keeps them.

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::database::{Store, now_ms};
use super::error::StoreError;
use crate::domain::{OnRevoke, RecordingPolicy};

/// A number as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    pub id: String,
    /// Personal data of the customer: never logged in full.
    pub e164: String,
    /// A route name from `[[sip.routes]]`.
    pub trunk: String,
    pub recording: RecordingPolicy,
    pub on_revoke: OnRevoke,
    pub retention_days: u32,
    pub notice_text: Option<String>,
    pub limits: NumberLimits,
    pub created_at_ms: i64,
}

/// A number's own caps on its calls; `None` is no cap of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NumberLimits {
    /// Calls to the number in progress at once, on this node.
    pub max_concurrent_calls: Option<u32>,
    /// Minutes of talk per day (UTC), over every call to the number.
    pub minutes_per_day: Option<u32>,
}

impl NumberLimits {
    pub(super) fn from_columns(
        max_concurrent_calls: Option<i64>,
        minutes_per_day: Option<i64>,
    ) -> Result<Self, StoreError> {
        let positive = |column: &'static str, value: Option<i64>| {
            let checked = value.map(|v| {
                let positive = u32::try_from(v).ok().filter(|&v| v > 0);
                positive.ok_or_else(|| StoreError::Corrupt {
                    column,
                    detail: format!("out of range: {v}"),
                })
            });
            checked.transpose()
        };
        Ok(NumberLimits {
            max_concurrent_calls: positive("numbers.max_concurrent_calls", max_concurrent_calls)?,
            minutes_per_day: positive("numbers.minutes_per_day", minutes_per_day)?,
        })
    }

    fn columns(self) -> (Option<i64>, Option<i64>) {
        (
            self.max_concurrent_calls.map(i64::from),
            self.minutes_per_day.map(i64::from),
        )
    }
}

/// The fields a `PATCH` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberChange {
    pub e164: Option<String>,
    pub trunk: Option<String>,
    pub recording: Option<RecordingPolicy>,
    pub on_revoke: Option<OnRevoke>,
    pub retention_days: Option<u32>,
    /// `Some(None)` clears the notice.
    pub notice_text: Option<Option<String>>,
    /// Replaces both caps.
    pub limits: Option<NumberLimits>,
}

impl NumberChange {
    /// The names of the fields this change sets, for the audit log.
    pub fn field_names(&self) -> Vec<&'static str> {
        let set = [
            ("e164", self.e164.is_some()),
            ("trunk", self.trunk.is_some()),
            ("recording", self.recording.is_some()),
            ("on_revoke", self.on_revoke.is_some()),
            ("retention_days", self.retention_days.is_some()),
            ("notice_text", self.notice_text.is_some()),
            ("limits", self.limits.is_some()),
        ];
        set.into_iter()
            .filter_map(|(name, is_set)| is_set.then_some(name))
            .collect()
    }

    fn apply(self, number: &mut Number) {
        if let Some(e164) = self.e164 {
            number.e164 = e164;
        }
        if let Some(trunk) = self.trunk {
            number.trunk = trunk;
        }
        if let Some(recording) = self.recording {
            number.recording = recording;
        }
        if let Some(on_revoke) = self.on_revoke {
            number.on_revoke = on_revoke;
        }
        if let Some(days) = self.retention_days {
            number.retention_days = days;
        }
        if let Some(notice) = self.notice_text {
            number.notice_text = notice;
        }
        if let Some(limits) = self.limits {
            number.limits = limits;
        }
    }
}

/// Why a number could not be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberDelete {
    Deleted,
    NotFound,
    /// Widgets still dial it; delete or repoint them first.
    InUse,
}

#[derive(sqlx::FromRow)]
struct NumberRow {
    id: String,
    e164: String,
    trunk: String,
    recording: String,
    on_revoke: String,
    retention_days: i64,
    notice_text: Option<String>,
    max_concurrent_calls: Option<i64>,
    minutes_per_day: Option<i64>,
    created_at: i64,
}

impl TryFrom<NumberRow> for Number {
    type Error = StoreError;

    fn try_from(row: NumberRow) -> Result<Self, Self::Error> {
        Ok(Number {
            recording: row.recording.parse()?,
            on_revoke: row.on_revoke.parse()?,
            retention_days: u32::try_from(row.retention_days).map_err(|_| StoreError::Corrupt {
                column: "numbers.retention_days",
                detail: format!("out of range: {}", row.retention_days),
            })?,
            id: row.id,
            e164: row.e164,
            trunk: row.trunk,
            notice_text: row.notice_text,
            limits: NumberLimits::from_columns(row.max_concurrent_calls, row.minutes_per_day)?,
            created_at_ms: row.created_at,
        })
    }
}

const NUMBER_COLUMNS: &str = "id, e164, trunk, recording, on_revoke, retention_days, notice_text, \
     max_concurrent_calls, minutes_per_day, created_at";

impl Store {
    /// The numbers of `tenant`, by id.
    pub async fn numbers(&self, tenant: &str) -> Result<Vec<Number>, StoreError> {
        let sql = format!("SELECT {NUMBER_COLUMNS} FROM numbers WHERE tenant_id = $1 ORDER BY id");
        let rows: Vec<NumberRow> = sqlx::query_as(&sql)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("number listing"))?;
        rows.into_iter().map(Number::try_from).collect()
    }

    /// Number `id` of `tenant`; `None` when it is missing or another
    /// tenant's.
    pub async fn number(&self, tenant: &str, id: &str) -> Result<Option<Number>, StoreError> {
        let sql = format!("SELECT {NUMBER_COLUMNS} FROM numbers WHERE tenant_id = $1 AND id = $2");
        let row: Option<NumberRow> = sqlx::query_as(&sql)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("number lookup"))?;
        row.map(Number::try_from).transpose()
    }

    /// Adds `number` to `tenant`. An id taken by any tenant is a
    /// [`StoreError::Duplicate`] (ids are global, like widget ids).
    pub async fn insert_number(
        &self,
        tenant: &str,
        number: &Number,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("number insert"))?;
        sqlx::query(
            "INSERT INTO numbers (id, tenant_id, e164, trunk, recording, on_revoke, \
             retention_days, notice_text, max_concurrent_calls, minutes_per_day, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&number.id)
        .bind(tenant)
        .bind(&number.e164)
        .bind(&number.trunk)
        .bind(number.recording.as_str())
        .bind(number.on_revoke.as_str())
        .bind(i64::from(number.retention_days))
        .bind(&number.notice_text)
        .bind(number.limits.columns().0)
        .bind(number.limits.columns().1)
        .bind(number.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("number insert"))?;
        let event = NewAuditEvent::new("number", tenant, actor, "created", &number.id, "");
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("number insert"))
    }

    /// Applies `change` to number `id` of `tenant` and returns the result;
    /// `None` when there is no such number.
    pub async fn update_number(
        &self,
        tenant: &str,
        id: &str,
        change: NumberChange,
        actor: &Actor,
    ) -> Result<Option<Number>, StoreError> {
        let Some(mut number) = self.number(tenant, id).await? else {
            return Ok(None);
        };
        let fields = change.field_names().join(",");
        change.apply(&mut number);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("number update"))?;
        let changed = sqlx::query(
            "UPDATE numbers SET e164 = $3, trunk = $4, recording = $5, on_revoke = $6, \
             retention_days = $7, notice_text = $8, max_concurrent_calls = $9, \
             minutes_per_day = $10 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(&number.e164)
        .bind(&number.trunk)
        .bind(number.recording.as_str())
        .bind(number.on_revoke.as_str())
        .bind(i64::from(number.retention_days))
        .bind(&number.notice_text)
        .bind(number.limits.columns().0)
        .bind(number.limits.columns().1)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("number update"))?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let event = NewAuditEvent::new("number", tenant, actor, "updated", id, &fields);
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("number update"))?;
        Ok(Some(number))
    }

    /// Deletes number `id` of `tenant` unless a widget still dials it.
    /// Its CDRs and recordings stay (billing and retention own them).
    pub async fn delete_number(
        &self,
        tenant: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<NumberDelete, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("number delete"))?;
        let widgets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM widgets WHERE number_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query("number delete"))?;
        let exists = sqlx::query("SELECT id FROM numbers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("number delete"))?
            .is_some();
        if !exists {
            return Ok(NumberDelete::NotFound);
        }
        if widgets > 0 {
            return Ok(NumberDelete::InUse);
        }
        sqlx::query("DELETE FROM numbers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("number delete"))?;
        let event = NewAuditEvent::new("number", tenant, actor, "deleted", id, "");
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("number delete"))?;
        Ok(NumberDelete::Deleted)
    }
}
