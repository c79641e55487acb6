//! A fresh database on the PostgreSQL server `scripts/test.sh` starts
//! (`scripts/test-postgres.sh`), named by `TEST_POSTGRES_URL`:
//! a node given it as `CALLGATE_DATABASE_URL` runs on PostgreSQL.

use sqlx::{Connection as _, Executor as _};

const SERVER_VAR: &str = "TEST_POSTGRES_URL";

/// The URL of a new, empty database; fails the test when no server is set.
pub async fn fresh_database() -> String {
    let admin = std::env::var(SERVER_VAR).unwrap_or_else(|_| {
        panic!(
            "{SERVER_VAR} must name a PostgreSQL server: scripts/test.sh starts one \
             with scripts/test-postgres.sh"
        )
    });
    let name = format!("node_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the tests' PostgreSQL server");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a database for the test");
    conn.close().await.ok();
    let (server, _) = admin.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{name}")
}

/// Makes the database of `url` (one [`fresh_database`] made) refuse every
/// connection, its open ones cut (`true`), or take them again (`false`):
/// a database that goes away and comes back, with the server still up.
pub async fn refuse_connections(url: &str, refuse: bool) {
    let admin = std::env::var(SERVER_VAR).expect("the tests' PostgreSQL server");
    let (_, name) = url.rsplit_once('/').expect("a URL with a database");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the tests' PostgreSQL server");
    let allow = if refuse { "false" } else { "true" };
    conn.execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}").as_str())
        .await
        .expect("change whether the database takes connections");
    if refuse {
        let cut = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        );
        conn.execute(cut.as_str())
            .await
            .expect("cut the database's connections");
    }
    conn.close().await.ok();
}
