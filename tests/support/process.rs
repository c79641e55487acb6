//! A peer program run by a test, stopped by its pid when the test is done.
//!
//! The child gets its own process group (its pgid is its pid), so a peer
//! that forks workers (kamailio) is stopped whole: SIGTERM to the group,
//! then SIGKILL after a grace period. Only groups this module created are
//! signalled, and only while their leader has not been reaped. stdout and
//! stderr go to files in the peer's directory, for the failure report.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{tcp_port_listening, udp_port_bound, wait_until};

/// How long a peer gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct PeerProcess {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl PeerProcess {
    /// Starts `command` with stdin closed and output captured under `dir`
    /// as `NAME.stdout` / `NAME.stderr`.
    pub fn spawn(name: &str, command: Command, dir: &Path) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        Self::spawn_to(name, command, dir, stderr)
    }

    /// [`PeerProcess::spawn`] for a `callgate serve`: it logs as the test
    /// run's nodes do ([`super::logs::spawned_node`]), for the log scan.
    pub fn spawn_node(name: &str, mut command: Command, dir: &Path) -> Self {
        let stderr = super::logs::spawned_node(&mut command)
            .unwrap_or_else(|| dir.join(format!("{name}.stderr")));
        Self::spawn_to(name, command, dir, stderr)
    }

    fn spawn_to(name: &str, mut command: Command, dir: &Path, stderr: PathBuf) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let out = File::create(&stdout).expect("create stdout capture");
        let err = File::create(&stderr).expect("create stderr capture");
        command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    /// [`PeerProcess::spawn`], then waits up to 10 s for it to bind UDP
    /// `port`; fails the test with its output if it does not.
    pub fn spawn_listening(name: &str, command: Command, dir: &Path, port: u16) -> Self {
        let mut process = Self::spawn(name, command, dir);
        assert!(
            process.wait_udp_bound(port, Duration::from_secs(10)),
            "{name} did not start on {port}\n{}",
            process.output_tail(30)
        );
        process
    }

    /// [`PeerProcess::spawn`], then waits up to 15 s for it to listen on
    /// every TCP port in `ports`; fails the test with its output if it does
    /// not.
    pub fn spawn_listening_tcp(name: &str, command: Command, dir: &Path, ports: &[u16]) -> Self {
        let mut process = Self::spawn(name, command, dir);
        let listening = wait_until(Duration::from_secs(15), || {
            ports.iter().all(|&port| tcp_port_listening(port)) || !process.is_running()
        });
        assert!(
            listening && process.is_running(),
            "{name} did not start on {ports:?}\n{}",
            process.output_tail(30)
        );
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit status if the process has exited (reaping it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits until UDP `port` is bound on loopback (the kernel's table does
    /// not say by whom); false if the process exited first or `timeout`
    /// passed.
    pub fn wait_udp_bound(&mut self, port: u16, timeout: Duration) -> bool {
        wait_until(timeout, || udp_port_bound(port) || !self.is_running()) && self.is_running()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process group: SIGTERM, then SIGKILL after [`GRACE`].
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if !self.is_running() {
            return self.status;
        }
        self.signal_group("TERM");
        if let Some(status) = self.wait_for_exit(GRACE) {
            return Some(status);
        }
        self.signal_group("KILL");
        self.wait_for_exit(GRACE)
    }

    /// Sends a signal (e.g. "USR1") to the process itself.
    pub fn signal(&mut self, signal: &str) {
        if self.is_running() {
            run_kill(signal, &self.pid().to_string());
        }
    }

    fn signal_group(&self, signal: &str) {
        run_kill(signal, &format!("-{}", self.pid()));
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last `lines` lines of stdout and stderr, for a failure message.
    pub fn output_tail(&self, lines: usize) -> String {
        format!(
            "--- {name} stdout (tail) ---\n{}\n--- {name} stderr (tail) ---\n{}",
            tail(&self.stdout(), lines),
            tail(&self.stderr(), lines),
            name = self.name
        )
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_kill(signal: &str, target: &str) {
    // Signals go through kill(1): std can only SIGKILL the child itself, and
    // calling libc directly would take unsafe code.
    let _ = Command::new("kill")
        .args([format!("-{signal}").as_str(), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A fresh temporary directory for a peer's files, removed when dropped.
pub fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir for {name}: {e}"))
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
