//! `callgate serve` (the real binary, on its embedded default with free
//! ports) under `callgate-load`, whose calls are real WebRTC clients that
//! connect, send audio to the echo trunk and hear it back.
//!
//! - A node keeps nothing of a call once it has ended: 200 short calls one
//!   after another leave no call active, a CDR each, and the node's
//!   resident memory where it was after a warm-up.
//! - Calls carry on through a flood of junk at their browser ports, and
//!   malformed checks, stray DTLS records and a close_notify in the clear
//!   from their own addresses: every call hears all its audio, nothing
//!   forged or replayed comes back, and the node counts what it shed, by
//!   reason (the socket filter's share too).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use callgate::store::Store;
use serde_json::Value;

use support::ports::{free_browser_ports, free_tcp_port, free_udp_port};
use support::wait_until;

const NODE_BIN: &str = env!("CARGO_BIN_EXE_callgate");
const LOAD_BIN: &str = env!("CARGO_BIN_EXE_callgate-load");
const CALLS: u64 = 200;
const WARM_UP_CALLS: u64 = 20;
/// How far the node's RSS may end above the warm baseline. A leak of
/// 20 KiB per call adds about 3.9 MiB over 200 calls (a node made to leak
/// 20 KiB per call ended 3.8 MiB up in this test). Without a leak, the
/// node's heap still settles over its first couple of hundred calls one
/// after another (about 2.5 MiB with the media on shard threads, then
/// flat: 0.1 to 0.6 MiB over each next 200), so the warm-up includes a
/// run like the measured one, and the margin sits between the two.
const RSS_MARGIN_KIB: u64 = 2560;

/// `callgate serve` in a scratch directory; killed when dropped.
struct Node {
    child: Child,
    http: SocketAddr,
    dir: tempfile::TempDir,
    /// Where its stderr goes.
    log: std::path::PathBuf,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let udp = || format!("127.0.0.1:{}", free_udp_port());
        let mut command = Command::new(NODE_BIN);
        command.arg("serve").env_clear();
        let log = support::logs::spawned_node(&mut command)
            .unwrap_or_else(|| dir.path().join("node.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = command
            .current_dir(dir.path())
            .env("CALLGATE_HTTP_LISTEN", http.to_string())
            .env("CALLGATE_DATA_DIR", dir.path().join("data"))
            .env("CALLGATE_SIP_LISTEN_UDP", udp())
            .env("CALLGATE_ECHO_TRUNK_LISTEN", udp())
            .env(
                "CALLGATE_WEBRTC_LISTEN",
                format!("127.0.0.1:{}", free_browser_ports()),
            )
            .env("CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP", "10000")
            .env("CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_WIDGET", "100000")
            .env("CALLGATE_LIMITS_LOOKUPS_PER_MINUTE_PER_IP", "1000000")
            .env("CALLGATE_HTTP_MAX_CONNECTIONS_PER_IP", "4096")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let node = Self {
            child,
            http,
            dir,
            log,
        };
        let healthy = wait_until(Duration::from_secs(30), || {
            node.get("/healthz").starts_with("HTTP/1.1 200")
        });
        assert!(healthy, "node not healthy:\n{}", node.log());
        node
    }

    fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The raw HTTP response to `GET path` (empty if the node is down).
    fn get(&self, path: &str) -> String {
        let mut response = String::new();
        if let Ok(mut stream) = TcpStream::connect(self.http) {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read_to_string(&mut response);
        }
        response
    }

    fn calls_active(&self) -> Option<u64> {
        self.metric("callgate_calls_active ")
    }

    /// The value of the first metric line that starts with `prefix`.
    fn metric(&self, prefix: &str) -> Option<u64> {
        let metrics = self.get("/metrics");
        let line = metrics.lines().find(|l| l.starts_with(prefix))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    async fn cdr_count(&self) -> usize {
        let db = self.dir.path().join("data").join("callgate.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let count = store.cdrs_for_tenant("demo", 100_000).await.unwrap().len();
        store.close().await;
        count
    }

    /// Waits until no call is active and `cdrs` CDRs are written.
    async fn settle(&self, cdrs: usize) {
        let idle = wait_until(Duration::from_secs(20), || self.calls_active() == Some(0));
        assert!(
            idle,
            "calls_active stays at {:?} after every call hung up:\n{}",
            self.calls_active(),
            self.log()
        );
        for _ in 0..100 {
            if self.cdr_count().await >= cdrs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `callgate-load ARGS --json` against `node`; its report, which must
/// say that every call connected and echoed audio.
fn load(node: &Node, args: &[&str]) -> Value {
    let output = Command::new(LOAD_BIN)
        .args(["--node", &node.base(), "--json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "callgate-load {args:?} failed: {stderr}\n{stdout}\nnode log:\n{}",
        log_tail(&node.log())
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let calls = report["calls"].as_u64().unwrap();
    assert_eq!(report["connected"].as_u64(), Some(calls), "{report}");
    assert_eq!(report["calls_with_echo"].as_u64(), Some(calls), "{report}");
    assert_eq!(report["failed"].as_u64(), Some(0), "{report}");
    report
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test]
async fn two_hundred_calls_leave_no_call_state_and_no_memory_behind() {
    let node = Node::start();

    let warm_up = WARM_UP_CALLS.to_string();
    let calls = CALLS.to_string();
    load(&node, &["--calls", &warm_up, "--duration", "0.5"]);
    let one_after_another = ["--calls", "1", "--repeat", &calls, "--duration", "0.2"];
    load(&node, &one_after_another);
    let warm_up_calls = (WARM_UP_CALLS + CALLS) as usize;
    node.settle(warm_up_calls).await;
    let cdrs_before = node.cdr_count().await;
    assert_eq!(cdrs_before, warm_up_calls, "one CDR per warm-up call");
    let baseline = node.rss_kib();

    let pid = node.child.id().to_string();
    let report = load(
        &node,
        &[
            "--calls",
            "1",
            "--repeat",
            &calls,
            "--duration",
            "0.2",
            "--node-pid",
            &pid,
        ],
    );
    assert_eq!(report["calls"].as_u64(), Some(CALLS), "{report}");
    let sent = report["packets_sent"].as_u64().unwrap();
    let echoed = report["packets_echoed"].as_u64().unwrap();
    assert!(
        sent >= CALLS * 5 && echoed * 100 >= sent * 99,
        "every call sent audio and heard nearly all of it back: {report}"
    );

    node.settle(cdrs_before + CALLS as usize).await;
    assert_eq!(node.calls_active(), Some(0), "no call is left active");
    let cdrs = node.cdr_count().await - cdrs_before;
    assert_eq!(cdrs, CALLS as usize, "one CDR per call, no more, no less");
    let after = node.rss_kib();
    eprintln!(
        "node VmRSS: {baseline} KiB warm, {after} KiB after {CALLS} calls ({:+} KiB)",
        after as i64 - baseline as i64
    );
    assert!(
        after <= baseline + RSS_MARGIN_KIB,
        "node RSS grew from {baseline} KiB to {after} KiB over {CALLS} calls: \
         more than {RSS_MARGIN_KIB} KiB, about {} KiB per call",
        (after - baseline) / CALLS
    );
}

/// Datagrams a second of junk at the browser ports: each call's budget of
/// unverified checks is spent many times over.
const FLOOD_PPS: u32 = 10_000;

#[tokio::test]
async fn calls_carry_on_through_a_flood_at_their_browser_ports() {
    let node = Node::start();
    let pps = FLOOD_PPS.to_string();
    let report = load(
        &node,
        &[
            "--calls",
            "10",
            "--duration",
            "3",
            "--rtc-clients",
            "--flood-pps",
            &pps,
        ],
    );
    let flood = report["flood_sent"].as_u64().unwrap();
    assert!(flood >= u64::from(FLOOD_PPS) * 2, "the flood ran: {report}");
    assert_eq!(
        report["packets_echoed"], report["packets_sent"],
        "every call heard all its audio through the flood: {report}"
    );
    assert_eq!(
        report["echoes_foreign"].as_u64(),
        Some(0),
        "no replayed or forged packet was relayed: {report}"
    );
    let shed = |reason: &str| {
        let prefix =
            format!("callgate_packets_dropped_total{{leg=\"browser\",reason=\"{reason}\"}} ");
        node.metric(&prefix).unwrap_or(0)
    };
    // The port counters reach the metrics every 2 s.
    let counted = wait_until(Duration::from_secs(5), || {
        [
            "unknown_peer",
            "unverified_check",
            "srtp",
            "other",
            "kernel",
        ]
        .iter()
        .all(|reason| shed(reason) > 0)
    });
    assert!(
        counted,
        "junk from strangers, checks over budget, replayed or forged SRTP, bad \
         checks from the calls' own addresses and what the socket filter dropped \
         are counted: unknown_peer {}, unverified_check {}, srtp {}, other {}, kernel {}",
        shed("unknown_peer"),
        shed("unverified_check"),
        shed("srtp"),
        shed("other"),
        shed("kernel")
    );
    // And the node takes the next call as ever.
    load(&node, &["--calls", "1", "--duration", "0.5"]);
}
