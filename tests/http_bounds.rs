//! The node's HTTP surface under abuse, on a whole node in-process with
//! the echo trunk: slow clients (slowloris) and a flood of junk requests
//! from other addresses while a visitor's call ends and leaves its CDR;
//! bodies and WebSocket frames over the caps refused before they are
//! read; a call followed by at most two events sockets; and the CDR a call
//! leaves, kept through a database that refuses connections and a node
//! restart until the database takes it.
//!
//! Loopback has a whole /8: the attackers bind 127.0.0.2 and 127.0.0.3, the
//! visitor stays on 127.0.0.1, so the per-address caps tell them apart.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use support::node::{OFFER, RunningNode, http, metric, placed_call_at};

const ECHO_ROUTE: &str = "[[sip.routes]]\nname = \"demo\"\ntrunks = [\"echo\"]\n";

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const PER_IP: usize = 16;
const LOOKUPS_PER_MINUTE: usize = 60;

async fn bounded_node(media: std::ops::RangeInclusive<u16>) -> RunningNode {
    let header = HEADER_TIMEOUT.as_secs().to_string();
    let per_ip = PER_IP.to_string();
    let lookups = LOOKUPS_PER_MINUTE.to_string();
    let env = [
        ("CALLGATE_HTTP_HEADER_READ_TIMEOUT_SECS", header.as_str()),
        ("CALLGATE_HTTP_MAX_CONNECTIONS_PER_IP", per_ip.as_str()),
        (
            "CALLGATE_LIMITS_LOOKUPS_PER_MINUTE_PER_IP",
            lookups.as_str(),
        ),
    ];
    RunningNode::start(media, ECHO_ROUTE, &env).await
}

/// A TCP connection to `addr` from `source` (any port).
fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// Places a call from the node's own origin; its id and token.
fn place_call(node: &RunningNode) -> (String, String) {
    let placed = placed_call_at(node.addr, &node.base(), OFFER);
    let id = placed["call_id"].as_str().unwrap().to_owned();
    let token = placed["token"].as_str().unwrap().to_owned();
    (id, token)
}

/// How a slow client's connection went.
#[derive(Debug, PartialEq, Eq)]
enum Slow {
    /// Closed by the node before a byte of its head was taken.
    RefusedAtOnce,
    /// Closed by the node while it still trickled its head, after this long.
    ClosedAfter(Duration),
    /// Still open when the client gave up.
    Open,
}

/// A slowloris client: a request head trickled a header line every 300
/// ms, never finished, for up to `limit`.
fn trickle(source: Ipv4Addr, addr: SocketAddr, limit: Duration) -> Slow {
    let start = Instant::now();
    let mut stream = connect_from(source, addr);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: node\r\n".to_vec();
    let mut buf = [0u8; 512];
    let mut sent_any = false;
    while start.elapsed() < limit {
        if stream.write_all(&head).is_err() {
            break;
        }
        head = b"X-Slow: still typing\r\n".to_vec();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if !would_block(&stream) => break,
            _ => {}
        }
        sent_any = true;
    }
    let took = start.elapsed();
    match (took < limit, sent_any) {
        (true, false) => Slow::RefusedAtOnce,
        (true, true) => Slow::ClosedAfter(took),
        (false, _) => Slow::Open,
    }
}

/// Whether the connection is still open (a read would only wait).
fn would_block(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// One plain request from `source`: its status and `Retry-After`.
fn junk_request(source: Ipv4Addr, addr: SocketAddr, head: &str) -> (u16, Option<String>) {
    let mut stream = connect_from(source, addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry_after = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map(str::to_owned);
    (status, retry_after)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_and_junk_floods_do_not_keep_a_call_from_ending_with_its_cdr() {
    let node = bounded_node(27000..=27099).await;
    let addr = node.addr;
    let (call_id, token) = place_call(&node);

    // Slowloris from 127.0.0.2: more connections than its share, each
    // trickling a head that never ends.
    let slow = Ipv4Addr::new(127, 0, 0, 2);
    let slow_clients: Vec<_> = (0..PER_IP * 2)
        .map(|_| thread::spawn(move || trickle(slow, addr, Duration::from_secs(8))))
        .collect();
    // A flood from 127.0.0.3: made-up widgets and wrong API keys.
    let junk = Ipv4Addr::new(127, 0, 0, 3);
    let flood = thread::spawn(move || {
        (0..LOOKUPS_PER_MINUTE * 3)
            .map(|i| {
                let head = match i % 2 {
                    0 => format!("GET /v1/widgets/made-up-{i}/config HTTP/1.0\r\n\r\n"),
                    _ => "GET /v1/numbers HTTP/1.0\r\nAuthorization: Bearer cg_nokey_wrongsecret\r\n\r\n"
                        .to_owned(),
                };
                junk_request(junk, addr, &head)
            })
            .collect::<Vec<_>>()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The visitor, meanwhile: the node answers at once and the call ends.
    let asked = Instant::now();
    let health = tokio::task::spawn_blocking(move || http(addr, "GET", "/healthz", None, b""));
    assert_eq!(health.await.unwrap().0, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "healthz took {:?} under attack",
        asked.elapsed()
    );
    let path = format!("/v1/calls/{call_id}?token={token}");
    let origin = node.base();
    let (status, reply) = http(addr, "DELETE", &path, Some(&origin), b"");
    assert_eq!(status, 204, "{reply}");
    let cdrs = node.wait_for_cdrs(1).await;
    assert_eq!(
        (cdrs[0].call_id.as_str(), cdrs[0].ended_by.as_str()),
        (call_id.as_str(), "visitor")
    );

    let outcomes: Vec<Slow> = slow_clients
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let refused = outcomes
        .iter()
        .filter(|o| **o == Slow::RefusedAtOnce)
        .count();
    assert!(
        refused >= PER_IP,
        "connections over the address's share closed at once: {outcomes:?}"
    );
    for outcome in &outcomes {
        if let Slow::ClosedAfter(took) = outcome {
            assert!(
                *took <= HEADER_TIMEOUT + Duration::from_secs(1),
                "a trickled head held its connection {took:?}: {outcomes:?}"
            );
        }
    }
    assert!(!outcomes.contains(&Slow::Open), "{outcomes:?}");
    let statuses = flood.join().unwrap();
    let served = statuses
        .iter()
        .filter(|(s, _)| *s == 404 || *s == 401)
        .count();
    assert!(
        (LOOKUPS_PER_MINUTE - 5..=LOOKUPS_PER_MINUTE + 10).contains(&served),
        "{served} lookups served for a budget of {LOOKUPS_PER_MINUTE}: {statuses:?}"
    );
    let limited = statuses.iter().filter(|(s, _)| *s != 404 && *s != 401);
    assert!(
        limited
            .clone()
            .all(|(s, retry)| *s == 429 && retry.is_some()),
        "past the budget, 429 with Retry-After: {statuses:?}"
    );
    assert!(limited.count() >= LOOKUPS_PER_MINUTE, "{statuses:?}");
    let timed_out = metric(addr, "callgate_http_connections_timed_out_total");
    assert!(
        timed_out >= 1.0,
        "timed-out connections counted: {timed_out}"
    );
    let refused_metric = metric(
        addr,
        "callgate_http_connections_refused_total{reason=\"address_full\"}",
    );
    assert!(refused_metric >= PER_IP as f64, "{refused_metric}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_and_frames_over_the_caps_are_refused_before_they_are_read() {
    let node = bounded_node(27100..=27199).await;
    let addr = node.addr;
    let origin = node.base();

    // A declared 10 MiB body: refused on its head, nothing of it sent.
    let (_, answer) = post_head(addr, &origin, "Content-Length: 10485760", |_| {});
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 65536 bytes"), "{answer}");

    // An undeclared one (chunked): refused at the cap, not read whole.
    let (_, answer) = post_head(addr, &origin, "Transfer-Encoding: chunked", |stream| {
        let chunk = vec![b' '; 16 * 1024];
        for _ in 0..64 {
            let size = format!("{:x}\r\n", chunk.len());
            let framed = [size.as_bytes(), &chunk, b"\r\n"].concat();
            if stream.write_all(&framed).is_err() {
                break;
            }
        }
    });
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(metric(addr, "callgate_calls_started_total"), 0.0);

    // Events sockets: two follow a call, a third is refused.
    let (call_id, token) = place_call(&node);
    let path = format!("/v1/calls/{call_id}/events?token={token}");
    let mut first = websocket(addr, &path, &origin).expect("first events socket");
    let _second = websocket(addr, &path, &origin).expect("second events socket");
    let third = websocket(addr, &path, &origin).err();
    assert_eq!(third.as_deref().map(|h| &h[..12]), Some("HTTP/1.1 429"));

    // A frame that claims 16 MiB: the socket is closed on its header.
    let mut frame = vec![0x81, 0xFF];
    frame.extend_from_slice(&(16u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    first.write_all(&frame).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sent = Instant::now();
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "the socket stayed open {:?} after an oversized frame",
        sent.elapsed()
    );
    let hangup = format!("/v1/calls/{call_id}?token={token}");
    assert_eq!(http(addr, "DELETE", &hangup, Some(&origin), b"").0, 204);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cdr_waits_out_a_database_that_refuses_it_and_a_restart() {
    let url = support::postgres::fresh_database().await;
    let env = [("CALLGATE_DATABASE_URL", url.as_str())];
    let node = RunningNode::start(27200..=27299, ECHO_ROUTE, &env).await;
    let (call_id, token) = place_call(&node);

    support::postgres::refuse_connections(&url, true).await;
    let path = format!("/v1/calls/{call_id}?token={token}");
    let origin = node.base();
    assert_eq!(http(node.addr, "DELETE", &path, Some(&origin), b"").0, 204);
    let spooled = node
        .data
        .path()
        .join("cdr-spool")
        .join(format!("{call_id}.json"));
    let waited = Instant::now();
    while !(spooled.exists() && metric(node.addr, "callgate_cdrs_waiting") == 1.0) {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the CDR never waited in the spool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The node stops while the database still refuses: the CDR stays.
    let data = node.stop_keeping_data().await;
    assert!(spooled.exists(), "the spool keeps the CDR across a stop");

    support::postgres::refuse_connections(&url, false).await;
    let node = RunningNode::start_in(data, 27200..=27299, ECHO_ROUTE, &env).await;
    let written = Instant::now();
    let cdr = node
        .wait_for_cdr_of(&call_id, Duration::from_secs(20))
        .await;
    assert_eq!(cdr.ended_by.as_str(), "visitor");
    let store = node.store().await;
    assert_eq!(store.cdrs_for_tenant("demo", 10).await.unwrap().len(), 1);
    while spooled.exists() || metric(node.addr, "callgate_cdrs_waiting") != 0.0 {
        assert!(
            written.elapsed() < Duration::from_secs(20),
            "the spool kept it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.stop().await;
}

/// POSTs a call request whose head carries `framing` (how its body is
/// delimited), sends what `body` writes, and reads the first answer.
fn post_head(
    addr: SocketAddr,
    origin: &str,
    framing: &str,
    body: impl FnOnce(&mut TcpStream),
) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /v1/widgets/demo/calls HTTP/1.1\r\nHost: node\r\nOrigin: {origin}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    body(&mut stream);
    let mut answer = [0u8; 512];
    let read = stream.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    (stream, answer)
}

/// Opens an events WebSocket at `path`: the stream after its 101, or the
/// head of the answer that refused it.
fn websocket(addr: SocketAddr, path: &str, origin: &str) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: node\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    match answer.starts_with("HTTP/1.1 101") {
        true => Ok(stream),
        false => Err(answer),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_on_a_listener_of_their_own_leave_the_public_one() {
    let port = support::ports::free_tcp_port();
    let settings = format!("metrics_listen = \"127.0.0.1:{port}\"");
    let node = RunningNode::start_with_http(27500..=27519, &settings, ECHO_ROUTE, &[]).await;
    let (status, _) = http(node.addr, "GET", "/metrics", None, b"");
    assert_eq!(status, 404, "/metrics is not on the public listener");
    let scrapes = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, body) = http(scrapes, "GET", "/metrics", None, b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\ncallgate_calls_active 0\n"), "{body}");
    let (status, _) = http(scrapes, "GET", "/v1/widgets/demo/config", None, b"");
    assert_eq!(status, 404, "the metrics listener serves nothing else");
    node.stop().await;
}
