//! An independent WebRTC client: `tests/clients/aiortc_call.py` (aiortc)
//! run with the test virtualenv's Python, placing one call through a node's
//! widget signalling as a browser would.
//!
//! The virtualenv is made by scripts/install-test-deps.sh at
//! `target/test-venv` under the crate root. Each run gets its own directory
//! for the client's output and, unless told otherwise, its recording
//! (`received.wav`, 8 kHz mono). The client prints each server event as one
//! JSON line on stdout and exits 0 once the call ended, 2 when the POST was
//! not answered 201 (the error body is its one stdout line), 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::{PeerProcess, temp_dir};
use super::{audio, repo_dir, test_path, wait_until};

/// Exit code: the call ended (an `ended` event arrived).
pub const EXIT_ENDED: i32 = 0;
/// Exit code: the socket closed without `ended`, a timeout, a crash.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the POST (or the config GET) was not answered with success.
pub const EXIT_REFUSED: i32 = 2;

/// The test virtualenv's interpreter; fails the test with the install hint
/// when the virtualenv is missing.
pub fn venv_python() -> PathBuf {
    let python = repo_dir().join("target/test-venv/bin/python3");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-test-deps.sh \
         (integration tests need the real peers, they never skip)",
        python.display()
    );
    python
}

/// The client script.
pub fn client_script() -> PathBuf {
    test_path("clients/aiortc_call.py")
}

/// Runs the client with `--help`: its usage text (proves the virtualenv
/// imports aiortc, websockets and PyAV).
pub fn client_help() -> String {
    let output = Command::new(venv_python())
        .arg(client_script())
        .arg("--help")
        .output()
        .expect("run aiortc_call.py --help");
    assert!(
        output.status.success(),
        "aiortc_call.py --help failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One call to place: [`AiortcCall::new`], the optional settings, then
/// [`AiortcCall::spawn`] or [`AiortcCall::run`].
#[derive(Clone, Debug)]
pub struct AiortcCall {
    base: String,
    widget: String,
    origin: String,
    play: PathBuf,
    record: Option<PathBuf>,
    seconds: f64,
    dtmf: Option<String>,
    codec: Option<String>,
    consent: Option<String>,
    forwarded_for: Option<String>,
    consent_changes: Vec<(f64, String)>,
    hangup_at: Option<String>,
    hangup_by_delete: bool,
    timeout: Duration,
}

impl AiortcCall {
    /// A call to widget `widget` of the node at `base` (`http://host:port`),
    /// sending `Origin: origin`, with `play` (a 16-bit WAV) as microphone;
    /// hangs up after 5 s answered, gives up after 60 s without `ended`.
    pub fn new(base: &str, widget: &str, origin: &str, play: &Path) -> Self {
        Self {
            base: base.to_owned(),
            widget: widget.to_owned(),
            origin: origin.to_owned(),
            play: play.to_path_buf(),
            record: None,
            seconds: 5.0,
            dtmf: None,
            codec: None,
            consent: None,
            forwarded_for: None,
            consent_changes: Vec::new(),
            hangup_at: None,
            hangup_by_delete: false,
            timeout: Duration::from_secs(60),
        }
    }

    /// Where to write what the client receives (default: the run's own
    /// directory).
    pub fn record(mut self, out: &Path) -> Self {
        self.record = Some(out.to_path_buf());
        self
    }

    /// Answered time before the client hangs up.
    pub fn seconds(mut self, seconds: f64) -> Self {
        self.seconds = seconds;
        self
    }

    /// Digits sent over the events socket about a second after the answer.
    pub fn dtmf(mut self, digits: &str) -> Self {
        self.dtmf = Some(digits.to_owned());
        self
    }

    /// Offer only `codec`: `pcmu`, `pcma` or `opus`.
    pub fn codec(mut self, codec: &str) -> Self {
        self.codec = Some(codec.to_owned());
        self
    }

    /// The offer's consent: `granted` or `declined` (default null).
    pub fn consent(mut self, consent: &str) -> Self {
        self.consent = Some(consent.to_owned());
        self
    }

    /// Sends `X-Forwarded-For: ADDRESS` with the call request, as a proxy
    /// in front of the node would.
    pub fn forwarded_for(mut self, address: &str) -> Self {
        self.forwarded_for = Some(address.to_owned());
        self
    }

    /// Sends `{"type":"consent","value":VALUE}` `seconds` after the answer
    /// (`granted` or `revoked`); repeatable.
    pub fn consent_change(mut self, seconds: f64, value: &str) -> Self {
        self.consent_changes.push((seconds, value.to_owned()));
        self
    }

    /// Hang up `seconds` after `when`: `connected` (the events socket
    /// opened, before the trunk answered anything), `ringing` or `answered`.
    pub fn hangup_at(mut self, when: &str, seconds: f64) -> Self {
        self.hangup_at = Some(format!("{when}:{seconds}"));
        self
    }

    /// Hang up by DELETE, as the widget does when its page goes away,
    /// instead of over the events socket.
    pub fn hangup_by_delete(mut self) -> Self {
        self.hangup_by_delete = true;
        self
    }

    /// How long the client waits for `ended` once connected.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line, recording to `record`.
    fn command(&self, record: &Path) -> Command {
        let mut command = Command::new(venv_python());
        command
            .arg(client_script())
            .args(["--base", &self.base, "--widget", &self.widget])
            .args(["--origin", &self.origin])
            .arg("--play")
            .arg(&self.play)
            .arg("--record")
            .arg(record)
            .args(["--seconds", &self.seconds.to_string()])
            .args(["--timeout", &self.timeout.as_secs_f64().to_string()]);
        let optional = [
            ("--dtmf", &self.dtmf),
            ("--codec", &self.codec),
            ("--consent", &self.consent),
            ("--forwarded-for", &self.forwarded_for),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                command.args([flag, value]);
            }
        }
        if let Some(at) = &self.hangup_at {
            command.args(["--hangup-at", at]);
        }
        if self.hangup_by_delete {
            command.args(["--hangup-by", "delete"]);
        }
        for (seconds, value) in &self.consent_changes {
            command.args(["--consent-change", &format!("{seconds}:{value}")]);
        }
        command
    }

    /// Starts the client; it runs until the call ended or it gave up.
    pub fn spawn(self) -> AiortcRun {
        let dir = temp_dir("aiortc");
        let record = self
            .record
            .clone()
            .unwrap_or_else(|| dir.path().join("received.wav"));
        let process = PeerProcess::spawn("aiortc_call", self.command(&record), dir.path());
        AiortcRun {
            process,
            record,
            limit: self.timeout + Duration::from_secs(30),
            _dir: dir,
        }
    }

    /// [`AiortcCall::spawn`] and [`AiortcRun::wait`] (blocking).
    pub fn run(self) -> AiortcOutcome {
        self.spawn().wait()
    }
}

/// A running client; stopped (by pid) when dropped.
pub struct AiortcRun {
    process: PeerProcess,
    record: PathBuf,
    /// The longest [`AiortcRun::wait`] waits: the client's own timeout and
    /// time to set the call up.
    limit: Duration,
    _dir: TempDir,
}

impl AiortcRun {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Kills the client at once, as a crashed browser or a lost network
    /// would end it: no hang-up, no goodbye, its media just stops.
    pub fn kill(&mut self) {
        self.process.signal("KILL");
    }

    /// The events printed so far.
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.process.stdout())
    }

    /// Blocks until a printed event satisfies `condition` or `timeout`
    /// passes; returns that event.
    pub fn wait_for_event(
        &self,
        timeout: Duration,
        condition: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.events().into_iter().find(&condition);
            found.is_some()
        });
        found
    }

    /// Waits until the call's events say it was answered; fails the test,
    /// with the events seen, if they do not within `timeout`. On a
    /// multi-threaded runtime, the node's tasks go on meanwhile.
    pub fn until_answered(&self, timeout: Duration) {
        let answered = tokio::task::block_in_place(|| {
            self.wait_for_event(timeout, |e| e["state"] == "answered")
        });
        assert!(
            answered.is_some(),
            "the call was not answered: {:?}",
            self.events()
        );
    }

    /// Blocks until the client exits; fails the test if it does not within
    /// its timeout plus 30 s.
    pub fn wait(mut self) -> AiortcOutcome {
        let status = self.process.wait_for_exit(self.limit);
        self.outcome(status.map(|s| s.code()))
    }

    /// [`AiortcRun::wait`] without blocking the async runtime.
    pub async fn wait_async(mut self) -> AiortcOutcome {
        let deadline = tokio::time::Instant::now() + self.limit;
        while self.process.is_running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = self.process.try_status();
        self.outcome(status.map(|s| s.code()))
    }

    fn outcome(self, exit: Option<Option<i32>>) -> AiortcOutcome {
        let Some(code) = exit else {
            panic!(
                "aiortc_call.py still running after {:?}\n{}",
                self.limit,
                self.process.output_tail(40)
            );
        };
        let stdout = self.process.stdout();
        let recorded = self
            .record
            .is_file()
            .then(|| audio::read_wav(&self.record).1);
        AiortcOutcome {
            code,
            events: parse_events(&stdout),
            stdout,
            stderr: self.process.stderr(),
            recorded,
        }
    }
}

/// How a client run went.
#[derive(Clone, Debug)]
pub struct AiortcOutcome {
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Every JSON line of stdout: the server's events, or the error body.
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    /// What the client received, 8 kHz mono (None if it wrote nothing).
    pub recorded: Option<Vec<i16>>,
}

impl AiortcOutcome {
    /// The `state` values of the state events, in order.
    pub fn states(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["type"] == "state")
            .filter_map(|e| e["state"].as_str().map(str::to_owned))
            .collect()
    }

    /// The reason of the `ended` event.
    pub fn ended_reason(&self) -> Option<String> {
        self.events
            .iter()
            .find(|e| e["type"] == "state" && e["state"] == "ended")
            .and_then(|e| e["reason"].as_str().map(str::to_owned))
    }

    /// When the client did `event` (`hangup`, or `ended` received), in
    /// seconds on the client's one monotonic clock.
    pub fn local_at(&self, event: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|e| e["type"] == "local" && e["event"] == event)
            .and_then(|e| e["at"].as_f64())
    }

    /// The `active` values of the recording events, in order.
    pub fn recording_events(&self) -> Vec<bool> {
        self.events
            .iter()
            .filter(|e| e["type"] == "recording")
            .filter_map(|e| e["active"].as_bool())
            .collect()
    }

    /// For an [`EXIT_REFUSED`] run: the HTTP status and the error message.
    pub fn refusal(&self) -> Option<(u64, String)> {
        let line = self.events.first()?;
        let status = line["status"].as_u64()?;
        Some((
            status,
            line["error"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// Everything printed, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
