//! Shared support code for integration tests that drive real peers (SIP
//! user agents, a browser, an independent WebRTC client).
//!
//! Each integration test includes this directory with `mod support;` and uses
//! the parts it needs:
//! - [`ports`]: free loopback ports, reserved once per test process.
//! - [`process`]: a child process that is stopped (by its pid) when dropped.
//! - [`sipp`]: sipp 3.6.1 runs of the scenarios under `tests/sipp/`, and
//!   the message trace each run leaves behind ([`sip_trace`]).
//! - [`baresip`] and [`kamailio`]: a second user agent and a stateful proxy,
//!   configured from the templates under `tests/peers/`.
//! - [`audio`], [`rtp`]: speech made with espeak-ng and sox, G.711 µ-law,
//!   an envelope similarity that says "the speech sent came back", RTP
//!   parsing, capture and paced sending.
//! - [`impair`]: a bad network between the node and its trunk: an echo
//!   that loses and delays packets for a while.
//! - [`keypad`]: the callee's keypad as a carrier sends it (RFC 4733 events
//!   from the trunk's media port) and the keypad tones heard in audio.
//! - [`pki`]: a throwaway CA and server certificate made with openssl;
//!   [`pebble`]: an ACME test CA.
//! - [`recordings`]: files left on disk, blob entropy, and the decrypt
//!   command.
//! - [`s3`]: SeaweedFS as an S3-compatible server that checks signatures,
//!   killed and restarted on the same data as a store that goes away.
//! - [`digest`]: checks a Digest `Authorization` (MD5, SHA-256) that sipp
//!   3.6.1 cannot check itself.
//! - [`sip_raw`]: malformed SIP datagrams and a raw OPTIONS probe.
//! - [`trunk`]: a node's trunk leg in-process (`TestNode`), waiting for its
//!   events, speaking and listening on a call.
//! - [`browser`]: a real headless Chromium through chromedriver, with a fake
//!   microphone, MediaRecorder captures decoded by ffmpeg and getStats
//!   packet counts.
//! - [`aiortc`]: `tests/clients/aiortc_call.py`, an independent WebRTC
//!   client of the widget signalling, run with the test virtualenv.
//! - [`node`]: a whole node in-process (`RunningNode`) and plain HTTP
//!   requests to it; [`admin`]: a client of its admin API with one key;
//!   [`logs`]: where in-process nodes log, for the personal-data scan.
//! - [`site`]: a customer's website on another origin that embeds the
//!   widget with its one tag, over HTTP or HTTPS.
//! - [`postgres`]: a fresh database on the tests' PostgreSQL server, for a
//!   node run on PostgreSQL instead of its embedded SQLite.
//! - [`redis`]: a Redis server of the test's own for nodes in a cluster,
//!   killed and restarted as a Redis that goes away.
//!
//! Invariants: everything binds 127.0.0.1; every process a test starts is
//! stopped by that test; a missing peer program fails the test with a message
//! naming the install script, it never skips silently.
#![allow(dead_code)]

pub mod admin;
pub mod aiortc;
pub mod audio;
pub mod baresip;
pub mod browser;
pub mod coturn;
pub mod digest;
pub mod impair;
pub mod kamailio;
pub mod keypad;
pub mod logs;
pub mod node;
pub mod pebble;
pub mod pki;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod recordings;
pub mod redis;
pub mod rtp;
pub mod s3;
pub mod sip_raw;
pub mod sip_trace;
pub mod sipp;
pub mod site;
pub mod trunk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository root (where `Cargo.toml` is).
pub fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a file under `tests/`, e.g. `test_path("sipp/uas_busy.xml")`.
pub fn test_path(relative: &str) -> PathBuf {
    repo_dir().join("tests").join(relative)
}

/// Fails the test unless `program` is on PATH (or is an existing path), and
/// returns its path.
pub fn require_program(program: &str) -> PathBuf {
    let direct = Path::new(program);
    if direct.is_absolute() && direct.is_file() {
        return direct.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed: run scripts/install-test-deps.sh \
                 (integration tests need the real peers, they never skip)"
            )
        })
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a UDP socket is bound on 127.0.0.1:`port` (or on 0.0.0.0:`port`),
/// read from the kernel's table so that the owner can be any process.
pub fn udp_port_bound(port: u16) -> bool {
    port_bound("/proc/net/udp", port, None)
}

/// Whether something listens on TCP `port` on 127.0.0.1 or all addresses:
/// a socket in the LISTEN state, not one of an earlier connection to that
/// port still closing (TIME_WAIT), which would say "up" before the server is.
pub fn tcp_port_listening(port: u16) -> bool {
    port_bound("/proc/net/tcp", port, Some(TCP_LISTEN))
}

/// The LISTEN state in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Whether the kernel's `table` has a socket on local `port` (loopback or
/// any address), in `state` when given.
fn port_bound(table_path: &str, port: u16, state: Option<&str>) -> bool {
    let Ok(table) = std::fs::read_to_string(table_path) else {
        return false;
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields
            .get(1)
            .is_some_and(|local| wanted.contains(&(*local).to_owned()));
        let in_state = state.is_none_or(|state| fields.get(3) == Some(&state));
        local && in_state
    })
}
