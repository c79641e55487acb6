//! Logging setup: a tracing subscriber writing text or JSON lines to stderr.
//!
//! The level comes from `[log] level`; `RUST_LOG`, when set and not empty,
//! takes precedence so an operator can raise verbosity without editing the
//! config. Setup reports errors instead of panicking. What gets logged is kept
//! free of personal data by [`crate::privacy::Pii`] at each call site; this
//! module only decides the shape and destination of the lines.
//!
//! One exception is enforced here: libraries that log what must not be
//! logged are capped whatever `log.level` or `RUST_LOG` say (see [`CAPS`]).
//! The SIP stack (rsipstack) logs whole SIP messages (numbers, addresses,
//! SDP) at info and debug, and the WebRTC stack (`rtc` and its crates,
//! through the `log` crate, routed here by [`route_log_records`]) logs
//! candidates and addresses: both are held to errors. sqlx's statements and
//! the HTTP stack's connection lines are held to info.
//!
//! Panics are logged as error lines too (so JSON logs stay JSON), with
//! their location and thread; a formatted panic message is withheld.

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::{LogConfig, LogFormat};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter {origin} is not valid: {reason}")]
    Filter {
        origin: &'static str,
        reason: String,
    },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the process-wide subscriber, writing to stderr, and logs
/// panics through it.
pub fn init(log: &LogConfig) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let ansi = std::io::stderr().is_terminal();
    let subscriber = subscriber(log, rust_log.as_deref(), ansi, std::io::stderr)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    route_log_records();
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current();
        tracing::error!(
            location = location.as_deref().unwrap_or("unknown"),
            thread = thread.name().unwrap_or("unnamed"),
            "panicked: {}",
            panic_message(info.payload())
        );
    }));
    Ok(())
}

/// A panic's message when it is fixed text. A formatted one (an `unwrap`
/// of an error, say) may carry an address or a number, so it is withheld;
/// its location says where to look.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &'static str {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .unwrap_or("(a formatted message, withheld: it may hold personal data)")
}

/// Builds the subscriber without installing it, so tests can capture output.
pub fn subscriber<W>(
    log: &LogConfig,
    rust_log: Option<&str>,
    ansi: bool,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(log, rust_log)?;
    let cap = filter_fn(within_privacy_cap);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(true);
    let registry = tracing_subscriber::registry();
    Ok(match log.format {
        LogFormat::Text => {
            Box::new(registry.with(layer.with_ansi(ansi).with_filter(filter).with_filter(cap)))
        }
        LogFormat::Json => Box::new(
            registry.with(
                layer
                    .json()
                    .with_current_span(false)
                    .with_filter(filter)
                    .with_filter(cap),
            ),
        ),
    })
}

/// Sends the `log` crate's records (the WebRTC stack logs through it) to
/// the installed subscriber, where the same filters and caps apply; until
/// this runs they are dropped. Records below info are never made: the
/// WebRTC stack's per-packet trace calls then cost one comparison on the
/// media path. A second call does nothing.
pub fn route_log_records() {
    let routed =
        tracing_log::LogTracer::builder().with_max_level(tracing_log::log::LevelFilter::Info);
    let _ = routed.init();
}

/// Targets that log personal data, or a peer's address, below some level,
/// and the most each may log whatever the filter says: the SIP stack
/// (whole messages) and the WebRTC stack (candidates) only errors; sqlx
/// (whole statements) and the HTTP and WebSocket clients and servers
/// (connection lines naming the peer) only info.
const CAPS: [(&str, Level); 9] = [
    ("rsipstack", Level::ERROR),
    ("rtc", Level::ERROR),
    ("sqlx", Level::INFO),
    ("hyper", Level::INFO),
    ("h2", Level::INFO),
    ("reqwest", Level::INFO),
    ("rustls", Level::INFO),
    ("tungstenite", Level::INFO),
    ("tokio_tungstenite", Level::INFO),
];

fn within_privacy_cap(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    let cap = CAPS.iter().find(|(prefix, _)| target.starts_with(prefix));
    cap.is_none_or(|(_, most)| meta.level() <= most)
}

fn filter(log: &LogConfig, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let (origin, directives) = match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(from_env) => ("RUST_LOG", from_env),
        None => ("log.level", log.level.as_str()),
    };
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| TelemetryError::Filter {
            origin,
            reason: e.to_string(),
        })
}

/// A log destination for tests: keeps what was written, for assertions.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl CapturedLogs {
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn run(format: LogFormat, level: &str, rust_log: Option<&str>) -> String {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let log = LogConfig {
            format,
            level: level.to_owned(),
        };
        let subscriber = subscriber(&log, rust_log, false, move || writer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(node = "n1", "started");
            tracing::debug!("detail");
        });
        logs.text()
    }
    #[test]
    fn a_panic_message_is_kept_only_when_it_is_fixed_text() {
        let fixed = std::panic::catch_unwind(|| panic!("the shard's queue is gone")).unwrap_err();
        assert_eq!(panic_message(fixed.as_ref()), "the shard's queue is gone");
        let address = "192.0.2.7";
        let formatted = std::panic::catch_unwind(|| panic!("no route to {address}")).unwrap_err();
        assert!(!panic_message(formatted.as_ref()).contains(address));
    }

    #[test]
    fn json_format_writes_one_json_object_per_line() {
        let out = run(LogFormat::Json, "info", None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "started");
        assert_eq!(line["fields"]["node"], "n1");
    }

    #[test]
    fn text_format_is_plain_without_ansi() {
        let out = run(LogFormat::Text, "info", None);
        assert!(
            out.contains("INFO") && out.contains("started node=\"n1\""),
            "{out}"
        );
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }

    #[test]
    fn level_filters_and_rust_log_overrides_it() {
        assert!(!run(LogFormat::Text, "info", None).contains("detail"));
        assert!(run(LogFormat::Text, "info", Some("debug")).contains("detail"));
        assert!(run(LogFormat::Text, "debug", Some("  ")).contains("detail"));
    }

    #[test]
    fn sip_stack_message_dumps_never_reach_the_log() {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let log = LogConfig {
            format: LogFormat::Text,
            level: "trace".to_owned(),
        };
        let subscriber = subscriber(&log, Some("trace"), false, move || writer.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "rsipstack::transport::udp", "INVITE sip:+4930123456@192.0.2.7");
            tracing::error!(target: "rsipstack::transport", "transport failed");
        });
        let out = logs.text();
        assert!(!out.contains("4930123456"), "{out}");
        assert!(out.contains("transport failed"), "{out}");
    }

    #[test]
    fn webrtc_stack_records_arrive_and_are_held_to_errors() {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let log = LogConfig {
            format: LogFormat::Text,
            level: "trace".to_owned(),
        };
        let subscriber = subscriber(&log, Some("trace"), false, move || writer.clone()).unwrap();
        route_log_records();
        tracing::subscriber::with_default(subscriber, || {
            log::info!(target: "rtc_ice::agent", "candidate 192.0.2.7:5000 added");
            log::error!(target: "rtc_dtls::conn", "handshake failed");
            log::info!(target: "other_crate", "kept detail");
            log::debug!(target: "other_crate", "never made");
        });
        let out = logs.text();
        assert!(!out.contains("192.0.2.7"), "{out}");
        assert!(out.contains("handshake failed"), "{out}");
        assert!(out.contains("kept detail"), "{out}");
        assert!(!out.contains("never made"), "{out}");
    }

    #[test]
    fn bad_rust_log_is_an_error_naming_its_origin() {
        let log = LogConfig::default();
        let error = subscriber(&log, Some("x=notalevel"), false, io::sink)
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .starts_with("log filter RUST_LOG is not valid"),
            "{error}"
        );
    }
}
