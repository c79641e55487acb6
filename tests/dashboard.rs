//! The customer dashboard in a real headless Chromium against an
//! in-process node: sign in with an API key, switch a number's recording
//! on and off and see the widget's next calls follow, play a recording and
//! delete it, with every step in the audit log; create a widget, allow and
//! remove its sites, a bad site refused in the API's own words; a `read`
//! key's changes refused with the API's own words; each number's call
//! quality, its worst calls and why calls ended, over the chosen period.
//! And the session cookie
//! over plain HTTP: its attributes, bad keys, foreign origins, a stretched
//! token, sign-out and revocation.

mod support;

use std::time::{Duration, Instant, SystemTime};

use callgate::domain::{Disposition, EndedBy, LegStats};
use callgate::store::CdrRecord;

use serde_json::{Value, json};
use support::audio::speech_wav_48k;
use support::browser::{BROWSER_WAIT, Browser};
use support::node::{Response, RunningNode, request};

const SPEECH: &str = "one two three four five six seven eight nine ten";
const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";
/// The number and widget every test adds (recording `off`, notice text
/// "This call may be recorded.").
const NUMBER: &str = "dash";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; media-src 'self'; img-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A node with the test number and widget, and a new key of `role`.
struct Setup {
    node: RunningNode,
    key: String,
    key_id: String,
}

async fn setup(media: std::ops::RangeInclusive<u16>, role: &str) -> Setup {
    let node = RunningNode::start(media, ECHO_ROUTE, &[]).await;
    node.add_widget(NUMBER, "demo").await;
    let key = node.api_key("demo", role);
    let key_id = api_json(&node, &key, "/v1/session")["key_id"]
        .as_str()
        .expect("the session names its key")
        .to_owned();
    Setup { node, key, key_id }
}

/// A request to the node with `Authorization: Bearer key`.
fn bearer(node: &RunningNode, key: &str, method: &str, path: &str) -> Response {
    let auth = format!("Bearer {key}");
    request(node.addr, method, path, &[("Authorization", &auth)], b"")
}

fn api_json(node: &RunningNode, key: &str, path: &str) -> Value {
    let response = bearer(node, key, "GET", path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.json()
}

/// Polls the API until `ready` accepts the JSON at `path`; fails after
/// `BROWSER_WAIT` with the last answer.
async fn api_until(setup: &Setup, path: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + BROWSER_WAIT;
    loop {
        let value = api_json(&setup.node, &setup.key, path);
        let list = value.as_array().cloned().unwrap_or_default();
        if ready(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "waited on {path}: {value:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A JS expression: whether `css` matches an element.
fn present(css: &str) -> String {
    format!("document.querySelector(\"{css}\") !== null")
}

/// Opens the dashboard and signs in with `key`.
async fn sign_in(browser: &Browser, node: &RunningNode, key: &str) {
    browser.goto(&format!("{}/dashboard", node.base())).await;
    browser
        .wait_for("!document.querySelector('#sign-in').hidden", BROWSER_WAIT)
        .await;
    browser.type_into("#key", key).await;
    browser.click("#sign-in-form button[type=submit]").await;
    let row = format!("#numbers tr[data-id='{NUMBER}']");
    browser.wait_for(&present(&row), BROWSER_WAIT).await;
}

/// Chooses `policy` for the test number in the dashboard and saves it;
/// returns the status line the page shows then.
async fn save_recording(browser: &Browser, policy: &str) -> String {
    let row = format!("#numbers tr[data-id='{NUMBER}']");
    let status = "document.querySelector('#numbers .status')";
    browser
        .eval(&format!("{status}.textContent = ''; return true;"))
        .await;
    browser
        .choose(&format!("{row} select[name=recording]"), policy)
        .await;
    browser.click(&format!("{row} button.save")).await;
    browser
        .wait_for(&format!("{status}.textContent !== ''"), BROWSER_WAIT)
        .await;
    let shown = browser.eval(&format!("return {status}.textContent;")).await;
    shown.as_str().unwrap_or_default().to_owned()
}

async fn set_recording(browser: &Browser, policy: &str) {
    let shown = save_recording(browser, policy).await;
    assert!(shown.contains(&format!("recording {policy},")), "{shown}");
}

/// The widget's notice text, or null when it shows none.
async fn widget_notice(browser: &Browser) -> Value {
    browser
        .eval(
            "const n = document.querySelector('.cg-widget .cg-notice'); return n && n.textContent;",
        )
        .await
}

/// A widget call in the current tab: answered, consent ticked when
/// `consent` (the notice must then be shown, else there must be none),
/// two seconds of microphone audio sent, hung up. Returns the call id.
async fn widget_call(browser: &Browser, consent: bool) -> String {
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", BROWSER_WAIT).await;
    if consent {
        assert_eq!(widget_notice(browser).await, "This call may be recorded.");
        browser.click(".cg-widget .cg-consent-box").await;
        let banner =
            "document.querySelector('.cg-widget .cg-recording').textContent.includes('recorded')";
        browser.wait_for(banner, BROWSER_WAIT).await;
    } else {
        assert_eq!(widget_notice(browser).await, Value::Null, "a notice");
        let choice = browser
            .eval("return document.querySelector('.cg-widget .cg-consent-box') !== null;")
            .await;
        assert_eq!(choice, false, "a consent choice");
    }
    let call_id = browser
        .eval("return document.querySelector('.cg-widget').callgate.callId;")
        .await;
    // 100 packets of 20 ms: two seconds of speech for the recording.
    let start = browser.outbound_audio_packets().await;
    let deadline = Instant::now() + BROWSER_WAIT;
    while browser.outbound_audio_packets().await < start + 100 {
        assert!(Instant::now() < deadline, "the microphone's audio stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", BROWSER_WAIT).await;
    call_id
        .as_str()
        .expect("the widget names its call")
        .to_owned()
}

/// The one recording of `call_id`, once stored.
async fn stored_recording(setup: &Setup, call_id: &str) -> String {
    let path = format!("/v1/recordings?call_id={call_id}");
    let list = api_until(setup, &path, |l| l.iter().any(|r| r["state"] == "stored")).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    list[0]["id"].as_str().unwrap().to_owned()
}

/// Asserts that `call_id` was answered, is not marked recorded and left
/// no recording.
async fn assert_not_recorded(setup: &Setup, call_id: &str) {
    let cdrs = api_until(setup, "/v1/cdrs", |l| {
        l.iter().any(|c| c["call_id"] == call_id)
    })
    .await;
    let cdr = cdrs.iter().find(|c| c["call_id"] == call_id).unwrap();
    assert_eq!(
        (&cdr["disposition"], &cdr["recorded"]),
        (&json!("answered"), &json!(false))
    );
    let path = format!("/v1/recordings?call_id={call_id}");
    assert_eq!(api_json(&setup.node, &setup.key, &path), json!([]));
}

/// The dashboard's CSV link, fetched as the page would: through the cookie.
async fn assert_csv_lists(browser: &Browser, calls: &[&str]) {
    browser.click("#cdr-filter button[type=submit]").await;
    let row = format!("#cdrs tr[data-id='{}']", calls[0]);
    browser.wait_for(&present(&row), BROWSER_WAIT).await;
    let csv = browser
        .eval_async(
            "fetch(document.querySelector('#cdr-csv').href).then(
               (r) => r.text().then((t) => done([r.status, r.headers.get('content-type'), t])),
               () => done(null));",
        )
        .await;
    assert_eq!(
        (&csv[0], &csv[1]),
        (&json!(200), &json!("text/csv; charset=utf-8"))
    );
    let text = csv[2].as_str().unwrap_or_default();
    assert!(text.starts_with("call_id,"), "{text}");
    for call in calls {
        assert!(text.contains(call), "{call} in {text}");
    }
}

/// Plays `recording` in the dashboard until the audio element has data,
/// then checks the node audited the access by this key.
async fn play(browser: &Browser, setup: &Setup, recording: &str) {
    browser.click("#recordings button.refresh").await;
    let play = format!("#recordings tr[data-id='{recording}'] button.play");
    browser.wait_for(&present(&play), BROWSER_WAIT).await;
    browser.click(&play).await;
    let audio = "document.querySelector('#player audio')";
    let playable = format!("{audio}.readyState >= 2 && {audio}.duration > 0");
    browser.wait_for(&playable, BROWSER_WAIT).await;
    let seconds = browser.eval(&format!("return {audio}.duration;")).await;
    assert!(seconds.as_f64().unwrap_or(0.0) >= 2.0, "{seconds} s");
    let audit = api_json(&setup.node, &setup.key, "/v1/audit");
    let actor = format!("key:{}", setup.key_id);
    let accessed = audit.as_array().unwrap().iter().any(|e| {
        e["action"] == "accessed" && e["target_id"] == recording && e["actor"] == actor.as_str()
    });
    assert!(accessed, "{audit:#}");
}

/// Deletes `recording` in the dashboard, confirming; the API agrees.
async fn delete(browser: &Browser, setup: &Setup, recording: &str) {
    browser
        .click(&format!(
            "#recordings tr[data-id='{recording}'] button.delete"
        ))
        .await;
    let question = browser.accept_dialog().await;
    assert!(question.contains(recording), "{question}");
    let status = "document.querySelector('#recordings .status').textContent";
    browser
        .wait_for(&format!("{status}.startsWith('Deleted')"), BROWSER_WAIT)
        .await;
    let path = format!("/v1/recordings/{recording}");
    assert_eq!(api_json(&setup.node, &setup.key, &path)["state"], "deleted");
    let audio = bearer(&setup.node, &setup.key, "GET", &format!("{path}/audio"));
    assert_eq!(audio.status, 410);
}

/// Waits for the dashboard's audit table to show at least `count` rows of
/// `action` on `target`, the newest by this key.
async fn assert_audited(browser: &Browser, action: &str, target: &str, count: usize) {
    let rows = format!("#audit tr[data-action='{action}'][data-target='{target}']");
    let enough = format!("document.querySelectorAll(\"{rows}\").length >= {count}");
    browser.wait_for(&enough, BROWSER_WAIT).await;
    let newest = browser
        .eval(&format!(
            "return document.querySelector(\"{rows}\").textContent;"
        ))
        .await;
    let text = newest.as_str().unwrap_or_default();
    assert!(text.contains("(this key)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_turns_recording_on_and_off_plays_and_deletes_with_each_step_audited() {
    let setup = setup(23000..=23499, "admin").await;
    let page = request(setup.node.addr, "GET", "/dashboard", &[], b"");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-security-policy"), Some(CSP));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));

    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    sign_in(&browser, &setup.node, &setup.key).await;
    assert_eq!(
        browser.eval("return document.cookie;").await,
        "",
        "HttpOnly"
    );
    // The embed snippet shows as text, exactly as the API gives it.
    let widget = api_json(&setup.node, &setup.key, &format!("/v1/widgets/{NUMBER}"));
    let snippet = format!("#widgets tr[data-id='{NUMBER}'] code.embed");
    let shown = browser
        .eval(&format!(
            "return document.querySelector(\"{snippet}\").textContent;"
        ))
        .await;
    assert_eq!(shown, widget["embed"]);

    // Recording on: the next widget call asks, consent is given, it is
    // recorded. The visitor's tab stays open for the next call.
    set_recording(&browser, "opt_in").await;
    let number = api_json(&setup.node, &setup.key, &format!("/v1/numbers/{NUMBER}"));
    assert_eq!(number["recording"], "opt_in");
    let dashboard = browser.open_tab().await;
    browser.goto(&format!("{}/demo", setup.node.base())).await;
    browser.disable_audio_processing().await;
    browser.embed_widget(NUMBER).await;
    let recorded_call = widget_call(&browser, true).await;
    let recording = stored_recording(&setup, &recorded_call).await;

    // Recording off: the same widget's next call neither asks nor records.
    let visitor = browser.switch_tab(dashboard).await;
    set_recording(&browser, "off").await;
    let dashboard = browser.switch_tab(visitor).await;
    let plain_call = widget_call(&browser, false).await;
    assert_not_recorded(&setup, &plain_call).await;

    browser.switch_tab(dashboard).await;
    assert_csv_lists(&browser, &[&plain_call, &recorded_call]).await;
    play(&browser, &setup, &recording).await;
    delete(&browser, &setup, &recording).await;
    assert_audited(&browser, "updated", NUMBER, 2).await;
    assert_audited(&browser, "accessed", &recording, 1).await;
    assert_audited(&browser, "deleted", &recording, 1).await;
    erase(&browser, &setup, &plain_call).await;
    assert_audited(&browser, "erased", &plain_call, 1).await;
    browser.close().await;
    setup.node.stop().await;
}

/// Erases a call from the privacy section by the reference its visitor was
/// shown; its record keeps only the billing fields afterwards.
async fn erase(browser: &Browser, setup: &Setup, call_id: &str) {
    let cdr = setup
        .node
        .store()
        .await
        .cdr(call_id)
        .await
        .unwrap()
        .unwrap();
    let reference = cdr.privacy_ref.expect("a privacy reference");
    let field = "document.querySelector('#privacy-form input[name=reference]')";
    browser
        .eval(&format!("{field}.value = '{reference}'; return true;"))
        .await;
    browser.click("#privacy button.erase").await;
    let question = browser.accept_dialog().await;
    assert!(question.contains(&reference), "{question}");
    let status = "document.querySelector('#privacy .status').textContent";
    browser
        .wait_for(
            &format!("{status}.startsWith('Erased call {call_id}')"),
            BROWSER_WAIT,
        )
        .await;
    let kept = setup
        .node
        .store()
        .await
        .cdr(call_id)
        .await
        .unwrap()
        .unwrap();
    assert!(kept.erased_at_ms.is_some());
    assert_eq!(kept.visitor_network, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_key_sees_the_dashboard_but_its_changes_are_refused_with_the_apis_message() {
    let setup = setup(23500..=23999, "read").await;
    let browser = Browser::start_without_microphone().await;
    sign_in(&browser, &setup.node, &setup.key).await;
    let row = format!("#numbers tr[data-id='{NUMBER}']");
    let controls = browser
        .eval(&format!(
            "const row = document.querySelector(\"{row}\");
             return [!document.querySelector('#read-only').hidden,
                     row.querySelector('select[name=recording]').disabled,
                     row.querySelector('select[name=retention_days]').disabled,
                     row.querySelector('button.save').disabled];"
        ))
        .await;
    assert_eq!(controls, json!([true, true, true, true]));
    let widget = format!("#widgets tr[data-id='{NUMBER}']");
    browser.wait_for(&present(&widget), BROWSER_WAIT).await;

    // The controls forced on, as a tampered page would: the API refuses,
    // and the page says why in the API's own words.
    let enable = format!(
        "document.querySelectorAll(\"{row} [disabled]\").forEach((e) => e.disabled = false);
         return true;"
    );
    browser.eval(&enable).await;
    let shown = save_recording(&browser, "opt_in").await;
    assert_eq!(
        shown,
        format!("Could not save {NUMBER}: this key may only read")
    );
    let error = browser
        .eval("return document.querySelector('#numbers .status').classList.contains('error');")
        .await;
    assert_eq!(error, true);
    let number = api_json(&setup.node, &setup.key, &format!("/v1/numbers/{NUMBER}"));
    assert_eq!(number["recording"], "off");

    // The widget controls too: off, and refused by the API when forced on.
    let controls = browser
        .eval(&format!(
            "const row = document.querySelector(\"{widget}\");
             return [document.querySelector('#widget-new fieldset').disabled,
                     row.querySelector('input[name=origin]').disabled,
                     row.querySelector('form.add-site button').disabled,
                     row.querySelector('button.remove-site').disabled];"
        ))
        .await;
    assert_eq!(controls, json!([true, true, true, true]));
    browser
        .eval(
            "document.querySelectorAll('#widgets [disabled]').forEach((e) => e.disabled = false);
             return true;",
        )
        .await;
    let (shown, error) = add_site(&browser, NUMBER, "https://shop.example.com").await;
    assert_eq!(
        (shown.as_str(), error),
        (
            "Could not add https://shop.example.com to widget dash: this key may only read",
            true
        )
    );
    browser
        .type_into("#widget-new input[name=id]", "shop")
        .await;
    browser
        .type_into("#widget-new input[name=origin]", "https://shop.example.com")
        .await;
    let (shown, error) = widgets_step(&browser, "#widget-new button[type=submit]").await;
    assert_eq!(
        (shown.as_str(), error),
        ("Could not create widget shop: this key may only read", true)
    );
    let widgets = api_json(&setup.node, &setup.key, "/v1/widgets");
    let sites: Vec<_> = widgets
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].clone(), w["allowed_origins"].clone()))
        .collect();
    assert_eq!(
        sites,
        [
            (json!("dash"), json!(["self"])),
            (json!("demo"), json!(["self"]))
        ]
    );

    // Signed out, the page's own requests carry no session.
    browser.click("#sign-out").await;
    browser
        .wait_for("!document.querySelector('#sign-in').hidden", BROWSER_WAIT)
        .await;
    let status = browser
        .eval_async("fetch('/v1/numbers').then((r) => done(r.status), () => done(0));")
        .await;
    assert_eq!(status, 401);
    browser.close().await;
    setup.node.stop().await;
}

/// Clicks `css` in the widgets section and returns the status line the
/// page shows then, and whether it shows it as an error.
async fn widgets_step(browser: &Browser, css: &str) -> (String, bool) {
    let status = "document.querySelector('#widgets .status')";
    browser
        .eval(&format!("{status}.textContent = ''; return true;"))
        .await;
    browser.click(css).await;
    browser
        .wait_for(&format!("{status}.textContent !== ''"), BROWSER_WAIT)
        .await;
    let shown = browser
        .eval(&format!(
            "return [{status}.textContent, {status}.classList.contains('error')];"
        ))
        .await;
    let text = shown[0].as_str().unwrap_or_default().to_owned();
    (text, shown[1] == true)
}

/// Types `origin` into widget `id`'s new-site field and presses Add site.
async fn add_site(browser: &Browser, id: &str, origin: &str) -> (String, bool) {
    let row = format!("#widgets tr[data-id='{id}']");
    browser
        .type_into(&format!("{row} input[name=origin]"), origin)
        .await;
    widgets_step(browser, &format!("{row} form.add-site button[type=submit]")).await
}

/// The sites the page lists for widget `id`, in order, as shown.
async fn shown_sites(browser: &Browser, id: &str) -> Value {
    let sites = format!("#widgets tr[data-id='{id}'] li[data-origin] .site");
    browser
        .eval(&format!(
            "return [...document.querySelectorAll(\"{sites}\")].map((s) => s.textContent);"
        ))
        .await
}

/// `GET /v1/widgets/{id}/config` as a page on `origin` asks for it: the
/// status the node answers with.
fn config_status(node: &RunningNode, id: &str, origin: &str) -> u16 {
    let path = format!("/v1/widgets/{id}/config");
    request(node.addr, "GET", &path, &[("Origin", origin)], b"").status
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_creates_a_widget_and_changes_its_sites_and_a_bad_site_gets_the_apis_refusal() {
    const SHOP: &str = "https://shop.example.com";
    const LOCAL: &str = "http://127.0.0.1:4173";
    const BAD: &str = "https://*.example.com";
    let setup = setup(24200..=24299, "admin").await;
    let (node, key) = (&setup.node, &setup.key);
    let browser = Browser::start_without_microphone().await;
    sign_in(&browser, node, key).await;

    // A new widget for the demo number, first allowed on the shop.
    browser
        .type_into("#widget-new input[name=id]", "shop")
        .await;
    browser
        .choose("#widget-new select[name=number_id]", "demo")
        .await;
    browser
        .type_into("#widget-new input[name=origin]", SHOP)
        .await;
    let (shown, error) = widgets_step(&browser, "#widget-new button[type=submit]").await;
    let created = format!(
        "Created widget shop for number demo, allowed on {SHOP}. \
         Its embed snippet is in the table."
    );
    assert_eq!((shown, error), (created, false));
    assert_eq!(shown_sites(&browser, "shop").await, json!([SHOP]));

    // Its Copy button puts exactly the API's embed snippet on the clipboard.
    let row = "#widgets tr[data-id='shop']";
    let (shown, error) = widgets_step(&browser, &format!("{row} button.copy")).await;
    assert_eq!(
        (shown.as_str(), error),
        ("Copied the embed snippet of shop.", false)
    );
    let widget = api_json(node, key, "/v1/widgets/shop");
    assert_eq!(widget["number_id"], "demo");
    assert_eq!(browser.clipboard_text().await, widget["embed"]);

    let (shown, error) = add_site(&browser, "shop", LOCAL).await;
    let added = format!("Added {LOCAL} to widget shop. Allowed sites: {SHOP}, {LOCAL}.");
    assert_eq!((shown, error), (added, false));
    assert_eq!(shown_sites(&browser, "shop").await, json!([SHOP, LOCAL]));

    // A wildcard is no origin: the page shows the API's own refusal, in
    // the words the API gives anyone who sends that list, and keeps the
    // typed text to be corrected; nothing changes.
    let sent = json!({ "allowed_origins": [SHOP, LOCAL, BAD] });
    let refusal = bearer_patch(node, key, "/v1/widgets/shop", &sent);
    assert_eq!(refusal.status, 400);
    assert_eq!(refusal.json()["field"], "allowed_origins[2]");
    let (shown, error) = add_site(&browser, "shop", BAD).await;
    let api_says = refusal.json()["error"].as_str().unwrap().to_owned();
    let refused = format!("Could not add {BAD} to widget shop: {api_says}");
    assert_eq!((shown, error), (refused, true));
    let field = browser
        .eval(&format!(
            "const input = document.querySelector(\"{row} input[name=origin]\");
             return [input.value, input.getAttribute('aria-invalid')];"
        ))
        .await;
    assert_eq!(field, json!([BAD, "true"]));
    assert_eq!(shown_sites(&browser, "shop").await, json!([SHOP, LOCAL]));
    let widget = api_json(node, key, "/v1/widgets/shop");
    assert_eq!(widget["allowed_origins"], json!([SHOP, LOCAL]));

    let remove = format!("{row} li[data-origin='{SHOP}'] button.remove-site");
    let (shown, error) = widgets_step(&browser, &remove).await;
    let removed = format!("Removed {SHOP} from widget shop. Allowed sites: {LOCAL}.");
    assert_eq!((shown, error), (removed, false));

    // The last site cannot go: the API says so and the widget keeps it.
    let sent = json!({ "allowed_origins": [] });
    let refusal = bearer_patch(node, key, "/v1/widgets/shop", &sent);
    assert_eq!(refusal.status, 400);
    let api_says = refusal.json()["error"].as_str().unwrap().to_owned();
    let remove = format!("{row} li[data-origin='{LOCAL}'] button.remove-site");
    let (shown, error) = widgets_step(&browser, &remove).await;
    let refused = format!("Could not remove {LOCAL} from widget shop: {api_says}");
    assert_eq!((shown, error), (refused, true));

    // What the page lists is what the node holds and enforces.
    let listed = shown_sites(&browser, "shop").await;
    assert_eq!(listed, json!([LOCAL]));
    let widget = api_json(node, key, "/v1/widgets/shop");
    assert_eq!(widget["allowed_origins"], listed);
    assert_eq!(config_status(node, "shop", LOCAL), 200);
    assert_eq!(config_status(node, "shop", SHOP), 403);

    // Created and changed twice, by this key; the refused changes left no
    // trace.
    assert_audited(&browser, "created", "shop", 1).await;
    assert_audited(&browser, "updated", "shop", 2).await;
    let actor = json!(format!("key:{}", setup.key_id));
    let audit = api_json(node, key, "/v1/audit");
    let events: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == "shop")
        .map(|e| {
            (
                e["action"].clone(),
                e["actor"] == actor,
                e["reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (json!("created"), true, json!("")),
            (json!("updated"), true, json!("allowed_origins")),
            (json!("updated"), true, json!("allowed_origins")),
        ]
    );
    browser.close().await;
    setup.node.stop().await;
}

/// A JSON `PATCH` with `Authorization: Bearer key`.
fn bearer_patch(node: &RunningNode, key: &str, path: &str, body: &Value) -> Response {
    let auth = format!("Bearer {key}");
    let headers = [("Authorization", auth.as_str())];
    request(
        node.addr,
        "PATCH",
        path,
        &headers,
        body.to_string().as_bytes(),
    )
}

/// `POST /v1/session` with `key`, from `origin` (none when empty).
fn post_session(node: &RunningNode, key: &str, origin: &str) -> Response {
    let body = json!({ "key": key }).to_string();
    let origin = [("Origin", origin)];
    let headers: &[(&str, &str)] = if origin[0].1.is_empty() { &[] } else { &origin };
    request(node.addr, "POST", "/v1/session", headers, body.as_bytes())
}

/// The value of the response's `cg_session` cookie, after checking it is
/// HttpOnly, SameSite=Strict, on /v1, not Secure (plain http), with
/// `max_age`.
fn session_cookie(response: &Response, max_age: u64) -> String {
    let line = response.header("set-cookie").expect("a Set-Cookie");
    let mut parts = line.split(';').map(str::trim);
    let value = parts.next().and_then(|p| p.strip_prefix("cg_session="));
    let attributes: Vec<&str> = parts.collect();
    let max_age = format!("Max-Age={max_age}");
    let wanted = ["Path=/v1", &max_age, "HttpOnly", "SameSite=Strict"];
    assert_eq!(attributes, wanted, "{line}");
    value.expect("cg_session").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_sets_an_httponly_strict_cookie_that_is_not_the_key_and_bad_keys_get_none() {
    let setup = setup(24000..=24099, "admin").await;
    let (node, key) = (&setup.node, &setup.key);
    let signed_in = post_session(node, key, &node.base());
    assert_eq!(signed_in.status, 204, "{}", signed_in.text());
    let token = session_cookie(&signed_in, 8 * 3600);
    let secret = key.splitn(3, '_').nth(2).unwrap();
    assert!(!token.is_empty() && !token.contains(secret), "{token}");
    assert_eq!(
        post_session(node, key, "").status,
        204,
        "scripts send no Origin"
    );

    let mut wrong = key.clone().into_bytes();
    let at = wrong.len() - 10;
    wrong[at] = if wrong[at] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    for (bad, origin, status) in [
        (wrong.as_str(), node.base(), 401),
        ("cg_nope", node.base(), 401),
        (key.as_str(), "https://evil.example".to_owned(), 403),
    ] {
        let refused = post_session(node, bad, &origin);
        assert_eq!(
            refused.status,
            status,
            "{bad} from {origin}: {}",
            refused.text()
        );
        assert_eq!(refused.header("set-cookie"), None);
    }

    // A token whose expiry was pushed back is nobody's.
    let mut fields: Vec<&str> = token.split('.').collect();
    let later = (fields[2].parse::<u64>().unwrap() + 3600).to_string();
    fields[2] = &later;
    let stretched = format!("cg_session={}", fields.join("."));
    let forged = request(
        node.addr,
        "GET",
        "/v1/numbers",
        &[("Cookie", &stretched)],
        b"",
    );
    assert_eq!(forged.status, 401);
    setup.node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_changes_need_the_nodes_own_origin_and_sign_out_or_revocation_ends_the_session() {
    let setup = setup(24100..=24199, "admin").await;
    let node = &setup.node;
    let own = node.base();
    let token = session_cookie(&post_session(node, &setup.key, &own), 8 * 3600);
    let cookie = format!("cg_session={token}");
    let with_cookie = |method: &str, path: &str, origin: Option<&str>, body: &[u8]| {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend(origin.map(|o| ("Origin", o)));
        request(node.addr, method, path, &headers, body)
    };
    let who = with_cookie("GET", "/v1/session", None, b"").json();
    assert_eq!(
        (&who["tenant_id"], &who["role"]),
        (&json!("demo"), &json!("admin"))
    );
    assert_eq!(with_cookie("GET", "/v1/numbers", None, b"").status, 200);

    let number = format!("/v1/numbers/{NUMBER}");
    let patch = br#"{"recording": "notice"}"#;
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let refused = with_cookie("PATCH", &number, origin, patch);
        assert_eq!(refused.status, 403, "{origin:?}");
        assert!(refused.text().contains("own origin"), "{}", refused.text());
    }
    let widget = format!("/v1/widgets/{NUMBER}");
    let deleted = with_cookie("DELETE", &widget, Some("https://evil.example"), b"");
    assert_eq!(deleted.status, 403);
    assert_eq!(api_json(node, &setup.key, &number)["recording"], "off");
    let changed = with_cookie("PATCH", &number, Some(&own), patch);
    assert_eq!(changed.status, 200, "{}", changed.text());
    let audit = api_json(node, &setup.key, "/v1/audit");
    let updates: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "updated" && e["target_id"] == NUMBER)
        .map(|e| e["actor"].clone())
        .collect();
    assert_eq!(updates, [json!(format!("key:{}", setup.key_id))]);

    let out = request(
        node.addr,
        "DELETE",
        "/v1/session",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(out.status, 204);
    assert_eq!(session_cookie(&out, 0), "");
    let (code, _, stderr) = node.command(&["apikey", "revoke", &setup.key_id]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(with_cookie("GET", "/v1/numbers", None, b"").status, 401);
    setup.node.stop().await;
}

/// A call of the test tenant on `number`, placed `days_ago`, with each
/// leg's worst MOS in hundredths (`None`: never measured, not answered).
fn quality_cdr(id: &str, number: &str, days_ago: u64, mos: Option<(u16, u16)>) -> CdrRecord {
    let placed = SystemTime::now() - Duration::from_secs(days_ago * 86_400 + 3_600);
    let created_at_ms = placed
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut cdr = CdrRecord {
        call_id: id.into(),
        tenant_id: "demo".into(),
        number_id: number.into(),
        widget_id: number.into(),
        trunk: Some("echo".into()),
        node_id: "node-1".into(),
        created_at_ms,
        answered_at_ms: None,
        ended_at_ms: created_at_ms + 30_000,
        duration_ms: 0,
        disposition: Disposition::Failed,
        sip_code: None,
        sip_reason: None,
        q850_cause: None,
        ended_by: EndedBy::Visitor,
        browser_codec: Some("PCMU".into()),
        trunk_codec: Some("PCMU".into()),
        browser_stats: LegStats::default(),
        trunk_stats: LegStats::default(),
        visitor_network: None,
        recorded: false,
        privacy_ref: None,
        erased_at_ms: None,
        end_reason: None,
    };
    match mos {
        Some((browser, trunk)) => {
            cdr.answered_at_ms = Some(cdr.created_at_ms + 2_000);
            cdr.disposition = Disposition::Answered;
            cdr.sip_code = Some(200);
            cdr.browser_stats.mos_worst_x100 = Some(browser);
            cdr.browser_stats.mos_average_x100 = Some(browser);
            cdr.trunk_stats.mos_worst_x100 = Some(trunk);
            cdr.trunk_stats.mos_average_x100 = Some(trunk);
        }
        None => {
            cdr.disposition = Disposition::Busy;
            cdr.sip_code = Some(486);
            cdr.sip_reason = Some("Busy Here".into());
            cdr.q850_cause = Some(17);
        }
    }
    cdr
}

/// The cells of the rows `css` matches, as text.
async fn table_rows(browser: &Browser, css: &str) -> Value {
    browser
        .eval(&format!(
            "return Array.from(document.querySelectorAll(\"{css}\"))
               .map((row) => Array.from(row.cells).map((c) => c.textContent));"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_each_numbers_call_quality_and_why_calls_ended_over_the_chosen_period()
{
    let setup = setup(24300..=24399, "read").await;
    let store = setup.node.store().await;
    for cdr in [
        quality_cdr("good", NUMBER, 1, Some((440, 438))),
        quality_cdr("choppy", NUMBER, 2, Some((441, 242))),
        quality_cdr("busy", NUMBER, 3, None),
        quality_cdr("long-ago", NUMBER, 20, Some((150, 420))),
        quality_cdr("other", "demo", 1, Some((395, 410))),
    ] {
        store.insert_cdr(&cdr).await.unwrap();
    }

    // The API: the last week by default in the page; here, all time.
    let all = api_json(&setup.node, &setup.key, "/v1/cdrs/summary");
    let dash = all["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["number_id"] == NUMBER)
        .unwrap()
        .clone();
    assert_eq!(
        (&dash["calls"], &dash["answered"], &dash["measured"]),
        (&json!(4), &json!(3), &json!(3))
    );
    assert_eq!(dash["worst_calls"][0]["call_id"], "long-ago");
    assert_eq!(dash["worst_calls"][0]["leg"], "browser");
    assert_eq!(
        all["causes"][0],
        json!({"disposition": "answered", "sip_code": 200, "sip_reason": null,
               "q850_cause": null, "calls": 4})
    );
    let refused = bearer(
        &setup.node,
        &setup.key,
        "GET",
        "/v1/cdrs/summary?from=yesterday",
    );
    assert_eq!(refused.status, 400);
    assert!(refused.text().contains("from"), "{}", refused.text());

    // The page: the last week, every number.
    let browser = Browser::start_without_microphone().await;
    sign_in(&browser, &setup.node, &setup.key).await;
    let dash_row = format!("#quality-numbers tr[data-id='{NUMBER}']");
    browser.wait_for(&present(&dash_row), BROWSER_WAIT).await;
    assert_eq!(
        table_rows(&browser, &dash_row).await,
        json!([[NUMBER, "3", "2", "2", "1", "0", "0", "0", "0", "1", "3.40"]]),
        "one very good call, one not recommended (2.42 on the phone line)"
    );
    let worst = table_rows(&browser, "#worst-calls tbody tr").await;
    let worst: Vec<(&str, &str, &str)> = worst
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[2].as_str().unwrap(),
                r[3].as_str().unwrap(),
                r[4].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        worst,
        [
            ("2.42", "the phone line", "choppy"),
            ("3.95", "the visitor", "other"),
            ("4.38", "the phone line", "good")
        ]
    );
    let causes = table_rows(&browser, "#causes tbody tr").await;
    assert_eq!(
        causes,
        json!([
            ["answered", "200", "", "", "3"],
            ["busy", "486", "Busy Here", "17", "1"]
        ])
    );

    // A period of its own, one number: the call of long ago is its worst.
    browser
        .eval(&format!(
            "const form = document.querySelector('#cdr-filter');
             const from = new Date(Date.now() - 30 * 86400000);
             from.setMinutes(from.getMinutes() - from.getTimezoneOffset());
             form.elements.from.value = from.toISOString().slice(0, 16);
             form.elements.number_id.value = '{NUMBER}';
             return true;"
        ))
        .await;
    browser.click("#cdr-filter button[type=submit]").await;
    browser
        .wait_for(
            "document.querySelector(\"#worst-calls tbody tr code\")?.textContent === 'long-ago'",
            BROWSER_WAIT,
        )
        .await;
    let rows = table_rows(&browser, "#quality-numbers tbody tr").await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "only {NUMBER}: {rows}");
    assert_eq!(rows[0][1], "4");
    browser.close().await;
    setup.node.stop().await;
}
