//! Calls: signalling and media of one call, kept in step.
//!
//! - [`media`]: everything the call does to its packets, sans-IO: the
//!   browser session, the trunk's RTP endpoint core and the relay.
//! - [`trunk_leg`]: the trunk side's signalling, a SIP dialog on a route,
//!   negotiated per RFC 3264 and re-negotiated on re-INVITE (hold, unhold,
//!   a new media address); it hands each description to the media.
//! - [`state`]: the call's life as the widget and the CDR see it.
//! - [`shard`]: the media engine, one thread per core, each hosting the
//!   media of many calls on its own browser port and their trunk sockets.
//! - [`driver`]: the task that runs one call's control (leg events,
//!   commands, the consent gate) and tells its media in the shard.
//! - [`service`]: places calls and keeps the live call table.

pub mod driver;
pub mod media;
pub mod privacy_ref;
pub mod service;
pub mod shard;
pub mod state;
pub mod trunk_leg;

pub use trunk_leg::{LegError, LegEvent, LocalPorts, MediaPlan, TrunkLeg};
