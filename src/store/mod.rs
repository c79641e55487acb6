//! The store: tenants, numbers, widgets and call detail records, in SQL.
//!
//! Owns the database pool behind [`Store`], the embedded migrations, the
//! idempotent demo seed, the lookup a browser call makes when it is placed
//! ([`Store::widget_route`]) and the one [`CdrRecord`] written when it ends.
//!
//! Two databases, one behaviour: SQLite (`sqlite://FILE`, the embedded
//! default, or `sqlite::memory:` for tests) and PostgreSQL
//! (`postgres://USER:PASSWORD@HOST:PORT/DB`) for nodes that share a store.
//! Queries go through sqlx's `Any` driver, so every statement is written
//! once; the schema is written twice, `migrations/sqlite` and
//! `migrations/postgres`, migration for migration.
//!
//! Invariants:
//! - SQL stays portable: TEXT, INTEGER and BIGINT columns, times as BIGINT
//!   unix milliseconds, booleans as INTEGER 0/1 (read as integers: the `Any`
//!   driver decodes `bool` only from a real boolean), `$N` placeholders,
//!   `ON CONFLICT ... DO NOTHING`, and queries checked at run time
//!   (`sqlx::query`), so no database is needed at build time.
//! - Opening runs every pending migration; opening twice is harmless, and
//!   PostgreSQL nodes opening at once take turns (the migrator's lock).
//! - Foreign keys are enforced on every connection; a widget can only point
//!   at a number of its own tenant.
//! - A CDR holds no visitor data beyond the truncated network
//!   ([`crate::privacy::truncate_ip`]); errors never print a server URL.
//! - Nothing here panics on stored data: a bad value is a
//!   [`StoreError::Corrupt`].
//!
//! ```no_run
//! # async fn open() -> Result<(), Box<dyn std::error::Error>> {
//! use callgate::config::Config;
//! use callgate::store::Store;
//!
//! let config = Config::load(None, Vec::new())?;
//! let store = Store::open(&config.database.url_for(&config.node.data_dir)).await?;
//! store.seed_demo().await?;
//! # Ok(())
//! # }
//! ```

mod audit;
mod cdr;
pub mod copy;
mod database;
mod error;
mod numbers;
mod privacy;
mod recordings;
mod seed;
mod tenants;
mod webhooks;
mod widgets;

#[cfg(test)]
mod tests;

pub use self::audit::{Actor, AuditEntry, AuditEvent, NewAuditEvent};
pub use self::cdr::{CdrCursor, CdrFilter, CdrRecord, NODE_LOST};
pub use self::database::{Store, now_ms, unix_ms};
pub use self::error::StoreError;
pub use self::numbers::{Number, NumberChange, NumberDelete, NumberLimits};
pub use self::privacy::Erased;
pub use self::recordings::{ConsentReceiptRow, NewRecording, RecordingRow};
pub use self::seed::DEMO_ID;
pub use self::tenants::{ApiKeyRecord, Role};
pub use self::webhooks::{DeliveryRow, DueDelivery, WebhookEndpoint};
pub use self::widgets::{
    SELF_ORIGIN, Widget, WidgetChange, WidgetLimits, WidgetRoute, WidgetWrite,
};
