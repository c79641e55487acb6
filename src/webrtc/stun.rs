//! The one STUN exchange an ICE-lite agent takes part in: a browser's
//! Binding request (a connectivity or consent check) and our success
//! response (RFC 8489 §6, RFC 8445 §7.3, RFC 7675).
//!
//! Pure functions over untrusted bytes, bounds-checked, never panicking.
//! A request counts only when its MESSAGE-INTEGRITY verifies under our ICE
//! password (RFC 8489 §14.5, compared in constant time by `ring`) and its
//! USERNAME names both fragments of this call; nothing of an unverified
//! request is used. Written by hand rather than on a STUN crate because a
//! flood of forged checks lands here: verifying one costs one HMAC-SHA1
//! with a key prepared once per call, and nothing is allocated.

use std::net::{IpAddr, SocketAddr};

use ring::hmac;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_ICE_CONTROLLING: u16 = 0x802A;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const INTEGRITY_LEN: usize = 20;
/// RFC 8489 §14.7: the CRC-32 is XORed with "STUN".
const FINGERPRINT_XOR: u32 = 0x5354_554e;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why a datagram was not taken as a check of this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("not a stun binding request")]
    NotBindingRequest,
    #[error("malformed stun message")]
    Malformed,
    #[error("username does not name this call")]
    WrongUsername,
    #[error("message integrity missing or wrong")]
    BadIntegrity,
}

/// The ICE credentials of one call: ours (the answer's) and the browser's
/// fragment (the offer's).
pub struct IceCredentials {
    /// `local:remote`, the USERNAME a check to us carries (RFC 8445 §7.2.2).
    username: Vec<u8>,
    key: hmac::Key,
}

impl IceCredentials {
    pub fn new(local_ufrag: &str, local_pwd: &str, remote_ufrag: &str) -> Self {
        Self {
            username: format!("{local_ufrag}:{remote_ufrag}").into_bytes(),
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, local_pwd.as_bytes()),
        }
    }
}

/// A verified Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub transaction: [u8; 12],
    /// USE-CANDIDATE: the browser nominated this pair (RFC 8445 §8.1.1).
    pub nominated: bool,
}

/// Verifies `datagram` as a Binding request for `credentials`.
pub fn verify_check(datagram: &[u8], credentials: &IceCredentials) -> Result<Check, StunError> {
    let header = datagram.get(..HEADER_LEN).ok_or(StunError::Malformed)?;
    if u16::from_be_bytes([header[0], header[1]]) != BINDING_REQUEST || header[4..8] != MAGIC_COOKIE
    {
        return Err(StunError::NotBindingRequest);
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if length % 4 != 0 || datagram.len() != HEADER_LEN + length {
        return Err(StunError::Malformed);
    }
    let mut transaction = [0u8; 12];
    transaction.copy_from_slice(&header[8..20]);
    let mut username_ok = false;
    let mut nominated = false;
    let mut offset = HEADER_LEN;
    while offset < datagram.len() {
        let (kind, value) = attribute_at(datagram, offset)?;
        match kind {
            ATTR_USERNAME => username_ok = value == credentials.username.as_slice(),
            ATTR_USE_CANDIDATE => nominated = true,
            ATTR_MESSAGE_INTEGRITY => {
                if !username_ok {
                    return Err(StunError::WrongUsername);
                }
                verify_integrity(datagram, offset, value, &credentials.key)?;
                return Ok(Check {
                    transaction,
                    nominated,
                });
            }
            _ => {}
        }
        offset += 4 + value.len().div_ceil(4) * 4;
    }
    Err(StunError::BadIntegrity)
}

/// The attribute at `offset`: its type and value.
fn attribute_at(message: &[u8], offset: usize) -> Result<(u16, &[u8]), StunError> {
    let head = message
        .get(offset..offset + 4)
        .ok_or(StunError::Malformed)?;
    let kind = u16::from_be_bytes([head[0], head[1]]);
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let value = message
        .get(offset + 4..offset + 4 + len)
        .ok_or(StunError::Malformed)?;
    Ok((kind, value))
}

/// RFC 8489 §14.5: the HMAC covers the message up to the attribute, with
/// the header's length rewritten to end just after MESSAGE-INTEGRITY.
fn verify_integrity(
    message: &[u8],
    offset: usize,
    tag: &[u8],
    key: &hmac::Key,
) -> Result<(), StunError> {
    if tag.len() != INTEGRITY_LEN {
        return Err(StunError::BadIntegrity);
    }
    let covered_len = (offset + 4 + INTEGRITY_LEN - HEADER_LEN) as u16;
    let mut context = hmac::Context::with_key(key);
    context.update(&message[..2]);
    context.update(&covered_len.to_be_bytes());
    context.update(&message[4..offset]);
    let expected = context.sign();
    // `ring::hmac::verify` would recompute; compare the finished tag in
    // constant time instead.
    let differs = expected
        .as_ref()
        .iter()
        .zip(tag)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    match differs {
        0 => Ok(()),
        _ => Err(StunError::BadIntegrity),
    }
}

/// Replaces `out` with the success response to `check` from `from`:
/// XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY under our password, FINGERPRINT.
pub fn write_success(out: &mut Vec<u8>, check: &Check, from: SocketAddr, key: &IceCredentials) {
    out.clear();
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(&check.transaction);
    write_xor_mapped_address(out, from, &check.transaction);
    let integrity_at = out.len();
    set_length(out, integrity_at + 4 + INTEGRITY_LEN);
    let tag = hmac::sign(&key.key, out);
    push_attribute(out, ATTR_MESSAGE_INTEGRITY, tag.as_ref());
    let with_fingerprint = out.len() + 8;
    set_length(out, with_fingerprint);
    let crc = CRC32.checksum(out) ^ FINGERPRINT_XOR;
    push_attribute(out, ATTR_FINGERPRINT, &crc.to_be_bytes());
}

/// Replaces `out` with a Binding request as a controlling agent sends it
/// (RFC 8445 §7.2.2): USERNAME `remote_ufrag:local_ufrag`, PRIORITY,
/// ICE-CONTROLLING, USE-CANDIDATE when `nominate`, MESSAGE-INTEGRITY under
/// the remote password, FINGERPRINT. For clients that play the browser
/// (the load tool, tests); the node, ICE-lite, never sends one.
pub fn write_check(
    out: &mut Vec<u8>,
    transaction: &[u8; 12],
    username: &str,
    remote_password: &str,
    tie_breaker: u64,
    nominate: bool,
) {
    out.clear();
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(transaction);
    // A host candidate's priority (RFC 8445 §5.1.2.1), peer-reflexive type.
    push_attribute(out, ATTR_PRIORITY, &0x6e00_1eff_u32.to_be_bytes());
    push_attribute(out, ATTR_ICE_CONTROLLING, &tie_breaker.to_be_bytes());
    push_attribute(out, ATTR_USERNAME, username.as_bytes());
    if nominate {
        push_attribute(out, ATTR_USE_CANDIDATE, &[]);
    }
    let integrity_at = out.len();
    set_length(out, integrity_at + 4 + INTEGRITY_LEN);
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        remote_password.as_bytes(),
    );
    let tag = hmac::sign(&key, out);
    push_attribute(out, ATTR_MESSAGE_INTEGRITY, tag.as_ref());
    let with_fingerprint = out.len() + 8;
    set_length(out, with_fingerprint);
    let crc = CRC32.checksum(out) ^ FINGERPRINT_XOR;
    push_attribute(out, ATTR_FINGERPRINT, &crc.to_be_bytes());
}

/// Whether `datagram` is a Binding success response to `transaction`.
/// Its integrity is not checked: a client that plays the browser on
/// loopback has no forger to fear, and the DTLS handshake that follows
/// authenticates the node anyway.
pub fn is_success_for(datagram: &[u8], transaction: &[u8; 12]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram[..2] == BINDING_SUCCESS.to_be_bytes()
        && datagram[4..8] == MAGIC_COOKIE
        && datagram[8..20] == transaction[..]
}

fn write_xor_mapped_address(out: &mut Vec<u8>, from: SocketAddr, transaction: &[u8; 12]) {
    let port = from.port() ^ 0x2112;
    let mut value = [0u8; 20];
    value[2..4].copy_from_slice(&port.to_be_bytes());
    let len = match from.ip() {
        IpAddr::V4(ip) => {
            value[1] = 0x01;
            for (i, byte) in ip.octets().iter().enumerate() {
                value[4 + i] = byte ^ MAGIC_COOKIE[i];
            }
            8
        }
        IpAddr::V6(ip) => {
            value[1] = 0x02;
            let mask = MAGIC_COOKIE.iter().chain(transaction);
            for (i, (byte, m)) in ip.octets().iter().zip(mask).enumerate() {
                value[4 + i] = byte ^ m;
            }
            20
        }
    };
    push_attribute(out, ATTR_XOR_MAPPED_ADDRESS, &value[..len]);
}

fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// Sets the header's length so the message ends at `total`.
fn set_length(out: &mut [u8], total: usize) {
    let length = (total - HEADER_LEN) as u16;
    out[2..4].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const PWD: &str = "nodepassword0123456789ab";

    fn credentials() -> IceCredentials {
        IceCredentials::new("ours", PWD, "theirs")
    }

    /// A check as a browser writes one, signed with `pwd`.
    fn check(username: &str, pwd: &str, nominate: bool) -> Vec<u8> {
        let mut m = Vec::new();
        write_check(&mut m, &[7; 12], username, pwd, 42, nominate);
        m
    }

    #[test]
    fn a_signed_check_verifies_and_says_whether_it_nominates() {
        let plain = verify_check(&check("ours:theirs", PWD, false), &credentials()).unwrap();
        assert!(!plain.nominated);
        assert_eq!(plain.transaction, [7; 12]);
        let nominating = verify_check(&check("ours:theirs", PWD, true), &credentials()).unwrap();
        assert!(nominating.nominated);
    }

    #[test]
    fn forged_or_misaddressed_checks_are_refused() {
        let creds = credentials();
        let wrong_pwd = check("ours:theirs", "someoneelse", false);
        assert_eq!(
            verify_check(&wrong_pwd, &creds),
            Err(StunError::BadIntegrity)
        );
        let other_call = check("other:theirs", PWD, false);
        assert_eq!(
            verify_check(&other_call, &creds),
            Err(StunError::WrongUsername)
        );
        let mut flipped = check("ours:theirs", PWD, true);
        flipped[26] ^= 1;
        assert!(verify_check(&flipped, &creds).is_err());
        let mut response = check("ours:theirs", PWD, false);
        response[0] = 0x01;
        assert_eq!(
            verify_check(&response, &creds),
            Err(StunError::NotBindingRequest)
        );
    }

    #[test]
    fn the_response_is_signed_and_maps_the_address() {
        let creds = credentials();
        let request = verify_check(&check("ours:theirs", PWD, false), &creds).unwrap();
        let mut response = Vec::new();
        write_success(
            &mut response,
            &request,
            "192.0.2.7:1".parse().unwrap(),
            &creds,
        );
        assert!(is_success_for(&response, &[7; 12]));
        assert!(!is_success_for(&response, &[8; 12]));
        assert!(!is_success_for(&check("ours:theirs", PWD, false), &[7; 12]));
        for from in ["192.0.2.7:40000", "[2001:db8::5]:9"] {
            let from: SocketAddr = from.parse().unwrap();
            let mut out = Vec::new();
            write_success(&mut out, &request, from, &creds);
            assert_eq!(&out[..2], &BINDING_SUCCESS.to_be_bytes());
            assert_eq!(
                out.len(),
                HEADER_LEN + usize::from(u16::from_be_bytes([out[2], out[3]]))
            );
            let fp_at = out.len() - 8;
            let crc = CRC32.checksum(&out[..fp_at]) ^ FINGERPRINT_XOR;
            assert_eq!(&out[fp_at + 4..], &crc.to_be_bytes());
            // Verifying our own response with the request verifier's logic:
            // same HMAC rules, so flip the type to a request first.
            let mut as_request = out[..fp_at].to_vec();
            as_request[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
            let mi_at = as_request.len() - 24;
            let (_, tag) = attribute_at(&as_request, mi_at).unwrap();
            let mut signed = out[..mi_at].to_vec();
            set_length(&mut signed, mi_at + 24);
            let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, PWD.as_bytes());
            assert_eq!(hmac::sign(&key, &signed).as_ref(), tag);
            let (kind, mapped) = attribute_at(&out, HEADER_LEN).unwrap();
            assert_eq!(kind, ATTR_XOR_MAPPED_ADDRESS);
            assert_eq!(
                u16::from_be_bytes([mapped[2], mapped[3]]) ^ 0x2112,
                from.port()
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let creds = credentials();
        let good = check("ours:theirs", PWD, true);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = good.clone();
            bytes.truncate((state as usize) % (good.len() + 1));
            if round % 2 == 0 && !bytes.is_empty() {
                let at = (state >> 20) as usize % bytes.len();
                bytes[at] = (state >> 40) as u8;
            }
            let _ = verify_check(&bytes, &creds);
        }
    }
}
