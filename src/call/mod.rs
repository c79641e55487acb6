//! Calls: signalling and media of one call, kept in step.
//!
//! - [`media`]: everything the call does to its packets, sans-IO: the
//!   browser session, the trunk's RTP endpoint core and the relay.
//! - [`trunk_leg`]: the trunk side's signalling, a SIP dialog on a route,
//!   negotiated per RFC 3264 and re-negotiated on re-INVITE (hold, unhold,
//!   a new media address); it hands each description to the media.
//! - [`state`]: the call's life as the widget and the CDR see it.
//! - [`control`]: everything the call decides, sans-IO: the state, the
//!   consent gate and hold, and what the media, the recorder, the trunk
//!   and the widget must be told.
//! - [`shard`]: the media engine, one thread per core, each hosting the
//!   media of many calls on its own browser port and their trunk sockets.
//! - [`requests`]: what the signalling side asks of a call and what the
//!   widget is shown; [`report`]: what a finished call leaves behind;
//!   [`observer`]: what the packet path tells the metrics.
//! - [`driver`]: the task around one call's control: it waits for leg
//!   events, commands and media reports, and carries out what the control
//!   decides.
//! - [`service`]: places calls and keeps the live call table; it tells
//!   a cluster of them through a [`announce::CallAnnouncer`].
//! - [`cdr_writer`]: writes each finished call's CDR and queues its
//!   webhook, retried from a spool until the store takes it.
//!
//! To follow a packet socket to socket, read three files: the shard's loop
//! (`shard/worker.rs`) reads it and sends it on, the call's media
//! (`media.rs`) relays it, and the browser's session (`webrtc/session.rs`)
//! authenticates and decrypts it. To follow a decision (hold, consent, a
//! hang-up), read `control.rs`.

pub mod announce;
pub mod cdr_writer;
pub mod control;
pub mod driver;
pub mod media;
pub mod observer;
pub mod privacy_ref;
pub mod report;
pub mod requests;
pub mod service;
pub mod shard;
pub mod state;
pub mod trunk_leg;

pub use trunk_leg::{LegError, LegEvent, LocalPorts, MediaPlan, TrunkLeg};
