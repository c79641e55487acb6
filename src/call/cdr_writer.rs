//! [`CdrWriter`]: each finished call's CDR is written to the store, then
//! its `call.ended` webhook queued, and none is ever lost.
//!
//! A write that fails or hangs (the database down, the disk full) leaves
//! the record in a spool file under `<data_dir>/cdr-spool/` and is retried
//! with backoff, oldest first, until the store takes it; a node stopped
//! meanwhile replays its spool when it starts again. A retry that finds
//! the record already stored (its first write went through and only the
//! answer was lost) counts it as written, so none is stored twice.
//! `callgate_cdrs_waiting` shows how many wait.
//!
//! The writer is a task of its own: a call's end never waits for the
//! store, and the store's time is never spent on a queue of them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{CdrRecord, Store};
use crate::webhooks::Webhooks;

/// How long one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the writer may still try the store once the node stops.
const STOP_BUDGET: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// The spool's directory under the node's data directory.
pub const SPOOL_DIR: &str = "cdr-spool";

/// Hands records to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct CdrWriter {
    queue: mpsc::UnboundedSender<CdrRecord>,
    spool_dir: PathBuf,
}

/// What the writer needs.
pub struct CdrWriterParts {
    pub store: Store,
    pub webhooks: Webhooks,
    /// `<data_dir>/cdr-spool`.
    pub spool_dir: PathBuf,
    /// `callgate_cdrs_waiting`.
    pub waiting: IntGauge,
}

impl CdrWriter {
    /// Starts the writer, with what the spool holds from an earlier run
    /// first in line. It runs until `stop`, then tries each record it
    /// still holds once more; what is left stays in the spool.
    pub fn start(
        parts: CdrWriterParts,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, records) = mpsc::unbounded_channel();
        let spool_dir = parts.spool_dir.clone();
        let task = tokio::spawn(run(parts, records, stop));
        (Self { queue, spool_dir }, task)
    }

    /// Queues `record` for writing; never waits.
    pub fn write(&self, record: CdrRecord) {
        if let Err(unsent) = self.queue.send(record) {
            // Only once the writer has stopped: the next start writes it.
            Spool::new(self.spool_dir.clone()).save(&unsent.0);
        }
    }
}

async fn run(
    parts: CdrWriterParts,
    mut records: mpsc::UnboundedReceiver<CdrRecord>,
    stop: CancellationToken,
) {
    let spool = Spool::new(parts.spool_dir.clone());
    let mut pending: VecDeque<CdrRecord> = spool.load().into();
    if !pending.is_empty() {
        info!(waiting = pending.len(), "CDRs from the spool to write");
    }
    let mut backoff = FIRST_RETRY;
    let mut retry_at = Instant::now();
    loop {
        parts.waiting.set(pending.len() as i64);
        tokio::select! {
            record = records.recv() => match record {
                Some(record) => {
                    // In order: behind what already waits, or at once.
                    if pending.is_empty() && written(&parts, &record).await {
                        continue;
                    }
                    spool.save(&record);
                    pending.push_back(record);
                }
                None => break,
            },
            () = tokio::time::sleep_until(retry_at), if !pending.is_empty() => {
                while let Some(record) = pending.front() {
                    if !written(&parts, record).await {
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(LAST_RETRY);
                        break;
                    }
                    spool.remove(record);
                    pending.pop_front();
                    backoff = FIRST_RETRY;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    // Stopping: what came in last, and what waits, gets one more try
    // within STOP_BUDGET; the rest waits in the spool for the next start.
    records.close();
    while let Ok(record) = records.try_recv() {
        pending.push_back(record);
    }
    let deadline = Instant::now() + STOP_BUDGET;
    while let Some(record) = pending.front() {
        let tried = tokio::time::timeout_at(deadline, written(&parts, record)).await;
        if tried != Ok(true) {
            break;
        }
        spool.remove(record);
        pending.pop_front();
    }
    if !pending.is_empty() {
        warn!(
            waiting = pending.len(),
            "the store is unavailable: CDRs wait in the spool for the next start"
        );
    }
    for record in &pending {
        spool.save(record);
    }
    parts.waiting.set(0);
}

/// Writes `record` (or finds it written) and queues its webhook; `false`
/// when the store could not take it now.
async fn written(parts: &CdrWriterParts, record: &CdrRecord) -> bool {
    let inserted = tokio::time::timeout(WRITE_TIMEOUT, parts.store.insert_cdr(record)).await;
    let stored = match inserted {
        Ok(Ok(())) => Stored::Written,
        Ok(Err(error)) => {
            if !error.is_duplicate() {
                warn!(call = %record.call_id, %error, "cannot write the call's CDR yet");
            }
            already_stored(parts, record).await
        }
        Err(_) => {
            warn!(call = %record.call_id, "the call's CDR write timed out");
            Stored::Not
        }
    };
    if stored == Stored::Written {
        parts
            .webhooks
            .on_call_ended(&record.tenant_id, record)
            .await;
    }
    stored != Stored::Not
}

/// What became of a record the writer tried to write.
#[derive(Debug, PartialEq, Eq)]
enum Stored {
    /// Written now, or by an earlier try whose answer was lost: its
    /// webhook is due.
    Written,
    /// Another record of the call stood first (the call's own, when this
    /// one was written for its lost node): nothing more to do.
    Superseded,
    /// Not stored: try again later.
    Not,
}

/// Whether a failed insert met the record itself, stored by an earlier try,
/// or another record of the same call.
async fn already_stored(parts: &CdrWriterParts, record: &CdrRecord) -> Stored {
    let found = tokio::time::timeout(WRITE_TIMEOUT, parts.store.cdr(&record.call_id)).await;
    match found {
        Ok(Ok(Some(stored))) if stored == *record => Stored::Written,
        Ok(Ok(Some(_))) => {
            info!(call = %record.call_id, "the call's record was written already: this one is dropped");
            Stored::Superseded
        }
        _ => Stored::Not,
    }
}

/// The spool: one JSON file per waiting record, named by its call id.
struct Spool {
    dir: PathBuf,
}

impl Spool {
    fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, record: &CdrRecord) -> PathBuf {
        self.dir
            .join(format!("{}.json", file_stem(&record.call_id)))
    }

    /// Keeps `record` on disk; a failure is logged and the record stays in
    /// memory, retried all the same.
    fn save(&self, record: &CdrRecord) {
        let path = self.path(record);
        if path.exists() {
            return;
        }
        let saved = std::fs::create_dir_all(&self.dir)
            .and_then(|()| serde_json::to_vec(record).map_err(std::io::Error::other))
            .and_then(|bytes| write_atomically(&path, &bytes));
        if let Err(error) = saved {
            warn!(call = %record.call_id, %error, "cannot keep the CDR in the spool");
        }
    }

    fn remove(&self, record: &CdrRecord) {
        let path = self.path(record);
        if let Err(error) = std::fs::remove_file(&path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                warn!(call = %record.call_id, %error, "cannot remove a written CDR from the spool");
            }
        }
    }

    /// The records an earlier run left, oldest end first. A file that does
    /// not parse is left where it is, and named in the log.
    fn load(&self) -> Vec<CdrRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records: Vec<CdrRecord> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .filter_map(|path| {
                let parsed = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
                parsed
                    .map_err(|error| {
                        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                        warn!(file = ?file, %error, "a spooled CDR cannot be read; left in place");
                    })
                    .ok()
            })
            .collect();
        records.sort_by_key(|record| record.ended_at_ms);
        records
    }
}

/// A call id as a file name: its letters, digits and dashes only.
fn file_stem(call_id: &str) -> String {
    call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Disposition, EndedBy, LegStats};

    fn record(call_id: &str, ended_at_ms: i64) -> CdrRecord {
        CdrRecord {
            call_id: call_id.into(),
            tenant_id: "demo".into(),
            number_id: "n".into(),
            widget_id: "w".into(),
            trunk: Some("echo".into()),
            node_id: "node".into(),
            created_at_ms: ended_at_ms - 1_000,
            answered_at_ms: None,
            ended_at_ms,
            duration_ms: 0,
            disposition: Disposition::Cancelled,
            sip_code: Some(487),
            sip_reason: None,
            q850_cause: None,
            ended_by: EndedBy::Visitor,
            browser_codec: Some("PCMU".into()),
            trunk_codec: None,
            browser_stats: LegStats::default(),
            trunk_stats: LegStats::default(),
            visitor_network: Some("192.0.2.0/24".into()),
            recorded: false,
            privacy_ref: Some("ref".into()),
            erased_at_ms: None,
            end_reason: None,
        }
    }

    #[test]
    fn the_spool_keeps_records_whole_and_gives_them_back_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join(SPOOL_DIR));
        let (late, early) = (record("b-2", 2_000), record("a-1", 1_000));
        spool.save(&late);
        spool.save(&early);
        spool.save(&early);
        assert_eq!(spool.load(), vec![early.clone(), late.clone()]);
        spool.remove(&early);
        assert_eq!(spool.load(), vec![late]);
    }

    #[test]
    fn a_damaged_spool_file_is_left_alone_and_the_rest_load() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().to_path_buf());
        spool.save(&record("good", 1));
        std::fs::write(dir.path().join("bad.json"), b"{ not json").unwrap();
        assert_eq!(spool.load().len(), 1);
        assert!(dir.path().join("bad.json").exists());
    }

    #[test]
    fn a_call_id_cannot_leave_the_spool_directory() {
        assert_eq!(file_stem("../../etc/passwd"), "etcpasswd");
        assert_eq!(file_stem("0b1f-44c2"), "0b1f-44c2");
    }
}
