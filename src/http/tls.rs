//! HTTPS and WSS on the node's own listener: rustls (TLS 1.2 and 1.3, ALPN
//! `h2` and `http/1.1`) with a certificate read from PEM files and swapped
//! in place when they change.
//!
//! Invariants:
//! - A handshake takes the certificate current at that moment; connections
//!   already up keep theirs, so a reload drops none.
//! - A new pair of files is served only once the chain parses, the key
//!   parses and the key belongs to the leaf certificate; until then (a bad
//!   file, or a cert written before its key) the old certificate stays and
//!   the reason is logged once per change of the files.
//! - Handshakes run beside the accept loop, each bounded in time and in
//!   number, so a client that never finishes its handshake holds up no one.
//! - Nothing about a client (address, SNI) is logged.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for a change.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// A client gets this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past this, accepting waits.
const MAX_HANDSHAKES: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {path}: {reason}")]
    File {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("http.tls_key_file does not belong to the certificate in http.tls_cert_file: {0}")]
    Mismatch(String),
}

/// The certificate and key files `[http]` names.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    /// Reads, parses and pairs the chain and the key.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let chain = read_chain(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| file_error("http.tls_key_file", &self.key, e))?;
        let provider = provider();
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Mismatch(e.to_string()))
    }

    /// What changes when either file is replaced or rewritten.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        Some([stamp(&self.cert)?, stamp(&self.key)?])
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error("http.tls_cert_file", path, e))?;
    if chain.is_empty() {
        let reason = "no CERTIFICATE in the file".to_owned();
        return Err(TlsError::File {
            key: "http.tls_cert_file",
            path: path.display().to_string(),
            reason,
        });
    }
    Ok(chain)
}

fn file_error(key: &'static str, path: &Path, error: rustls_pki_types::pem::Error) -> TlsError {
    let reason = match error {
        rustls_pki_types::pem::Error::Io(e) => super::io_reason::describe_io(&e),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".to_owned(),
        other => other.to_string(),
    };
    TlsError::File {
        key,
        path: path.display().to_string(),
        reason,
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate every new handshake gets, reloaded from its files.
#[derive(Debug)]
pub struct ReloadingCertificate {
    files: CertificateFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp at the last load attempt, good or bad.
    seen: Mutex<Option<[(SystemTime, u64); 2]>>,
}

impl ReloadingCertificate {
    /// Loads the files once; a node does not start on a bad certificate.
    pub fn load(files: CertificateFiles) -> Result<Arc<Self>, TlsError> {
        let first = files.load()?;
        Self::load_or(files, || Ok(first))
    }

    /// Loads the files, or serves what `fallback` makes while they do not
    /// load (until a later reload succeeds).
    pub fn load_or<E>(
        files: CertificateFiles,
        fallback: impl FnOnce() -> Result<CertifiedKey, E>,
    ) -> Result<Arc<Self>, E> {
        let seen = files.stamp();
        let current = match files.load() {
            Ok(loaded) => loaded,
            Err(_) => fallback()?,
        };
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(current)),
            seen: Mutex::new(seen),
        }))
    }

    /// Loads the files again if they changed since the last attempt
    /// (`force`: in any case); returns whether a new certificate is served.
    pub fn reload(&self, force: bool) -> bool {
        let stamp = self.files.stamp();
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !force && *seen == stamp {
                return false;
            }
            *seen = stamp;
        }
        match self.files.load() {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                tracing::info!("http: TLS certificate reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "http: new TLS certificate refused, still serving the old one");
                false
            }
        }
    }

    /// Reloads on every change of the files and on SIGHUP, until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|e| tracing::warn!(error = %e, "http: no SIGHUP handler"))
            .ok();
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let force = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => false,
                _ = hangup_received => true,
            };
            self.reload(force);
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// TLS 1.2 and 1.3 with `certificate`, offering HTTP/2 and HTTP/1.1.
pub fn server_config(certificate: Arc<ReloadingCertificate>) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let mut config = builder
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A listener that hands out connections whose TLS handshake is done.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _accepting: tokio_util::sync::DropGuard,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(64);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            ready_tx,
            stop.clone(),
        ));
        Ok(Self {
            local_addr,
            ready,
            _accepting: stop.drop_guard(),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(error = %error, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "http: TLS handshake failed"),
                Err(_) => tracing::debug!("http: TLS handshake timed out"),
            }
        });
    }
}
