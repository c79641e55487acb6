//! sipp's message trace (`-trace_msg`), parsed so tests can assert on what a
//! scenario sent and received: that a CANCEL or BYE arrived, which headers an
//! INVITE carried, what SDP an answer held.
//!
//! The trace is a list of blocks, each opened by a line of dashes and a
//! timestamp, then `UDP message received [N] bytes :`, `UDP message sent (N
//! bytes):` or `Unexpected UDP message received:`, a blank line and the SIP
//! message with CRLF line ends.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

#[derive(Clone, Debug)]
pub struct SipMessage {
    pub direction: Direction,
    /// sipp did not expect it at that point of the scenario.
    pub unexpected: bool,
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Full header names for RFC 3261 7.3.3 compact forms.
const COMPACT: [(&str, &str); 9] = [
    ("i", "call-id"),
    ("m", "contact"),
    ("e", "content-encoding"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("f", "from"),
    ("s", "subject"),
    ("t", "to"),
    ("v", "via"),
];

fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    COMPACT
        .iter()
        .find(|(short, _)| *short == lower)
        .map_or(lower, |(_, long)| (*long).to_owned())
}

impl SipMessage {
    /// Parses one SIP message (start line, headers, optional body).
    pub fn parse(direction: Direction, unexpected: bool, text: &str) -> Option<Self> {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let start_line = lines.next()?.trim().to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // A folded continuation line (RFC 3261 7.3.1).
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Some(Self {
            direction,
            unexpected,
            start_line,
            headers,
            body: body.trim_end_matches('\n').replace('\n', "\r\n"),
        })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        if self.start_line.starts_with("SIP/") {
            return None;
        }
        self.start_line.split(' ').next()
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start_line.strip_prefix("SIP/2.0 ")?;
        rest.split(' ').next()?.parse().ok()
    }

    /// The CSeq method: what a response answers.
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    /// The first value of a header (case-insensitive, compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let wanted = canonical(name);
        self.headers
            .iter()
            .filter(|(n, _)| canonical(n) == wanted)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The same message text, whatever sipp thought of it.
    fn same_as(&self, other: &Self) -> bool {
        self.direction == other.direction
            && self.start_line == other.start_line
            && self.headers == other.headers
            && self.body == other.body
    }

    pub fn is_request(&self, method: &str) -> bool {
        self.method() == Some(method)
    }

    pub fn is_response(&self, status: u16, cseq_method: &str) -> bool {
        self.status() == Some(status) && self.cseq_method() == Some(cseq_method)
    }
}

impl fmt::Display for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let odd = if self.unexpected { " (unexpected)" } else { "" };
        write!(f, "{arrow} {}{odd}", self.start_line)
    }
}

/// Parses a whole sipp message trace.
pub fn parse_trace(trace: &str) -> Vec<SipMessage> {
    let mut messages: Vec<SipMessage> = Vec::new();
    for block in trace.split("\n-----------------------------------------------") {
        // Drop the rest of the separator line (dashes and timestamp).
        let Some((_, rest)) = block.split_once('\n') else {
            continue;
        };
        let Some((kind, message)) = rest.split_once('\n') else {
            continue;
        };
        let (direction, unexpected) = if kind.contains("message sent") {
            (Direction::Sent, false)
        } else if kind.starts_with("Unexpected") {
            (Direction::Received, true)
        } else if kind.contains("message received") {
            (Direction::Received, false)
        } else {
            continue;
        };
        let message = message.trim_start_matches(['\r', '\n']);
        let Some(parsed) = SipMessage::parse(direction, unexpected, message) else {
            continue;
        };
        // sipp logs an unexpected message twice: as received, then again as
        // unexpected. Keep one, marked.
        if let Some(last) = messages
            .last_mut()
            .filter(|last| unexpected && last.same_as(&parsed))
        {
            last.unexpected = true;
        } else {
            messages.push(parsed);
        }
    }
    messages
}

/// One line per message (`-> INVITE sip:...`), for failure reports.
pub fn summary(messages: &[SipMessage]) -> String {
    messages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audio address an SDP body names: the port of the first `m=audio`
/// line and the `c=` in force there (media level over session level).
pub fn sdp_audio_addr(sdp: &str) -> Option<std::net::SocketAddr> {
    let mut session_ip = None;
    let mut media_ip = None;
    let mut port = None;
    let mut section = "session";
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            if port.is_some() {
                break;
            }
            section = media.split_whitespace().next().unwrap_or("");
            if let Some(rest) = media.strip_prefix("audio ") {
                port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
        } else if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            let ip = c.split('/').next().and_then(|a| a.trim().parse().ok());
            match section {
                "session" => session_ip = ip,
                "audio" => media_ip = ip,
                _ => {}
            }
        }
    }
    let ip = media_ip.or(session_ip)?;
    Some(std::net::SocketAddr::new(std::net::IpAddr::V4(ip), port?))
}

/// The SDP direction attribute of the audio stream (`sendrecv` when absent,
/// RFC 3264 5.1).
pub fn sdp_direction(sdp: &str) -> &'static str {
    for line in sdp.lines().map(str::trim) {
        for direction in ["sendonly", "recvonly", "inactive", "sendrecv"] {
            if line.strip_prefix("a=") == Some(direction) {
                return direction;
            }
        }
    }
    "sendrecv"
}
