//! Turns the merged TOML table into typed sections, one problem per bad key.
//!
//! serde stops at the first error, so each section (and each trunk and route)
//! is deserialized on its own, and after an error the offending key is taken
//! out and the section tried again: its default then stands in, and the next
//! bad key in the same section gets reported too.

use serde::de::DeserializeOwned;
use std::collections::BTreeSet;

use super::calls::{DatabaseConfig, LimitsConfig, WebrtcConfig};
use super::cluster::ClusterConfig;
use super::http::HttpConfig;
use super::problem::ConfigProblem;
use super::recording::RecordingConfig;
use super::schema::{
    Config, ConfigSource, EchoTrunkConfig, LogConfig, MediaConfig, NodeConfig, RouteConfig,
    SipConfig, TrunkConfig,
};
use super::webhooks::WebhooksConfig;

/// The sections as far as they parsed; `None` marks one that did not (a
/// section with a bad key parses with that key's default, see [`section`]).
pub(super) struct Parsed {
    pub node: Option<NodeConfig>,
    pub http: Option<HttpConfig>,
    pub log: Option<LogConfig>,
    pub sip: Option<SipConfig>,
    pub trunks: Vec<Option<TrunkConfig>>,
    pub routes: Vec<Option<RouteConfig>>,
    pub media: Option<MediaConfig>,
    pub echo_trunk: Option<EchoTrunkConfig>,
    pub webrtc: Option<WebrtcConfig>,
    pub limits: Option<LimitsConfig>,
    pub database: Option<DatabaseConfig>,
    pub recording: Option<RecordingConfig>,
    pub webhooks: Option<WebhooksConfig>,
    pub cluster: Option<ClusterConfig>,
}

impl Parsed {
    /// The whole config, or `None` if any part failed to parse.
    pub fn assemble(self, source: ConfigSource) -> Option<Config> {
        let mut sip = self.sip?;
        sip.trunks = self.trunks.into_iter().collect::<Option<_>>()?;
        sip.routes = self.routes.into_iter().collect::<Option<_>>()?;
        Some(Config {
            node: self.node?,
            http: self.http?,
            log: self.log?,
            sip,
            media: self.media?,
            echo_trunk: self.echo_trunk?,
            webrtc: self.webrtc?,
            limits: self.limits?,
            database: self.database?,
            recording: self.recording?,
            webhooks: self.webhooks?,
            cluster: self.cluster?,
            source,
        })
    }
}

pub(super) const SECTIONS: [&str; 12] = [
    "node",
    "http",
    "log",
    "sip",
    "media",
    "echo_trunk",
    "webrtc",
    "limits",
    "database",
    "recording",
    "webhooks",
    "cluster",
];

pub(super) fn parse(mut table: toml::Table, problems: &mut Vec<ConfigProblem>) -> Parsed {
    for unknown in table.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        let expected = SECTIONS.map(|s| format!("[{s}]")).join(", ");
        problems.push(ConfigProblem::new(
            unknown,
            format!("unknown section (expected one of {expected})"),
        ));
    }
    let mut take = |key: &str| take_table(key, &mut table, problems);
    let (node, http, log, mut sip) = (take("node"), take("http"), take("log"), take("sip"));
    let (media, echo_trunk) = (take("media"), take("echo_trunk"));
    let (webrtc, limits, database) = (take("webrtc"), take("limits"), take("database"));
    let (recording, webhooks, cluster) = (take("recording"), take("webhooks"), take("cluster"));
    let mut take_list = |key: &str| sip.as_mut().and_then(|t| t.remove(key));
    let (trunks, routes) = (take_list("trunks"), take_list("routes"));
    let trunks = take_array("sip.trunks", trunks, problems);
    let routes = take_array("sip.routes", routes, problems);
    Parsed {
        node: section("node", node, problems),
        http: section("http", http, problems),
        log: section("log", log, problems),
        sip: section("sip", sip, problems),
        trunks: indexed("sip.trunks", trunks, problems),
        routes: indexed("sip.routes", routes, problems),
        media: section("media", media, problems),
        echo_trunk: section("echo_trunk", echo_trunk, problems),
        webrtc: section("webrtc", webrtc, problems),
        limits: section("limits", limits, problems),
        database: section("database", database, problems),
        recording: section("recording", recording, problems),
        webhooks: section("webhooks", webhooks, problems),
        cluster: section("cluster", cluster, problems),
    }
}

/// An inline `password` would put a secret into a file that gets copied,
/// committed and pasted into tickets; it is reported, then dropped so the rest
/// of the trunk still gets checked.
pub(super) fn reject_inline_passwords(table: &mut toml::Table, problems: &mut Vec<ConfigProblem>) {
    for (i, trunk) in trunk_tables_mut(table).enumerate() {
        if trunk.remove("password").is_some() {
            problems.push(ConfigProblem::new(
                format!("sip.trunks[{i}].password"),
                "inline secrets are not allowed; secrets come from the environment \
                 (password_env) or a file (password_file)",
            ));
        }
    }
}

/// The variables named by a trunk's or the database's `password_env`:
/// secrets, not settings, even when they start with `CALLGATE_`.
pub(super) fn password_env_names(table: &toml::Table) -> BTreeSet<String> {
    let trunks = table
        .get("sip")
        .and_then(|sip| sip.get("trunks"))
        .and_then(toml::Value::as_array);
    let database = table.get("database");
    trunks
        .into_iter()
        .flatten()
        .chain(database)
        .filter_map(|owner| owner.get("password_env")?.as_str())
        .map(str::to_owned)
        .collect()
}

fn trunk_tables_mut(table: &mut toml::Table) -> impl Iterator<Item = &mut toml::Table> {
    table
        .get_mut("sip")
        .and_then(|sip| sip.get_mut("trunks"))
        .and_then(toml::Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_table_mut)
}

fn take_table(
    key: &str,
    table: &mut toml::Table,
    problems: &mut Vec<ConfigProblem>,
) -> Option<toml::Table> {
    match table.remove(key) {
        None => Some(toml::Table::new()),
        Some(toml::Value::Table(section)) => Some(section),
        Some(_) => {
            problems.push(ConfigProblem::new(key, "must be a table"));
            None
        }
    }
}

fn take_array(
    key: &str,
    value: Option<toml::Value>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Option<toml::Table>> {
    let items = match value {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(ConfigProblem::new(key, "must be an array of tables"));
            return Vec::new();
        }
    };
    let tables = items.into_iter().enumerate().map(|(i, item)| match item {
        toml::Value::Table(t) => Some(t),
        _ => {
            problems.push(ConfigProblem::new(format!("{key}[{i}]"), "must be a table"));
            None
        }
    });
    tables.collect()
}

fn indexed<T: DeserializeOwned>(
    key: &str,
    tables: Vec<Option<toml::Table>>,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Option<T>> {
    let each = tables.into_iter().enumerate();
    each.map(|(i, t)| section(&format!("{key}[{i}]"), t, problems))
        .collect()
}

/// Deserializes one section, reporting each bad key (see the module doc).
fn section<T: DeserializeOwned>(
    prefix: &str,
    table: Option<toml::Table>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    let mut table = table?;
    // Each round removes one key, so this ends within len + 1 rounds. What
    // parses after a removal is still returned, with defaults in place of the
    // bad keys, so the semantic checks run on the rest; the load fails anyway
    // because a problem was recorded.
    for _ in 0..=table.len() {
        let value = toml::Value::Table(table.clone());
        let error = match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(parsed) => return Some(parsed),
            Err(error) => error,
        };
        let (key, message) = describe(error.path().to_string(), error.inner().message());
        let top = key.split(['.', '[']).next().unwrap_or_default().to_owned();
        let full_key = if key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        problems.push(ConfigProblem::new(full_key, message));
        // A key that is not there (a missing required field) cannot be
        // defaulted away: the section stays unparsed.
        table.remove(&top)?;
    }
    None
}

/// Points "unknown field" and "missing field" errors at the key they name,
/// rather than at the table that holds it.
fn describe(path: String, message: &str) -> (String, String) {
    let path = if path == "." { String::new() } else { path };
    // serde_path_to_error already ends the path with an unknown key's name.
    let join = |name: &str| match path.as_str() {
        "" => name.to_owned(),
        p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        p => format!("{p}.{name}"),
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let expected = expected.trim_start_matches(", ");
            return (join(name), format!("unknown setting ({expected})"));
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return (join(name), "is required".to_owned());
        }
    }
    (path, message.to_owned())
}
