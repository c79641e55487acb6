//! `CALLGATE_<SECTION>_<KEY>` environment overrides.
//!
//! The set of overridable keys is not listed by hand: it is read from the
//! serialized defaults of each section, so a key added to a section struct is
//! overridable at once. Every scalar key of a top-level section can be set
//! (arrays such as trunks and routes cannot). The value is converted to the
//! key's TOML type and merged into the parsed table before deserialization, so
//! env values are checked by exactly the same path as file values. An empty
//! value removes the key, so its default applies.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::calls::{DatabaseConfig, LimitsConfig, WebrtcConfig};
use super::cluster::ClusterConfig;
use super::http::HttpConfig;
use super::problem::ConfigProblem;
use super::recording::RecordingConfig;
use super::schema::{EchoTrunkConfig, LogConfig, MediaConfig, NodeConfig, SipConfig};
use super::webhooks::WebhooksConfig;

pub(super) const PREFIX: &str = "CALLGATE_";

/// `CALLGATE_*` variables that are not settings.
const NOT_SETTINGS: &[&str] = &[
    // The config file path, read by the command line.
    "CALLGATE_CONFIG",
];

/// Short names kept for the public contract: `CALLGATE_DATA_DIR` has always
/// meant `node.data_dir`.
const ALIASES: &[(&str, &str, &str)] = &[("CALLGATE_DATA_DIR", "node", "data_dir")];

/// Where a dotted key's value came from, to point problems at the variable.
pub(super) type Origins = BTreeMap<String, String>;

pub(super) fn apply_overrides(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
    secrets: &BTreeSet<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Origins {
    let shapes = shapes();
    let mut origins = Origins::new();
    let settings = env.iter().filter(|(name, _)| {
        name.starts_with(PREFIX)
            && !NOT_SETTINGS.contains(&name.as_str())
            && !secrets.contains(*name)
    });
    for (name, value) in settings {
        let Some((section, key, shape)) = lookup(&shapes, name) else {
            problems.push(ConfigProblem::new(
                name,
                "unknown setting (CALLGATE_<SECTION>_<KEY> must name a scalar key of a config section)",
            ));
            continue;
        };
        let dotted = format!("{section}.{key}");
        if let Some(other) = origins.get(&dotted) {
            problems.push(ConfigProblem::new(
                name,
                format!("sets {dotted}, as {other} does; set only one"),
            ));
            continue;
        }
        match convert(value, shape) {
            Ok(converted) => set(table, section, key, converted),
            Err(wrong) => problems.push(ConfigProblem::new(&dotted, wrong.to_string())),
        }
        origins.insert(dotted, name.clone());
    }
    origins
}

/// Adds "(set by VAR)" to problems with a key that came from the environment.
pub(super) fn annotate(problems: Vec<ConfigProblem>, origins: &Origins) -> Vec<ConfigProblem> {
    let annotate_one = |mut problem: ConfigProblem| {
        if let Some(var) = origins.get(&problem.key) {
            problem.message = format!("{} (set by {var})", problem.message);
        }
        problem
    };
    problems.into_iter().map(annotate_one).collect()
}

/// Each section's defaults as JSON: the keys, and from the values their
/// types. An unset optional key serializes as null; all of those are
/// strings (addresses, paths, URLs), which is what [`convert`] assumes.
fn shapes() -> Vec<(&'static str, serde_json::Map<String, Json>)> {
    let sections = [
        ("node", serde_json::to_value(NodeConfig::default())),
        ("http", serde_json::to_value(HttpConfig::default())),
        ("log", serde_json::to_value(LogConfig::default())),
        ("sip", serde_json::to_value(SipConfig::default())),
        ("media", serde_json::to_value(MediaConfig::default())),
        (
            "echo_trunk",
            serde_json::to_value(EchoTrunkConfig::default()),
        ),
        ("webrtc", serde_json::to_value(WebrtcConfig::default())),
        ("limits", serde_json::to_value(LimitsConfig::default())),
        ("database", serde_json::to_value(DatabaseConfig::default())),
        (
            "recording",
            serde_json::to_value(RecordingConfig::default()),
        ),
        ("webhooks", serde_json::to_value(WebhooksConfig::default())),
        ("cluster", serde_json::to_value(ClusterConfig::default())),
    ];
    let objects = sections
        .into_iter()
        .filter_map(|(name, value)| match value {
            Ok(Json::Object(fields)) => Some((name, fields)),
            _ => None,
        });
    objects.collect()
}

fn lookup<'a>(
    shapes: &'a [(&'static str, serde_json::Map<String, Json>)],
    var: &str,
) -> Option<(&'static str, &'a str, &'a Json)> {
    let alias = ALIASES.iter().find(|(name, _, _)| *name == var);
    shapes.iter().find_map(|(section, fields)| {
        let (name, shape) = fields.iter().find(|(name, shape)| {
            let scalar = !shape.is_array() && !shape.is_object();
            let named = match alias {
                Some((_, s, k)) => s == section && k == name,
                None => {
                    var == format!(
                        "{PREFIX}{}_{}",
                        section.to_ascii_uppercase(),
                        name.to_ascii_uppercase()
                    )
                }
            };
            scalar && named
        })?;
        Some((*section, name.as_str(), shape))
    })
}

/// A variable's value that does not fit its key's type.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ValueError {
    #[error("expected true or false")]
    NotABool,
    #[error("expected an integer")]
    NotAnInteger,
}

/// `None` means "remove the key".
fn convert(value: &str, shape: &Json) -> Result<Option<toml::Value>, ValueError> {
    if value.is_empty() {
        return Ok(None);
    }
    let converted = match shape {
        Json::Bool(_) => match value {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(ValueError::NotABool),
        },
        Json::Number(_) => match value.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => return Err(ValueError::NotAnInteger),
        },
        _ => toml::Value::String(value.to_owned()),
    };
    Ok(Some(converted))
}

fn set(table: &mut toml::Table, section: &str, key: &str, value: Option<toml::Value>) {
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    // A section that is not a table is reported by the parser; leave it be.
    let Some(section) = entry.as_table_mut() else {
        return;
    };
    match value {
        Some(value) => {
            section.insert(key.to_owned(), value);
        }
        None => {
            section.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scalar_key_of_every_section_is_overridable() {
        let shapes = shapes();
        let names: Vec<String> = shapes.iter().map(|(s, _)| s.to_string()).collect();
        assert_eq!(
            names,
            [
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
                "cluster"
            ]
        );
        for var in [
            "CALLGATE_NODE_ID",
            "CALLGATE_NODE_DATA_DIR",
            "CALLGATE_DATA_DIR",
            "CALLGATE_HTTP_LISTEN",
            "CALLGATE_HTTP_PUBLIC_URL",
            "CALLGATE_LOG_FORMAT",
            "CALLGATE_SIP_LISTEN_TLS",
            "CALLGATE_SIP_RING_TIMEOUT_SECS",
            "CALLGATE_MEDIA_RTP_PORT_MIN",
            "CALLGATE_MEDIA_PUBLIC_IP",
            "CALLGATE_ECHO_TRUNK_ENABLED",
            "CALLGATE_ECHO_TRUNK_LISTEN",
            "CALLGATE_WEBRTC_LISTEN",
            "CALLGATE_WEBRTC_PUBLIC_ADDRESS",
            "CALLGATE_LIMITS_CALLS_PER_MINUTE_PER_IP",
            "CALLGATE_DATABASE_URL",
        ] {
            assert!(lookup(&shapes, var).is_some(), "{var}");
        }
    }

    #[test]
    fn arrays_and_near_misses_are_not_settings() {
        let shapes = shapes();
        for var in [
            "CALLGATE_SIP_TRUNKS",
            "CALLGATE_SIP_ROUTES",
            "CALLGATE_SIP",
            "CALLGATE_HTTP_LISTN",
            "CALLGATE_HTTPLISTEN",
            "CALLGATE_http_listen",
            "CALLGATE_ECHO_LISTEN",
            "CALLGATE_WEBRTC_ICE_SERVERS",
        ] {
            assert!(lookup(&shapes, var).is_none(), "{var}");
        }
    }

    #[test]
    fn values_take_the_type_of_their_key() {
        assert_eq!(
            convert("42", &Json::from(1)),
            Ok(Some(toml::Value::Integer(42)))
        );
        assert_eq!(
            convert("true", &Json::Bool(false)),
            Ok(Some(toml::Value::Boolean(true)))
        );
        assert_eq!(
            convert("42", &Json::Null),
            Ok(Some(toml::Value::String("42".into())))
        );
        assert_eq!(convert("", &Json::from(1)), Ok(None));
        assert!(convert("yes", &Json::Bool(false)).is_err());
        assert!(convert("4.5", &Json::from(1)).is_err());
    }
}
