//! Endpoints on real loopback sockets: two endpoints talking, a raw socket
//! playing a trunk or an attacker.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

use super::*;
use crate::media::rtcp;
use crate::media::srtp::SrtpKeyMaterial;
use crate::media::testing::{Noise, remote_at, rtp_packet};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PATIENCE: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(300);

/// Each test gets its own range so tests can run in parallel.
fn allocator(base: u16) -> PortAllocator {
    PortAllocator::new(base, base + 39).unwrap()
}

fn bind(alloc: &PortAllocator) -> (RtpEndpoint, Receiver<MediaEvent>) {
    let mut endpoint = RtpEndpoint::bind(alloc, LOOPBACK).unwrap();
    let events = endpoint.take_events().unwrap();
    (endpoint, events)
}

/// Two endpoints pointed at each other.
fn pair(
    alloc: &PortAllocator,
) -> (
    (RtpEndpoint, Receiver<MediaEvent>),
    (RtpEndpoint, Receiver<MediaEvent>),
) {
    let (a, a_rx) = bind(alloc);
    let (b, b_rx) = bind(alloc);
    a.set_remote(remote_at(b.local_rtp_addr())).unwrap();
    b.set_remote(remote_at(a.local_rtp_addr())).unwrap();
    ((a, a_rx), (b, b_rx))
}

async fn next_event(rx: &mut Receiver<MediaEvent>) -> MediaEvent {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("no event in time")
        .expect("channel closed")
}

async fn next_frame(rx: &mut Receiver<MediaEvent>) -> MediaFrame {
    loop {
        if let MediaEvent::Frame(frame) = next_event(rx).await {
            return frame;
        }
    }
}

async fn assert_quiet(rx: &mut Receiver<MediaEvent>) {
    assert!(timeout(QUIET, rx.recv()).await.is_err(), "unexpected event");
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn audio_flows_both_ways() {
    let alloc = allocator(44_000);
    let ((a, mut a_rx), (b, mut b_rx)) = pair(&alloc);
    for i in 0..5u8 {
        a.send_audio(&[i; 160], 160).unwrap();
        b.send_audio(&[100 + i; 160], 160).unwrap();
    }
    for i in 0..5u8 {
        let at_b = next_frame(&mut b_rx).await;
        assert_eq!((at_b.payload_type, &at_b.payload[..]), (0, &[i; 160][..]));
        assert_eq!(
            &next_frame(&mut a_rx).await.payload[..],
            &[100 + i; 160][..]
        );
    }
    let stats = a.stats();
    assert_eq!((stats.packets_sent, stats.bytes_sent), (5, 5 * 172));
    assert_eq!((stats.packets_received, stats.bytes_received), (5, 5 * 172));
    assert!(stats.latched);
    assert_eq!(stats.dropped.total(), 0);
}

#[tokio::test]
async fn dtmf_end_to_end() {
    let alloc = allocator(44_100);
    let ((a, _a_rx), (_b, mut b_rx)) = pair(&alloc);
    a.send_dtmf("12#").unwrap();
    let mut digits = String::new();
    while digits.len() < 3 {
        if let MediaEvent::Dtmf { digit: d, .. } = next_event(&mut b_rx).await {
            digits.push(d);
        }
    }
    assert_eq!(digits, "12#");
    assert_quiet(&mut b_rx).await;
    assert_eq!(
        a.stats().packets_sent,
        15,
        "start, update, three ends per digit"
    );
    assert!(matches!(a.send_dtmf("9x"), Err(MediaError::DtmfDigit('x'))));
}

#[tokio::test]
async fn dtmf_needs_negotiation() {
    let alloc = allocator(44_150);
    let (a, _rx) = bind(&alloc);
    a.set_remote(RemoteMedia {
        dtmf_pt: None,
        ..remote_at(a.local_rtp_addr())
    })
    .unwrap();
    assert!(matches!(
        a.send_dtmf("1"),
        Err(MediaError::DtmfNotNegotiated)
    ));
}

#[tokio::test]
async fn srtp_both_ways_and_ciphertext_on_the_wire() {
    let alloc = allocator(44_200);
    let (a, mut a_rx) = bind(&alloc);
    let (b, mut b_rx) = bind(&alloc);
    let (ka, kb) = (SrtpKeyMaterial::generate(), SrtpKeyMaterial::generate());
    let secure = |to: SocketAddr, ours: &SrtpKeyMaterial, theirs: &SrtpKeyMaterial| RemoteMedia {
        srtp: Some((ours.clone(), theirs.clone())),
        ..remote_at(to)
    };
    a.set_remote(secure(b.local_rtp_addr(), &ka, &kb)).unwrap();
    b.set_remote(secure(a.local_rtp_addr(), &kb, &ka)).unwrap();
    a.send_audio(&[0x55; 160], 160).unwrap();
    assert_eq!(&next_frame(&mut b_rx).await.payload[..], &[0x55; 160][..]);
    b.send_audio(&[0x66; 160], 160).unwrap();
    assert_eq!(&next_frame(&mut a_rx).await.payload[..], &[0x66; 160][..]);
    a.send_dtmf("7").unwrap();
    assert!(matches!(
        next_event(&mut b_rx).await,
        MediaEvent::Dtmf { digit: '7', .. }
    ));

    let sniffer = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    a.set_remote(secure(sniffer.local_addr().unwrap(), &ka, &kb))
        .unwrap();
    a.send_audio(&[0x55; 160], 160).unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = timeout(PATIENCE, sniffer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(len, 172 + 10);
    assert!(
        buf[12..172].iter().filter(|&&b| b == 0x55).count() < 16,
        "payload in the clear"
    );
}

#[tokio::test]
async fn latches_to_the_port_packets_really_come_from() {
    let alloc = allocator(44_300);
    let (a, mut a_rx) = bind(&alloc);
    let (b, mut b_rx) = bind(&alloc);
    // The SDP names a port nobody sends from (a NAT rewrote the source).
    let decoy = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    a.set_remote(remote_at(decoy.local_addr().unwrap()))
        .unwrap();
    b.set_remote(remote_at(a.local_rtp_addr())).unwrap();
    a.send_audio(&[1; 160], 160).unwrap();
    let mut buf = [0u8; 512];
    timeout(PATIENCE, decoy.recv_from(&mut buf))
        .await
        .expect("before latching: the SDP address")
        .unwrap();
    assert!(!a.stats().latched);

    b.send_audio(&[2; 160], 160).unwrap();
    let _ = next_frame(&mut a_rx).await;
    assert!(a.stats().latched);
    a.send_audio(&[3; 160], 160).unwrap();
    assert_eq!(&next_frame(&mut b_rx).await.payload[..], &[3; 160][..]);
    assert!(
        timeout(QUIET, decoy.recv_from(&mut buf)).await.is_err(),
        "after latching: the real source"
    );
}

#[tokio::test]
async fn rtp_source_hijack() {
    let alloc = allocator(44_400);
    let ((a, mut a_rx), (b, mut b_rx)) = pair(&alloc);
    b.send_audio(&[0xb0; 160], 160).unwrap();
    let _ = next_frame(&mut a_rx).await;
    let attacker = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    for seq in 0..50 {
        // Valid-looking RTP, even continuing the real sender's SSRC.
        let forged = rtp_packet(0, 1000 + seq, 0, &[0xee; 160]);
        attacker.send_to(&forged, a.local_rtp_addr()).await.unwrap();
    }
    for _ in 0..5 {
        b.send_audio(&[0xb0; 160], 160).unwrap();
    }
    for _ in 0..5 {
        assert_eq!(next_frame(&mut a_rx).await.payload[0], 0xb0);
    }
    eventually("hijack attempts counted", || {
        a.stats().dropped.unexpected_source == 50
    })
    .await;
    assert_quiet(&mut a_rx).await;
    a.send_audio(&[0xa0; 160], 160).unwrap();
    assert_eq!(
        next_frame(&mut b_rx).await.payload[0],
        0xa0,
        "replies still go to the real peer"
    );
    let mut buf = [0u8; 512];
    assert!(
        timeout(QUIET, attacker.recv_from(&mut buf)).await.is_err(),
        "attacker got media"
    );
}

#[tokio::test]
async fn garbage_on_rtp_port() {
    let alloc = allocator(44_500);
    let (a, mut a_rx) = bind(&alloc);
    let trunk = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let trunk_rtcp = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    a.set_remote(RemoteMedia {
        rtcp: Some(trunk_rtcp.local_addr().unwrap()),
        ..remote_at(trunk.local_addr().unwrap())
    })
    .unwrap();
    let to = a.local_rtp_addr();
    let mut garbage = Noise::new(0x2545_f491);
    for _ in 0..40 {
        let mut noise = garbage.bytes(100);
        noise[0] &= 0x3f; // version 0: never RTP
        noise[1] &= 0x7f; // and never in the RTCP packet-type range
        trunk.send_to(&noise, to).await.unwrap();
    }
    for len in [0usize, 1, 5, 11] {
        trunk.send_to(&[0x80; 11][..len], to).await.unwrap();
    }
    trunk
        .send_to(&rtp_packet(96, 1, 7, &[0; 20]), to)
        .await
        .unwrap();
    let mut report = Vec::new();
    rtcp::write_goodbye(&mut report, Ssrc(7), b"trunk").unwrap();
    trunk.send_to(&report, to).await.unwrap();
    eventually("garbage counted", || a.stats().dropped.total() == 46).await;
    let dropped = a.stats().dropped;
    assert_eq!(
        (
            dropped.not_rtp,
            dropped.malformed,
            dropped.unknown_payload_type,
            dropped.rtcp_on_rtp_port
        ),
        (40, 4, 1, 1)
    );
    assert!(!a.stats().latched, "garbage must not latch");
    for seq in 1..=3 {
        trunk
            .send_to(&rtp_packet(0, seq, 7, &[seq as u8; 160]), to)
            .await
            .unwrap();
    }
    for seq in 1..=3u16 {
        assert_eq!(next_frame(&mut a_rx).await.seq, seq);
    }
    assert!(a.stats().latched);
}

#[tokio::test]
async fn hold_and_unhold_through_set_remote() {
    let alloc = allocator(44_600);
    let ((a, mut a_rx), (b, mut b_rx)) = pair(&alloc);
    let to_b = remote_at(b.local_rtp_addr());
    a.set_remote(RemoteMedia {
        send: false,
        recv: false,
        ..to_b.clone()
    })
    .unwrap();
    a.send_audio(&[1; 160], 160).unwrap();
    assert_quiet(&mut b_rx).await;
    assert_eq!(a.stats().packets_sent, 0);
    b.send_audio(&[2; 160], 160).unwrap();
    eventually("held media counted", || {
        a.stats().dropped.not_receiving == 1
    })
    .await;
    assert_quiet(&mut a_rx).await;

    a.set_remote(to_b).unwrap();
    a.send_audio(&[3; 160], 160).unwrap();
    let frame = next_frame(&mut b_rx).await;
    assert_eq!(frame.payload[0], 3);
    assert!(frame.marker, "first packet after hold starts a talkspurt");
    b.send_audio(&[4; 160], 160).unwrap();
    assert_eq!(next_frame(&mut a_rx).await.payload[0], 4);
}

#[tokio::test]
async fn relayed_sources_become_one_continuous_stream() {
    let alloc = allocator(44_700);
    let ((a, _a_rx), (_b, mut b_rx)) = pair(&alloc);
    let t0 = tokio::time::Instant::now().into_std();
    for (i, seq) in (40_000u16..40_003).enumerate() {
        a.forward_rtp(
            &rtp_packet(111, seq, 0xaaaa, &[1; 80]),
            t0 + Duration::from_millis(20 * i as u64),
        )
        .unwrap();
    }
    // Early media ends; the answered stream arrives with a new SSRC.
    for (i, seq) in (7u16..10).enumerate() {
        a.forward_rtp(
            &rtp_packet(111, seq, 0xbbbb, &[2; 80]),
            t0 + Duration::from_millis(100 + 20 * i as u64),
        )
        .unwrap();
    }
    let mut frames = Vec::new();
    for _ in 0..6 {
        frames.push(next_frame(&mut b_rx).await);
    }
    let first = frames[0].seq;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.seq, first.wrapping_add(i as u16));
        assert_eq!(f.payload_type, 0, "mapped to the trunk's payload type");
    }
    assert_eq!(
        frames.iter().map(|f| f.marker).collect::<Vec<_>>(),
        [true, false, false, true, false, false]
    );
    let gap = frames[3].timestamp.wrapping_sub(frames[2].timestamp);
    assert_eq!(gap, 480, "60 ms of wall clock between the sources");
    assert!(a.forward_rtp(&[0x80, 0], t0).is_err());
}

#[tokio::test]
async fn rtcp_reports_carry_loss_jitter_and_round_trip() {
    let alloc = allocator(44_800);
    let config = EndpointConfig {
        rtcp_min_interval: Duration::from_millis(150),
        ..EndpointConfig::default()
    };
    let mut a = RtpEndpoint::bind_with(&alloc, LOOPBACK, config).unwrap();
    let mut b = RtpEndpoint::bind_with(&alloc, LOOPBACK, config).unwrap();
    let (_a_rx, _b_rx) = (a.take_events().unwrap(), b.take_events().unwrap());
    a.set_remote(RemoteMedia {
        rtcp: Some(b.local_rtcp_addr()),
        ..remote_at(b.local_rtp_addr())
    })
    .unwrap();
    b.set_remote(RemoteMedia {
        rtcp: Some(a.local_rtcp_addr()),
        ..remote_at(a.local_rtp_addr())
    })
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a.stats().round_trip_ms.is_none() || b.stats().round_trip_ms.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no round trip: {:?}",
            a.stats()
        );
        a.send_audio(&[1; 160], 160).unwrap();
        b.send_audio(&[2; 160], 160).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = a.stats();
    assert!(
        stats.rtcp_sent >= 1 && stats.rtcp_received >= 1,
        "{stats:?}"
    );
    assert_eq!((stats.remote_lost, stats.lost), (0, 0));
    assert!(stats.round_trip_ms.unwrap() < 100.0, "{stats:?}");
}

#[tokio::test]
async fn lagging_consumer_costs_events_not_the_socket_loop() {
    let alloc = allocator(44_900);
    let config = EndpointConfig {
        events_capacity: 2,
        ..EndpointConfig::default()
    };
    let (a, _a_rx) = bind(&alloc);
    let mut b = RtpEndpoint::bind_with(&alloc, LOOPBACK, config).unwrap();
    let mut b_rx = b.take_events().unwrap();
    a.set_remote(remote_at(b.local_rtp_addr())).unwrap();
    b.set_remote(remote_at(a.local_rtp_addr())).unwrap();
    for i in 0..10u8 {
        a.send_audio(&[i; 160], 160).unwrap();
    }
    eventually("lag counted", || b.stats().dropped.consumer_lagging == 8).await;
    assert_eq!(next_frame(&mut b_rx).await.payload[0], 0);
    assert_eq!(next_frame(&mut b_rx).await.payload[0], 1);
    a.send_audio(&[42; 160], 160).unwrap();
    assert_eq!(
        next_frame(&mut b_rx).await.payload[0],
        42,
        "the loop kept running"
    );
}

#[tokio::test]
async fn ports_are_freed_after_drop_and_close() {
    let alloc = PortAllocator::new(45_000, 45_003).unwrap();
    let (a, _) = bind(&alloc);
    let (b, _) = bind(&alloc);
    assert!(matches!(
        RtpEndpoint::bind(&alloc, LOOPBACK),
        Err(MediaError::PortsExhausted)
    ));
    drop(a);
    eventually("dropped endpoint released its ports", || {
        alloc.in_use() == 1
    })
    .await;
    b.close().await;
    assert_eq!(alloc.in_use(), 0);
    let (_again, _) = bind(&alloc);
    let (_and_again, _) = bind(&alloc);
    assert_eq!(
        alloc.in_use(),
        2,
        "both pairs bind again: the sockets were closed"
    );
}

#[tokio::test]
async fn close_sends_rtcp_bye() {
    let alloc = allocator(45_100);
    let (a, _rx) = bind(&alloc);
    let trunk = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    a.set_remote(remote_at(trunk.local_addr().unwrap()))
        .unwrap();
    a.close().await;
    let mut buf = [0u8; 512];
    let (len, _) = timeout(PATIENCE, trunk.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let packets = rtcp::parse_compound(&buf[..len]).unwrap();
    assert!(matches!(packets.last(), Some(rtcp::RtcpPacket::Bye(_))));
}

#[test]
fn binding_outside_a_runtime_is_an_error_not_a_panic() {
    let alloc = allocator(45_200);
    assert!(matches!(
        RtpEndpoint::bind(&alloc, LOOPBACK),
        Err(MediaError::NoRuntime)
    ));
    assert_eq!(alloc.in_use(), 0);
}

#[test]
fn remote_media_debug_hides_addresses_and_keys() {
    let mut remote = remote_at(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        4000,
    ));
    let key = SrtpKeyMaterial::from_bytes(&[0x5a; 30]).unwrap();
    remote.srtp = Some((key.clone(), key));
    let shown = format!("{remote:?}");
    assert!(
        !shown.contains("203.0") && !shown.contains("4000") && !shown.contains("90"),
        "{shown}"
    );
}

#[tokio::test]
async fn invalid_remote_descriptions_are_refused() {
    let alloc = allocator(45_300);
    let (a, _rx) = bind(&alloc);
    let base = remote_at(a.local_rtp_addr());
    assert!(matches!(
        a.set_remote(RemoteMedia {
            audio_pt: 200,
            ..base.clone()
        }),
        Err(MediaError::PayloadTypeRange(200))
    ));
    assert!(matches!(
        a.set_remote(RemoteMedia {
            clock_rate: 0,
            ..base
        }),
        Err(MediaError::ClockRate)
    ));
}
