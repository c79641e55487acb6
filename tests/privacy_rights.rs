//! A visitor's privacy request, end to end: a recorded call, found by the
//! reference the visitor was shown; everything held about it exported as
//! one archive; then erased: the recording cannot be decrypted (not even a
//! copy of its blob put back), the CDR keeps only the billing fields, and a
//! second export shows exactly that. Once on the embedded SQLite store and
//! once on PostgreSQL.

mod support;

use std::collections::BTreeMap;
use std::io::Read as _;

use serde_json::{Value, json};
use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::{
    SAME_SPEECH_MIN, SPEECH_TURNS, read_wav_channels, similarity_within, speech_pcm_8k,
    speech_wav_48k,
};
use support::node::RunningNode;

/// The webhook below goes to loopback, which needs `allow_private_targets`.
const ROUTES: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n\
                      [webhooks]\nallow_private_targets = true\n";
const MEDIA: std::ops::RangeInclusive<u16> = 22500..=22999;
const SPEECH: &str = "please send me a copy of this call and then forget it";

/// The files of a tar archive by name.
fn unpack(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

fn json_file(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(
        files
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", files.keys())),
    )
    .unwrap()
}

fn export(api: &Api, reference: &str) -> BTreeMap<String, Vec<u8>> {
    let response = api.get(&format!("/v1/privacy/{reference}/export"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/x-tar"));
    unpack(&response.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_is_exported_then_erased_by_its_privacy_reference() {
    let _turn = SPEECH_TURNS.lock().await;
    export_then_erase(RunningNode::start(MEDIA, ROUTES, &[]).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_holds_on_a_node_whose_store_is_postgresql() {
    let _turn = SPEECH_TURNS.lock().await;
    let url = support::postgres::fresh_database().await;
    let env = [("CALLGATE_DATABASE_URL", url.as_str())];
    export_then_erase(RunningNode::start(MEDIA, ROUTES, &env).await).await;
}

async fn export_then_erase(node: RunningNode) {
    let key = node.api_key("demo", "admin");
    let api = Api::new(&node, &key);
    // A webhook endpoint nobody answers: what it would be sent stays queued.
    api.expect(
        "PUT",
        "/v1/webhook",
        json!({"url": "http://127.0.0.1:9/hooks"}),
        200,
    );
    let play = speech_wav_48k(SPEECH);
    let outcome = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec("pcmu")
        .seconds(6.0)
        .consent("granted")
        .spawn()
        .wait_async()
        .await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    let cdr = node.cdr_of_widget("demo").await;
    let reference = cdr.privacy_ref.clone().expect("a privacy reference");

    // Someone else's reference is nobody's business.
    node.command(&["tenant", "create", "acme"]);
    let other = Api::new(&node, &node.api_key("acme", "admin"));
    other.expect(
        "GET",
        &format!("/v1/privacy/{reference}/export"),
        Value::Null,
        404,
    );
    other.expect(
        "POST",
        &format!("/v1/privacy/{reference}/erase"),
        Value::Null,
        404,
    );

    // The visitor may quote it loosely: lower case, without the dash.
    let loose = reference.replace('-', "").to_lowercase();
    let files = export(&api, &loose);
    let call = json_file(&files, "call.json");
    assert_eq!(
        (&call["call_id"], &call["privacy_ref"]),
        (&json!(cdr.call_id), &json!(reference))
    );
    assert_eq!(call["visitor_network"], "127.0.0.0/24");
    assert!(call["browser_mos_average"].is_number(), "{call}");
    let receipts = json_file(&files, "consent_receipts.json");
    assert_eq!(receipts.as_array().unwrap().len(), 1, "{receipts}");
    assert_eq!(receipts[0]["method"], "api");
    let recordings = json_file(&files, "recordings.json");
    assert_eq!(recordings.as_array().unwrap().len(), 1, "{recordings}");
    let recording_id = recordings[0]["id"].as_str().unwrap().to_owned();
    let wav = files
        .get(&format!("recordings/{recording_id}.wav"))
        .expect("the recording's audio is in the archive");
    let wav_path = node.data.path().join("exported.wav");
    std::fs::write(&wav_path, wav).unwrap();
    let (rate, channels) = read_wav_channels(&wav_path);
    assert_eq!((rate, channels.len()), (8000, 2));
    let heard = similarity_within(
        &speech_pcm_8k(SPEECH),
        &channels[0],
        std::time::Duration::from_secs(2),
    );
    assert!(heard.score >= SAME_SPEECH_MIN, "visitor channel: {heard:?}");

    // Keep a copy of the encrypted blob, as a backup would.
    let object_path = node
        .store()
        .await
        .recording(&recording_id)
        .await
        .unwrap()
        .unwrap()
        .object_path;
    let blob_path = node.data.path().join("recordings").join(&object_path);
    let backup = std::fs::read(&blob_path).unwrap();

    let about_call = |rows: Vec<callgate::store::DeliveryRow>| {
        rows.into_iter()
            .filter(|row| row.body.contains(cdr.call_id.as_str()))
            .map(|row| row.event)
            .collect::<Vec<_>>()
    };
    let queued = node.store().await.webhook_deliveries("demo").await.unwrap();
    assert!(about_call(queued).contains(&"call.ended".to_owned()));

    let reader = Api::new(&node, &node.api_key("demo", "read"));
    reader.expect(
        "POST",
        &format!("/v1/privacy/{reference}/erase"),
        Value::Null,
        403,
    );
    let erased = api.expect(
        "POST",
        &format!("/v1/privacy/{reference}/erase"),
        Value::Null,
        200,
    );
    assert_eq!(erased["recordings_erased"], 1, "{erased}");
    assert_eq!(erased["consent_receipts_deleted"], 1, "{erased}");
    assert!(!blob_path.exists(), "the blob is removed");
    let queued = node.store().await.webhook_deliveries("demo").await.unwrap();
    assert_eq!(
        about_call(queued),
        Vec::<String>::new(),
        "webhook bodies about the call are gone"
    );

    // What billing needs stays; nothing else about the visitor or the call.
    let kept = &erased["cdr"];
    for (field, value) in [
        ("call_id", json!(cdr.call_id)),
        ("number_id", json!("demo")),
        ("disposition", json!("answered")),
        ("duration_ms", json!(cdr.duration_ms)),
        ("created_at", call["created_at"].clone()),
        ("answered_at", call["answered_at"].clone()),
        ("ended_at", call["ended_at"].clone()),
        ("privacy_ref", json!(reference)),
    ] {
        assert_eq!(kept[field], value, "{field} kept");
    }
    for (field, value) in [
        ("visitor_network", Value::Null),
        ("trunk", Value::Null),
        ("sip_code", Value::Null),
        ("sip_reason", Value::Null),
        ("browser_codec", Value::Null),
        ("trunk_codec", Value::Null),
        ("widget_id", json!("")),
        ("node_id", json!("")),
        ("browser_packets_received", json!(0)),
        ("trunk_packets_received", json!(0)),
        ("browser_mos_worst", Value::Null),
        ("browser_mos_average", Value::Null),
        ("trunk_mos_worst", Value::Null),
        ("trunk_mos_average", Value::Null),
        ("recorded", json!(false)),
    ] {
        assert_eq!(kept[field], value, "{field} cleared");
    }
    assert!(kept["erased_at"].is_string(), "{kept}");

    // The recording is gone for good: the API, the CLI, and a backup put back.
    api.expect(
        "GET",
        &format!("/v1/recordings/{recording_id}/audio"),
        Value::Null,
        410,
    );
    std::fs::create_dir_all(blob_path.parent().unwrap()).unwrap();
    std::fs::write(&blob_path, &backup).unwrap();
    let out = node.data.path().join("after-erase.wav");
    let (code, _, stderr) = node.command(&[
        "recording",
        "decrypt",
        &recording_id,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("deleted"), "{stderr}");
    assert!(!out.exists());

    // A second export shows exactly what is kept.
    let files = export(&api, &reference);
    assert_eq!(json_file(&files, "call.json"), *kept);
    assert_eq!(json_file(&files, "consent_receipts.json"), json!([]));
    assert_eq!(json_file(&files, "recordings.json")[0]["state"], "deleted");
    assert!(
        !files.keys().any(|name| name.ends_with(".wav")),
        "{:?}",
        files.keys()
    );
    let cdrs = api.expect("GET", "/v1/cdrs", Value::Null, 200);
    assert_eq!(cdrs[0], *kept);

    // Each step is in the audit log.
    let by = format!("key:{}", &key[3..19]);
    let audit = api.expect("GET", "/v1/audit", Value::Null, 200);
    let steps: Vec<(String, String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == by.as_str())
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (
                text("action"),
                text("target_kind"),
                text("target_id"),
                text("reason"),
            )
        })
        .collect();
    let step = |a: &str, k: &str, id: &str, r: &str| {
        (a.to_owned(), k.to_owned(), id.to_owned(), r.to_owned())
    };
    assert_eq!(
        steps,
        [
            step("created", "webhook", "demo", ""),
            step("accessed", "recording", &recording_id, "api"),
            step("exported", "call", &cdr.call_id, ""),
            step("deleted", "recording", &recording_id, "erasure"),
            step("erased", "call", &cdr.call_id, ""),
            step("exported", "call", &cdr.call_id, ""),
        ]
    );
    node.stop().await;
}
