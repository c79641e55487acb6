//! Consent-gated recording end to end: aiortc calls through an in-process
//! node to its echo trunk (or to sipp, for a hold), on numbers with each recording policy; what is
//! (and is not) on disk and in the database afterwards; the recording
//! decrypted by `callgate recording decrypt` and compared with the speech.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use callgate::store::RecordingRow;
use support::aiortc::{AiortcCall, AiortcOutcome};
use support::audio::{
    SAME_SPEECH_MIN, SPEECH_TURNS, read_wav_channels, similarity_coarse_within, similarity_within,
    speech_pcm_8k, speech_wav_48k,
};
use support::node::{RunningNode, metric};
use support::recordings::{decrypt_cli, entropy, files_under};
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};

const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";
const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";

fn speech_8k() -> Vec<i16> {
    speech_pcm_8k(SPEECH)
}

async fn call(
    node: &RunningNode,
    widget: &str,
    setup: impl FnOnce(AiortcCall) -> AiortcCall,
) -> AiortcOutcome {
    let play = speech_wav_48k(SPEECH);
    let client = AiortcCall::new(&node.base(), widget, &node.base(), &play)
        .codec("pcmu")
        .seconds(6.0);
    let outcome = setup(client).spawn().wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    outcome
}

async fn recordings_of_widget(node: &RunningNode, widget: &str) -> Vec<RecordingRow> {
    let cdr = node.cdr_of_widget(widget).await;
    node.store()
        .await
        .recordings_for_call(&cdr.call_id)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consented_call_is_recorded_encrypted_and_decrypts_to_both_voices() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(18000..=18499, ECHO_ROUTE, &[]).await;
    let outcome = call(&node, "demo", |c| c.consent("granted")).await;
    assert!(
        outcome.recording_events().contains(&true),
        "the widget was told the call is recorded: {}",
        outcome.report()
    );
    let cdr = node.cdr_of_widget("demo").await;
    assert!(cdr.recorded, "{cdr:?}");
    let recordings = recordings_of_widget(&node, "demo").await;
    assert_eq!(recordings.len(), 1, "{recordings:#?}");
    let recording = &recordings[0];
    assert_eq!(
        (recording.state.as_str(), recording.complete),
        ("stored", true)
    );
    assert_eq!(recording.key_id, "development");

    // What lies on disk is ciphertext: no RIFF header, no readable audio.
    let stored = node
        .data
        .path()
        .join("recordings")
        .join(&recording.object_path);
    let blob = std::fs::read(&stored).unwrap();
    assert!(!blob.windows(4).any(|w| w == b"RIFF"));
    let body = &blob[200..];
    assert!(entropy(body) > 7.9, "entropy {:.3}", entropy(body));
    assert!(files_under(&node.data.path().join("spool")).is_empty());

    let out = node.data.path().join("decrypted.wav");
    let (code, stderr) = decrypt_cli(&node.config_file(), &recording.id, &out);
    assert_eq!(code, 0, "{stderr}");
    let (rate, channels) = read_wav_channels(&out);
    assert_eq!((rate, channels.len()), (8000, 2));
    let (visitor, callee) = (&channels[0], &channels[1]);
    let speech = speech_8k();
    let heard = similarity_within(&speech, visitor, std::time::Duration::from_secs(2));
    assert!(heard.score >= SAME_SPEECH_MIN, "visitor channel: {heard:?}");
    // The echo trunk's audio is the visitor's speech, a moment later.
    let echoed = similarity_within(&speech, callee, std::time::Duration::from_secs(2));
    assert!(
        echoed.score >= SAME_SPEECH_MIN,
        "callee channel: {echoed:?}"
    );
    assert!(echoed.lag_ms >= heard.lag_ms, "{heard:?} {echoed:?}");

    // The recording covers the consented part: the whole answered call.
    let recorded_ms = visitor.len() as i64 / 8;
    assert!(
        (recorded_ms - cdr.duration_ms).abs() <= 500,
        "recorded {recorded_ms} ms of a {} ms call",
        cdr.duration_ms
    );
    let store = node.store().await;
    let audit = store.audit_entries(&recording.id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].action.as_str(), audit[0].reason.as_str()),
        ("accessed", "cli")
    );
    let receipts = store.consent_receipts_for_call(&cdr.call_id).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].hash, recording.receipt_hash);
    assert_eq!(receipts[0].method, "api");
    assert!(metric(node.addr, "callgate_recording_bytes_written_total") >= blob.len() as f64);
    assert_eq!(metric(node.addr, "callgate_recordings_active"), 0.0);
    assert_eq!(
        metric(node.addr, "callgate_recording_frames_dropped_total"),
        0.0
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_consent_nothing_is_recorded_anywhere() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(18500..=18999, ECHO_ROUTE, &[]).await;
    node.add_recorded_widget("off", "demo", "off", "discard")
        .await;
    node.add_recorded_widget("notice", "demo", "notice", "discard")
        .await;
    node.add_recorded_widget("never", "demo", "opt_in", "discard")
        .await;
    // opt_in declined, opt_in never asked, off with consent, notice declined.
    call(&node, "demo", |c| c.consent("declined").seconds(3.0)).await;
    call(&node, "never", |c| c.seconds(3.0)).await;
    call(&node, "off", |c| c.consent("granted").seconds(3.0)).await;
    let outcome = call(&node, "notice", |c| c.consent("declined").seconds(3.0)).await;
    assert!(
        !outcome.recording_events().contains(&true),
        "{}",
        outcome.report()
    );

    let cdrs = node.wait_for_cdrs(4).await;
    assert!(cdrs.iter().all(|c| !c.recorded), "{cdrs:#?}");
    let store = node.store().await;
    for cdr in &cdrs {
        assert!(
            store
                .recordings_for_call(&cdr.call_id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .consent_receipts_for_call(&cdr.call_id)
                .await
                .unwrap()
                .is_empty()
        );
    }
    for dir in ["recordings", "spool"] {
        let files = files_under(&node.data.path().join(dir));
        assert!(files.is_empty(), "{dir}: {files:?}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn notice_numbers_record_unless_declined() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(19000..=19499, ECHO_ROUTE, &[]).await;
    node.add_recorded_widget("notice", "demo", "notice", "discard")
        .await;
    call(&node, "notice", |c| c.seconds(3.0)).await;
    let recordings = recordings_of_widget(&node, "notice").await;
    assert_eq!(recordings.len(), 1);
    let cdr = node.cdr_of_widget("notice").await;
    let receipts = node
        .store()
        .await
        .consent_receipts_for_call(&cdr.call_id)
        .await
        .unwrap();
    assert_eq!(receipts[0].method, "notice");
    assert_eq!(receipts[0].policy, "notice");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_granted_then_revoked_keeps_only_that_window_or_nothing() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(19500..=19999, ECHO_ROUTE, &[]).await;
    node.add_recorded_widget("keep", "demo", "opt_in", "keep")
        .await;
    node.add_recorded_widget("discard", "demo", "opt_in", "discard")
        .await;
    let window = |c: AiortcCall| {
        c.seconds(8.0)
            .consent_change(3.0, "granted")
            .consent_change(6.0, "revoked")
    };
    let kept = call(&node, "keep", window).await;
    assert_eq!(
        kept.recording_events(),
        [false, true, false],
        "{}",
        kept.report()
    );
    call(&node, "discard", window).await;

    let keep = recordings_of_widget(&node, "keep").await;
    assert_eq!(keep.len(), 1);
    let out = node.data.path().join("window.wav");
    let (code, stderr) = decrypt_cli(&node.config_file(), &keep[0].id, &out);
    assert_eq!(code, 0, "{stderr}");
    let (_, channels) = read_wav_channels(&out);
    let recorded_ms = channels[0].len() as i64 / 8;
    assert!(
        (recorded_ms - 3_000).abs() <= 100,
        "the recording covers the 3 s consented: {recorded_ms} ms"
    );

    let discard = recordings_of_widget(&node, "discard").await;
    assert_eq!(
        discard.len(),
        1,
        "the row stays as the record of a deletion"
    );
    let discarded = &discard[0];
    assert_eq!(discarded.state, "deleted");
    assert_eq!(discarded.wrapped_key, None);
    let stored = node
        .data
        .path()
        .join("recordings")
        .join(&discarded.object_path);
    assert!(!stored.exists(), "no blob of a discarded recording");
    let audit = node
        .store()
        .await
        .audit_entries(&discarded.id)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].action.as_str(), audit[0].reason.as_str()),
        ("deleted", "consent_revoked")
    );
    let (code, stderr) = decrypt_cli(
        &node.config_file(),
        &discarded.id,
        &out.with_extension("2.wav"),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("was deleted"), "{stderr}");
    let revoked = "callgate_recording_deletions_total{reason=\"consent_revoked\"}";
    assert_eq!(metric(node.addr, revoked), 1.0);
    node.stop().await;
}

/// The loudest sample of `channel` between `from` and `to` seconds.
fn peak(channel: &[i16], from: f64, to: f64) -> i16 {
    let at = |seconds: f64| ((seconds * 8000.0) as usize).min(channel.len());
    channel[at(from)..at(to)]
        .iter()
        .map(|sample| sample.saturating_abs())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_by_the_trunk_keeps_the_visitor_out_of_the_recording_until_it_resumes() {
    let _turn = SPEECH_TURNS.lock().await;
    // The trunk holds the call 1 s after the answer and resumes it 1 s
    // later, while the visitor talks throughout.
    let mut sipp = Sipp::uas("uas_reinvite_hold.xml").rtp_echo().spawn();
    let trunk = format!(
        "[[sip.trunks]]\nname = \"holding\"\naddress = \"{}\"\n\
         [[sip.routes]]\nname = \"demo\"\ntrunks = [\"holding\"]\n",
        sipp.sip_addr()
    );
    let node = RunningNode::start(25000..=25499, &trunk, &[]).await;
    node.add_recorded_widget("held", "demo", "opt_in", "keep")
        .await;
    let outcome = call(&node, "held", |c| c.consent("granted")).await;
    let shown = outcome.recording_events();
    assert!(
        shown.windows(3).any(|seen| seen == [true, false, true]),
        "the widget saw recording stop for the hold: {}",
        outcome.report()
    );
    sipp.expect_exit(std::time::Duration::from_secs(10), EXIT_ALL_CALLS_OK);

    let recordings = recordings_of_widget(&node, "held").await;
    assert_eq!(recordings.len(), 1, "one recording goes on after the hold");
    let out = node.data.path().join("held.wav");
    let (code, stderr) = decrypt_cli(&node.config_file(), &recordings[0].id, &out);
    assert_eq!(code, 0, "{stderr}");
    let (_, channels) = read_wav_channels(&out);
    let visitor = &channels[0];
    let loud = 1_000;
    assert!(
        peak(visitor, 0.2, 0.9) > loud && peak(visitor, 2.0, 2.7) > loud,
        "the visitor is heard on both sides of the hold"
    );
    // The gate closed for the hold: its second is missing, not recorded.
    let cdr = node.cdr_of_widget("held").await;
    let missing_ms = cdr.duration_ms - visitor.len() as i64 / 8;
    assert!(
        (700..=1_500).contains(&missing_ms),
        "a {} ms call with a 1 s hold left a recording {missing_ms} ms shorter",
        cdr.duration_ms
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_recording_cannot_be_opened_even_from_a_copy() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(20000..=20499, ECHO_ROUTE, &[]).await;
    call(&node, "demo", |c| c.consent("granted").seconds(3.0)).await;
    let recording = recordings_of_widget(&node, "demo").await.remove(0);
    let stored = node
        .data
        .path()
        .join("recordings")
        .join(&recording.object_path);
    let copy = std::fs::read(&stored).unwrap();

    let store = node.store().await;
    assert!(store.delete_recording(&recording.id, "api").await.unwrap());
    std::fs::remove_file(&stored).unwrap();
    std::fs::write(&stored, &copy).unwrap();
    let out = node.data.path().join("shredded.wav");
    let (code, stderr) = decrypt_cli(&node.config_file(), &recording.id, &out);
    assert_eq!(code, 1);
    assert!(stderr.contains("its key is destroyed"), "{stderr}");
    assert!(!out.exists());
    node.stop().await;
}

/// A new KEK file made with `callgate keys generate --out`.
fn generate_kek(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .status()
        .expect("run callgate keys generate");
    assert!(status.success());
    path
}

fn recording_keys(keys: &[(&str, &Path)], current: &str) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(id, file)| {
            format!(
                "{{ id = \"{id}\", file = {:?} }}",
                file.display().to_string()
            )
        })
        .collect();
    format!(
        "{ECHO_ROUTE}[recording]\nkeys = [{}]\ncurrent_key = \"{current}\"\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn after_rotation_old_recordings_open_and_a_missing_or_wrong_key_is_named() {
    let _turn = SPEECH_TURNS.lock().await;
    let secrets = tempfile::tempdir().unwrap();
    let k1 = generate_kek(secrets.path(), "k1");
    let k2 = generate_kek(secrets.path(), "k2");
    let ports = 20500..=20999;

    let node = RunningNode::start(ports.clone(), &recording_keys(&[("k1", &k1)], "k1"), &[]).await;
    call(&node, "demo", |c| c.consent("granted").seconds(3.0)).await;
    let old = recordings_of_widget(&node, "demo").await.remove(0);
    assert_eq!(old.key_id, "k1");
    let data = node.stop_keeping_data().await;

    let rotated = recording_keys(&[("k1", &k1), ("k2", &k2)], "k2");
    let node = RunningNode::start_in(data, ports, &rotated, &[]).await;
    call(&node, "demo", |c| c.consent("granted").seconds(3.0)).await;
    let cdrs = node.wait_for_cdrs(2).await;
    let store = node.store().await;
    let new = store
        .recordings_for_call(&cdrs[0].call_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(new.key_id, "k2", "new recordings use the new key");
    let config = node.config_file();
    for (recording, name) in [(&old, "old.wav"), (&new, "new.wav")] {
        let (code, stderr) = decrypt_cli(&config, &recording.id, &node.data.path().join(name));
        assert_eq!(code, 0, "{}: {stderr}", recording.key_id);
    }

    // Only the new key: the old recording names the key it needs.
    let only_new = node.data.path().join("only-new.toml");
    let text = node
        .config_text
        .replace(&rotated, &recording_keys(&[("k2", &k2)], "k2"));
    std::fs::write(&only_new, text).unwrap();
    let out = node.data.path().join("missing.wav");
    let (code, stderr) = decrypt_cli(&only_new, &old.id, &out);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no key-encryption key with id k1 is loaded"),
        "{stderr}"
    );

    // Another key under the old id: refused, not decrypted to noise.
    let impostor = generate_kek(secrets.path(), "impostor");
    let wrong = node.data.path().join("wrong.toml");
    let text = node.config_text.replace(
        &rotated,
        &recording_keys(&[("k1", &impostor), ("k2", &k2)], "k2"),
    );
    std::fs::write(&wrong, text).unwrap();
    let (code, stderr) = decrypt_cli(&wrong, &old.id, &out);
    assert_eq!(code, 1);
    assert!(stderr.contains("key k1 does not open"), "{stderr}");
    assert!(!out.exists());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_visitor_allows_recording_in_the_widget_and_can_take_it_back() {
    let _turn = SPEECH_TURNS.lock().await;
    use support::browser::Browser;
    let node = RunningNode::start(21000..=21499, ECHO_ROUTE, &[]).await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    browser.goto(&format!("{}/demo", node.base())).await;
    browser.disable_audio_processing().await;
    let wait = std::time::Duration::from_secs(20);

    // The demo number is opt_in: placing the call shows its notice and an
    // unticked choice; nothing is recorded until the visitor ticks it.
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_for(
            "document.querySelector('.cg-widget .cg-consent-box') !== null",
            wait,
        )
        .await;
    let notice = browser
        .eval("return document.querySelector('.cg-widget .cg-notice').textContent;")
        .await;
    assert!(
        notice.as_str().unwrap_or_default().contains("recorded"),
        "{notice}"
    );
    let ticked = browser
        .eval("return document.querySelector('.cg-widget .cg-consent-box').checked;")
        .await;
    assert_eq!(ticked, serde_json::json!(false));
    browser.wait_widget_state("answered", wait).await;
    browser.click(".cg-widget .cg-consent-box").await;
    let banner =
        "document.querySelector('.cg-widget .cg-recording').textContent.includes('recorded')";
    browser.wait_for(banner, wait).await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", wait).await;
    let recording = recordings_of_widget(&node, "demo").await.remove(0);
    let out = node.data.path().join("chromium.wav");
    let (code, stderr) = decrypt_cli(&node.config_file(), &recording.id, &out);
    assert_eq!(code, 0, "{stderr}");
    let (_, channels) = read_wav_channels(&out);
    let speech = speech_8k();
    // The fake microphone loops the speech: search a whole loop of lags.
    let lags = std::time::Duration::from_millis(speech.len() as u64 / 8 * 2);
    // Chromium's microphone: coarse frames (see `support::audio`).
    let visitor = similarity_coarse_within(&speech, &channels[0], lags);
    assert!(
        visitor.score >= SAME_SPEECH_MIN,
        "visitor channel: {visitor:?}"
    );

    // A second call, still allowed from the start, then taken back
    // mid-call (the demo number discards on revocation).
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", wait).await;
    browser.wait_for(banner, wait).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    browser.click(".cg-widget .cg-consent-box").await;
    browser
        .wait_for(
            "document.querySelector('.cg-widget .cg-recording').textContent === ''",
            wait,
        )
        .await;
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", wait).await;
    browser.close().await;
    let cdrs = node.wait_for_cdrs(2).await;
    let second = node
        .store()
        .await
        .recordings_for_call(&cdrs[0].call_id)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(
        (second[0].state.as_str(), second[0].wrapped_key.as_ref()),
        ("deleted", None)
    );
    assert!(!cdrs[0].recorded);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_on_a_notice_number_shows_the_notice_first_and_honours_dont_record() {
    let _turn = SPEECH_TURNS.lock().await;
    use support::browser::Browser;
    let node = RunningNode::start(21500..=21999, ECHO_ROUTE, &[]).await;
    node.add_recorded_widget("notice", "demo", "notice", "discard")
        .await;
    let browser = Browser::start(&speech_wav_48k(SPEECH)).await;
    browser.goto(&format!("{}/demo", node.base())).await;
    browser.embed_widget("notice").await;
    let wait = std::time::Duration::from_secs(20);

    // The first press only shows the notice, with recording allowed.
    browser.click(".cg-widget .cg-call").await;
    browser
        .wait_for(
            "document.querySelector('.cg-widget').dataset.reason === 'notice'",
            wait,
        )
        .await;
    assert_eq!(browser.widget_state().await.as_deref(), Some("idle"));
    let ticked = browser
        .eval("return document.querySelector('.cg-widget .cg-consent-box').checked;")
        .await;
    assert_eq!(ticked, serde_json::json!(true));
    assert_eq!(
        node.store()
            .await
            .cdrs_for_tenant("demo", 10)
            .await
            .unwrap(),
        vec![]
    );

    // "Don't record": untick, then call.
    browser.click(".cg-widget .cg-consent-box").await;
    browser.click(".cg-widget .cg-call").await;
    browser.wait_widget_state("answered", wait).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let banner = browser
        .eval("return document.querySelector('.cg-widget .cg-recording').textContent;")
        .await;
    assert_eq!(banner, serde_json::json!(""));
    browser.click(".cg-widget .cg-hangup").await;
    browser.wait_widget_state("ended", wait).await;
    browser.close().await;
    let cdr = node.cdr_of_widget("notice").await;
    assert!(!cdr.recorded);
    assert!(
        node.store()
            .await
            .recordings_for_call(&cdr.call_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(files_under(&node.data.path().join("recordings")).is_empty());
    node.stop().await;
}

/// `callgate serve --config CONFIG` as a process of its own, ready.
fn serve(config: &Path, http: std::net::SocketAddr) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callgate"));
    command.args(["serve", "--config"]).arg(config);
    let stderr = match support::logs::spawned_node(&mut command) {
        Some(log) => std::process::Stdio::from(std::fs::File::create(log).expect("the node's log")),
        None => std::process::Stdio::null(),
    };
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start callgate serve");
    let ready = support::wait_until(std::time::Duration::from_secs(30), || {
        std::net::TcpStream::connect(http).is_ok()
            && support::node::http(http, "GET", "/readyz", None, b"").0 == 200
    });
    assert!(ready, "the node became ready");
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recording_cut_by_a_killed_node_is_stored_incomplete_at_restart() {
    let _turn = SPEECH_TURNS.lock().await;
    let data = tempfile::tempdir().unwrap();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", support::ports::free_tcp_port())
        .parse()
        .unwrap();
    let text = support::node::node_config(
        data.path(),
        &format!("listen = \"{http}\""),
        22000..=22499,
        ECHO_ROUTE,
    );
    let config = data.path().join("callgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut node = serve(&config, http);

    let base = format!("http://{http}");
    let play = speech_wav_48k(SPEECH);
    let client = AiortcCall::new(&base, "demo", &base, &play)
        .codec("pcmu")
        .consent("granted")
        .seconds(20.0)
        .timeout(std::time::Duration::from_secs(30))
        .spawn();
    client.until_answered(std::time::Duration::from_secs(20));
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    node.kill().unwrap();
    node.wait().unwrap();
    drop(client);

    let url = format!("sqlite://{}", data.path().join("callgate.db").display());
    let store = callgate::store::Store::open(&url).await.unwrap();
    let cut = store.unfinished_recordings().await.unwrap();
    assert_eq!(cut.len(), 1, "one recording left in progress");
    let spool = data
        .path()
        .join("spool")
        .join(format!("{}.cgrec", cut[0].id));
    assert!(spool.exists(), "its sealed segments are in the spool");

    let mut node = serve(&config, http);
    // The restarted node hands the spool file to its uploader.
    let mut row = store.recording(&cut[0].id).await.unwrap().unwrap();
    // Stored first, then its spool file removed: wait for both.
    for _ in 0..100 {
        if row.state != "recording" && !spool.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        row = store.recording(&cut[0].id).await.unwrap().unwrap();
    }
    assert_eq!((row.state.as_str(), row.complete), ("stored", false));
    assert!(!spool.exists());
    let out = data.path().join("cut.wav");
    let (code, stderr) = decrypt_cli(&config, &row.id, &out);
    assert_eq!(code, 0, "{stderr}");
    let (_, channels) = read_wav_channels(&out);
    let seconds = channels[0].len() as f64 / 8000.0;
    // Whole 64 KiB segments (2.048 s each) of the 5 s before the kill.
    assert!((2.0..=5.0).contains(&seconds), "{seconds:.2} s recovered");
    let loud = channels[0]
        .iter()
        .filter(|s| s.unsigned_abs() > 1000)
        .count();
    assert!(loud > 1000, "the visitor's speech is in it");
    let _ = Command::new("kill").arg(node.id().to_string()).status();
    node.wait().unwrap();
}
