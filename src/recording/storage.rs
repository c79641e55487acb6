//! Where encrypted recordings live: an `object_store` (a local directory by
//! default, or an S3-compatible server), and the local spool that holds a
//! recording's segments while it is being made and until it is stored.
//!
//! The spool decouples the call from the store: segments reach local disk
//! as they are sealed (ciphertext only), and the finished file is uploaded
//! in parts, never whole in memory. A store that is down leaves the file in
//! the spool for the uploader (see [`super::uploader`]); a node that dies
//! mid-call leaves what it sealed so far, readable up to its last whole
//! segment.
//!
//! Errors name the store's request and the object, never a credential: S3
//! requests are signed in headers, and no presigned URL is ever made.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt as _, RetryConfig, WriteMultipart};
use tokio::io::AsyncReadExt as _;

use crate::config::S3Config;

/// Upload part size: S3's minimum for every part but the last.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight at once: with [`PART_SIZE`], what an upload holds in
/// memory.
const PARTS_IN_FLIGHT: usize = 2;

/// The S3 client's own retries of one request. Kept short: an upload that
/// fails goes back to the uploader, which retries on its own, longer
/// schedule without holding anything up.
fn s3_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store's error names the server it talked to; its host is
    /// taken out.
    #[error("recording store: {}", crate::privacy::redact_endpoints(&.0.to_string()))]
    Store(#[from] object_store::Error),
    #[error("recording spool {path}: {error}")]
    Spool {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("recording store directory {path}: {error}")]
    Directory {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

impl StorageError {
    /// The object or spool file is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            StorageError::Store(object_store::Error::NotFound { .. }) => true,
            StorageError::Spool { error, .. } => error.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct RecordingStorage {
    store: Arc<dyn ObjectStore>,
    spool: PathBuf,
}

/// The store by its `Display` (kind and bucket or directory): its `Debug`
/// would show the S3 access key id.
impl std::fmt::Debug for RecordingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingStorage")
            .field("store", &format_args!("{}", self.store))
            .field("spool", &self.spool)
            .finish()
    }
}

impl RecordingStorage {
    /// Recordings under `directory`, spooled under `spool` (both created).
    pub fn local(directory: &Path, spool: &Path) -> Result<Self, StorageError> {
        create_dir(directory)?;
        let store = LocalFileSystem::new_with_prefix(directory)?.with_automatic_cleanup(true);
        Self::with_store(Arc::new(store), spool)
    }

    /// Recordings in the S3 bucket `config` names (under its prefix),
    /// spooled under `spool` (created). Makes no request yet.
    pub fn s3(config: &S3Config, spool: &Path) -> Result<Self, StorageError> {
        // reqwest is built without a TLS crypto provider of its own: it
        // takes the process default, ring, as the node's other TLS does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secret = |s: &Option<crate::privacy::Secret>| {
            s.as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default()
        };
        let builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(secret(&config.access_key_id))
            .with_secret_access_key(secret(&config.secret_access_key))
            .with_allow_http(config.allow_http)
            .with_retry(s3_retry());
        let builder = match &config.endpoint {
            Some(endpoint) => builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false),
            None => builder.with_virtual_hosted_style_request(true),
        };
        let s3 = builder.build()?;
        let store: Arc<dyn ObjectStore> = match &config.prefix {
            Some(prefix) => Arc::new(PrefixStore::new(s3, prefix.as_str())),
            None => Arc::new(s3),
        };
        Self::with_store(store, spool)
    }

    fn with_store(store: Arc<dyn ObjectStore>, spool: &Path) -> Result<Self, StorageError> {
        create_dir(spool)?;
        Ok(Self {
            store,
            spool: spool.to_path_buf(),
        })
    }

    /// The spool file of recording `id`.
    pub fn spool_path(&self, id: &str) -> PathBuf {
        self.spool.join(format!("{id}.cgrec"))
    }

    /// Uploads the spool file of `id` to `object_path` in parts, keeping
    /// the spool file (see [`RecordingStorage::remove_spooled`]). Returns
    /// the bytes stored.
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
            if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                // Best effort: a store that is down will not hear it either.
                let _ = writer.abort().await;
                return Err(error.into());
            }
            writer.write(&buffer[..read]);
            total += read as u64;
        }
        writer.finish().await?;
        Ok(total)
    }

    /// Removes the spool file of `id`; a missing one is fine.
    pub async fn remove_spooled(&self, id: &str) -> Result<(), StorageError> {
        let path = self.spool_path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StorageError::Spool { path, error }),
        }
    }

    /// The spool file of `id`: a finished recording still waiting for the
    /// store holds the same bytes there as it will in the store.
    pub async fn read_spooled(&self, id: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.spool_path(id);
        tokio::fs::read(&path)
            .await
            .map_err(|error| StorageError::Spool { path, error })
    }

    /// The stored (encrypted) bytes of `object_path`.
    pub async fn read(&self, object_path: &str) -> Result<Vec<u8>, StorageError> {
        let result = self.store.get(&ObjectPath::from(object_path)).await?;
        Ok(result.bytes().await?.to_vec())
    }

    /// A stored recording's size and its bytes as they arrive, so a reader
    /// never holds the whole blob.
    pub async fn read_stream(
        &self,
        object_path: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        use futures_util::StreamExt as _;
        let result = self.store.get(&ObjectPath::from(object_path)).await?;
        let size = result.meta.size;
        let chunks = result
            .into_stream()
            .map(|chunk| chunk.map_err(StorageError::from));
        Ok((size, chunks.boxed()))
    }

    /// Deletes a stored recording and any spool file; a missing one is fine.
    pub async fn delete(&self, id: &str, object_path: &str) -> Result<(), StorageError> {
        self.delete_stored(object_path).await?;
        self.remove_spooled(id).await
    }

    /// Deletes the stored object only; a missing one is fine.
    pub async fn delete_stored(&self, object_path: &str) -> Result<(), StorageError> {
        match self.store.delete(&ObjectPath::from(object_path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

fn create_dir(path: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(path).map_err(|error| StorageError::Directory {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::Secret;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// An S3 store on a loopback port nobody listens on: every request
    /// fails, and the failure must not carry the credentials.
    #[tokio::test]
    async fn a_failed_s3_upload_names_neither_key() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = S3Config {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            bucket: "recordings".into(),
            region: "us-east-1".into(),
            prefix: Some("node-a".into()),
            allow_http: true,
            access_key_id_env: None,
            access_key_id_file: None,
            secret_access_key_env: None,
            secret_access_key_file: None,
            access_key_id: Some(Secret::new("AKIDEXAMPLE")),
            secret_access_key: Some(Secret::new(SECRET)),
        };
        let dir = tempfile::tempdir().unwrap();
        let storage = RecordingStorage::s3(&config, dir.path()).unwrap();
        std::fs::write(storage.spool_path("r1"), b"ciphertext").unwrap();
        let error = storage
            .upload_spooled("r1", "demo/r1.cgrec")
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?} {storage:?}");
        for leak in [SECRET, "AKIDEXAMPLE", "X-Amz-Signature", "Signature="] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
        assert!(storage.spool_path("r1").exists(), "the spool file stays");
    }
}
