//! [`NgClient`]: rtpengine's ng control protocol, as much of it as a load
//! run needs: `offer`, `answer` and `delete`.
//!
//! A request is a cookie, a space and a bencoded dictionary in one UDP
//! datagram; the reply echoes the cookie before its own dictionary, whose
//! `result` is `ok` or `error` (with `error-reason`). The bencoding (the
//! BitTorrent one: `4:spam`, `i3e`, `l...e`, `d...e`) is written here in a
//! few lines: the tool needs only string dictionaries, lists and integers.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// How long a reply is waited for, per attempt.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum NgError {
    #[error("rtpengine's ng port: {0}")]
    Io(#[from] io::Error),
    #[error("rtpengine did not answer {0} on its ng port")]
    NoReply(&'static str),
    #[error("rtpengine sent a reply that is not bencoded ng")]
    Malformed,
    #[error("rtpengine refused {command}: {reason}")]
    Refused {
        command: &'static str,
        reason: String,
    },
}

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bytes(Vec<u8>),
    Integer(i64),
    List(Vec<Value>),
    Dictionary(BTreeMap<Vec<u8>, Value>),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Bytes(text.as_bytes().to_vec())
    }
}

impl Value {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(bytes) => {
                out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
                out.extend_from_slice(bytes);
            }
            Value::Integer(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|item| item.encode(out));
                out.push(b'e');
            }
            // Keys in byte order, as bencoding requires: a BTreeMap's order.
            Value::Dictionary(entries) => {
                out.push(b'd');
                for (key, value) in entries {
                    Value::Bytes(key.clone()).encode(out);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The one value `bytes` holds, with nothing after it.
    pub fn decode(bytes: &[u8]) -> Option<Value> {
        let (value, rest) = Self::decode_prefix(bytes, 0)?;
        rest.is_empty().then_some(value)
    }

    /// Deeper nesting than any ng reply has is refused, not recursed into.
    fn decode_prefix(bytes: &[u8], depth: usize) -> Option<(Value, &[u8])> {
        if depth > 32 {
            return None;
        }
        match *bytes.first()? {
            b'i' => {
                let end = bytes.iter().position(|&b| b == b'e')?;
                let n = std::str::from_utf8(&bytes[1..end]).ok()?.parse().ok()?;
                Some((Value::Integer(n), &bytes[end + 1..]))
            }
            b'l' => {
                let mut rest = &bytes[1..];
                let mut items = Vec::new();
                while *rest.first()? != b'e' {
                    let (item, after) = Self::decode_prefix(rest, depth + 1)?;
                    items.push(item);
                    rest = after;
                }
                Some((Value::List(items), &rest[1..]))
            }
            b'd' => {
                let mut rest = &bytes[1..];
                let mut entries = BTreeMap::new();
                while *rest.first()? != b'e' {
                    let (Value::Bytes(key), after) = Self::decode_prefix(rest, depth + 1)? else {
                        return None;
                    };
                    let (value, after) = Self::decode_prefix(after, depth + 1)?;
                    entries.insert(key, value);
                    rest = after;
                }
                Some((Value::Dictionary(entries), &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = bytes.iter().position(|&b| b == b':')?;
                let len: usize = std::str::from_utf8(&bytes[..colon]).ok()?.parse().ok()?;
                let body = bytes.get(colon + 1..colon + 1 + len)?;
                Some((Value::Bytes(body.to_vec()), &bytes[colon + 1 + len..]))
            }
            _ => None,
        }
    }

    /// The text under `key` of a dictionary.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self {
            Value::Dictionary(entries) => match entries.get(key.as_bytes())? {
                Value::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A dictionary of `(key, value)` pairs.
pub fn dictionary<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Dictionary(
        entries
            .into_iter()
            .map(|(key, value)| (key.as_bytes().to_vec(), value))
            .collect(),
    )
}

/// See the module documentation. One request at a time.
pub struct NgClient {
    socket: UdpSocket,
    server: SocketAddr,
    next_cookie: u64,
}

impl NgClient {
    pub fn connect(server: SocketAddr) -> Result<Self, NgError> {
        let any: SocketAddr = match server {
            SocketAddr::V4(_) => ([127, 0, 0, 1], 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
        };
        let socket = UdpSocket::bind(any)?;
        socket.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Self {
            socket,
            server,
            next_cookie: rand::random::<u32>().into(),
        })
    }

    /// Sends `request` (a dictionary with its `command`) and returns the
    /// reply's dictionary once its `result` is `ok`. A lost datagram is
    /// sent again with the same cookie, which rtpengine answers from its
    /// cache instead of acting twice.
    pub fn request(&mut self, command: &'static str, request: Value) -> Result<Value, NgError> {
        let cookie = format!("{:x}", self.next_cookie);
        self.next_cookie += 1;
        let mut datagram = format!("{cookie} ").into_bytes();
        request.encode(&mut datagram);
        let mut buffer = vec![0u8; 65_536];
        for _ in 0..ATTEMPTS {
            self.socket.send_to(&datagram, self.server)?;
            loop {
                let len = match self.socket.recv(&mut buffer) {
                    Ok(len) => len,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some(body) = buffer[..len]
                    .strip_prefix(cookie.as_bytes())
                    .and_then(|rest| rest.strip_prefix(b" "))
                else {
                    // A late reply to an earlier request.
                    continue;
                };
                let reply = Value::decode(body).ok_or(NgError::Malformed)?;
                return match reply.text("result") {
                    Some("ok") => Ok(reply),
                    _ => Err(NgError::Refused {
                        command,
                        reason: reply
                            .text("error-reason")
                            .unwrap_or("no reason given")
                            .to_owned(),
                    }),
                };
            }
        }
        Err(NgError::NoReply(command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_encodes_with_sorted_keys() {
        let request = dictionary([
            ("sdp", "v=0".into()),
            ("command", "offer".into()),
            ("flags", Value::List(vec!["a".into()])),
            ("n", Value::Integer(-3)),
        ]);
        let mut out = Vec::new();
        request.encode(&mut out);
        assert_eq!(out, b"d7:command5:offer5:flagsl1:ae1:ni-3e3:sdp3:v=0e");
        assert_eq!(Value::decode(&out), Some(request));
    }

    #[test]
    fn a_reply_decodes_and_junk_does_not() {
        let reply = Value::decode(b"d3:sdp4:v=0\n6:result2:oke").unwrap();
        assert_eq!(reply.text("result"), Some("ok"));
        assert_eq!(reply.text("sdp"), Some("v=0\n"));
        assert_eq!(reply.text("missing"), None);
        for junk in [
            &b""[..],
            b"d",
            b"d3:sdpe",
            b"5:abc",
            b"i12",
            b"d3:sdp1:xeX",
            b"di1e1:xe",
            b"x",
        ] {
            assert_eq!(Value::decode(junk), None, "{junk:?}");
        }
        let deep = [b"l".repeat(100), b"e".repeat(100)].concat();
        assert_eq!(Value::decode(&deep), None);
    }
}
