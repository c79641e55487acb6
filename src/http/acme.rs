//! Certificates from an ACME CA (RFC 8555), issued and renewed by the node
//! itself: `[http.acme]`.
//!
//! The certificate and its key live as PEM files in the cache directory,
//! beside the ACME account's credentials; the TLS listener serves them
//! through the same [`ReloadingCertificate`] that serves operator-provided
//! files, so a renewal reaches the next handshake and drops no connection.
//! Until the first certificate is issued the listener serves a self-signed
//! stand-in for the configured names.
//!
//! Ownership is proven with http-01 (RFC 8555 §8.3): the key
//! authorizations wait in [`Http01Challenges`], which the plain-HTTP
//! listener (`redirect_listen`, port 80) answers at
//! `/.well-known/acme-challenge/{token}`.
//!
//! Invariants:
//! - A certificate is (re)issued when none is cached, when it does not
//!   cover exactly the configured names, or when it has less than
//!   [`RENEW_BEFORE`] left; otherwise the task sleeps.
//! - A failed attempt keeps whatever is being served and retries with a
//!   backoff from [`RETRY_FIRST`] up to [`RETRY_MAX`].
//! - The account key and the certificate's key are written owner-only.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use super::tls::{CertificateFiles, ReloadingCertificate};
use crate::config::AcmeConfig;

/// Renew once the certificate has less than this left (a third of a
/// 90-day certificate, as the CAs advise).
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How often a valid certificate is looked at again.
const CHECK_EVERY: Duration = Duration::from_secs(12 * 60 * 60);
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(60 * 60);

const ACCOUNT_FILE: &str = "account.json";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("acme: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("acme: {0}")]
    Order(String),
    #[error("acme cache {}: {error}", .path.display())]
    Cache {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("acme: directory_ca_file: {0}")]
    DirectoryCa(String),
}

/// http-01 key authorizations by token, shared with the plain listener.
#[derive(Debug, Clone, Default)]
pub struct Http01Challenges(Arc<Mutex<HashMap<String, String>>>);

impl Http01Challenges {
    /// The key authorization for `token`, while its challenge is open.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `[http.acme]` with its cache directory resolved.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub config: AcmeConfig,
    pub cache_dir: PathBuf,
}

impl AcmeSettings {
    /// The certificate files the TLS listener serves.
    pub fn files(&self) -> CertificateFiles {
        CertificateFiles {
            cert: self.cache_dir.join(CERT_FILE),
            key: self.cache_dir.join(KEY_FILE),
        }
    }

    /// The cached certificate if it loads, else a self-signed stand-in for
    /// the configured names (browsers refuse it; it only bridges the time
    /// until the first issuance).
    pub fn certificate(&self) -> Result<Arc<ReloadingCertificate>, AcmeError> {
        let stand_in = || {
            let names = self.config.domains.clone();
            let made = rcgen::generate_simple_self_signed(names)
                .map_err(|e| AcmeError::Order(format!("stand-in certificate: {e}")))?;
            let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
                .map_err(|e| AcmeError::Order(format!("stand-in key: {e}")))?;
            let provider = rustls::crypto::ring::default_provider();
            CertifiedKey::from_der(vec![made.cert.der().clone()], key, &provider)
                .map_err(|e| AcmeError::Order(format!("stand-in certificate: {e}")))
        };
        let files = self.files();
        if files.load().is_err() {
            tracing::warn!(
                "acme: no certificate yet; serving a self-signed stand-in until one is issued"
            );
        }
        ReloadingCertificate::load_or(files, stand_in)
    }
}

/// Keeps the certificate issued and fresh until `stop`.
pub async fn run(
    settings: AcmeSettings,
    certificate: Arc<ReloadingCertificate>,
    challenges: Http01Challenges,
    stop: CancellationToken,
) {
    let mut retry = RETRY_FIRST;
    loop {
        let wait = match renewal_due(&settings) {
            Some(wait) if !wait.is_zero() => wait.min(CHECK_EVERY),
            _ => match issue(&settings, &challenges).await {
                Ok(()) => {
                    certificate.reload(true);
                    tracing::info!("acme: certificate issued");
                    retry = RETRY_FIRST;
                    CHECK_EVERY
                }
                Err(error) => {
                    tracing::warn!(%error, "acme: issuance failed; retrying in {}s", retry.as_secs());
                    let wait = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            },
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long until the cached certificate must be renewed; `None` when there
/// is none, it does not cover exactly the configured names, or it does not
/// parse.
fn renewal_due(settings: &AcmeSettings) -> Option<Duration> {
    let pem = std::fs::read(settings.cache_dir.join(CERT_FILE)).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let names: BTreeSet<String> = parsed
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let wanted: BTreeSet<String> = settings
        .config
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    if names != wanted {
        return None;
    }
    let not_after = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    let renew_at = SystemTime::UNIX_EPOCH + Duration::from_secs(not_after) - RENEW_BEFORE;
    Some(
        renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}

/// One whole issuance: account, order, challenges, finalisation, files.
async fn issue(settings: &AcmeSettings, challenges: &Http01Challenges) -> Result<(), AcmeError> {
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = settings
        .config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Err(error) if error.to_string().contains("accountDoesNotExist") => {
            // The CA forgot the account (a test CA restarted): start afresh.
            let _ = std::fs::remove_file(settings.cache_dir.join(ACCOUNT_FILE));
            let account = self::account(settings).await?;
            account.new_order(&NewOrder::new(&identifiers)).await?
        }
        other => other?,
    };
    let mut tokens = Vec::new();
    let proven = prove(&mut order, challenges, &mut tokens).await;
    let result = match proven {
        Ok(()) => finish(&mut order, settings).await,
        Err(error) => Err(error),
    };
    let mut open = challenges.lock();
    for token in tokens {
        open.remove(&token);
    }
    result
}

/// Answers every pending authorization's http-01 challenge.
async fn prove(
    order: &mut instant_acme::Order,
    challenges: &Http01Challenges,
    tokens: &mut Vec<String>,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Order(format!("authorization {other:?}"))),
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Order("the CA offers no http-01 challenge".to_owned()))?;
        let answer = challenge.key_authorization().as_str().to_owned();
        challenges.lock().insert(challenge.token.clone(), answer);
        tokens.push(challenge.token.clone());
        challenge.set_ready().await?;
    }
    Ok(())
}

/// Waits for the order, finalises it and stores the certificate and key.
async fn finish(order: &mut instant_acme::Order, settings: &AcmeSettings) -> Result<(), AcmeError> {
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(120));
    let status = order.poll_ready(&policy).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!("order {status:?}")));
    }
    let key = order.finalize().await?;
    let chain = order.poll_certificate(&policy).await?;
    write_private(&settings.cache_dir.join(KEY_FILE), key.as_bytes())?;
    write_private(&settings.cache_dir.join(CERT_FILE), chain.as_bytes())
}

/// The cached account, or a new one registered and cached.
async fn account(settings: &AcmeSettings) -> Result<Account, AcmeError> {
    let path = settings.cache_dir.join(ACCOUNT_FILE);
    if let Ok(saved) = std::fs::read(&path) {
        if let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&saved) {
            return Ok(builder(settings)?.from_credentials(credentials).await?);
        }
    }
    let contact = format!("mailto:{}", settings.config.contact);
    let new = NewAccount {
        contact: &[contact.as_str()],
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let directory = settings.config.directory_url.clone();
    let (account, credentials) = builder(settings)?.create(&new, directory, None).await?;
    let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Order(e.to_string()))?;
    write_private(&path, &json)?;
    Ok(account)
}

/// An ACME client on ring that trusts `directory_ca_file`, or the system's
/// roots.
fn builder(settings: &AcmeSettings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new();
    let connector = match &settings.config.directory_ca_file {
        Some(file) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .map_err(|e| AcmeError::DirectoryCa(e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| AcmeError::DirectoryCa(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| AcmeError::DirectoryCa(e.to_string()))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| AcmeError::DirectoryCa(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            connector.with_tls_config(tls)
        }
        None => connector
            .with_provider_and_native_roots(provider)
            .map_err(|e| AcmeError::DirectoryCa(format!("system roots: {e}")))?,
    };
    let https = connector.https_only().enable_http1().build();
    let client: hyper_util::client::legacy::Client<_, BodyWrapper<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    Ok(Account::builder_with_http(Box::new(client)))
}

/// Writes `bytes` to `path` readable by the owner only, through a
/// temporary file renamed into place so a reader never sees half a file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let cache_error = |error| AcmeError::Cache {
        path: path.to_owned(),
        error,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(cache_error)?;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(cache_error)?;
    file.write_all(bytes).map_err(cache_error)?;
    file.sync_all().map_err(cache_error)?;
    std::fs::rename(&partial, path).map_err(cache_error)
}
