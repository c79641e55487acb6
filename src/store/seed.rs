//! The demo rows every development node starts with: tenant `demo`, number
//! `demo` (routed over the `demo` route, recording `opt_in`, 7 days) and
//! widget `demo`, which may be used from the node's own origin.
//!
//! Seeding inserts only what is missing, so it is safe on every start and
//! keeps any change an operator made to the demo rows.

use super::database::{Store, now_ms};
use super::error::StoreError;
use super::widgets::{SELF_ORIGIN, encode_origins};
use crate::domain::RecordingPolicy;

/// The id shared by the demo tenant, number and widget.
pub const DEMO_ID: &str = "demo";
/// A reserved fictional number (555-01xx), never a real subscriber.
const DEMO_E164: &str = "+15555550100";
/// The `[[sip.routes]]` name the demo number dials through.
const DEMO_ROUTE: &str = "demo";
const DEMO_RETENTION_DAYS: i64 = 7;
pub(super) const DEMO_NOTICE: &str = "This demo call can be recorded if you allow it. \
     Recordings are encrypted and deleted after 7 days.";

impl Store {
    /// Inserts the demo tenant, number and widget where they are missing.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("demo seed"))?;
        sqlx::query(
            "INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEMO_ID)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("demo tenant seed"))?;
        sqlx::query(
            "INSERT INTO numbers (id, tenant_id, e164, trunk, recording, retention_days, \
                                  notice_text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEMO_ID)
        .bind(DEMO_ID)
        .bind(DEMO_E164)
        .bind(DEMO_ROUTE)
        .bind(RecordingPolicy::OptIn.as_str())
        .bind(DEMO_RETENTION_DAYS)
        .bind(DEMO_NOTICE)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("demo number seed"))?;
        sqlx::query(
            "INSERT INTO widgets (id, tenant_id, number_id, allowed_origins, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(DEMO_ID)
        .bind(DEMO_ID)
        .bind(DEMO_ID)
        .bind(encode_origins(&[SELF_ORIGIN.to_owned()]))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("demo widget seed"))?;
        tx.commit().await.map_err(StoreError::query("demo seed"))
    }
}

#[cfg(test)]
impl super::widgets::WidgetRoute {
    /// The route the demo seed stores (`Store::seed_demo`), for tests that
    /// need one.
    pub fn demo() -> Self {
        Self {
            widget_id: "demo".into(),
            tenant_id: "demo".into(),
            number_id: "demo".into(),
            e164: "+15555550100".into(),
            trunk: "demo".into(),
            recording: RecordingPolicy::OptIn,
            on_revoke: crate::domain::OnRevoke::Discard,
            retention_days: 7,
            notice_text: Some(DEMO_NOTICE.into()),
            allowed_origins: vec![SELF_ORIGIN.into()],
            limits: super::widgets::WidgetLimits::default(),
            allowance: None,
            number_limits: super::numbers::NumberLimits::default(),
        }
    }
}
