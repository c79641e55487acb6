//! Raw SIP for robustness tests: malformed datagrams an attacker or a
//! broken peer could send to the node's SIP port, and OPTIONS probes (over
//! UDP or a TCP connection) to check what the port still answers.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// Kinds of malformed input, each named after what it attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Bytes that are not SIP at all (binary, no CRLF structure).
    Garbage,
    /// An INVITE without a Call-ID: no dialog or transaction can be keyed.
    MissingCallId,
    /// A Content-Length far larger than the datagram (a buffer-allocation
    /// attack on parsers that trust it).
    HugeContentLength,
    /// Correct headers but an SDP body cut off mid-line, shorter than its
    /// Content-Length.
    TruncatedSdp,
    /// A header line of 64 KiB-ish with no colon (an unbounded-line attack),
    /// kept under the UDP datagram limit.
    OverlongHeaderLine,
}

impl Malformed {
    pub const ALL: [Self; 5] = [
        Self::Garbage,
        Self::MissingCallId,
        Self::HugeContentLength,
        Self::TruncatedSdp,
        Self::OverlongHeaderLine,
    ];

    /// The datagram, addressed to `to` as if sent from `from`.
    pub fn datagram(self, from: SocketAddr, to: SocketAddr) -> Vec<u8> {
        match self {
            Self::Garbage => (0u8..=255)
                .cycle()
                .take(700)
                .map(|b| b.wrapping_mul(37) ^ 0x5a)
                .collect(),
            Self::MissingCallId => invite(from, to, "", &sdp_offer(from)).into_bytes(),
            Self::HugeContentLength => {
                let body = sdp_offer(from);
                invite_with_length(
                    from,
                    to,
                    "Call-ID: huge-length@callgate.test\r\n",
                    &body,
                    "4294967295",
                )
                .into_bytes()
            }
            Self::TruncatedSdp => {
                let body = sdp_offer(from);
                // Cut inside the m= line: the media description is unusable.
                let cut = &body[..body.find("RTP/AVP").unwrap_or(body.len() / 2)];
                let length = body.len().to_string();
                invite_with_length(
                    from,
                    to,
                    "Call-ID: truncated-sdp@callgate.test\r\n",
                    cut,
                    &length,
                )
                .into_bytes()
            }
            Self::OverlongHeaderLine => {
                let long = format!("X-{}\r\n", "a".repeat(60_000));
                invite(
                    from,
                    to,
                    &format!("Call-ID: overlong@callgate.test\r\n{long}"),
                    "",
                )
                .into_bytes()
            }
        }
    }
}

fn sdp_offer(from: SocketAddr) -> String {
    format!(
        "v=0\r\no=attacker 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = from.ip(),
        port = from.port() + 2
    )
}

fn invite(from: SocketAddr, to: SocketAddr, extra_headers: &str, body: &str) -> String {
    invite_with_length(from, to, extra_headers, body, &body.len().to_string())
}

fn invite_with_length(
    from: SocketAddr,
    to: SocketAddr,
    extra_headers: &str,
    body: &str,
    content_length: &str,
) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "INVITE sip:test@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-malformed-{port}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:attacker@{from}>;tag=malformed\r\n\
         To: <sip:test@{to}>\r\n\
         {extra_headers}\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:attacker@{from}>\r\n\
         {content_type}\
         Content-Length: {content_length}\r\n\
         \r\n\
         {body}",
        port = from.port()
    )
}

/// Sends `datagram` to `to` from a fresh loopback socket; returns the first
/// reply within `wait`, if any.
pub fn send(to: SocketAddr, datagram: &[u8], wait: Duration) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind raw SIP socket");
    exchange(&socket, to, datagram, wait)
}

/// Sends each kind of [`Malformed`] to `to`, from one socket; returns the
/// replies (`None` where there was none within `wait`).
pub fn send_all_malformed(to: SocketAddr, wait: Duration) -> Vec<(Malformed, Option<String>)> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind raw SIP socket");
    let from = socket.local_addr().expect("raw socket address");
    Malformed::ALL
        .iter()
        .map(|kind| (*kind, exchange(&socket, to, &kind.datagram(from, to), wait)))
        .collect()
}

/// An out-of-dialog OPTIONS (RFC 3261 11) to `to`; returns the status code
/// of the answer within `wait`.
pub fn options_ping(to: SocketAddr, wait: Duration) -> Option<u16> {
    options_ping_from(IpAddr::from([127, 0, 0, 1]), to, wait)
}

/// [`options_ping`] sent from `source` (any address of 127.0.0.0/8 works
/// on Linux without set-up).
pub fn options_ping_from(source: IpAddr, to: SocketAddr, wait: Duration) -> Option<u16> {
    let reply = send_from(source, to, |from| options(from, to), wait)?;
    reply.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// An out-of-dialog OPTIONS from `from` to `to`.
pub fn options(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    numbered_options("UDP", from, to, 0)
}

/// The `n`th OPTIONS over `transport` from `from` to `to`: each number is a
/// request of its own (branch and Call-ID).
fn numbered_options(transport: &str, from: SocketAddr, to: SocketAddr, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from};branch=z9hG4bK-ping-{port}-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{from}>;tag=ping{port}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: ping-{port}-{n}@callgate.test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        port = from.port()
    )
    .into_bytes()
}

/// An OPTIONS over the TCP connection `stream`; the status code of the
/// answer on it within `wait`, if any.
pub fn options_over_tcp(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let (from, to) = (stream.local_addr().ok()?, stream.peer_addr().ok()?);
    stream
        .write_all(&numbered_options("TCP", from, to, 0))
        .ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(len) => reply.extend_from_slice(&buf[..len]),
        }
    }
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Whether the node closed `stream` (its side reads end-of-stream) within
/// `wait`; anything it sends first is read and ignored.
pub fn closed_by_node(stream: &mut TcpStream, wait: Duration) -> bool {
    stream
        .set_read_timeout(Some(wait))
        .expect("set read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// Sends `count` OPTIONS at once from one socket on `source` to `to`, then
/// counts the final answers that arrive within `wait`.
pub fn options_burst_from(source: IpAddr, to: SocketAddr, count: u32, wait: Duration) -> usize {
    let socket = UdpSocket::bind((source, 0)).expect("bind raw SIP socket");
    let from = socket.local_addr().expect("raw socket address");
    for n in 0..count {
        let datagram = numbered_options("UDP", from, to, n);
        socket
            .send_to(&datagram, to)
            .expect("send raw SIP datagram");
    }
    socket
        .set_read_timeout(Some(wait))
        .expect("set read timeout");
    let mut buf = vec![0u8; 65_536];
    let mut answered = 0;
    while let Ok(len) = socket.recv(&mut buf) {
        if !buf[..len].starts_with(b"SIP/2.0 1") {
            answered += 1;
        }
    }
    answered
}

/// Sends what `build` makes (given the sending socket's address) from a
/// fresh socket on `source` to `to`; returns the first final reply within
/// `wait`, if any.
pub fn send_from(
    source: IpAddr,
    to: SocketAddr,
    build: impl FnOnce(SocketAddr) -> Vec<u8>,
    wait: Duration,
) -> Option<String> {
    let socket = UdpSocket::bind((source, 0)).expect("bind raw SIP socket");
    let from = socket.local_addr().expect("raw socket address");
    exchange(&socket, to, &build(from), wait)
}

fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8], wait: Duration) -> Option<String> {
    socket.send_to(datagram, to).expect("send raw SIP datagram");
    if wait.is_zero() {
        return None;
    }
    socket
        .set_read_timeout(Some(wait))
        .expect("set read timeout");
    let mut buf = vec![0u8; 65_536];
    // A provisional answer (100 Trying) is not the reply a test wants.
    loop {
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Some(text);
        }
    }
}
