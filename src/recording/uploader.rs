//! The uploader: stores finished recordings that wait in the spool because
//! the store did not take them (it was down), retrying each on its own
//! capped exponential backoff until it is stored.
//!
//! A recording reaches it from the recorder, after the upload at the end
//! of its call failed, or from a node's start, for the recordings the last
//! run left in the spool. The call never waits for it: handing over is a
//! send on an unbounded channel. Nothing is lost when the node stops: a
//! waiting recording is still in the spool and still `recording` in the
//! database, so the next start hands it over again.
//!
//! One upload runs at a time. The schedule ([`Schedule`]) does no I/O and
//! reads no clock: it takes `now` and says what is due.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::storage::{RecordingStorage, StorageError};
use crate::domain::RecordingId;
use crate::metrics::RecordingMetrics;
use crate::store::{Store, StoreError};

/// How long to wait after a failed upload: `first`, doubling per failure
/// of the same recording, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRetry {
    pub first: Duration,
    pub max: Duration,
}

impl Default for UploadRetry {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl UploadRetry {
    /// The wait after the `failures`-th failure in a row (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .map_or(self.max, |delay| delay.min(self.max))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// A finished recording waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub id: RecordingId,
    pub object_path: String,
}

/// What one upload attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// In the store and marked stored, `bytes` long.
    Bytes(u64),
    /// The recording was deleted meanwhile: nothing of it is kept.
    Deleted,
}

/// One attempt: uploads the spool file of `upload`, marks the recording
/// stored, then removes the spool file. The order keeps a copy at every
/// step: a node that dies between them uploads again at its next start.
pub async fn store_spooled(
    storage: &RecordingStorage,
    store: &Store,
    upload: &PendingUpload,
) -> Result<Stored, UploadError> {
    let (id, object_path) = (upload.id.as_str(), upload.object_path.as_str());
    let bytes = storage.upload_spooled(id, object_path).await?;
    if !store.mark_recording_stored(id, bytes).await? {
        // Deleted while it uploaded (its key is gone): drop the copy too.
        storage.delete(id, object_path).await?;
        return Ok(Stored::Deleted);
    }
    if let Err(error) = storage.remove_spooled(id).await {
        warn!(recording = %id, %error, "stored, but cannot remove the recording's spool file");
    }
    Ok(Stored::Bytes(bytes))
}

/// A recording in the schedule: when it is due and how often it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scheduled {
    upload: PendingUpload,
    due: Instant,
    failures: u32,
}

/// The uploads waiting, each with its own due time. No I/O, no clock.
#[derive(Debug, Default)]
pub struct Schedule {
    waiting: Vec<Scheduled>,
}

impl Schedule {
    /// Adds `upload` at `now`, after `failures` failed attempts elsewhere:
    /// due at once, or after its backoff. A recording already waiting
    /// keeps its place.
    pub fn handle_upload(
        &mut self,
        upload: PendingUpload,
        failures: u32,
        now: Instant,
        retry: &UploadRetry,
    ) {
        if self.waiting.iter().any(|s| s.upload.id == upload.id) {
            return;
        }
        let due = match failures {
            0 => now,
            n => now + retry.delay(n),
        };
        self.waiting.push(Scheduled {
            upload,
            due,
            failures,
        });
    }

    /// When the earliest upload is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting.iter().map(|s| s.due).min()
    }

    /// The earliest upload due at `now`, if any; it stays in the schedule
    /// until [`Schedule::handle_done`] or [`Schedule::handle_failed`].
    #[must_use]
    pub fn poll_due(&self, now: Instant) -> Option<PendingUpload> {
        let due = self.waiting.iter().filter(|s| s.due <= now);
        due.min_by_key(|s| s.due).map(|s| s.upload.clone())
    }

    /// `id` is stored (or needs storing no more).
    pub fn handle_done(&mut self, id: &str) {
        self.waiting.retain(|s| s.upload.id != id);
    }

    /// `id` failed at `now`: due again after its backoff. Returns that wait.
    pub fn handle_failed(&mut self, id: &str, now: Instant, retry: &UploadRetry) -> Duration {
        let Some(item) = self.waiting.iter_mut().find(|s| s.upload.id == id) else {
            return Duration::ZERO;
        };
        item.failures = item.failures.saturating_add(1);
        let delay = retry.delay(item.failures);
        item.due = now + delay;
        delay
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// What the uploader task works with.
pub struct UploaderParts {
    pub storage: RecordingStorage,
    pub store: Store,
    pub metrics: RecordingMetrics,
    pub retry: UploadRetry,
    /// Queues `recording.ready` once a waiting recording is stored.
    pub webhooks: crate::webhooks::Webhooks,
}

/// Hands recordings to the uploader task. Cheap to clone; never waits.
#[derive(Clone, Debug)]
pub struct Uploader {
    /// A recording and how many attempts to store it failed already.
    tx: mpsc::UnboundedSender<(PendingUpload, u32)>,
}

impl Uploader {
    /// Starts the uploader task; it runs until `stop`.
    pub fn start(
        parts: UploaderParts,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(parts, rx, stop));
        (Self { tx }, task)
    }

    /// A recording to upload now (one left by the last run).
    pub fn upload_now(&self, upload: PendingUpload) {
        let _ = self.tx.send((upload, 0));
    }

    /// A recording whose upload just failed: tried again after the first
    /// backoff.
    pub fn retry_later(&self, upload: PendingUpload) {
        let _ = self.tx.send((upload, 1));
    }
}

async fn run(
    parts: UploaderParts,
    mut rx: mpsc::UnboundedReceiver<(PendingUpload, u32)>,
    stop: CancellationToken,
) {
    let mut schedule = Schedule::default();
    loop {
        let now = Instant::now();
        if let Some(upload) = schedule.poll_due(now) {
            tokio::select! {
                // What was not stored is still in the spool for the next start.
                () = stop.cancelled() => return,
                () = attempt(&parts, &mut schedule, &upload) => {}
            }
            parts.metrics.uploads_waiting.set(schedule.len() as i64);
            continue;
        }
        let wake = schedule.poll_timeout();
        tokio::select! {
            () = stop.cancelled() => return,
            received = rx.recv() => {
                let Some((upload, failures)) = received else { return };
                schedule.handle_upload(upload, failures, Instant::now(), &parts.retry);
                parts.metrics.uploads_waiting.set(schedule.len() as i64);
            }
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Tries `upload` once, unless it needs storing no more.
async fn attempt(parts: &UploaderParts, schedule: &mut Schedule, upload: &PendingUpload) {
    let id = upload.id.as_str();
    match parts.store.recording(id).await {
        Ok(Some(row)) if row.state == "recording" => {}
        Ok(_) => {
            // Deleted (retention, an erase) while it waited: nothing to store.
            schedule.handle_done(id);
            return;
        }
        Err(error) => {
            let wait = schedule.handle_failed(id, Instant::now(), &parts.retry);
            warn!(recording = %id, %error, retry_in_ms = wait.as_millis() as u64, "cannot look up a recording waiting for upload");
            return;
        }
    }
    match store_spooled(&parts.storage, &parts.store, upload).await {
        Ok(Stored::Bytes(bytes)) => {
            schedule.handle_done(id);
            info!(recording = %id, bytes, "stored a recording that waited in the spool");
            parts.webhooks.on_recording_stored(id).await;
        }
        Ok(Stored::Deleted) => schedule.handle_done(id),
        Err(UploadError::Storage(error)) if error.is_not_found() && !spooled(parts, id) => {
            schedule.handle_done(id);
            warn!(recording = %id, %error, "the spool file of a recording waiting for upload is gone");
        }
        Err(error) => {
            parts.metrics.upload_failures.inc();
            let wait = schedule.handle_failed(id, Instant::now(), &parts.retry);
            warn!(recording = %id, %error, retry_in_ms = wait.as_millis() as u64, "cannot store a recording; it waits in the spool");
        }
    }
}

fn spooled(parts: &UploaderParts, id: &str) -> bool {
    parts.storage.spool_path(id).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRecording;

    fn upload(id: &str) -> PendingUpload {
        PendingUpload {
            id: id.into(),
            object_path: format!("demo/{id}.cgrec"),
        }
    }

    #[test]
    fn the_backoff_doubles_from_one_second_to_a_minute() {
        let retry = UploadRetry::default();
        let waits: Vec<u64> = (1..=9).map(|n| retry.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn each_recording_keeps_its_own_backoff() {
        let retry = UploadRetry::default();
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.handle_upload(upload("a"), 0, start, &retry);
        // b failed once at the end of its call: due after the first backoff.
        schedule.handle_upload(upload("b"), 1, start + Duration::from_secs(4), &retry);
        schedule.handle_upload(upload("a"), 0, start + Duration::from_secs(9), &retry);
        assert_eq!(schedule.len(), 2, "a recording is scheduled once");
        assert_eq!(schedule.poll_due(start), Some(upload("a")));

        let mut now = start;
        for (wait, next) in [(1, "a"), (2, "a"), (4, "b")] {
            assert_eq!(
                schedule.handle_failed("a", now, &retry),
                Duration::from_secs(wait)
            );
            assert_eq!(schedule.poll_due(now), None);
            now += Duration::from_secs(wait);
            assert_eq!(schedule.poll_due(now), Some(upload(next)));
        }
        // At 7 s a (due at 7 s) and b (due at 5 s) are both due: b first,
        // and its next failure waits 2 s, its own second backoff.
        assert_eq!(
            schedule.poll_timeout(),
            Some(start + Duration::from_secs(5))
        );
        assert_eq!(
            schedule.handle_failed("b", now, &retry),
            Duration::from_secs(2)
        );
        assert_eq!(schedule.poll_due(now), Some(upload("a")));
        schedule.handle_done("a");
        schedule.handle_done("b");
        assert!(schedule.is_empty());
        assert_eq!(schedule.poll_timeout(), None);
    }

    async fn ended_recording(store: &Store, id: &str) {
        let now = crate::store::now_ms();
        let new = NewRecording {
            id: id.into(),
            call_id: format!("call-{id}").into(),
            tenant_id: "demo".into(),
            number_id: "demo".into(),
            key_id: "k1".into(),
            wrapped_key: vec![1; 60],
            object_path: format!("demo/{id}.cgrec"),
            receipt_hash: "00".repeat(32),
            created_at_ms: now,
            expires_at_ms: now + 86_400_000,
        };
        store.insert_recording(&new).await.unwrap();
        store.end_recording(id, true, 0, 1_000).await.unwrap();
    }

    async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
        for _ in 0..250 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// The store refuses the upload (a file stands where the tenant's
    /// directory goes) until it is fixed; the uploader keeps trying, then
    /// stores the recording with the figures of its end.
    #[tokio::test]
    async fn a_refused_upload_is_retried_until_the_store_takes_it() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.seed_demo().await.unwrap();
        let actor = crate::store::Actor::Cli;
        let hook = "https://hooks.example.com/";
        store
            .set_webhook("demo", hook, "s", crate::webhooks::DEFAULT_EVENTS, &actor)
            .await
            .unwrap();
        ended_recording(&store, "r1").await;
        let dir = tempfile::tempdir().unwrap();
        let (rec, spool) = (dir.path().join("rec"), dir.path().join("spool"));
        let storage = RecordingStorage::local(&rec, &spool).unwrap();
        std::fs::write(storage.spool_path("r1"), b"sealed segments").unwrap();
        std::fs::write(rec.join("demo"), b"in the way").unwrap();
        let metrics = RecordingMetrics::unregistered();
        let stop = CancellationToken::new();
        let parts = UploaderParts {
            storage: storage.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            webhooks: crate::webhooks::Webhooks::new(store.clone()),
            retry: UploadRetry {
                first: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
        };
        let (uploader, task) = Uploader::start(parts, stop.clone());
        uploader.upload_now(upload("r1"));

        wait_for("three uploads failed", async || {
            metrics.upload_failures.get() >= 3
        })
        .await;
        assert_eq!(metrics.uploads_waiting.get(), 1);
        let row = store.recording("r1").await.unwrap().unwrap();
        assert_eq!(row.state, "recording");
        assert!(storage.spool_path("r1").exists());
        let queued = store.webhook_deliveries("demo").await.unwrap();
        assert!(queued.is_empty(), "recording.ready before it is stored");

        std::fs::remove_file(rec.join("demo")).unwrap();
        wait_for("it is stored", async || {
            store.recording("r1").await.unwrap().unwrap().state == "stored"
        })
        .await;
        let row = store.recording("r1").await.unwrap().unwrap();
        assert_eq!(
            (row.bytes, row.duration_ms, row.complete),
            (15, 1_000, true)
        );
        assert_eq!(
            std::fs::read(rec.join("demo/r1.cgrec")).unwrap(),
            b"sealed segments"
        );
        wait_for("the spool is empty", async || {
            !storage.spool_path("r1").exists()
        })
        .await;
        wait_for("nothing waits", async || metrics.uploads_waiting.get() == 0).await;
        let queued = store.webhook_deliveries("demo").await.unwrap();
        let events: Vec<_> = queued.iter().map(|d| d.event.as_str()).collect();
        assert_eq!(events, ["recording.ready"]);
        assert!(
            queued[0].body.contains("\"id\":\"r1\""),
            "{}",
            queued[0].body
        );
        stop.cancel();
        task.await.unwrap();
    }

    /// Deleted while it waited: skipped (the next one is stored). Deleted
    /// while it uploaded: the copy is removed again.
    #[tokio::test]
    async fn a_recording_deleted_while_it_waited_or_uploaded_is_not_kept() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.seed_demo().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("rec");
        let storage = RecordingStorage::local(&rec, &dir.path().join("spool")).unwrap();
        for id in ["r2", "r3", "r4"] {
            ended_recording(&store, id).await;
            std::fs::write(storage.spool_path(id), b"sealed").unwrap();
        }
        store.delete_recording("r2", "api").await.unwrap();
        let metrics = RecordingMetrics::unregistered();
        let parts = UploaderParts {
            storage: storage.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            webhooks: crate::webhooks::Webhooks::new(store.clone()),
            retry: UploadRetry::default(),
        };
        let stop = CancellationToken::new();
        let (uploader, task) = Uploader::start(parts, stop.clone());
        uploader.upload_now(upload("r2"));
        uploader.upload_now(upload("r3"));
        wait_for("r3 is stored", async || {
            store.recording("r3").await.unwrap().unwrap().state == "stored"
        })
        .await;
        assert!(!rec.join("demo/r2.cgrec").exists());
        assert_eq!(metrics.upload_failures.get(), 0);
        stop.cancel();
        task.await.unwrap();

        // The race the uploader cannot see coming: deleted mid-upload.
        store.delete_recording("r4", "retention").await.unwrap();
        let stored = store_spooled(&storage, &store, &upload("r4"))
            .await
            .unwrap();
        assert_eq!(stored, Stored::Deleted);
        assert!(!rec.join("demo/r4.cgrec").exists());
        assert!(!storage.spool_path("r4").exists());
    }
}
