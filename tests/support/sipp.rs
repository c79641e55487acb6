//! sipp 3.6.1 runs: a scenario from `tests/sipp/` (or a built-in one) on
//! free loopback ports, in its own temporary working directory, with its
//! message, error, screen and log traces kept there for assertions.
//!
//! Exit codes (sipp's): 0 every call succeeded, 1 at least one failed, 97
//! stopped before the end (its `-timeout`, or stopped by [`Sipp::wait_exit`]
//! at the test's deadline: SIGTERM also ends sipp with 97), 255 fatal error.
//! A UAS is waited for until its SIP port is bound, so the node under test
//! can call it at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tempfile::TempDir;

use super::process::{PeerProcess, tail, temp_dir};
use super::sip_trace::{Direction, SipMessage, parse_trace, summary};
use super::{ports, require_program, test_path, wait_until};

pub const EXIT_ALL_CALLS_OK: i32 = 0;
pub const EXIT_CALL_FAILED: i32 = 1;
pub const EXIT_STOPPED: i32 = 97;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const MESSAGES: &str = "messages.log";
const ERRORS: &str = "errors.log";
const SCREEN: &str = "screen.log";
const LOGS: &str = "logs.log";

#[derive(Clone, Debug)]
enum Scenario {
    File(PathBuf),
    BuiltIn(&'static str),
}

/// What to run; [`SippBuilder::spawn`] starts it.
#[derive(Debug)]
pub struct SippBuilder {
    scenario: Scenario,
    remote: Option<SocketAddr>,
    port: Option<u16>,
    media_port: Option<u16>,
    calls: u32,
    timeout: Duration,
    rtp_echo: bool,
    args: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
}

/// Call counters from sipp's final statistics screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallCounts {
    pub successful: u64,
    pub failed: u64,
}

/// A running (or finished) sipp; stopped when dropped.
#[derive(Debug)]
pub struct Sipp {
    process: PeerProcess,
    sip_addr: SocketAddr,
    media_port: u16,
    label: String,
    // Last: the directory outlives the process that writes into it.
    dir: TempDir,
}

impl Sipp {
    /// A UAS running `tests/sipp/NAME` (e.g. `"uas_busy.xml"`).
    pub fn uas(name: &str) -> SippBuilder {
        SippBuilder::new(Scenario::File(scenario_path(name)), None)
    }

    /// sipp's built-in `-sn uas` (answers with PCMU only, waits for BYE).
    pub fn builtin_uas() -> SippBuilder {
        SippBuilder::new(Scenario::BuiltIn("uas"), None)
    }

    /// A UAC running `tests/sipp/NAME` against `remote`.
    pub fn uac(name: &str, remote: SocketAddr) -> SippBuilder {
        SippBuilder::new(Scenario::File(scenario_path(name)), Some(remote))
    }

    /// sipp's built-in `-sn uac` against `remote` (INVITE, ACK, BYE; it
    /// ignores Record-Route).
    pub fn builtin_uac(remote: SocketAddr) -> SippBuilder {
        SippBuilder::new(Scenario::BuiltIn("uac"), Some(remote))
    }

    /// Where this sipp receives SIP.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// `-mp`: where `[media_port]` points and `-rtp_echo` echoes (and
    /// `[media_port+2]`).
    pub fn media_addr(&self) -> SocketAddr {
        SocketAddr::new(LOOPBACK, self.media_port)
    }

    /// sipp's working directory (files given to the builder are here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits for sipp to finish; at `timeout` stops it (it then exits 97).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.process.wait_for_exit(timeout) {
            return status;
        }
        self.process
            .stop()
            .unwrap_or_else(|| panic!("{} did not stop\n{}", self.label, self.report()))
    }

    /// Waits like [`Sipp::wait_exit`] and fails the test, with a report of
    /// what sipp saw, unless it exited with `expected`.
    pub fn expect_exit(&mut self, timeout: Duration, expected: i32) {
        let status = self.wait_exit(timeout);
        assert_eq!(
            status.code(),
            Some(expected),
            "{} exited with {status}, expected {expected}\n{}",
            self.label,
            self.report()
        );
    }

    /// Every SIP message in the trace so far, in order.
    pub fn messages(&self) -> Vec<SipMessage> {
        parse_trace(&self.read(MESSAGES))
    }

    pub fn received(&self) -> Vec<SipMessage> {
        self.in_direction(Direction::Received)
    }

    pub fn sent(&self) -> Vec<SipMessage> {
        self.in_direction(Direction::Sent)
    }

    fn in_direction(&self, direction: Direction) -> Vec<SipMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.direction == direction)
            .collect()
    }

    /// The requests with this method sipp received.
    pub fn received_requests(&self, method: &str) -> Vec<SipMessage> {
        requests(self.received(), method)
    }

    /// The responses with this status to this method sipp received.
    pub fn received_responses(&self, status: u16, method: &str) -> Vec<SipMessage> {
        responses(self.received(), status, method)
    }

    /// The requests with this method sipp sent (e.g. its re-INVITEs).
    pub fn sent_requests(&self, method: &str) -> Vec<SipMessage> {
        requests(self.sent(), method)
    }

    /// The responses with this status to this method sipp sent.
    pub fn sent_responses(&self, status: u16, method: &str) -> Vec<SipMessage> {
        responses(self.sent(), status, method)
    }

    /// Polls the trace until a message matches (sipp writes it as it goes).
    pub fn wait_for_message(
        &self,
        timeout: Duration,
        matches: impl Fn(&SipMessage) -> bool,
    ) -> Option<SipMessage> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.messages().into_iter().find(&matches);
            found.is_some()
        });
        found
    }

    /// The unexpected-message and failure log (`-trace_err`).
    pub fn errors(&self) -> String {
        self.read(ERRORS)
    }

    /// Output of the scenario's `<log>` actions (`-trace_logs`).
    pub fn logs(&self) -> String {
        self.read(LOGS)
    }

    /// Successful and failed calls from the final statistics screen (written
    /// when sipp exits).
    pub fn call_counts(&self) -> Option<CallCounts> {
        let screen = self.read(SCREEN);
        let last_number = |name: &str| -> Option<u64> {
            let line = screen
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with(name))?;
            line.rsplit('|').next()?.trim().parse().ok()
        };
        Some(CallCounts {
            successful: last_number("Successful call")?,
            failed: last_number("Failed call")?,
        })
    }

    /// What went on, for a failure message: the messages, errors, stderr.
    pub fn report(&self) -> String {
        format!(
            "--- {label} messages ---\n{}\n--- {label} errors (tail) ---\n{}\n\
             --- {label} stderr (tail) ---\n{}",
            summary(&self.messages()),
            tail(&self.errors(), 40),
            tail(&self.process.stderr(), 20),
            label = self.label
        )
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }
}

fn requests(messages: Vec<SipMessage>, method: &str) -> Vec<SipMessage> {
    messages
        .into_iter()
        .filter(|m| m.is_request(method))
        .collect()
}

fn responses(messages: Vec<SipMessage>, status: u16, method: &str) -> Vec<SipMessage> {
    messages
        .into_iter()
        .filter(|m| m.is_response(status, method))
        .collect()
}

fn scenario_path(name: &str) -> PathBuf {
    let path = test_path(&format!("sipp/{name}"));
    assert!(path.is_file(), "no sipp scenario {}", path.display());
    path
}

impl SippBuilder {
    fn new(scenario: Scenario, remote: Option<SocketAddr>) -> Self {
        Self {
            scenario,
            remote,
            port: None,
            media_port: None,
            calls: 1,
            timeout: Duration::from_secs(30),
            rtp_echo: false,
            args: Vec::new(),
            files: Vec::new(),
        }
    }

    /// `-key NAME VALUE`: the scenario's `[NAME]` keyword.
    pub fn key(self, name: &str, value: &str) -> Self {
        self.arg("-key").arg(name).arg(value)
    }

    /// Any other sipp argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// `-rtp_echo`: echo RTP received on the media port (and port + 2).
    pub fn rtp_echo(mut self) -> Self {
        self.rtp_echo = true;
        self
    }

    /// `-s USER`: the user part of a UAC's Request-URI.
    pub fn service(self, user: &str) -> Self {
        self.arg("-s").arg(user)
    }

    /// `-au USER -ap PASSWORD`: what a UAC answers challenges with.
    pub fn credentials(self, user: &str, password: &str) -> Self {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }

    /// `-d MS`: the length of `<pause/>` without milliseconds (call length
    /// of `uac_echo_call.xml`).
    pub fn pause_ms(self, ms: u64) -> Self {
        self.arg("-d").arg(&ms.to_string())
    }

    /// `-aa`: answer in-dialog INFO, NOTIFY, OPTIONS and UPDATE by itself.
    pub fn auto_answer(self) -> Self {
        self.arg("-aa")
    }

    /// The SIP port (default: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// `-mp`: the media port (default: a free even one with the three after
    /// it free too).
    pub fn media_port(mut self, port: u16) -> Self {
        self.media_port = Some(port);
        self
    }

    /// `-m`: how many calls before sipp exits (default 1).
    pub fn calls(mut self, calls: u32) -> Self {
        self.calls = calls;
        self
    }

    /// `-timeout`: sipp's own deadline (default 30 s, then exit 97).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A file written into sipp's working directory before it starts, e.g.
    /// `early_media.ulaw` for `uas_early_media.xml`.
    pub fn file(mut self, name: &str, contents: &[u8]) -> Self {
        self.files.push((name.to_owned(), contents.to_vec()));
        self
    }

    /// Starts sipp; for a UAS, returns once its SIP port is bound.
    pub fn spawn(self) -> Sipp {
        let program = require_program("sipp");
        let dir = temp_dir("sipp");
        for (name, contents) in &self.files {
            std::fs::write(dir.path().join(name), contents).expect("write sipp file");
        }
        let port = self.port.unwrap_or_else(ports::free_udp_port);
        let media_port = self
            .media_port
            .unwrap_or_else(|| ports::free_udp_ports(4, true));
        let label = self.label();
        let mut command = Command::new(program);
        command.args(self.command_args(port, media_port));
        let process = PeerProcess::spawn("sipp", command, dir.path());
        let mut sipp = Sipp {
            process,
            sip_addr: SocketAddr::new(LOOPBACK, port),
            media_port,
            label,
            dir,
        };
        if self.remote.is_none() {
            // TCP (`-t t1`) and TLS (`-t l1`) both listen on a TCP socket.
            let over_tcp = self
                .args
                .windows(2)
                .any(|w| w[0] == "-t" && w[1].starts_with(['t', 'l']));
            sipp.wait_listening(over_tcp);
        }
        sipp
    }

    fn label(&self) -> String {
        let what = match &self.scenario {
            Scenario::File(path) => path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            Scenario::BuiltIn(name) => format!("-sn {name}"),
        };
        format!("sipp {what}")
    }

    fn command_args(&self, port: u16, media_port: u16) -> Vec<String> {
        let mut args: Vec<String> = match &self.scenario {
            Scenario::File(path) => vec!["-sf".into(), path.display().to_string()],
            Scenario::BuiltIn(name) => vec!["-sn".into(), (*name).into()],
        };
        if let Some(remote) = self.remote {
            args.push(remote.to_string());
        }
        let control_port = ports::free_udp_port();
        let timeout_s = self.timeout.as_secs().max(1);
        for (flag, value) in [
            ("-i", "127.0.0.1".to_owned()),
            ("-p", port.to_string()),
            ("-mi", "127.0.0.1".to_owned()),
            ("-mp", media_port.to_string()),
            ("-ci", "127.0.0.1".to_owned()),
            ("-cp", control_port.to_string()),
            ("-m", self.calls.to_string()),
            ("-timeout", format!("{timeout_s}s")),
            ("-message_file", MESSAGES.to_owned()),
            ("-error_file", ERRORS.to_owned()),
            ("-screen_file", SCREEN.to_owned()),
            ("-log_file", LOGS.to_owned()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
        for flag in [
            "-nostdin",
            "-trace_msg",
            "-trace_err",
            "-trace_screen",
            "-trace_logs",
        ] {
            args.push(flag.into());
        }
        if self.rtp_echo {
            args.push("-rtp_echo".into());
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

impl Sipp {
    fn wait_listening(&mut self, over_tcp: bool) {
        let port = self.sip_addr.port();
        let listening = if over_tcp {
            wait_until(Duration::from_secs(5), || super::tcp_port_listening(port))
        } else {
            self.process.wait_udp_bound(port, Duration::from_secs(5))
        };
        if !listening {
            panic!(
                "{} did not start listening on {port}\n{}",
                self.label,
                self.report()
            );
        }
    }

    /// Stops sipp now (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }
}
