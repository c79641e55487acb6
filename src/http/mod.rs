//! The node's HTTP surface: one axum router, served until shutdown.
//!
//! Owns binding the HTTP listener, the router that every HTTP feature merges
//! into (health today; signalling, admin and metrics add their own routes),
//! the JSON 404 for unknown paths, and graceful shutdown: when the token is
//! cancelled the server stops accepting, lets in-flight requests finish and
//! returns (the node bounds how long that may take). [`serve`] bounds the
//! connections: how many, from one address, how slow and how idle.
//!
//! [`guard`] holds the signalling guards (rate limits, tenant concurrency,
//! Origin check), which [`admission`] applies, cluster-wide in a cluster; [`metrics_router`] serves `GET /metrics`; [`dashboard`]
//! serves the customer dashboard's files; [`tls`] puts HTTPS on the
//! listener, and then every answer carries HSTS.

pub mod acme;
pub mod admin;
pub mod admission;
mod client_addr;
mod cors;
pub mod dashboard;
mod forward;
pub mod guard;
pub mod handoff;
mod health;
mod io_reason;
pub mod lookups;
mod metrics;
pub mod serve;
pub mod signalling;
pub mod tls;

use std::io;
use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::health::{HealthState, Readiness};
pub use self::metrics::metrics_router;
pub use self::serve::ServeLimits;
use crate::metrics::HttpMetrics;
pub use io_reason::describe_io;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    // The reason is part of the message, so it is not also exposed as a
    // `source` (a report walking the chain would print it twice).
    #[error("http.listen {addr}: {}", describe_io(.error))]
    Bind { addr: SocketAddr, error: io::Error },
    #[error("http server stopped: {}", describe_io(.0))]
    Serve(io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Acme(#[from] acme::AcmeError),
}

/// `Strict-Transport-Security` on every answer over TLS: a year, the value
/// browsers' preload lists ask for; no `includeSubDomains`, since a node
/// cannot speak for its domain's other hosts.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Binds the HTTP listener; a failure names the setting and the reason.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| HttpError::Bind { addr, error })
}

/// The node's routes, with a JSON 404 for everything else.
pub fn router(health: HealthState) -> Router {
    Router::new()
        .merge(health::routes(health))
        .fallback(not_found)
}

/// Serves `router` on `listener` (over TLS with `tls`) within `limits`
/// until `shutdown` is cancelled and the in-flight requests have finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    metrics: HttpMetrics,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    match tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            serve::serve_bounded(listener, router, limits, metrics, shutdown).await;
        }
        Some(config) => {
            let router = router.layer(axum::middleware::map_response(with_hsts));
            // The handshake task already set TCP_NODELAY.
            let listener = tls::TlsListener::new(listener, config).map_err(HttpError::Serve)?;
            serve::serve_bounded(listener, router, limits, metrics, shutdown).await;
        }
    }
    Ok(())
}

async fn with_hsts(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    response
}

/// The plain-HTTP router of `[http] redirect_listen`: every request is sent
/// on to the same path and query under `https_base` (the node's HTTPS base
/// URL) with 308, which keeps the method and the body; except ACME http-01
/// challenges, answered from `challenges`.
pub fn redirect_router(https_base: String, challenges: acme::Http01Challenges) -> Router {
    let challenge = move |axum::extract::Path(token): axum::extract::Path<String>| {
        let answer = challenges.answer(&token);
        async move {
            match answer {
                Some(answer) => answer.into_response(),
                None => (StatusCode::NOT_FOUND, "no such challenge").into_response(),
            }
        }
    };
    Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(challenge),
        )
        .fallback(move |uri: Uri| {
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            let target = format!("{https_base}{path}");
            async move { Redirect::permanent(&target).into_response() }
        })
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    let body = ErrorBody { error: "not found" };
    (StatusCode::NOT_FOUND, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeId;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        (status, body.unwrap_or_default())
    }

    struct Running {
        addr: SocketAddr,
        readiness: Readiness,
        shutdown: CancellationToken,
        server: tokio::task::JoinHandle<Result<(), HttpError>>,
    }

    async fn start() -> Running {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let readiness = Readiness::new();
        let health = HealthState::new(NodeId::new("n1"), readiness.clone(), None);
        let shutdown = CancellationToken::new();
        let metrics = crate::metrics::Metrics::new().unwrap().http.clone();
        let limits = ServeLimits::relaxed();
        let server = tokio::spawn(serve(
            listener,
            router(health),
            None,
            limits,
            metrics,
            shutdown.clone(),
        ));
        Running {
            addr,
            readiness,
            shutdown,
            server,
        }
    }

    #[tokio::test]
    async fn healthz_reports_node_and_version() {
        let node = start().await;
        let (status, body) = get(node.addr, "/healthz").await;
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let expected =
            serde_json::json!({"status": "ok", "node": "n1", "version": env!("CARGO_PKG_VERSION")});
        assert_eq!(json, expected);
        node.shutdown.cancel();
    }

    #[tokio::test]
    async fn readyz_follows_readiness() {
        let node = start().await;
        assert_eq!(
            get(node.addr, "/readyz").await,
            (503, r#"{"ready":false,"draining":false}"#.to_owned())
        );
        node.readiness.set_ready();
        assert_eq!(
            get(node.addr, "/readyz").await,
            (200, r#"{"ready":true,"draining":false}"#.to_owned())
        );
        node.readiness.set_draining(true);
        assert_eq!(
            get(node.addr, "/readyz").await,
            (503, r#"{"ready":false,"draining":true}"#.to_owned())
        );
        node.readiness.set_draining(false);
        assert_eq!(get(node.addr, "/readyz").await.0, 200);
        node.readiness.set_not_ready();
        assert_eq!(get(node.addr, "/readyz").await.0, 503);
        node.shutdown.cancel();
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let node = start().await;
        for path in ["/", "/nope", "/healthz/extra", "/../etc/passwd"] {
            let (status, body) = get(node.addr, path).await;
            assert_eq!(
                (status, body.as_str()),
                (404, r#"{"error":"not found"}"#),
                "{path}"
            );
        }
        node.shutdown.cancel();
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let node = start().await;
        node.shutdown.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), node.server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))));
        assert!(tokio::net::TcpStream::connect(node.addr).await.is_err());
    }

    #[tokio::test]
    async fn bind_conflict_names_the_setting_and_reason() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("http.listen {addr}: address in use")
        );
    }
}
