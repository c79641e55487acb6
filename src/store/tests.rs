use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use sqlx::{Connection as _, Executor as _};

use super::database::{POSTGRES_MIGRATOR, SQLITE_MIGRATOR, open_server};
use super::*;
use crate::config::Config;
use crate::domain::{Disposition, EndedBy, LegStats, RecordingPolicy};

/// The PostgreSQL server the store tests use: an admin URL whose database
/// part the tests replace with a fresh database each.
const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";

async fn memory() -> Store {
    Store::open("sqlite::memory:")
        .await
        .expect("open in-memory store")
}

/// The URL of a new, empty database on the tests' PostgreSQL server.
async fn fresh_postgres_url() -> String {
    let admin = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} must name a PostgreSQL server for the store tests: \
             scripts/test.sh starts one with scripts/test-postgres.sh"
        )
    });
    let name = format!("store_test_{}", uuid::Uuid::new_v4().simple());
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

async fn postgres() -> Store {
    Store::open(&fresh_postgres_url().await)
        .await
        .expect("open a PostgreSQL store")
}

/// Each test runs twice, on a fresh store of each kind: SQLite in memory
/// and a new PostgreSQL database. Its name becomes a module holding the
/// `sqlite` and `postgres` runs.
macro_rules! on_both_stores {
    ($(async fn $name:ident($store:ident: Store) $body:block)*) => {
        $(
            mod $name {
                use super::*;

                async fn run($store: Store) $body

                #[tokio::test]
                async fn sqlite() {
                    run(memory().await).await
                }

                #[tokio::test]
                async fn postgres() {
                    run(super::postgres().await).await
                }
            }
        )*
    };
}

async fn count(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    sqlx::query_scalar(&sql)
        .fetch_one(&store.pool)
        .await
        .expect("count rows")
}

fn file_url(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}",
        dir.path().join("nested/callgate.db").display()
    )
}

/// A record with every field set to something other than its default.
fn full_cdr(call_id: &str, created_at_ms: i64) -> CdrRecord {
    let route = WidgetRoute::demo();
    let at = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms as u64);
    let mut cdr = CdrRecord::begin(call_id, &route, "node-1", at(created_at_ms));
    cdr.on_answered(at(created_at_ms + 2_500));
    cdr.on_ended(
        at(created_at_ms + 62_500),
        EndedBy::Callee,
        Disposition::Answered,
    );
    cdr.trunk = Some("carrier-a".into());
    cdr.sip_code = Some(200);
    cdr.sip_reason = Some("Subscriber [redacted] Busy".into());
    cdr.q850_cause = Some(17);
    cdr.browser_codec = Some("opus".into());
    cdr.trunk_codec = Some("pcmu".into());
    cdr.browser_stats = LegStats {
        packets_sent: 3_000,
        packets_received: 2_990,
        packets_lost: 10,
        jitter_us: LegStats::jitter_us_from_ms(4.25),
        mos_worst_x100: LegStats::mos_x100(4.184_9),
        mos_average_x100: Some(436),
    };
    cdr.trunk_stats = LegStats {
        packets_sent: 2_990,
        packets_received: 3_001,
        packets_lost: -1,
        jitter_us: 12_345,
        mos_worst_x100: Some(241),
        mos_average_x100: Some(399),
    };
    cdr.set_visitor_ip("203.0.113.77".parse::<IpAddr>().unwrap());
    cdr.recorded = true;
    cdr
}

#[tokio::test]
async fn opening_twice_runs_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let first = Store::open(&url).await.unwrap();
    first.close().await;
    let again = Store::open(&url).await.expect("second open");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    assert_eq!(applied, SQLITE_MIGRATOR.iter().count() as i64);
    // Running the migrator again on an open pool is a no-op too.
    SQLITE_MIGRATOR.run(&again.pool).await.unwrap();
}

#[tokio::test]
async fn postgres_nodes_opening_at_once_migrate_once() {
    let url = fresh_postgres_url().await;
    let (first, second) = tokio::join!(Store::open(&url), Store::open(&url));
    let (first, second) = (first.unwrap(), second.unwrap());
    first.seed_demo().await.unwrap();
    second.seed_demo().await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&second.pool)
        .await
        .unwrap();
    assert_eq!(applied, POSTGRES_MIGRATOR.iter().count() as i64);
    assert_eq!(count(&first, "widgets").await, 1);
}

#[test]
fn both_databases_have_the_same_migrations() {
    let names = |migrator: &sqlx::migrate::Migrator| {
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&SQLITE_MIGRATOR), names(&POSTGRES_MIGRATOR));
}

#[tokio::test]
async fn file_database_uses_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&file_url(&dir)).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

on_both_stores! {
    async fn seeding_twice_gives_one_row_each(store: Store) {
        store.seed_demo().await.unwrap();
        store.seed_demo().await.unwrap();
        for table in ["tenants", "numbers", "widgets"] {
            assert_eq!(count(&store, table).await, 1, "{table}");
        }
        let (retention, notice): (i32, Option<String>) =
            sqlx::query_as("SELECT retention_days, notice_text FROM numbers WHERE id = 'demo'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(retention, 7);
        assert!(notice.is_some_and(|text| !text.is_empty()));
    }
}

on_both_stores! {
    async fn seeding_keeps_an_operator_change(store: Store) {
        store.seed_demo().await.unwrap();
        sqlx::query("UPDATE numbers SET recording = 'off' WHERE id = 'demo'")
            .execute(&store.pool)
            .await
            .unwrap();
        store.seed_demo().await.unwrap();
        let route = store.widget_route(DEMO_ID).await.unwrap().unwrap();
        assert_eq!(route.recording, RecordingPolicy::Off);
    }
}

on_both_stores! {
    async fn demo_widget_routes_to_the_demo_number(store: Store) {
        store.seed_demo().await.unwrap();
        let route = store.widget_route("demo").await.unwrap();
        assert_eq!(
            route,
            Some(WidgetRoute::demo())
        );
    }
}

on_both_stores! {
    async fn talk_time_sums_one_numbers_calls_since_a_moment(store: Store) {
        store.seed_demo().await.unwrap();
        let mut early = full_cdr("early", 1_000);
        early.duration_ms = 5_000;
        let mut late = full_cdr("late", 2_000);
        late.duration_ms = 7_000;
        let mut elsewhere = full_cdr("elsewhere", 2_000);
        elsewhere.number_id = "other".into();
        elsewhere.duration_ms = 3_000;
        for cdr in [&early, &late, &elsewhere] {
            store.insert_cdr(cdr).await.unwrap();
        }
        assert_eq!(store.talk_ms_since("demo", "demo", 0).await.unwrap(), 12_000);
        assert_eq!(store.talk_ms_since("demo", "demo", 1_500).await.unwrap(), 7_000);
        assert_eq!(store.talk_ms_since("demo", "demo", 9_000).await.unwrap(), 0);
        assert_eq!(store.talk_ms_since("demo", "other", 0).await.unwrap(), 3_000);
    }
}

on_both_stores! {
    async fn a_tenants_allowance_reaches_its_calls_is_audited_and_can_be_cleared(store: Store) {
        store.seed_demo().await.unwrap();
        assert_eq!(store.tenant_allowance("demo").await.unwrap(), Some(None));
        assert_eq!(store.tenant_allowance("nobody").await.unwrap(), None);
        let allowance = crate::dialing::Allowance {
            routes: Some(vec!["demo".into()]),
            prefixes: None,
        };
        let operator = Actor::Key("op1".into());
        assert!(store.set_tenant_allowance("demo", Some(&allowance), &operator).await.unwrap());
        assert!(!store.set_tenant_allowance("nobody", Some(&allowance), &operator).await.unwrap());
        assert_eq!(
            store.tenant_allowance("demo").await.unwrap(),
            Some(Some(allowance.clone()))
        );
        let route = store.widget_route("demo").await.unwrap().unwrap();
        assert_eq!(route.allowance, Some(allowance));
        assert!(store.set_tenant_allowance("demo", None, &Actor::Cli).await.unwrap());
        assert_eq!(store.widget_route("demo").await.unwrap().unwrap().allowance, None);
        let events = store.audit_events("demo", 0, i64::MAX, 10).await.unwrap();
        let changes: Vec<(&str, &str, &str)> = events
            .iter()
            .filter(|e| e.target_kind == "allowance")
            .map(|e| (e.actor.as_str(), e.action.as_str(), e.target_id.as_str()))
            .collect();
        assert_eq!(changes, [("key:op1", "updated", "demo"), ("cli", "deleted", "demo")]);
    }
}

on_both_stores! {
    async fn a_widgets_own_limits_reach_its_route_and_can_be_cleared(store: Store) {
        store.seed_demo().await.unwrap();
        let actor = Actor::Key("k1".into());
        let limits = WidgetLimits {
            calls_per_minute: Some(3),
            max_concurrent_calls: Some(2),
        };
        let change = WidgetChange {
            limits: Some(limits),
            ..WidgetChange::default()
        };
        let written = store.update_widget(DEMO_ID, DEMO_ID, change, &actor).await.unwrap();
        assert!(matches!(written, WidgetWrite::Done(ref w) if w.limits == limits));
        assert_eq!(store.widget(DEMO_ID, DEMO_ID).await.unwrap().unwrap().limits, limits);
        assert_eq!(store.widget_route(DEMO_ID).await.unwrap().unwrap().limits, limits);

        let change = WidgetChange {
            limits: Some(WidgetLimits::default()),
            ..WidgetChange::default()
        };
        store.update_widget(DEMO_ID, DEMO_ID, change, &actor).await.unwrap();
        let route = store.widget_route(DEMO_ID).await.unwrap().unwrap();
        assert_eq!(route.limits, WidgetLimits::default());
    }
}

on_both_stores! {
    async fn unknown_widget_has_no_route(store: Store) {
        store.seed_demo().await.unwrap();
        assert_eq!(store.widget_route("nope").await.unwrap(), None);
        assert_eq!(store.widget_route("").await.unwrap(), None);
        assert_eq!(store.widget_route("demo' OR '1'='1").await.unwrap(), None);
    }
}

on_both_stores! {
    async fn corrupt_origins_are_an_error_not_a_panic(store: Store) {
        store.seed_demo().await.unwrap();
        sqlx::query("UPDATE widgets SET allowed_origins = 'not json' WHERE id = 'demo'")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.widget_route("demo").await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::Corrupt {
                column: "widgets.allowed_origins",
                ..
            }
        ));
    }
}

on_both_stores! {
    async fn cdr_round_trips_every_field(store: Store) {
        store.seed_demo().await.unwrap();
        let cdr = full_cdr("call-1", 1_700_000_000_000);
        assert_eq!(cdr.duration_ms, 60_000);
        assert_eq!(cdr.visitor_network.as_deref(), Some("203.0.113.0/24"));
        assert_eq!(cdr.browser_stats.jitter_us, 4_250);
        assert_eq!(cdr.browser_stats.mos_worst_x100, Some(418));
        store.insert_cdr(&cdr).await.unwrap();
        assert_eq!(store.cdr("call-1").await.unwrap(), Some(cdr));
        assert_eq!(store.cdr("call-2").await.unwrap(), None);
    }
}

on_both_stores! {
    async fn unanswered_cdr_keeps_nulls_and_zero_duration(store: Store) {
        store.seed_demo().await.unwrap();
        let route = store.widget_route("demo").await.unwrap().unwrap();
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut cdr = CdrRecord::begin("call-x", &route, "node-1", start);
        cdr.on_ended(
            start + Duration::from_secs(30),
            EndedBy::Visitor,
            Disposition::Cancelled,
        );
        assert_eq!(cdr.duration_ms, 0);
        store.insert_cdr(&cdr).await.unwrap();
        let read = store.cdr("call-x").await.unwrap().unwrap();
        assert_eq!(read, cdr);
        assert_eq!(read.answered_at_ms, None);
        assert_eq!(read.sip_code, None);
        assert!(!read.recorded);
    }
}

on_both_stores! {
    async fn duplicate_call_id_is_an_error(store: Store) {
        store.seed_demo().await.unwrap();
        let cdr = full_cdr("call-1", 1_700_000_000_000);
        store.insert_cdr(&cdr).await.unwrap();
        let err = store.insert_cdr(&cdr).await.unwrap_err();
        assert!(err.is_duplicate(), "{err}");
        assert_eq!(
            err.to_string(),
            "cdr insert: a row with this key already exists"
        );
        assert_eq!(count(&store, "cdrs").await, 1);
    }
}

on_both_stores! {
    async fn a_calls_own_record_replaces_one_written_for_its_lost_node_and_nothing_else(store: Store) {
        store.seed_demo().await.unwrap();
        let real = full_cdr("call-1", 1_700_000_000_000);
        let mut lost = real.clone();
        lost.on_node_lost(real.created_at_ms + 10_000);
        assert_eq!(lost.end_reason.as_deref(), Some(NODE_LOST));
        store.insert_cdr(&lost).await.unwrap();
        assert_eq!(store.cdr("call-1").await.unwrap(), Some(lost.clone()));
        // The node was not dead after all: the call's own record wins.
        store.insert_cdr(&real).await.unwrap();
        assert_eq!(store.cdr("call-1").await.unwrap(), Some(real.clone()));
        // Never the other way round.
        let err = store.insert_cdr(&lost).await.unwrap_err();
        assert!(err.is_duplicate(), "{err}");
        assert_eq!(store.cdr("call-1").await.unwrap(), Some(real));
        // An erased record of a lost call stays erased.
        let second = full_cdr("call-2", 1_700_000_100_000);
        let mut lost = second.clone();
        lost.on_node_lost(second.created_at_ms);
        lost.erased_at_ms = Some(1);
        store.insert_cdr(&lost).await.unwrap();
        assert!(store.insert_cdr(&second).await.unwrap_err().is_duplicate());
        assert_eq!(store.cdr("call-2").await.unwrap(), Some(lost));
        assert_eq!(count(&store, "cdrs").await, 2);
    }
}

on_both_stores! {
    async fn cdr_for_unknown_tenant_is_an_error(store: Store) {
        let err = store.insert_cdr(&full_cdr("call-1", 1)).await.unwrap_err();
        assert!(matches!(err, StoreError::MissingReference { .. }), "{err}");
    }
}

on_both_stores! {
    async fn tenant_cdrs_are_newest_first_and_limited(store: Store) {
        store.seed_demo().await.unwrap();
        sqlx::query("INSERT INTO tenants (id, created_at) VALUES ('other', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        for (i, created) in [3_000, 1_000, 2_000].into_iter().enumerate() {
            store
                .insert_cdr(&full_cdr(&format!("c{i}"), created))
                .await
                .unwrap();
        }
        let mut foreign = full_cdr("theirs", 5_000);
        foreign.tenant_id = "other".into();
        store.insert_cdr(&foreign).await.unwrap();

        let ids = |cdrs: Vec<CdrRecord>| cdrs.into_iter().map(|c| c.call_id).collect::<Vec<_>>();
        let all = store.cdrs_for_tenant("demo", 10).await.unwrap();
        assert_eq!(ids(all), ["c0", "c2", "c1"]);
        let two = store.cdrs_for_tenant("demo", 2).await.unwrap();
        assert_eq!(ids(two), ["c0", "c2"]);
        assert!(
            store
                .cdrs_for_tenant("nobody", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn file_database_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let store = Store::open(&url).await.unwrap();
    store.seed_demo().await.unwrap();
    let cdr = full_cdr("call-1", 1_700_000_000_000);
    store.insert_cdr(&cdr).await.unwrap();
    store.close().await;

    let reopened = Store::open(&url).await.unwrap();
    assert!(reopened.widget_route("demo").await.unwrap().is_some());
    assert_eq!(reopened.cdr("call-1").await.unwrap(), Some(cdr));
}

on_both_stores! {
    async fn widget_for_unknown_tenant_fails(store: Store) {
        store.seed_demo().await.unwrap();
        let insert = |tenant: &'static str, number: &'static str| {
            sqlx::query(
                "INSERT INTO widgets (id, tenant_id, number_id, allowed_origins, created_at) \
                 VALUES ('w', $1, $2, '[]', 0)",
            )
            .bind(tenant)
            .bind(number)
        };
        let err = insert("ghost", "demo")
            .execute(&store.pool)
            .await
            .unwrap_err();
        let err = StoreError::query("widget insert")(err);
        assert!(matches!(err, StoreError::MissingReference { .. }), "{err}");

        // Another tenant's number is refused too.
        sqlx::query("INSERT INTO tenants (id, created_at) VALUES ('other', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = insert("other", "demo")
            .execute(&store.pool)
            .await
            .unwrap_err();
        let err = StoreError::query("widget insert")(err);
        assert!(matches!(err, StoreError::MissingReference { .. }), "{err}");
        assert_eq!(count(&store, "widgets").await, 1);
    }
}

on_both_stores! {
    async fn recording_policy_check_is_enforced(store: Store) {
        store.seed_demo().await.unwrap();
        let result = sqlx::query("UPDATE numbers SET recording = 'always' WHERE id = 'demo'")
            .execute(&store.pool)
            .await;
        assert!(result.is_err());
    }
}

#[tokio::test]
async fn opens_the_configured_default_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let env = vec![("CALLGATE_DATA_DIR".to_owned(), data_dir)];
    let config = Config::load(None, env).unwrap();
    let store = Store::open(&config.database.url_for(&config.node.data_dir))
        .await
        .unwrap();
    store.seed_demo().await.unwrap();
    assert!(dir.path().join("callgate.db").exists());
}

#[tokio::test]
async fn other_schemes_are_refused_without_printing_the_url() {
    let err = Store::open("mysql://app:hunter2@db.internal/callgate")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::UnsupportedScheme { .. }));
    assert!(
        !text.contains("hunter2") && !text.contains("db.internal"),
        "{text}"
    );
    assert!(text.contains("\"mysql\""), "{text}");
    let err = Store::open("hunter2@weird").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn an_unreachable_postgres_server_is_a_clear_error_without_its_password() {
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/callgate");
    let err = Store::open(&url).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{text}");
    assert!(text.contains("PostgreSQL"), "{text}");
    assert!(
        text.contains("refused"),
        "the reason, not a timeout: {text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_postgres_server_that_never_answers_is_named_as_such() {
    // A listener that takes connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/callgate");
    let wait = Duration::from_millis(300);
    sqlx::any::install_default_drivers();
    let err = open_server(&url, wait).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::ConnectTimeout { .. }), "{text}");
    assert!(text.contains("no answer within 0.3 s"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    drop(silent);
}

#[tokio::test]
async fn unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let url = format!("sqlite://{}", blocker.join("callgate.db").display());
    let err = Store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
}

#[test]
fn names_match_the_schema_and_the_api() {
    for policy in [
        RecordingPolicy::Off,
        RecordingPolicy::OptIn,
        RecordingPolicy::Notice,
    ] {
        assert_eq!(policy.as_str().parse::<RecordingPolicy>().unwrap(), policy);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(json, format!("\"{}\"", policy.as_str()));
        assert_eq!(
            serde_json::from_str::<RecordingPolicy>(&json).unwrap(),
            policy
        );
    }
    for by in [EndedBy::Visitor, EndedBy::Callee, EndedBy::Node] {
        assert_eq!(by.as_str().parse::<EndedBy>().unwrap(), by);
    }
    assert!("always".parse::<RecordingPolicy>().is_err());
}

#[test]
fn jitter_converts_between_units() {
    assert_eq!(LegStats::jitter_us_from_ms(1.2345), 1_235);
    assert_eq!(LegStats::jitter_us_from_ms(-3.0), 0);
    assert_eq!(LegStats::jitter_us_from_ms(f64::NAN), 0);
    let stats = LegStats {
        jitter_us: 2_500,
        ..LegStats::default()
    };
    assert_eq!(stats.jitter_ms(), 2.5);
}

#[test]
fn times_before_the_epoch_clamp_to_zero() {
    assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1_234)), 1_234);
}

fn new_recording(id: &str) -> NewRecording {
    NewRecording {
        id: id.into(),
        call_id: "call-1".into(),
        tenant_id: "demo".into(),
        number_id: "demo".into(),
        key_id: "k1".into(),
        wrapped_key: vec![7; 60],
        object_path: format!("demo/{id}.cgrec"),
        receipt_hash: "ab".repeat(32),
        created_at_ms: 1_000,
        expires_at_ms: 5_000,
    }
}

/// The demo seed plus a recording in progress for each of `ids`.
async fn seed_recordings(store: &Store, ids: &[&str]) {
    store.seed_demo().await.unwrap();
    for id in ids {
        store.insert_recording(&new_recording(id)).await.unwrap();
    }
}

on_both_stores! {
    async fn deleting_a_recording_destroys_its_key_and_leaves_an_audit_entry(store: Store) {
        seed_recordings(&store, &["rec-1"]).await;
        store
            .finish_recording("rec-1", true, 0, 3_000, 4_096)
            .await
            .unwrap();
        let row = store.recording("rec-1").await.unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.complete), ("stored", true));
        assert_eq!(row.wrapped_key.as_deref(), Some(&[7u8; 60][..]));

        assert_eq!(store.expired_recordings(4_999).await.unwrap(), vec![]);
        assert_eq!(store.expired_recordings(5_000).await.unwrap().len(), 1);

        assert!(store.delete_recording("rec-1", "retention").await.unwrap());
        assert!(
            !store.delete_recording("rec-1", "api").await.unwrap(),
            "once"
        );
        let row = store.recording("rec-1").await.unwrap().unwrap();
        assert_eq!(row.state, "deleted");
        assert_eq!(row.wrapped_key, None, "the key is gone");
        assert!(row.deleted_at.is_some());
        let audit = store.audit_entries("rec-1").await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].action.as_str(), audit[0].reason.as_str()),
            ("deleted", "retention")
        );
        assert_eq!(store.expired_recordings(i64::MAX).await.unwrap(), vec![]);
    }
}

on_both_stores! {
    async fn a_finished_recording_stays_deleted_and_unfinished_ones_are_found(store: Store) {
        seed_recordings(&store, &["rec-1", "rec-2"]).await;
        assert_eq!(store.unfinished_recordings().await.unwrap().len(), 2);
        store
            .delete_recording("rec-1", "consent_revoked")
            .await
            .unwrap();
        // The recorder finishing after a discard must not bring it back.
        store
            .finish_recording("rec-1", true, 0, 1, 1)
            .await
            .unwrap();
        assert_eq!(
            store.recording("rec-1").await.unwrap().unwrap().state,
            "deleted"
        );
        let unfinished = store.unfinished_recordings().await.unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].id, "rec-2");
        assert_eq!(store.recordings_for_call("call-1").await.unwrap().len(), 2);
    }
}

on_both_stores! {
    async fn a_revoked_key_reads_back_revoked(store: Store) {
        store.seed_demo().await.unwrap();
        let key = demo_admin_key();
        store.insert_api_key(&key, &Actor::Cli).await.unwrap();
        assert!(store.revoke_api_key(&key.id, &Actor::Cli).await.unwrap());
        let read = store.api_key(&key.id).await.unwrap().unwrap();
        assert!(read.revoked_at_ms.is_some(), "{read:?}");
        assert!(!store.revoke_api_key(&key.id, &Actor::Cli).await.unwrap(), "once");
        let audit = store.audit_events("demo", 0, i64::MAX, 10).await.unwrap();
        assert_eq!(audit.len(), 2, "{audit:?}");
    }
}

/// An admin key of the demo tenant, as stored.
fn demo_admin_key() -> ApiKeyRecord {
    ApiKeyRecord {
        id: "0123456789abcdef".into(),
        tenant_id: Some("demo".into()),
        role: Role::Admin,
        hash_key_id: "k1".into(),
        hash: "ab".repeat(32),
        created_at_ms: 1,
        revoked_at_ms: None,
    }
}

/// A file store holding a row in every table.
async fn populated_store(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(&file_url(dir)).await.unwrap();
    store.seed_demo().await.unwrap();
    let limits = WidgetLimits {
        calls_per_minute: Some(5),
        max_concurrent_calls: None,
    };
    let change = WidgetChange {
        limits: Some(limits),
        ..WidgetChange::default()
    };
    let actor = Actor::Key("0123456789abcdef".into());
    store
        .update_widget(DEMO_ID, DEMO_ID, change, &actor)
        .await
        .unwrap();
    store
        .insert_api_key(&demo_admin_key(), &Actor::Cli)
        .await
        .unwrap();
    // 305 call records fill three of the copy's multi-row inserts.
    for i in 0..305 {
        let cdr = full_cdr(&format!("call-{i}"), 1_700_000_000_000 + i);
        store.insert_cdr(&cdr).await.unwrap();
    }
    store
        .insert_recording(&new_recording("rec-1"))
        .await
        .unwrap();
    let receipt = ConsentReceiptRow {
        hash: "cd".repeat(32),
        call_id: "call-1".into(),
        number_id: "demo".into(),
        policy: "opt_in".into(),
        notice_hash: "ef".repeat(32),
        method: "button".into(),
        granted_at: 1_500,
        signature: "k1:00".into(),
    };
    store.insert_consent_receipt(&receipt).await.unwrap();
    store
        .set_webhook(
            "demo",
            "https://hooks.example.com/",
            "sealed:v1:k1:AAAA",
            "call.ended,recording.ready",
            &Actor::Cli,
        )
        .await
        .unwrap();
    store
        .enqueue_webhook("demo", "call.ended", "{}")
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn the_copy_list_names_every_table_of_the_schema() {
    let store = memory().await;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut listed: Vec<String> = copy::TABLES.iter().map(|t| t.to_string()).collect();
    tables.sort();
    listed.sort();
    assert_eq!(tables, listed);
}

on_both_stores! {
    async fn a_copy_carries_every_row_and_refuses_a_target_with_data(target: Store) {
        let dir = tempfile::tempdir().unwrap();
        let source = populated_store(&dir).await;
        let copied = source.copy_into(&target).await.unwrap();
        for (table, rows) in &copied {
            assert_eq!(*rows, count(&source, table).await, "{table}");
            assert_eq!(*rows, count(&target, table).await, "{table}");
        }
        let empty: Vec<_> = copied.iter().filter(|(_, rows)| *rows == 0).collect();
        assert!(empty.is_empty(), "the fixture left tables empty: {empty:?}");

        assert_eq!(
            target.widget_route(DEMO_ID).await.unwrap(),
            source.widget_route(DEMO_ID).await.unwrap()
        );
        assert_eq!(
            target.api_key("0123456789abcdef").await.unwrap(),
            source.api_key("0123456789abcdef").await.unwrap()
        );
        assert_eq!(
            target.cdrs_for_tenant("demo", 2_000).await.unwrap(),
            source.cdrs_for_tenant("demo", 2_000).await.unwrap()
        );
        assert_eq!(
            target.recording("rec-1").await.unwrap(),
            source.recording("rec-1").await.unwrap()
        );
        assert_eq!(
            target.webhook("demo").await.unwrap(),
            source.webhook("demo").await.unwrap()
        );
        assert_eq!(
            target.consent_receipts_for_call("call-1").await.unwrap(),
            source.consent_receipts_for_call("call-1").await.unwrap()
        );

        let again = source.copy_into(&target).await.unwrap_err();
        assert!(
            matches!(again, copy::CopyError::TargetNotEmpty { table: "tenants", .. }),
            "{again}"
        );
        assert_eq!(count(&target, "cdrs").await, 305, "nothing written twice");
    }
}

#[test]
fn mos_is_kept_in_hundredths() {
    assert_eq!(LegStats::mos_x100(4.184_9), Some(418));
    assert_eq!(LegStats::mos_x100(1.0), Some(100));
    assert_eq!(LegStats::mos_x100(f64::NAN), None);
    assert_eq!(LegStats::mos_x100(-2.0), Some(0));
}

#[test]
fn a_spooled_cdr_from_before_quality_still_reads() {
    let old = r#"{"packets_sent":1,"packets_received":2,"packets_lost":0,"jitter_us":5}"#;
    let stats: LegStats = serde_json::from_str(old).unwrap();
    assert_eq!((stats.jitter_us, stats.mos_worst_x100), (5, None));
}
