//! The trunk leg: a SIP user agent (RFC 3261) that places calls on trunks,
//! on rsipstack (pinned exactly), behind our own small API.
//!
//! - [`SipAgent`]: one per node; transports (UDP, TCP, TLS), dispatch,
//!   OPTIONS health probes of trunks.
//! - [`SipAgent::place_call`] → [`TrunkCall`]: INVITE with 100/180/183/200
//!   handling and ACK, CANCEL before answer, BYE from either side, re-INVITE
//!   and UPDATE offers from the trunk surfaced as [`TrunkEvent::RemoteOffer`],
//!   in-dialog OPTIONS answered, keypad digits in INFO requests surfaced as
//!   [`TrunkEvent::Dtmf`] ([`dtmf_info`]), digest authentication on 401/407 (MD5 and
//!   SHA-256, qop=auth, done by rsipstack), outbound proxy with Record-Route
//!   honoured, ring timeout and maximum duration, failover across a route,
//!   RFC 4028 session timers both ways ([`session_timer`]).
//! - Only the trunks, their proxies and the operator's trusted networks are
//!   read on the SIP port; anything else is dropped before it is parsed.
//!   A call's in-dialog requests are heard only from its own trunk (or its
//!   proxy, or a trusted network); another trunk's are answered as naming
//!   no call. Each source holds a bounded number of TCP/TLS connections and
//!   sends a bounded rate of requests ([`admission`]).
//! - [`disposition`]: final responses, timeouts and transport errors mapped to
//!   busy / no_answer / rejected / failed / unreachable with the SIP cause;
//!   [`TrunkReason`]: the refusal in the trunk's words (reason phrase,
//!   Q.850 cause), stripped of personal data.
//! - [`InboundCall`]: INVITEs accepted by an agent that asked for them (the
//!   built-in echo trunk).
//!
//! Nothing here logs a number, a URI, an address or a body: log lines carry
//! trunk names, dispositions and status codes.

mod admission;
mod agent;
mod agent_inner;
mod call;
mod counters;
mod dialog_timers;
mod digest_compat;
pub mod disposition;
mod dtmf_info;
mod error;
#[cfg(any(feature = "fuzzing", test))]
pub(crate) mod fuzz;
mod health;
mod inbound;
mod pinning;
mod reason;
mod session_timer;
mod settings;
mod sources;
mod trunk;

pub use agent::SipAgent;
pub use call::{
    CallEnd, CallRequest, EndCause, OfferBuilder, OfferReply, TrunkCall, TrunkEvent, TrunkReason,
};
pub use counters::SipCounters;
pub use error::SipError;
pub use inbound::{InboundCall, InboundEvent};
pub use settings::{
    AgentSettings, DigestCredentials, RouteSettings, SipTransport, SourceLimits, TlsListenSettings,
    TrunkSettings,
};
