//! Semantic checks on the parsed sections, and loading of trunk secrets.
//!
//! Every check runs on whatever parsed, so one load reports every problem.
//! Checks that span sections (routes naming trunks, listeners sharing an
//! address) run only when the parts they compare parsed, to avoid reporting
//! a follow-on error for something already reported.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use super::address::is_host_name;
use super::at::At;
use super::calls;
use super::problem::ConfigProblem;
use super::schema::{
    ECHO_TRUNK_NAME, EchoTrunkConfig, LogConfig, MediaConfig, NodeConfig, RouteConfig, SipConfig,
    SrtpMode, Transport, TrunkConfig,
};
use super::secret_source::{password_from_env, password_from_file};
use super::sections::Parsed;
use super::{cluster, http, recording, webhooks};
use crate::privacy::Secret;

pub(super) fn validate(
    parsed: &mut Parsed,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigProblem>,
) {
    if let Some(node) = &parsed.node {
        check_node(node, &mut At::new("node", problems));
    }
    if let Some(http) = &parsed.http {
        http::check_http(http, &mut At::new("http", problems));
    }
    if let Some(log) = &parsed.log {
        check_log(log, &mut At::new("log", problems));
    }
    if let Some(sip) = &parsed.sip {
        check_sip(sip, &mut At::new("sip", problems));
    }
    for (i, trunk) in parsed.trunks.iter_mut().enumerate() {
        if let Some(trunk) = trunk {
            let mut at = At::new(format!("sip.trunks[{i}]"), problems);
            check_trunk(trunk, &mut at);
            trunk.password = load_password(trunk, env, &mut at);
        }
    }
    for (i, route) in parsed.routes.iter().enumerate() {
        if let Some(route) = route {
            check_route(route, &mut At::new(format!("sip.routes[{i}]"), problems));
        }
    }
    if let Some(media) = &parsed.media {
        check_media(media, &mut At::new("media", problems));
    }
    if let Some(webrtc) = &mut parsed.webrtc {
        calls::check_webrtc(webrtc, env, &mut At::new("webrtc", problems));
    }
    if let Some(limits) = &parsed.limits {
        calls::check_limits(limits, &mut At::new("limits", problems));
    }
    if let Some(database) = &mut parsed.database {
        calls::check_database(database, env, &mut At::new("database", problems));
    }
    if let Some(recording) = &mut parsed.recording {
        recording::check_recording(recording, env, &mut At::new("recording", problems));
    }
    if let Some(webhooks) = &parsed.webhooks {
        webhooks::check_webhooks(webhooks, &mut At::new("webhooks", problems));
    }
    if let Some(cluster) = &mut parsed.cluster {
        cluster::check_cluster(cluster, env, &mut At::new("cluster", problems));
    }
    if let Some(echo) = &parsed.echo_trunk {
        add_echo_trunk(echo, &mut parsed.trunks, problems);
    }
    check_unique_names(parsed, problems);
    check_route_targets(parsed, problems);
    check_listener_clashes(parsed, problems);
}

fn check_node(node: &NodeConfig, at: &mut At) {
    let id = node.id.as_str();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
        at.bad(
            "id",
            "must be 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' or '-'",
        );
    }
    if node.data_dir.as_os_str().is_empty() {
        at.bad("data_dir", "must not be empty");
    }
    at.range("drain_timeout_secs", node.drain_timeout_secs, 0..=86_400);
}

fn check_log(log: &LogConfig, at: &mut At) {
    if let Err(message) = check_log_level(&log.level) {
        at.bad("level", message);
    }
}

/// Why a log level is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogLevelError {
    #[error(
        "{0:?} is not a level (off, error, warn, info, debug, trace) or a target=level directive"
    )]
    NotALevel(String),
    #[error("is not a valid filter: {0}")]
    BadFilter(String),
}

/// A bare word in a tracing filter means "everything from this target", so a
/// misspelt level (`inf`) would silently log nothing useful; bare words must be
/// level names, and target filters must say `target=level`.
pub(crate) fn check_log_level(level: &str) -> Result<(), LogLevelError> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let directives: Vec<&str> = level.split(',').map(str::trim).collect();
    for directive in &directives {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(LogLevelError::NotALevel((*directive).to_owned()));
        }
    }
    match tracing_subscriber::EnvFilter::builder().parse(level) {
        Ok(_) => Ok(()),
        Err(e) => Err(LogLevelError::BadFilter(e.to_string())),
    }
}

fn check_sip(sip: &SipConfig, at: &mut At) {
    let tls_files = [
        ("tls_cert_file", &sip.tls_cert_file),
        ("tls_key_file", &sip.tls_key_file),
    ];
    for (key, file) in tls_files {
        match (file, sip.listen_tls.is_some()) {
            (Some(path), true) => at.readable(key, path),
            (None, true) => at.bad(key, "is required when sip.listen_tls is set"),
            (Some(_), false) => at.bad(key, "is only used with sip.listen_tls, which is not set"),
            (None, false) => {}
        }
    }
    if !is_header_value(&sip.user_agent) {
        at.bad("user_agent", "must be 1 to 128 printable characters");
    }
    at.range("ring_timeout_secs", sip.ring_timeout_secs, 1..=600);
    at.range(
        "max_call_duration_secs",
        sip.max_call_duration_secs,
        10..=86_400,
    );
    at.range(
        "options_interval_secs",
        sip.options_interval_secs,
        0..=3_600,
    );
    at.range(
        "trunk_down_after_failures",
        sip.trunk_down_after_failures,
        1..=100,
    );
    at.range("invite_timeout_secs", sip.invite_timeout_secs, 1..=300);
    at.range(
        "max_connections_per_source",
        sip.max_connections_per_source,
        1..=10_000,
    );
    at.range(
        "requests_per_second_per_source",
        sip.requests_per_second_per_source,
        1..=100_000,
    );
    let session_expires = sip.session_expires_secs;
    if session_expires != 0 && !(90..=86_400).contains(&session_expires) {
        at.bad(
            "session_expires_secs",
            "must be 0 (none) or between 90 and 86400 (RFC 4028's smallest is 90)",
        );
    }
    for entry in &sip.trusted_sources {
        if let Err(message) = super::http::parse_net(entry) {
            at.bad("trusted_sources", message);
        }
    }
}

/// Control characters in a value that ends up in a SIP header would let the
/// config inject header lines.
fn is_header_value(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.chars().all(|c| !c.is_control())
}

fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

const NAME_RULE: &str = "must be 1 to 32 characters of a-z, 0-9, '_' or '-'";

fn check_trunk(trunk: &TrunkConfig, at: &mut At) {
    if !is_name(trunk.name.as_str()) {
        at.bad("name", NAME_RULE);
    }
    if !is_sip_user(&trunk.from_user) {
        at.bad(
            "from_user",
            "must be a SIP user part: letters, digits and -_.!~*'()&=+$,;?/",
        );
    }
    if let Some(domain) = &trunk.from_domain {
        if !is_host_name(domain) && domain.parse::<IpAddr>().is_err() {
            at.bad("from_domain", "must be a host name or IP address");
        }
    }
    if trunk
        .username
        .as_deref()
        .is_some_and(|u| !is_header_value(u))
    {
        at.bad("username", "must be 1 to 128 printable characters");
    }
    check_trunk_tls(trunk, at);
    if trunk.codecs.is_empty() {
        at.bad("codecs", "must list at least one codec");
    }
    for (i, codec) in trunk.codecs.iter().enumerate() {
        if !codec.is_g711() {
            at.bad(&format!("codecs[{i}]"), "a trunk carries PCMU or PCMA");
        }
    }
    for (i, _) in repeats(&trunk.codecs) {
        at.bad(&format!("codecs[{i}]"), "is listed twice");
    }
    at.range("dtmf_payload_type", trunk.dtmf_payload_type, 96..=127);
}

fn check_trunk_tls(trunk: &TrunkConfig, at: &mut At) {
    let tls = trunk.transport == Transport::Tls;
    if let Some(path) = &trunk.tls_ca_file {
        if tls {
            at.readable("tls_ca_file", path);
        } else {
            at.bad("tls_ca_file", "is only used with transport \"tls\"");
        }
    }
    if let Some(name) = &trunk.tls_server_name {
        if !tls {
            at.bad("tls_server_name", "is only used with transport \"tls\"");
        } else if !is_host_name(name) {
            at.bad("tls_server_name", "must be a host name");
        }
    }
    if trunk.srtp == SrtpMode::Sdes && !tls {
        at.bad(
            "srtp",
            "\"sdes\" carries the keys in the SDP, so it needs transport \"tls\" (RFC 4568 §8)",
        );
    }
}

/// RFC 3261 §25.1 `user`: unreserved, escaped and user-unreserved characters.
fn is_sip_user(user: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b);
    (1..=64).contains(&user.len()) && user.bytes().all(allowed)
}

fn load_password(
    trunk: &TrunkConfig,
    env: &BTreeMap<String, String>,
    at: &mut At,
) -> Option<Secret> {
    let name = format!("trunk {:?}", trunk.name.as_str());
    let name = name.as_str();
    match (&trunk.password_env, &trunk.password_file) {
        (Some(_), Some(_)) => {
            at.bad(
                "password_file",
                "set password_env or password_file, not both",
            );
            None
        }
        (None, None) => {
            if trunk.username.is_some() {
                at.bad(
                    "username",
                    "needs password_env or password_file for the password",
                );
            }
            None
        }
        (Some(var), None) => {
            let secret = password_from_env(name, var, env).map_err(|m| at.bad("password_env", m));
            check_password_needs_username(trunk, "password_env", at);
            secret.ok()
        }
        (None, Some(path)) => {
            let secret = password_from_file(name, path).map_err(|m| at.bad("password_file", m));
            check_password_needs_username(trunk, "password_file", at);
            secret.ok()
        }
    }
}

fn check_password_needs_username(trunk: &TrunkConfig, key: &str, at: &mut At) {
    if trunk.username.is_none() {
        at.bad(key, "is only used with username, which is not set");
    }
}

fn check_route(route: &RouteConfig, at: &mut At) {
    if !is_name(route.name.as_str()) {
        at.bad("name", NAME_RULE);
    }
    if route.trunks.is_empty() {
        at.bad("trunks", "must name at least one trunk");
    }
    for (i, trunk) in repeats(&route.trunks) {
        let message = format!("trunk {:?} is listed twice", trunk.as_str());
        at.bad(&format!("trunks[{i}]"), message);
    }
}

/// The items equal to an earlier one, with their positions.
fn repeats<T: PartialEq>(items: &[T]) -> impl Iterator<Item = (usize, &T)> {
    let seen_before = |(i, item): &(usize, &T)| items.get(..*i).is_some_and(|b| b.contains(item));
    items.iter().enumerate().filter(seen_before)
}

fn check_media(media: &MediaConfig, at: &mut At) {
    if let Some(ip) = media.public_ip {
        if ip.is_unspecified() || ip.is_multicast() {
            at.bad(
                "public_ip",
                "must be a unicast address that peers can reach",
            );
        }
    }
    at.range("rtp_port_min", media.rtp_port_min, 1024..=65534);
    at.range("rtp_port_max", media.rtp_port_max, 1025..=65535);
    if media.rtp_port_min % 2 != 0 {
        at.bad(
            "rtp_port_min",
            "must be even (RTP uses even ports, RFC 3550 §11)",
        );
    }
    if media.rtp_port_max <= media.rtp_port_min {
        at.bad(
            "rtp_port_max",
            "must be greater than rtp_port_min (one RTP/RTCP pair at least)",
        );
    }
}

/// The echo trunk is a normal trunk to routes; its name is reserved while it runs.
fn add_echo_trunk(
    echo: &EchoTrunkConfig,
    trunks: &mut Vec<Option<TrunkConfig>>,
    problems: &mut Vec<ConfigProblem>,
) {
    if !echo.enabled {
        return;
    }
    if !echo.listen.ip().is_loopback() {
        let message = "must be a loopback address: the echo trunk answers anyone who reaches it";
        problems.push(ConfigProblem::new("echo_trunk.listen", message));
    }
    let mut reserved_name_taken = false;
    for (i, trunk) in trunks.iter().enumerate() {
        if trunk
            .as_ref()
            .is_some_and(|t| t.name.as_str() == ECHO_TRUNK_NAME)
        {
            let message = format!(
                "{ECHO_TRUNK_NAME:?} is reserved for the built-in echo trunk while echo_trunk.enabled is true"
            );
            problems.push(ConfigProblem::new(format!("sip.trunks[{i}].name"), message));
            reserved_name_taken = true;
        }
    }
    if reserved_name_taken {
        return;
    }
    trunks.push(Some(TrunkConfig::echo(echo.listen)));
}

fn check_unique_names(parsed: &Parsed, problems: &mut Vec<ConfigProblem>) {
    let trunk_names = parsed
        .trunks
        .iter()
        .map(|t| t.as_ref().map(|t| t.name.as_str()));
    report_duplicates("sip.trunks", trunk_names, problems);
    let route_names = parsed
        .routes
        .iter()
        .map(|r| r.as_ref().map(|r| r.name.as_str()));
    report_duplicates("sip.routes", route_names, problems);
}

fn report_duplicates<'a>(
    key: &str,
    names: impl Iterator<Item = Option<&'a str>>,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        let Some(name) = name else { continue };
        if let Some(first) = first_seen.get(name) {
            let message = format!("duplicate name {name:?} (also {key}[{first}])");
            problems.push(ConfigProblem::new(format!("{key}[{i}].name"), message));
        } else {
            first_seen.insert(name, i);
        }
    }
}

fn check_route_targets(parsed: &Parsed, problems: &mut Vec<ConfigProblem>) {
    check_dial_routes(parsed, problems);
    let Some(trunks) = parsed
        .trunks
        .iter()
        .map(Option::as_ref)
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let exists = |name: &str| trunks.iter().any(|t| t.name.as_str() == name);
    for (i, route) in parsed.routes.iter().enumerate() {
        let Some(route) = route else { continue };
        for (j, trunk) in route.trunks.iter().enumerate() {
            if !exists(trunk.as_str()) {
                let message = format!("no trunk is named {:?}", trunk.as_str());
                problems.push(ConfigProblem::new(
                    format!("sip.routes[{i}].trunks[{j}]"),
                    message,
                ));
            }
        }
    }
}

/// `[limits] dial_routes` names routes that exist.
fn check_dial_routes(parsed: &Parsed, problems: &mut Vec<ConfigProblem>) {
    let Some(dial_routes) = parsed.limits.as_ref().and_then(|l| l.dial_routes.as_ref()) else {
        return;
    };
    let exists = |name: &str| {
        let mut configured = parsed.routes.iter().flatten();
        configured.any(|r| r.name.as_str() == name)
    };
    for (i, route) in dial_routes.iter().enumerate() {
        if !exists(route) {
            let message = format!("no route is named {route:?}");
            problems.push(ConfigProblem::new(
                format!("limits.dial_routes[{i}]"),
                message,
            ));
        }
    }
}

/// Two listeners on one address would fail at bind time with a less helpful
/// message; port 0 (any free port) never clashes.
fn check_listener_clashes(parsed: &Parsed, problems: &mut Vec<ConfigProblem>) {
    let mut tcp: Vec<(&str, SocketAddr)> = Vec::new();
    let mut udp: Vec<(&str, SocketAddr)> = Vec::new();
    if let Some(http) = &parsed.http {
        tcp.push(("http.listen", http.listen));
    }
    if let Some(sip) = &parsed.sip {
        udp.push(("sip.listen_udp", sip.listen_udp));
        tcp.extend(sip.listen_tcp.map(|a| ("sip.listen_tcp", a)));
        tcp.extend(sip.listen_tls.map(|a| ("sip.listen_tls", a)));
    }
    if let Some(echo) = parsed.echo_trunk.as_ref().filter(|e| e.enabled) {
        udp.push(("echo_trunk.listen", echo.listen));
    }
    if let Some(webrtc) = &parsed.webrtc {
        udp.push(("webrtc.listen", webrtc.listen));
    }
    for listeners in [tcp, udp] {
        for (i, (key, addr)) in listeners.iter().enumerate() {
            let earlier = listeners.get(..i).unwrap_or_default();
            if let Some((other, _)) = earlier.iter().find(|(_, a)| a == addr && addr.port() != 0) {
                problems.push(ConfigProblem::new(
                    *key,
                    format!("uses the same address as {other}"),
                ));
            }
        }
    }
}
