//! The delivery worker: claims due deliveries, POSTs them, and records
//! the outcome, until the node stops.
//!
//! Each claim holds a delivery for [`LEASE`]; a send interrupted by the
//! node stopping simply runs out its lease and is sent again later (at
//! least once: receivers deduplicate by `Callgate-Delivery`). Sends run a
//! few at a time, so one dead endpoint does not hold up other tenants'.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::queue::Webhooks;
use super::sign::{Backoff, signature};
use super::target::{self, CheckedResolver};
use crate::keys::{KeyRing, SEALED_PREFIX};
use crate::store::{DueDelivery, now_ms};

/// How long one attempt may take, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed delivery is not claimed again.
const LEASE: Duration = Duration::from_secs(60);
/// Deliveries claimed per round.
const BATCH: u32 = 32;
/// Sends in flight at once.
const PARALLEL: usize = 8;
/// The longest sleep between rounds, so events queued by another node
/// sharing the database are seen.
const MAX_IDLE: Duration = Duration::from_secs(2);

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// What the worker needs besides the queue.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub backoff: Backoff,
    /// `callgate_webhook_deliveries_total{outcome}`.
    pub deliveries: IntCounterVec,
    /// `webhooks.allow_private_targets`: send to private addresses too.
    pub allow_private_targets: bool,
    /// Opens the endpoints' sealed signing secrets.
    pub keys: Arc<KeyRing>,
}

/// Runs the worker until `stop`. Queued deliveries stay in the database.
pub async fn run(webhooks: Webhooks, settings: WorkerSettings, stop: CancellationToken) {
    let client = match https_client(settings.allow_private_targets) {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "cannot start the webhook client; webhooks stay queued");
            return;
        }
    };
    while !stop.is_cancelled() {
        fail::fail_point!("webhook-worker");
        let now = now_ms();
        let claimed = webhooks
            .store
            .claim_webhooks(now, now.saturating_add(millis(LEASE)), BATCH)
            .await;
        let full = match claimed {
            Ok(due) => {
                let full = due.len() == BATCH as usize;
                send_all(&webhooks, &client, &settings, due, &stop).await;
                full
            }
            Err(error) => {
                warn!(%error, "cannot read the webhook queue");
                false
            }
        };
        if full {
            continue;
        }
        let idle = idle_time(&webhooks).await;
        tokio::select! {
            () = stop.cancelled() => break,
            () = webhooks.wake.notified() => {}
            () = tokio::time::sleep(idle) => {}
        }
    }
}

/// Until the next delivery is due, at most [`MAX_IDLE`].
async fn idle_time(webhooks: &Webhooks) -> Duration {
    match webhooks.store.next_webhook_due().await {
        Ok(Some(due)) => {
            let wait = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
            Duration::from_millis(wait).min(MAX_IDLE)
        }
        _ => MAX_IDLE,
    }
}

async fn send_all(
    webhooks: &Webhooks,
    client: &HttpsClient,
    settings: &WorkerSettings,
    due: Vec<DueDelivery>,
    stop: &CancellationToken,
) {
    let sends = futures_util::stream::iter(due)
        .map(|delivery| deliver(webhooks, client, settings, delivery))
        .buffer_unordered(PARALLEL)
        .collect::<()>();
    tokio::select! {
        () = stop.cancelled() => {}
        () = sends => {}
    }
}

async fn deliver(
    webhooks: &Webhooks,
    client: &HttpsClient,
    settings: &WorkerSettings,
    delivery: DueDelivery,
) {
    let attempts = delivery.attempts.saturating_add(1);
    let error = match signing_secret(&settings.keys, &delivery) {
        Ok(secret) => {
            let allow_private = settings.allow_private_targets;
            let sending = send(client, &delivery, &secret, allow_private);
            match tokio::time::timeout(SEND_TIMEOUT, sending).await {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error),
                Err(_) => Some(DeliveryError::TimedOut),
            }
        }
        Err(error) => Some(error),
    };
    let store = &webhooks.store;
    let (label, written) = match error {
        None => (
            "delivered",
            store.webhook_delivered(&delivery.id, attempts).await,
        ),
        Some(error) => {
            let tries = u32::try_from(attempts).unwrap_or(u32::MAX);
            let retry_at = settings
                .backoff
                .poll_retry_at(tries, delivery.created_at, now_ms());
            debug!(delivery = %delivery.id, attempts, %error, "webhook attempt failed");
            let label = if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            };
            let written = store
                .webhook_failed(&delivery.id, attempts, &error.to_string(), retry_at)
                .await;
            (label, written)
        }
    };
    settings.deliveries.with_label_values(&[label]).inc();
    if let Err(error) = written {
        warn!(delivery = %delivery.id, %error, "cannot record a webhook attempt");
    }
}

/// Why one attempt failed, as kept with the delivery: a status or a kind
/// of failure, never the url, the host or the secret.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("cannot open the signing secret: {0}")]
    Secret(#[from] crate::keys::KeyError),
    #[error("bad url")]
    BadUrl,
    #[error("bad request")]
    BadRequest,
    #[error("{}", target::REFUSED)]
    Refused,
    #[error("cannot connect")]
    CannotConnect,
    #[error("connection failed")]
    ConnectionFailed,
    #[error("timed out after {}s", SEND_TIMEOUT.as_secs())]
    TimedOut,
    #[error("status {0}")]
    Status(u16),
}

/// The endpoint's secret, opened; one from before secrets were sealed is
/// used as stored (the node seals those when it starts).
fn signing_secret(
    keys: &KeyRing,
    delivery: &DueDelivery,
) -> Result<Zeroizing<String>, DeliveryError> {
    if !delivery.secret.starts_with(SEALED_PREFIX) {
        return Ok(Zeroizing::new(delivery.secret.clone()));
    }
    Ok(keys.open_secret(&delivery.secret, &delivery.tenant_id)?)
}

/// One POST; what went wrong names a status or a kind of failure, never
/// the url or the secret.
async fn send(
    client: &HttpsClient,
    delivery: &DueDelivery,
    secret: &str,
    allow_private: bool,
) -> Result<(), DeliveryError> {
    // A literal address never reaches the resolver, so it is checked here.
    let uri: axum::http::Uri = delivery.url.parse().map_err(|_| DeliveryError::BadUrl)?;
    let literal = uri.host().and_then(target::literal_ip);
    if literal.is_some_and(|ip| !allow_private && !target::is_public(ip)) {
        return Err(DeliveryError::Refused);
    }
    let timestamp = unix_seconds();
    let body = Bytes::from(delivery.body.clone());
    let request = axum::http::Request::post(uri)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("callgate/", env!("CARGO_PKG_VERSION")),
        )
        .header("callgate-event", delivery.event.as_str())
        .header("callgate-delivery", delivery.id.as_str())
        .header("callgate-timestamp", timestamp.to_string())
        .header("callgate-signature", signature(secret, timestamp, &body))
        .body(Full::new(body))
        .map_err(|_| DeliveryError::BadRequest)?;
    let response = client
        .request(request)
        .await
        .map_err(|error| transport_error(&error))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}

/// The kind of a transport failure, without its text (which may echo the
/// host or url).
fn transport_error(error: &hyper_util::client::legacy::Error) -> DeliveryError {
    if refused_by_resolver(error) {
        DeliveryError::Refused
    } else if error.is_connect() {
        DeliveryError::CannotConnect
    } else {
        DeliveryError::ConnectionFailed
    }
}

/// Whether [`CheckedResolver`] refused the host somewhere in `error`'s chain.
fn refused_by_resolver(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let refused = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
        if refused {
            return true;
        }
        cause = error.source();
    }
    false
}

/// An http and https client that connects only where [`CheckedResolver`]
/// allows; with no system CA certificates (a bare container) https
/// endpoints fail per delivery, loopback http still works.
fn https_client(allow_private: bool) -> Result<HttpsClient, rustls::Error> {
    let provider = || rustls::crypto::ring::default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(provider()) {
        Ok(builder) => builder,
        Err(error) => {
            warn!(%error, "no system CA certificates: https webhooks will fail");
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let mut http = HttpConnector::new_with_resolver(CheckedResolver { allow_private });
    http.enforce_http(false);
    http.set_connect_timeout(Some(SEND_TIMEOUT));
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
