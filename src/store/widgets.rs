//! Widgets and the route a browser call takes: widget → number → trunk.

use super::audit::{Actor, NewAuditEvent, insert_event};
use super::database::{Store, now_ms};
use super::error::StoreError;
use super::numbers::NumberLimits;
use super::tenants::parse_allowance;
use crate::dialing::Allowance;
use crate::domain::{NumberId, OnRevoke, RecordingPolicy, TenantId, WidgetId};

/// The `allowed_origins` token meaning "the node's own public origin".
///
/// The store keeps it as written; the signalling layer resolves it against
/// the node's public URL when it checks a browser's `Origin`.
pub const SELF_ORIGIN: &str = "self";

/// Everything a browser call needs to know about the widget it was placed
/// from. The destination comes from here, never from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetRoute {
    pub widget_id: WidgetId,
    pub tenant_id: TenantId,
    pub number_id: NumberId,
    /// The callee in E.164; personal data, wrap it in `Pii` to log it.
    pub e164: String,
    /// A route name from `[[sip.routes]]`.
    pub trunk: String,
    pub recording: RecordingPolicy,
    /// Whether a mid-call revocation deletes the recording (`discard`) or
    /// keeps what was recorded before it (`keep`).
    pub on_revoke: OnRevoke,
    /// Days a recording of this number is kept.
    pub retention_days: u32,
    /// The notice the widget shows before a call on a recorded number.
    pub notice_text: Option<String>,
    /// Origins a browser may place calls from, e.g. `https://shop.example`.
    /// The token [`SELF_ORIGIN`] (`"self"`) stands for the node's own public
    /// origin, which the signalling layer resolves.
    pub allowed_origins: Vec<String>,
    /// The widget's own limits, where it has any.
    pub limits: WidgetLimits,
    /// The allowance the operator gave the tenant; `None`: the node's
    /// default.
    pub allowance: Option<Allowance>,
    /// The number's own caps, where it has any.
    pub number_limits: NumberLimits,
}

/// A widget's own limits on new calls; `None` leaves the node's limit.
///
/// They can only tighten the node's limits: the admin API refuses values
/// above them, and the guards apply whichever is lower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WidgetLimits {
    /// New calls per minute through the widget.
    pub calls_per_minute: Option<u32>,
    /// Calls in progress through the widget at once.
    pub max_concurrent_calls: Option<u32>,
}

impl WidgetLimits {
    fn from_columns(
        calls_per_minute: Option<i64>,
        max_concurrent_calls: Option<i64>,
    ) -> Result<Self, StoreError> {
        let positive = |column: &'static str, value: Option<i64>| {
            value
                .map(|v| {
                    u32::try_from(v)
                        .ok()
                        .filter(|&v| v > 0)
                        .ok_or_else(|| StoreError::Corrupt {
                            column,
                            detail: format!("out of range: {v}"),
                        })
                })
                .transpose()
        };
        Ok(WidgetLimits {
            calls_per_minute: positive("widgets.calls_per_minute", calls_per_minute)?,
            max_concurrent_calls: positive("widgets.max_concurrent_calls", max_concurrent_calls)?,
        })
    }

    fn columns(self) -> (Option<i64>, Option<i64>) {
        (
            self.calls_per_minute.map(i64::from),
            self.max_concurrent_calls.map(i64::from),
        )
    }
}

#[derive(sqlx::FromRow)]
struct RouteRow {
    widget_id: WidgetId,
    tenant_id: TenantId,
    number_id: NumberId,
    e164: String,
    trunk: String,
    recording: String,
    on_revoke: String,
    retention_days: i64,
    notice_text: Option<String>,
    allowed_origins: String,
    calls_per_minute: Option<i64>,
    max_concurrent_calls: Option<i64>,
    dial_allowance: Option<String>,
    number_max_concurrent_calls: Option<i64>,
    number_minutes_per_day: Option<i64>,
}

impl TryFrom<RouteRow> for WidgetRoute {
    type Error = StoreError;

    fn try_from(row: RouteRow) -> Result<Self, Self::Error> {
        let allowed_origins = parse_origins(&row.allowed_origins)?;
        Ok(WidgetRoute {
            limits: WidgetLimits::from_columns(row.calls_per_minute, row.max_concurrent_calls)?,
            allowance: row
                .dial_allowance
                .as_deref()
                .map(parse_allowance)
                .transpose()?,
            number_limits: NumberLimits::from_columns(
                row.number_max_concurrent_calls,
                row.number_minutes_per_day,
            )?,
            recording: row.recording.parse()?,
            on_revoke: row.on_revoke.parse()?,
            retention_days: u32::try_from(row.retention_days).map_err(|_| StoreError::Corrupt {
                column: "numbers.retention_days",
                detail: format!("out of range: {}", row.retention_days),
            })?,
            notice_text: row.notice_text,
            widget_id: row.widget_id,
            tenant_id: row.tenant_id,
            number_id: row.number_id,
            e164: row.e164,
            trunk: row.trunk,
            allowed_origins,
        })
    }
}

/// Decodes the `widgets.allowed_origins` JSON array.
pub(super) fn parse_origins(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::Corrupt {
        column: "widgets.allowed_origins",
        detail: error.to_string(),
    })
}

/// Encodes origins for the `widgets.allowed_origins` column.
pub(super) fn encode_origins(origins: &[String]) -> String {
    // A Vec<String> always serialises; the fallback is unreachable.
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// The route for calls placed from `widget_id`, or `None` when no such
    /// widget exists.
    pub async fn widget_route(&self, widget_id: &str) -> Result<Option<WidgetRoute>, StoreError> {
        let row: Option<RouteRow> = sqlx::query_as(
            "SELECT w.id AS widget_id, w.tenant_id, w.number_id, n.e164, n.trunk, \
                    n.recording, n.on_revoke, n.retention_days, n.notice_text, \
                    w.allowed_origins, w.calls_per_minute, w.max_concurrent_calls, \
                    t.dial_allowance, n.max_concurrent_calls AS number_max_concurrent_calls, \
                    n.minutes_per_day AS number_minutes_per_day \
             FROM widgets w JOIN numbers n ON n.id = w.number_id \
                  JOIN tenants t ON t.id = w.tenant_id \
             WHERE w.id = $1",
        )
        .bind(widget_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("widget lookup"))?;
        row.map(WidgetRoute::try_from).transpose()
    }
}

/// A widget as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widget {
    pub id: String,
    pub number_id: NumberId,
    pub allowed_origins: Vec<String>,
    pub limits: WidgetLimits,
    pub created_at_ms: i64,
}

/// The fields a `PATCH` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetChange {
    pub number_id: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    /// Replaces every limit at once.
    pub limits: Option<WidgetLimits>,
}

/// The outcome of a widget write that names a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WidgetWrite {
    Done(Widget),
    /// No widget with that id for this tenant.
    NotFound,
    /// The number is missing or another tenant's.
    NoSuchNumber,
}

#[derive(sqlx::FromRow)]
struct WidgetRow {
    id: String,
    number_id: NumberId,
    allowed_origins: String,
    calls_per_minute: Option<i64>,
    max_concurrent_calls: Option<i64>,
    created_at: i64,
}

impl TryFrom<WidgetRow> for Widget {
    type Error = StoreError;

    fn try_from(row: WidgetRow) -> Result<Self, Self::Error> {
        Ok(Widget {
            allowed_origins: parse_origins(&row.allowed_origins)?,
            limits: WidgetLimits::from_columns(row.calls_per_minute, row.max_concurrent_calls)?,
            id: row.id,
            number_id: row.number_id,
            created_at_ms: row.created_at,
        })
    }
}

impl Store {
    /// The widgets of `tenant`, by id.
    pub async fn widgets(&self, tenant: &str) -> Result<Vec<Widget>, StoreError> {
        let rows: Vec<WidgetRow> = sqlx::query_as(
            "SELECT id, number_id, allowed_origins, calls_per_minute, max_concurrent_calls, \
             created_at FROM widgets \
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("widget listing"))?;
        rows.into_iter().map(Widget::try_from).collect()
    }

    /// Widget `id` of `tenant`; `None` when missing or another tenant's.
    pub async fn widget(&self, tenant: &str, id: &str) -> Result<Option<Widget>, StoreError> {
        let row: Option<WidgetRow> = sqlx::query_as(
            "SELECT id, number_id, allowed_origins, calls_per_minute, max_concurrent_calls, \
             created_at FROM widgets \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("widget lookup"))?;
        row.map(Widget::try_from).transpose()
    }

    /// Adds `widget` to `tenant`; its number must be one of the tenant's.
    pub async fn insert_widget(
        &self,
        tenant: &str,
        widget: Widget,
        actor: &Actor,
    ) -> Result<WidgetWrite, StoreError> {
        if self.number(tenant, &widget.number_id).await?.is_none() {
            return Ok(WidgetWrite::NoSuchNumber);
        }
        let (per_minute, concurrent) = widget.limits.columns();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("widget insert"))?;
        sqlx::query(
            "INSERT INTO widgets (id, tenant_id, number_id, allowed_origins, \
             calls_per_minute, max_concurrent_calls, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&widget.id)
        .bind(tenant)
        .bind(&widget.number_id)
        .bind(encode_origins(&widget.allowed_origins))
        .bind(per_minute)
        .bind(concurrent)
        .bind(widget.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("widget insert"))?;
        let event = NewAuditEvent::new("widget", tenant, actor, "created", &widget.id, "");
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("widget insert"))?;
        Ok(WidgetWrite::Done(widget))
    }

    /// Applies `change` to widget `id` of `tenant`.
    pub async fn update_widget(
        &self,
        tenant: &str,
        id: &str,
        change: WidgetChange,
        actor: &Actor,
    ) -> Result<WidgetWrite, StoreError> {
        let Some(mut widget) = self.widget(tenant, id).await? else {
            return Ok(WidgetWrite::NotFound);
        };
        let mut fields = Vec::new();
        if let Some(number_id) = change.number_id {
            if self.number(tenant, &number_id).await?.is_none() {
                return Ok(WidgetWrite::NoSuchNumber);
            }
            widget.number_id = number_id.into();
            fields.push("number_id");
        }
        if let Some(origins) = change.allowed_origins {
            widget.allowed_origins = origins;
            fields.push("allowed_origins");
        }
        if let Some(limits) = change.limits {
            widget.limits = limits;
            fields.push("limits");
        }
        let (per_minute, concurrent) = widget.limits.columns();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("widget update"))?;
        sqlx::query(
            "UPDATE widgets SET number_id = $3, allowed_origins = $4, \
             calls_per_minute = $5, max_concurrent_calls = $6 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(&widget.number_id)
        .bind(encode_origins(&widget.allowed_origins))
        .bind(per_minute)
        .bind(concurrent)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("widget update"))?;
        let fields = fields.join(",");
        let event = NewAuditEvent::new("widget", tenant, actor, "updated", id, &fields);
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("widget update"))?;
        Ok(WidgetWrite::Done(widget))
    }

    /// Deletes widget `id` of `tenant`; false when there was none. Calls in
    /// progress through it go on; new ones get 404.
    pub async fn delete_widget(
        &self,
        tenant: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("widget delete"))?;
        let deleted = sqlx::query("DELETE FROM widgets WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("widget delete"))?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        let event = NewAuditEvent::new("widget", tenant, actor, "deleted", id, "");
        insert_event(&mut tx, now_ms(), &event).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("widget delete"))?;
        Ok(true)
    }
}
