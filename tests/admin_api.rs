//! The admin API against a running node: keys made and revoked with the
//! real command line, every route refusing what it must (401, 403, 404,
//! 400 naming the field), numbers and widgets managed end to end, the CDR
//! export streamed as JSON and CSV that agree, a recorded call listened to
//! and deleted through the API, the audit log, and the OpenAPI document.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use callgate::domain::{Disposition, EndedBy, LegStats};
use callgate::store::CdrRecord;
use serde_json::{Value, json};
use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::{
    SAME_SPEECH_MIN, SPEECH_TURNS, read_wav_channels, similarity_within, speech_pcm_8k,
    speech_wav_48k,
};
use support::node::{RunningNode, metric, request};
use support::sip_raw;

const ROUTES: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n\
                      [[sip.routes]]\nname = \"sales\"\ntrunks = [\"echo\"]\n";
const MEDIA: std::ops::RangeInclusive<u16> = 22000..=22499;
const SPEECH: &str = "recordings can be heard through the admin interface, one two three";

/// The field a 400 names.
fn refused_field(api: &Api, method: &str, path: &str, body: &str) -> String {
    let response = api.send(method, path, body);
    assert_eq!(
        response.status,
        400,
        "{method} {path} {body}: {}",
        response.text()
    );
    let json = response.json();
    json["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field in {json}"))
        .to_owned()
}

/// The bytes of the node's SQLite files (database and write-ahead log),
/// read by another process: closing a descriptor of the database in the
/// node's own process would drop the node's locks on it (POSIX record
/// locks belong to the process), leaving its connections stale.
fn database_bytes(node: &RunningNode) -> Vec<u8> {
    let files = ["callgate.db", "callgate.db-wal"].map(|name| node.data.path().join(name));
    let output = std::process::Command::new("cat")
        .args(files.iter().filter(|file| file.exists()))
        .output()
        .expect("run cat");
    assert!(output.status.success());
    output.stdout
}

fn number(id: &str) -> Value {
    json!({"id": id, "e164": "+15555550142", "trunk": "demo", "recording": "opt_in",
           "retention_days": 30, "notice_text": "This call may be recorded."})
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_made_once_checked_and_revoked_from_the_command_line() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let (code, stdout, _) = node.command(&["tenant", "create", "acme"]);
    assert_eq!((code, stdout.trim()), (0, "tenant acme created"));
    let (code, _, stderr) = node.command(&["tenant", "create", "acme"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) =
        node.command(&["apikey", "create", "--tenant", "nobody", "--role", "admin"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no tenant nobody"), "{stderr}");
    let (code, _, stderr) =
        node.command(&["apikey", "create", "--tenant", "acme", "--role", "root"]);
    assert_eq!(code, 64, "{stderr}");

    let key = node.api_key("acme", "admin");
    assert!(key.starts_with("cg_"), "{key}");
    let key_id = key[3..19].to_owned();
    let api = Api::new(&node, &key);
    assert_eq!(
        api.expect("GET", "/v1/numbers", Value::Null, 200),
        json!([])
    );

    // Only the keyed hash is stored; the listing shows id and role only.
    // The secret is everything after "cg_<id>_" (it may hold '_' itself).
    let secret = key.splitn(3, '_').nth(2).unwrap();
    assert!(secret.len() >= 40, "{key}");
    let database = database_bytes(&node);
    assert!(!database.is_empty());
    assert!(
        !database
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
    let (_, listing, _) = node.command(&["apikey", "list", "--tenant", "acme"]);
    assert_eq!(listing.trim(), format!("{key_id}\tadmin\tactive"));

    let (code, stdout, _) = node.command(&["apikey", "revoke", &key_id]);
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("key {key_id} revoked").as_str())
    );
    let refused = api.get("/v1/numbers");
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    node.stop().await;
}

/// Every admin route, with a body where it takes one.
fn routes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("GET", "/v1/numbers", Value::Null),
        ("POST", "/v1/numbers", number("x1")),
        ("GET", "/v1/numbers/sales", Value::Null),
        ("PATCH", "/v1/numbers/sales", json!({"recording": "off"})),
        ("DELETE", "/v1/numbers/spare", Value::Null),
        ("GET", "/v1/widgets", Value::Null),
        (
            "POST",
            "/v1/widgets",
            json!({"id": "x1", "number_id": "sales", "allowed_origins": ["self"]}),
        ),
        ("GET", "/v1/widgets/sales", Value::Null),
        (
            "PATCH",
            "/v1/widgets/sales",
            json!({"allowed_origins": ["self"]}),
        ),
        ("DELETE", "/v1/widgets/sales", Value::Null),
        ("GET", "/v1/cdrs", Value::Null),
        ("GET", "/v1/recordings", Value::Null),
        ("GET", "/v1/recordings/rec-x", Value::Null),
        ("GET", "/v1/recordings/rec-x/audio", Value::Null),
        ("DELETE", "/v1/recordings/rec-x", Value::Null),
        ("GET", "/v1/audit", Value::Null),
        ("GET", "/v1/webhook", Value::Null),
        (
            "PUT",
            "/v1/webhook",
            json!({"url": "https://hooks.example.com/"}),
        ),
        ("DELETE", "/v1/webhook", Value::Null),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_missing_wrong_and_revoked_keys_read_keys_writing_and_other_tenants() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    node.command(&["tenant", "create", "acme"]);
    let admin = Api::new(&node, &node.api_key("acme", "admin"));
    admin.expect("POST", "/v1/numbers", number("sales"), 201);
    admin.expect("POST", "/v1/numbers", number("spare"), 201);
    admin.expect(
        "POST",
        "/v1/widgets",
        json!({"id": "sales", "number_id": "sales", "allowed_origins": ["self"]}),
        201,
    );
    let revoked_key = node.api_key("acme", "admin");
    node.command(&["apikey", "revoke", &revoked_key[3..19]]);
    let wrong_secret = format!("{}{}", &revoked_key[..20], "A".repeat(43));
    let keys: [(&str, Option<String>); 4] = [
        ("no key", None),
        ("not a key", Some("hello".into())),
        ("wrong secret", Some(wrong_secret)),
        ("revoked", Some(revoked_key)),
    ];
    for (method, path, body) in routes() {
        for (what, key) in &keys {
            let api = Api {
                node: &node,
                key: key.clone(),
            };
            let body = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            let response = api.send(method, path, &body);
            assert_eq!(
                response.status,
                401,
                "{what}: {method} {path}: {}",
                response.text()
            );
        }
    }

    let reader = Api::new(&node, &node.api_key("acme", "read"));
    let other = Api::new(&node, &node.api_key("demo", "admin"));
    for (method, path, body) in routes() {
        if method != "GET" {
            let response = reader.expect(method, path, body.clone(), 403);
            assert_eq!(response["error"], "this key may only read");
        }
        let foreign = path.contains("/sales") || path.contains("/spare");
        if foreign {
            other.expect(method, path, body, 404);
        }
    }
    // Listings are scoped: the demo tenant sees only its own rows.
    let demo_numbers = other.expect("GET", "/v1/numbers", Value::Null, 200);
    let ids: Vec<&str> = demo_numbers
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo"]);
    // Nothing the refused requests asked for happened.
    let numbers = admin.expect("GET", "/v1/numbers", Value::Null, 200);
    assert_eq!(numbers.as_array().unwrap().len(), 2, "{numbers}");
    assert_eq!(
        admin.expect("GET", "/v1/numbers/sales", Value::Null, 200)["recording"],
        "opt_in"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_and_values_are_refused_naming_the_field() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let with = |field: &str, value: Value| {
        let mut body = number("n2");
        body[field] = value;
        body.to_string()
    };
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("e164", json!("555-0100"))
        ),
        "e164"
    );
    assert_eq!(
        refused_field(&api, "POST", "/v1/numbers", &with("e164", json!("+0123"))),
        "e164"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("retention_days", json!(0))
        ),
        "retention_days"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("retention_days", json!(4000))
        ),
        "retention_days"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("retention_days", json!(-7))
        ),
        "retention_days"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("recording", json!("always"))
        ),
        "recording"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/numbers",
            &with("trunk", json!("nowhere"))
        ),
        "trunk"
    );
    assert_eq!(
        refused_field(&api, "POST", "/v1/numbers", &with("id", json!("../etc"))),
        "id"
    );
    assert_eq!(
        refused_field(&api, "POST", "/v1/numbers", &with("colour", json!("red"))),
        "colour"
    );
    assert_eq!(
        refused_field(&api, "POST", "/v1/numbers", r#"{"id":"n2","trunk":"demo"}"#),
        "e164"
    );
    assert_eq!(
        refused_field(
            &api,
            "PATCH",
            "/v1/numbers/demo",
            r#"{"retention_days":9999}"#
        ),
        "retention_days"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/widgets",
            r#"{"id":"w","number_id":"demo","allowed_origins":["self","https://a.example/x"]}"#
        ),
        "allowed_origins[1]"
    );
    assert_eq!(
        refused_field(
            &api,
            "POST",
            "/v1/widgets",
            r#"{"id":"w","number_id":"nope","allowed_origins":["self"]}"#
        ),
        "number_id"
    );
    assert_eq!(
        refused_field(&api, "GET", "/v1/cdrs?from=yesterday", ""),
        "from"
    );
    assert_eq!(
        refused_field(&api, "GET", "/v1/cdrs?format=xml", ""),
        "format"
    );
    assert_eq!(
        refused_field(&api, "GET", "/v1/cdrs?colour=red", ""),
        "colour"
    );
    let trailing = format!("{} trailing", number("n2"));
    for broken in ["{", "[]", "null", trailing.as_str()] {
        let response = api.send("POST", "/v1/numbers", broken);
        assert_eq!(response.status, 400, "{broken}: {}", response.text());
        assert!(
            response.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("body"),
            "{broken}"
        );
    }
    // None of it was stored.
    let numbers = api.expect("GET", "/v1/numbers", Value::Null, 200);
    assert_eq!(numbers.as_array().unwrap().len(), 1, "{numbers}");
    assert_eq!(
        api.expect("GET", "/v1/widgets", Value::Null, 200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_and_widgets_are_managed_and_every_change_is_audited() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let key = node.api_key("demo", "admin");
    let api = Api::new(&node, &key);
    let created = api.expect("POST", "/v1/numbers", number("support"), 201);
    assert_eq!(created["on_revoke"], "discard");
    api.expect("POST", "/v1/numbers", number("support"), 409);
    let patched = api.expect(
        "PATCH",
        "/v1/numbers/support",
        json!({"recording": "notice", "retention_days": 90, "trunk": "sales", "notice_text": null}),
        200,
    );
    assert_eq!(
        (
            &patched["recording"],
            &patched["retention_days"],
            &patched["trunk"],
            &patched["notice_text"]
        ),
        (&json!("notice"), &json!(90), &json!("sales"), &Value::Null)
    );
    assert_eq!(
        api.expect("GET", "/v1/numbers/support", Value::Null, 200),
        patched
    );

    let widget = api.expect(
        "POST",
        "/v1/widgets",
        json!({"id": "support", "number_id": "support", "allowed_origins": ["https://shop.example"]}),
        201,
    );
    let embed = widget["embed"].as_str().unwrap();
    assert!(
        embed.contains(&format!("{}/widget/callgate.js", node.base())),
        "{embed}"
    );
    assert!(embed.contains("data-widget=\"support\""), "{embed}");
    api.expect("DELETE", "/v1/numbers/support", Value::Null, 409);

    // The widget's origins are live at once: the new origin may call, the
    // old one may not.
    api.expect(
        "PATCH",
        "/v1/widgets/support",
        json!({"allowed_origins": ["self"]}),
        200,
    );
    let config = request(
        node.addr,
        "GET",
        "/v1/widgets/support/config",
        &[("Origin", "https://shop.example")],
        b"",
    );
    assert_eq!(config.status, 403, "{}", config.text());
    api.expect("DELETE", "/v1/widgets/support", Value::Null, 204);
    api.expect("DELETE", "/v1/widgets/support", Value::Null, 404);
    api.expect("DELETE", "/v1/numbers/support", Value::Null, 204);
    api.expect("GET", "/v1/numbers/support", Value::Null, 404);

    let audit = api.expect("GET", "/v1/audit", Value::Null, 200);
    let steps: Vec<(String, String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (
                text("actor"),
                text("action"),
                text("target_kind"),
                text("reason"),
            )
        })
        .collect();
    let by = format!("key:{}", &key[3..19]);
    let expected = [
        ("created", "number", ""),
        (
            "updated",
            "number",
            "trunk,recording,retention_days,notice_text",
        ),
        ("created", "widget", ""),
        ("updated", "widget", "allowed_origins"),
        ("deleted", "widget", ""),
        ("deleted", "number", ""),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(a, k, r)| (by.clone(), a.to_string(), k.to_string(), r.to_string()))
        .collect();
    let admin_steps: Vec<_> = steps.into_iter().filter(|s| s.0 == by).collect();
    assert_eq!(admin_steps, expected);
    node.stop().await;
}

/// A call request through `widget` from the node's own origin whose
/// offer the node will refuse (400) once every guard has let it through.
fn call_status(node: &RunningNode, widget: &str) -> (u16, String) {
    let origin = node.base();
    let response = request(
        node.addr,
        "POST",
        &format!("/v1/widgets/{widget}/calls"),
        &[("Origin", origin.as_str())],
        br#"{"offer": "v=0"}"#,
    );
    (response.status, response.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_widgets_own_limits_hold_its_calls_and_leave_other_widgets_alone() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let widget = |id: &str, limits: Value| json!({"id": id, "number_id": "demo", "allowed_origins": ["self"], "limits": limits});
    for (limits, field) in [
        (json!({"calls_per_minute": 0}), "limits.calls_per_minute"),
        (json!({"calls_per_minute": 121}), "limits.calls_per_minute"),
        (
            json!({"max_concurrent_calls": 51}),
            "limits.max_concurrent_calls",
        ),
        (
            json!({"max_concurrent_calls": -1}),
            "limits.max_concurrent_calls",
        ),
        (json!({"per_hour": 5}), "limits.per_hour"),
    ] {
        let body = widget("refused", limits.clone()).to_string();
        let named = refused_field(&api, "POST", "/v1/widgets", &body);
        assert_eq!(named, field, "{limits}");
    }
    api.expect("GET", "/v1/widgets/refused", Value::Null, 404);

    let tight = api.expect(
        "POST",
        "/v1/widgets",
        widget("tight", json!({"calls_per_minute": 2})),
        201,
    );
    assert_eq!(
        tight["limits"],
        json!({"calls_per_minute": 2, "max_concurrent_calls": null})
    );
    let loose = api.expect(
        "POST",
        "/v1/widgets",
        json!({"id": "loose", "number_id": "demo",
        "allowed_origins": ["self"]}),
        201,
    );
    assert_eq!(
        loose["limits"],
        json!({"calls_per_minute": null, "max_concurrent_calls": null})
    );
    let statuses: Vec<u16> = (0..3).map(|_| call_status(&node, "tight").0).collect();
    assert_eq!(
        statuses,
        [400, 400, 429],
        "the third call is over the widget's 2 a minute"
    );
    let (status, reply) = call_status(&node, "tight");
    assert_eq!(status, 429);
    assert!(reply.contains("through this widget"), "{reply}");
    let statuses: Vec<u16> = (0..3).map(|_| call_status(&node, "loose").0).collect();
    assert_eq!(statuses, [400, 400, 400], "the node's 120 a minute apply");

    // One call at a time: a second while the first is in progress is
    // refused, and taken again once it has ended.
    api.expect(
        "PATCH",
        "/v1/widgets/loose",
        json!({"limits": {"max_concurrent_calls": 1}}),
        200,
    );
    let play = speech_wav_48k(SPEECH);
    let first = AiortcCall::new(&node.base(), "loose", &node.base(), &play)
        .codec("pcmu")
        .seconds(4.0)
        .spawn();
    first.until_answered(std::time::Duration::from_secs(20));
    let (status, reply) = call_status(&node, "loose");
    assert_eq!(status, 429, "{reply}");
    assert!(reply.contains("in progress through this widget"), "{reply}");
    let outcome = first.wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    node.wait_for_cdrs(1).await;
    let mut after = (0, String::new());
    for _ in 0..50 {
        after = call_status(&node, "loose");
        if after.0 != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        after.0, 400,
        "the slot came back once the call ended: {}",
        after.1
    );

    let audit = api.expect("GET", "/v1/audit", Value::Null, 200);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "updated" && e["reason"] == "limits"),
        "{audit}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_drains_the_node_and_the_call_in_progress_goes_on_to_its_end() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let (code, operator_key, stderr) = node.command(&["apikey", "create", "--role", "operator"]);
    assert_eq!(code, 0, "{stderr}");
    let operator = Api::new(&node, operator_key.trim());
    let revoked = node.command(&["apikey", "create", "--role", "operator"]).1;
    node.command(&["apikey", "revoke", &revoked.trim()[3..19]]);
    let tenant = Api::new(&node, &node.api_key("demo", "admin"));
    for path in ["/v1/node", "/v1/node/drain"] {
        let method = if path == "/v1/node" { "GET" } else { "POST" };
        let anonymous = Api {
            node: &node,
            key: None,
        };
        anonymous.expect(method, path, Value::Null, 401);
        Api::new(&node, revoked.trim()).expect(method, path, Value::Null, 401);
        let refused = tenant.expect(method, path, Value::Null, 403);
        assert_eq!(refused["error"], "an operator key is required");
    }
    // An operator key sees no tenant's data.
    operator.expect("GET", "/v1/numbers", Value::Null, 403);
    let status = operator.expect("GET", "/v1/node", Value::Null, 200);
    assert_eq!(
        (
            &status["ready"],
            &status["draining"],
            &status["calls_active"]
        ),
        (&json!(true), &json!(false), &json!(0))
    );

    let call = answered_call(&node, 5.0);

    let draining = operator.expect("POST", "/v1/node/drain", Value::Null, 200);
    assert_eq!(
        (
            &draining["ready"],
            &draining["draining"],
            &draining["calls_active"]
        ),
        (&json!(false), &json!(true), &json!(1))
    );
    let ready = request(node.addr, "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json(), json!({"ready": false, "draining": true}));
    let (status, reply) = call_status(&node, "demo");
    assert_eq!(status, 503, "{reply}");
    assert!(reply.contains("draining"), "{reply}");
    assert_eq!(
        support::node::metric(node.addr, "callgate_node_draining"),
        1.0
    );
    assert_eq!(
        support::node::metric(
            node.addr,
            "callgate_http_requests_refused_total{reason=\"draining\"}"
        ),
        1.0
    );

    // The call in progress is not cut off: it runs its 5 s and the visitor
    // hangs up.
    let outcome = call.wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by),
        ("answered", callgate::domain::EndedBy::Visitor)
    );
    assert!(cdr.duration_ms >= 4_000, "{}", cdr.duration_ms);
    let mut status = Value::Null;
    for _ in 0..50 {
        status = operator.expect("GET", "/v1/node", Value::Null, 200);
        if status["calls_active"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["calls_active"], 0, "{status}");

    let resumed = operator.expect("DELETE", "/v1/node/drain", Value::Null, 200);
    assert_eq!(
        (&resumed["ready"], &resumed["draining"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(request(node.addr, "GET", "/readyz", &[], b"").status, 200);
    assert_eq!(call_status(&node, "demo").0, 400, "past every guard again");
    assert_eq!(
        support::node::metric(node.addr, "callgate_node_draining"),
        0.0
    );
    node.stop().await;
}

/// Waits until `/readyz` says the node is draining.
async fn until_draining(node: &RunningNode) {
    for _ in 0..50 {
        let ready = request(node.addr, "GET", "/readyz", &[], b"");
        if ready.status == 503 {
            assert_eq!(ready.json(), json!({"ready": false, "draining": true}));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node did not start draining");
}

/// An aiortc call of `seconds` on the demo widget, once answered.
fn answered_call(node: &RunningNode, seconds: f64) -> support::aiortc::AiortcRun {
    let play = speech_wav_48k(SPEECH);
    let call = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec("pcmu")
        .seconds(seconds)
        .spawn();
    call.until_answered(Duration::from_secs(20));
    call
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sigterm_the_node_drains_its_call_goes_on_to_its_end_and_then_the_node_stops() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let sip = node.sip_udp_addr();
    let wait = Duration::from_secs(2);
    assert_eq!(sip_raw::options_ping(sip, wait), Some(200));
    let call = answered_call(&node, 5.0);

    node.drain_as_on_sigterm();
    until_draining(&node).await;
    let (status, reply) = call_status(&node, "demo");
    assert_eq!(status, 503, "a new call is refused: {reply}");
    assert_eq!(
        sip_raw::options_ping(sip, wait),
        Some(503),
        "trunks' OPTIONS hear the node is unavailable"
    );
    assert_eq!(metric(node.addr, "callgate_node_draining"), 1.0);

    let outcome = call.wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    assert_eq!(outcome.ended_reason().as_deref(), Some("completed"));
    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by),
        ("answered", EndedBy::Visitor),
        "the call ran to the visitor's own hang-up"
    );
    assert!(cdr.duration_ms >= 4_000, "{}", cdr.duration_ms);
    assert!(
        node.stopped_within(Duration::from_secs(5)).await,
        "the node stops by itself once its last call is over"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_that_times_out_hangs_up_the_calls_left_and_writes_their_cdrs() {
    let _turn = SPEECH_TURNS.lock().await;
    let timeout = [("CALLGATE_NODE_DRAIN_TIMEOUT_SECS", "2")];
    let node = RunningNode::start(MEDIA, ROUTES, &timeout).await;
    let call = answered_call(&node, 30.0);
    let draining = Instant::now();
    node.drain_as_on_sigterm();
    let outcome = call.wait_async().await;
    let lasted = draining.elapsed();
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(6)).contains(&lasted),
        "the call should end 2 s into the drain; it took {lasted:?}\n{}",
        outcome.report()
    );
    let cdr = node.cdr_of_widget("demo").await;
    assert_eq!(
        (cdr.disposition.as_str(), cdr.ended_by),
        ("answered", EndedBy::Node)
    );
    assert!(
        node.stopped_within(Duration::from_secs(5)).await,
        "the node stops after hanging up"
    );
}

fn cdr(tenant: &str, number: &str, index: i64) -> CdrRecord {
    let created = 1_790_000_000_000 + index * 60_000;
    CdrRecord {
        call_id: format!("{tenant}-call-{index:05}").into(),
        tenant_id: tenant.into(),
        number_id: number.into(),
        widget_id: number.into(),
        trunk: (index % 3 != 0).then(|| "echo".to_owned()),
        node_id: "node-1".into(),
        created_at_ms: created,
        answered_at_ms: (index % 3 != 0).then_some(created + 2_000),
        ended_at_ms: created + 30_000,
        duration_ms: if index % 3 != 0 { 28_000 } else { 0 },
        disposition: if index % 3 != 0 {
            Disposition::Answered
        } else {
            Disposition::Busy
        },
        sip_code: Some(if index % 3 != 0 { 200 } else { 486 }),
        sip_reason: (index % 3 == 0).then(|| "Busy Here".to_owned()),
        q850_cause: (index % 3 == 0).then_some(17),
        ended_by: EndedBy::Visitor,
        browser_codec: Some("PCMU".into()),
        trunk_codec: Some("PCMU".into()),
        browser_stats: LegStats {
            packets_sent: 1400,
            packets_received: 1399,
            packets_lost: 1,
            jitter_us: 2500,
            mos_worst_x100: (index % 3 != 0).then_some(391),
            mos_average_x100: (index % 3 != 0).then_some(428),
        },
        trunk_stats: LegStats::default(),
        visitor_network: Some("203.0.113.0/24".into()),
        recorded: false,
        privacy_ref: None,
        erased_at_ms: None,
        end_reason: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cdr_exports_stream_every_row_as_json_and_csv_that_agree() {
    let _turn = SPEECH_TURNS.lock().await;
    cdr_exports_agree(RunningNode::start(MEDIA, ROUTES, &[]).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdr_exports_agree_on_a_node_whose_store_is_postgresql() {
    let _turn = SPEECH_TURNS.lock().await;
    let url = support::postgres::fresh_database().await;
    let env = [("CALLGATE_DATABASE_URL", url.as_str())];
    cdr_exports_agree(RunningNode::start(MEDIA, ROUTES, &env).await).await;
}

/// What a tenant sees of its data, by path; the widgets without their
/// embed snippets (which carry the node's address).
fn listings(api: &Api) -> Vec<(&'static str, Value)> {
    [
        "/v1/numbers",
        "/v1/widgets",
        "/v1/cdrs",
        "/v1/webhook",
        "/v1/audit",
    ]
    .into_iter()
    .map(|path| {
        let mut listed = api.expect("GET", path, Value::Null, 200);
        if let Some(widgets) = listed.as_array_mut().filter(|_| path == "/v1/widgets") {
            widgets.iter_mut().for_each(|w| {
                w.as_object_mut().unwrap().remove("embed");
            });
        }
        (path, listed)
    })
    .collect()
}

/// `callgate database copy --to FILE --config FILE`, the node stopped.
fn copy_database(from: &std::path::Path, to: &std::path::Path) -> (i32, String, String) {
    let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());
    support::node::callgate(&["database", "copy", "--to", to, "--config", from], &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_node_moves_to_postgresql_with_everything_it_held() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let key = node.api_key("demo", "admin");
    let api = Api::new(&node, &key);
    api.expect("POST", "/v1/numbers", number("sales"), 201);
    api.expect(
        "POST",
        "/v1/widgets",
        json!({"id": "sales", "number_id": "sales", "allowed_origins": ["self"],
               "limits": {"max_concurrent_calls": 2}}),
        201,
    );
    api.expect(
        "PUT",
        "/v1/webhook",
        json!({"url": "https://hooks.example.com/"}),
        200,
    );
    let store = node.store().await;
    for index in 0..250 {
        store
            .insert_cdr(&cdr("demo", "sales", index))
            .await
            .unwrap();
    }
    store.close().await;
    let before = listings(&api);
    let source = node.config_file();
    let target = node.data.path().join("callgate-postgres.toml");
    let url = support::postgres::fresh_database().await;
    std::fs::write(
        &target,
        format!("{}\n[database]\nurl = \"{url}\"\n", node.config_text),
    )
    .unwrap();
    let data = node.stop_keeping_data().await;

    let (code, stdout, stderr) = copy_database(&source, &target);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("cdrs\t250"), "{stdout}");
    assert!(!stdout.contains(&url) && !stderr.contains(&url));

    let env = [("CALLGATE_DATABASE_URL", url.as_str())];
    let node = RunningNode::start_in(data, MEDIA, ROUTES, &env).await;
    let api = Api::new(&node, &key);
    let after = listings(&api);
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert!(was == is, "{path} differs after the move");
    }
    let sealed = node
        .store()
        .await
        .webhook("demo")
        .await
        .unwrap()
        .unwrap()
        .secret;
    assert!(sealed.starts_with("sealed:v1:"));

    // A second copy finds data in the target and writes nothing.
    let (code, _, stderr) = copy_database(&source, &target);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already holds data"), "{stderr}");
    assert!(api.expect("GET", "/v1/cdrs", Value::Null, 200) == before[2].1);
    node.stop().await;
}

async fn cdr_exports_agree(node: RunningNode) {
    node.command(&["tenant", "create", "acme"]);
    let store = node.store().await;
    // More rows than one page of the export, in two numbers and two tenants.
    for index in 0..1_203 {
        let number = if index % 2 == 0 { "sales" } else { "support" };
        store.insert_cdr(&cdr("acme", number, index)).await.unwrap();
    }
    for index in 0..5 {
        store.insert_cdr(&cdr("demo", "demo", index)).await.unwrap();
    }
    let api = Api::new(&node, &node.api_key("acme", "read"));

    let json = api.expect("GET", "/v1/cdrs", Value::Null, 200);
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 1_203);
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first, no repeats");
    assert!(ids.iter().all(|id| id.starts_with("acme-")));
    assert_eq!(rows[1]["created_at"], "2026-09-21T14:14:20Z");

    let csv = api.get("/v1/cdrs?format=csv");
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut reader = csv::Reader::from_reader(csv.body.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let first_keys: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        header.iter().cloned().collect::<BTreeSet<_>>(),
        first_keys.iter().cloned().collect()
    );
    let csv_rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(csv_rows.len(), rows.len());
    for (json_row, csv_row) in rows.iter().zip(&csv_rows) {
        for (column, cell) in header.iter().zip(csv_row) {
            let expected = match &json_row[column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(&expected, cell, "{column} of {}", json_row["call_id"]);
        }
    }

    // Filters: one number, a time window (to exclusive).
    let sales = api.expect("GET", "/v1/cdrs?number_id=sales", Value::Null, 200);
    assert_eq!(sales.as_array().unwrap().len(), 602);
    let from = rows[10]["created_at"].as_str().unwrap();
    let to = rows[20]["created_at"].as_str().unwrap();
    let window = api.get(&format!("/v1/cdrs?from={from}&to={to}&format=csv"));
    let window_rows = csv::Reader::from_reader(window.body.as_slice())
        .records()
        .count();
    assert_eq!(window_rows, 10);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_call_is_listed_heard_and_deleted_through_the_api_and_each_step_audited() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let key = node.api_key("demo", "admin");
    let api = Api::new(&node, &key);
    let play = speech_wav_48k(SPEECH);
    let outcome = AiortcCall::new(&node.base(), "demo", &node.base(), &play)
        .codec("pcmu")
        .seconds(9.0)
        .consent("granted")
        .spawn()
        .wait_async()
        .await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    let call_id = node.cdr_of_widget("demo").await.call_id;

    let listed = api.expect(
        "GET",
        &format!("/v1/recordings?call_id={call_id}"),
        Value::Null,
        200,
    );
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let recording = &listed[0];
    assert_eq!(
        (&recording["state"], &recording["complete"]),
        (&json!("stored"), &json!(true))
    );
    assert!(recording.get("wrapped_key").is_none());
    let id = recording["id"].as_str().unwrap().to_owned();

    // Another tenant cannot see, hear or delete it.
    node.command(&["tenant", "create", "acme"]);
    let other = Api::new(&node, &node.api_key("acme", "admin"));
    other.expect(
        "GET",
        &format!("/v1/recordings/{id}/audio"),
        Value::Null,
        404,
    );
    other.expect("DELETE", &format!("/v1/recordings/{id}"), Value::Null, 404);
    assert_eq!(
        other.expect("GET", "/v1/recordings", Value::Null, 200),
        json!([])
    );

    let audio = api.get(&format!("/v1/recordings/{id}/audio"));
    assert_eq!(audio.status, 200, "{}", audio.text());
    assert_eq!(audio.header("content-type"), Some("audio/wav"));
    assert_eq!(audio.header("cache-control"), Some("no-store"));
    let wav = node.data.path().join("from-api.wav");
    std::fs::write(&wav, &audio.body).unwrap();
    let (rate, channels) = read_wav_channels(&wav);
    assert_eq!((rate, channels.len()), (8000, 2));
    let heard = similarity_within(
        &speech_pcm_8k(SPEECH),
        &channels[0],
        std::time::Duration::from_secs(2),
    );
    assert!(heard.score >= SAME_SPEECH_MIN, "visitor channel: {heard:?}");
    // Streamed with its length known up front.
    let length: usize = audio.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, audio.body.len());

    // A flipped byte in a middle segment breaks the transfer: the answer
    // stops short of its length rather than carry altered audio. (The
    // first and last segments are checked before the headers go out.)
    let object_path = node
        .store()
        .await
        .recording(&id)
        .await
        .unwrap()
        .unwrap()
        .object_path;
    let blob_path = node.data.path().join("recordings").join(object_path);
    let mut blob = std::fs::read(&blob_path).unwrap();
    assert!(blob.len() > 3 * 65_552, "at least three 64 KiB segments");
    let flipped = blob.len() / 2;
    blob[flipped] ^= 0x01;
    std::fs::write(&blob_path, &blob).unwrap();
    // The node aborts the connection at that segment, and what its HTTP
    // layer had buffered but not yet written goes with it: on a busy
    // machine that can be the status line too, so a client sees either a
    // 200 whose body stops short of its length or no answer at all.
    let broken = api.get(&format!("/v1/recordings/{id}/audio"));
    if broken.status == 0 {
        assert!(broken.body.is_empty(), "{} bytes", broken.body.len());
    } else {
        assert_eq!(broken.status, 200, "{}", broken.text());
        let promised: usize = broken.header("content-length").unwrap().parse().unwrap();
        assert!(
            broken.body.len() < promised,
            "{} of {promised} bytes",
            broken.body.len()
        );
    }
    assert!(
        broken.body.len() < flipped,
        "nothing of the tampered segment"
    );
    assert!(
        broken.body == audio.body[..broken.body.len()],
        "what arrived is the recording as it was"
    );

    api.expect("DELETE", &format!("/v1/recordings/{id}"), Value::Null, 204);
    let gone = api.expect(
        "GET",
        &format!("/v1/recordings/{id}/audio"),
        Value::Null,
        410,
    );
    assert!(
        gone["error"].as_str().unwrap().contains("deleted"),
        "{gone}"
    );
    assert_eq!(
        api.expect("GET", &format!("/v1/recordings/{id}"), Value::Null, 200)["state"],
        "deleted"
    );

    let by = format!("key:{}", &key[3..19]);
    let audit = api.expect("GET", "/v1/audit", Value::Null, 200);
    let trail: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == id.as_str())
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            (by.as_str(), "accessed", "api"),
            (by.as_str(), "accessed", "api"),
            (by.as_str(), "deleted", "api")
        ]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_covers_every_route() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let doc = request(node.addr, "GET", "/v1/openapi.json", &[], b"").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut expected: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(method, path, _)| {
            let path = path
                .replace("/sales", "/{id}")
                .replace("/spare", "/{id}")
                .replace("/rec-x", "/{id}");
            (method.to_owned(), path)
        })
        .collect();
    expected.insert(("GET".into(), "/v1/openapi.json".into()));
    expected.insert(("GET".into(), "/v1/node".into()));
    expected.insert(("POST".into(), "/v1/node/drain".into()));
    expected.insert(("DELETE".into(), "/v1/node/drain".into()));
    for method in ["GET", "PUT", "DELETE"] {
        expected.insert((method.into(), "/v1/tenants/{id}/allowance".into()));
    }
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(missing.is_empty(), "undocumented: {missing:?}");
    assert!(doc["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_bounds_where_a_tenant_may_call_and_calls_outside_are_refused() {
    let _turn = SPEECH_TURNS.lock().await;
    let node = RunningNode::start(MEDIA, ROUTES, &[]).await;
    let operator_key = node.command(&["apikey", "create", "--role", "operator"]).1;
    let operator = Api::new(&node, operator_key.trim());
    let tenant = Api::new(&node, &node.api_key("demo", "admin"));
    let allowance = "/v1/tenants/demo/allowance";

    // The node's default: any route, any number but the high-cost ranges.
    let shown = operator.expect("GET", allowance, Value::Null, 200);
    assert_eq!(
        shown,
        json!({"tenant": "demo", "own": false, "routes": null, "prefixes": null})
    );
    let premium = json!({"id": "premium", "e164": "+19005550100", "trunk": "demo"});
    for costly in [
        "+19005550100",
        "+18765550100",
        "+881612345678",
        "+447012345678",
    ] {
        let number = json!({"id": "costly", "e164": costly, "trunk": "demo"});
        let refused = tenant.expect("POST", "/v1/numbers", number, 400);
        assert_eq!(refused["field"], "e164", "{costly}: {refused}");
    }

    // Tenant keys cannot see or change an allowance, and a body must say
    // both what routes and what prefixes.
    let bounded = json!({"routes": ["demo"], "prefixes": ["+1", "+1900"]});
    tenant.expect("PUT", allowance, bounded.clone(), 403);
    tenant.expect("GET", allowance, Value::Null, 403);
    let half = operator.expect("PUT", allowance, json!({"routes": ["demo"]}), 400);
    assert_eq!(half["field"], "prefixes");
    let unknown = json!({"routes": ["nowhere"], "prefixes": null});
    assert_eq!(
        operator.expect("PUT", allowance, unknown, 400)["field"],
        "routes"
    );
    let bad_prefix = json!({"routes": null, "prefixes": ["44"]});
    assert_eq!(
        operator.expect("PUT", allowance, bad_prefix, 400)["field"],
        "prefixes"
    );
    let nobody = "/v1/tenants/nobody/allowance";
    operator.expect("PUT", nobody, bounded.clone(), 404);

    let set = operator.expect("PUT", allowance, bounded, 200);
    assert_eq!(
        (&set["own"], &set["routes"]),
        (&json!(true), &json!(["demo"]))
    );
    // The premium range is named, so it may be dialled now; another
    // country, or the other route, may not, and the refusal names only what
    // this tenant may use.
    tenant.expect("POST", "/v1/numbers", premium, 201);
    let abroad = json!({"id": "abroad", "e164": "+442079460000", "trunk": "demo"});
    let refused = tenant.expect("POST", "/v1/numbers", abroad, 400);
    assert_eq!(refused["field"], "e164");
    assert!(
        refused["error"].as_str().unwrap().ends_with("(+1, +1900)"),
        "{refused}"
    );
    let other = json!({"id": "other", "e164": "+15555550142", "trunk": "sales"});
    let refused = tenant.expect("POST", "/v1/numbers", other, 400);
    assert_eq!(refused["field"], "trunk");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .ends_with("(routes: demo)"),
        "{refused}"
    );
    let moved = tenant.expect("PATCH", "/v1/numbers/demo", json!({"trunk": "sales"}), 400);
    assert_eq!(moved["field"], "trunk");

    // Narrowed after the fact, the demo number is outside: its calls are
    // refused before anything starts.
    let abroad_only = json!({"routes": ["demo"], "prefixes": ["+44"]});
    operator.expect("PUT", allowance, abroad_only, 200);
    let body = json!({"offer": support::node::OFFER}).to_string();
    let place = || node.post_demo_call(body.as_bytes());
    let (status, body) = place();
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("calls to this number are not allowed"),
        "{body}"
    );
    let refused_total = "callgate_http_requests_refused_total{reason=\"not_allowed\"}";
    assert_eq!(metric(node.addr, refused_total), 1.0);
    assert_eq!(metric(node.addr, "callgate_calls_started_total"), 0.0);

    // The command line gives the tenant the node's default back, and the
    // same call goes through.
    let (code, stdout, stderr) = node.command(&["tenant", "allow", "demo", "--default"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "tenant demo may call: routes *, prefixes *");
    let (status, body) = place();
    assert_eq!(status, 201, "{body}");
    let call: Value = serde_json::from_str(&body).unwrap();
    let (code, stdout, stderr) = node.command(&[
        "tenant",
        "allow",
        "demo",
        "--routes",
        "demo",
        "--prefixes",
        "+1,+44",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        "tenant demo may call: routes demo, prefixes +1,+44"
    );
    let (code, _, stderr) = node.command(&[
        "tenant",
        "allow",
        "demo",
        "--routes",
        "nowhere",
        "--prefixes",
        "*",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no route \"nowhere\""), "{stderr}");
    let (code, _, _) = node.command(&[
        "tenant",
        "allow",
        "demo",
        "--routes",
        "*",
        "--prefixes",
        "1",
    ]);
    assert_eq!(code, 64);

    // Every change is in the tenant's audit log, by who made it.
    let audit = tenant.expect("GET", "/v1/audit", Value::Null, 200);
    let changes: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_kind"] == "allowance")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_key = format!("key:{}", &operator_key.trim()[3..19]);
    let expected = [
        (by_key.clone(), "updated"),
        (by_key, "updated"),
        ("cli".to_owned(), "deleted"),
        ("cli".to_owned(), "updated"),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(a, b)| (a, b.to_owned()))
        .collect();
    assert_eq!(changes, expected);
    let hangup = format!(
        "/v1/calls/{}?token={}",
        call["call_id"].as_str().unwrap(),
        call["token"].as_str().unwrap()
    );
    let (status, reply) = support::node::http(node.addr, "DELETE", &hangup, None, b"");
    assert_eq!(status, 204, "{reply}");
    node.stop().await;
}
