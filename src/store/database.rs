//! [`Store`]: the database pool on SQLite or PostgreSQL, opened with its
//! migrations run, and the unix-millisecond times every column uses.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, ConnectOptions as _, Connection as _};

use super::error::StoreError;

/// How long a statement waits for another writer before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// File databases get a few connections: WAL lets readers run beside the one
/// writer, and the node has little to read concurrently.
const FILE_POOL_SIZE: u32 = 4;

/// Connections to a PostgreSQL server per node: calls write one CDR each,
/// and the admin API and sweepers read beside them.
const SERVER_POOL_SIZE: u32 = 10;

/// How long opening waits for a PostgreSQL server before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub(super) static POSTGRES_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");

/// The database of one node. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if is_sqlite_memory(url) {
            Ok(Backend::SqliteMemory)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::SqliteFile)
        } else {
            Err(StoreError::UnsupportedScheme {
                scheme: scheme_of(url),
            })
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl Store {
    /// Opens the database at `url` and runs pending migrations.
    ///
    /// `sqlite://FILE` creates the file and its parent directory, and uses a
    /// WAL journal. `sqlite::memory:` gives a private in-memory database on a
    /// single connection, for tests. Foreign keys are on and a busy database
    /// is waited on for up to 5 s. `postgres://...` connects to a server
    /// (waiting up to 10 s for it) whose database must exist.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let pool = match backend {
            Backend::SqliteMemory => open_memory(url).await?,
            Backend::SqliteFile => open_file(url).await?,
            Backend::Postgres => open_server(url, CONNECT_TIMEOUT).await?,
        };
        let migrator = match backend {
            Backend::Postgres => &POSTGRES_MIGRATOR,
            Backend::SqliteMemory | Backend::SqliteFile => &SQLITE_MIGRATOR,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migrate { error })?;
        Ok(Store { pool, backend })
    }

    /// Closes every connection, waiting for statements in flight; clones
    /// fail afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time as unix milliseconds, the unit of every time column.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// `time` as unix milliseconds; times before 1970 clamp to 0 and times past
/// the year 292 million to `i64::MAX`.
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The scheme of `url`, for messages (the rest may hold a password).
fn scheme_of(url: &str) -> String {
    let scheme = url.split(':').next().unwrap_or_default();
    let well_formed = !scheme.is_empty()
        && scheme.len() <= 16
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+');
    if well_formed {
        scheme.to_owned()
    } else {
        "unknown".to_owned()
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

fn any_options(url: &str) -> Result<AnyConnectOptions, StoreError> {
    AnyConnectOptions::from_str(url).map_err(|error| StoreError::BadUrl {
        scheme: scheme_of(url),
        error,
    })
}

async fn open_memory(url: &str) -> Result<AnyPool, StoreError> {
    // One connection that never idles out: the in-memory database lives only
    // as long as a connection to it does.
    AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(any_options(url)?)
        .await
        .map_err(|error| StoreError::Open {
            target: "in memory".to_owned(),
            error,
        })
}

/// Creates the file (and its directory) in WAL mode with a first, direct
/// connection, then opens the pool on it: the journal mode is a property of
/// the file, and foreign keys and the busy timeout are sqlx's defaults on
/// every connection.
async fn open_file(url: &str) -> Result<AnyPool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| StoreError::BadUrl {
            scheme: scheme_of(url),
            error,
        })?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let path = options.get_filename().to_owned();
    create_parent_dir(&path).await?;
    let opened = |error| StoreError::Open {
        target: path.display().to_string(),
        error,
    };
    options
        .connect()
        .await
        .map_err(opened)?
        .close()
        .await
        .map_err(opened)?;
    AnyPoolOptions::new()
        .max_connections(FILE_POOL_SIZE)
        .connect_with(any_options(url)?)
        .await
        .map_err(opened)
}

/// Connects once first, so a refused connection or a bad login fails at
/// once with its reason (the pool would retry until its timeout and report
/// only that), and a server that does not answer within `wait` says so;
/// then opens the pool.
pub(super) async fn open_server(url: &str, wait: Duration) -> Result<AnyPool, StoreError> {
    let options = any_options(url)?;
    let opened = |error| StoreError::Open {
        target: "on the PostgreSQL server".to_owned(),
        error,
    };
    let first = tokio::time::timeout(wait, sqlx::AnyConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::ConnectTimeout { waited: wait })?
        .map_err(opened)?;
    first.close().await.map_err(opened)?;
    AnyPoolOptions::new()
        .max_connections(SERVER_POOL_SIZE)
        .acquire_timeout(wait)
        .connect_with(options)
        .await
        .map_err(opened)
}

async fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|error| StoreError::CreateDir {
            path: dir.to_owned(),
            error,
        })
}
