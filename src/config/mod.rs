//! The node's configuration: schema, defaults, loading and validation.
//!
//! A config comes from a TOML file (or the embedded development default when
//! no file is given), then `CALLGATE_<SECTION>_<KEY>` environment overrides,
//! then validation. Invariants:
//! - Every bad setting is reported, not just the first: loading collects a
//!   [`ConfigProblem`] per bad key and fails with all of them at once.
//! - An unknown key, in the file or as a `CALLGATE_*` variable, is a bad setting.
//! - Secrets never come from the config text: an inline trunk `password` is
//!   rejected; passwords are read from an environment variable or a file at
//!   load time into a [`Secret`].
//! - The source is injectable ([`Config::load`]), so tests never touch the
//!   process environment.
//!
//! SIP defaults cite RFC 3261 where they come from it.

mod address;
mod at;
mod calls;
mod cluster;
mod env;
mod http;
mod problem;
mod recording;
mod s3;
mod schema;
mod secret_source;
mod sections;
mod validate;
mod webhooks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use self::address::HostPort;
pub use self::calls::{BrowserCodec, DatabaseConfig, IceServerConfig, LimitsConfig, WebrtcConfig};
pub use self::cluster::ClusterConfig;
pub use self::http::{AcmeConfig, HttpConfig};
pub use self::problem::ConfigProblem;
pub use self::recording::{KekConfig, RecordingConfig};
pub use self::s3::S3Config;
pub use self::schema::{
    Config, ConfigSource, ECHO_TRUNK_NAME, EchoTrunkConfig, LogConfig, LogFormat, MediaConfig,
    NodeConfig, NodeId, RouteConfig, RouteName, SipConfig, SrtpMode, Transport, TrunkConfig,
    TrunkName,
};
pub use self::webhooks::WebhooksConfig;

/// The configuration a node runs on when started without a file.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config is not valid toml: line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", display_problems(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn display_problems(problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl Config {
    /// Loads `toml_text` (the embedded default when `None`) with the given
    /// environment applied as overrides, and validates the result.
    pub fn load(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let source = match toml_text {
            Some(_) => ConfigSource::Text,
            None => ConfigSource::EmbeddedDefault,
        };
        load_from(toml_text.unwrap_or(EMBEDDED_DEFAULT), env, source)
    }

    /// Loads the file at `path` (or the embedded default) with this process's
    /// environment. Variables that are not valid UTF-8 are ignored.
    pub fn from_process(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let Some(path) = path else {
            return load_from(EMBEDDED_DEFAULT, env, ConfigSource::EmbeddedDefault);
        };
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        load_from(&text, env, ConfigSource::File(path.to_owned()))
    }
}

fn load_from(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    source: ConfigSource,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let mut problems = Vec::new();
    sections::reject_inline_passwords(&mut table, &mut problems);
    let mut secret_vars = sections::password_env_names(&table);
    secret_vars.extend(recording::secret_env_names(&table));
    secret_vars.extend(cluster::cluster_env_names(&table));
    let origins = env::apply_overrides(&mut table, &env, &secret_vars, &mut problems);
    let mut parsed = sections::parse(table, &mut problems);
    validate::validate(&mut parsed, &env, &mut problems);
    let config = parsed.assemble(source);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid(env::annotate(problems, &origins))),
    }
}

/// Built from the error's message and position only: the toml crate's own
/// rendering quotes the offending line, which may hold a secret.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    ConfigError::Syntax {
        line,
        column,
        message: error.message().trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests;
