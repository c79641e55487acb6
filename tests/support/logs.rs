//! Where the nodes a test starts in-process log.
//!
//! With `TEST_NODE_LOG_DIR` set (the test script sets it), every event
//! at debug and above goes to `<dir>/<test binary>-<pid>.jsonl`, one JSON
//! object per line, through the node's own subscriber with its privacy
//! caps, and with the `log` crate's records (the WebRTC stack's) routed in
//! as the node routes them. The script then scans those files for personal
//! data. Without it, `RUST_LOG` prints to the test's output as usual.
//!
//! A `callgate serve` a test runs as a process of its own logs the same
//! way with [`spawned_node`]: at debug, as JSON, into a file of that
//! directory, which the test also reads for its failure reports.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};

use callgate::config::{LogConfig, LogFormat};

static INIT: Once = Once::new();

/// Installs the test process's subscriber once; later calls do nothing.
pub fn init() {
    INIT.call_once(|| match std::env::var_os("TEST_NODE_LOG_DIR") {
        Some(dir) => to_file(std::path::Path::new(&dir)),
        None if std::env::var_os("RUST_LOG").is_some() => {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        }
        None => {}
    });
}

fn to_file(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("create the test log directory");
    let exe = std::env::current_exe().expect("the test binary's path");
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("test");
    let path = dir.join(format!("{stem}-{}.jsonl", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the test log file");
    let log = LogConfig {
        format: LogFormat::Json,
        level: "debug".to_owned(),
    };
    let subscriber = callgate::telemetry::subscriber(&log, None, false, Arc::new(file))
        .expect("the test log subscriber");
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
    callgate::telemetry::route_log_records();
}

/// With `TEST_NODE_LOG_DIR` set, makes `command` (a `callgate serve`) log
/// at debug as JSON, and returns the file in that directory its stderr
/// must go to; `None` otherwise, and the test captures it as it likes.
/// Call it after any `env_clear`.
pub fn spawned_node(command: &mut Command) -> Option<PathBuf> {
    static SPAWNED: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(std::env::var_os("TEST_NODE_LOG_DIR")?);
    std::fs::create_dir_all(&dir).expect("create the test log directory");
    command
        .env("RUST_LOG", "debug")
        .env("CALLGATE_LOG_FORMAT", "json");
    let exe = std::env::current_exe().expect("the test binary's path");
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("test");
    let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
    Some(dir.join(format!("{stem}-{}-serve{n}.jsonl", std::process::id())))
}
