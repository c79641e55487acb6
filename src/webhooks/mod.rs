//! Webhooks: a tenant's `call.ringing`, `call.answered`, `call.ended` and
//! `recording.ready` events, queued in the database and POSTed to the
//! tenant's endpoint by a worker on each node. An endpoint receives the
//! events it chose ([`EVENTS`]; by default [`DEFAULT_EVENTS`], what
//! endpoints received before the call progress events existed).
//!
//! Invariants:
//! - Nothing here runs on a call's path: an event is queued (one insert)
//!   after the CDR or the recording row is written, in the task that wrote
//!   it; sending is the worker's alone, so a slow or dead endpoint never
//!   delays a call.
//! - The queue lives in the database: a node that stops, crashes or cannot
//!   reach an endpoint loses no event; another run (or node) sends it.
//! - Bodies are the public views ([`crate::views`]) the admin API serves too:
//!   nothing a customer could not already read through the API.
//! - Deliveries go only to public addresses unless the operator allows
//!   private ones ([`target`]).
//! - Every delivery is signed ([`sign::signature`]) with the tenant's
//!   secret; the secret is never logged, nor is the endpoint's url.

mod queue;
pub mod sign;
pub mod target;
mod worker;

pub use self::queue::{
    CALL_ANSWERED, CALL_ENDED, CALL_RINGING, DEFAULT_EVENTS, EVENTS, RECORDING_READY, Webhooks,
};
pub use self::worker::{WorkerSettings, run};
