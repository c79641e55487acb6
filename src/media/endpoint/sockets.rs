//! [`SendSockets`]: the endpoint's two sending sockets, and [`transmit`],
//! which puts a datagram on the right one without waiting.

use super::send::{PacketKind, Transmit};

/// The sending side of both sockets: duplicates of the tokio sockets'
/// descriptors, used with plain non-blocking `send_to`. Tokio's
/// `try_send_to` would refuse until the reactor has reported the socket
/// writable once, which loses the first packets of a call.
#[derive(Debug)]
pub struct SendSockets {
    pub rtp: std::net::UdpSocket,
    pub rtcp: std::net::UdpSocket,
}

/// Puts one datagram on the right socket without waiting; returns whether
/// the socket took it. A full socket buffer or an ICMP-induced error costs
/// this packet only.
pub fn transmit(sockets: &SendSockets, tx: &Transmit<'_>) -> bool {
    let socket = match tx.kind {
        PacketKind::Rtp | PacketKind::Rtcp { muxed: true } => &sockets.rtp,
        PacketKind::Rtcp { muxed: false } => &sockets.rtcp,
    };
    socket.send_to(tx.bytes, tx.to).is_ok()
}
