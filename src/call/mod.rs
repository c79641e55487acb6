//! Calls: signalling and media of one call, kept in step.
//!
//! - [`media`]: everything the call does to its packets, sans-IO: the
//!   browser session, the trunk's RTP endpoint core and the relay.
//! - [`trunk_leg`]: the trunk side's signalling, a SIP dialog on a route,
//!   negotiated per RFC 3264 and re-negotiated on re-INVITE (hold, unhold,
//!   a new media address); it hands each description to the media.
//! - [`state`]: the call's life as the widget and the CDR see it.
//! - [`driver`]: the task that hosts one call's media on its sockets and
//!   runs its control (leg events, commands, the consent gate).
//! - [`service`]: places calls and keeps the live call table.

pub mod driver;
pub mod media;
pub mod privacy_ref;
pub mod service;
pub mod state;
pub mod trunk_leg;

pub use trunk_leg::{LegError, LegEvent, LocalPorts, MediaPlan, TrunkLeg};
