//! Tells apart the datagrams arriving on the shared browser port (RFC 7983)
//! and reads the one STUN field the port routes new peers by.
//!
//! Pure functions over untrusted bytes: bounds-checked, never panic.

/// RFC 5389 §6: the fixed value in every STUN message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;

/// RFC 7983 §7: the first byte says which protocol a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP/SRTCP after the handshake).
    Rtp,
    Other,
}

pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

/// The local (our) ICE username fragment a connectivity check is addressed
/// to: the part of USERNAME before the colon (RFC 8445 §7.2.2). `None` for
/// anything that is not a well-formed STUN message carrying one.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    let header = datagram.get(..STUN_HEADER)?;
    if header.get(4..8)? != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = datagram.get(STUN_HEADER..STUN_HEADER + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(local, _)| local);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, so the parser has to skip one.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        attrs.resize(attrs.len().div_ceil(4) * 4, 0);
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        message.extend_from_slice(&MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&attrs);
        message
    }

    #[test]
    fn the_local_fragment_comes_from_username() {
        let request = binding_request("ourfrag1:theirs");
        assert_eq!(classify(&request), PacketClass::Stun);
        assert_eq!(local_ufrag(&request), Some("ourfrag1"));
    }

    #[test]
    fn first_bytes_select_the_protocol() {
        assert_eq!(classify(&[22, 254, 253]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80, 0]), PacketClass::Rtp);
        assert_eq!(classify(&[0xff]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn malformed_stun_yields_nothing() {
        let good = binding_request("a:b");
        let mut bad_cookie = good.clone();
        bad_cookie[4] = 0;
        let mut long_length = good.clone();
        long_length[3] = 0xff;
        let mut long_attr = good.clone();
        long_attr[STUN_HEADER + 10] = 0xff;
        for bad in [
            bad_cookie,
            long_length,
            long_attr,
            good[..25].to_vec(),
            binding_request("nocolon"),
            vec![0; 3],
        ] {
            assert_eq!(local_ufrag(&bad), None);
        }
    }
}
