//! The sections that shape browser calls: `[webrtc]` (the browser leg),
//! `[limits]` (what one client, widget or tenant may ask of the node) and
//! `[database]` (where numbers, widgets and CDRs live).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::at::At;
use super::secret_source::{password_from_env, password_from_file};
use crate::dialing::{self, Allowance};
use crate::privacy::Secret;

/// The codec the node prefers on the browser leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserCodec {
    /// PCMU/PCMA end to end whenever the browser accepts them: no
    /// transcoding, no added delay. Opus only for browsers without G.711.
    #[default]
    G711,
    /// Opus towards the browser (better over lossy networks), transcoded to
    /// and from the trunk's G.711.
    Opus,
}

/// A STUN or TURN server handed to the widget (RTCIceServer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn `use-auth-secret`,
    /// `static-auth-secret`): each browser gets a credential of its own
    /// that expires after `[webrtc] turn_credential_ttl_secs`.
    #[serde(default)]
    pub auth_secret_env: Option<String>,
    #[serde(default)]
    pub auth_secret_file: Option<PathBuf>,
    /// Resolved at load time from `auth_secret_env` or `auth_secret_file`.
    #[serde(skip)]
    pub auth_secret: Option<Secret>,
    /// A fixed username and credential instead, handed to every browser
    /// that asks: anyone can copy them out of the page and relay through
    /// the TURN server, so they need `static_credential = true`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential_env: Option<String>,
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
    /// Resolved at load time from `credential_env` or `credential_file`.
    #[serde(skip)]
    pub credential: Option<Secret>,
    /// The operator's explicit yes to handing out a fixed credential.
    #[serde(default)]
    pub static_credential: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// The first media shard's UDP port, which its browser calls share
    /// (ICE-lite, RFC 8445 §2.5); shard `i` listens on this port + `i`.
    pub listen: SocketAddr,
    /// The address put into ICE candidates when the node sits behind NAT
    /// (the mapped public address and the first shard's port, the others
    /// following it); `listen` when unset.
    pub public_address: Option<SocketAddr>,
    /// Media shard threads, each pinned to a core with a browser port of
    /// its own; 0 for one per core the node may run on.
    pub shards: u16,
    pub browser_codec: BrowserCodec,
    /// A browser that sends nothing (no STUN consent check, RFC 7675 §5.1,
    /// and no media) for this long is gone, and the call is hung up.
    pub disconnect_timeout_secs: u32,
    /// Handed to the widget for its RTCPeerConnection.
    pub ice_servers: Vec<IceServerConfig>,
    /// How long a TURN credential made from an `auth_secret` is valid: the
    /// widget asks for one as a call starts.
    pub turn_credential_ttl_secs: u32,
}

impl WebrtcConfig {
    pub fn announced_address(&self) -> SocketAddr {
        self.public_address.unwrap_or(self.listen)
    }

    /// The candidate of shard `index`, whose browser port is bound to
    /// `local`: behind NAT, the public address with the public port moved
    /// on by the shard's index.
    pub fn shard_candidate(&self, index: usize, local: SocketAddr) -> SocketAddr {
        match self.public_address {
            Some(mut public) => {
                let port = usize::from(public.port()).saturating_add(index);
                public.set_port(u16::try_from(port).unwrap_or(u16::MAX));
                public
            }
            None => local,
        }
    }

    pub fn disconnect_timeout(&self) -> Duration {
        Duration::from_secs(self.disconnect_timeout_secs.into())
    }

    pub fn turn_credential_ttl(&self) -> Duration {
        Duration::from_secs(self.turn_credential_ttl_secs.into())
    }
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)),
            public_address: None,
            shards: 0,
            browser_codec: BrowserCodec::G711,
            disconnect_timeout_secs: 15,
            ice_servers: Vec::new(),
            turn_credential_ttl_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// New calls one client IP may start per minute.
    pub calls_per_minute_per_ip: u32,
    /// New calls one widget may start per minute, from all clients.
    pub calls_per_minute_per_widget: u32,
    /// Calls of one tenant in progress at once.
    pub max_concurrent_calls_per_tenant: u32,
    /// Widget configs (which carry TURN credentials) one client IP may
    /// fetch per minute; the widget fetches one per call it starts.
    pub config_requests_per_minute_per_ip: u32,
    /// Requests that look something up in the store (a widget by its id,
    /// an API key or session) one client IP may send per minute, counted
    /// before the lookup: made-up ids and wrong keys included.
    pub lookups_per_minute_per_ip: u32,
    /// The routes a tenant without an allowance of its own may send calls
    /// on; unset, every route of the node.
    pub dial_routes: Option<Vec<String>>,
    /// The E.164 prefixes a tenant without an allowance of its own may
    /// dial; unset, any number outside the high-cost ranges.
    pub dial_prefixes: Option<Vec<String>>,
}

impl LimitsConfig {
    /// The allowance of every tenant the operator gave none of its own.
    pub fn default_allowance(&self) -> Allowance {
        Allowance {
            routes: self.dial_routes.clone(),
            prefixes: self.dial_prefixes.clone(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            calls_per_minute_per_ip: 10,
            calls_per_minute_per_widget: 120,
            max_concurrent_calls_per_tenant: 50,
            config_requests_per_minute_per_ip: 30,
            lookups_per_minute_per_ip: 600,
            dial_routes: None,
            dial_prefixes: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` or `postgres://USER@HOST:PORT/DB` (no password: see
    /// `password_env`); `sqlite://<data_dir>/callgate.db` when unset.
    pub url: Option<String>,
    /// The PostgreSQL password, from an environment variable or a file.
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Resolved at load time from `password_env` or `password_file`.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Call detail records older than this many days are deleted (with
    /// their consent receipts) by the sweeper.
    pub cdr_retention_days: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            password_env: None,
            password_file: None,
            password: None,
            cdr_retention_days: 365,
        }
    }
}

impl DatabaseConfig {
    /// The URL to open, with the default resolved against `data_dir` and
    /// the password, if any, put in. It is a secret when a password is set:
    /// hand it to [`crate::store::Store::open`] and nowhere else.
    pub fn url_for(&self, data_dir: &Path) -> String {
        let url = match &self.url {
            Some(url) => url.clone(),
            None => return format!("sqlite://{}", data_dir.join("callgate.db").display()),
        };
        match (&self.password, server_user(&url)) {
            (Some(password), Some(user)) => {
                let (scheme, rest) = url.split_once("://").unwrap_or_default();
                let host = &rest[user.len()..];
                let password = percent_encode(password.expose());
                format!("{scheme}://{user}:{password}{host}")
            }
            _ => url,
        }
    }
}

/// The `USER` of a `postgres://USER@...` URL (with any `:PASSWORD`).
fn server_user(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "postgres" | "postgresql") {
        return None;
    }
    let authority = rest.split(['/', '?']).next()?;
    let (user, _) = authority.rsplit_once('@')?;
    Some(user).filter(|user| !user.is_empty())
}

/// Every byte but an unreserved URL character as `%XX` (RFC 3986 §2.3).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn check_webrtc(webrtc: &mut WebrtcConfig, env: &BTreeMap<String, String>, at: &mut At) {
    at.range(
        "disconnect_timeout_secs",
        webrtc.disconnect_timeout_secs,
        5..=30,
    );
    at.range(
        "turn_credential_ttl_secs",
        webrtc.turn_credential_ttl_secs,
        60..=86_400,
    );
    at.range("shards", webrtc.shards, 0..=64);
    if let Some(public) = webrtc.public_address {
        if public.ip().is_unspecified() || public.port() == 0 {
            at.bad(
                "public_address",
                "must be a concrete address and port browsers can reach",
            );
        }
    }
    if webrtc.public_address.is_none() && webrtc.listen.ip().is_unspecified() {
        at.bad(
            "public_address",
            "is required when listen is a wildcard address: candidates need a concrete address",
        );
    }
    if webrtc.listen.port() == 0 && webrtc.public_address.is_none() {
        at.bad("listen", "port 0 needs public_address to say the real port");
    }
    for (i, server) in webrtc.ice_servers.iter_mut().enumerate() {
        let key = format!("ice_servers[{i}]");
        check_ice_server(server, &key, at);
        let (var, file) = (
            server.credential_env.as_ref(),
            server.credential_file.as_ref(),
        );
        server.credential = load_ice_secret(var, file, &key, env, at);
        let (var, file) = (
            server.auth_secret_env.as_ref(),
            server.auth_secret_file.as_ref(),
        );
        server.auth_secret = load_ice_secret(var, file, &key, env, at);
    }
}

/// The secret an ICE server's `*_env` or `*_file` names (one of the two;
/// setting both is reported by [`check_ice_server`]).
fn load_ice_secret(
    var: Option<&String>,
    file: Option<&PathBuf>,
    key: &str,
    env: &BTreeMap<String, String>,
    at: &mut At,
) -> Option<Secret> {
    let owner = format!("ice server {key}");
    let loaded = match (var, file) {
        (Some(var), None) => password_from_env(&owner, var, env),
        (None, Some(path)) => password_from_file(&owner, path),
        _ => return None,
    };
    loaded.map_err(|m| at.bad(key, m)).ok()
}

fn check_ice_server(server: &IceServerConfig, key: &str, at: &mut At) {
    const SCHEMES: [&str; 4] = ["stun:", "stuns:", "turn:", "turns:"];
    if server.urls.is_empty() {
        at.bad(&format!("{key}.urls"), "must list at least one URL");
    }
    for url in &server.urls {
        if !SCHEMES.iter().any(|s| url.starts_with(s)) || url.chars().any(char::is_whitespace) {
            at.bad(
                &format!("{key}.urls"),
                "each URL must start with stun:, stuns:, turn: or turns:",
            );
        }
    }
    let has_credential = server.credential_env.is_some() || server.credential_file.is_some();
    let has_secret = server.auth_secret_env.is_some() || server.auth_secret_file.is_some();
    if server.credential_env.is_some() && server.credential_file.is_some() {
        at.bad(key, "set credential_env or credential_file, not both");
    }
    if server.auth_secret_env.is_some() && server.auth_secret_file.is_some() {
        at.bad(key, "set auth_secret_env or auth_secret_file, not both");
    }
    if has_secret && (has_credential || server.username.is_some()) {
        at.bad(
            key,
            "an auth_secret makes a credential per browser; drop username and credential_*",
        );
    }
    let is_turn = server.urls.iter().any(|u| u.starts_with("turn"));
    let fixed = server.username.is_some() && has_credential;
    if is_turn && !has_secret && !fixed {
        at.bad(
            key,
            "a TURN server needs auth_secret_env or auth_secret_file (TURN REST credentials)",
        );
    }
    if fixed && !server.static_credential {
        at.bad(
            key,
            "a fixed TURN credential is handed to every visitor, which opens the relay to anyone; \
             use auth_secret_env or auth_secret_file (coturn use-auth-secret), \
             or set static_credential = true",
        );
    }
}

pub(super) fn check_limits(limits: &LimitsConfig, at: &mut At) {
    at.range(
        "calls_per_minute_per_ip",
        limits.calls_per_minute_per_ip,
        1..=10_000,
    );
    at.range(
        "calls_per_minute_per_widget",
        limits.calls_per_minute_per_widget,
        1..=100_000,
    );
    at.range(
        "max_concurrent_calls_per_tenant",
        limits.max_concurrent_calls_per_tenant,
        1..=100_000,
    );
    at.range(
        "config_requests_per_minute_per_ip",
        limits.config_requests_per_minute_per_ip,
        1..=10_000,
    );
    at.range(
        "lookups_per_minute_per_ip",
        limits.lookups_per_minute_per_ip,
        10..=1_000_000,
    );
    for prefix in limits.dial_prefixes.iter().flatten() {
        if !dialing::valid_prefix(prefix) {
            let message = format!("{prefix:?} is not a '+' and 1 to 15 digits (such as \"+1\")");
            at.bad("dial_prefixes", message);
        }
    }
}

pub(super) fn check_database(
    database: &mut DatabaseConfig,
    env: &BTreeMap<String, String>,
    at: &mut At,
) {
    at.range("cdr_retention_days", database.cdr_retention_days, 1..=3650);
    let password = match (&database.password_env, &database.password_file) {
        (None, None) => None,
        (Some(var), None) => password_from_env("database", var, env)
            .map_err(|m| at.bad("password_env", m))
            .ok(),
        (None, Some(path)) => password_from_file("database", path)
            .map_err(|m| at.bad("password_file", m))
            .ok(),
        (Some(_), Some(_)) => {
            at.bad(
                "password_env",
                "set password_env or password_file, not both",
            );
            None
        }
    };
    let url = database.url.as_deref().unwrap_or_default();
    let user = server_user(url);
    if database.url.is_some() {
        let known = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len());
        if !known {
            at.bad(
                "url",
                "must be sqlite://FILE, sqlite::memory: or postgres://USER@HOST:PORT/DB",
            );
        } else if user.is_some_and(|user| user.contains(':')) {
            at.bad(
                "url",
                "holds a password; secrets come from the environment (password_env) \
                 or a file (password_file)",
            );
        }
    }
    let has_password = database.password_env.is_some() || database.password_file.is_some();
    if has_password && user.is_none() {
        at.bad(
            "url",
            "must be postgres://USER@HOST:PORT/DB when a password is set",
        );
    }
    database.password = password;
}
