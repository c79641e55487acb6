//! Calls: the per-call drivers that keep signalling and media in step.
//!
//! - [`trunk_leg`]: the trunk side of one call, a SIP dialog on a route and
//!   its RTP endpoint, negotiated per RFC 3264 and re-negotiated on
//!   re-INVITE (hold, unhold, a new media address).
//!
//! The browser leg, the call state machine and the relay between the legs
//! build on this.

pub mod driver;
pub mod media;
pub mod privacy_ref;
pub mod service;
pub mod state;
pub mod trunk_leg;

pub use trunk_leg::{LegError, LegEvent, LocalPorts, MediaPlan, TrunkLeg};
