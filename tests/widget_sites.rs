//! The widget on a customer's own website: a page on another origin (a
//! second local web server) embeds the one tag and calls through the node,
//! over HTTP and over HTTPS/WSS with the node's own TLS; the CORS answers
//! that make this work and refuse every other site; the client address
//! taken from a trusted proxy's headers and no one else's.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::aiortc::AiortcCall;
use support::audio::{
    SAME_SPEECH_MIN, SPEECH_TURNS, Similarity, similarity_coarse_within, speech_pcm_8k,
    speech_wav_48k,
};
use support::browser::{Browser, decode_with_ffmpeg};
use support::node::{Response, RunningNode, metric, request};
use support::pebble::Pebble;
use support::pki::{TestPki, served_certificate, spki_sha256};
use support::ports::free_tcp_port;
use support::site::CustomerSite;

const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";
const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";
const SHOP: &str = "https://shop.example.com";
/// What the widget says on a site its widget does not allow.
const NOT_THIS_SITE: &str = "Calls are not enabled for this website.";

fn request_with(
    node: &RunningNode,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    request(node.addr, method, path, headers, b"")
}

/// Lets `origins` (besides the node's own) embed the demo widget, as the
/// customer would through the admin API.
fn allow_sites(node: &RunningNode, origins: &[&str]) {
    let key = node.api_key("demo", "admin");
    let mut allowed = vec!["self"];
    allowed.extend_from_slice(origins);
    let body = serde_json::json!({ "allowed_origins": allowed }).to_string();
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str())];
    let response = request(
        node.addr,
        "PATCH",
        "/v1/widgets/demo",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
}

/// No `Access-Control-*` header at all: the browser hides the answer.
fn assert_no_cors(response: &Response, what: &str) {
    let cors: Vec<_> = response
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{what}: {cors:?}");
}

fn assert_readable_by(response: &Response, origin: &str, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{what}"
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        None,
        "{what}"
    );
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "vary" && v.contains("origin")),
        "{what}: {:?}",
        response.headers
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_the_widgets_own_sites_and_refuses_every_other() {
    let node = RunningNode::start(26000..=26099, ECHO_ROUTE, &[]).await;
    allow_sites(&node, &[SHOP]);
    let calls = "/v1/widgets/demo/calls";
    let preflight = |origin: &str, path: &str, method: &str| {
        let headers = [
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "content-type"),
        ];
        request_with(&node, "OPTIONS", path, &headers)
    };

    let allowed = preflight(SHOP, calls, "POST");
    assert_eq!(allowed.status, 204, "{}", allowed.text());
    assert_readable_by(&allowed, SHOP, "preflight");
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        allowed.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("600"));
    let config_preflight = preflight(SHOP, "/v1/widgets/demo/config", "GET");
    assert_eq!(config_preflight.status, 204);

    for (origin, path, status) in [
        ("https://evil.example", calls, 403),
        ("http://shop.example.com", calls, 403),
        ("null", calls, 403),
        (SHOP, "/v1/widgets/nope/calls", 404),
    ] {
        let refused = preflight(origin, path, "POST");
        assert_eq!(refused.status, status, "{origin} {path}");
        assert_no_cors(&refused, origin);
    }

    // A simple GET of the config: readable from the shop only.
    let config = request_with(&node, "GET", "/v1/widgets/demo/config", &[("Origin", SHOP)]);
    assert_eq!(config.status, 200);
    assert_readable_by(&config, SHOP, "config");
    let evil = [("Origin", "https://evil.example")];
    let refused = request_with(&node, "GET", "/v1/widgets/demo/config", &evil);
    assert_eq!(refused.status, 403);
    assert_no_cors(&refused, "config from another site");

    // A call request the shop's page may read the refusal of, and one it
    // may not.
    let junk = br#"{"offer": 5}"#;
    let bad = request(node.addr, "POST", calls, &[("Origin", SHOP)], junk);
    assert_eq!(bad.status, 400);
    assert_readable_by(&bad, SHOP, "a bad request's error");
    assert!(bad.text().contains("offer"), "{}", bad.text());
    let foreign = request(node.addr, "POST", calls, &evil, junk);
    assert_eq!(foreign.status, 403);
    assert_no_cors(&foreign, "a call from another site");

    // The admin API and the dashboard stay same-origin.
    let admin = preflight(SHOP, "/v1/numbers", "GET");
    assert_no_cors(&admin, "admin preflight");
    assert_ne!(admin.status, 204);
    let admin = request_with(&node, "GET", "/v1/numbers", &[("Origin", SHOP)]);
    assert_no_cors(&admin, "admin request");

    // The script loads on any site and revalidates cheaply.
    let script = request_with(&node, "GET", "/widget/callgate.js", &[]);
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("cross-origin-resource-policy"),
        Some("cross-origin")
    );
    assert_eq!(script.header("cache-control"), Some("public, max-age=300"));
    let etag = script.header("etag").expect("an ETag").to_owned();
    let again = request_with(
        &node,
        "GET",
        "/widget/callgate.js",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let stale = [("If-None-Match", "\"something-else\"")];
    assert_eq!(
        request_with(&node, "GET", "/widget/callgate.js", &stale).status,
        200
    );

    assert_eq!(metric(node.addr, "callgate_calls_started_total"), 0.0);
    node.stop().await;
}

/// Junk call requests (refused after the rate limits, before anything is
/// made) from a proxy that says the client is `client`: their statuses.
fn junk_calls_from(node: &RunningNode, client: &str, count: usize) -> Vec<u16> {
    let origin = node.base();
    let headers = [("Origin", origin.as_str()), ("X-Forwarded-For", client)];
    let path = "/v1/widgets/demo/calls";
    (0..count)
        .map(|_| request(node.addr, "POST", path, &headers, b"{}").status)
        .collect()
}

/// A 2 s aiortc call whose request says `X-Forwarded-For: client`; the
/// network its CDR keeps.
async fn call_network(node: &RunningNode, client: &str) -> Option<String> {
    let outcome = AiortcCall::new(&node.base(), "demo", &node.base(), &speech_wav_48k(SPEECH))
        .seconds(2.0)
        .forwarded_for(client)
        .spawn()
        .wait_async()
        .await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    node.wait_for_cdrs(1).await[0].visitor_network.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_names_the_client_and_no_one_else_can() {
    let _turn = SPEECH_TURNS.lock().await;
    let limit = [("CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP", "3")];

    // Behind a proxy on loopback: each visitor has a limit of its own and
    // the CDR keeps the visitor's network.
    let trusted = "trusted_proxies = [\"127.0.0.1\"]";
    let node = RunningNode::start_with_http(26100..=26199, trusted, ECHO_ROUTE, &limit).await;
    let network = call_network(&node, "198.51.100.23").await;
    assert_eq!(network.as_deref(), Some("198.51.100.0/24"));
    assert_eq!(
        junk_calls_from(&node, "203.0.113.1", 4),
        [400, 400, 400, 429]
    );
    assert_eq!(
        junk_calls_from(&node, "203.0.113.2", 1),
        [400],
        "another visitor"
    );
    node.stop().await;

    // The same headers from a peer that is no trusted proxy: ignored.
    let other = "trusted_proxies = [\"10.0.0.0/8\"]";
    let node = RunningNode::start_with_http(26200..=26299, other, ECHO_ROUTE, &limit).await;
    let network = call_network(&node, "198.51.100.23").await;
    assert_eq!(network.as_deref(), Some("127.0.0.0/24"));
    assert_eq!(junk_calls_from(&node, "203.0.113.1", 2), [400, 400]);
    assert_eq!(
        junk_calls_from(&node, "203.0.113.2", 1),
        [429],
        "spoofed addresses share the peer's limit"
    );
    node.stop().await;
}

/// Chromium's fake microphone loops the speech, so the echo can start
/// anywhere in a capture: search two loops of lags.
fn speech_in_loop(received: &[i16]) -> Similarity {
    let sent = speech_pcm_8k(SPEECH);
    let one_loop = Duration::from_millis(sent.len() as u64 / 8);
    similarity_coarse_within(&sent, received, one_loop * 2)
}

/// Loads the shop's page and waits for its widget.
async fn open_shop(browser: &Browser, site: &CustomerSite) {
    browser.goto(&site.page()).await;
    browser
        .wait_for(
            "document.querySelector('.cg-widget') !== null",
            Duration::from_secs(20),
        )
        .await;
}

/// Presses Call on the page's widget and checks the visitor hears the
/// speech echoed; the widget is left answered.
async fn call_and_hear_the_echo(browser: &Browser) {
    browser.disable_audio_processing().await;
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_widget_state("answered", Duration::from_secs(20))
        .await;
    browser.start_recording_remote_audio().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let heard = decode_with_ffmpeg(&browser.stop_recording().await);
    let score = speech_in_loop(&heard);
    assert!(
        score.score >= SAME_SPEECH_MIN,
        "the visitor hears the echo: {score:?}"
    );
}

/// The widget's events socket URL (it carries the call's token).
async fn events_url(browser: &Browser) -> String {
    let url = browser
        .eval("return document.querySelector('.cg-widget').callgate.eventsUrl")
        .await;
    url.as_str().expect("an open events socket").to_owned()
}

/// Hangs the call up from the page with the cross-origin `DELETE` the
/// widget sends when a page closes; the status the page could read (0 when
/// the browser hid the answer).
async fn delete_from_page(browser: &Browser) -> u64 {
    let events = events_url(browser).await;
    let url = events
        .replacen("ws", "http", 1)
        .replacen("/events?", "?", 1);
    let script = format!(
        "fetch({url:?}, {{ method: 'DELETE', keepalive: true, mode: 'cors', credentials: 'omit' }})
           .then((r) => done(r.status), () => done(0));"
    );
    browser.eval_async(&script).await.as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_on_a_customer_site_calls_through_the_one_tag() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(26300..=26399, ECHO_ROUTE, &[]).await;
    let script = format!("{}/widget/callgate.js", node.base());
    let site = CustomerSite::start(&script, "demo");
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    let first_tab = browser.open_tab().await;

    // The customer has not yet listed the site: the widget says so, and no
    // call starts.
    open_shop(&browser, &site).await;
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_widget_state("error", Duration::from_secs(20))
        .await;
    assert_eq!(browser.widget_status().await, NOT_THIS_SITE);
    assert_eq!(metric(node.addr, "callgate_calls_started_total"), 0.0);

    // Listed, the same page calls, hears its echo, and hangs up with the
    // cross-origin DELETE whose answer it may read.
    allow_sites(&node, &[site.origin()]);
    open_shop(&browser, &site).await;
    call_and_hear_the_echo(&browser).await;
    assert!(events_url(&browser).await.starts_with("ws://127.0.0.1:"));
    assert_eq!(
        delete_from_page(&browser).await,
        204,
        "the DELETE passed CORS"
    );
    browser
        .wait_widget_state("ended", Duration::from_secs(10))
        .await;
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(cdrs[0].disposition.as_str(), "answered");
    assert_eq!(cdrs[0].ended_by.as_str(), "visitor");

    // Closing the tab mid-call ends the call at once, not after the
    // browser's 15 s silence.
    open_shop(&browser, &site).await;
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_widget_state("answered", Duration::from_secs(20))
        .await;
    let closed = Instant::now();
    browser.close_tab(first_tab).await;
    let cdrs = node.wait_for_cdrs(2).await;
    let ended_after = closed.elapsed();
    assert_eq!(cdrs[0].ended_by.as_str(), "visitor", "{cdrs:?}");
    assert!(
        ended_after < Duration::from_secs(5),
        "ended after {ended_after:?}"
    );
    assert_eq!(metric(node.addr, "callgate_calls_active"), 0.0);
    browser.close().await;
    node.stop().await;
}

/// `curl` against the node, trusting `ca`; its status line and headers.
fn curl_head(url: &str, ca: &Path) -> String {
    let output = std::process::Command::new(support::require_program("curl"))
        .args([
            "-sS",
            "-i",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--http2",
            "--cacert",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_site_and_node_call_over_wss_and_a_new_certificate_needs_no_restart() {
    let _turn = SPEECH_TURNS.lock().await;
    let pki = TestPki::generate("widget");
    let ca = pki.ca_file();
    let (first_cert, first_key) = pki.server_files();
    let (next_cert, next_key) = pki.issue("renewed");
    let served = tempfile::tempdir().unwrap();
    let (cert, key) = (
        served.path().join("cert.pem"),
        served.path().join("key.pem"),
    );
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let redirect = free_tcp_port();
    let http = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\nredirect_listen = \"127.0.0.1:{redirect}\"",
        cert.display().to_string(),
        key.display().to_string()
    );
    let node = RunningNode::start_with_http(26400..=26499, &http, ECHO_ROUTE, &[]).await;
    assert!(node.base().starts_with("https://"));

    // HTTP/2 over TLS with HSTS; the plain port sends visitors to HTTPS.
    let health = curl_head(&format!("{}/healthz", node.base()), &ca);
    assert!(health.starts_with("http/2 200"), "{health}");
    assert!(
        health.contains("strict-transport-security: max-age=31536000"),
        "{health}"
    );
    let moved = curl_head(&format!("http://127.0.0.1:{redirect}/demo?x=1"), &ca);
    assert!(moved.starts_with("http/1.1 308"), "{moved}");
    assert!(
        moved.contains(&format!("location: {}/demo?x=1", node.base())),
        "{moved}"
    );

    let script = format!("{}/widget/callgate.js", node.base());
    let site = CustomerSite::start_https(&script, "demo", &first_cert, &first_key);
    node.set_allowed_origins("demo", &["self", site.origin()])
        .await;
    let trusted = format!(
        "--ignore-certificate-errors-spki-list={},{}",
        spki_sha256(&first_cert),
        spki_sha256(&next_cert)
    );
    let browser = Browser::start_with_flags(&speech_wav_48k(SPEECH), &[trusted]).await;
    open_shop(&browser, &site).await;
    call_and_hear_the_echo(&browser).await;
    assert!(events_url(&browser).await.starts_with("wss://127.0.0.1:"));

    // A renewed certificate on disk is served to the next connection while
    // the call (and its WSS events socket) goes on.
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    assert_eq!(
        served_certificate(node.addr).trim(),
        read(&first_cert).trim()
    );
    std::fs::copy(&next_key, &key).unwrap();
    std::fs::copy(&next_cert, &cert).unwrap();
    let renewed = support::wait_until(Duration::from_secs(15), || {
        served_certificate(node.addr).trim() == read(&next_cert).trim()
    });
    assert!(renewed, "the renewed certificate is served");
    // A broken file is refused and the renewed certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        served_certificate(node.addr).trim(),
        read(&next_cert).trim()
    );

    let before = browser.inbound_audio_packets().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        browser.inbound_audio_packets().await > before + 50,
        "the call goes on"
    );
    browser.click(".cg-widget .cg-hangup").await;
    browser
        .wait_widget_state("ended", Duration::from_secs(10))
        .await;
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(cdrs[0].disposition.as_str(), "answered");
    assert_eq!(
        cdrs[0].ended_by.as_str(),
        "visitor",
        "hung up over the old WSS socket"
    );
    browser.close().await;
    node.stop().await;
}

/// Whether `curl`, trusting only `ca`, gets a 200 from `https://localhost:PORT/healthz`.
fn healthz_trusted_by(port: u16, ca: &Path) -> bool {
    let status = std::process::Command::new(support::require_program("curl"))
        .args(["-sS", "--fail", "-o", "/dev/null", "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://localhost:{port}/healthz"))
        .status()
        .expect("run curl");
    status.success()
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_issues_the_certificate_the_node_serves_and_keeps_it_across_a_restart() {
    let pebble = Pebble::start();
    let redirect = free_tcp_port();
    let http = format!(
        "redirect_listen = \"127.0.0.1:{redirect}\"\n[http.acme]\ndomains = [\"localhost\"]\n\
         contact = \"ops@example.com\"\ndirectory_url = \"{}\"\ndirectory_ca_file = {:?}\n",
        pebble.directory_url(),
        pebble.directory_ca_file().display().to_string()
    );
    let node = RunningNode::start_with_http(26500..=26599, &http, ECHO_ROUTE, &[]).await;
    assert!(node.base().starts_with("https://"));
    let root = node.data.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.root_pem()).unwrap();
    let port = node.addr.port();
    let issued = support::wait_until(Duration::from_secs(60), || healthz_trusted_by(port, &root));
    assert!(issued, "a client trusting the ACME CA reaches the node");

    // Kept in the cache, the key readable by the node's user only.
    let cache = node.data.path().join("acme");
    let cached = std::fs::read_to_string(cache.join("cert.pem")).unwrap();
    for secret in ["key.pem", "account.json"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cache.join(secret)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{secret} is owner-only: {mode:o}");
    }
    assert!(
        cached.contains(served_certificate(node.addr).trim()),
        "the cached certificate is served"
    );
    // The plain listener answers challenges (none open now) and redirects the rest.
    let challenge = request(
        support::site::loopback(redirect),
        "GET",
        "/.well-known/acme-challenge/unknown-token",
        &[],
        b"",
    );
    assert_eq!(challenge.status, 404);
    let other = request(support::site::loopback(redirect), "GET", "/demo", &[], b"");
    assert_eq!(other.status, 308);

    // A restarted node serves the cached certificate from its first
    // connection, without asking the CA again.
    let data = node.stop_keeping_data().await;
    let node = RunningNode::start_configured(data, 26500..=26599, &http, ECHO_ROUTE, &[]).await;
    assert_eq!(served_certificate(node.addr).trim(), leaf_of(&cached));
    assert!(healthz_trusted_by(node.addr.port(), &root));
    node.stop().await;
}

/// The first certificate of a PEM chain.
fn leaf_of(chain: &str) -> &str {
    let end = chain
        .find("-----END CERTIFICATE-----")
        .expect("a certificate")
        + 25;
    chain[..end].trim()
}
