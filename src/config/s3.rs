//! `[recording.s3]`: an S3-compatible object store for recordings, in place
//! of the local directory.
//!
//! Credentials come only from the environment or files, like every secret:
//! the config names the variable or the file, and both keys are read and
//! checked at load, so a node never starts without them (nor falls back to
//! looking for cloud instance credentials). The endpoint must be `https://`
//! unless `allow_http` says otherwise, for loopback test servers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::address::is_host_name;
use super::at::At;
use super::secret_source::{password_from_env, password_from_file};
use crate::privacy::Secret;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://host[:port]` of an S3-compatible server, addressed
    /// path-style (`endpoint/bucket/key`); unset for Amazon S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Object names start with `prefix/` when set.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Allows an `http://` endpoint: requests (signed, carrying ciphertext)
    /// go unencrypted, so only for a server on loopback.
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Resolved at load time from `access_key_id_env` or `_file`.
    #[serde(skip)]
    pub access_key_id: Option<Secret>,
    /// Resolved at load time from `secret_access_key_env` or `_file`.
    #[serde(skip)]
    pub secret_access_key: Option<Secret>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// The variables that hold S3 credentials: secrets, not settings.
pub(super) fn s3_env_names(table: &toml::Table) -> BTreeSet<String> {
    let s3 = table.get("recording").and_then(|r| r.get("s3"));
    ["access_key_id_env", "secret_access_key_env"]
        .into_iter()
        .filter_map(|key| s3?.get(key)?.as_str())
        .map(str::to_owned)
        .collect()
}

pub(super) fn check_s3(s3: &mut S3Config, env: &BTreeMap<String, String>, at: &mut At) {
    if let Some(endpoint) = &s3.endpoint {
        check_endpoint(endpoint, s3.allow_http, at);
    }
    if !is_bucket_name(&s3.bucket) {
        at.bad(
            "bucket",
            "must be an S3 bucket name: 3 to 63 characters of a-z, 0-9, '.' and '-', \
             starting and ending with a letter or digit",
        );
    }
    let region_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if !(1..=32).contains(&s3.region.len()) || !s3.region.bytes().all(region_char) {
        at.bad("region", "must be a region name such as us-east-1");
    }
    if let Some(prefix) = &s3.prefix {
        check_prefix(prefix, at);
    }
    s3.access_key_id = load_credential(
        "S3 access key id",
        ("access_key_id_env", &s3.access_key_id_env),
        ("access_key_id_file", &s3.access_key_id_file),
        env,
        at,
    );
    s3.secret_access_key = load_credential(
        "S3 secret access key",
        ("secret_access_key_env", &s3.secret_access_key_env),
        ("secret_access_key_file", &s3.secret_access_key_file),
        env,
        at,
    );
}

fn check_endpoint(endpoint: &str, allow_http: bool, at: &mut At) {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok_and(|p| p > 0) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = is_host_name(host) || host.parse::<std::net::IpAddr>().is_ok();
    if !matches!(scheme, "https" | "http") || !host_ok {
        at.bad("endpoint", "must be https://host[:port] (no path)");
    } else if scheme == "http" && !allow_http {
        at.bad(
            "endpoint",
            "is plain http: set allow_http = true to send signed requests unencrypted \
             (for a server on loopback only)",
        );
    }
}

/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn is_bucket_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(allowed)
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && !name.contains("..")
}

/// Segments of safe characters joined by `/`: no empty or dot segments, so
/// the prefix names exactly one place in the bucket.
fn check_prefix(prefix: &str, at: &mut At) {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let segment_ok = |s: &str| !s.is_empty() && s != "." && s != ".." && s.bytes().all(allowed);
    if prefix.len() > 256 || !prefix.split('/').all(segment_ok) {
        at.bad(
            "prefix",
            "must be path segments of a-z, A-Z, 0-9, '-', '_' and '.' joined by '/', \
             with no leading or trailing '/'",
        );
    }
}

/// One credential from the variable or the file named by a pair of keys;
/// `owner` names it in messages.
pub(super) fn load_credential(
    owner: &str,
    (env_key, var): (&str, &Option<String>),
    (file_key, path): (&str, &Option<PathBuf>),
    env: &BTreeMap<String, String>,
    at: &mut At,
) -> Option<Secret> {
    let loaded = match (var, path) {
        (Some(var), None) => {
            password_from_env(owner, var, env).map_err(|e| (env_key, e.to_string()))
        }
        (None, Some(path)) => {
            password_from_file(owner, path).map_err(|e| (file_key, e.to_string()))
        }
        (Some(_), Some(_)) => Err((file_key, format!("set {env_key} or {file_key}, not both"))),
        (None, None) => Err((
            env_key,
            format!("is required: set {env_key} or {file_key} (secrets are never inline)"),
        )),
    };
    loaded.map_err(|(key, message)| at.bad(key, message)).ok()
}
