//! `callgate-load --rtpengine` against a real rtpengine, the reference
//! relay that `benches/vs-rtpengine.sh` measures callgate beside: calls set
//! up over rtpengine's ng protocol carry SDES-SRTP on the visitor's leg and
//! plain RTP on the trunk's, and every packet comes back, decrypted and
//! matched to its call. Without this, a side-by-side run could compare
//! callgate with a relay that dropped or never decrypted the audio.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use support::ports::{free_udp_port, free_udp_ports};
use support::wait_until;

const LOAD_BIN: &str = env!("CARGO_BIN_EXE_callgate-load");
const CALLS: u64 = 8;

/// rtpengine in user space on loopback; killed when dropped.
struct Rtpengine {
    child: Child,
    ng: String,
    log: tempfile::NamedTempFile,
}

impl Rtpengine {
    fn start() -> Self {
        let ng = format!("127.0.0.1:{}", free_udp_port());
        // Two ports per leg (RTP and RTCP), two legs per call, and room.
        let media = free_udp_ports(64, true);
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("rtpengine")
            .args([
                "--foreground",
                "--table=-1",
                "--interface=127.0.0.1",
                "--num-threads=1",
                "--log-stderr",
                "--log-level=6",
            ])
            .arg(format!("--listen-ng={ng}"))
            .arg(format!("--port-min={media}"))
            .arg(format!("--port-max={}", media + 63))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("rtpengine (scripts/install-test-deps.sh installs it)");
        let rtpengine = Self { child, ng, log };
        assert!(
            wait_until(Duration::from_secs(10), || rtpengine
                .log()
                .contains("Startup complete")),
            "rtpengine did not start:\n{}",
            rtpengine.log()
        );
        rtpengine
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn calls_through_rtpengine_come_back_whole_over_sdes_srtp() {
    let rtpengine = Rtpengine::start();
    let output = Command::new(LOAD_BIN)
        .args(["--rtpengine", &rtpengine.ng, "--json", "--duration", "2"])
        .args(["--calls", &CALLS.to_string(), "--ramp-per-sec", "100"])
        .arg(format!("--node-pid={}", rtpengine.child.id()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "callgate-load failed: {}\n{stdout}\nrtpengine:\n{}",
        String::from_utf8_lossy(&output.stderr),
        rtpengine.log()
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["calls_with_echo"].as_u64(), Some(CALLS), "{report}");
    assert_eq!(
        report["calls_up_in_window"].as_u64(),
        Some(CALLS),
        "{report}"
    );
    assert_eq!(report["loss_percent"].as_f64(), Some(0.0), "{report}");
    assert_eq!(report["echoes_foreign"].as_u64(), Some(0), "{report}");
    // 50 packets a second each way per call, over a 2 s window.
    let relayed = report["relay_packets"].as_u64().unwrap();
    assert!(relayed >= CALLS * 100 * 2 * 9 / 10, "{report}");
    assert!(
        report["node_cpu_us_per_packet"].as_f64().is_some(),
        "{report}"
    );
    // Every call was set up once and torn down again.
    let log = rtpengine.log();
    assert_eq!(
        log.matches("Creating new call").count() as u64,
        CALLS,
        "{log}"
    );
    let deleted = log.matches("Received command 'delete'").count() as u64;
    assert_eq!(deleted, CALLS, "{log}");
}
