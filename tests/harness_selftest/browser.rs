//! The browser side of the harness, checked without a node: headless
//! Chromium loads the demo page and the widget from a tiny axum server
//! started here (which counts every request), the fake microphone plays the
//! speech file and a MediaRecorder capture of it decodes to the same speech,
//! the widget refuses to call without a microphone and then sends nothing,
//! offers only the codecs asked for (the server answers the widget's config
//! and refuses its POST with 503, as a draining node would), and the aiortc
//! client runs in the test virtualenv.
//!
//! The page is served with a strict Content-Security-Policy (no inline
//! script or style, no eval), so these tests also prove the widget needs
//! none of them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::task::JoinHandle;

use crate::support::audio::{self, DIFFERENT_MAX, SAME_SPEECH_MIN};
use crate::support::browser::{BROWSER_WAIT, Browser, decode_with_ffmpeg};
use crate::support::{aiortc, repo_dir};

use super::{SENTENCE_A, SENTENCE_B};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self'";

/// Serves `/demo` (placeholders filled in) and `/widget/callgate.js` on
/// 127.0.0.1:0, answers a widget's config with no ICE servers and every
/// call POST with 503, anything else 404; notes every request.
struct PageServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

/// A request the page server received.
#[derive(Clone, Debug)]
struct Seen {
    /// `METHOD /path?query`
    line: String,
    origin: Option<String>,
    body: String,
}

#[derive(Clone)]
struct Pages {
    demo: String,
    script: String,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl PageServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind page server");
        let addr = listener.local_addr().expect("page server address");
        let read = |name: &str| {
            std::fs::read_to_string(repo_dir().join("widget").join(name))
                .unwrap_or_else(|e| panic!("widget/{name}: {e}"))
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let pages = Pages {
            demo: read("demo.html")
                .replace(
                    "{{WIDGET_SCRIPT_URL}}",
                    &format!("http://{addr}/widget/callgate.js"),
                )
                .replace("{{WIDGET_ID}}", "demo"),
            script: read("callgate.js"),
            requests: requests.clone(),
        };
        let app = Router::new()
            .route("/demo", get(demo))
            .route("/widget/callgate.js", get(script))
            .route("/v1/widgets/{id}/config", get(config))
            .route("/v1/widgets/{id}/calls", post(refuse_call))
            .fallback(other)
            .with_state(pages);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests the node would have had to answer (anything under /v1/).
    fn api_requests(&self) -> Vec<Seen> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests
            .iter()
            .filter(|r| r.line.contains(" /v1/"))
            .cloned()
            .collect()
    }

    /// Lines of the API requests, e.g. `GET /v1/widgets/demo/config`.
    fn api_lines(&self) -> Vec<String> {
        self.api_requests().into_iter().map(|r| r.line).collect()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn note(pages: &Pages, request: Request) {
    let line = format!("{} {}", request.method(), request.uri());
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let seen = Seen { line, origin, body };
    pages
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(seen);
}

fn json_response(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn demo(State(pages): State<Pages>, request: Request) -> Response {
    note(&pages, request).await;
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        pages.demo,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

async fn script(State(pages): State<Pages>, request: Request) -> Response {
    note(&pages, request).await;
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages.script,
    )
        .into_response()
}

async fn config(State(pages): State<Pages>, request: Request) -> Response {
    note(&pages, request).await;
    json_response(
        StatusCode::OK,
        r#"{"ice_servers":[],"recording":"off","notice":null}"#,
    )
}

async fn refuse_call(State(pages): State<Pages>, request: Request) -> Response {
    note(&pages, request).await;
    json_response(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"draining"}"#)
}

async fn other(State(pages): State<Pages>, request: Request) -> Response {
    note(&pages, request).await;
    json_response(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#)
}

/// Opens the demo page and waits for the widget to render idle.
async fn open_demo(browser: &Browser, server: &PageServer) {
    open_demo_at(browser, server, "/demo").await;
}

async fn open_demo_at(browser: &Browser, server: &PageServer, path: &str) {
    browser.goto(&server.url(path)).await;
    browser
        .wait_for(
            "document.querySelector('#call > .cg-widget[data-state=\"idle\"]')",
            BROWSER_WAIT,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_demo_widget_under_a_strict_csp() {
    let server = PageServer::start().await;
    let browser = Browser::start(&audio::speech_wav_48k(SENTENCE_A)).await;
    open_demo(&browser, &server).await;
    let page = browser
        .eval(
            "const w = document.querySelector('.cg-widget');
             const buttons = Array.from(w.querySelectorAll('button'));
             return {
               call: w.querySelector('.cg-call').getAttribute('aria-label'),
               unlabelled: buttons.filter((b) => !b.getAttribute('aria-label')).length,
               keys: w.querySelectorAll('.cg-keypad button').length,
               live: w.querySelector('.cg-status').getAttribute('aria-live'),
               mute: w.querySelector('.cg-mute').getAttribute('aria-pressed'),
               callColour: getComputedStyle(w.querySelector('.cg-call')).backgroundColor,
               audio: w.querySelector('audio').autoplay,
               hooks: typeof w.callgate.start === 'function' && w.callgate.state === 'idle',
               status: w.querySelector('.cg-status').textContent,
             };",
        )
        .await;
    assert_eq!(page["call"], "Start a call", "{page}");
    assert_eq!(page["unlabelled"], 0, "every button has an aria-label");
    assert_eq!(page["keys"], 12, "0-9, * and #");
    assert_eq!(page["live"], "polite");
    assert_eq!(page["mute"], "false");
    assert_eq!(page["audio"], true);
    assert_eq!(page["hooks"], true);
    assert_eq!(page["status"], "Ready to call.");
    // The widget's stylesheet applied despite `style-src 'self'`.
    assert_eq!(page["callColour"], "rgb(30, 125, 50)", "{page}");
    assert!(
        server.api_requests().is_empty(),
        "nothing asked of the node"
    );
    browser.close().await;
}

/// Compares loudness envelopes on 10 ms frames (`similarity_coarse`, see
/// support::audio): the capture went 48 kHz WAV → Chromium's fake
/// microphone (looped) → MediaRecorder webm/opus → ffmpeg 8 kHz, so
/// waveforms do not line up, envelopes do. Audio processing is off, as the
/// later call tests will have it (see `Browser::disable_audio_processing`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_microphone_captures_the_speech_file() {
    let server = PageServer::start().await;
    let browser = Browser::start(&audio::speech_wav_48k(SENTENCE_A)).await;
    open_demo(&browser, &server).await;
    browser.disable_audio_processing().await;
    let tracks = browser
        .eval_async(
            "navigator.mediaDevices.getUserMedia({ audio: true }).then(
               (stream) => { window.__testStream = stream; done(stream.getAudioTracks().length); },
               (error) => done(error.name));",
        )
        .await;
    assert_eq!(tracks, 1, "getUserMedia on the fake device");
    let (_, sent) = audio::read_wav(&audio::speech_wav(SENTENCE_A, 8000));
    browser
        .start_recording("window.__testStream.getAudioTracks()[0]")
        .await;
    let speech_ms = u64::try_from(sent.len() / 8).unwrap_or(5000);
    tokio::time::sleep(std::time::Duration::from_millis(speech_ms + 1500)).await;
    let webm = browser.stop_recording().await;
    let captured = decode_with_ffmpeg(&webm);
    assert!(
        captured.len() >= sent.len(),
        "{} samples captured for {} sent",
        captured.len(),
        sent.len()
    );
    let same = audio::similarity_coarse(&sent, &captured);
    assert!(same.score >= SAME_SPEECH_MIN, "{same:?}");
    let (_, other) = audio::read_wav(&audio::speech_wav(SENTENCE_B, 8000));
    let different = audio::similarity_coarse(&other, &captured);
    assert!(different.score < DIFFERENT_MAX, "{different:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_missing_microphone_is_explained_and_nothing_is_sent() {
    let server = PageServer::start().await;
    let browser = Browser::start(&audio::speech_wav_48k(SENTENCE_A)).await;
    let cases = [
        (
            "NotAllowedError",
            "mic_denied",
            "Microphone access was refused",
        ),
        ("NotFoundError", "no_mic", "No microphone was found"),
        ("NotReadableError", "mic_busy", "could not be started"),
    ];
    for (error, reason, message) in cases {
        open_demo(&browser, &server).await;
        let script = format!(
            "navigator.mediaDevices.getUserMedia = () =>
               Promise.reject(new DOMException('test', '{error}'));
             return true;"
        );
        browser.eval(&script).await;
        browser.click(".cg-call").await;
        browser.wait_widget_state("error", BROWSER_WAIT).await;
        let reason_shown = browser
            .eval("return document.querySelector('.cg-widget').dataset.reason;")
            .await;
        assert_eq!(reason_shown, reason, "{error}");
        let status = browser.widget_status().await;
        assert!(status.contains(message), "{error}: {status}");
    }
    assert_eq!(server.api_lines(), Vec::<String>::new());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_a_microphone_says_so_and_sends_nothing() {
    let server = PageServer::start().await;
    let browser = Browser::start_without_microphone().await;
    open_demo(&browser, &server).await;
    browser.click(".cg-call").await;
    browser.wait_widget_state("error", BROWSER_WAIT).await;
    let status = browser.widget_status().await;
    assert!(status.contains("No microphone was found"), "{status}");
    assert_eq!(server.api_lines(), Vec::<String>::new());
    browser.close().await;
}

#[test]
fn the_aiortc_client_runs_in_the_test_virtualenv() {
    let help = aiortc::client_help();
    for flag in [
        "--base",
        "--widget",
        "--origin",
        "--play",
        "--record",
        "--seconds",
        "--dtmf",
        "--codec",
        "--consent",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// The `a=rtpmap` encodings (e.g. `PCMU/8000`) of an SDP.
fn rtpmaps(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_once(' ').map(|(_, codec)| codec.trim().to_owned()))
        .collect()
}

/// The widget's POST body and Origin, and the status it then shows, for
/// a call placed from `path`.
async fn refused_call_from(path: &str) -> (serde_json::Value, Option<String>, String) {
    let server = PageServer::start().await;
    let browser = Browser::start(&audio::speech_wav_48k(SENTENCE_A)).await;
    open_demo_at(&browser, &server, path).await;
    browser.click(".cg-call").await;
    browser.wait_widget_state("error", BROWSER_WAIT).await;
    let status = browser.widget_status().await;
    browser.close().await;
    let requests = server.api_requests();
    let lines: Vec<&str> = requests.iter().map(|r| r.line.as_str()).collect();
    assert_eq!(
        lines,
        ["GET /v1/widgets/demo/config", "POST /v1/widgets/demo/calls"]
    );
    let post = &requests[1];
    let body = serde_json::from_str(&post.body).expect("the POST body is JSON");
    (body, post.origin.clone(), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_offers_only_the_codecs_asked_for_and_explains_a_503() {
    let (body, origin, status) = refused_call_from("/demo?cg-codecs=pcmu").await;
    let offer = body["offer"].as_str().expect("offer");
    let codecs = rtpmaps(offer);
    assert_eq!(codecs[0], "PCMU/8000", "{codecs:?}");
    assert!(
        codecs[1..]
            .iter()
            .all(|c| c.starts_with("telephone-event/")),
        "only PCMU and telephone-event: {codecs:?}"
    );
    assert!(codecs.len() > 1, "telephone-event kept: {codecs:?}");
    assert_eq!(body["consent"], serde_json::Value::Null);
    assert!(origin.is_some_and(|o| o.starts_with("http://127.0.0.1:")));
    assert!(status.contains("busy"), "{status}");

    let (body, _, _) = refused_call_from("/demo").await;
    let codecs = rtpmaps(body["offer"].as_str().expect("offer"));
    assert!(
        codecs.iter().any(|c| c.starts_with("opus/48000"))
            && codecs.iter().any(|c| c == "PCMU/8000"),
        "the browser's default offer: {codecs:?}"
    );
}
