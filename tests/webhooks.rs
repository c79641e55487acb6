//! Webhooks end to end: a real HTTP receiver on loopback checks every
//! delivery's signature with the secret the admin API returned; aiortc
//! calls through the node's echo trunk raise `call.ended` and
//! `recording.ready`; with the receiver down, calls are as fast as with it
//! up and the queued event arrives once it is back. A call that sipp rings
//! and answers raises `call.ringing` and `call.answered` for an endpoint
//! that chose them. Also the admin routes of `/v1/webhook`: who may read
//! and change it, the events it receives, and the secret shown once.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use callgate::store::DeliveryRow;
use callgate::webhooks::DEFAULT_EVENTS;
use serde_json::{Value, json};
use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::speech_wav_48k;
use support::node::{RunningNode, metric};
use support::ports::free_tcp_port;
use support::rtp::EchoSink;
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use tokio_util::sync::CancellationToken;

/// The tests' receivers listen on loopback, which a node allows only with
/// `allow_private_targets`.
const ROUTES: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n\
                      [webhooks]\nretry_initial_secs = 1\nretry_max_secs = 2\n\
                      allow_private_targets = true\n";
/// A node with the default: webhooks go to public addresses only.
const PUBLIC_ONLY: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n\
                           [webhooks]\nretry_initial_secs = 1\nretry_max_secs = 2\n";
const CALL_MEDIA: std::ops::RangeInclusive<u16> = 23000..=23249;
const RINGING_MEDIA: std::ops::RangeInclusive<u16> = 27700..=27799;
const API_MEDIA: std::ops::RangeInclusive<u16> = 23250..=23499;
const SPEECH: &str = "webhooks tell the customer about every call, one two three";
/// How much slower a call may be with its webhook endpoint down.
const MARGIN: Duration = Duration::from_secs(1);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// The receiver's own check, written from the documented scheme (not the
/// node's code): `v1=` hex HMAC-SHA256(secret, "<timestamp>.<body>"), and a
/// timestamp within five minutes of now.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    use hmac::{KeyInit as _, Mac as _};
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) =
        (text("callgate-timestamp"), text("callgate-signature"))
    else {
        return false;
    };
    let Ok(sent) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let Some(tag) = signature
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    (now - sent).abs() <= 300 && mac.verify_slice(&tag).is_ok()
}

/// A webhook receiver on 127.0.0.1:`port` that records every request and
/// answers 204; stopped (and waited for) by [`Receiver::stop`].
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(log): State<Arc<Mutex<Vec<Received>>>>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        log.lock().unwrap().push(Received { headers, body });
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind the receiver");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            received,
            stop,
            task,
        }
    }

    /// The first request of `event` about call `call_id`, waiting up to
    /// `timeout`.
    async fn wait_for(&self, event: &str, call_id: &str, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .received
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.header("callgate-event") == event && r.json()["call_id"] == call_id)
                .cloned();
            if let Some(found) = found {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {event} for {call_id} within {timeout:?}: {:?}",
                self.received.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// How long a call took to set up, and from its end to its CDR.
#[derive(Debug)]
struct Timing {
    call_id: String,
    setup: Duration,
    end_to_cdr: Duration,
}

/// A 2 s call through `widget`, timed from outside: setup until the
/// client hears `answered`, and from its `ended` until the CDR is written.
async fn timed_call(node: &RunningNode, widget: &str, consent: Option<&str>) -> Timing {
    let play = speech_wav_48k(SPEECH);
    let mut client = AiortcCall::new(&node.base(), widget, &node.base(), &play)
        .codec("pcmu")
        .seconds(2.0);
    if let Some(consent) = consent {
        client = client.consent(consent);
    }
    let started = Instant::now();
    let run = client.spawn();
    let has_state = |state: &str| {
        run.events()
            .iter()
            .any(|e| e["type"] == "state" && e["state"] == state)
    };
    let mut setup = None;
    while !has_state("ended") {
        if setup.is_none() && has_state("answered") {
            setup = Some(started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ended = Instant::now();
    let store = node.store().await;
    let cdr = loop {
        let cdrs = store.cdrs_for_tenant("demo", 100).await.unwrap();
        if let Some(cdr) = cdrs.into_iter().find(|c| c.widget_id == widget) {
            break cdr;
        }
        assert!(ended.elapsed() < Duration::from_secs(10), "no CDR");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let end_to_cdr = ended.elapsed();
    let outcome = run.wait_async().await;
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    Timing {
        call_id: cdr.call_id.into_string(),
        setup: setup.expect("answered before ended"),
        end_to_cdr,
    }
}

fn set_webhook(api: &Api, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/hook");
    let answer = api.expect("PUT", "/v1/webhook", json!({ "url": url }), 200);
    answer["secret"].as_str().expect("a secret").to_owned()
}

/// With the receiver up: a plain call's `call.ended` and a recorded call's
/// `recording.ready` arrive signed; a tampered body fails the check.
/// Returns the plain call's timing.
async fn receiver_up(node: &RunningNode, port: u16, secret: &str) -> Timing {
    let receiver = Receiver::start(port).await;
    let up = timed_call(node, "plain", None).await;
    let ended = receiver
        .wait_for("call.ended", &up.call_id, Duration::from_secs(10))
        .await;
    assert!(verify(secret, &ended.headers, &ended.body), "{ended:?}");
    assert_eq!(ended.json()["widget_id"], "plain");
    assert!(!ended.header("callgate-delivery").is_empty());
    let mut tampered = ended.body.to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    assert!(!verify(secret, &ended.headers, &tampered));
    assert!(!verify("another secret", &ended.headers, &ended.body));

    let recorded = timed_call(node, "rec", Some("granted")).await;
    let ready = receiver
        .wait_for(
            "recording.ready",
            &recorded.call_id,
            Duration::from_secs(10),
        )
        .await;
    assert!(verify(secret, &ready.headers, &ready.body), "{ready:?}");
    assert_eq!(ready.json()["state"], "stored");
    assert!(ready.json().get("wrapped_key").is_none());
    receiver.stop().await;
    up
}

/// The queued delivery about call `call_id`.
async fn delivery_of(node: &RunningNode, call_id: &str) -> Option<DeliveryRow> {
    let rows = node.store().await.webhook_deliveries("demo").await.unwrap();
    rows.into_iter().find(|d| d.body.contains(call_id))
}

fn deliveries_counted(node: &RunningNode, outcome: &str) -> f64 {
    let name = format!("callgate_webhook_deliveries_total{{outcome=\"{outcome}\"}}");
    metric(node.addr, &name)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_arrive_and_a_dead_receiver_never_slows_a_call() {
    let node = RunningNode::start(CALL_MEDIA, ROUTES, &[]).await;
    node.add_widget("plain", "demo").await;
    node.add_widget("plain-down", "demo").await;
    node.add_recorded_widget("rec", "demo", "opt_in", "discard")
        .await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let port = free_tcp_port();
    let secret = set_webhook(&api, port);

    let up = receiver_up(&node, port, &secret).await;

    // (b) receiver down: the port is closed, the call is as quick.
    let down = timed_call(&node, "plain-down", None).await;
    eprintln!("receiver up: {up:?}\nreceiver down: {down:?}");
    assert!(down.setup <= up.setup + MARGIN, "{up:?} {down:?}");
    assert!(down.end_to_cdr <= up.end_to_cdr + MARGIN, "{up:?} {down:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = delivery_of(&node, &down.call_id).await;
        if row.is_some_and(|d| d.attempts >= 1 && d.delivered_at.is_none()) {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The receiver returns on the same port: the queued event arrives.
    let receiver = Receiver::start(port).await;
    let late = receiver
        .wait_for("call.ended", &down.call_id, Duration::from_secs(15))
        .await;
    assert!(verify(&secret, &late.headers, &late.body));
    receiver.stop().await;
    let row = delivery_of(&node, &down.call_id).await.unwrap();
    assert!(row.delivered_at.is_some() && row.attempts >= 2, "{row:?}");
    assert!(!row.last_error.unwrap_or_default().contains("127.0.0.1"));
    let counted = |outcome| deliveries_counted(&node, outcome);
    assert!(counted("delivered") >= 3.0, "{}", counted("delivered"));
    assert!(counted("retry") >= 1.0, "{}", counted("retry"));
    assert_eq!(counted("failed"), 0.0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_node_sends_no_webhook_into_its_own_network() {
    let node = RunningNode::start(API_MEDIA, PUBLIC_ONLY, &[]).await;
    let admin = Api::new(&node, &node.api_key("demo", "admin"));
    let port = free_tcp_port();
    let receiver = Receiver::start(port).await;
    for inside in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        "https://10.0.0.7/hook".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[fd00::7]/hook".to_owned(),
        "https://[::ffff:192.168.0.1]/hook".to_owned(),
    ] {
        let response = admin.send("PUT", "/v1/webhook", &json!({ "url": inside }).to_string());
        assert_eq!(response.status, 400, "{inside}: {}", response.text());
        let json = response.json();
        assert_eq!(json["field"], "url", "{inside}");
        assert!(
            json["error"].as_str().unwrap().contains("public host"),
            "{json}"
        );
    }
    assert_eq!(
        admin.expect("GET", "/v1/webhook", Value::Null, 200)["set"],
        false
    );

    // An endpoint already in the database (set before this rule, or by
    // hand) is refused when sent to: by its literal address, and by a name
    // that resolves to loopback.
    let store = node.store().await;
    for (n, url) in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ]
    .into_iter()
    .enumerate()
    {
        let actor = callgate::store::Actor::Cli;
        store
            .set_webhook("demo", &url, "secret", DEFAULT_EVENTS, &actor)
            .await
            .unwrap();
        let probe = format!("probe-{n}");
        let body = json!({ "call_id": probe }).to_string();
        assert!(
            store
                .enqueue_webhook("demo", "call.ended", &body)
                .await
                .unwrap()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let row = loop {
            let row = delivery_of(&node, &probe).await;
            if let Some(row) = row.filter(|d| d.attempts >= 1) {
                break row;
            }
            assert!(Instant::now() < deadline, "{url}: no attempt recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            (row.delivered_at, row.last_error.as_deref()),
            (None, Some("refused: the target is not a public address")),
            "{url}"
        );
    }
    assert!(
        receiver.received.lock().unwrap().is_empty(),
        "a request reached the receiver"
    );
    receiver.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_stored_as_issued_by_an_older_node_is_sealed_at_start_and_still_signs() {
    let node = RunningNode::start(API_MEDIA, ROUTES, &[]).await;
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let legacy = "an older node kept this secret as issued";
    let store = node.store().await;
    let actor = callgate::store::Actor::Cli;
    store
        .set_webhook("demo", &url, legacy, DEFAULT_EVENTS, &actor)
        .await
        .unwrap();
    drop(store);
    let data = node.stop_keeping_data().await;

    let node = RunningNode::start_in(data, API_MEDIA, ROUTES, &[]).await;
    let store = node.store().await;
    let kept = store.webhook("demo").await.unwrap().unwrap().secret;
    assert!(kept.starts_with("sealed:v1:"), "{kept}");
    assert!(!kept.contains(legacy));
    let receiver = Receiver::start(port).await;
    let body = json!({ "call_id": "after-sealing" }).to_string();
    assert!(
        store
            .enqueue_webhook("demo", "call.ended", &body)
            .await
            .unwrap()
    );
    let received = receiver
        .wait_for("call.ended", "after-sealing", Duration::from_secs(15))
        .await;
    assert!(verify(legacy, &received.headers, &received.body));
    receiver.stop().await;
    node.stop().await;
}

const GOOD_URL: &str = "https://hooks.example.com/callgate";

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_endpoint_refuses_missing_and_read_keys_and_bad_urls() {
    let node = RunningNode::start(API_MEDIA, ROUTES, &[]).await;
    let admin = Api::new(&node, &node.api_key("demo", "admin"));
    let reader = Api::new(&node, &node.api_key("demo", "read"));
    let anonymous = Api {
        node: &node,
        key: None,
    };
    let good = json!({ "url": GOOD_URL });
    for (method, body) in [
        ("GET", Value::Null),
        ("PUT", good.clone()),
        ("DELETE", Value::Null),
    ] {
        anonymous.expect(method, "/v1/webhook", body, 401);
    }
    reader.expect("PUT", "/v1/webhook", good.clone(), 403);
    reader.expect("DELETE", "/v1/webhook", Value::Null, 403);
    let unset = reader.expect("GET", "/v1/webhook", Value::Null, 200);
    assert_eq!(
        (unset["set"].clone(), unset["url"].clone()),
        (json!(false), Value::Null)
    );
    for bad in [
        json!({"url": "http://hooks.example.com/"}),
        json!({"url": "ftp://hooks.example.com/"}),
        json!({"url": "https://user:pw@hooks.example.com/"}),
        json!({"url": 42}),
    ] {
        let response = admin.send("PUT", "/v1/webhook", &bad.to_string());
        assert_eq!(response.status, 400, "{bad}: {}", response.text());
        assert_eq!(response.json()["field"], "url", "{bad}");
    }
    let extra = json!({"url": GOOD_URL, "extra": 1});
    admin.expect("PUT", "/v1/webhook", extra, 400);
    assert_eq!(
        admin.expect("GET", "/v1/webhook", Value::Null, 200)["set"],
        false
    );

    let doc = admin.expect("GET", "/v1/openapi.json", Value::Null, 200);
    let path = &doc["paths"]["/v1/webhook"];
    for method in ["get", "put", "delete"] {
        assert!(path[method].is_object(), "{method} /v1/webhook: {path}");
    }
    assert_eq!(path["put"]["security"].as_array().unwrap().len(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_secret_is_shown_once_and_every_change_is_audited() {
    let node = RunningNode::start(API_MEDIA, ROUTES, &[]).await;
    let admin = Api::new(&node, &node.api_key("demo", "admin"));
    let reader = Api::new(&node, &node.api_key("demo", "read"));
    let good = json!({ "url": GOOD_URL });
    let first = admin.expect("PUT", "/v1/webhook", good.clone(), 200);
    let secret = first["secret"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .unwrap();
    assert_eq!(raw.len(), 32);
    let shown = reader.get("/v1/webhook");
    assert_eq!(shown.status, 200);
    assert!(!shown.text().contains(secret), "{}", shown.text());
    assert_eq!(
        (shown.json()["url"].clone(), shown.json()["set"].clone()),
        (json!(GOOD_URL), json!(true))
    );
    // The database holds the secret sealed under the node's KEK.
    let stored = node.store().await.webhook("demo").await.unwrap().unwrap();
    assert!(stored.secret.starts_with("sealed:v1:"), "{}", stored.secret);
    assert!(!stored.secret.contains(secret));
    let second = admin.expect("PUT", "/v1/webhook", good, 200);
    assert_ne!(second["secret"], first["secret"]);

    // Another tenant sees none of it.
    let (code, _, stderr) = node.command(&["tenant", "create", "acme"]);
    assert_eq!(code, 0, "{stderr}");
    let other = Api::new(&node, &node.api_key("acme", "admin"));
    assert_eq!(
        other.expect("GET", "/v1/webhook", Value::Null, 200)["set"],
        false
    );
    other.expect("DELETE", "/v1/webhook", Value::Null, 404);

    admin.expect("DELETE", "/v1/webhook", Value::Null, 204);
    admin.expect("DELETE", "/v1/webhook", Value::Null, 404);
    assert_eq!(
        reader.expect("GET", "/v1/webhook", Value::Null, 200)["set"],
        false
    );

    let audit = admin.expect("GET", "/v1/audit", Value::Null, 200);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_kind"] == "webhook")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "updated", "deleted"]);
    assert!(!audit.to_string().contains(secret));
    node.stop().await;
}

/// An endpoint that chooses the progress events gets `call.ringing`, then
/// `call.answered`, then `call.ended` of a call sipp rings and answers,
/// each signed; an unknown event name is refused and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn ringing_and_answered_reach_an_endpoint_that_chose_them() {
    let sink = EchoSink::start(101);
    let mut sipp = Sipp::uas("uas_media_sink_wait_bye.xml")
        .key("sink_port", &sink.port().to_string())
        .timeout(Duration::from_secs(60))
        .spawn();
    let trunks = format!(
        "[[sip.trunks]]\nname = \"answer\"\naddress = \"{}\"\n\
         [[sip.routes]]\nname = \"demo\"\ntrunks = [\"answer\"]\n\
         [webhooks]\nretry_initial_secs = 1\nretry_max_secs = 2\n\
         allow_private_targets = true\n",
        sipp.sip_addr()
    );
    let node = RunningNode::start(RINGING_MEDIA, &trunks, &[]).await;
    let api = Api::new(&node, &node.api_key("demo", "admin"));
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let refused = api.expect(
        "PUT",
        "/v1/webhook",
        json!({ "url": url, "events": ["call.ringing", "call.started"] }),
        400,
    );
    assert_eq!(refused["field"], "events", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("call.answered"),
        "the error names the events there are: {refused}"
    );
    assert_eq!(
        api.expect("GET", "/v1/webhook", Value::Null, 200)["set"],
        false
    );
    let events = ["call.ringing", "call.answered", "call.ended"];
    let created = api.expect(
        "PUT",
        "/v1/webhook",
        json!({ "url": url, "events": events }),
        200,
    );
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    assert_eq!(created["events"], json!(events));
    assert_eq!(
        api.expect("GET", "/v1/webhook", Value::Null, 200)["events"],
        json!(events)
    );

    let receiver = Receiver::start(port).await;
    let call = timed_call(&node, "demo", None).await;
    let mut at = Vec::new();
    for event in events {
        let got = receiver
            .wait_for(event, &call.call_id, Duration::from_secs(10))
            .await;
        assert!(verify(&secret, &got.headers, &got.body), "{got:?}");
        let body = got.json();
        assert_eq!(
            (body["widget_id"].as_str(), body["number_id"].is_string()),
            (Some("demo"), true),
            "{body}"
        );
        if event != "call.ended" {
            at.push(body["at"].as_str().expect("a time").to_owned());
        }
    }
    assert!(at[0] <= at[1], "rang before it was answered: {at:?}");
    receiver.stop().await;
    sipp.expect_exit(Duration::from_secs(10), EXIT_ALL_CALLS_OK);
    drop(sink.stop());
    node.stop().await;
}
