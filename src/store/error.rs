//! [`StoreError`], the one error type of the store.
//!
//! Messages name the operation and the database's reason. They may print a
//! SQLite file path, never a whole database URL: a server URL can carry a
//! password, so only its scheme is ever shown. (sqlx's own URL errors name
//! the part that failed to parse, not the URL.)

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong opening or using the store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    // The reason is part of each message, so it is not also exposed as a
    // `source` (a report walking the chain would print it twice).
    #[error("unsupported database scheme {scheme:?}: use sqlite: or postgres:")]
    UnsupportedScheme { scheme: String },
    #[error("bad {scheme} database url: {error}")]
    BadUrl { scheme: String, error: sqlx::Error },
    #[error("cannot create the database directory {}: {error}", .path.display())]
    CreateDir { path: PathBuf, error: io::Error },
    #[error("cannot open the database {target}: {error}")]
    Open { target: String, error: sqlx::Error },
    #[error("cannot open the database on the PostgreSQL server: no answer within {} s", .waited.as_secs_f32())]
    ConnectTimeout { waited: std::time::Duration },
    #[error("cannot migrate the database: {error}")]
    Migrate { error: sqlx::migrate::MigrateError },
    #[error("{op}: a row with this key already exists")]
    Duplicate { op: &'static str },
    #[error("{op}: refers to a row that does not exist")]
    MissingReference { op: &'static str },
    #[error("{op} failed: {error}")]
    Query {
        op: &'static str,
        error: sqlx::Error,
    },
    #[error("bad stored value in {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
}

impl From<crate::domain::UnknownName> for StoreError {
    /// A stored name none of its type's: the row is corrupt.
    fn from(unknown: crate::domain::UnknownName) -> Self {
        StoreError::Corrupt {
            column: unknown.kind,
            detail: format!("unknown value {:?}", unknown.value),
        }
    }
}

impl StoreError {
    /// Classifies a failed statement: key clashes and dangling references get
    /// their own variants so the admin API can answer 409 or 422 without
    /// reading message text.
    pub(crate) fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |error| {
            let kind = match &error {
                sqlx::Error::Database(db) => Some(db.kind()),
                _ => None,
            };
            match kind {
                Some(sqlx::error::ErrorKind::UniqueViolation) => StoreError::Duplicate { op },
                Some(sqlx::error::ErrorKind::ForeignKeyViolation) => {
                    StoreError::MissingReference { op }
                }
                _ => StoreError::Query { op, error },
            }
        }
    }

    /// True when the row being inserted clashes with an existing key.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, StoreError::Duplicate { .. })
    }
}
