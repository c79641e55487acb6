//! Packet-level tests: RFC 7714 vectors, interop with webrtc-srtp, replay, tampering,
//! unauthenticated floods, malformed input, allocation, and an ignored throughput print.

use super::cipher::SessionCipher;
use super::context::{SRTCP_INDEX_LIMIT, parse_rtcp_ssrc, parse_rtp_header};
use super::key::GCM_TAG_LEN;
use super::*;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

const PROFILES: [SrtpProfile; 2] = [SrtpProfile::Aes128CmHmacSha1_80, SrtpProfile::AeadAes128Gcm];

fn unhex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    hex::decode(digits).expect("test hex")
}

/// xorshift64: enough randomness for fuzzing without the rand crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        buf.iter_mut().for_each(|b| *b = self.next() as u8);
    }
}

fn master(profile: SrtpProfile, seed: u8) -> SrtpMasterKey {
    let key: Vec<u8> = (0..16)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i))
        .collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8)
        .map(|i| seed ^ (0x40 + i))
        .collect();
    SrtpMasterKey::new(profile, &key, &salt).unwrap()
}

fn theirs(profile: SrtpProfile, seed: u8) -> Context {
    let m = master(profile, seed);
    let their_profile = match profile {
        SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    Context::new(&m.key, m.salt(), their_profile, None, None).unwrap()
}

/// An RTP packet: `csrcs` CSRCs, optionally a one-byte-header extension (RFC 8285).
fn rtp(seq: u16, ssrc: u32, payload_len: usize, csrcs: u8, extension: bool) -> Vec<u8> {
    let mut p = vec![0x80 | csrcs | if extension { 0x10 } else { 0 }, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for c in 0..u32::from(csrcs) {
        p.extend_from_slice(&(0xc5c0_0000 + c).to_be_bytes());
    }
    if extension {
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
    }
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// An RTCP sender report with no report blocks (28 bytes).
fn rtcp_sr(ssrc: u32, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[fill; 20]);
    p
}

fn protect(sender: &mut SrtpSender, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    sender.protect_rtp(&mut buf).unwrap();
    buf
}

fn unprotect(receiver: &mut SrtpReceiver, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = receiver.unprotect_rtp(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

const RFC7714_KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// "Quid pro quo"
const RFC7714_SALT: [u8; 12] = *b"Quid pro quo";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
                            deadbeef deadbeef deadbeef deadbeef deadbeef";

fn rfc7714_cipher() -> SessionCipher {
    SessionCipher::gcm_from_session_keys(&RFC7714_KEY, RFC7714_SALT)
}

#[test]
fn rfc7714_16_1_1_srtp_vector() {
    let plain = unhex(
        "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
         69736120 696e2070 61727465 73207472 6573",
    );
    let expected = unhex(
        "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
         0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
    );
    let mut sender = SrtpSender::with_cipher(SrtpProfile::AeadAes128Gcm, rfc7714_cipher(), 0);
    assert_eq!(protect(&mut sender, &plain), expected);
    let mut receiver = SrtpReceiver::with_cipher(SrtpProfile::AeadAes128Gcm, rfc7714_cipher());
    assert_eq!(unprotect(&mut receiver, &expected).unwrap(), plain);
}

#[test]
fn rfc7714_17_1_srtcp_vector() {
    let plain = unhex(RFC7714_RTCP);
    let expected = unhex(
        "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
         c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
         45d9eade 800005d4",
    );
    let mut sender = SrtpSender::with_cipher(SrtpProfile::AeadAes128Gcm, rfc7714_cipher(), 0x5d4);
    let mut buf = plain.clone();
    sender.protect_rtcp(&mut buf).unwrap();
    assert_eq!(buf, expected);
    let mut receiver = SrtpReceiver::with_cipher(SrtpProfile::AeadAes128Gcm, rfc7714_cipher());
    let len = receiver.unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);
}

#[test]
fn rfc7714_17_3_unencrypted_srtcp_vector() {
    let plain = unhex(RFC7714_RTCP);
    let mut buf = plain.clone();
    buf.extend(unhex("841dd968 3dd78ec9 2ae58790 125f62b3 000005d4"));
    let mut receiver = SrtpReceiver::with_cipher(SrtpProfile::AeadAes128Gcm, rfc7714_cipher());
    let len = receiver.unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);
}

/// Sequence numbers crossing the 16-bit wrap so the ROC moves, with a few header shapes.
fn wrap_sequence() -> impl Iterator<Item = (u16, u8, bool)> {
    (65530u16..=65535)
        .chain(0..=5)
        .enumerate()
        .map(|(i, seq)| (seq, (i % 3 == 1) as u8, i % 4 == 2))
}

#[test]
fn interop_srtp_across_rollover_both_directions() {
    for profile in PROFILES {
        let (mut our_tx, mut our_rx) = (
            SrtpSender::new(&master(profile, 1)),
            SrtpReceiver::new(&master(profile, 1)),
        );
        let (mut their_tx, mut their_rx) = (theirs(profile, 1), theirs(profile, 1));
        for (seq, csrcs, ext) in wrap_sequence() {
            let plain = rtp(seq, 0x1234_5678, 160, csrcs, ext);
            let ours = protect(&mut our_tx, &plain);
            assert_eq!(
                their_rx.decrypt_rtp(&ours).unwrap()[..],
                plain[..],
                "{profile:?} seq {seq}"
            );
            let their = their_tx.encrypt_rtp(&plain).unwrap();
            assert_eq!(
                their[..],
                ours[..],
                "{profile:?} identical output at seq {seq}"
            );
            assert_eq!(
                unprotect(&mut our_rx, &their).unwrap(),
                plain,
                "{profile:?} seq {seq}"
            );
        }
    }
}

#[test]
fn interop_srtcp_both_directions() {
    for profile in PROFILES {
        let (mut our_tx, mut our_rx) = (
            SrtpSender::new(&master(profile, 2)),
            SrtpReceiver::new(&master(profile, 2)),
        );
        let (mut their_tx, mut their_rx) = (theirs(profile, 2), theirs(profile, 2));
        for round in 0..5u8 {
            let plain = rtcp_sr(0xabcd_0001, round);
            let mut ours = plain.clone();
            our_tx.protect_rtcp(&mut ours).unwrap();
            assert_eq!(ours.len(), plain.len() + profile.rtcp_overhead());
            assert_eq!(
                their_rx.decrypt_rtcp(&ours).unwrap()[..],
                plain[..],
                "{profile:?}"
            );
            let mut their = their_tx.encrypt_rtcp(&plain).unwrap().to_vec();
            let len = our_rx.unprotect_rtcp(&mut their).unwrap();
            assert_eq!(their[..len], plain[..], "{profile:?}");
        }
    }
}

#[test]
fn replayed_old_and_reordered_packets() {
    for profile in PROFILES {
        let mut tx = SrtpSender::new(&master(profile, 3));
        let mut rx = SrtpReceiver::new(&master(profile, 3));
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|s| protect(&mut tx, &rtp(s, 7, 20, 0, false)))
            .collect();
        assert!(unprotect(&mut rx, &packets[0]).is_ok());
        assert_eq!(
            unprotect(&mut rx, &packets[0]),
            Err(SrtpError::ReplayedPacket)
        );
        assert!(unprotect(&mut rx, &packets[299]).is_ok());
        assert_eq!(
            unprotect(&mut rx, &packets[100]),
            Err(SrtpError::ReplayedPacket),
            "outside window"
        );
        assert!(
            unprotect(&mut rx, &packets[250]).is_ok(),
            "reordered inside window"
        );
        assert_eq!(
            unprotect(&mut rx, &packets[250]),
            Err(SrtpError::ReplayedPacket)
        );

        let mut rtcp = rtcp_sr(7, 0);
        tx.protect_rtcp(&mut rtcp).unwrap();
        assert!(rx.unprotect_rtcp(&mut rtcp.clone()).is_ok());
        assert_eq!(rx.unprotect_rtcp(&mut rtcp), Err(SrtpError::ReplayedPacket));
    }
}

/// Flips one bit in every byte in turn: each forgery fails and moves nothing.
#[test]
fn tampering_any_byte_fails_and_leaves_state_alone() {
    for profile in PROFILES {
        let mut tx = SrtpSender::new(&master(profile, 4));
        let mut rx = SrtpReceiver::new(&master(profile, 4));
        // A long payload keeps every flipped header still parseable (extension length
        // 1 -> 257 words fits), so each forgery reaches the tag check.
        let first = protect(&mut tx, &rtp(10, 9, 1100, 1, true));
        unprotect(&mut rx, &first).unwrap();
        // Seq 12: flipping its low bit gives 13, not the already seen 10 (a replay).
        let plain = rtp(12, 9, 1100, 1, true);
        let next = protect(&mut tx, &plain);
        for i in 0..next.len() {
            let mut forged = next.clone();
            forged[i] ^= 0x01;
            assert_eq!(
                unprotect(&mut rx, &forged),
                Err(SrtpError::AuthenticationFailed),
                "{profile:?} byte {i}"
            );
        }
        assert_eq!(unprotect(&mut rx, &next).unwrap(), plain, "{profile:?}");

        let mut rtcp = rtcp_sr(9, 1);
        tx.protect_rtcp(&mut rtcp).unwrap();
        for i in 0..rtcp.len() {
            let mut forged = rtcp.clone();
            forged[i] ^= 0x01;
            assert_eq!(
                rx.unprotect_rtcp(&mut forged),
                Err(SrtpError::AuthenticationFailed),
                "{profile:?} byte {i}"
            );
        }
        assert!(rx.unprotect_rtcp(&mut rtcp).is_ok());
        assert_eq!(rx.stream_count(), 1);
    }
}

#[test]
fn random_ssrc_flood_with_bad_tags_creates_no_state() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for profile in PROFILES {
        let mut rx = SrtpReceiver::new(&master(profile, 5));
        let mut wrong_key = SrtpSender::new(&master(profile, 6));
        for seq in 0..2000 {
            let ssrc = rng.next() as u32;
            // One sender stream, relabelled: the SSRC is authenticated data, so it still fails.
            let mut forged = protect(&mut wrong_key, &rtp(seq, 0, 50, 0, false));
            forged[8..12].copy_from_slice(&ssrc.to_be_bytes());
            assert_eq!(
                rx.unprotect_rtp(&mut forged),
                Err(SrtpError::AuthenticationFailed)
            );
            for e_flag in [0x80, 0x00] {
                let mut forged = rtcp_sr(ssrc, 3);
                let trailer_at = match profile {
                    SrtpProfile::Aes128CmHmacSha1_80 => forged.len(),
                    SrtpProfile::AeadAes128Gcm => forged.len() + GCM_TAG_LEN,
                };
                forged.resize(forged.len() + profile.rtcp_overhead(), 0);
                rng.fill(&mut forged[28..]);
                forged[trailer_at] = (forged[trailer_at] & 0x7f) | e_flag;
                assert_eq!(
                    rx.unprotect_rtcp(&mut forged),
                    Err(SrtpError::AuthenticationFailed)
                );
            }
        }
        assert_eq!(rx.stream_count(), 0, "{profile:?}");
        // Legitimate streams: a ninth authenticated SSRC evicts, the count stays bounded.
        for ssrc in 0..=MAX_STREAMS as u32 {
            unprotect(
                &mut rx,
                &protect(
                    &mut SrtpSender::new(&master(profile, 5)),
                    &rtp(1, ssrc, 10, 0, false),
                ),
            )
            .unwrap();
        }
        assert_eq!(rx.stream_count(), MAX_STREAMS);
    }
}

/// Random and truncated buffers through every entry point: errors, never panics.
#[test]
fn malformed_input_never_panics() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for profile in PROFILES {
        let mut tx = SrtpSender::new(&master(profile, 7));
        let mut rx = SrtpReceiver::new(&master(profile, 7));
        let valid = protect(&mut tx, &rtp(1, 1, 100, 2, true));
        for round in 0..5000 {
            let len = (rng.next() % 96) as usize;
            let mut buf = vec![0u8; len];
            rng.fill(&mut buf);
            if round % 2 == 0 && !buf.is_empty() {
                buf[0] = 0x80 | (buf[0] & 0x3f); // version 2, so parsing goes deeper
            }
            let _ = rx.unprotect_rtp(&mut buf.clone());
            let _ = rx.unprotect_rtcp(&mut buf.clone());
            let _ = tx.protect_rtcp(&mut buf.clone());
            let _ = SrtpSender::new(&master(profile, 7)).protect_rtp(&mut buf);
            let cut = (rng.next() as usize) % valid.len(); // the whole packet would verify
            let _ = rx.unprotect_rtp(&mut valid[..cut].to_vec());
            let _ = rx.unprotect_rtcp(&mut valid[..cut].to_vec());
        }
        assert_eq!(rx.stream_count(), 0);
    }
}

#[test]
fn header_parsing_bounds() {
    assert_eq!(
        parse_rtp_header(&[0x80; 11]).err(),
        Some(SrtpError::PacketTooShort)
    );
    assert_eq!(parse_rtp_header(&[0x40; 12]).err(), Some(SrtpError::NotRtp));
    let mut p = rtp(1, 1, 0, 15, true);
    assert_eq!(parse_rtp_header(&p).unwrap().len, 12 + 60 + 8);
    p[12 + 60 + 3] = 2; // extension claims two words, only one present
    assert_eq!(parse_rtp_header(&p).err(), Some(SrtpError::PacketTooShort));
    assert_eq!(
        parse_rtcp_ssrc(&[0x80; 7]).err(),
        Some(SrtpError::PacketTooShort)
    );
    assert_eq!(parse_rtcp_ssrc(&[0x00; 8]).err(), Some(SrtpError::NotRtcp));
}

#[test]
fn protect_reuses_spare_capacity() {
    for profile in PROFILES {
        let mut tx = SrtpSender::new(&master(profile, 8));
        let plain = rtp(1, 1, 160, 0, false);
        let mut buf = Vec::with_capacity(plain.len() + profile.rtcp_overhead());
        buf.extend_from_slice(&plain);
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        tx.protect_rtp(&mut buf).unwrap();
        assert_eq!(
            (buf.as_ptr(), buf.capacity(), buf.len()),
            (ptr, cap, plain.len() + profile.rtp_overhead())
        );
        buf.clear();
        buf.extend_from_slice(&rtcp_sr(1, 0));
        tx.protect_rtcp(&mut buf).unwrap();
        assert_eq!((buf.as_ptr(), buf.capacity()), (ptr, cap));
    }
}

#[test]
fn srtcp_index_exhaustion_is_an_error() {
    let m = master(SrtpProfile::Aes128CmHmacSha1_80, 9);
    let mut tx = SrtpSender::with_cipher(m.profile, SessionCipher::new(&m), SRTCP_INDEX_LIMIT - 1);
    tx.protect_rtcp(&mut rtcp_sr(1, 0)).unwrap();
    assert_eq!(
        tx.protect_rtcp(&mut rtcp_sr(1, 0)),
        Err(SrtpError::SrtcpIndexExhausted)
    );
}

#[test]
fn dtls_keying_material_split() {
    for profile in PROFILES {
        let material: Vec<u8> = (0..profile.keying_material_len() as u8).collect();
        let (k, s) = (profile.master_key_len(), profile.master_salt_len());
        let (client_key, server_key) = (&material[..k], &material[k..2 * k]);
        let (client_salt, server_salt) = (&material[2 * k..2 * k + s], &material[2 * k + s..]);
        let (local, remote) = keys_from_dtls(profile, &material, true).unwrap();
        assert_eq!((&local.key[..], local.salt()), (client_key, client_salt));
        assert_eq!((&remote.key[..], remote.salt()), (server_key, server_salt));
        let (local, remote) = keys_from_dtls(profile, &material, false).unwrap();
        assert_eq!((&local.key[..], local.salt()), (server_key, server_salt));
        assert_eq!((&remote.key[..], remote.salt()), (client_key, client_salt));
        assert_eq!(format!("{local:?}"), "<redacted>");
        assert!(keys_from_dtls(profile, &material[1..], true).is_err());
    }
    assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.keying_material_len(), 60);
    assert_eq!(SrtpProfile::AeadAes128Gcm.keying_material_len(), 56);
    assert_eq!(
        SrtpMasterKey::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).err(),
        Some(SrtpError::BadKeyLength)
    );
}

/// `cargo test --release -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    const ROUNDS: u32 = 200_000;
    for profile in PROFILES {
        let mut tx = SrtpSender::new(&master(profile, 10));
        let mut rx = SrtpReceiver::new(&master(profile, 10));
        let mut template = rtp(0, 1, 160, 0, false);
        let mut buf = Vec::with_capacity(256);
        let start = std::time::Instant::now();
        for i in 0..ROUNDS {
            buf.clear();
            buf.extend_from_slice(&template);
            buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            tx.protect_rtp(&mut buf).unwrap();
            assert_eq!(rx.unprotect_rtp(&mut buf).unwrap(), 172);
        }
        let ours = start.elapsed().as_nanos() / u128::from(ROUNDS);

        let (mut their_tx, mut their_rx) = (theirs(profile, 10), theirs(profile, 10));
        let start = std::time::Instant::now();
        for i in 0..ROUNDS {
            template[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            let protected = their_tx.encrypt_rtp(&template).unwrap();
            assert_eq!(their_rx.decrypt_rtp(&protected).unwrap().len(), 172);
        }
        let their = start.elapsed().as_nanos() / u128::from(ROUNDS);
        println!(
            "{profile:?}: ours {ours} ns, webrtc-srtp {their} ns per protect+unprotect (172 B)"
        );
    }
}
