//! The recorder: one task per recorded call, fed by the call's driver
//! through a bounded channel, writing the encrypted recording.
//!
//! The driver never waits for it: frames go with `try_send`, and when the
//! recorder lags so far that the queue is full they are dropped, counted,
//! and the recording is marked incomplete. A few slots are kept free for
//! the gate's commands (open, close, discard, finish), which must not be
//! lost. Frames arrive only while the consent gate is open; the recorder
//! trusts the driver's gate and keeps no audio of its own.
//!
//! A recording starts at the first opening of the gate: its consent receipt
//! is signed and stored, a fresh data key is made and wrapped, the row is
//! written, and sealed segments go to the spool as the audio arrives. At the
//! end its figures are recorded and it is uploaded and marked stored; if
//! the store fails, the uploader retries in the background. On a discard
//! its key is destroyed first, then its file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::warn;

use super::format::{AudioFormat, RecordingHeader, SegmentEncryptor};
use super::gate::ConsentMethod;
use super::mixer::{Channel, MediaTime, SAMPLE_RATE, TwoChannelMixer};
use super::receipt::ConsentReceipt;
use super::storage::RecordingStorage;
use super::uploader::{PendingUpload, Stored, Uploader, store_spooled};
use crate::domain::{CallId, NumberId, RecordingId, TenantId};
use crate::keys::{DataKey, KeyRing};
use crate::media::g711;
use crate::metrics::{DeletionReason, RecordingMetrics};
use crate::store::{NewRecording, Store, now_ms};
use crate::webhooks::Webhooks;

/// Queue slots kept for the gate's commands.
const RESERVED_FOR_COMMANDS: usize = 8;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How a G.711 frame is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    Ulaw,
    Alaw,
}

/// What the node's recorders share.
pub struct RecorderParts {
    pub storage: RecordingStorage,
    pub keys: Arc<KeyRing>,
    pub store: Store,
    /// Queue length per call, in frames.
    pub queue_frames: usize,
    pub metrics: RecordingMetrics,
    /// Takes the recordings the store did not take at the end of a call.
    pub uploader: Uploader,
    /// Queues `recording.ready` once a recording is stored.
    pub webhooks: Webhooks,
}

/// Starts recorders. Cheap to clone.
#[derive(Clone)]
pub struct Recorders {
    parts: Arc<RecorderParts>,
}

/// The facts of the call a recording belongs to.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub call_id: CallId,
    pub tenant_id: TenantId,
    pub number_id: NumberId,
    /// `opt_in` or `notice`.
    pub policy: &'static str,
    pub notice_hash: String,
    pub retention_days: u32,
}

enum RecorderInput {
    /// The gate opened at `at`, the recording's position 0 from here.
    Open {
        method: ConsentMethod,
        at: Instant,
    },
    Frame(Frame),
    Close,
    Discard,
    Finish,
}

struct Frame {
    channel: Channel,
    at: Instant,
    time: MediaTime,
    payload: Bytes,
    law: G711Law,
}

/// The driver's end of a call's recorder.
pub struct RecorderHandle {
    tx: mpsc::Sender<RecorderInput>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<bool>,
}

/// The media path's end of a call's recorder: it hands over frames and
/// nothing else. Whether a frame is wanted is the consent gate's to say,
/// not the tap's.
#[derive(Clone)]
pub struct RecorderTap {
    tx: mpsc::Sender<RecorderInput>,
    dropped: Arc<AtomicU64>,
}

impl Recorders {
    pub fn new(parts: RecorderParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }

    /// Starts the recorder task of `call` (idle until the gate opens).
    pub fn start(&self, call: RecordedCall) -> RecorderHandle {
        let capacity = self.parts.queue_frames + RESERVED_FOR_COMMANDS;
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(Arc::clone(&self.parts), call, rx, Arc::clone(&dropped)));
        RecorderHandle { tx, dropped, task }
    }
}

impl RecorderTap {
    /// Hands one 20 ms frame, stamped `time` and arrived `at`, to the
    /// recorder, or drops and counts it when the recorder lags. Never waits.
    pub fn frame(
        &self,
        channel: Channel,
        at: Instant,
        time: MediaTime,
        payload: &[u8],
        law: G711Law,
    ) {
        if self.tx.capacity() <= RESERVED_FOR_COMMANDS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let frame = Frame {
            channel,
            at,
            time,
            payload: Bytes::copy_from_slice(payload),
            law,
        };
        if self.tx.try_send(RecorderInput::Frame(frame)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RecorderHandle {
    /// The tap the media path hands frames to.
    pub fn tap(&self) -> RecorderTap {
        RecorderTap {
            tx: self.tx.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }

    /// The gate opened at `at`.
    pub fn open(&self, method: ConsentMethod, at: Instant) {
        self.command(RecorderInput::Open { method, at });
    }

    pub fn close(&self) {
        self.command(RecorderInput::Close);
    }

    pub fn discard(&self) {
        self.command(RecorderInput::Discard);
    }

    /// Frames dropped so far because the recorder lagged.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the recording and waits for it to be stored; true when a
    /// recording of this call was kept.
    pub async fn finish(self) -> bool {
        let _ = self.tx.send(RecorderInput::Finish).await;
        self.task.await.unwrap_or(false)
    }

    fn command(&self, input: RecorderInput) {
        match self.tx.try_send(input) {
            Ok(()) => {}
            // Only if the reserved slots are used up too: deliver it late
            // rather than lose it (no frames follow a close or a discard).
            Err(TrySendError::Full(input)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(input).await;
                });
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

/// The recorder's loop. It waits, idle, for most calls' whole life, so
/// the rare steps that hold large futures (start, pause, discard, finish:
/// the store, the spool, the upload) are boxed while they run, and the
/// task's own state stays small.
async fn run(
    parts: Arc<RecorderParts>,
    call: RecordedCall,
    mut rx: mpsc::Receiver<RecorderInput>,
    dropped: Arc<AtomicU64>,
) -> bool {
    let mut active: Option<ActiveRecording> = None;
    let mut open = false;
    while let Some(input) = rx.recv().await {
        match input {
            RecorderInput::Open { method, at } => {
                open = true;
                match active.as_mut() {
                    Some(recording) => recording.resume(at),
                    None => match Box::pin(ActiveRecording::start(&parts, &call, method, at)).await
                    {
                        Ok(recording) => {
                            parts.metrics.active.inc();
                            active = Some(recording);
                        }
                        Err(error) => {
                            warn!(call = %call.call_id, %error, "cannot start the recording");
                            open = false;
                        }
                    },
                }
            }
            RecorderInput::Frame(frame) if open => {
                if let Some(recording) = active.as_mut() {
                    recording.write(&frame).await;
                }
            }
            RecorderInput::Frame(_) => {}
            RecorderInput::Close => {
                open = false;
                if let Some(recording) = active.as_mut() {
                    Box::pin(recording.pause()).await;
                }
            }
            RecorderInput::Discard => {
                open = false;
                if let Some(recording) = active.take() {
                    parts.metrics.active.dec();
                    Box::pin(recording.discard(&parts)).await;
                }
            }
            RecorderInput::Finish => break,
        }
    }
    let dropped = dropped.load(Ordering::Relaxed);
    parts.metrics.frames_dropped.inc_by(dropped);
    match active {
        Some(recording) => {
            let kept = Box::pin(recording.finish(&parts, dropped)).await;
            parts.metrics.active.dec();
            kept
        }
        None => false,
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
}

struct ActiveRecording {
    id: RecordingId,
    call_id: CallId,
    object_path: String,
    encryptor: Option<SegmentEncryptor>,
    mixer: Option<TwoChannelMixer>,
    file: tokio::fs::File,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    /// Sample frames (both channels) written.
    written: u64,
    /// A write to the spool failed: the recording is incomplete.
    failed: bool,
    metrics: RecordingMetrics,
}

impl ActiveRecording {
    async fn start(
        parts: &RecorderParts,
        call: &RecordedCall,
        method: ConsentMethod,
        opened_at: Instant,
    ) -> Result<Self, StartError> {
        let now = now_ms();
        let receipt = ConsentReceipt {
            call_id: call.call_id.clone(),
            number_id: call.number_id.clone(),
            policy: call.policy.to_owned(),
            notice_hash: call.notice_hash.clone(),
            method,
            granted_at_ms: now,
        };
        parts
            .store
            .insert_consent_receipt(&receipt.signed(&parts.keys))
            .await?;
        let id = RecordingId::new(uuid::Uuid::new_v4().to_string());
        let data_key = DataKey::generate();
        let wrapped = parts.keys.wrap(&data_key, &id);
        let header = RecordingHeader {
            key_id: wrapped.key_id.0.clone(),
            recording_id: id.clone(),
            nonce_prefix: rand::random(),
            consent_hash: receipt.hash(),
            audio: AudioFormat::two_channel_8k(),
        };
        let (encryptor, start) = SegmentEncryptor::new(&data_key, &header);
        let mut file = create_spool_file(&parts.storage.spool_path(&id)).await?;
        file.write_all(&start).await?;
        parts.metrics.bytes_written.inc_by(start.len() as u64);
        let object_path = format!("{}/{id}.cgrec", call.tenant_id);
        let retention = i64::from(call.retention_days) * DAY_MS;
        parts
            .store
            .insert_recording(&NewRecording {
                id: id.clone(),
                call_id: call.call_id.clone(),
                tenant_id: call.tenant_id.clone(),
                number_id: call.number_id.clone(),
                key_id: wrapped.key_id.0.clone(),
                wrapped_key: wrapped.bytes,
                object_path: object_path.clone(),
                receipt_hash: hex::encode(receipt.hash()),
                created_at_ms: now,
                expires_at_ms: now.saturating_add(retention),
            })
            .await?;
        Ok(Self {
            id,
            call_id: call.call_id.clone(),
            object_path,
            encryptor: Some(encryptor),
            mixer: Some(TwoChannelMixer::new(opened_at)),
            file,
            plain: Vec::new(),
            sealed: Vec::new(),
            written: 0,
            failed: false,
            metrics: parts.metrics.clone(),
        })
    }

    fn resume(&mut self, opened_at: Instant) {
        if self.mixer.is_none() {
            self.mixer = Some(TwoChannelMixer::new(opened_at));
        }
    }

    async fn write(&mut self, frame: &Frame) {
        let Some(mixer) = self.mixer.as_mut() else {
            return;
        };
        let mut pcm = [0i16; 160];
        let len = frame.payload.len().min(pcm.len());
        let samples = &mut pcm[..len];
        match frame.law {
            G711Law::Ulaw => g711::decode_ulaw_into(&frame.payload[..len], samples),
            G711Law::Alaw => g711::decode_alaw_into(&frame.payload[..len], samples),
        };
        mixer.push(frame.channel, frame.at, frame.time, samples);
        mixer.drain(&mut self.plain);
        self.seal_plain().await;
    }

    /// The gate closed: what is mixed so far goes in; a later opening
    /// continues after it.
    async fn pause(&mut self) {
        if let Some(mut mixer) = self.mixer.take() {
            mixer.finish(&mut self.plain);
            self.seal_plain().await;
        }
    }

    async fn seal_plain(&mut self) {
        self.written += (self.plain.len() / 4) as u64;
        if let Some(encryptor) = self.encryptor.as_mut() {
            if encryptor.push(&self.plain, &mut self.sealed).is_err() {
                self.failed = true;
            }
        }
        self.plain.clear();
        self.flush_sealed().await;
    }

    async fn flush_sealed(&mut self) {
        if self.sealed.is_empty() {
            return;
        }
        match self.file.write_all(&self.sealed).await {
            Ok(()) => self.metrics.bytes_written.inc_by(self.sealed.len() as u64),
            Err(error) => {
                warn!(call = %self.call_id, %error, "cannot write the recording spool");
                self.failed = true;
            }
        }
        self.sealed.clear();
    }

    async fn finish(mut self, parts: &RecorderParts, dropped: u64) -> bool {
        self.pause().await;
        if let Some(encryptor) = self.encryptor.take() {
            if encryptor.finish(&mut self.sealed).is_err() {
                self.failed = true;
            }
        }
        self.flush_sealed().await;
        if let Err(error) = self.file.sync_all().await {
            warn!(call = %self.call_id, %error, "cannot sync the recording spool");
            self.failed = true;
        }
        let duration_ms = (self.written * 1000 / u64::from(SAMPLE_RATE)) as i64;
        let complete = dropped == 0 && !self.failed;
        if let Err(error) = parts
            .store
            .end_recording(&self.id, complete, dropped, duration_ms)
            .await
        {
            warn!(recording = %self.id, %error, "cannot record the recording's end");
        }
        let upload = PendingUpload {
            id: self.id,
            object_path: self.object_path,
        };
        match store_spooled(&parts.storage, &parts.store, &upload).await {
            Ok(Stored::Bytes(_)) => parts.webhooks.on_recording_stored(&upload.id).await,
            Ok(Stored::Deleted) => {}
            Err(error) => {
                // It stays in the spool, for the uploader to retry.
                parts.metrics.upload_failures.inc();
                warn!(call = %self.call_id, recording = %upload.id, %error, "cannot store the recording yet");
                parts.uploader.retry_later(upload);
            }
        }
        true
    }

    /// Consent revoked under `discard`: the key goes first, so the
    /// recording is unreadable even if removing its file fails.
    async fn discard(self, parts: &RecorderParts) {
        drop(self.file);
        let reason = DeletionReason::ConsentRevoked;
        match parts
            .store
            .delete_recording(&self.id, reason.as_str())
            .await
        {
            Ok(_) => parts.metrics.deleted(reason),
            Err(error) => {
                warn!(recording = %self.id, %error, "cannot delete the revoked recording's key")
            }
        }
        if let Err(error) = parts.storage.delete(&self.id, &self.object_path).await {
            warn!(recording = %self.id, %error, "cannot remove the revoked recording's file");
        }
    }
}

async fn create_spool_file(path: &std::path::Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
}
