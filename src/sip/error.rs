//! [`SipError`]: what the SIP agent could not do.

use std::net::SocketAddr;

/// Errors of the SIP agent.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("{what} {addr}: {reason}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        reason: String,
    },
    #[error("no SIP listener is bound")]
    NoListener,
    #[error("unknown route {0:?}")]
    UnknownRoute(String),
    #[error("route {route:?} names unknown trunk {trunk:?}")]
    UnknownTrunk { route: String, trunk: String },
    #[error("trunk {trunk:?}: address is not host or host:port")]
    BadAddress { trunk: String },
    #[error("no response in time")]
    Timeout,
    #[error("sip stack: {0}")]
    Stack(String),
}
