//! coturn (`turnserver` 4.6) as the TURN relay a widget is told about: on
//! loopback, TURN REST credentials (`use-auth-secret` with a secret it
//! shares with the node), relaying to loopback peers (the node), no TLS, no
//! CLI, its verbose log on stdout: the test reads the allocation from it,
//! and it goes into the failure report.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::ports::{free_udp_port, free_udp_ports};
use super::process::{PeerProcess, temp_dir};
use super::require_program;

/// The secret coturn and the node share.
pub const AUTH_SECRET: &str = "relay-secret-shared-with-the-node";
const REALM: &str = "callgate.test";
/// Relay ports a test's allocations may use.
const RELAY_PORTS: u16 = 20;

/// A running turnserver; stopped when dropped.
pub struct Coturn {
    process: PeerProcess,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Coturn {
    pub fn start() -> Self {
        let program = require_program("turnserver");
        let dir = temp_dir("coturn");
        let port = free_udp_port();
        let relay_min = free_udp_ports(RELAY_PORTS, false);
        let mut command = Command::new(program);
        command
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", &relay_min.to_string()])
            .args(["--max-port", &(relay_min + RELAY_PORTS - 1).to_string()])
            .args([
                "--allow-loopback-peers",
                "--use-auth-secret",
                "--realm",
                REALM,
            ])
            .args(["--static-auth-secret", AUTH_SECRET])
            .args(["--log-file", "stdout", "--simple-log", "--verbose"])
            // Its pid file and user database in its own directory, not the system's.
            .arg("--pidfile")
            .arg(dir.path().join("turnserver.pid"))
            .arg("--userdb")
            .arg(dir.path().join("turndb"));
        let process = PeerProcess::spawn_listening("turnserver", command, dir.path(), port);
        Self {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        }
    }

    /// `turn:127.0.0.1:PORT?transport=udp`, as a widget's ICE server URL.
    pub fn url(&self) -> String {
        format!("turn:{}?transport=udp", self.addr)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.stdout()
    }

    /// Waits until its log shows a relay allocation that carried data to a
    /// peer (a channel or permission to the node).
    pub fn wait_for_relayed_session(&self, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            let log = self.process.stdout();
            log.contains("ALLOCATE processed, success") && log.contains("CREATE_PERMISSION")
        })
    }
}
