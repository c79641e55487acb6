//! `GET /metrics`: the node's Prometheus metrics in the text format.
//!
//! Rendering gathers a fixed, small set of series (no per-call labels), so
//! it runs inline in the handler. The route carries no personal data; who
//! may reach it is decided where the router is served.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::{Metrics, TEXT_CONTENT_TYPE};

/// The `/metrics` route, with its state applied; merge it into the node's router.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(metrics)
}

async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_the_text_format() {
        let metrics = Arc::new(Metrics::new().unwrap());
        metrics.ice_failures.inc();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, metrics_router(metrics)).into_future());
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        server.abort();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("\r\ncontent-type: text/plain; version=0.0.4\r\n"),
            "{head}"
        );
        assert!(body.contains("\ncallgate_ice_failures_total 1\n"), "{body}");
        // At least the server's own task was alive while it rendered.
        let tasks: u64 = body
            .lines()
            .find_map(|line| line.strip_prefix("callgate_runtime_tasks_alive "))
            .and_then(|value| value.parse().ok())
            .expect("the task gauge");
        assert!(tasks >= 1, "{body}");
    }
}
