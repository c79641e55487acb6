//! How one node hands a new call to another: the call request as the
//! visitor's browser sent it, with the visitor's address and Origin, signed
//! with the cluster secret so only a node of the cluster can hand calls
//! over (and with them, set the client address the owner's limits and CDR
//! go by).
//!
//! The tag is HMAC-SHA256 over a versioned, newline-separated text of the
//! time (Unix seconds), the widget id, the client address and the Origin,
//! then the body. The receiver refuses a tag older or newer than
//! [`MAX_SKEW`], so a captured request cannot be replayed later.
//!
//! Pure: the caller passes the time.

use std::net::IpAddr;

use hmac::{KeyInit, Mac};

/// Unix seconds when the handoff was signed.
pub const TIME_HEADER: &str = "x-callgate-cluster-time";
/// The tag, lowercase hex.
pub const AUTH_HEADER: &str = "x-callgate-cluster-auth";
/// The visitor's address as the receiving node saw it.
pub const CLIENT_HEADER: &str = "x-callgate-client";

/// How far the signer's clock may be from the receiver's.
pub const MAX_SKEW_SECS: u64 = 30;

/// What a handoff carries, as signed.
#[derive(Debug, Clone, Copy)]
pub struct Handoff<'a> {
    pub widget_id: &'a str,
    pub client: IpAddr,
    pub origin: Option<&'a str>,
    pub body: &'a [u8],
}

/// How a handoff went, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// The owner answered; its answer went to the browser.
    HandedOver,
    /// The owner did not answer: the call was placed where it arrived.
    Failed,
}

impl HandoffOutcome {
    pub const ALL: [HandoffOutcome; 2] = [HandoffOutcome::HandedOver, HandoffOutcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            HandoffOutcome::HandedOver => "handed_over",
            HandoffOutcome::Failed => "failed",
        }
    }
}

/// Why a handoff was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffRefused {
    #[error("the handoff's signature does not verify")]
    BadTag,
    #[error("the handoff was signed too long ago, or in the future")]
    Stale,
}

fn mac(secret: &[u8], time_secs: u64, handoff: &Handoff<'_>) -> hmac::Hmac<sha2::Sha256> {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    let head = format!(
        "callgate-handoff-v1\n{time_secs}\n{}\n{}\n{}\n",
        handoff.widget_id,
        handoff.client,
        handoff.origin.unwrap_or_default()
    );
    mac.update(head.as_bytes());
    mac.update(handoff.body);
    mac
}

/// The tag of `handoff` signed at `time_secs`.
pub fn sign(secret: &[u8], time_secs: u64, handoff: &Handoff<'_>) -> String {
    hex::encode(mac(secret, time_secs, handoff).finalize().into_bytes())
}

/// Checks a handoff's tag (in constant time) and its age at `now_secs`.
pub fn verify(
    secret: &[u8],
    now_secs: u64,
    time_secs: u64,
    handoff: &Handoff<'_>,
    tag: &str,
) -> Result<(), HandoffRefused> {
    let tag = hex::decode(tag).map_err(|_| HandoffRefused::BadTag)?;
    mac(secret, time_secs, handoff)
        .verify_slice(&tag)
        .map_err(|_| HandoffRefused::BadTag)?;
    if now_secs.abs_diff(time_secs) > MAX_SKEW_SECS {
        return Err(HandoffRefused::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"the cluster's shared secret";

    fn handoff(body: &[u8]) -> Handoff<'_> {
        Handoff {
            widget_id: "w1",
            client: "198.51.100.7".parse().unwrap(),
            origin: Some("https://shop.example"),
            body,
        }
    }

    #[test]
    fn a_signed_handoff_verifies_within_the_skew_and_not_after() {
        let tag = sign(SECRET, 1000, &handoff(b"{}"));
        assert_eq!(verify(SECRET, 1000, 1000, &handoff(b"{}"), &tag), Ok(()));
        assert_eq!(verify(SECRET, 1030, 1000, &handoff(b"{}"), &tag), Ok(()));
        assert_eq!(
            verify(SECRET, 1031, 1000, &handoff(b"{}"), &tag),
            Err(HandoffRefused::Stale)
        );
        assert_eq!(
            verify(SECRET, 900, 1000, &handoff(b"{}"), &tag),
            Err(HandoffRefused::Stale)
        );
    }

    #[test]
    fn any_change_to_what_was_signed_is_refused() {
        let tag = sign(SECRET, 1000, &handoff(b"{}"));
        let refused = Err(HandoffRefused::BadTag);
        assert_eq!(verify(SECRET, 1000, 1000, &handoff(b"{ }"), &tag), refused);
        assert_eq!(verify(SECRET, 1000, 1001, &handoff(b"{}"), &tag), refused);
        assert_eq!(
            verify(b"another", 1000, 1000, &handoff(b"{}"), &tag),
            refused
        );
        let mut moved = handoff(b"{}");
        moved.client = "198.51.100.8".parse().unwrap();
        assert_eq!(verify(SECRET, 1000, 1000, &moved, &tag), refused);
        let mut other_origin = handoff(b"{}");
        other_origin.origin = None;
        assert_eq!(verify(SECRET, 1000, 1000, &other_origin, &tag), refused);
        assert_eq!(verify(SECRET, 1000, 1000, &handoff(b"{}"), "zz"), refused);
    }
}
