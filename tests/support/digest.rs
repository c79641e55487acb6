//! HTTP Digest as SIP uses it (RFC 3261 22.4, RFC 2617, RFC 7616, RFC 8760):
//! computes the response a user agent must send and checks a received
//! `Authorization` / `Proxy-Authorization` header against a password.
//!
//! sipp 3.6.1 verifies MD5 `Authorization` only; tests use this to check the
//! `Proxy-Authorization` answering a 407 and SHA-256 answers, from sipp's
//! message trace. Algorithms: MD5 and SHA-256, with or without qop=auth
//! (no -sess variants, no auth-int).

use std::collections::BTreeMap;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The parameters of a `Digest ...` credentials header value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestCredentials {
    pub params: BTreeMap<String, String>,
}

impl DigestCredentials {
    /// Parses `Digest k="v", k2=v2, ...`; `None` if the scheme is not Digest.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim_start();
        let scheme = rest.get(..6)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest[6..].chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if name.trim().is_empty() {
                break;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let value = if chars.peek() == Some(&'"') {
                chars.next();
                quoted(&mut chars)
            } else {
                chars.by_ref().take_while(|c| *c != ',').collect::<String>()
            };
            params.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        Some(Self { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Checks the response against `password` for a request with `method`,
    /// and that the username and realm are the expected ones.
    pub fn verify(
        &self,
        method: &str,
        user: &str,
        realm: &str,
        password: &str,
    ) -> Result<(), String> {
        for (name, expected) in [("username", user), ("realm", realm)] {
            let got = self.get(name).ok_or_else(|| format!("no {name}"))?;
            if got != expected {
                return Err(format!("{name} is {got:?}, expected {expected:?}"));
            }
        }
        let algorithm = Algorithm::named(self.get("algorithm").unwrap_or("MD5"))?;
        let nonce = self.get("nonce").ok_or("no nonce")?;
        let uri = self.get("uri").ok_or("no uri")?;
        let qop = match self.get("qop") {
            None => None,
            Some("auth") => Some(QopAuth {
                nc: self.get("nc").ok_or("qop=auth without nc")?,
                cnonce: self.get("cnonce").ok_or("qop=auth without cnonce")?,
            }),
            Some(other) => return Err(format!("unsupported qop {other:?}")),
        };
        let input = DigestInput {
            algorithm,
            user,
            realm,
            password,
            method,
            uri,
            nonce,
        };
        let expected = input.response(qop);
        match self.get("response") {
            Some(got) if got.eq_ignore_ascii_case(&expected) => Ok(()),
            Some(got) => Err(format!(
                "response {got} does not match {algorithm:?} of the password"
            )),
            None => Err("no response".to_owned()),
        }
    }
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '"' => break,
            _ => value.push(c),
        }
    }
    value
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn named(name: &str) -> Result<Self, String> {
        if name.eq_ignore_ascii_case("MD5") {
            Ok(Self::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Ok(Self::Sha256)
        } else {
            Err(format!("unsupported algorithm {name:?}"))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    fn hex(self, data: &str) -> String {
        match self {
            Self::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The `qop=auth` inputs of a response.
#[derive(Clone, Copy, Debug)]
pub struct QopAuth<'a> {
    pub nc: &'a str,
    pub cnonce: &'a str,
}

/// What a request-digest is computed from.
#[derive(Clone, Copy, Debug)]
pub struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub user: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
}

impl DigestInput<'_> {
    /// The request-digest (RFC 7616 3.4.1): H(H(A1):nonce[:nc:cnonce:qop]:H(A2)).
    pub fn response(&self, qop: Option<QopAuth<'_>>) -> String {
        let h = |data: String| self.algorithm.hex(&data);
        let ha1 = h(format!("{}:{}:{}", self.user, self.realm, self.password));
        let ha2 = h(format!("{}:{}", self.method, self.uri));
        match qop {
            Some(QopAuth { nc, cnonce }) => {
                h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
            }
            None => h(format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }

    /// A complete header line answering a challenge with qop=auth, as a UA
    /// would write it (for a scripted UAC): `HEADER_NAME: Digest ...`.
    pub fn header_line(&self, header_name: &str) -> String {
        let qop = QopAuth {
            nc: "00000001",
            cnonce: "0a4f113b",
        };
        format!(
            "{header_name}: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", \
             uri=\"{}\", response=\"{}\", algorithm={}, cnonce=\"{}\", qop=auth, nc={}",
            self.user,
            self.realm,
            self.nonce,
            self.uri,
            self.response(Some(qop)),
            self.algorithm.name(),
            qop.cnonce,
            qop.nc
        )
    }
}
