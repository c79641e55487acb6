//! One callgate node: starts its services, reports ready, and stops them.
//!
//! Lifecycle: [`Node::start`] creates the data directory and starts every
//! service in [`start_services`]; each one binds its sockets before it is
//! handed over, so a bind error stops the node before it ever reports ready.
//! Then [`Node::run_until`] waits for the shutdown token (or for a service
//! to stop on its own, which is a failure), clears readiness first so load
//! balancers move away, cancels the services and waits for them to drain,
//! at most [`DRAIN_TIMEOUT`]. [`Node::run_until_drained`] also takes a drain
//! token (the first SIGTERM): the node then refuses new calls and waits for
//! its calls to end, up to `node.drain_timeout_secs`, before shutting down.
//!
//! Invariants: `/readyz` is true only between "every listener is up" and
//! "shutdown began"; the node never returns while one of its tasks still runs.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod browser_side;
mod lost_calls;
mod trunk_side;

pub use browser_side::{BrowserSide, BrowserSideError};
pub use trunk_side::{TrunkSide, TrunkSideError, agent_settings};

use std::sync::Arc;

use crate::config::{Config, ConfigSource};
use crate::http::acme::{self, AcmeSettings, Http01Challenges};
use crate::http::admin::NodeControl;
use crate::http::tls::{self, CertificateFiles, ReloadingCertificate};
use crate::http::{self, HealthState, HttpError, Readiness, ServeLimits};
use crate::metrics::Metrics;

/// How long services get to finish in-flight work once shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a drain looks whether any call is left.
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// What a service returns when it fails; each service keeps its own error enum.
pub type ServiceError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    TrunkSide(#[from] TrunkSideError),
    #[error(transparent)]
    BrowserSide(#[from] BrowserSideError),
    // Causes are part of the messages rather than `source`s, so a report
    // that walks the chain does not print them twice.
    #[error("node.data_dir {}: {}", .path.display(), http::describe_io(.error))]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{name} failed: {error}")]
    Service {
        name: &'static str,
        error: ServiceError,
    },
    #[error("{name} stopped before shutdown was requested")]
    ServiceStopped { name: &'static str },
    #[error("{name} panicked")]
    ServicePanicked { name: &'static str },
    #[error("shutdown took longer than {}s; still running: {}", .timeout.as_secs(), .still_running.join(", "))]
    DrainTimeout {
        timeout: Duration,
        still_running: Vec<&'static str>,
    },
}

/// A long-running part of the node (the HTTP server, the SIP user agent, ...):
/// a future that runs until the stop token it was built with is cancelled.
pub struct Service {
    name: &'static str,
    run: Pin<Box<dyn Future<Output = Result<(), ServiceError>> + Send>>,
}

impl Service {
    pub fn new<F, E>(name: &'static str, run: F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<ServiceError>,
    {
        let run = async move { run.await.map_err(Into::into) };
        Self {
            name,
            run: Box::pin(run),
        }
    }
}

/// What [`start_services`] bound and built.
struct Started {
    http_addr: SocketAddr,
    services: Vec<Service>,
    control: NodeControl,
}

/// Binds and builds every service of the node. Each gets `stop` and must
/// return once it is cancelled.
///
/// The trunk side starts here, before HTTP, so that the HTTP routes can be
/// given handles to it: the RTP port allocator (`media`), then the SIP user agent
/// (`sip`), then, when `config.echo_trunk.enabled`, the echo trunk. Each binds
/// its sockets, then pushes a [`Service`].
async fn start_services(
    config: &Config,
    metrics: Arc<Metrics>,
    readiness: &Readiness,
    stop: &CancellationToken,
) -> Result<Started, NodeError> {
    let mut services = Vec::new();

    // Calls hang up before the SIP agent and the echo trunk stop, so their
    // BYEs still go out: the trunk side stops when the calls are done, not
    // at `stop`.
    let calls_done = CancellationToken::new();
    let trunk_side = TrunkSide::start(config).await?;

    let (tls, challenges) = tls_config(config, stop, &mut services)?;
    let listener = http::bind(config.http.listen).await?;
    let http_addr = listener.local_addr().map_err(|error| HttpError::Bind {
        addr: config.http.listen,
        error,
    })?;
    let base_url = config.http.base_url_for(http_addr);
    let browser_side =
        BrowserSide::start(config, metrics, &trunk_side, &base_url, readiness).await?;
    let limits = ServeLimits::of(&config.http);
    let http_metrics = browser_side.metrics.http.clone();
    if let Some(addr) = config.http.redirect_listen {
        let redirects = http::bind(addr).await?;
        let router = http::redirect_router(base_url.clone(), challenges);
        let (limits, metrics) = (limits.clone(), http_metrics.clone());
        let server = http::serve(redirects, router, None, limits, metrics, stop.clone());
        services.push(Service::new("http redirect", server));
    }
    if let Some(addr) = config.http.metrics_listen {
        let scrapes = http::bind(addr).await?;
        let router = http::metrics_router(browser_side.metrics.clone());
        let (limits, metrics) = (limits.clone(), http_metrics.clone());
        let server = http::serve(scrapes, router, None, limits, metrics, stop.clone());
        services.push(Service::new("http metrics", server));
    }
    let routes = browser_side.routes.clone();
    let control = browser_side.node.clone();
    let trunk_stop = calls_done.clone();
    services.push(Service::new("trunk side", async move {
        trunk_side.run(trunk_stop).await
    }));
    let calls_stop = stop.clone();
    services.push(Service::new("browser calls", async move {
        // Cancelled however this ends, a panic included.
        let _done = calls_done.drop_guard();
        browser_side.run(calls_stop).await
    }));

    let cluster = control.cluster.clone();
    let health = HealthState::new(config.node.id.clone(), readiness.clone(), cluster);
    let router = routes.merge(http::router(health));
    let server = http::serve(listener, router, tls, limits, http_metrics, stop.clone());
    services.push(Service::new("http server", server));

    Ok(Started {
        http_addr,
        services,
        control,
    })
}

/// The TLS settings of `[http]`, with the services that keep the
/// certificate current (its files watched; with ACME, issued and renewed);
/// `None` when TLS is off. Also the http-01 challenges ACME leaves for the
/// plain listener.
fn tls_config(
    config: &Config,
    stop: &CancellationToken,
    services: &mut Vec<Service>,
) -> Result<(Option<Arc<rustls::ServerConfig>>, Http01Challenges), NodeError> {
    let challenges = Http01Challenges::default();
    let certificate = match (
        &config.http.acme,
        &config.http.tls_cert_file,
        &config.http.tls_key_file,
    ) {
        (Some(acme), _, _) => {
            let settings = AcmeSettings {
                config: acme.clone(),
                cache_dir: acme
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| config.node.data_dir.join("acme")),
            };
            let certificate = settings.certificate().map_err(HttpError::Acme)?;
            let issuer = acme::run(
                settings,
                certificate.clone(),
                challenges.clone(),
                stop.clone(),
            );
            services.push(Service::new("acme", async move {
                issuer.await;
                Ok::<(), std::convert::Infallible>(())
            }));
            certificate
        }
        (None, Some(cert), Some(key)) => {
            let files = CertificateFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            ReloadingCertificate::load(files).map_err(HttpError::Tls)?
        }
        _ => return Ok((None, challenges)),
    };
    let watcher = certificate.clone().watch(stop.clone());
    services.push(Service::new("tls certificate watcher", async move {
        watcher.await;
        Ok::<(), std::convert::Infallible>(())
    }));
    Ok((Some(tls::server_config(certificate)), challenges))
}

/// A started node: every listener bound, every service running, ready.
pub struct Node {
    http_addr: SocketAddr,
    readiness: Readiness,
    control: NodeControl,
    drain_timeout: Duration,
    stop: CancellationToken,
    tasks: Supervisor,
}

impl Node {
    /// Starts every service of `config`, recording into `metrics` (the
    /// registry `/metrics` serves).
    pub async fn start(config: Config, metrics: Arc<Metrics>) -> Result<Self, NodeError> {
        if config.source == ConfigSource::EmbeddedDefault {
            tracing::warn!(
                "no config file given: running on the EMBEDDED DEVELOPMENT DEFAULT \
                 (loopback only, built-in echo trunk, demo route); \
                 pass --config FILE for a real deployment"
            );
        }
        let data_dir = config.node.data_dir.clone();
        tokio::fs::create_dir_all(&data_dir)
            .await
            .map_err(|error| NodeError::DataDir {
                path: data_dir,
                error,
            })?;
        let readiness = Readiness::new();
        let stop = CancellationToken::new();
        let started = start_services(&config, metrics, &readiness, &stop).await?;
        let mut tasks = Supervisor::default();
        for service in started.services {
            tasks.spawn(service);
        }
        readiness.set_ready();
        let url = config.http.base_url_for(started.http_addr);
        tracing::info!("callgate node {} listening on {url}", config.node.id);
        if config.route("demo").is_some() {
            tracing::info!("demo page (call the demo number from a browser): {url}/demo");
        }
        Ok(Self {
            http_addr: started.http_addr,
            readiness,
            control: started.control,
            drain_timeout: config.drain_timeout(),
            stop,
            tasks,
        })
    }

    /// The address HTTP is bound to (useful when the config asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Runs until `shutdown` is cancelled or a service stops, then drains.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), NodeError> {
        self.run_until_drained(CancellationToken::new(), shutdown)
            .await
    }

    /// As [`Self::run_until`], and once `drain` is cancelled the node
    /// drains first: new calls refused (as `POST /v1/node/drain` does),
    /// calls in progress going on until none is left or the drain timeout
    /// has passed, whichever comes first; then it shuts down. `shutdown`
    /// still stops it at once, mid-drain too.
    pub async fn run_until_drained(
        mut self,
        drain: CancellationToken,
        shutdown: CancellationToken,
    ) -> Result<(), NodeError> {
        let mut drain_ends: Option<Instant> = None;
        let early = loop {
            tokio::select! {
                () = shutdown.cancelled() => break None,
                Some(outcome) = self.tasks.next_stopped() => break Some(outcome),
                () = drain.cancelled(), if drain_ends.is_none() => {
                    self.control.set_draining(true);
                    let calls = self.control.calls.active();
                    tracing::info!(
                        calls_active = calls,
                        timeout_secs = self.drain_timeout.as_secs(),
                        "draining: new calls refused, calls in progress go on"
                    );
                    drain_ends = Some(Instant::now() + self.drain_timeout);
                }
                () = tokio::time::sleep(DRAIN_POLL), if drain_ends.is_some() => {
                    if self.control.calls.active() == 0 {
                        tracing::info!("drained: no call left");
                        break None;
                    }
                    if drain_ends.is_some_and(|ends| Instant::now() >= ends) {
                        let calls = self.control.calls.active();
                        tracing::warn!(calls_active = calls, "drain timeout: hanging up the calls left");
                        break None;
                    }
                }
            }
        };
        self.readiness.set_not_ready();
        match &early {
            None => tracing::info!("shutting down: draining"),
            Some(_) => tracing::error!("a service stopped on its own: shutting down"),
        }
        self.stop.cancel();
        let drained = self.tasks.drain(DRAIN_TIMEOUT).await;
        tracing::info!("stopped");
        match early {
            None => drained,
            // The first failure is the cause, reported over drain errors.
            Some(Err(error)) => Err(error),
            // A service that stopped cleanly may only have followed another
            // one's failure (the trunk side stops once the calls are done,
            // however the browser side ended): that failure is the cause.
            Some(Ok(name)) => Err(drained.err().unwrap_or(NodeError::ServiceStopped { name })),
        }
    }
}

/// Starts a node on `config` and runs it until it has drained after
/// `drain`, or until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    drain: CancellationToken,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    Node::start(config, metrics)
        .await?
        .run_until_drained(drain, shutdown)
        .await
}

/// The running services, by name.
#[derive(Default)]
struct Supervisor {
    set: JoinSet<Result<(), ServiceError>>,
    names: HashMap<Id, &'static str>,
}

impl Supervisor {
    fn spawn(&mut self, service: Service) {
        let handle = self.set.spawn(service.run);
        self.names.insert(handle.id(), service.name);
    }

    /// The next service to stop: `Ok(name)` if it returned cleanly.
    async fn next_stopped(&mut self) -> Option<Result<&'static str, NodeError>> {
        let joined = self.set.join_next_with_id().await?;
        Some(self.outcome(joined))
    }

    fn outcome(
        &mut self,
        joined: Result<(Id, Result<(), ServiceError>), JoinError>,
    ) -> Result<&'static str, NodeError> {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(error) => error.id(),
        };
        let name = self.names.remove(&id).unwrap_or("a service");
        match joined {
            Ok((_, Ok(()))) => Ok(name),
            Ok((_, Err(error))) => Err(NodeError::Service { name, error }),
            Err(_) => Err(NodeError::ServicePanicked { name }),
        }
    }

    /// Waits for every service to stop; the first failure is returned.
    async fn drain(mut self, timeout: Duration) -> Result<(), NodeError> {
        let mut first_error = None;
        let all_stopped = tokio::time::timeout(timeout, async {
            while let Some(outcome) = self.next_stopped().await {
                if let Err(error) = outcome {
                    tracing::error!("{error}");
                    first_error.get_or_insert(error);
                }
            }
        })
        .await;
        if all_stopped.is_err() {
            self.set.abort_all();
            let mut still_running: Vec<&'static str> = self.names.into_values().collect();
            still_running.sort_unstable();
            return Err(NodeError::DrainTimeout {
                timeout,
                still_running,
            });
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn test_metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new().unwrap())
    }

    fn config(dir: &tempfile::TempDir) -> Config {
        let data_dir = dir.path().join("data");
        // Free SIP and browser ports: 5060 may be taken on a machine
        // running other tests or a SIP peer, and 40000 lies in the kernel's
        // ephemeral range, where any socket of a test beside this one may
        // hold it. No call is placed, so the browser port's public address
        // is never reached.
        let env = [
            (
                "CALLGATE_WEBRTC_LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "CALLGATE_WEBRTC_PUBLIC_ADDRESS".to_owned(),
                "127.0.0.1:40000".to_owned(),
            ),
            ("CALLGATE_HTTP_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "CALLGATE_SIP_LISTEN_UDP".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "CALLGATE_NODE_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
        ];
        Config::load(Some(""), env).unwrap()
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_is_ready_while_running_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(config(&dir), test_metrics()).await.unwrap();
        assert!(dir.path().join("data").is_dir());
        assert!(node.readiness().is_ready());
        let addr = node.http_addr();
        let readiness = node.readiness().clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(node.run_until(shutdown.clone()));
        let response = tokio::task::spawn_blocking(move || get(addr, "/readyz"))
            .await
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), running).await;
        assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn data_dir_that_cannot_be_created_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), b"a file").unwrap();
        let error = Node::start(config(&dir), test_metrics())
            .await
            .err()
            .unwrap();
        assert!(error.to_string().starts_with("node.data_dir "), "{error}");
    }

    #[tokio::test]
    async fn http_bind_conflict_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = config(&dir);
        config.http.listen = taken.local_addr().unwrap();
        let error = Node::start(config, test_metrics()).await.err().unwrap();
        let expected = format!(
            "http.listen {}: address in use",
            taken.local_addr().unwrap()
        );
        assert_eq!(error.to_string(), expected);
    }

    fn until_stopped(
        stop: &CancellationToken,
    ) -> impl Future<Output = Result<(), ServiceError>> + use<> {
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_service_is_reported_by_name() {
        let stop = CancellationToken::new();
        let mut tasks = Supervisor::default();
        tasks.spawn(Service::new("steady", until_stopped(&stop)));
        tasks.spawn(Service::new("sip user agent", async {
            Err::<(), _>("socket closed")
        }));
        let first = tasks.next_stopped().await.unwrap();
        let error = first.err().unwrap();
        assert_eq!(error.to_string(), "sip user agent failed: socket closed");
        stop.cancel();
        assert!(tasks.drain(Duration::from_secs(5)).await.is_ok());
    }

    #[tokio::test]
    async fn a_panicking_service_is_reported_by_name() {
        let mut tasks = Supervisor::default();
        tasks.spawn(Service::new("echo trunk", async {
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<(), ServiceError>(())
        }));
        let error = tasks.next_stopped().await.unwrap().err().unwrap();
        assert_eq!(error.to_string(), "echo trunk panicked");
    }

    #[tokio::test]
    async fn a_service_that_ignores_stop_is_named_after_the_drain_timeout() {
        let mut tasks = Supervisor::default();
        tasks.spawn(Service::new(
            "stubborn",
            std::future::pending::<Result<(), ServiceError>>(),
        ));
        let error = tasks.drain(Duration::from_millis(50)).await.err().unwrap();
        assert!(
            error.to_string().ends_with("still running: stubborn"),
            "{error}"
        );
    }
}
