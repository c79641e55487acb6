use std::time::Duration;

use super::*;
use crate::privacy::Secret;

const EXAMPLE: &str = include_str!("../../config/callgate.toml");

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(Some(text), env(vars))
}

fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<ConfigProblem> {
    match load(text, vars) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

fn message_for<'a>(problems: &'a [ConfigProblem], key: &str) -> &'a str {
    let found = problems.iter().find(|p| p.key == key);
    found.map_or_else(
        || panic!("no problem for {key} in {problems:?}"),
        |p| p.message.as_str(),
    )
}

const TRUNK: &str = "[[sip.trunks]]\nname = \"t\"\naddress = \"sip.example.net\"\n";

#[test]
fn embedded_default_is_the_documented_development_node() {
    let config = Config::load(None, Vec::new()).unwrap();
    assert_eq!(config.source, ConfigSource::EmbeddedDefault);
    assert_eq!(config.node.id.as_str(), "node-1");
    assert_eq!(config.node.data_dir, PathBuf::from("./data"));
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.http.base_url(), "http://127.0.0.1:8080");
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.sip.listen_udp.to_string(), "127.0.0.1:5060");
    assert_eq!(config.sip.invite_timeout(), Duration::from_secs(32));
    assert!(config.echo_trunk.enabled);
    let echo = config.trunk("echo").unwrap();
    assert_eq!(echo.address.to_string(), "127.0.0.1:5098");
    let demo = config.route("demo").unwrap();
    assert_eq!(demo.trunks, [TrunkName::new("echo")]);
    assert_eq!(config.media.rtp_ports().count(), 5000);
}

#[test]
fn echo_trunk_follows_its_listen_override() {
    let vars = [("CALLGATE_ECHO_TRUNK_LISTEN", "127.0.0.1:41000")];
    let config = Config::load(None, env(&vars)).unwrap();
    assert_eq!(config.trunk("echo").unwrap().port(), 41000);
}

#[test]
fn example_file_loads_every_setting() {
    let config = load(EXAMPLE, &[("CARRIER_A_PASSWORD", "s3cret")]).unwrap();
    let a = config.trunk("carrier-a").unwrap();
    assert_eq!(a.password.as_ref().map(Secret::expose), Some("s3cret"));
    assert_eq!(a.next_hop(), ("proxy.carrier-a.example", 5060));
    let b = config.trunk("carrier-b-tls").unwrap();
    assert_eq!(
        (b.transport, b.port(), b.srtp),
        (Transport::Tls, 5061, SrtpMode::Sdes)
    );
    assert_eq!(config.route("main").unwrap().trunks.len(), 2);
    assert!(!config.echo_trunk.enabled);
    assert!(config.trunk("echo").is_none());
}

#[test]
fn example_file_without_its_password_names_the_trunk_and_variable() {
    let problems = problems(EXAMPLE, &[]);
    let message = message_for(&problems, "sip.trunks[0].password_env");
    assert!(
        message.contains("carrier-a") && message.contains("CARRIER_A_PASSWORD"),
        "{message}"
    );
    assert_eq!(problems.len(), 1);
}

#[test]
fn every_bad_setting_is_reported_at_once() {
    let text = r#"
        [log]
        format = "xml"
        level = "inf"
        [sip]
        ring_timeout_secs = 0
        listen_udp = "not an address"
        [media]
        rtp_port_min = 30001
        rtp_port_max = 30000
        [[sip.trunks]]
        name = "Bad Name"
        address = "sip.example.net"
        dtmf_payload_type = 13
        [[sip.routes]]
        name = "r"
        trunks = ["missing"]
    "#;
    let problems = problems(text, &[]);
    let expected = [
        "log.format",
        "log.level",
        "sip.listen_udp",
        "sip.ring_timeout_secs",
        "sip.trunks[0].name",
        "sip.trunks[0].dtmf_payload_type",
        "media.rtp_port_min",
        "media.rtp_port_max",
        "sip.routes[0].trunks[0]",
    ];
    for key in expected {
        assert!(
            keys(&problems).contains(&key),
            "{key} missing from {problems:?}"
        );
    }
    assert_eq!(
        message_for(&problems, "sip.ring_timeout_secs"),
        "must be between 1 and 600"
    );
}

#[test]
fn invalid_error_prints_one_line_per_problem() {
    let text = "[sip]\nring_timeout_secs = 0\nmax_call_duration_secs = 1\n";
    let error = load(text, &[]).unwrap_err().to_string();
    assert_eq!(
        error,
        "sip.ring_timeout_secs: must be between 1 and 600\n\
         sip.max_call_duration_secs: must be between 10 and 86400"
    );
}

#[test]
fn unknown_keys_and_sections_are_bad_settings() {
    let text = format!("[http]\nlisten_addr = \"x\"\n[extra]\n{TRUNK}passwd_env = \"X\"\n");
    let problems = problems(&text, &[]);
    assert_eq!(
        keys(&problems),
        ["extra", "http.listen_addr", "sip.trunks[0].passwd_env"]
    );
    assert!(message_for(&problems, "http.listen_addr").starts_with("unknown setting"));
}

#[test]
fn missing_required_trunk_fields_are_named() {
    let problems = problems("[[sip.trunks]]\ntransport = \"udp\"\n", &[]);
    assert!(
        keys(&problems).contains(&"sip.trunks[0].name"),
        "{problems:?}"
    );
}

#[test]
fn wrongly_shaped_tables_are_reported_not_panicked_on() {
    let problems = problems("sip = 3\nhttp = [1]\n", &[]);
    assert_eq!(keys(&problems), ["http", "sip"]);
    let problems = problems_of("[sip]\ntrunks = 1\nroutes = [1]\n");
    assert_eq!(keys(&problems), ["sip.trunks", "sip.routes[0]"]);
}

fn problems_of(text: &str) -> Vec<ConfigProblem> {
    problems(text, &[])
}

#[test]
fn inline_password_is_rejected_and_the_trunk_still_checked() {
    let text = format!("{TRUNK}username = \"u\"\npassword = \"hunter2\"\ndtmf_payload_type = 1\n");
    let problems = problems_of(&text);
    let message = message_for(&problems, "sip.trunks[0].password");
    assert!(
        message.contains("environment") && message.contains("file"),
        "{message}"
    );
    assert!(keys(&problems).contains(&"sip.trunks[0].dtmf_payload_type"));
    assert!(!format!("{problems:?}").contains("hunter2"));
}

#[test]
fn syntax_errors_never_quote_the_offending_line() {
    let text = "[[sip.trunks]]\nname = \"t\"\npassword = \"hunter2\n";
    let error = load(text, &[]).unwrap_err();
    assert!(
        matches!(error, ConfigError::Syntax { line: 3, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn password_comes_from_the_named_variable() {
    let text = format!("{TRUNK}username = \"u\"\npassword_env = \"CALLGATE_T_PASSWORD\"\n");
    let config = load(&text, &[("CALLGATE_T_PASSWORD", "s3cr3t-value")]).unwrap();
    let trunk = config.trunk("t").unwrap();
    assert_eq!(trunk.password.as_ref().unwrap().expose(), "s3cr3t-value");
    assert!(
        !format!("{config:?}").contains("s3cr3t"),
        "secret in Debug output"
    );
}

#[test]
fn password_comes_from_a_file_without_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, "from-file\r\n").unwrap();
    let text = format!(
        "{TRUNK}username = \"u\"\npassword_file = {:?}\n",
        path.to_str().unwrap()
    );
    let config = load(&text, &[]).unwrap();
    assert_eq!(
        config
            .trunk("t")
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "from-file"
    );
}

#[test]
fn unreadable_password_file_names_the_trunk() {
    let text = format!("{TRUNK}username = \"u\"\npassword_file = \"/nonexistent/pw\"\n");
    let problems = problems_of(&text);
    assert!(
        message_for(&problems, "sip.trunks[0].password_file")
            .starts_with("trunk \"t\": cannot read")
    );
}

#[test]
fn password_settings_must_be_consistent() {
    let both = format!("{TRUNK}username = \"u\"\npassword_env = \"P\"\npassword_file = \"f\"\n");
    assert!(keys(&problems(&both, &[("P", "x")])).contains(&"sip.trunks[0].password_file"));
    let neither = format!("{TRUNK}username = \"u\"\n");
    assert_eq!(keys(&problems_of(&neither)), ["sip.trunks[0].username"]);
    let no_user = format!("{TRUNK}password_env = \"P\"\n");
    assert_eq!(
        keys(&problems(&no_user, &[("P", "x")])),
        ["sip.trunks[0].password_env"]
    );
    let bad_name = format!("{TRUNK}username = \"u\"\npassword_env = \"p w\"\n");
    assert_eq!(
        keys(&problems_of(&bad_name)),
        ["sip.trunks[0].password_env"]
    );
}

#[test]
fn env_overrides_apply_with_the_types_of_their_keys() {
    let vars = [
        ("CALLGATE_HTTP_LISTEN", "127.0.0.1:9999"),
        ("CALLGATE_DATA_DIR", "/var/lib/x"),
        ("CALLGATE_SIP_RING_TIMEOUT_SECS", "30"),
        ("CALLGATE_LOG_FORMAT", "json"),
        ("CALLGATE_ECHO_TRUNK_ENABLED", "false"),
        ("CALLGATE_MEDIA_PUBLIC_IP", "203.0.113.10"),
        ("CALLGATE_CONFIG", "ignored.toml"),
        ("PATH", "/usr/bin"),
    ];
    let config = load("", &vars).unwrap();
    assert_eq!(config.http.listen.port(), 9999);
    assert_eq!(config.node.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!(config.sip.ring_timeout_secs, 30);
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(!config.echo_trunk.enabled);
    assert_eq!(config.media.announced_ip().to_string(), "203.0.113.10");
}

#[test]
fn a_key_set_by_two_variables_is_a_bad_setting() {
    let vars = [
        ("CALLGATE_DATA_DIR", "/a"),
        ("CALLGATE_NODE_DATA_DIR", "/b"),
    ];
    let problems = problems("", &vars);
    assert_eq!(keys(&problems), ["CALLGATE_NODE_DATA_DIR"]);
}

#[test]
fn empty_override_restores_the_default() {
    let config = load(
        "[sip]\nring_timeout_secs = 5\n",
        &[("CALLGATE_SIP_RING_TIMEOUT_SECS", "")],
    )
    .unwrap();
    assert_eq!(config.sip.ring_timeout_secs, 60);
}

#[test]
fn bad_override_names_the_variable() {
    let vars = [
        ("CALLGATE_SIP_RING_TIMEOUT_SECS", "0"),
        ("CALLGATE_MEDIA_RTP_PORT_MIN", "lots"),
        ("CALLGATE_HTTP_LISTEN", "nowhere"),
    ];
    let problems = problems("", &vars);
    assert_eq!(
        message_for(&problems, "sip.ring_timeout_secs"),
        "must be between 1 and 600 (set by CALLGATE_SIP_RING_TIMEOUT_SECS)"
    );
    assert_eq!(
        message_for(&problems, "media.rtp_port_min"),
        "expected an integer (set by CALLGATE_MEDIA_RTP_PORT_MIN)"
    );
    assert!(message_for(&problems, "http.listen").ends_with("(set by CALLGATE_HTTP_LISTEN)"));
}

#[test]
fn unknown_callgate_variable_is_a_bad_setting_unless_a_referenced_secret() {
    let problems = problems(
        "",
        &[("CALLGATE_HTTP_LISTN", "x"), ("CALLGATE_SIP_TRUNKS", "x")],
    );
    assert_eq!(
        keys(&problems),
        ["CALLGATE_HTTP_LISTN", "CALLGATE_SIP_TRUNKS"]
    );
    let text = format!("{TRUNK}username = \"u\"\npassword_env = \"CALLGATE_SECRET\"\n");
    assert!(load(&text, &[("CALLGATE_SECRET", "x")]).is_ok());
}

#[test]
fn routes_must_name_existing_unique_trunks() {
    let text = format!(
        "{TRUNK}{TRUNK}[[sip.routes]]\nname = \"r\"\ntrunks = []\n\
         [[sip.routes]]\nname = \"r\"\ntrunks = [\"t\", \"t\", \"nope\"]\n"
    );
    let problems = problems_of(&text);
    assert_eq!(
        keys(&problems),
        [
            "sip.routes[0].trunks",
            "sip.routes[1].trunks[1]",
            "sip.trunks[1].name",
            "sip.routes[1].name",
            "sip.routes[1].trunks[2]",
        ]
    );
}

#[test]
fn echo_name_is_reserved_while_the_echo_trunk_runs() {
    let text = "[echo_trunk]\nenabled = true\n[[sip.trunks]]\nname = \"echo\"\naddress = \"h\"\n";
    let problems = problems_of(text);
    assert!(
        keys(&problems).contains(&"sip.trunks[0].name"),
        "{problems:?}"
    );
}

#[test]
fn echo_trunk_must_stay_on_loopback() {
    let problems = problems_of("[echo_trunk]\nenabled = true\nlisten = \"0.0.0.0:5098\"\n");
    assert_eq!(keys(&problems), ["echo_trunk.listen"]);
}

#[test]
fn sdes_keys_over_cleartext_signalling_are_rejected() {
    let problems = problems_of(&format!("{TRUNK}srtp = \"sdes\"\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].srtp"]);
}

#[test]
fn tls_settings_need_a_tls_transport_or_listener() {
    let text = format!(
        "[sip]\nlisten_tls = \"127.0.0.1:5061\"\ntls_key_file = \"/nonexistent\"\n{TRUNK}tls_server_name = \"x.example\"\n"
    );
    let problems = problems_of(&text);
    assert_eq!(
        keys(&problems),
        [
            "sip.tls_cert_file",
            "sip.tls_key_file",
            "sip.trunks[0].tls_server_name"
        ]
    );
}

#[test]
fn a_directory_is_not_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{TRUNK}transport = \"tls\"\ntls_ca_file = {:?}\n",
        dir.path().to_str().unwrap()
    );
    let problems = problems_of(&text);
    assert!(message_for(&problems, "sip.trunks[0].tls_ca_file").ends_with("is not a file"));
}

#[test]
fn header_injection_in_user_agent_is_rejected() {
    let problems = problems_of("[sip]\nuser_agent = \"callgate\\r\\nX-Evil: 1\"\n");
    assert_eq!(keys(&problems), ["sip.user_agent"]);
}

#[test]
fn header_injection_in_from_user_is_rejected() {
    let problems = problems_of(&format!("{TRUNK}from_user = \"a@b>\\r\\nVia: x\"\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].from_user"]);
}

#[test]
fn codecs_are_known_and_listed_once() {
    let problems = problems_of(&format!("{TRUNK}codecs = [\"PCMU\", \"PCMU\"]\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].codecs[1]"]);
    let problems = problems_of(&format!("{TRUNK}codecs = [\"G729\"]\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].codecs[0]"]);
    // Opus is a codec the node knows, but only on the browser leg.
    let problems = problems_of(&format!("{TRUNK}codecs = [\"PCMA\", \"opus\"]\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].codecs[1]"]);
    assert!(
        problems[0].to_string().contains("PCMU or PCMA"),
        "{problems:?}"
    );
    let problems = problems_of(&format!("{TRUNK}codecs = []\n"));
    assert_eq!(keys(&problems), ["sip.trunks[0].codecs"]);
}

#[test]
fn rtp_port_pairs_fit_the_range() {
    let config = load("[media]\nrtp_port_min = 40000\nrtp_port_max = 40003\n", &[]).unwrap();
    assert_eq!(config.media.rtp_ports().collect::<Vec<_>>(), [40000, 40002]);
    let config = load("[media]\nrtp_port_min = 40000\nrtp_port_max = 40002\n", &[]).unwrap();
    assert_eq!(config.media.rtp_ports().collect::<Vec<_>>(), [40000]);
    let problems = problems_of("[media]\nrtp_port_min = 80\nrtp_port_max = 80\n");
    assert_eq!(
        keys(&problems),
        [
            "media.rtp_port_min",
            "media.rtp_port_max",
            "media.rtp_port_max"
        ]
    );
}

#[test]
fn log_level_typos_are_caught() {
    assert!(validate::check_log_level("info").is_ok());
    assert!(validate::check_log_level("warn,callgate::sip=debug").is_ok());
    assert!(validate::check_log_level("inf").is_err());
    assert!(validate::check_log_level("callgate=loud").is_err());
    assert!(validate::check_log_level("").is_err());
}

#[test]
fn listeners_may_not_share_an_address() {
    let text = "[http]\nlisten = \"127.0.0.1:5060\"\n[sip]\nlisten_tcp = \"127.0.0.1:5060\"\n";
    assert_eq!(keys(&problems_of(text)), ["sip.listen_tcp"]);
    let text = "[echo_trunk]\nenabled = true\nlisten = \"127.0.0.1:5060\"\n";
    assert_eq!(keys(&problems_of(text)), ["echo_trunk.listen"]);
}

#[test]
fn public_url_must_be_http() {
    assert_eq!(
        keys(&problems_of("[http]\npublic_url = \"ftp://x\"\n")),
        ["http.public_url"]
    );
    let config = load("[http]\npublic_url = \"https://calls.example/\"\n", &[]).unwrap();
    assert_eq!(config.http.base_url(), "https://calls.example");
}

#[test]
fn recording_keys_come_from_named_variables_and_are_checked() {
    let kek = crate::keys::generate_kek_text();
    let text = "[recording]\nkeys = [{ id = \"k1\", env = \"CALLGATE_KEK_ONE\" }]\n";
    let config = load(text, &[("CALLGATE_KEK_ONE", kek.as_str())]).unwrap();
    assert_eq!(config.recording.current_key_id(), Some("k1"));
    assert!(
        !format!("{config:?}").contains(kek.as_str()),
        "key in Debug output"
    );

    let bad = problems(text, &[("CALLGATE_KEK_ONE", "too-short")]);
    assert!(
        message_for(&bad, "recording.keys[0]").contains("not base64 of 32 bytes"),
        "{bad:?}"
    );
    let missing = problems(text, &[]);
    assert!(message_for(&missing, "recording.keys[0]").contains("is not set"));

    let unknown_current = format!("{text}current_key = \"k9\"\n");
    let wrong = problems(&unknown_current, &[("CALLGATE_KEK_ONE", kek.as_str())]);
    assert_eq!(keys(&wrong), ["recording.current_key"]);

    let inline = "[recording]\nkeys = [{ id = \"k1\", text = \"abc\" }]\n";
    assert!(!problems(inline, &[]).is_empty(), "no inline key text");
}

const S3: &str = "[recording.s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n\
    bucket = \"recordings\"\naccess_key_id_env = \"CALLGATE_S3_KEY\"\n\
    secret_access_key_env = \"CALLGATE_S3_SECRET\"\n";

#[test]
fn s3_credentials_come_from_named_variables_exempt_from_the_override_check() {
    let vars = [
        ("CALLGATE_S3_KEY", "AKID"),
        ("CALLGATE_S3_SECRET", "sekrit-key"),
    ];
    let config = load(S3, &vars).unwrap();
    let s3 = config.recording.s3.as_ref().unwrap();
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(s3.access_key_id.as_ref().map(Secret::expose), Some("AKID"));
    assert_eq!(
        s3.secret_access_key.as_ref().map(Secret::expose),
        Some("sekrit-key")
    );
    assert!(!format!("{config:?}").contains("sekrit-key"));

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let text = S3.replace(
        "secret_access_key_env = \"CALLGATE_S3_SECRET\"",
        &format!(
            "secret_access_key_file = {:?}",
            secret.display().to_string()
        ),
    );
    let config = load(&text, &vars[..1]).unwrap();
    let s3 = config.recording.s3.unwrap();
    assert_eq!(
        s3.secret_access_key.as_ref().map(Secret::expose),
        Some("from-a-file")
    );
}

#[test]
fn every_bad_s3_setting_is_named() {
    let text = "[recording]\ndirectory = \"/srv/rec\"\n[recording.s3]\n\
        endpoint = \"http://127.0.0.1:9000/path\"\nbucket = \"Not_A_Bucket\"\nregion = \"\"\n\
        prefix = \"/calls//\"\naccess_key_id_env = \"S3_KEY\"\naccess_key_id_file = \"/k\"\n";
    let found = problems(text, &[]);
    assert_eq!(
        keys(&found),
        [
            "recording.directory",
            "recording.s3.endpoint",
            "recording.s3.bucket",
            "recording.s3.region",
            "recording.s3.prefix",
            "recording.s3.access_key_id_file",
            "recording.s3.secret_access_key_env",
        ]
    );
    let http = S3.replace("allow_http = true\n", "");
    let vars = [("CALLGATE_S3_KEY", "k"), ("CALLGATE_S3_SECRET", "s")];
    let found = problems(&http, &vars);
    assert!(message_for(&found, "recording.s3.endpoint").contains("allow_http"));
    let missing = problems(S3, &vars[..1]);
    assert!(message_for(&missing, "recording.s3.secret_access_key_env").contains("is not set"));
    let inline = format!("{S3}secret_access_key = \"inline\"\n");
    let found = problems(&inline, &vars);
    assert!(message_for(&found, "recording.s3.secret_access_key").contains("unknown setting"));
}

#[test]
fn the_example_s3_section_loads_once_uncommented() {
    let start = EXAMPLE
        .find("# [recording.s3]")
        .expect("an example [recording.s3]");
    let block: String = EXAMPLE[start..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.starts_with('[') || line.contains(" = "))
        // Each credential from one place: the files are the alternative.
        .filter(|line| !line.contains("_file = "))
        .map(|line| format!("{line}\n"))
        .collect();
    let vars = [("S3_ACCESS_KEY_ID", "k"), ("S3_SECRET_ACCESS_KEY", "s")];
    let config = load(&block, &vars).unwrap_or_else(|e| panic!("{block}\n{e}"));
    assert!(config.recording.s3.is_some(), "{block}");
}

#[test]
fn a_postgres_password_comes_from_its_variable_into_the_url_only() {
    let text = "[database]\nurl = \"postgres://callgate@db.internal:5432/calls\"\n\
                password_env = \"CALLGATE_DB_PASSWORD\"\n";
    let config = load(text, &[("CALLGATE_DB_PASSWORD", "p@ss/w:rd")]).unwrap();
    assert_eq!(
        config.database.url_for(Path::new("/unused")),
        "postgres://callgate:p%40ss%2Fw%3Ard@db.internal:5432/calls"
    );
    assert!(!format!("{config:?}").contains("p@ss"), "secret in Debug");
    // Without a password the URL is used as written.
    let text = "[database]\nurl = \"postgres://callgate@db.internal/calls\"\n";
    let config = load(text, &[]).unwrap();
    assert_eq!(
        config.database.url_for(Path::new("/unused")),
        "postgres://callgate@db.internal/calls"
    );
}

#[test]
fn database_urls_are_checked_and_hold_no_password() {
    let url = |url: &str| format!("[database]\nurl = {url:?}\n");
    let inline = problems_of(&url("postgres://callgate:hunter2@db/calls"));
    assert!(message_for(&inline, "database.url").contains("password_env"));
    assert!(!format!("{inline:?}").contains("hunter2"));
    let mysql = problems_of(&url("mysql://db/calls"));
    assert!(message_for(&mysql, "database.url").contains("postgres://"));
    let no_user = format!(
        "{}password_env = \"P\"\n",
        url("postgres://db.internal/calls")
    );
    assert_eq!(keys(&problems(&no_user, &[("P", "x")])), ["database.url"]);
    let sqlite_with_password = format!("{}password_env = \"P\"\n", url("sqlite://x.db"));
    assert_eq!(
        keys(&problems(&sqlite_with_password, &[("P", "x")])),
        ["database.url"]
    );
    for good in ["sqlite://x.db", "sqlite::memory:", "postgresql://u@h:1/d"] {
        load(&url(good), &[]).unwrap();
    }
}

#[test]
fn the_metrics_listener_is_a_port_of_its_own() {
    let found = problems("[http]\nmetrics_listen = \"127.0.0.1:8080\"\n", &[]);
    assert_eq!(
        message_for(&found, "http.metrics_listen"),
        "must differ from listen and redirect_listen"
    );
    let vars = [("CALLGATE_HTTP_METRICS_LISTEN", "127.0.0.1:9464")];
    let config = load("", &vars).expect("a port of its own is fine");
    assert_eq!(
        config.http.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
}

#[test]
fn https_needs_both_files_and_an_https_public_url() {
    let found = problems("[http]\ntls_cert_file = \"/nonexistent/cert.pem\"\n", &[]);
    assert_eq!(
        message_for(&found, "http.tls_key_file"),
        "must be set with tls_cert_file"
    );
    let text = "[http]\ntls_cert_file = \"/nonexistent/c\"\ntls_key_file = \"/nonexistent/k\"\n\
                public_url = \"http://calls.example\"\nredirect_listen = \"127.0.0.1:8080\"\n";
    let found = problems(text, &[]);
    assert!(message_for(&found, "http.tls_cert_file").starts_with("cannot read /nonexistent/c"));
    assert!(message_for(&found, "http.tls_key_file").starts_with("cannot read /nonexistent/k"));
    assert_eq!(
        message_for(&found, "http.public_url"),
        "must be https:// when the node serves TLS"
    );
    assert_eq!(
        message_for(&found, "http.redirect_listen"),
        "must differ from listen"
    );
    let found = problems("[http]\nredirect_listen = \"127.0.0.1:80\"\n", &[]);
    assert!(message_for(&found, "http.redirect_listen").contains("needs tls_cert_file"));
    let vars = [("CALLGATE_HTTP_TLS_CERT_FILE", "/nonexistent/env-cert")];
    let found = problems("", &vars);
    assert!(message_for(&found, "http.tls_key_file").starts_with("must be set"));
}

#[test]
fn trusted_proxies_must_be_addresses_or_cidrs() {
    let found = problems(
        "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"lb.internal\"]\n",
        &[],
    );
    assert_eq!(keys(&found), ["http.trusted_proxies"]);
    assert!(message_for(&found, "http.trusted_proxies").contains("\"lb.internal\""));
    let config = load("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n", &[]).unwrap();
    assert_eq!(config.http.trusted_proxy_nets().len(), 2);
}

#[test]
fn the_default_dialing_allowance_names_real_routes_and_prefixes() {
    let text = format!(
        "{TRUNK}[[sip.routes]]\nname = \"main\"\ntrunks = [\"t\"]\n\
         [limits]\ndial_routes = [\"main\", \"nowhere\"]\ndial_prefixes = [\"+1\", \"44\"]\n"
    );
    let found = problems(&text, &[]);
    assert_eq!(
        keys(&found),
        ["limits.dial_prefixes", "limits.dial_routes[1]"]
    );
    let config = load("[limits]\ndial_prefixes = [\"+1\"]\n", &[]).unwrap();
    let allowance = config.limits.default_allowance();
    assert_eq!(allowance.routes, None);
    assert_eq!(allowance.prefixes, Some(vec!["+1".to_owned()]));
}

#[test]
fn trusted_sip_sources_must_be_addresses_or_cidrs() {
    let found = problems(
        "[sip]\ntrusted_sources = [\"203.0.113.0/24\", \"sip.carrier.example\"]\n",
        &[],
    );
    assert_eq!(keys(&found), ["sip.trusted_sources"]);
    assert!(message_for(&found, "sip.trusted_sources").contains("\"sip.carrier.example\""));
    let config = load("[sip]\ntrusted_sources = [\"203.0.113.9/24\"]\n", &[]).unwrap();
    let nets: Vec<String> = config
        .sip
        .trusted_source_nets()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["203.0.113.0/24"]);
}

#[test]
fn a_fixed_turn_credential_needs_the_operators_explicit_yes() {
    let fixed = "[[webrtc.ice_servers]]\nurls = [\"turn:turn.example:3478\"]\n\
                 username = \"u\"\ncredential_env = \"TURN_CREDENTIAL\"\n";
    let vars = [("TURN_CREDENTIAL", "c")];
    let found = problems(fixed, &vars);
    assert!(message_for(&found, "webrtc.ice_servers[0]").contains("static_credential = true"));
    let allowed = format!("{fixed}static_credential = true\n");
    let config = load(&allowed, &vars).unwrap();
    assert_eq!(
        config.webrtc.ice_servers[0]
            .credential
            .as_ref()
            .map(Secret::expose),
        Some("c")
    );

    let rest = "[[webrtc.ice_servers]]\nurls = [\"turn:turn.example:3478\"]\n\
                auth_secret_env = \"TURN_SECRET\"\n";
    let config = load(rest, &[("TURN_SECRET", "s")]).unwrap();
    let server = &config.webrtc.ice_servers[0];
    assert_eq!(server.auth_secret.as_ref().map(Secret::expose), Some("s"));
    assert_eq!(config.webrtc.turn_credential_ttl_secs, 600);
    let found = problems(rest, &[]);
    assert!(message_for(&found, "webrtc.ice_servers[0]").contains("TURN_SECRET"));
    let neither = "[[webrtc.ice_servers]]\nurls = [\"turn:turn.example:3478\"]\n";
    let found = problems(neither, &[]);
    assert!(message_for(&found, "webrtc.ice_servers[0]").contains("auth_secret_env"));
    let both = format!("{rest}username = \"u\"\n");
    let found = problems(&both, &[("TURN_SECRET", "s")]);
    assert!(message_for(&found, "webrtc.ice_servers[0]").contains("drop username"));
}

#[test]
fn session_expires_is_off_or_within_rfc_4028s_bounds_and_source_limits_are_positive() {
    let found = problems(
        "[sip]\nsession_expires_secs = 30\nmax_connections_per_source = 0\nrequests_per_second_per_source = 0\n",
        &[],
    );
    assert_eq!(
        keys(&found),
        [
            "sip.max_connections_per_source",
            "sip.requests_per_second_per_source",
            "sip.session_expires_secs",
        ]
    );
    assert!(message_for(&found, "sip.session_expires_secs").contains("0 (none)"));
    let off = load("[sip]\nsession_expires_secs = 0\n", &[]).unwrap();
    assert_eq!(off.sip.session_expires(), None);
    let default = load("", &[]).unwrap();
    assert_eq!(
        default.sip.session_expires(),
        Some(std::time::Duration::from_secs(1800))
    );
}

#[test]
fn a_drain_lasts_the_maximum_call_duration_unless_set() {
    let default = load("", &[]).unwrap();
    assert_eq!(default.drain_timeout(), default.sip.max_call_duration());
    let set = load("[node]\ndrain_timeout_secs = 600\n", &[]).unwrap();
    assert_eq!(set.drain_timeout(), std::time::Duration::from_secs(600));
    let by_env = load("", &[("CALLGATE_NODE_DRAIN_TIMEOUT_SECS", "30")]).unwrap();
    assert_eq!(by_env.drain_timeout(), std::time::Duration::from_secs(30));
    let too_long = problems("[node]\ndrain_timeout_secs = 90000\n", &[]);
    assert_eq!(
        message_for(&too_long, "node.drain_timeout_secs"),
        "must be between 0 and 86400"
    );
}

const CLUSTER: &str = "[cluster]\nredis_url = \"redis://redis.internal:6379/0\"\n\
                       secret_env = \"CALLGATE_CLUSTER_KEY\"\nredis_password_env = \"REDIS_PW\"\n";

#[test]
fn a_node_runs_alone_unless_a_redis_url_is_set() {
    let config = Config::load(None, Vec::new()).unwrap();
    assert_eq!(config.cluster.redis_url, None);
    assert!(config.cluster.secret.is_none());
}

#[test]
fn cluster_secrets_come_from_named_variables_exempt_from_the_override_check() {
    let vars = [
        ("CALLGATE_CLUSTER_KEY", "sixteen-chars-or-more"),
        ("REDIS_PW", "redis-pw"),
        ("CALLGATE_CLUSTER_REGION", "eu-west"),
    ];
    let config = load(CLUSTER, &vars).unwrap();
    let cluster = &config.cluster;
    assert_eq!(cluster.region, "eu-west");
    assert_eq!(cluster.heartbeat(), Duration::from_secs(2));
    assert_eq!(cluster.lease(), Duration::from_secs(10));
    let secret = cluster.secret.as_ref().map(Secret::expose);
    assert_eq!(secret, Some("sixteen-chars-or-more"));
    let password = cluster.redis_password.as_ref().map(Secret::expose);
    assert_eq!(password, Some("redis-pw"));
    assert!(!format!("{config:?}").contains("redis-pw"));
}

#[test]
fn every_bad_cluster_setting_is_named_and_no_secret_is_echoed() {
    let text = "[cluster]\nredis_url = \"redis://user:hunter2hunter2@redis:6379\"\n\
                secret_env = \"SHORT\"\nregion = \"EU West\"\npublic_url = \"ftp://x/\"\n\
                heartbeat_ms = 5000\nlease_secs = 10\n";
    let found = problems(text, &[("SHORT", "too-short")]);
    assert_eq!(
        keys(&found),
        [
            "cluster.redis_url",
            "cluster.region",
            "cluster.public_url",
            "cluster.lease_secs",
            "cluster.secret_env",
        ]
    );
    assert!(message_for(&found, "cluster.redis_url").contains("redis_password_env"));
    assert!(message_for(&found, "cluster.secret_env").contains("at least 16"));
    assert!(!format!("{found:?}").contains("hunter2"));
    let missing = problems("[cluster]\nredis_url = \"redis://redis\"\n", &[]);
    assert!(message_for(&missing, "cluster.secret_env").contains("is required"));
    let scheme = problems("[cluster]\nredis_url = \"http://redis\"\n", &[]);
    assert!(message_for(&scheme, "cluster.redis_url").contains("redis://host"));
    let ca_without_tls = "[cluster]\nredis_url = \"redis://redis\"\nredis_ca_file = \"/nowhere\"\n";
    let found = problems(ca_without_tls, &[]);
    assert!(message_for(&found, "cluster.redis_ca_file").contains("rediss://"));
    let missing_ca = "[cluster]\nredis_url = \"rediss://redis\"\nredis_ca_file = \"/nowhere\"\n";
    let found = problems(missing_ca, &[]);
    assert!(message_for(&found, "cluster.redis_ca_file").contains("no such file"));
    assert!(
        !keys(&found).contains(&"cluster.redis_url"),
        "rediss:// is a Redis URL"
    );
}

/// The compose cluster's node config is a valid config of this version,
/// with its example secrets where compose mounts them.
#[test]
fn the_compose_clusters_node_config_loads() {
    let text = include_str!("../../docker/callgate/node.toml");
    let secrets = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/secrets-example/");
    let text = text.replace("/run/secrets/", secrets);
    // What docker/compose.yaml sets for its first node.
    let vars = [
        ("CALLGATE_NODE_ID", "callgate-1"),
        ("CALLGATE_MEDIA_PUBLIC_IP", "127.0.0.1"),
        ("CALLGATE_HTTP_PUBLIC_URL", "http://127.0.0.1:8081"),
        ("CALLGATE_SIP_LISTEN_UDP", "0.0.0.0:5060"),
        ("CALLGATE_MEDIA_RTP_PORT_MIN", "20000"),
        ("CALLGATE_MEDIA_RTP_PORT_MAX", "20099"),
        ("CALLGATE_WEBRTC_LISTEN", "0.0.0.0:40000"),
        ("CALLGATE_WEBRTC_PUBLIC_ADDRESS", "127.0.0.1:40000"),
    ];
    let config = load(&text, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.node.id.as_str(), "callgate-1");
    assert_eq!(
        config.cluster.redis_url.as_deref(),
        Some("redis://redis:6379/0")
    );
    assert!(config.cluster.secret.is_some());
    assert!(config.cluster.redis_password.is_some());
}
