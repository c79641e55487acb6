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
