//! [`DtlsHandshake`]: one call's DTLS-SRTP handshake (RFC 5763, 5764), on
//! the webrtc-rs project's sans-IO DTLS (`rtc::dtls`).
//!
//! The node is the DTLS server: the browser is the client (our answer says
//! `a=setup:passive`). Its certificate must hash to the sha-256
//! fingerprint of its offer (RFC 8122 §5), or the handshake fails. The
//! client side ([`DtlsHandshake::client`]) is for clients that play the
//! browser (the load tool); it checks the node's certificate the same
//! way. Once the handshake completes, the SRTP master keys are exported
//! (RFC 5764 §4.2) and the association is kept only to answer a repeated
//! final flight and to send close_notify; media never passes through it.
//!
//! Only the two profiles [`crate::media::srtp`] implements are offered:
//! AEAD_AES_128_GCM (preferred) and AES_CM_128_HMAC_SHA1_80.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;

use crate::media::srtp::{SrtpMasterKey, SrtpProfile, keys_from_dtls};

/// RFC 5764 §4.2.
const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// The endpoint keys associations by address; one call has one, whichever
/// of the browser's checked addresses its records come from.
const ASSOCIATION: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);
/// First retransmission of our flight (RFC 6347 §4.2.4.1 suggests 1 s;
/// browsers on a lossy path connect sooner with a shorter first wait).
const FLIGHT_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("dtls configuration: {0}")]
    Config(String),
    #[error("dtls: {0}")]
    Handshake(String),
    #[error("dtls negotiated an srtp profile this node does not implement")]
    Profile,
}

/// What a datagram did to the association.
#[derive(Debug)]
pub enum DtlsProgress {
    /// Nothing the session must act on.
    Pending,
    /// The handshake completed: SRTP keys for (sending, receiving).
    Keys(SrtpMasterKey, SrtpMasterKey),
    /// The browser closed the association (close_notify).
    Closed,
}

/// See the module documentation.
pub struct DtlsHandshake {
    endpoint: Endpoint,
    completed: bool,
    /// The endpoint's retransmission deadline, read again after each call
    /// that can move it: asking the endpoint walks its association's
    /// state, and the session asks after every datagram.
    deadline: Option<Instant>,
}

impl DtlsHandshake {
    /// A server presenting `certificate`, accepting only a client whose
    /// certificate hashes to `remote_fingerprint` (sha-256).
    pub fn server(
        certificate: &Certificate,
        remote_fingerprint: Vec<u8>,
        local: SocketAddr,
    ) -> Result<Self, DtlsError> {
        let config = config(certificate, remote_fingerprint, false)?;
        Ok(Self {
            endpoint: Endpoint::new(local, TransportProtocol::UDP, Some(config)),
            completed: false,
            deadline: None,
        })
    }

    /// A client presenting `certificate` to a server whose certificate
    /// must hash to `remote_fingerprint`; its first flight is queued for
    /// [`Self::poll_transmit`].
    pub fn client(
        now: Instant,
        certificate: &Certificate,
        remote_fingerprint: Vec<u8>,
        local: SocketAddr,
    ) -> Result<Self, DtlsError> {
        let config = config(certificate, remote_fingerprint, true)?;
        let mut endpoint = Endpoint::new(local, TransportProtocol::UDP, None);
        endpoint
            .connect(now, ASSOCIATION, config, None)
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let deadline = endpoint.poll_timeout(&ASSOCIATION);
        Ok(Self {
            endpoint,
            completed: false,
            deadline,
        })
    }

    /// Feeds one DTLS record datagram. Records to send are queued for
    /// [`Self::poll_transmit`].
    pub fn handle_record(
        &mut self,
        now: Instant,
        record: BytesMut,
    ) -> Result<DtlsProgress, DtlsError> {
        let events = self.endpoint.read(now, ASSOCIATION, None, record);
        self.refresh_deadline();
        let events = events.map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let mut progress = DtlsProgress::Pending;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete if !self.completed => {
                    self.completed = true;
                    let (local, remote) = self.export_keys()?;
                    progress = DtlsProgress::Keys(local, remote);
                }
                EndpointEvent::PeerClosed => return Ok(DtlsProgress::Closed),
                _ => {}
            }
        }
        Ok(progress)
    }

    fn export_keys(&self) -> Result<(SrtpMasterKey, SrtpMasterKey), DtlsError> {
        let state = self
            .endpoint
            .get_connection_state(ASSOCIATION)
            .ok_or_else(|| DtlsError::Handshake("association is gone".to_owned()))?;
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::Aes128CmHmacSha1_80,
            _ => return Err(DtlsError::Profile),
        };
        let material = state
            .export_keying_material(EXPORTER_LABEL, &[], profile.keying_material_len())
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        keys_from_dtls(profile, material.as_ref(), state.is_client())
            .map_err(|_| DtlsError::Profile)
    }

    /// The next record datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        let record = self.endpoint.poll_transmit()?;
        self.refresh_deadline();
        Some(record.message)
    }

    /// When our flight must be sent again, during the handshake.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn refresh_deadline(&mut self) {
        self.deadline = self.endpoint.poll_timeout(&ASSOCIATION);
    }

    /// Retransmits our flight when due. Err once retransmissions ran out.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.deadline.is_none() {
            return Ok(());
        }
        let handled = self.endpoint.handle_timeout(ASSOCIATION, now);
        self.refresh_deadline();
        handled.map_err(|e| DtlsError::Handshake(e.to_string()))
    }

    pub fn is_completed(&self) -> bool {
        self.completed
    }

    /// Queues close_notify (when an association exists) and forgets it.
    pub fn close(&mut self, now: Instant) {
        let _ = self.endpoint.stop(now, ASSOCIATION);
        self.refresh_deadline();
    }
}

/// The handshake's configuration: only the two SRTP profiles we implement,
/// extended master secret required, and the peer's certificate checked
/// against the fingerprint its description gave.
fn config(
    certificate: &Certificate,
    remote_fingerprint: Vec<u8>,
    is_client: bool,
) -> Result<Arc<HandshakeConfig>, DtlsError> {
    let config_error = |e: rtc::shared::error::Error| DtlsError::Config(e.to_string());
    let provider = rtc::crypto::default_provider().map_err(|e| DtlsError::Config(e.to_string()))?;
    let verify: rtc::dtls::config::VerifyPeerCertificateFn =
        Arc::new(move |chain: &[Vec<u8>], _| {
            let leaf = chain
                .first()
                .ok_or(rtc::shared::error::Error::ErrNonCertificate)?;
            let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
            match digest.as_ref() == remote_fingerprint.as_slice() {
                true => Ok(()),
                false => Err(rtc::shared::error::Error::ErrNoMatchingCertificateFingerprint),
            }
        });
    let builder = match is_client {
        true => ConfigBuilder::default(),
        false => ConfigBuilder::default().with_client_auth(ClientAuthType::RequireAnyClientCert),
    };
    let config = builder
        .with_crypto_provider(provider)
        .with_certificates(vec![certificate.clone()])
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(Some(verify))
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_flight_interval(FLIGHT_INTERVAL)
        .build(is_client, None)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// `AB:CD:...`: the sha-256 fingerprint of `certificate` for the answer.
pub fn fingerprint_of(certificate: &Certificate) -> String {
    let leaf = certificate
        .certificate
        .first()
        .map(|der| der.as_ref())
        .unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::srtp::{SrtpReceiver, SrtpSender};

    /// Keys a side exported: (sending, receiving).
    type Exported = Option<(SrtpMasterKey, SrtpMasterKey)>;

    fn certificate() -> Certificate {
        crate::webrtc::generate_certificate()
            .unwrap()
            .dtls_certificate
    }

    fn fingerprint_bytes(certificate: &Certificate) -> Vec<u8> {
        fingerprint_of(certificate)
            .split(':')
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    }

    /// A handshake between a server presenting `node` that expects
    /// `browser`, and a client presenting `client_cert` that expects
    /// `expected_node`, run until neither side has a record to send.
    fn run(
        node: &Certificate,
        browser: &Certificate,
        client_cert: &Certificate,
        expected_node: &Certificate,
    ) -> (bool, Exported, Exported) {
        let now = Instant::now();
        let local = SocketAddr::from(([127, 0, 0, 1], 5000));
        let mut server = DtlsHandshake::server(node, fingerprint_bytes(browser), local).unwrap();
        let mut client =
            DtlsHandshake::client(now, client_cert, fingerprint_bytes(expected_node), local)
                .unwrap();
        let (mut client_keys, mut server_keys) = (None, None);
        for _ in 0..20 {
            let mut moved = false;
            while let Some(record) = client.poll_transmit() {
                moved = true;
                if let Ok(DtlsProgress::Keys(ours, theirs)) = server.handle_record(now, record) {
                    server_keys = Some((ours, theirs));
                }
            }
            while let Some(record) = server.poll_transmit() {
                moved = true;
                if let Ok(DtlsProgress::Keys(ours, theirs)) = client.handle_record(now, record) {
                    client_keys = Some((ours, theirs));
                }
            }
            if !moved {
                break;
            }
        }
        let completed = client.is_completed() && server.is_completed();
        (completed, client_keys, server_keys)
    }

    fn rtp_packet() -> Vec<u8> {
        let mut packet = vec![0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0xca, 0xfe, 0xba, 0xbe];
        packet.extend_from_slice(&[0x55; 160]);
        packet
    }

    #[test]
    fn client_and_server_export_each_others_keys() {
        let (node, browser) = (certificate(), certificate());
        let (completed, client_keys, server_keys) = run(&node, &browser, &browser, &node);
        assert!(completed);
        let (client_send, client_receive) = client_keys.expect("the client got keys");
        let (server_send, server_receive) = server_keys.expect("the server got keys");
        for (send, receive) in [
            (&client_send, &server_receive),
            (&server_send, &client_receive),
        ] {
            let mut packet = rtp_packet();
            SrtpSender::new(send).protect_rtp(&mut packet).unwrap();
            let len = SrtpReceiver::new(receive)
                .unprotect_rtp(&mut packet)
                .unwrap();
            assert_eq!(packet[..len], rtp_packet()[..]);
        }
    }

    #[test]
    fn a_peer_whose_certificate_is_not_the_described_one_gets_no_keys() {
        let (node, browser, stranger) = (certificate(), certificate(), certificate());
        // The node expects the browser's certificate; a stranger connects.
        let (_, _, server_keys) = run(&node, &browser, &stranger, &node);
        assert!(server_keys.is_none());
        // The client expects another node than the one that answers.
        let (_, client_keys, _) = run(&node, &browser, &browser, &stranger);
        assert!(client_keys.is_none());
    }
}
