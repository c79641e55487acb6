//! Recording into a real S3-compatible server (SeaweedFS, which checks
//! request signatures): aiortc calls through an in-process node whose
//! `[recording.s3]` names it. What lands in the bucket is read back with
//! an S3 client of the test's own and decrypted by `callgate recording
//! decrypt`; the server is killed mid-call and restarted after the call,
//! and the node's uploader stores the whole recording when it returns.

mod support;

use std::time::Duration;

use callgate::store::RecordingRow;
use object_store::ObjectStoreExt as _;
use support::aiortc::{AiortcCall, AiortcOutcome};
use support::audio::{
    SAME_SPEECH_MIN, read_wav_channels, similarity_within, speech_pcm_8k, speech_wav_48k,
};
use support::node::{RunningNode, metric};
use support::recordings::{decrypt_cli_with_env, entropy, files_under};
use support::s3::{S3Server, SECRET_ACCESS_KEY};
use tempfile::TempDir;

const SPEECH: &str = "the quick brown fox jumps over the lazy dog, one two three four five";
const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";
/// Starts with CALLGATE_: only a variable the config names as a secret may.
const SECRET_VAR: &str = "CALLGATE_TEST_S3_SECRET";
const PREFIX: &str = "node-a";
const FAILURES: &str = "callgate_recording_upload_failures_total";
const WAITING: &str = "callgate_recording_uploads_waiting";

/// The tests run one at a time: three S3 servers, nodes and aiortc clients
/// at once starve two cores, and the speech comparison with them.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A SeaweedFS server and a node recording into it; the access key id
/// comes from a file in the returned directory, the secret key from
/// [`SECRET_VAR`].
async fn s3_node(media: std::ops::RangeInclusive<u16>) -> (S3Server, RunningNode, TempDir) {
    let s3 = S3Server::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let node = RunningNode::start(media, &node_extra(&s3, &secrets), &NODE_ENV).await;
    (s3, node, secrets)
}

const NODE_ENV: [(&str, &str); 1] = [(SECRET_VAR, SECRET_ACCESS_KEY)];

/// The node's route and `[recording.s3]`.
fn node_extra(s3: &S3Server, secrets: &TempDir) -> String {
    let key_file = secrets.path().join("s3-access-key-id");
    let section = s3.config_section(PREFIX, &key_file, SECRET_VAR);
    format!("{ECHO_ROUTE}{section}")
}

async fn call(node: &RunningNode, setup: impl FnOnce(AiortcCall) -> AiortcCall) -> AiortcOutcome {
    let play = speech_wav_48k(SPEECH);
    let client = AiortcCall::new(&node.base(), "demo", &node.base(), &play).codec("pcmu");
    let outcome = setup(client).spawn().wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    outcome
}

async fn only_recording(node: &RunningNode) -> RecordingRow {
    let cdr = node.cdr_of_widget("demo").await;
    let mut rows = node
        .store()
        .await
        .recordings_for_call(&cdr.call_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    rows.remove(0)
}

/// Decrypts `id` with the CLI into `name` under the node's data; the
/// channels of the WAV.
fn decrypt(node: &RunningNode, id: &str, name: &str) -> Vec<Vec<i16>> {
    let out = node.data.path().join(name);
    let (code, stderr) = decrypt_cli_with_env(&node.config_file(), id, &out, &NODE_ENV);
    assert_eq!(code, 0, "{stderr}");
    let (rate, channels) = read_wav_channels(&out);
    assert_eq!((rate, channels.len()), (8000, 2));
    channels
}

/// The visitor's speech is on the visitor channel, and the recording is
/// as long as the answered call (consent was given from the start).
fn assert_whole_call(channels: &[Vec<i16>], call_ms: i64) {
    let heard = similarity_within(&speech_pcm_8k(SPEECH), &channels[0], Duration::from_secs(2));
    assert!(heard.score >= SAME_SPEECH_MIN, "visitor channel: {heard:?}");
    let recorded_ms = channels[0].len() as i64 / 8;
    assert!(
        (recorded_ms - call_ms).abs() <= 500,
        "recorded {recorded_ms} ms of a {call_ms} ms call"
    );
}

/// Polls `check` every 100 ms for up to `timeout`.
async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spool_files(node: &RunningNode) -> Vec<std::path::PathBuf> {
    files_under(&node.data.path().join("spool"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consented_call_lands_in_the_bucket_encrypted_and_decrypts_to_the_speech() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (s3, node, _secrets) = s3_node(23000..=23499).await;
    call(&node, |c| c.consent("granted").seconds(6.0)).await;
    let cdr = node.cdr_of_widget("demo").await;
    assert!(cdr.recorded, "{cdr:?}");
    let recording = only_recording(&node).await;
    assert_eq!(
        (recording.state.as_str(), recording.complete),
        ("stored", true)
    );

    // One object, under the prefix, as the database says; ciphertext only.
    let objects = s3.objects().await;
    assert_eq!(objects.len(), 1, "{objects:#?}");
    let key = &objects[0].location;
    assert_eq!(key.as_ref(), format!("{PREFIX}/{}", recording.object_path));
    let blob = s3.read(key).await;
    assert_eq!(blob.len() as i64, recording.bytes);
    assert!(!blob.windows(4).any(|w| w == b"RIFF"));
    assert!(
        entropy(&blob[200..]) > 7.9,
        "entropy {:.3}",
        entropy(&blob[200..])
    );
    assert!(spool_files(&node).is_empty(), "{:?}", spool_files(&node));
    assert!(
        !node.data.path().join("recordings").exists(),
        "nothing in the local store"
    );

    assert_whole_call(&decrypt(&node, &recording.id, "s3.wav"), cdr.duration_ms);
    assert_eq!(metric(node.addr, FAILURES), 0.0);
    assert_eq!(metric(node.addr, WAITING), 0.0);

    // The server checks signatures: a wrong secret, or none, is refused.
    let wrong = s3.client("not-the-secret").get(key).await;
    let refused = wrong.expect_err("a wrong secret is refused").to_string();
    assert!(
        refused.contains("403") || refused.contains("SignatureDoesNotMatch"),
        "{refused}"
    );
    let anonymous = s3.anonymous_client().get(key).await;
    assert!(anonymous.is_err(), "an unsigned request is refused");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_killed_mid_call_gets_the_whole_recording_when_it_returns() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut s3, node, _secrets) = s3_node(23500..=23999).await;
    let play = speech_wav_48k(SPEECH);
    let client = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec("pcmu")
        .consent("granted")
        .seconds(8.0)
        .timeout(Duration::from_secs(30))
        .spawn();
    // Mid-call: the first 64 KiB segment (2 s of audio) is sealed.
    eventually("a segment is sealed", Duration::from_secs(20), async || {
        metric(node.addr, "callgate_recording_bytes_written_total") >= 65_536.0
    })
    .await;
    s3.kill();
    let outcome = client.wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    let cdr = node.cdr_of_widget("demo").await;
    assert!(cdr.recorded, "{cdr:?}");

    // The store is down: the finished recording waits in the spool, with
    // its figures, and still opens there.
    eventually("the upload failed", Duration::from_secs(30), async || {
        metric(node.addr, FAILURES) >= 1.0
    })
    .await;
    let waiting = only_recording(&node).await;
    assert_eq!(waiting.state, "recording");
    assert!(
        waiting.ended_at.is_some() && waiting.complete,
        "{waiting:?}"
    );
    assert_eq!(spool_files(&node).len(), 1);
    assert_eq!(metric(node.addr, WAITING), 1.0);
    assert_whole_call(&decrypt(&node, &waiting.id, "spooled.wav"), cdr.duration_ms);

    s3.restart().await;
    let store = node.store().await;
    eventually(
        "the uploader stored it",
        Duration::from_secs(90),
        async || store.recording(&waiting.id).await.unwrap().unwrap().state == "stored",
    )
    .await;
    let stored = only_recording(&node).await;
    assert!(stored.complete);
    assert_eq!(stored.duration_ms, waiting.duration_ms);
    let objects = s3.objects().await;
    assert_eq!(objects.len(), 1, "{objects:#?}");
    assert_eq!(objects[0].size as i64, stored.bytes);
    eventually("the spool is empty", Duration::from_secs(5), async || {
        spool_files(&node).is_empty()
    })
    .await;
    assert_eq!(metric(node.addr, WAITING), 0.0);
    assert!(metric(node.addr, FAILURES) >= 1.0);

    // Nothing lost: the object holds the whole consented call.
    assert_whole_call(&decrypt(&node, &stored.id, "stored.wav"), cdr.duration_ms);
    node.stop().await;
}

/// The store is down for the whole call and the node stops before it
/// returns: the next start hands the spooled recording to the uploader,
/// figures and all.
#[tokio::test(flavor = "multi_thread")]
async fn a_recording_waiting_for_the_store_survives_a_node_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut s3, node, secrets) = s3_node(24500..=24999).await;
    s3.kill();
    call(&node, |c| c.consent("granted").seconds(4.0)).await;
    let cdr = node.cdr_of_widget("demo").await;
    eventually("the upload failed", Duration::from_secs(30), async || {
        metric(node.addr, FAILURES) >= 1.0
    })
    .await;
    let waiting = only_recording(&node).await;
    assert_eq!(waiting.state, "recording");
    let data = node.stop_keeping_data().await;

    s3.restart().await;
    let node =
        RunningNode::start_in(data, 24500..=24999, &node_extra(&s3, &secrets), &NODE_ENV).await;
    let store = node.store().await;
    eventually(
        "the restarted node stored it",
        Duration::from_secs(30),
        async || store.recording(&waiting.id).await.unwrap().unwrap().state == "stored",
    )
    .await;
    let stored = only_recording(&node).await;
    assert!(
        stored.complete,
        "a finished recording, not an interrupted one"
    );
    assert_eq!(stored.duration_ms, waiting.duration_ms);
    assert_eq!(s3.objects().await.len(), 1);
    assert!(spool_files(&node).is_empty());
    assert_whole_call(
        &decrypt(&node, &stored.id, "restarted.wav"),
        cdr.duration_ms,
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_consent_leaves_no_object_and_no_spool_file() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (s3, node, _secrets) = s3_node(24000..=24499).await;
    call(&node, |c| c.consent("declined").seconds(3.0)).await;
    let cdr = node.cdr_of_widget("demo").await;
    assert!(!cdr.recorded, "{cdr:?}");
    let rows = node
        .store()
        .await
        .recordings_for_call(&cdr.call_id)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:#?}");
    assert_eq!(s3.objects().await, vec![]);
    assert!(spool_files(&node).is_empty());
    node.stop().await;
}
