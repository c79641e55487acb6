//! Where encrypted recordings live: an `object_store` (a local directory by
//! default), and the local spool that holds a recording's segments while
//! it is being made.
//!
//! The spool decouples the call from the store: segments reach local disk
//! as they are sealed (ciphertext only), and the finished file is uploaded
//! in parts, never whole in memory. A store that is down leaves the file in
//! the spool for a later upload; a node that dies mid-call leaves what it
//! sealed so far, readable up to its last whole segment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use tokio::io::AsyncReadExt as _;

/// Upload part size: S3's minimum for every part but the last.
const PART_SIZE: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("recording store: {0}")]
    Store(#[from] object_store::Error),
    #[error("recording spool {path}: {error}")]
    Spool {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// See the module documentation. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RecordingStorage {
    store: Arc<dyn ObjectStore>,
    spool: PathBuf,
}

impl RecordingStorage {
    /// Recordings under `directory`, spooled under `spool` (both created).
    pub fn local(directory: &Path, spool: &Path) -> Result<Self, StorageError> {
        for dir in [directory, spool] {
            std::fs::create_dir_all(dir).map_err(|error| StorageError::Spool {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let store = LocalFileSystem::new_with_prefix(directory)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            spool: spool.to_path_buf(),
        })
    }

    /// The spool file of recording `id`.
    pub fn spool_path(&self, id: &str) -> PathBuf {
        self.spool.join(format!("{id}.cgrec"))
    }

    /// Uploads the spool file of `id` to `object_path` in parts, then
    /// removes it from the spool. Returns the bytes stored.
    pub async fn upload_spooled(&self, id: &str, object_path: &str) -> Result<u64, StorageError> {
        let path = self.spool_path(id);
        let spool_error = |error| StorageError::Spool {
            path: path.clone(),
            error,
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(spool_error)?;
        let upload = self
            .store
            .put_multipart(&ObjectPath::from(object_path))
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => {
                    let _ = writer.abort().await;
                    return Err(spool_error(error));
                }
            };
            writer.wait_for_capacity(2).await?;
            writer.write(&buffer[..read]);
            total += read as u64;
        }
        writer.finish().await?;
        tokio::fs::remove_file(&path).await.map_err(spool_error)?;
        Ok(total)
    }

    /// The stored (encrypted) bytes of `object_path`.
    pub async fn read(&self, object_path: &str) -> Result<Vec<u8>, StorageError> {
        let result = self.store.get(&ObjectPath::from(object_path)).await?;
        Ok(result.bytes().await?.to_vec())
    }

    /// Deletes a stored recording and any spool file; a missing one is fine.
    pub async fn delete(&self, id: &str, object_path: &str) -> Result<(), StorageError> {
        match self.store.delete(&ObjectPath::from(object_path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let path = self.spool_path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StorageError::Spool { path, error }),
        }
    }
}
