//! The retention sweeper: deletes recordings past their number's
//! retention, key first (crypto-shredding), then the blob, each with an
//! audit entry saying `retention`; and call detail records (with their
//! consent receipts) older than `database.cdr_retention_days`, and webhook
//! deliveries a week after they were sent or given up.
//!
//! Its clock is the wall time at start plus tokio's elapsed time, and
//! [`sweep`] takes the time as a value, so tests jump days ahead.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::storage::RecordingStorage;
use crate::metrics::{DeletionReason, RecordingMetrics};
use crate::store::{Store, StoreError, now_ms};

/// How often the sweeper looks for expired recordings.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Sent (or given-up) webhook deliveries are kept this long, for support.
const WEBHOOK_KEEP_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A clock that follows tokio's time from a wall-clock start.
#[derive(Debug, Clone, Copy)]
pub struct SweepClock {
    wall_at_start_ms: i64,
    started: tokio::time::Instant,
}

impl SweepClock {
    pub fn start() -> Self {
        Self {
            wall_at_start_ms: now_ms(),
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let elapsed = self.started.elapsed().as_millis();
        self.wall_at_start_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }
}

/// Deletes every recording expired at `now_ms`; returns how many.
pub async fn sweep(
    store: &Store,
    storage: &RecordingStorage,
    metrics: &RecordingMetrics,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    let reason = DeletionReason::Retention;
    for recording in store.expired_recordings(now_ms).await? {
        if store
            .delete_recording(&recording.id, reason.as_str())
            .await?
        {
            metrics.deleted(reason);
            deleted += 1;
        }
        if let Err(error) = storage.delete(&recording.id, &recording.object_path).await {
            // The key is gone already: what is left cannot be opened.
            warn!(recording = %recording.id, %error, "cannot remove an expired recording's file");
        }
    }
    Ok(deleted)
}

/// Deletes the CDRs older than `retention` at `now_ms`; returns how many.
pub async fn sweep_cdrs(
    store: &Store,
    retention: Duration,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    store
        .delete_cdrs_before(now_ms.saturating_sub(retention_ms))
        .await
}

/// What the sweeper keeps and for how long.
#[derive(Debug, Clone)]
pub struct Sweeper {
    pub store: Store,
    pub storage: RecordingStorage,
    pub metrics: RecordingMetrics,
    pub clock: SweepClock,
    pub interval: Duration,
    pub cdr_retention: Duration,
}

/// Sweeps every `interval` until `stop`.
pub async fn run(sweeper: Sweeper, stop: CancellationToken) {
    let Sweeper {
        store,
        storage,
        metrics,
        clock,
        interval,
        cdr_retention,
    } = sweeper;
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&store, &storage, &metrics, clock.now_ms()).await {
            Ok(0) => {}
            Ok(count) => info!(count, "deleted recordings past their retention"),
            Err(error) => warn!(%error, "retention sweep failed"),
        }
        match sweep_cdrs(&store, cdr_retention, clock.now_ms()).await {
            Ok(0) => {}
            Ok(count) => info!(count, "deleted call records past their retention"),
            Err(error) => warn!(%error, "call record retention sweep failed"),
        }
        let sent_cutoff = clock.now_ms().saturating_sub(WEBHOOK_KEEP_MS);
        if let Err(error) = store.delete_finished_webhooks_before(sent_cutoff).await {
            warn!(%error, "webhook retention sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRecording;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[tokio::test(start_paused = true)]
    async fn the_sweep_clock_follows_paused_time() {
        let clock = SweepClock::start();
        let start = clock.now_ms();
        tokio::time::advance(8 * DAY).await;
        assert_eq!(clock.now_ms() - start, 8 * DAY.as_millis() as i64);
    }

    #[tokio::test]
    async fn call_records_go_with_their_receipts_after_the_cdr_retention() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.seed_demo().await.unwrap();
        let route = store.widget_route("demo").await.unwrap().unwrap();
        let day = DAY.as_millis() as i64;
        let now = now_ms();
        for (call, age_days) in [("old", 366), ("recent", 364)] {
            let placed =
                std::time::UNIX_EPOCH + Duration::from_millis((now - age_days * day) as u64);
            let cdr = crate::store::CdrRecord::begin(call, &route, "node-1", placed);
            store.insert_cdr(&cdr).await.unwrap();
            let receipt = crate::store::ConsentReceiptRow {
                hash: format!("{call}-receipt"),
                call_id: call.into(),
                number_id: "demo".into(),
                policy: "opt_in".into(),
                notice_hash: "00".into(),
                method: "button".into(),
                granted_at: cdr.created_at_ms,
                signature: "00".into(),
            };
            store.insert_consent_receipt(&receipt).await.unwrap();
        }
        let deleted = sweep_cdrs(&store, 365 * DAY, now).await.unwrap();
        assert_eq!(deleted, 1);
        assert!(store.cdr("old").await.unwrap().is_none());
        assert!(
            store
                .consent_receipts_for_call("old")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.cdr("recent").await.unwrap().is_some());
        assert_eq!(
            store
                .consent_receipts_for_call("recent")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    /// The sweeper's database work runs on real time (sqlx's pool has its
    /// own timeouts); the days pass through the clock value it is given.
    #[tokio::test]
    async fn a_seven_day_recording_is_there_on_day_six_and_gone_on_day_eight() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.seed_demo().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage =
            RecordingStorage::local(&dir.path().join("rec"), &dir.path().join("spool")).unwrap();
        let metrics = RecordingMetrics::unregistered();
        let created = now_ms();
        let day = DAY.as_millis() as i64;
        store
            .insert_recording(&NewRecording {
                id: "rec-1".into(),
                call_id: "call-1".into(),
                tenant_id: "demo".into(),
                number_id: "demo".into(),
                key_id: "k1".into(),
                wrapped_key: vec![1; 60],
                object_path: "demo/rec-1.cgrec".into(),
                receipt_hash: "00".repeat(32),
                created_at_ms: created,
                expires_at_ms: created + 7 * day,
            })
            .await
            .unwrap();
        let blob = dir.path().join("rec/demo/rec-1.cgrec");
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"ciphertext").unwrap();
        store
            .finish_recording("rec-1", true, 0, 1_000, 10)
            .await
            .unwrap();

        assert_eq!(
            sweep(&store, &storage, &metrics, created + 6 * day)
                .await
                .unwrap(),
            0
        );
        let row = store.recording("rec-1").await.unwrap().unwrap();
        assert_eq!(row.state, "stored", "day 6");
        assert!(blob.exists());

        assert_eq!(
            sweep(&store, &storage, &metrics, created + 8 * day)
                .await
                .unwrap(),
            1
        );
        let row = store.recording("rec-1").await.unwrap().unwrap();
        assert_eq!(row.state, "deleted", "day 8");
        assert_eq!(row.wrapped_key, None);
        assert!(!blob.exists());
        let audit = store.audit_entries("rec-1").await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].reason, "retention");
        assert_eq!(metrics.deletions(DeletionReason::Retention), 1);
        assert_eq!(
            sweep(&store, &storage, &metrics, created + 9 * day)
                .await
                .unwrap(),
            0
        );
    }
}
