//! A whole node (signalling, the shared WebRTC port, the relay, the trunk
//! leg, the store) started in-process from a config text, and the plain
//! ways a test reaches it: HTTP requests, metric values, its database.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use callgate::config::Config;
use callgate::metrics::Metrics;
use callgate::node::Node;
use callgate::store::{CdrRecord, Store};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::ports::{free_browser_ports, free_udp_port};

/// A running node; [`RunningNode::stop`] drains it.
pub struct RunningNode {
    pub addr: SocketAddr,
    /// `http://host:port`, or `https://` when the node serves TLS.
    base: String,
    pub data: TempDir,
    /// The config the node runs on, for commands run against its data.
    pub config_text: String,
    /// The database the node runs on (`CALLGATE_DATABASE_URL` in the
    /// test's `env` points it at PostgreSQL).
    database_url: String,
    /// The `CALLGATE_*` overrides the node started with; commands get them.
    env: Vec<(String, String)>,
    /// What the node's first SIGTERM cancels.
    drain: CancellationToken,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningNode {
    /// A node on loopback: HTTP, SIP over UDP and the WebRTC port on free
    /// ports, trunk media ports in `media` (each test its own range), the
    /// echo trunk enabled, the per-IP rate limit raised for tests; then
    /// `extra` (trunks and routes; a `demo` route seeds the demo widget) and
    /// the `CALLGATE_*` overrides in `env`.
    pub async fn start(media: RangeInclusive<u16>, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), media, extra, env).await
    }

    /// [`RunningNode::start`] on an existing data directory (a node
    /// restarted with another config).
    pub async fn start_in(
        data: TempDir,
        media: RangeInclusive<u16>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_configured(data, media, "", extra, env).await
    }

    /// [`RunningNode::start`] with more `[http]` settings (lines of TOML).
    pub async fn start_with_http(
        media: RangeInclusive<u16>,
        http_settings: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        Self::start_configured(data, media, http_settings, extra, env).await
    }

    /// [`RunningNode::start_with_http`] on an existing data directory.
    pub async fn start_configured(
        data: TempDir,
        media: RangeInclusive<u16>,
        http_settings: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        super::logs::init();
        let http = format!("listen = \"127.0.0.1:0\"\n{http_settings}");
        let text = node_config(data.path(), &http, media, extra);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::load(Some(&text), env.clone()).expect("test config");
        let database_url = config.database.url_for(&config.node.data_dir);
        let config_text = text;
        let tls = config.http.tls();
        let node = Node::start(config, Arc::new(Metrics::new().expect("a registry")))
            .await
            .expect("node starts");
        let addr = node.http_addr();
        let base = match tls {
            true => format!("https://{addr}"),
            false => format!("http://{addr}"),
        };
        let (drain, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let (draining, stop) = (drain.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let stopped = node.run_until_drained(draining, stop).await;
            stopped.expect("node drains cleanly");
        });
        Self {
            addr,
            base,
            data,
            config_text,
            database_url,
            env,
            drain,
            shutdown,
            task,
        }
    }

    /// The node's config written to a file in its data directory.
    pub fn config_file(&self) -> std::path::PathBuf {
        let path = self.data.path().join("callgate.toml");
        std::fs::write(&path, &self.config_text).expect("write the test config");
        path
    }

    /// Runs `callgate ARGS --config <this node's config>`; returns the exit
    /// code, stdout and stderr.
    pub fn command(&self, args: &[&str]) -> (i32, String, String) {
        let config = self.config_file();
        let config = config.to_str().expect("a UTF-8 path");
        let args: Vec<&str> = args.iter().copied().chain(["--config", config]).collect();
        callgate(&args, &self.env)
    }

    /// A new API key made with `callgate apikey create` (the tenant must
    /// exist; `demo` always does).
    pub fn api_key(&self, tenant: &str, role: &str) -> String {
        let (code, stdout, stderr) =
            self.command(&["apikey", "create", "--tenant", tenant, "--role", role]);
        assert_eq!(code, 0, "apikey create: {stderr}");
        stdout.trim().to_owned()
    }

    /// POSTs `body` to the demo widget's calls from the node's own
    /// origin: the status and the reply's text.
    pub fn post_demo_call(&self, body: &[u8]) -> (u16, String) {
        http(self.addr, "POST", DEMO_CALLS, Some(&self.base()), body)
    }

    /// `http(s)://host:port`, also the node's own Origin.
    pub fn base(&self) -> String {
        self.base.clone()
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.database_url).await.unwrap()
    }

    /// Adds number `id` on `route` and widget `id` for it to the demo
    /// tenant, allowed on the node's own origin (as an admin would); the
    /// number does not record.
    pub async fn add_widget(&self, id: &str, route: &str) {
        self.add_recorded_widget(id, route, "off", "discard").await;
    }

    /// [`RunningNode::add_widget`] for a number with recording `policy`
    /// (`off`, `opt_in`, `notice`) and `on_revoke` (`discard`, `keep`),
    /// kept 7 days.
    pub async fn add_recorded_widget(&self, id: &str, route: &str, policy: &str, on_revoke: &str) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database_url).await.unwrap();
        let now = callgate::store::now_ms();
        sqlx::query(
            "INSERT INTO numbers (id, tenant_id, e164, trunk, recording, on_revoke, \
             retention_days, notice_text, created_at) \
             VALUES ($1, 'demo', '+15555550199', $2, $3, $4, 7, 'This call may be recorded.', $5)",
        )
        .bind(id)
        .bind(route)
        .bind(policy)
        .bind(on_revoke)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO widgets (id, tenant_id, number_id, allowed_origins, created_at) \
             VALUES ($1, 'demo', $2, '[\"self\"]', $3)",
        )
        .bind(id)
        .bind(id)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    /// Sets the origins that may embed `widget`, straight in its database
    /// (for a node whose admin API speaks only HTTPS).
    pub async fn set_allowed_origins(&self, widget: &str, origins: &[&str]) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.database_url).await.unwrap();
        let list = serde_json::to_string(origins).unwrap();
        sqlx::query("UPDATE widgets SET allowed_origins = $1 WHERE id = $2")
            .bind(list)
            .bind(widget)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    /// The demo tenant's CDRs once there are at least `count` (newest
    /// first); fails the test after 10 s.
    pub async fn wait_for_cdrs(&self, count: usize) -> Vec<CdrRecord> {
        let store = self.store().await;
        let mut cdrs = Vec::new();
        for _ in 0..100 {
            cdrs = store.cdrs_for_tenant("demo", 100).await.unwrap();
            if cdrs.len() >= count {
                return cdrs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {count} CDRs, found {}: {cdrs:#?}", cdrs.len());
    }

    /// The CDR of call `call_id`, once written; fails the test after
    /// `timeout` without it.
    pub async fn wait_for_cdr_of(&self, call_id: &str, timeout: Duration) -> CdrRecord {
        let store = self.store().await;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(cdr) = store.cdr(call_id).await.unwrap() {
                return cdr;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CDR of call {call_id} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The CDR of the call through `widget` (exactly one such call).
    pub async fn cdr_of_widget(&self, widget: &str) -> CdrRecord {
        let store = self.store().await;
        for _ in 0..100 {
            let cdrs = store.cdrs_for_tenant("demo", 100).await.unwrap();
            let mine: Vec<_> = cdrs.into_iter().filter(|c| c.widget_id == widget).collect();
            match mine.len() {
                0 => tokio::time::sleep(Duration::from_millis(100)).await,
                1 => return mine.into_iter().next().unwrap(),
                n => panic!("{n} CDRs for widget {widget}: {mine:#?}"),
            }
        }
        panic!("no CDR for widget {widget}");
    }

    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Drains the node as its first SIGTERM does: new calls refused, calls
    /// in progress go on, and the node stops once none is left or the
    /// drain times out.
    pub fn drain_as_on_sigterm(&self) {
        self.drain.cancel();
    }

    /// Whether the node stopped by itself (after a drain) within `limit`;
    /// it is stopped at once if not.
    pub async fn stopped_within(mut self, limit: Duration) -> bool {
        match tokio::time::timeout(limit, &mut self.task).await {
            Ok(joined) => {
                joined.unwrap();
                true
            }
            Err(_) => {
                self.stop().await;
                false
            }
        }
    }

    /// Where the node's SIP agent listens on UDP.
    pub fn sip_udp_addr(&self) -> SocketAddr {
        let config = Config::load(Some(&self.config_text), self.env.clone()).expect("its config");
        config.sip.listen_udp
    }

    /// Drains the node and hands back its data directory.
    pub async fn stop_keeping_data(self) -> TempDir {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.data
    }
}

/// Runs `callgate ARGS` with the `env` overrides; returns the exit code,
/// stdout and stderr.
pub fn callgate(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("RUST_LOG")
        .output()
        .expect("run callgate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The config text of a test node: data in `data`, `http` the `[http]`
/// section's lines (`listen = "127.0.0.1:0"` for any port), the other listeners on free loopback ports, trunk media ports
/// in `media`, the echo trunk on, per-IP rate limit raised, then `extra`.
pub fn node_config(
    data: &std::path::Path,
    http: &str,
    media: RangeInclusive<u16>,
    extra: &str,
) -> String {
    format!(
        "[node]\ndata_dir = {data:?}\n\
         [http]\n{http}\n\
         [sip]\nlisten_udp = \"127.0.0.1:{sip}\"\noptions_interval_secs = 0\n\
         [media]\nrtp_port_min = {min}\nrtp_port_max = {max}\n\
         [webrtc]\nlisten = \"127.0.0.1:{webrtc}\"\n\
         [limits]\ncalls_per_minute_per_ip = 1000\nlookups_per_minute_per_ip = 100000\n\
         [echo_trunk]\nenabled = true\nlisten = \"127.0.0.1:{echo}\"\n\
         {extra}",
        data = data.display().to_string(),
        sip = free_udp_port(),
        min = media.start(),
        max = media.end(),
        webrtc = free_browser_ports(),
        echo = free_udp_port(),
    )
}

/// The demo widget's calls, where a browser places a call.
pub const DEMO_CALLS: &str = "/v1/widgets/demo/calls";

/// A call through the demo widget, with `offer`, to the node at `addr` from
/// `origin`: the status and the reply as JSON (null when it is not JSON).
pub fn place_call_at(addr: SocketAddr, origin: &str, offer: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "offer": offer }).to_string();
    let (status, reply) = http(addr, "POST", DEMO_CALLS, Some(origin), body.as_bytes());
    (
        status,
        serde_json::from_str(&reply).unwrap_or(serde_json::Value::Null),
    )
}

/// [`place_call_at`], insisting the call is placed: the reply.
pub fn placed_call_at(addr: SocketAddr, origin: &str, offer: &str) -> serde_json::Value {
    let (status, placed) = place_call_at(addr, origin, offer);
    assert_eq!(status, 201, "{placed}");
    placed
}

/// One HTTP/1.1 request; returns the status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    origin: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let origin = origin.map(|o| ("Origin", o));
    let response = request(addr, method, path, origin.as_slice(), body);
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request with `headers`. HTTP/1.0, so a streamed answer arrives
/// whole (no chunked framing) and ends when the server closes.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A refused oversized body may close the socket before all is written.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: response[split..].to_vec(),
    }
}

/// The value of the first sample of metric `name` (-1 when absent).
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, body) = http(addr, "GET", "/metrics", None, b"");
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// A complete WebRTC audio offer as a browser sends it. Nothing answers
/// its ICE checks: a call placed with it is set up and answered by the
/// trunk, then hung up by the visitor or the disconnect timeout.
pub const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Xo4b\r\n\
a=ice-pwd:e4P2dmWc0Bz1mGkPuwOZ9y5x\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ssrc:1001 cname:widget\r\n";
