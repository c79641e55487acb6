//! A throwaway Redis 7 (`redis-server`) for cluster tests: on loopback, on
//! a free port, no persistence, a password required (as in production).
//! It can be killed and started again on the same port, empty, as a Redis
//! that went away and came back without its data. [`Redis::start_tls`]
//! serves TLS only, with a certificate of a test CA.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::pki::TestPki;
use super::ports::free_tcp_port;
use super::process::{PeerProcess, temp_dir};
use super::require_program;

/// The password the test server requires.
pub const PASSWORD: &str = "redis-password-of-the-tests";

/// A running redis-server; stopped when dropped.
pub struct Redis {
    process: Option<PeerProcess>,
    port: u16,
    dir: TempDir,
    /// With TLS: the CA that signed the server's certificate.
    tls: Option<TestPki>,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            process: None,
            port: free_tcp_port(),
            dir: temp_dir("redis"),
            tls: None,
        };
        redis.spawn();
        redis
    }

    /// [`Redis::start`], serving TLS only (no plain port).
    pub fn start_tls() -> Self {
        let mut redis = Self {
            process: None,
            port: free_tcp_port(),
            dir: temp_dir("redis"),
            tls: Some(TestPki::generate("redis")),
        };
        redis.spawn();
        redis
    }

    /// The node's `cluster.redis_url`: `redis://127.0.0.1:PORT/0`, or
    /// `rediss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA file a client trusts, with TLS.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(TestPki::ca_file)
    }

    /// Kills it (SIGKILL): connections drop, the port refuses.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("redis is running");
        process.signal("KILL");
        assert!(
            process.wait_for_exit(Duration::from_secs(10)).is_some(),
            "redis-server did not die"
        );
    }

    /// Starts it again on the same port, with no data.
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "kill it first");
        self.spawn();
    }

    /// `redis-cli` against it: the reply, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(require_program("redis-cli"));
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--no-auth-warning", "-a", PASSWORD]);
        if let Some(ca) = self.ca_file() {
            command.arg("--tls").arg("--cacert").arg(ca);
        }
        let output = command.args(args).output().expect("run redis-cli");
        assert!(output.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn spawn(&mut self) {
        let mut command = Command::new(require_program("redis-server"));
        let port = self.port.to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(pki) => {
                let (certificate, key) = pki.server_files();
                command
                    .args([
                        "--port",
                        "0",
                        "--tls-port",
                        &port,
                        "--tls-auth-clients",
                        "no",
                    ])
                    .arg("--tls-cert-file")
                    .arg(certificate)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(pki.ca_file())
            }
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(self.dir.path());
        let process = PeerProcess::spawn_listening_tcp(
            "redis-server",
            command,
            self.dir.path(),
            &[self.port],
        );
        self.process = Some(process);
    }
}
