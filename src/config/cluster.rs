//! `[cluster]`: several nodes sharing one Redis. Without `redis_url` the
//! node runs alone and nothing else here is read.
//!
//! Secrets (the Redis password, the cluster secret every node shares) come
//! from the environment or files, never inline, and a password written
//! into `redis_url` is refused for the same reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::at::At;
use super::s3::load_credential;
use crate::privacy::Secret;

/// The shortest cluster secret taken: it keys visitors' addresses.
const MIN_SECRET_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host[:port][/db]`, or `rediss://` for TLS (a user name
    /// may come before `@`, the password never does). Unset: the node runs
    /// alone.
    pub redis_url: Option<String>,
    /// With `rediss://`: the PEM file of the CA that signed the server's
    /// certificate; unset means the system's trusted roots.
    pub redis_ca_file: Option<PathBuf>,
    pub redis_password_env: Option<String>,
    pub redis_password_file: Option<PathBuf>,
    /// The secret every node of the cluster shares (16 characters or more).
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Nodes place calls within their region.
    pub region: String,
    /// Where browsers reach this node; unset means `http.base_url`.
    pub public_url: Option<String>,
    /// Where the other nodes reach this node's HTTP to hand it calls;
    /// unset means `http.base_url`.
    pub internal_url: Option<String>,
    /// How often the node renews its registry entry and its leases.
    pub heartbeat_ms: u32,
    /// How long an entry or a lease lives without renewal: a node that
    /// died is known lost, and its call slots free, after this.
    pub lease_secs: u32,
    /// Resolved at load time from `redis_password_env` or `_file`.
    #[serde(skip)]
    pub redis_password: Option<Secret>,
    /// Resolved at load time from `secret_env` or `_file`.
    #[serde(skip)]
    pub secret: Option<Secret>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_ca_file: None,
            redis_password_env: None,
            redis_password_file: None,
            secret_env: None,
            secret_file: None,
            region: "default".to_owned(),
            public_url: None,
            internal_url: None,
            heartbeat_ms: 2000,
            lease_secs: 10,
            redis_password: None,
            secret: None,
        }
    }
}

impl ClusterConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.into())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.into())
    }
}

/// The variables that hold cluster secrets: secrets, not settings.
pub(super) fn cluster_env_names(table: &toml::Table) -> BTreeSet<String> {
    let cluster = table.get("cluster");
    ["redis_password_env", "secret_env"]
        .into_iter()
        .filter_map(|key| cluster?.get(key)?.as_str())
        .map(str::to_owned)
        .collect()
}

pub(super) fn check_cluster(
    cluster: &mut ClusterConfig,
    env: &BTreeMap<String, String>,
    at: &mut At,
) {
    let Some(url) = &cluster.redis_url else {
        return;
    };
    check_redis_url(url, at);
    if let Some(ca) = &cluster.redis_ca_file {
        if !url.starts_with("rediss://") {
            at.bad("redis_ca_file", "is for TLS: set redis_url to rediss://");
        } else if !ca.is_file() {
            at.bad("redis_ca_file", "no such file");
        }
    }
    let region_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if !(1..=32).contains(&cluster.region.len()) || !cluster.region.bytes().all(region_char) {
        at.bad("region", "must be 1 to 32 characters of a-z, 0-9 and '-'");
    }
    for (key, url) in [
        ("public_url", &cluster.public_url),
        ("internal_url", &cluster.internal_url),
    ] {
        let Some(url) = url else { continue };
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.ends_with('/') {
            at.bad(key, "must be http(s)://host[:port], with no trailing '/'");
        }
    }
    at.range("heartbeat_ms", cluster.heartbeat_ms, 100..=60_000);
    at.range("lease_secs", cluster.lease_secs, 1..=300);
    if u64::from(cluster.lease_secs) * 1000 < 3 * u64::from(cluster.heartbeat_ms) {
        at.bad(
            "lease_secs",
            "must last at least three heartbeats (3 x heartbeat_ms), or a slow heartbeat loses the node's leases",
        );
    }
    let password_keys = (&cluster.redis_password_env, &cluster.redis_password_file);
    if password_keys.0.is_some() || password_keys.1.is_some() {
        cluster.redis_password = load_credential(
            "Redis password",
            ("redis_password_env", password_keys.0),
            ("redis_password_file", password_keys.1),
            env,
            at,
        );
    }
    let secret = load_credential(
        "cluster secret",
        ("secret_env", &cluster.secret_env),
        ("secret_file", &cluster.secret_file),
        env,
        at,
    );
    match secret {
        Some(secret) if secret.expose().chars().count() < MIN_SECRET_CHARS => at.bad(
            "secret_env",
            format!("the cluster secret must be at least {MIN_SECRET_CHARS} characters"),
        ),
        secret => cluster.secret = secret,
    }
}

/// `redis://[user@]host[:port][/db]` or `rediss://` (TLS); a password in
/// it is an inline secret.
fn check_redis_url(url: &str, at: &mut At) {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"));
    let Some(rest) = rest else {
        at.bad(
            "redis_url",
            "must be redis://host[:port][/db] (or rediss:// for TLS)",
        );
        return;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && user_info.contains(':')
    {
        at.bad(
            "redis_url",
            "holds a password: inline secrets are not allowed; set redis_password_env or redis_password_file",
        );
        return;
    }
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        at.bad("redis_url", "must name a host: redis://host[:port][/db]");
    }
}
