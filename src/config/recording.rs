//! The `[recording]` section: where encrypted recordings are kept, the
//! key-encryption keys (KEKs) that wrap their data keys, and how far the
//! recorder may fall behind the relay.
//!
//! KEKs come only from the environment or files, like every secret: the
//! config names them. Each is checked at load (base64 of 32 bytes), so a
//! node never starts with a key it cannot use. `[recording.s3]` (see
//! [`super::s3`]) puts recordings in an S3-compatible store instead of the
//! local directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::at::At;
use super::s3::{S3Config, check_s3, s3_env_names};
use super::secret_source::{password_from_env, password_from_file};
use crate::keys::Kek;
use crate::privacy::Secret;

/// One KEK: its id (stored with every recording it wraps) and where its
/// text comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KekConfig {
    pub id: String,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Resolved at load time from `env` or `file`.
    #[serde(skip)]
    pub text: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// The local directory recordings are stored in (encrypted);
    /// `<data_dir>/recordings` when unset. Not used with `s3`.
    pub directory: Option<PathBuf>,
    /// An S3-compatible store instead of the local directory. Skipped when
    /// unset so that it is no `CALLGATE_RECORDING_S3` override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Encrypted segments of recordings in progress wait here until the
    /// recording is stored; `<data_dir>/spool` when unset.
    pub spool_directory: Option<PathBuf>,
    /// The KEKs; with none, the node generates a development KEK under
    /// `data_dir` and says so loudly.
    pub keys: Vec<KekConfig>,
    /// The KEK new recordings use; the last of `keys` when unset.
    pub current_key: Option<String>,
    /// Frames (20 ms, one channel each) the recorder may lag behind the
    /// relay; beyond that frames are dropped, counted, and the recording is
    /// marked incomplete: the call never waits for the recorder.
    pub queue_frames: u32,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            directory: None,
            s3: None,
            spool_directory: None,
            keys: Vec::new(),
            current_key: None,
            queue_frames: 500,
        }
    }
}

impl RecordingConfig {
    pub fn directory_for(&self, data_dir: &Path) -> PathBuf {
        self.directory
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }

    pub fn spool_for(&self, data_dir: &Path) -> PathBuf {
        self.spool_directory
            .clone()
            .unwrap_or_else(|| data_dir.join("spool"))
    }

    /// The key id new recordings use, when keys are configured.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current_key
            .as_deref()
            .or_else(|| self.keys.last().map(|k| k.id.as_str()))
    }
}

/// The variables that hold KEKs and S3 credentials: secrets, not settings.
pub(super) fn secret_env_names(table: &toml::Table) -> BTreeSet<String> {
    let keys = table
        .get("recording")
        .and_then(|r| r.get("keys"))
        .and_then(toml::Value::as_array);
    let mut names: BTreeSet<String> = keys
        .into_iter()
        .flatten()
        .filter_map(|key| key.get("env")?.as_str())
        .map(str::to_owned)
        .collect();
    names.extend(s3_env_names(table));
    names
}

pub(super) fn check_recording(
    recording: &mut RecordingConfig,
    env: &BTreeMap<String, String>,
    at: &mut At,
) {
    at.range("queue_frames", recording.queue_frames, 50..=50_000);
    let mut seen = BTreeSet::new();
    for (i, key) in recording.keys.iter_mut().enumerate() {
        let name = format!("keys[{i}]");
        if !seen.insert(key.id.clone()) {
            at.bad(&name, format!("key id {:?} is listed twice", key.id));
        }
        key.text = load_kek(key, &name, env, at);
    }
    if let Some(current) = &recording.current_key {
        if !recording.keys.iter().any(|k| &k.id == current) {
            at.bad("current_key", "must be the id of one of keys");
        }
    }
    if let Some(s3) = &mut recording.s3 {
        if recording.directory.is_some() {
            at.bad(
                "directory",
                "is the local store, unused with [recording.s3]; set one of them",
            );
        }
        let mut at = at.nested("s3");
        check_s3(s3, env, &mut at);
    }
}

fn load_kek(
    key: &KekConfig,
    name: &str,
    env: &BTreeMap<String, String>,
    at: &mut At,
) -> Option<Secret> {
    let owner = format!("key {}", key.id);
    let loaded = match (&key.env, &key.file) {
        (Some(var), None) => password_from_env(&owner, var, env),
        (None, Some(path)) => password_from_file(&owner, path),
        _ => {
            at.bad(name, "set env or file (one of them) for the key text");
            return None;
        }
    };
    let text = loaded.map_err(|m| at.bad(name, m)).ok()?;
    match Kek::from_text(&key.id, text.expose()) {
        Ok(_) => Some(text),
        Err(error) => {
            at.bad(name, error.to_string());
            None
        }
    }
}
