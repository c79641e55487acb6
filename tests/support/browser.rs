//! A real headless Chromium driven over WebDriver (chromedriver and the
//! fantoccini client), with a fake microphone that plays a WAV file, and
//! the capture helpers that prove audio arrived: a MediaRecorder capture of a
//! track decoded by ffmpeg, and getStats packet counts (headless Chromium
//! reports `audioLevel` 0, so levels prove nothing).
//!
//! Invariants: chromedriver listens on a free port of loopback only (it is
//! started without `--allowed-ips`, which would make it bind every
//! interface); every Chromium gets a fresh profile directory; [`Browser::close`]
//! and `Drop` stop chromedriver's process group and then every process whose
//! command line names this browser's own profile directory, by pid, so a
//! failed test leaves no browser behind. WebDriver speaks plain HTTP on
//! loopback here, so fantoccini is built without any TLS stack.
//!
//! Scripts given to [`Browser::eval`] and [`Browser::eval_async`] are
//! function bodies (WebDriver's execute script): `return` a value, or in the
//! async form call `done(value)`. [`Browser::wait_for`] takes an expression.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::ports::free_tcp_port;
use super::process::{PeerProcess, temp_dir};
use super::require_program;

/// The Chromium binary Debian's `chromium` package installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long browser steps wait by default: generous, the machine is shared.
pub const BROWSER_WAIT: Duration = Duration::from_secs(20);
/// The widget's remote audio track (what the node sends the visitor).
pub const REMOTE_AUDIO_TRACK: &str =
    "document.querySelector('.cg-widget').callgate.pc.getReceivers()[0].track";
/// The widget's microphone track as sent to the node.
pub const LOCAL_AUDIO_TRACK: &str =
    "document.querySelector('.cg-widget').callgate.pc.getSenders()[0].track";

/// A headless Chromium session; stopped by [`Browser::close`] or on drop.
pub struct Browser {
    client: Option<Client>,
    driver: PeerProcess,
    profile: TempDir,
    /// Holds chromedriver's output captures.
    _dir: TempDir,
}

impl Browser {
    /// Chromium whose microphone plays `fake_audio` (a 48 kHz mono WAV,
    /// looped) and whose permission prompts are accepted.
    pub async fn start(fake_audio: &Path) -> Self {
        assert!(
            fake_audio.is_file(),
            "no fake audio {}",
            fake_audio.display()
        );
        Self::launch(Some(fake_audio), &[]).await
    }

    /// [`Browser::start`] with more Chromium flags.
    pub async fn start_with_flags(fake_audio: &Path, flags: &[String]) -> Self {
        Self::launch(Some(fake_audio), flags).await
    }

    /// Chromium without fake devices: on a machine with no sound card it
    /// has no microphone at all. Permission prompts are still accepted.
    pub async fn start_without_microphone() -> Self {
        Self::launch(None, &[]).await
    }

    async fn launch(fake_audio: Option<&Path>, flags: &[String]) -> Self {
        require_program(CHROMIUM);
        let chromedriver = require_program("chromedriver");
        let dir = temp_dir("chromedriver");
        let profile = temp_dir("chromium-profile");
        let port = free_tcp_port();
        let mut command = Command::new(chromedriver);
        // No --allowed-ips: with it chromedriver binds every interface (and
        // filters by address); without it, it binds loopback only.
        command.arg(format!("--port={port}"));
        let driver = PeerProcess::spawn_listening_tcp("chromedriver", command, dir.path(), &[port]);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(profile.path(), fake_audio, flags));
        let client = match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(client) => client,
            Err(e) => panic!(
                "chromium did not start through chromedriver: {e}\n{}",
                driver.output_tail(30)
            ),
        };
        Self {
            client: Some(client),
            driver,
            profile,
            _dir: dir,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser is open")
    }

    /// Loads `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client().goto(url).await {
            panic!("chromium could not load {url}: {e}");
        }
    }

    /// Opens a new tab and makes it the one later steps act on; returns
    /// the tab that was current before, for [`Browser::close_tab`].
    pub async fn open_tab(&self) -> WindowHandle {
        let client = self.client();
        let previous = client.window().await.expect("current tab");
        let tab = client.new_window(true).await.expect("open a tab");
        client
            .switch_to_window(tab.handle)
            .await
            .expect("switch to the new tab");
        previous
    }

    /// Makes `tab` the one later steps act on; returns the tab that was
    /// current before.
    pub async fn switch_tab(&self, tab: WindowHandle) -> WindowHandle {
        let client = self.client();
        let previous = client.window().await.expect("current tab");
        client.switch_to_window(tab).await.expect("switch tabs");
        previous
    }

    /// Closes the current tab as a visitor would (the page gets its
    /// `pagehide`), then acts on `back_to`.
    pub async fn close_tab(&self, back_to: WindowHandle) {
        let client = self.client();
        client.close_window().await.expect("close the tab");
        client
            .switch_to_window(back_to)
            .await
            .expect("switch back to the first tab");
    }

    /// Replaces the page's widget by one for `widget_id`, loaded through
    /// the same one-tag embed a customer's page uses.
    pub async fn embed_widget(&self, widget_id: &str) {
        let script = format!(
            "document.querySelectorAll('.cg-widget').forEach((w) => w.remove());
             const tag = document.createElement('script');
             tag.src = '/widget/callgate.js';
             tag.setAttribute('data-widget', {widget_id:?});
             tag.setAttribute('data-target', '#call');
             document.body.appendChild(tag);
             return true;"
        );
        self.eval(&script).await;
        self.wait_for(
            "document.querySelector('.cg-widget') !== null",
            BROWSER_WAIT,
        )
        .await;
    }

    /// The widget's `data-reason` (set once a call ended or failed).
    pub async fn widget_reason(&self) -> Option<String> {
        let value = self
            .eval("const w = document.querySelector('.cg-widget'); return w && w.dataset.reason;")
            .await;
        value.as_str().map(str::to_owned)
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            panic!("cannot click {css}: {e}\n{}", self.diagnostics().await);
        }
    }

    /// Types `text` into the first element matching `css`, as a person
    /// would (key events, not a value set by script).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.send_keys(text).await {
            panic!("cannot type into {css}: {e}\n{}", self.diagnostics().await);
        }
    }

    /// Chooses the option with `value` in the `<select>` matching `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.select_by_value(value).await {
            panic!(
                "cannot choose {value} in {css}: {e}\n{}",
                self.diagnostics().await
            );
        }
    }

    /// Accepts the open `confirm()` (or alert) and returns its text.
    pub async fn accept_dialog(&self) -> String {
        let client = self.client();
        let text = match client.get_alert_text().await {
            Ok(text) => text,
            Err(e) => panic!("no dialog is open: {e}\n{}", self.diagnostics().await),
        };
        client.accept_alert().await.expect("accept the dialog");
        text
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client().find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element {css}: {e}\n{}", self.diagnostics().await),
        }
    }

    /// Runs a function body in the page and returns what it returns.
    pub async fn eval(&self, js: &str) -> Value {
        match self.client().execute(js, Vec::new()).await {
            Ok(value) => value,
            Err(e) => panic!("script failed: {e}\n--- script ---\n{js}"),
        }
    }

    /// Runs a function body that reports by calling `done(value)`, and
    /// returns that value (WebDriver's execute async script).
    pub async fn eval_async(&self, js: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1];\n{js}");
        match self.client().execute_async(&script, Vec::new()).await {
            Ok(value) => value,
            Err(e) => panic!("async script failed: {e}\n--- script ---\n{js}"),
        }
    }

    /// The clipboard's text, read by the current page as any page would.
    pub async fn clipboard_text(&self) -> String {
        let read = "navigator.clipboard.readText().then(done, (e) => done({ error: String(e) }));";
        match self.eval_async(read).await {
            Value::String(text) => text,
            other => panic!("cannot read the clipboard: {other}"),
        }
    }

    /// Whether the JS `expression` becomes truthy within `timeout`
    /// (polled every 100 ms; script errors count as false).
    pub async fn poll_for(&self, expression: &str, timeout: Duration) -> bool {
        let script = format!("try {{ return !!({expression}); }} catch (e) {{ return false; }}");
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self.client().execute(&script, Vec::new()).await;
            if matches!(ready, Ok(Value::Bool(true))) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Browser::poll_for`], failing the test with the page's state when
    /// `expression` does not become truthy in time.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) {
        if !self.poll_for(expression, timeout).await {
            panic!(
                "waited {timeout:?} for `{expression}`\n{}",
                self.diagnostics().await
            );
        }
    }

    /// Makes the page's later getUserMedia calls ask for audio without
    /// echo cancellation, noise suppression and automatic gain control.
    /// Chromium applies all three by default and they reshape speech: the
    /// fake microphone's capture scores 0.86 instead of 0.98 against its
    /// file (`audio::similarity_coarse`); echo cancellation would also fight
    /// an echo call.
    /// Call it after each page load, before the widget asks for the
    /// microphone.
    pub async fn disable_audio_processing(&self) {
        self.eval(DISABLE_AUDIO_PROCESSING).await;
    }

    /// Makes every peer connection the page creates use TURN relay
    /// candidates only, as a visitor behind a strict firewall would. Call
    /// it after each page load, before the widget calls.
    pub async fn force_turn_relay(&self) {
        self.eval(FORCE_TURN_RELAY).await;
    }

    /// The type (`host`, `srflx`, `relay`) of the widget's local ICE
    /// candidate in the selected pair; None before one is selected.
    pub async fn selected_local_candidate_type(&self) -> Option<String> {
        let value = self.eval_async(SELECTED_LOCAL_CANDIDATE).await;
        value.as_str().map(str::to_owned)
    }

    /// The widget's `data-state` (None before it rendered).
    pub async fn widget_state(&self) -> Option<String> {
        let value = self
            .eval("const w = document.querySelector('.cg-widget'); return w && w.dataset.state;")
            .await;
        value.as_str().map(str::to_owned)
    }

    /// The widget's status line as shown.
    pub async fn widget_status(&self) -> String {
        let value = self
            .eval("const s = document.querySelector('.cg-widget .cg-status'); return s ? s.textContent : '';")
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the widget's `data-state` is `state`.
    pub async fn wait_widget_state(&self, state: &str, timeout: Duration) {
        let expression =
            format!("document.querySelector('.cg-widget').dataset.state === '{state}'");
        self.wait_for(&expression, timeout).await;
    }

    /// Starts a MediaRecorder (webm/opus) on the track the JS expression
    /// `track` names; [`Browser::stop_recording`] returns the bytes.
    pub async fn start_recording(&self, track: &str) {
        let script = format!(
            "const track = {track};
             const recorder = new MediaRecorder(new MediaStream([track]),
                 {{ mimeType: 'audio/webm;codecs=opus' }});
             const capture = {{ recorder, chunks: [] }};
             recorder.ondataavailable = (e) => {{ if (e.data.size) capture.chunks.push(e.data); }};
             recorder.start(200);
             window.__callgateCapture = capture;
             return recorder.state;"
        );
        let state = self.eval(&script).await;
        assert_eq!(state, json!("recording"), "MediaRecorder did not start");
    }

    /// [`Browser::start_recording`] on the widget's remote audio track.
    pub async fn start_recording_remote_audio(&self) {
        self.start_recording(REMOTE_AUDIO_TRACK).await;
    }

    /// Stops the capture started by [`Browser::start_recording`] and
    /// returns it as webm bytes.
    pub async fn stop_recording(&self) -> Vec<u8> {
        let value = self.eval_async(STOP_RECORDING).await;
        let Some(data) = value.get("data").and_then(Value::as_str) else {
            panic!("no recording: {value}");
        };
        let base64 = data.split_once(',').map_or("", |(_, b)| b);
        BASE64.decode(base64).expect("recording is base64")
    }

    /// `packetsReceived` summed over the widget's audio `inbound-rtp`
    /// stats (0 before a call).
    pub async fn inbound_audio_packets(&self) -> u64 {
        self.audio_packets().await.received
    }

    /// `packetsSent` summed over the widget's audio `outbound-rtp` stats.
    pub async fn outbound_audio_packets(&self) -> u64 {
        self.audio_packets().await.sent
    }

    /// Both directions' audio packets, read from one `getStats`.
    pub async fn audio_packets(&self) -> AudioPackets {
        let value = self
            .eval_async(
                "const w = document.querySelector('.cg-widget');
                 const pc = w && w.callgate.pc;
                 if (!pc) { done([0, 0]); return; }
                 pc.getStats().then((stats) => {
                   let sent = 0, received = 0;
                   stats.forEach((r) => {
                     if (r.kind !== 'audio') return;
                     if (r.type === 'outbound-rtp') sent += r.packetsSent || 0;
                     if (r.type === 'inbound-rtp') received += r.packetsReceived || 0;
                   });
                   done([sent, received]);
                 }, () => done([0, 0]));",
            )
            .await;
        let count = |i: usize| value.get(i).and_then(Value::as_u64).unwrap_or(0);
        AudioPackets {
            sent: count(0),
            received: count(1),
        }
    }

    /// Writes a PNG screenshot of the page (for a person to look at).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client().screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The widget's state and status, the page's text and chromedriver's
    /// output: what a failure message needs.
    pub async fn diagnostics(&self) -> String {
        let page = self
            .client()
            .execute(DIAGNOSTICS, Vec::new())
            .await
            .map_or_else(|e| format!("(page unreadable: {e})"), |v| v.to_string());
        format!("page: {page}\n{}", self.driver.output_tail(20))
    }

    /// Ends the WebDriver session, then stops chromedriver and anything
    /// left of this Chromium.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        self.kill();
    }

    fn kill(&mut self) {
        self.driver.stop();
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        for pid in pids_with_argument(&marker) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The WebDriver capabilities: Chromium with the flags that work on these
/// machines (see the project's notes on real peers).
fn capabilities(
    profile: &Path,
    fake_audio: Option<&Path>,
    flags: &[String],
) -> serde_json::Map<String, Value> {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-quic".into(),
        format!("--user-data-dir={}", profile.display()),
        "--use-fake-ui-for-media-stream".into(),
        "--allow-loopback-in-peer-connection".into(),
        "--autoplay-policy=no-user-gesture-required".into(),
    ];
    if let Some(wav) = fake_audio {
        args.push("--use-fake-device-for-media-stream".into());
        args.push(format!(
            "--use-file-for-fake-audio-capture={}",
            wav.display()
        ));
    }
    args.extend_from_slice(flags);
    // Clipboard access without a prompt (a headless browser shows none), so
    // a test can read back what a page's Copy button wrote.
    let prefs = json!({ "profile.default_content_setting_values.clipboard": 1 });
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
        "timeouts": { "script": 30_000, "pageLoad": 30_000 },
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("capabilities are an object"),
    }
}

/// Pids of processes whose command line has exactly `argument`.
fn pids_with_argument(argument: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|&b| b == 0)
                .any(|arg| arg == argument.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// Decodes any audio ffmpeg reads (the browser's webm/opus captures) to
/// 8 kHz mono 16-bit samples, as the similarity helpers in
/// `support::audio` expect.
pub fn decode_with_ffmpeg(media: &[u8]) -> Vec<i16> {
    let ffmpeg = require_program("ffmpeg");
    let dir = temp_dir("ffmpeg");
    let input = dir.path().join("capture.webm");
    std::fs::write(&input, media).expect("write capture");
    let output = Command::new(ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(&input)
        .args([
            "-f",
            "s16le",
            "-acodec",
            "pcm_s16le",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg could not decode {} bytes: {}",
        media.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

const DISABLE_AUDIO_PROCESSING: &str = "
const media = navigator.mediaDevices;
const original = media.getUserMedia.bind(media);
const plain = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
media.getUserMedia = (constraints) => {
  const wanted = Object.assign({}, constraints);
  if (wanted.audio) {
    wanted.audio = Object.assign({}, wanted.audio === true ? {} : wanted.audio, plain);
  }
  return original(wanted);
};
return true;
";

const FORCE_TURN_RELAY: &str = "
const Native = window.RTCPeerConnection;
function RelayOnly(config) {
  return new Native(Object.assign({}, config, { iceTransportPolicy: 'relay' }));
}
RelayOnly.prototype = Native.prototype;
window.RTCPeerConnection = RelayOnly;
return true;
";

const SELECTED_LOCAL_CANDIDATE: &str = "
const w = document.querySelector('.cg-widget');
const pc = w && w.callgate.pc;
if (!pc) { done(null); return; }
pc.getStats().then((stats) => {
  let pairId = null;
  stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  const pair = pairId && stats.get(pairId);
  const local = pair && stats.get(pair.localCandidateId);
  done(local ? local.candidateType : null);
}, () => done(null));
";

/// The capture as a data URL, once the recorder has flushed its last chunk.
const STOP_RECORDING: &str = "
const capture = window.__callgateCapture;
if (!capture) { done({ error: 'no recording was started' }); return; }
const finish = () => {
  const blob = new Blob(capture.chunks, { type: 'audio/webm' });
  const reader = new FileReader();
  reader.onload = () => done({ data: reader.result });
  reader.onerror = () => done({ error: String(reader.error) });
  reader.readAsDataURL(blob);
};
if (capture.recorder.state === 'inactive') { finish(); }
else { capture.recorder.addEventListener('stop', finish); capture.recorder.stop(); }
";

const DIAGNOSTICS: &str = "
const w = document.querySelector('.cg-widget');
return {
  url: location.href,
  state: w ? w.dataset.state : null,
  reason: w ? (w.dataset.reason || null) : null,
  status: w ? w.querySelector('.cg-status').textContent : null,
  text: document.body ? document.body.innerText.slice(0, 500) : null,
};
";

/// Where a test can put files it wants to look at (screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The widget's audio packet counts at one moment of a call.
#[derive(Debug, Clone, Copy)]
pub struct AudioPackets {
    pub sent: u64,
    pub received: u64,
}

impl AudioPackets {
    /// Asserts that an echoing far end sent the browser's audio back: the
    /// browser sent at least `min_sent` packets and received at least 95 %
    /// as many. The browser's own send count is the reference because a
    /// starved machine slows Chromium's fake microphone (it drops the time
    /// it did not run); what the relay must do is return every packet.
    pub fn assert_echoed(&self, min_sent: u64) {
        assert!(
            self.sent >= min_sent && self.received * 100 >= self.sent * 95,
            "the echo came back: the browser sent {} audio packets (at least {min_sent} \
             wanted) and received {}",
            self.sent,
            self.received
        );
    }
}
