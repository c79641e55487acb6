//! The `callgate` binary as an operator meets it: exit codes, messages,
//! health endpoints and signal handling. Every child runs with a cleared
//! environment on free 127.0.0.1 ports and is killed when its test ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callgate");
const EX_USAGE: i32 = 64;

fn free_tcp_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn free_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A scratch directory with free addresses for everything `serve` binds.
struct Sandbox {
    dir: tempfile::TempDir,
    http: SocketAddr,
    sip_udp: SocketAddr,
    echo: SocketAddr,
    webrtc: SocketAddr,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            http: free_tcp_port(),
            sip_udp: free_udp_port(),
            echo: free_udp_port(),
            webrtc: free_udp_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `callgate ARGS` with only the overrides that keep it inside the sandbox.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .current_dir(self.dir.path())
            .env("CALLGATE_HTTP_LISTEN", self.http.to_string())
            .env("CALLGATE_DATA_DIR", self.path("data"))
            .env("CALLGATE_SIP_LISTEN_UDP", self.sip_udp.to_string())
            .env("CALLGATE_ECHO_TRUNK_LISTEN", self.echo.to_string())
            .env("CALLGATE_WEBRTC_LISTEN", self.webrtc.to_string())
            .stdin(Stdio::null());
        command
    }

    /// Runs to completion: (exit code, stdout, stderr).
    fn run(&self, command: &mut Command) -> (i32, String, String) {
        let output = command.output().unwrap();
        let code = output.status.code().unwrap_or(-1);
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        (code, text(output.stdout), text(output.stderr))
    }

    /// Starts `command` with stderr going to a file (a pipe nobody reads could fill up).
    fn spawn(&self, command: &mut Command) -> Running {
        let stderr = self.path("stderr.log");
        let file = std::fs::File::create(&stderr).unwrap();
        let child = command.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Running { child, stderr }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned());
    Ok((status, body.unwrap_or_default()))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?} is not JSON: {e}"))
}

/// Polls `/readyz` until it answers 200, the child exits, or 20 s pass.
fn wait_until_ready(sandbox: &Sandbox, node: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok((200, _)) = http_get(sandbox.http, "/readyz") {
            return;
        }
        if let Some(status) = node.child.try_wait().unwrap() {
            panic!("node exited with {status} before ready:\n{}", node.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node not ready within 20 s:\n{}", node.stderr());
}

fn serve_until_signal(signal: &str) {
    let sandbox = Sandbox::new();
    let mut node = sandbox.spawn(&mut sandbox.command(&["serve"]));
    wait_until_ready(&sandbox, &mut node);
    let (status, body) = http_get(sandbox.http, "/healthz").unwrap();
    assert_eq!(status, 200);
    let health = json(&body);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node"], "node-1");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        http_get(sandbox.http, "/readyz").unwrap(),
        (200, r#"{"ready":true,"draining":false}"#.to_owned())
    );
    assert!(sandbox.path("data").is_dir(), "data dir not created");

    node.signal(signal);
    let status = node.wait_for_exit(Duration::from_secs(5));
    let stderr = node.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("listening on http://{}", sandbox.http)),
        "{stderr}"
    );
    assert!(stderr.contains("EMBEDDED DEVELOPMENT DEFAULT"), "{stderr}");
}

#[test]
fn serve_on_the_default_is_healthy_and_stops_cleanly_on_sigterm() {
    serve_until_signal("TERM");
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    serve_until_signal("INT");
}

#[test]
fn json_log_format_writes_json_lines() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&["serve"]);
    command.env("CALLGATE_LOG_FORMAT", "json");
    let mut node = sandbox.spawn(&mut command);
    wait_until_ready(&sandbox, &mut node);
    node.signal("TERM");
    assert_eq!(
        node.wait_for_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
    let stderr = node.stderr();
    let lines: Vec<serde_json::Value> = stderr.lines().map(json).collect();
    assert!(lines.len() >= 2, "{stderr}");
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("listening on")),
        "{stderr}"
    );
}

#[test]
fn three_bad_settings_exit_64_naming_all_three() {
    let sandbox = Sandbox::new();
    let config = sandbox.write(
        "bad.toml",
        "[sip]\nring_timeout_secs = 0\n[media]\nrtp_port_min = 7\n[log]\nformat = \"xml\"\n",
    );
    let config = config.to_str().unwrap();
    for args in [
        ["serve", "--config", config].as_slice(),
        &["config", "check", "--config", config],
    ] {
        let (code, _, stderr) = sandbox.run(&mut sandbox.command(args));
        assert_eq!(code, EX_USAGE, "{stderr}");
        for key in ["sip.ring_timeout_secs", "media.rtp_port_min", "log.format"] {
            assert!(
                stderr.contains(&format!("callgate: {key}: ")),
                "{key} missing from {stderr}"
            );
        }
    }
}

#[test]
fn inline_trunk_password_exits_64_naming_it() {
    let sandbox = Sandbox::new();
    let text = "[[sip.trunks]]\nname = \"t\"\naddress = \"sip.example.net\"\nusername = \"u\"\npassword = \"hunter2\"\n";
    let config = sandbox.write("inline.toml", text);
    let mut command = sandbox.command(&["serve"]);
    command.env("CALLGATE_CONFIG", &config);
    let (code, _, stderr) = sandbox.run(&mut command);
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(
        stderr.contains("sip.trunks[0].password: inline secrets are not allowed"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn missing_config_file_exits_64() {
    let sandbox = Sandbox::new();
    let (code, _, stderr) =
        sandbox.run(&mut sandbox.command(&["config", "check", "--config", "nope.toml"]));
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(
        stderr.starts_with("callgate: cannot read config file nope.toml"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_64_with_one_reason_line() {
    let sandbox = Sandbox::new();
    for args in [&["serve", "--bogus"][..], &["frobnicate"], &[]] {
        let (code, _, stderr) = sandbox.run(&mut sandbox.command(args));
        assert_eq!(code, EX_USAGE, "{args:?}: {stderr}");
        let reason = stderr.lines().find(|l| l.starts_with("callgate: "));
        assert!(reason.is_some(), "{args:?}: {stderr}");
    }
}

#[test]
fn version_and_help_exit_0() {
    let sandbox = Sandbox::new();
    let (code, stdout, _) = sandbox.run(&mut sandbox.command(&["--version"]));
    assert_eq!(
        (code, stdout.trim()),
        (0, concat!("callgate ", env!("CARGO_PKG_VERSION")))
    );
    let (code, stdout, _) = sandbox.run(&mut sandbox.command(&["--help"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("serve") && stdout.contains("config"),
        "{stdout}"
    );
}

#[test]
fn http_port_in_use_exits_1_with_a_clear_message() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut command = sandbox.command(&["serve"]);
    command.env("CALLGATE_HTTP_LISTEN", addr.to_string());
    let (code, _, stderr) = sandbox.run(&mut command);
    assert_eq!(code, 1, "{stderr}");
    let expected = format!("callgate: http.listen {addr}: address in use");
    assert_eq!(stderr.lines().last(), Some(expected.as_str()), "{stderr}");
}

#[test]
fn example_config_checks_ok_with_its_secret_set() {
    let sandbox = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/callgate.toml");
    let example = example.to_str().unwrap();
    let mut command = sandbox.command(&["config", "check", "--config", example]);
    command.env("CARRIER_A_PASSWORD", "not-a-real-password");
    let (code, stdout, stderr) = sandbox.run(&mut command);
    assert_eq!((code, stdout.as_str()), (0, "config ok\n"), "{stderr}");

    let (code, _, stderr) =
        sandbox.run(&mut sandbox.command(&["config", "check", "--config", example]));
    assert_eq!(code, EX_USAGE);
    assert!(stderr.contains("CARRIER_A_PASSWORD is not set"), "{stderr}");
}

#[test]
fn unknown_callgate_variable_is_a_bad_setting() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&["config", "check"]);
    command.env("CALLGATE_HTTP_LISTN", "127.0.0.1:1");
    let (code, _, stderr) = sandbox.run(&mut command);
    assert_eq!(code, EX_USAGE, "{stderr}");
    assert!(
        stderr.contains("callgate: CALLGATE_HTTP_LISTN: unknown setting"),
        "{stderr}"
    );
}

#[test]
fn keys_generate_prints_or_writes_a_fresh_private_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = Sandbox::new();
    let (code, first, stderr) = sandbox.run(&mut sandbox.command(&["keys", "generate"]));
    assert_eq!(code, 0, "{stderr}");
    let (_, second, _) = sandbox.run(&mut sandbox.command(&["keys", "generate"]));
    assert_ne!(first, second, "every key is new");
    assert!(callgate::keys::Kek::from_text("k", &first).is_ok());

    let file = sandbox.path("kek-1");
    let file_arg = file.to_str().unwrap();
    let (code, stdout, stderr) =
        sandbox.run(&mut sandbox.command(&["keys", "generate", "--out", file_arg]));
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may read a KEK");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(callgate::keys::Kek::from_text("k", &text).is_ok());

    // An existing key is never overwritten.
    let (code, _, stderr) =
        sandbox.run(&mut sandbox.command(&["keys", "generate", "--out", file_arg]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with("callgate: cannot create key file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
