//! The recording pieces a node or a command builds from the config: the
//! key ring and the storage (a local directory, or S3 with
//! `[recording.s3]`).
//!
//! With no `[recording] keys`, a development KEK is generated once under
//! `data_dir` (mode 0600) and used with a loud warning: recordings are still
//! encrypted and can still be shredded, but the KEK sits on the same disk.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::storage::{RecordingStorage, StorageError};
use crate::config::Config;
use crate::keys::{Kek, KeyError, KeyRing, generate_kek_text};

const DEVELOPMENT_KEY_ID: &str = "development";
const DEVELOPMENT_KEY_FILE: &str = "development.kek";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("development key {path}: {error}")]
    DevelopmentKey {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// The KEKs of the config, or the development KEK when it names none.
pub fn key_ring(config: &Config) -> Result<KeyRing, SetupError> {
    let recording = &config.recording;
    if recording.keys.is_empty() {
        let path = config.node.data_dir.join(DEVELOPMENT_KEY_FILE);
        let text = development_key(&path)?;
        tracing::warn!(
            "no [recording] keys configured: recordings are encrypted under a DEVELOPMENT \
             key-encryption key kept in the data directory; configure keys for production"
        );
        let kek = Kek::from_text(DEVELOPMENT_KEY_ID, &text)?;
        return Ok(KeyRing::new(vec![kek], DEVELOPMENT_KEY_ID)?);
    }
    let keks = recording
        .keys
        .iter()
        .map(|key| {
            let text = key.text.as_ref().map(|t| t.expose()).unwrap_or_default();
            Kek::from_text(&key.id, text)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let current = recording.current_key_id().unwrap_or_default();
    Ok(KeyRing::new(keks, current)?)
}

/// Reads the development KEK, creating it on first use.
fn development_key(path: &Path) -> Result<String, SetupError> {
    let failed = |error| SetupError::DevelopmentKey {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let text = generate_kek_text();
            writeln!(file, "{}", text.as_str()).map_err(failed)?;
            Ok(text.to_string())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(failed)
        }
        Err(error) => Err(failed(error)),
    }
}

/// The recording store (S3 when configured, else the local directory)
/// and the spool the config names.
pub fn storage(config: &Config) -> Result<RecordingStorage, SetupError> {
    let data_dir = &config.node.data_dir;
    let recording = &config.recording;
    let spool = recording.spool_for(data_dir);
    let storage = match &recording.s3 {
        Some(s3) => RecordingStorage::s3(s3, &spool)?,
        None => RecordingStorage::local(&recording.directory_for(data_dir), &spool)?,
    };
    Ok(storage)
}
