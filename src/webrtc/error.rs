//! [`WebrtcError`]: why the browser leg could not answer or start.

use super::offer::OfferError;

#[derive(Debug, thiserror::Error)]
pub enum WebrtcError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    #[error("offer rejected by the WebRTC stack: {0}")]
    BadOffer(String),
    #[error("negotiation failed: {0}")]
    Negotiation(String),
    #[error("cannot create the DTLS certificate: {0}")]
    Certificate(String),
}
