//! `[http]`: where the node serves HTTP(S), the URL browsers reach it at,
//! its certificate, and which proxies in front of it are trusted to name
//! the client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::at::At;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The URL browsers reach this node at; derived from `listen` when unset.
    pub public_url: Option<String>,
    /// PEM: the certificate chain, leaf first. With `tls_key_file` it puts
    /// TLS on `listen` (HTTPS and WSS); both files are re-read when they
    /// change and on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM: the leaf certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// A plain-HTTP listener that answers every request with a permanent
    /// redirect to the same path on the HTTPS URL (needs TLS on `listen`).
    pub redirect_listen: Option<SocketAddr>,
    /// A plain-HTTP listener of its own for `GET /metrics` (a private
    /// interface, for Prometheus); `/metrics` then leaves `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Proxies (addresses or CIDRs) whose `Forwarded` / `X-Forwarded-For`
    /// headers name the client. A request from any other peer is taken to
    /// come from that peer, whatever its headers say.
    pub trusted_proxies: Vec<String>,
    /// Connections served at once; more are closed as they are accepted.
    pub max_connections: u32,
    /// Connections from one address at once (a trusted proxy is exempt).
    pub max_connections_per_ip: u32,
    /// A request's head must arrive within this; also how long an HTTP/1
    /// connection may sit idle between requests.
    pub header_read_timeout_secs: u32,
    /// A request must be answered within this, its body read included.
    pub request_timeout_secs: u32,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout_secs: u32,
    /// `[http.acme]`: certificates from an ACME CA instead of files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeConfig>,
}

/// Certificates issued and renewed by an ACME CA (RFC 8555), proven with
/// http-01 challenges answered on `redirect_listen` (port 80).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The names the certificate is for; the first is its subject.
    pub domains: Vec<String>,
    /// An email address the CA may write to about the account.
    pub contact: String,
    /// The CA's directory; Let's Encrypt's production one by default.
    #[serde(default = "AcmeConfig::default_directory_url")]
    pub directory_url: String,
    /// A CA certificate (PEM) to trust for the directory's HTTPS, for a
    /// private ACME CA; the system's roots by default.
    #[serde(default)]
    pub directory_ca_file: Option<PathBuf>,
    /// Where the account key and the certificate are kept across restarts;
    /// `<data_dir>/acme` by default.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

impl AcmeConfig {
    pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

    fn default_directory_url() -> String {
        Self::LETS_ENCRYPT.to_owned()
    }
}

impl HttpConfig {
    /// Whether `listen` serves HTTPS (certificate files or ACME).
    pub fn tls(&self) -> bool {
        let files = self.tls_cert_file.is_some() && self.tls_key_file.is_some();
        files || self.acme.is_some()
    }

    /// `public_url` without a trailing slash, or `http(s)://<listen>`.
    pub fn base_url(&self) -> String {
        self.base_url_for(self.listen)
    }

    /// [`HttpConfig::base_url`] for a node bound to `bound` (the real port
    /// when `listen` asked for port 0).
    pub fn base_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.tls() => format!("https://{bound}"),
            None => format!("http://{bound}"),
        }
    }

    /// The parsed `trusted_proxies` (validated at load, so none is dropped
    /// from a loaded config).
    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        let parsed = self.trusted_proxies.iter().map(|e| parse_net(e));
        parsed.filter_map(Result::ok).collect()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            public_url: None,
            tls_cert_file: None,
            tls_key_file: None,
            redirect_listen: None,
            metrics_listen: None,
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_connections_per_ip: 64,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            idle_timeout_secs: 120,
            acme: None,
        }
    }
}

/// An entry of an address list that is neither an address nor a network.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR (such as 10.0.0.0/8)")]
pub(super) struct NotANetwork(String);

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`, a /32 or
/// /128).
pub(super) fn parse_net(entry: &str) -> Result<IpNet, NotANetwork> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    entry
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| NotANetwork(entry.to_owned()))
}

pub(super) fn check_http(http: &HttpConfig, at: &mut At) {
    if let Some(url) = &http.public_url {
        check_public_url(url, http.tls(), at);
    }
    match (&http.tls_cert_file, &http.tls_key_file) {
        (Some(cert), Some(key)) => {
            at.readable("tls_cert_file", cert);
            at.readable("tls_key_file", key);
        }
        (Some(_), None) => at.bad("tls_key_file", "must be set with tls_cert_file"),
        (None, Some(_)) => at.bad("tls_cert_file", "must be set with tls_key_file"),
        (None, None) => {}
    }
    if http.redirect_listen.is_some() && !http.tls() {
        at.bad(
            "redirect_listen",
            "redirects to HTTPS, so it needs tls_cert_file and tls_key_file",
        );
    }
    if http.redirect_listen == Some(http.listen) {
        at.bad("redirect_listen", "must differ from listen");
    }
    if let Some(metrics) = http.metrics_listen
        && (metrics == http.listen || Some(metrics) == http.redirect_listen)
    {
        at.bad(
            "metrics_listen",
            "must differ from listen and redirect_listen",
        );
    }
    for entry in &http.trusted_proxies {
        if let Err(message) = parse_net(entry) {
            at.bad("trusted_proxies", message);
        }
    }
    at.range("max_connections", http.max_connections, 16..=1_000_000);
    at.range(
        "max_connections_per_ip",
        http.max_connections_per_ip,
        4..=http.max_connections.max(4),
    );
    at.range(
        "header_read_timeout_secs",
        http.header_read_timeout_secs,
        1..=120,
    );
    at.range("request_timeout_secs", http.request_timeout_secs, 1..=600);
    at.range("idle_timeout_secs", http.idle_timeout_secs, 30..=3_600);
    if let Some(acme) = &http.acme {
        check_acme(http, acme, at);
    }
}

fn check_acme(http: &HttpConfig, acme: &AcmeConfig, at: &mut At) {
    if http.tls_cert_file.is_some() || http.tls_key_file.is_some() {
        at.bad(
            "acme",
            "set tls_cert_file and tls_key_file or [http.acme], not both",
        );
    }
    if http.redirect_listen.is_none() {
        at.bad(
            "redirect_listen",
            "[http.acme] answers http-01 challenges there, so it must be set (port 80)",
        );
    }
    let mut at = at.nested("acme");
    if acme.domains.is_empty() {
        at.bad("domains", "must name at least one domain");
    }
    for domain in &acme.domains {
        if !super::address::is_host_name(domain) || domain.parse::<IpAddr>().is_ok() {
            at.bad("domains", format!("{domain:?} is not a DNS name"));
        }
    }
    let (user, host) = acme.contact.split_once('@').unwrap_or_default();
    if user.is_empty() || !host.contains('.') || acme.contact.contains(char::is_whitespace) {
        at.bad("contact", "must be an email address");
    }
    if !acme.directory_url.starts_with("https://") {
        at.bad("directory_url", "must be an https:// URL");
    }
    if let Some(file) = &acme.directory_ca_file {
        at.readable("directory_ca_file", file);
    }
}

fn check_public_url(url: &str, tls: bool, at: &mut At) {
    let https = url.strip_prefix("https://");
    let rest = https.or_else(|| url.strip_prefix("http://"));
    let printable = url.chars().all(|c| c.is_ascii_graphic());
    if !printable || rest.is_none_or(|r| r.trim_end_matches('/').is_empty()) {
        at.bad("public_url", "must be an http:// or https:// URL");
    } else if tls && https.is_none() {
        // Pages on https:// sites may only reach https:// and wss://.
        at.bad("public_url", "must be https:// when the node serves TLS");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_addresses_and_cidrs() {
        let http = HttpConfig {
            trusted_proxies: vec!["10.1.2.3/8".into(), "192.0.2.7".into(), "::1".into()],
            ..HttpConfig::default()
        };
        let nets: Vec<String> = http
            .trusted_proxy_nets()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("proxy.example").is_err());
        assert!(parse_net("").is_err());
    }

    #[test]
    fn the_base_url_follows_tls() {
        let mut http = HttpConfig::default();
        let bound: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(http.base_url_for(bound), "http://127.0.0.1:8443");
        http.tls_cert_file = Some("cert.pem".into());
        http.tls_key_file = Some("key.pem".into());
        assert_eq!(http.base_url_for(bound), "https://127.0.0.1:8443");
        http.public_url = Some("https://calls.example/".into());
        assert_eq!(http.base_url_for(bound), "https://calls.example");
    }
}
