//! Secrets the config names but never holds: read from an environment
//! variable or a file, with errors that say whose secret and where, never
//! what it is.

use std::collections::BTreeMap;
use std::path::Path;

use crate::privacy::Secret;

/// Why a secret could not be read; the first field names its owner
/// (`trunk "a"`, `database`).
#[derive(Debug, thiserror::Error)]
pub(super) enum SecretSourceError {
    #[error("{0}: {1:?} is not an environment variable name (A-Z, 0-9, _)")]
    BadVariable(String, String),
    #[error("{0}: environment variable {1} is not set")]
    Unset(String, String),
    #[error("{0}: environment variable {1} is empty")]
    EmptyVariable(String, String),
    #[error("{owner}: cannot read password file {path}: {source}")]
    Unreadable {
        owner: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: password file {1} is empty")]
    EmptyFile(String, String),
}

/// `owner` names what the secret belongs to in messages (`trunk "a"`).
pub(super) fn password_from_env(
    owner: &str,
    var: &str,
    env: &BTreeMap<String, String>,
) -> Result<Secret, SecretSourceError> {
    let valid_name = var.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && var
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(SecretSourceError::BadVariable(
            owner.to_owned(),
            var.to_owned(),
        ));
    }
    match env.get(var).map(String::as_str) {
        None => Err(SecretSourceError::Unset(owner.to_owned(), var.to_owned())),
        Some("") => Err(SecretSourceError::EmptyVariable(
            owner.to_owned(),
            var.to_owned(),
        )),
        Some(value) => Ok(Secret::new(value)),
    }
}

/// One trailing line ending is dropped: editors add it, passwords never end in one.
pub(super) fn password_from_file(owner: &str, path: &Path) -> Result<Secret, SecretSourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretSourceError::Unreadable {
        owner: owner.to_owned(),
        path: path.display().to_string(),
        source,
    })?;
    let line = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if line.is_empty() {
        return Err(SecretSourceError::EmptyFile(
            owner.to_owned(),
            path.display().to_string(),
        ));
    }
    Ok(Secret::new(line))
}
