//! Where the nodes a test starts in-process log.
//!
//! With `TEST_NODE_LOG_DIR` set (the test script sets it), every event
//! at debug and above goes to `<dir>/<test binary>-<pid>.jsonl`, one JSON
//! object per line, through the node's own subscriber with its privacy
//! caps, and with the `log` crate's records (the WebRTC stack's) routed in
//! as the node routes them. The script then scans those files for personal
//! data. Without it, `RUST_LOG` prints to the test's output as usual.

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
