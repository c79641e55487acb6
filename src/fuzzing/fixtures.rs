//! What several targets share: the ICE credentials their port and
//! sessions use, one session setting (and certificate) for all, and time
//! moved on by the input.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::webrtc::session::SessionSettings;

/// The ICE credentials the port and the sessions of these targets use.
pub const LOCAL_UFRAG: &str = "fuzzLocal";
pub const LOCAL_PWD: &str = "fuzzLocalPasswordOf24ch";
pub const REMOTE_UFRAG: &str = "fuzzRemote";

/// One certificate for every session: generating one is milliseconds.
pub(super) fn session_settings() -> &'static SessionSettings {
    static SETTINGS: OnceLock<SessionSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let certificate = crate::webrtc::generate_certificate().expect("a certificate");
        SessionSettings::new("192.0.2.1:40000".parse().expect("an address"), certificate)
    })
}

/// Time moves on by the input's say, up to a few seconds a step.
pub(super) fn later(now: Instant, step: u8) -> Instant {
    now + Duration::from_millis(u64::from(step) * 20)
}
