//! Short-lived TURN credentials in the TURN REST scheme
//! (draft-uberti-behave-turn-rest-00; coturn's `use-auth-secret` with
//! `static-auth-secret`): the node and the TURN server share a secret, and
//! the node hands each browser a username `EXPIRY:OPAQUE` with the
//! credential `base64(HMAC-SHA1(secret, username))`. The TURN server checks
//! the HMAC and refuses a username whose EXPIRY (Unix seconds) has passed,
//! so a credential copied out of a page stops working on its own and the
//! relay is no open relay for whoever reads it.
//!
//! Pure: the caller passes the time and the opaque part.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A username and credential for a browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    pub username: String,
    pub credential: String,
}

/// The credential for `opaque` (any text without `:`), valid until
/// `expires_unix` (seconds).
pub fn credential(secret: &[u8], expires_unix: u64, opaque: &str) -> TurnCredential {
    let username = format!("{expires_unix}:{opaque}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    TurnCredential {
        credential: BASE64.encode(tag.as_ref()),
        username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scheme_turn_servers_check() {
        // Computed independently: base64(HMAC-SHA1("north-wind",
        // "1700000600:c0ffee")) with Python's hmac module.
        let made = credential(b"north-wind", 1_700_000_600, "c0ffee");
        assert_eq!(made.username, "1700000600:c0ffee");
        assert_eq!(made.credential, "kZQOzyvFLejRW/L6ZSIyCEzAmRk=");
    }

    #[test]
    fn the_credential_depends_on_the_secret_and_the_expiry() {
        let base = credential(b"north-wind", 1_700_000_600, "c0ffee");
        assert_ne!(base, credential(b"south-wind", 1_700_000_600, "c0ffee"));
        let later = credential(b"north-wind", 1_700_000_601, "c0ffee");
        assert_ne!(base.credential, later.credential);
    }
}
