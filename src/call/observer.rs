//! [`RelayObserver`]: what the packet path tells the node's metrics, and
//! its two hosts: the node's [`Metrics`] and `()` for tools and tests.

use std::time::Duration;

use crate::media::quality::{Leg, LegWindow};
use crate::metrics::Metrics;

/// Hooks for the node's metrics, called on the packet path (atomics only).
pub trait RelayObserver: Send + Sync {
    /// A browser packet left for the trunk, `latency` after it arrived;
    /// `transcoded` when its audio went through a transcoder.
    fn relayed_to_trunk(&self, latency: Duration, transcoded: bool);
    /// A trunk packet left for the browser, `latency` after it arrived;
    /// reported by the media's host, which knows when it left.
    fn relayed_to_browser(&self, latency: Duration, transcoded: bool);
    fn browser_connect_failed(&self, ice: bool);
    /// A datagram routed to a call that its session refused: SRTP or
    /// SRTCP that did not authenticate or was replayed (`srtp`), or a
    /// check or DTLS record that did not verify.
    fn browser_rejected(&self, srtp: bool);
    /// A call's media panicked and was taken off its shard.
    fn media_panicked(&self);
    /// One leg's figures over a closed quality window.
    fn quality_window(&self, leg: Leg, window: &LegWindow);
}

/// No metrics: for tools and tests that host a call's media on their own.
impl RelayObserver for () {
    fn relayed_to_trunk(&self, _latency: Duration, _transcoded: bool) {}
    fn relayed_to_browser(&self, _latency: Duration, _transcoded: bool) {}
    fn browser_connect_failed(&self, _ice: bool) {}
    fn browser_rejected(&self, _srtp: bool) {}
    fn media_panicked(&self) {}
    fn quality_window(&self, _leg: Leg, _window: &LegWindow) {}
}

impl RelayObserver for Metrics {
    fn relayed_to_trunk(&self, latency: Duration, transcoded: bool) {
        self.relay.browser_in.inc();
        self.relay.trunk_out.inc();
        let histogram = match transcoded {
            true => &self.relay.transcoded_to_trunk,
            false => &self.relay.latency_to_trunk,
        };
        histogram.observe(latency.as_secs_f64());
    }

    fn relayed_to_browser(&self, latency: Duration, transcoded: bool) {
        self.relay.trunk_in.inc();
        self.relay.browser_out.inc();
        let histogram = match transcoded {
            true => &self.relay.transcoded_to_browser,
            false => &self.relay.latency_to_browser,
        };
        histogram.observe(latency.as_secs_f64());
    }

    fn browser_connect_failed(&self, ice: bool) {
        match ice {
            true => self.ice_failures.inc(),
            false => self.dtls_failures.inc(),
        }
    }

    fn browser_rejected(&self, srtp: bool) {
        let reason = match srtp {
            true => crate::metrics::BrowserDrop::Srtp,
            false => crate::metrics::BrowserDrop::Other,
        };
        self.drops.browser(reason).inc();
    }

    fn media_panicked(&self) {
        self.call_panicked(crate::metrics::CallPart::Media);
    }

    fn quality_window(&self, leg: Leg, window: &LegWindow) {
        self.quality.observe(leg, window);
    }
}
