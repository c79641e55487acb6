//! The recording families: recordings in progress, bytes sealed, frames
//! the recorder could not keep up with, failed uploads and recordings
//! waiting in the spool for the store, and deletions by reason (a fixed
//! set).

use prometheus::{IntCounter, IntGauge, Registry};

use super::register::{MetricsError, children, counter, counter_vec};

/// Why a recording was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    Retention,
    ConsentRevoked,
    Api,
}

impl DeletionReason {
    pub const ALL: [DeletionReason; 3] = [
        DeletionReason::Retention,
        DeletionReason::ConsentRevoked,
        DeletionReason::Api,
    ];

    /// The label, also the audit log's reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::Retention => "retention",
            DeletionReason::ConsentRevoked => "consent_revoked",
            DeletionReason::Api => "api",
        }
    }
}

/// Handles the recorder and the sweeper record into. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RecordingMetrics {
    pub active: IntGauge,
    pub bytes_written: IntCounter,
    pub frames_dropped: IntCounter,
    pub upload_failures: IntCounter,
    pub uploads_waiting: IntGauge,
    deletions: [IntCounter; 3],
}

impl RecordingMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let active = IntGauge::new(
            "callgate_recordings_active",
            "Recordings being written now.",
        )?;
        registry.register(Box::new(active.clone()))?;
        let uploads_waiting = IntGauge::new(
            "callgate_recording_uploads_waiting",
            "Finished recordings waiting in the spool for the store, retried with backoff.",
        )?;
        registry.register(Box::new(uploads_waiting.clone()))?;
        let deletions = counter_vec(
            registry,
            "callgate_recording_deletions_total",
            "Recordings deleted (key destroyed), by reason.",
            &["reason"],
        )?;
        Ok(Self {
            active,
            bytes_written: counter(
                registry,
                "callgate_recording_bytes_written_total",
                "Encrypted recording bytes written to the spool.",
            )?,
            frames_dropped: counter(
                registry,
                "callgate_recording_frames_dropped_total",
                "Audio frames dropped because a recorder lagged behind the call.",
            )?,
            upload_failures: counter(
                registry,
                "callgate_recording_upload_failures_total",
                "Recording uploads that failed (the recording waits in the spool for a retry).",
            )?,
            uploads_waiting,
            deletions: children(&deletions, DeletionReason::ALL, |r| [r.as_str()])?,
        })
    }

    /// A standalone set, registered nowhere (for commands and tests).
    pub fn unregistered() -> Self {
        Self::register(&Registry::new()).unwrap_or_else(|_| unreachable!("a fresh registry"))
    }

    pub fn deleted(&self, reason: DeletionReason) {
        self.deletions[reason as usize].inc();
    }

    pub fn deletions(&self, reason: DeletionReason) -> u64 {
        self.deletions[reason as usize].get()
    }
}
