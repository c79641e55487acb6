//! Copying a node's whole database into another, empty one: how a node
//! that started on its embedded SQLite moves to PostgreSQL
//! (`callgate database copy`).
//!
//! Both stores are opened first, so both carry every migration and the
//! same tables and columns. The target must hold no rows at all. Every
//! table is copied in an order that satisfies its foreign keys, in one
//! transaction on the target: a copy that fails leaves the target empty.
//! Rows are read as a stream and written in multi-row batches, so a year
//! of call records never sits in memory. Values are moved as they are
//! stored: key hashes, wrapped recording keys and sealed secrets keep
//! working as long as the new node loads the same KEKs.

use futures_util::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use super::database::{Backend, Store};
use super::error::StoreError;

/// Every table, parents before children.
pub const TABLES: [&str; 10] = [
    "tenants",
    "numbers",
    "widgets",
    "api_keys",
    "cdrs",
    "recordings",
    "consent_receipts",
    "audit_events",
    "webhook_endpoints",
    "webhook_deliveries",
];

/// Bound parameters per insert, well inside SQLite's and PostgreSQL's
/// limits.
const PARAMS_PER_INSERT: usize = 4000;

/// How a column's values are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
    Bytes,
}

#[derive(Debug)]
struct Column {
    name: String,
    kind: Kind,
}

/// One value of a row being copied.
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "the target database already holds data ({rows} rows in {table}); copy into an empty database"
    )]
    TargetNotEmpty { table: &'static str, rows: i64 },
    #[error("{table}.{column}: column of unknown type {declared:?}")]
    UnknownType {
        table: &'static str,
        column: String,
        declared: String,
    },
    #[error("the copy of {table} holds {copied} rows but the source has {source_rows}")]
    Mismatch {
        table: &'static str,
        copied: i64,
        source_rows: i64,
    },
    #[error("copying {table}: {error}")]
    Table {
        table: &'static str,
        error: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows copied per table, in [`TABLES`] order.
pub type Copied = Vec<(&'static str, i64)>;

impl Store {
    /// Copies every row of this store into `target`, which must be empty.
    pub async fn copy_into(&self, target: &Store) -> Result<Copied, CopyError> {
        for table in TABLES {
            let rows = target.count(table).await?;
            if rows > 0 {
                return Err(CopyError::TargetNotEmpty { table, rows });
            }
        }
        let mut schema = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            schema.push((table, target.columns(table).await?));
        }
        let op = "database copy";
        let mut tx = target.pool.begin().await.map_err(StoreError::query(op))?;
        let mut copied = Vec::with_capacity(TABLES.len());
        for (table, columns) in &schema {
            let rows = self
                .copy_table(table, columns, &mut tx)
                .await
                .map_err(|error| CopyError::Table { table, error })?;
            copied.push((*table, rows));
        }
        for &(table, rows) in &copied {
            let in_target: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query(op))?;
            if in_target != rows {
                return Err(CopyError::Mismatch {
                    table,
                    copied: in_target,
                    source_rows: rows,
                });
            }
        }
        tx.commit().await.map_err(StoreError::query(op))?;
        Ok(copied)
    }

    /// Streams `table` out of this store into `tx`; returns the rows copied.
    async fn copy_table(
        &self,
        table: &'static str,
        columns: &[Column],
        tx: &mut Transaction<'static, Any>,
    ) -> Result<i64, StoreError> {
        let op = "database copy";
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let per_batch = (PARAMS_PER_INSERT / columns.len().max(1)).max(1);
        let mut rows = sqlx::query(&select).fetch(&self.pool);
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
        let mut copied = 0_i64;
        while let Some(row) = rows.try_next().await.map_err(StoreError::query(op))? {
            batch.push(read_row(&row, columns).map_err(StoreError::query(op))?);
            if batch.len() == per_batch {
                copied += insert_batch(table, &names, &mut batch, tx).await?;
            }
        }
        copied += insert_batch(table, &names, &mut batch, tx).await?;
        Ok(copied)
    }

    async fn count(&self, table: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("database copy"))
    }

    /// The columns of `table` as this store declares them.
    async fn columns(&self, table: &'static str) -> Result<Vec<Column>, CopyError> {
        let op = "database copy";
        let declared: Vec<(String, String)> = match self.backend {
            Backend::Postgres => sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(op))?,
            Backend::SqliteFile | Backend::SqliteMemory => sqlx::query_as(&format!(
                "SELECT name, type FROM pragma_table_info('{table}')"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(op))?,
        };
        declared
            .into_iter()
            .map(|(name, declared)| {
                let kind = kind_of(&declared).ok_or_else(|| CopyError::UnknownType {
                    table,
                    column: name.clone(),
                    declared,
                })?;
                Ok(Column { name, kind })
            })
            .collect()
    }
}

/// The kind of a declared SQLite or PostgreSQL column type.
fn kind_of(declared: &str) -> Option<Kind> {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "smallint" | "int" | "int8" | "int4" => Some(Kind::Integer),
        "text" | "character varying" | "varchar" => Some(Kind::Text),
        "blob" | "bytea" => Some(Kind::Bytes),
        _ => None,
    }
}

fn read_row(row: &AnyRow, columns: &[Column]) -> Result<Vec<Value>, sqlx::Error> {
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column.kind {
                Kind::Integer => Value::Integer(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Bytes => Value::Bytes(row.try_get(i)?),
            })
        })
        .collect()
}

/// Inserts and empties `batch`; returns how many rows it held.
async fn insert_batch(
    table: &str,
    names: &[&str],
    batch: &mut Vec<Vec<Value>>,
    tx: &mut Transaction<'static, Any>,
) -> Result<i64, StoreError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let width = names.len();
    let tuples: Vec<String> = (0..batch.len())
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}",
        names.join(", "),
        tuples.join(", ")
    );
    let mut insert = sqlx::query(&sql);
    for value in batch.drain(..).flatten() {
        insert = match value {
            Value::Integer(v) => insert.bind(v),
            Value::Text(v) => insert.bind(v),
            Value::Bytes(v) => insert.bind(v),
        };
    }
    let written = insert
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("database copy"))?
        .rows_affected();
    Ok(i64::try_from(written).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_of_both_databases_are_known() {
        for (declared, kind) in [
            ("TEXT", Kind::Text),
            ("BIGINT", Kind::Integer),
            ("INTEGER", Kind::Integer),
            ("BLOB", Kind::Bytes),
            ("text", Kind::Text),
            ("bigint", Kind::Integer),
            ("integer", Kind::Integer),
            ("bytea", Kind::Bytes),
        ] {
            assert_eq!(kind_of(declared), Some(kind), "{declared}");
        }
        assert_eq!(kind_of("jsonb"), None);
    }
}
