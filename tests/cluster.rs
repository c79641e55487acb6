//! Nodes in a cluster: two or three nodes in-process on loopback, each with
//! its own ports, sharing one real Redis (`redis-server`, with a password)
//! and one PostgreSQL database, as an operator runs them behind one
//! signalling address; and a node run as its own process, to be killed.
//! Visitors' calls come from aiortc, or are placed through the widget's
//! contract alone where only the admission matters.

mod support;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::admin::Api;
use support::aiortc::AiortcCall;
use support::audio::{similarity, speech_pcm_8k, speech_wav_48k};
use support::node::{OFFER, RunningNode, http, metric, place_call_at, placed_call_at, request};
use support::ports::free_tcp_port;
use support::postgres::fresh_database;
use support::process::PeerProcess;
use support::redis::{self, Redis};

/// The demo route, the key ring every node of a cluster shares (API keys
/// are hashed under it, so a key made on one node works on all), and
/// webhooks allowed to the tests' receivers on loopback.
const ECHO_ROUTE_AND_KEYS: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n\
     [recording]\nkeys = [{ id = \"k1\", env = \"TEST_CLUSTER_KEK\" }]\ncurrent_key = \"k1\"\n\
     [webhooks]\nallow_private_targets = true\nretry_initial_secs = 1\nretry_max_secs = 2\n";
/// 32 bytes, base64: the test cluster's key-encryption key.
const CLUSTER_KEK: &str = "Y2x1c3Rlci10ZXN0LWtleS1lbmNyeXB0aW9uLWtleSE=";
const CLUSTER_SECRET: &str = "a-secret-every-node-of-the-test-shares";
const SPEECH: &str = "one two three four five, the cluster carries on";

/// Node `index`'s trunk media ports: 28000 up for the first ten, 14000 up
/// for the next ones (clear of the ports handed to peers).
fn media_ports(index: u16) -> RangeInclusive<u16> {
    let start = match index {
        0..10 => 28_000 + index * 200,
        _ => 14_000 + (index - 10) * 200,
    };
    start..=start + 199
}

/// Every `CALLGATE_*` setting of cluster node `index` on `redis` and
/// `database`, and the secrets they name. It renews every 200 ms and its
/// leases last 2 s, so Redis going and coming shows within a second.
fn cluster_env(index: u16, redis: &Redis, database: &str) -> Vec<(String, String)> {
    [
        ("CALLGATE_NODE_ID", format!("node-{index}")),
        ("CALLGATE_DATABASE_URL", database.to_owned()),
        ("CALLGATE_CLUSTER_REDIS_URL", redis.url()),
        (
            "CALLGATE_CLUSTER_REDIS_PASSWORD_ENV",
            "TEST_REDIS_PASSWORD".into(),
        ),
        ("TEST_REDIS_PASSWORD", redis::PASSWORD.into()),
        ("CALLGATE_CLUSTER_SECRET_ENV", "TEST_CLUSTER_SECRET".into()),
        ("TEST_CLUSTER_SECRET", CLUSTER_SECRET.into()),
        ("TEST_CLUSTER_KEK", CLUSTER_KEK.into()),
        ("CALLGATE_CLUSTER_HEARTBEAT_MS", "200".into()),
        ("CALLGATE_CLUSTER_LEASE_SECS", "2".into()),
        // Calls placed with no browser behind them live until hung up.
        ("CALLGATE_WEBRTC_DISCONNECT_TIMEOUT_SECS", "30".into()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A node of the cluster on `redis` and `database`, with `settings`
/// (`CALLGATE_*` overrides) on top.
async fn cluster_node(
    index: u16,
    redis: &Redis,
    database: &str,
    settings: &[(&str, &str)],
) -> RunningNode {
    let env = cluster_env(index, redis, database);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    env.extend_from_slice(settings);
    RunningNode::start(media_ports(index), ECHO_ROUTE_AND_KEYS, &env).await
}

/// A Redis, and nodes `first` and `first + 1` of a cluster on it (and on a
/// fresh database), both connected, with `settings` on both.
async fn two_nodes(first: u16, settings: &[(&str, &str)]) -> (Redis, RunningNode, RunningNode) {
    let redis = Redis::start();
    let database = fresh_database().await;
    let a = cluster_node(first, &redis, &database, settings).await;
    let b = cluster_node(first + 1, &redis, &database, settings).await;
    until_cluster(&a, "connected").await;
    until_cluster(&b, "connected").await;
    (redis, a, b)
}

/// POSTs a call request to the demo widget through `node`.
fn place(node: &RunningNode, offer: &str) -> (u16, Value) {
    place_call_at(node.addr, &node.base(), offer)
}

/// Whether `node` holds a placed call: its events URL names the node.
fn held_by(node: &RunningNode, placed: &Value) -> bool {
    let events = placed["events"].as_str().unwrap_or_default();
    events.starts_with(&format!("ws://{}/", node.addr))
}

/// Hangs up a placed call through `node`, as the widget does.
fn hang_up(node: &RunningNode, placed: &Value) {
    hang_up_from(node, &node.base(), placed);
}

/// [`hang_up`] from a page on `origin`.
fn hang_up_from(node: &RunningNode, origin: &str, placed: &Value) {
    let path = format!(
        "/v1/calls/{}?token={}",
        placed["call_id"].as_str().unwrap(),
        placed["token"].as_str().unwrap()
    );
    let (status, reply) = http(node.addr, "DELETE", &path, Some(origin), b"");
    assert_eq!(status, 204, "{reply}");
}

/// The visitor's call was answered, ended by the visitor, and what it
/// said came back from the echo trunk.
fn assert_echoed(outcome: &support::aiortc::AiortcOutcome) {
    assert_eq!(outcome.code, Some(0), "{}", outcome.report());
    let states = outcome.states();
    assert_eq!(states, ["answered", "ended"], "{}", outcome.report());
    let echoed = outcome.recorded.clone().expect("a recording");
    let score = similarity(&speech_pcm_8k(SPEECH), &echoed);
    assert!(score.score >= 0.8, "the echo came back: {score:?}");
}

/// Waits until `/readyz` says the node's cluster is `state`.
async fn until_cluster(node: &RunningNode, state: &str) {
    for _ in 0..100 {
        let ready = request(node.addr, "GET", "/readyz", &[], b"").json();
        if ready["cluster"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node's cluster never became {state}");
}

/// Waits until Redis holds `count` leases on the demo tenant's slots.
async fn until_tenant_leases(redis: &Redis, count: usize) {
    let mut held = String::new();
    for _ in 0..100 {
        held = redis.cli(&["ZCARD", "callgate:slots:tenant:demo"]);
        if held == count.to_string() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Redis holds {held} leases on the tenant's slots, not {count}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_concurrency_limit_holds_across_nodes_and_frees_when_a_call_ends() {
    let limit = [("CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT", "2")];
    let (redis, a, b) = two_nodes(0, &limit).await;

    let (status, first) = place(&a, OFFER);
    assert_eq!(status, 201, "{first}");
    let (status, second) = place(&b, OFFER);
    assert_eq!(status, 201, "{second}");
    // Each node holds one call, under its own count of 2: only the
    // cluster's count refuses the third, on either node.
    for node in [&a, &b] {
        let (status, refused) = place(node, OFFER);
        assert_eq!(status, 429, "{refused}");
        assert_eq!(
            refused["error"],
            "too many calls in progress, try again later"
        );
    }
    assert_eq!(metric(a.addr, "callgate_calls_active"), 1.0);
    assert_eq!(metric(b.addr, "callgate_calls_active"), 1.0);
    until_tenant_leases(&redis, 2).await;

    // The call on A ends: its slot frees at once, for a call through B
    // (which B may hand to A, once it sees A has no call).
    hang_up(&a, &first);
    until_tenant_leases(&redis, 1).await;
    let (status, third) = place(&b, OFFER);
    assert_eq!(status, 201, "{third}");
    assert_eq!(place(&a, OFFER).0, 429, "two calls in progress again");

    hang_up(&b, &second);
    hang_up(if held_by(&a, &third) { &a } else { &b }, &third);
    until_tenant_leases(&redis, 0).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_call_rate_holds_across_nodes_and_keys_no_address() {
    let rate = [("CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP", "3")];
    let (redis, a, b) = two_nodes(2, &rate).await;

    // Bad offers pass the rate check, then fail (400): each spends a token.
    let statuses: Vec<u16> = [&a, &b, &a, &b, &a]
        .into_iter()
        .map(|node| place(node, "v=0").0)
        .collect();
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    let refused = metric(
        b.addr,
        "callgate_http_requests_refused_total{reason=\"rate_limited\"}",
    );
    assert_eq!(refused, 1.0);

    // The client's key in Redis names no address.
    let keys = redis.cli(&["--scan", "--pattern", "callgate:rate:*"]);
    assert!(keys.contains("callgate:rate:client:"), "{keys}");
    assert!(keys.contains("callgate:rate:widget:demo"), "{keys}");
    assert!(!keys.contains("127.0.0.1"), "{keys}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_lists_each_node_its_state_and_a_node_that_stops_leaves_it() {
    let redis = Redis::start();
    let database = fresh_database().await;
    let a = cluster_node(
        4,
        &redis,
        &database,
        &[("CALLGATE_CLUSTER_REGION", "eu-west")],
    )
    .await;
    let b = cluster_node(
        5,
        &redis,
        &database,
        &[("CALLGATE_CLUSTER_REGION", "eu-west")],
    )
    .await;
    until_cluster(&a, "connected").await;
    let (code, key, stderr) = a.command(&["apikey", "create", "--role", "operator"]);
    assert_eq!(code, 0, "{stderr}");
    let operator_a = Api::new(&a, key.trim());
    let operator_b = Api::new(&b, key.trim());
    let tenant = Api::new(&a, &a.api_key("demo", "admin"));
    tenant.expect("GET", "/v1/cluster/nodes", Value::Null, 403);

    let (status, placed) = place(&b, OFFER);
    assert_eq!(status, 201, "{placed}");
    let nodes = until_nodes(&operator_a, |nodes| {
        nodes.len() == 2 && nodes[1]["calls"] == 1
    })
    .await;
    assert_eq!(nodes[0]["id"], "node-4");
    assert_eq!(nodes[0]["region"], "eu-west");
    assert_eq!(nodes[0]["public_url"], a.base());
    assert_eq!(nodes[0]["state"], "serving");
    assert!(nodes[0]["cpu_percent"].is_u64(), "{nodes:?}");
    assert_eq!(nodes[1]["id"], "node-5");
    assert_eq!(nodes[1]["public_url"], b.base());
    assert_eq!(metric(a.addr, "callgate_cluster_nodes"), 2.0);
    assert_eq!(metric(a.addr, "callgate_cluster_redis_up"), 1.0);
    let status = operator_b.expect("GET", "/v1/node", Value::Null, 200);
    assert_eq!(status["cluster"], json!({"redis_up": true, "leases": 1}));

    // A drain shows at once, not at the next heartbeat only.
    operator_b.expect("POST", "/v1/node/drain", Value::Null, 200);
    until_nodes(&operator_a, |nodes| nodes[1]["state"] == "draining").await;

    // A node that stops cleanly leaves the registry and its leases.
    hang_up(&b, &placed);
    b.stop().await;
    let nodes = until_nodes(&operator_a, |nodes| nodes.len() == 1).await;
    assert_eq!(nodes[0]["id"], "node-4");
    assert_eq!(
        redis.cli(&["ZRANGE", "callgate:nodes", "0", "-1"]),
        "node-4"
    );
    until_tenant_leases(&redis, 0).await;
    a.stop().await;
    assert_eq!(redis.cli(&["ZCARD", "callgate:nodes"]), "0");
}

/// Waits until the registry, read through `operator`'s node, satisfies
/// `condition`; returns its nodes.
async fn until_nodes(operator: &Api<'_>, condition: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut nodes = Vec::new();
    for _ in 0..100 {
        let listed = operator.expect("GET", "/v1/cluster/nodes", Value::Null, 200);
        nodes = listed["nodes"].as_array().cloned().unwrap_or_default();
        if condition(&nodes) {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the registry never showed what was expected: {nodes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_gone_calls_go_on_and_new_ones_are_admitted_locally_then_the_cluster_heals() {
    let limit = [("CALLGATE_LIMITS_MAX_CONCURRENT_CALLS_PER_TENANT", "1")];
    let (mut redis, a, b) = two_nodes(6, &limit).await;

    // A visitor talks through A while Redis dies.
    let play = speech_wav_48k(SPEECH);
    let received = a.data.path().join("received.wav");
    let call = AiortcCall::new(&a.base(), "demo", &a.base(), &play)
        .codec("pcmu")
        .seconds(6.0)
        .record(&received)
        .spawn();
    call.until_answered(Duration::from_secs(20));
    assert_eq!(place(&b, OFFER).0, 429, "the tenant's one slot is taken");
    redis.kill();
    until_cluster(&a, "degraded").await;
    until_cluster(&b, "degraded").await;
    assert_eq!(metric(a.addr, "callgate_cluster_redis_up"), 0.0);
    let ready = request(b.addr, "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 200, "a degraded node still takes calls");

    // New calls are admitted on each node's own limits.
    let (status, on_b) = place(&b, OFFER);
    assert_eq!(status, 201, "{on_b}");
    assert_eq!(place(&b, OFFER).0, 429, "B's own limit");

    // The call through A never noticed.
    let outcome = call.wait_async().await;
    assert_echoed(&outcome);
    let cdr = a.cdr_of_widget("demo").await;
    assert_eq!(cdr.disposition.as_str(), "answered");
    assert_eq!(cdr.ended_by, callgate::domain::EndedBy::Visitor);
    let (status, on_a) = place(&a, OFFER);
    assert_eq!(status, 201, "A's own slot is free again: {on_a}");

    // Redis comes back empty: both nodes heal by themselves, write back
    // the leases of the calls they admitted meanwhile, and the tenant's
    // limit of 1 holds cluster-wide again.
    redis.restart();
    until_cluster(&a, "connected").await;
    until_cluster(&b, "connected").await;
    until_tenant_leases(&redis, 2).await;
    assert_eq!(metric(b.addr, "callgate_cluster_redis_up"), 1.0);
    assert_eq!(redis.cli(&["ZCARD", "callgate:nodes"]), "2");
    hang_up(&a, &on_a);
    until_tenant_leases(&redis, 1).await;
    assert_eq!(place(&a, OFFER).0, 429, "B's call holds the tenant's slot");
    hang_up(&b, &on_b);
    until_tenant_leases(&redis, 0).await;
    let (status, after) = place(&a, OFFER);
    assert_eq!(status, 201, "{after}");
    hang_up(&a, &after);
    a.stop().await;
    b.stop().await;
}

/// A customer's site that embeds the demo widget.
const SITE: &str = "https://shop.example";

#[tokio::test(flavor = "multi_thread")]
async fn a_call_goes_to_the_less_loaded_node_and_is_heard_there() {
    let (_redis, a, b) = two_nodes(8, &[]).await;
    a.set_allowed_origins("demo", &[SITE]).await;
    let place_from_site = |node: &RunningNode| place_call_at(node.addr, SITE, OFFER);
    // Both idle: the first call stays where it arrived.
    let (status, first) = place_from_site(&a);
    assert_eq!(status, 201, "{first}");
    assert!(held_by(&a, &first), "{first}");

    // A holds a call, B none: a visitor's call through A goes to B, and its
    // echo comes back from there.
    let play = speech_wav_48k(SPEECH);
    let received = a.data.path().join("received-via-b.wav");
    let outcome = AiortcCall::new(&a.base(), "demo", SITE, &play)
        .codec("pcmu")
        .seconds(5.0)
        .record(&received)
        .spawn()
        .wait_async()
        .await;
    assert_echoed(&outcome);
    let handed = "callgate_cluster_handoffs_total{outcome=\"handed_over\"}";
    assert_eq!(metric(a.addr, handed), 1.0);
    assert_eq!(metric(b.addr, "callgate_calls_started_total"), 1.0);
    assert_eq!(metric(a.addr, "callgate_calls_started_total"), 1.0);
    let cdr = b.cdr_of_widget("demo").await;
    assert_eq!(cdr.node_id, "node-9", "the owner wrote the CDR");
    assert_eq!(cdr.disposition.as_str(), "answered");
    assert_eq!(cdr.visitor_network.as_deref(), Some("127.0.0.0/24"));

    // A handoff not signed by the cluster is refused, and places nothing.
    let body = json!({ "offer": OFFER }).to_string();
    let forged = request(
        b.addr,
        "POST",
        "/v1/internal/widgets/demo/calls",
        &[
            ("origin", SITE),
            ("x-callgate-cluster-time", "0"),
            ("x-callgate-cluster-auth", "00"),
            ("x-callgate-client", "192.0.2.1"),
        ],
        body.as_bytes(),
    );
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(metric(b.addr, "callgate_calls_started_total"), 1.0);
    hang_up_from(&a, SITE, &first);
    a.stop().await;
    b.stop().await;
}

/// Waits until `node` counts `count` fresh nodes in the registry.
async fn until_node_count(node: &RunningNode, count: usize) {
    for _ in 0..100 {
        if metric(node.addr, "callgate_cluster_nodes") == count as f64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never saw {count} nodes");
}

/// A call's events socket, as a test opens it.
type EventsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The events socket at `events` (a placed call's URL), from `origin`.
async fn open_events(events: &str, origin: &str) -> EventsSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = events.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the events socket opens");
    socket
}

/// The events socket of `placed`, opened at `node` from a page on `origin`.
async fn events_at(node: &RunningNode, origin: &str, placed: &Value) -> EventsSocket {
    let url = format!(
        "ws://{}/v1/calls/{}/events?token={}",
        node.addr,
        placed["call_id"].as_str().unwrap(),
        placed["token"].as_str().unwrap()
    );
    open_events(&url, origin).await
}

/// The next state the events socket tells, within 10 s.
async fn next_state(socket: &mut EventsSocket) -> String {
    use futures_util::StreamExt as _;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a state within 10 s")
            .expect("the socket stays open")
            .expect("a message");
        let Ok(text) = message.to_text() else {
            continue;
        };
        let event: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if event["type"] == "state" {
            return event["state"].as_str().unwrap_or_default().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_the_calls_and_any_node_reaches_a_call_for_its_hang_up_and_events() {
    use futures_util::SinkExt as _;
    let redis = Redis::start();
    let database = fresh_database().await;
    let mut nodes = Vec::new();
    for index in 10..13 {
        nodes.push(cluster_node(index, &redis, &database, &[]).await);
    }
    for node in &nodes {
        until_cluster(node, "connected").await;
        until_node_count(node, 3).await;
    }
    // Nine calls through the first node spread over all three.
    let origin = nodes[0].base();
    let placed: Vec<Value> = (0..9)
        .map(|_| {
            let (status, placed) = place(&nodes[0], OFFER);
            assert_eq!(status, 201, "{placed}");
            placed
        })
        .collect();
    let owners: Vec<usize> = placed
        .iter()
        .map(|call| nodes.iter().position(|n| held_by(n, call)).expect("a node"))
        .collect();
    for index in 0..3 {
        assert!(
            owners.contains(&index),
            "no call on node {index}: {owners:?}"
        );
    }
    until_tenant_leases(&redis, 9).await;

    // An events socket opened at a node that does not hold the call
    // follows it there, and hangs it up.
    let (first, owner) = (&placed[0], owners[0]);
    let elsewhere = &nodes[(owner + 1) % 3];
    let mut socket = events_at(elsewhere, &origin, first).await;
    let state = next_state(&mut socket).await;
    assert!(["ringing", "answered"].contains(&state.as_str()), "{state}");
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"type":"hangup"}"#,
        ))
        .await
        .unwrap();
    let mut last = state;
    while last != "ended" {
        last = next_state(&mut socket).await;
    }

    // A wrong token or a foreign page is refused by the call's node, as if
    // asked there; an unknown call is unknown everywhere.
    let (second, owner) = (&placed[1], owners[1]);
    let elsewhere = &nodes[(owner + 1) % 3];
    let call_id = second["call_id"].as_str().unwrap();
    let wrong_token = format!("/v1/calls/{call_id}?token=not-the-token");
    let (status, _) = http(elsewhere.addr, "DELETE", &wrong_token, Some(&origin), b"");
    assert_eq!(status, 404);
    let token = second["token"].as_str().unwrap();
    let path = format!("/v1/calls/{call_id}?token={token}");
    let (status, _) = http(
        elsewhere.addr,
        "DELETE",
        &path,
        Some("https://evil.example"),
        b"",
    );
    assert_eq!(status, 403);
    let unknown = format!("/v1/calls/{}?token={token}", uuid_like());
    assert_eq!(
        http(elsewhere.addr, "DELETE", &unknown, Some(&origin), b"").0,
        404
    );
    // The hang-up's preflight comes back with the owner's CORS answer.
    let preflight = request(
        elsewhere.addr,
        "OPTIONS",
        &path,
        &[
            ("origin", &origin),
            ("access-control-request-method", "DELETE"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin.as_str())
    );

    // Every other call hung up through a node that does not hold it.
    for (call, owner) in placed.iter().zip(&owners).skip(1) {
        hang_up_from(&nodes[(owner + 1) % 3], &origin, call);
    }
    until_tenant_leases(&redis, 0).await;
    for node in &nodes {
        assert_eq!(metric(node.addr, "callgate_calls_active"), 0.0);
    }
    let cdrs = nodes[0].wait_for_cdrs(9).await;
    assert!(
        cdrs.iter()
            .all(|cdr| cdr.ended_by == callgate::domain::EndedBy::Visitor),
        "{cdrs:#?}"
    );
    assert!(cdrs.iter().all(|cdr| cdr.end_reason.is_none()));

    // The admin API and the dashboard answer the same through any node.
    let key = nodes[2].api_key("demo", "read");
    for node in &nodes {
        let listed = Api::new(node, &key).expect("GET", "/v1/cdrs", Value::Null, 200);
        assert_eq!(listed.as_array().map(Vec::len), Some(9), "{listed}");
        assert_eq!(
            request(node.addr, "GET", "/dashboard", &[], b"").status,
            200
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

/// A call id no node knows.
fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

/// A webhook receiver on loopback: the `call.ended` events it got, by call.
struct Receiver {
    ended: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Receiver {
    async fn start() -> Self {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let log = ended.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let event = headers.get("callgate-event").and_then(|v| v.to_str().ok());
                    if event == Some("call.ended") {
                        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        let call = body["call_id"].as_str().unwrap_or_default().to_owned();
                        log.lock().unwrap().push(call);
                    }
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        );
        let port = free_tcp_port();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind the receiver");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { ended, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// How many `call.ended` of `call_id` arrived.
    fn ended_of(&self, call_id: &str) -> usize {
        let ended = self.ended.lock().unwrap();
        ended.iter().filter(|call| *call == call_id).count()
    }
}

/// Cluster node `index` as a `callgate serve` process of its own, ready and
/// in the cluster; its HTTP address.
fn node_process(
    index: u16,
    redis: &Redis,
    database: &str,
    dir: &std::path::Path,
) -> (PeerProcess, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let http = format!("listen = \"{addr}\"");
    let config = support::node::node_config(dir, &http, media_ports(index), ECHO_ROUTE_AND_KEYS);
    let file = dir.join("callgate.toml");
    std::fs::write(&file, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_callgate"));
    command
        .args(["serve", "--config"])
        .arg(&file)
        .envs(cluster_env(index, redis, database));
    let process = PeerProcess::spawn_node("callgate", command, dir);
    let ready = support::wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(addr).is_ok()
            && request(addr, "GET", "/readyz", &[], b"").json()["cluster"] == "connected"
    });
    assert!(
        ready,
        "the node never joined the cluster\n{}",
        process.output_tail(30)
    );
    (process, addr)
}

/// A Redis, cluster node `index` in-process, and node `index + 1` as a
/// process of its own (its files in `dir`), both in the cluster.
async fn node_and_process(
    index: u16,
    dir: &std::path::Path,
) -> (Redis, RunningNode, PeerProcess, SocketAddr) {
    let redis = Redis::start();
    let database = fresh_database().await;
    let node = cluster_node(index, &redis, &database, &[]).await;
    let (process, addr) = node_process(index + 1, &redis, &database, dir);
    until_node_count(&node, 2).await;
    (redis, node, process, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_nodes_call_is_finalised_once_by_a_survivor_with_its_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, survivor, mut doomed, doomed_addr) = node_and_process(13, dir.path()).await;
    let admin = Api::new(&survivor, &survivor.api_key("demo", "admin"));
    let receiver = Receiver::start().await;
    admin.expect("PUT", "/v1/webhook", json!({ "url": receiver.url() }), 200);

    // A call placed through the doomed node stays there (both are idle)
    // and is answered by the echo trunk.
    let origin = format!("http://{doomed_addr}");
    let placed = placed_call_at(doomed_addr, &origin, OFFER);
    let call_id = placed["call_id"].as_str().unwrap().to_owned();
    assert!(
        placed["events"]
            .as_str()
            .unwrap()
            .contains(&doomed_addr.to_string())
    );
    let events = placed["events"].as_str().unwrap().to_owned();
    let mut socket = open_events(&events, &origin).await;
    while next_state(&mut socket).await != "answered" {}
    until_tenant_leases(&redis, 1).await;
    // Talk time counts up to the node's last heartbeat: let some pass.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // kill -9: no clean leave, no CDR from the node itself.
    doomed.signal("KILL");
    let killed = Instant::now();
    assert!(doomed.wait_for_exit(Duration::from_secs(5)).is_some());
    let cdr = survivor
        .wait_for_cdr_of(&call_id, Duration::from_secs(15))
        .await;
    eprintln!(
        "kill -9 to the lost call's CDR: {} ms",
        killed.elapsed().as_millis()
    );
    assert_eq!(cdr.disposition.as_str(), "failed");
    assert_eq!(cdr.ended_by, callgate::domain::EndedBy::Node);
    assert_eq!(cdr.end_reason.as_deref(), Some("node_lost"));
    assert_eq!(cdr.node_id, "node-14", "the node that carried it");
    assert!(cdr.answered_at_ms.is_some(), "{cdr:?}");
    assert!(cdr.duration_ms > 0, "{cdr:?}");
    assert_eq!(cdr.visitor_network.as_deref(), Some("127.0.0.0/24"));
    let view = admin.expect("GET", "/v1/cdrs", Value::Null, 200);
    assert_eq!(view[0]["end_reason"], "node_lost", "{view}");
    let finalised = metric(survivor.addr, "callgate_cluster_lost_calls_total");
    assert_eq!(finalised, 1.0);

    // Its webhook arrives, once; its slot expired with the node's lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.ended_of(&call_id) == 0 {
        assert!(Instant::now() < deadline, "no call.ended for the lost call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_tenant_leases(&redis, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.ended_of(&call_id), 1);
    assert_eq!(survivor.wait_for_cdrs(1).await.len(), 1);
    assert_eq!(
        redis.cli(&["ZRANGE", "callgate:nodes", "0", "-1"]),
        "node-13"
    );
    assert_eq!(redis.cli(&["EXISTS", "callgate:calls:node-14"]), "0");
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_node_hands_new_calls_over_keeps_its_call_to_its_end_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, staying, mut leaving, leaving_addr) = node_and_process(15, dir.path()).await;

    // A call on the node about to leave (both idle: it stays there), from
    // a customer's site both nodes serve the widget to.
    staying.set_allowed_origins("demo", &[SITE]).await;
    let origin = SITE;
    let post = |addr: SocketAddr| placed_call_at(addr, origin, OFFER);
    let kept = post(leaving_addr);
    let events = kept["events"].as_str().unwrap().to_owned();
    assert!(events.contains(&leaving_addr.to_string()), "{kept}");
    let mut socket = open_events(&events, origin).await;
    while next_state(&mut socket).await != "answered" {}

    // SIGTERM: the node drains. It is unready, and every new call, through
    // either node, goes to the one staying.
    leaving.signal("TERM");
    let draining = support::wait_until(Duration::from_secs(10), || {
        request(leaving_addr, "GET", "/readyz", &[], b"").status == 503
    });
    assert!(draining, "{}", leaving.output_tail(20));
    until_cluster_state(&staying, "node-16", "draining").await;
    let new_calls = [post(staying.addr), post(leaving_addr)];
    for call in &new_calls {
        assert!(held_by(&staying, call), "{call}");
    }

    // Its own call goes on until the visitor hangs up (through the other
    // node); then it exits, and exits 0.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(leaving.is_running());
    assert_eq!(metric(leaving_addr, "callgate_calls_active"), 1.0);
    let path = format!(
        "/v1/calls/{}?token={}",
        kept["call_id"].as_str().unwrap(),
        kept["token"].as_str().unwrap()
    );
    let (status, reply) = http(staying.addr, "DELETE", &path, Some(origin), b"");
    assert_eq!(status, 204, "{reply}");
    while next_state(&mut socket).await != "ended" {}
    let exit = leaving.wait_for_exit(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|status| status.success()),
        "{exit:?}\n{}",
        leaving.output_tail(20)
    );
    let call_id = kept["call_id"].as_str().unwrap();
    let cdr = staying
        .wait_for_cdr_of(call_id, Duration::from_secs(5))
        .await;
    assert_eq!(cdr.ended_by, callgate::domain::EndedBy::Visitor);
    assert_eq!(cdr.end_reason, None);
    assert_eq!(
        redis.cli(&["ZRANGE", "callgate:nodes", "0", "-1"]),
        "node-15"
    );
    assert_eq!(redis.cli(&["EXISTS", "callgate:calls:node-16"]), "0");
    for call in &new_calls {
        hang_up_from(&staying, origin, call);
    }
    staying.stop().await;
}

/// Waits until `node`'s registry shows node `id` in `state`.
async fn until_cluster_state(node: &RunningNode, id: &str, state: &str) {
    let operator = node.command(&["apikey", "create", "--role", "operator"]);
    assert_eq!(operator.0, 0, "{}", operator.2);
    let operator = Api::new(node, operator.1.trim());
    until_nodes(&operator, |nodes| {
        nodes.iter().any(|n| n["id"] == id && n["state"] == state)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_nodes_trust_only_the_redis_their_ca_signed() {
    let redis = Redis::start_tls();
    let database = fresh_database().await;
    let ca = redis.ca_file().unwrap();
    let ca = ca.to_str().unwrap();
    let trusting = [("CALLGATE_CLUSTER_REDIS_CA_FILE", ca)];
    let a = cluster_node(17, &redis, &database, &trusting).await;
    let b = cluster_node(18, &redis, &database, &trusting).await;
    until_cluster(&a, "connected").await;
    until_cluster(&b, "connected").await;
    until_node_count(&a, 2).await;
    let (status, first) = place(&a, OFFER);
    assert_eq!(status, 201, "{first}");
    until_tenant_leases(&redis, 1).await;

    // Without the CA, the system's roots do not vouch for this server: the
    // node never joins, and takes calls on its own limits all the same.
    let doubting = cluster_node(19, &redis, &database, &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    until_cluster(&doubting, "degraded").await;
    let (status, alone) = place(&doubting, OFFER);
    assert_eq!(status, 201, "{alone}");
    assert_eq!(redis.cli(&["ZCARD", "callgate:nodes"]), "2");
    hang_up(&doubting, &alone);
    hang_up(if held_by(&a, &first) { &a } else { &b }, &first);
    until_tenant_leases(&redis, 0).await;
    for node in [a, b, doubting] {
        node.stop().await;
    }
}
