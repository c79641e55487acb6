//! baresip 1.0 as a second, independent user agent with real media, from
//! the templates under `tests/peers/baresip/`: it listens on a free
//! loopback port, offers and accepts PCMU only, and answers every call by
//! itself. Every call's audio is recorded by the `sndfile` module, as
//! `dump-<time>-enc.wav` (what baresip sent) and `dump-<time>-dec.wav`
//! (what it received), 8 kHz mono, in [`Baresip::dir`].
//!
//! With a certificate ([`Baresip::start_tls`]) it serves SIP over TLS too,
//! on the SIP port + 1 (baresip 1.0's choice).
//!
//! baresip's flags (1.0): `-f DIR` reads `DIR/config` and `DIR/accounts`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{PeerProcess, temp_dir};
use super::{ports, require_program, tcp_port_listening, test_path, wait_until};

/// Debian's module directory for baresip 1.0 (the template's `module_path`).
pub const MODULES: &str = "/usr/lib/baresip/modules";

/// What baresip does with an answered call.
#[derive(Clone, Debug)]
pub enum BaresipMode {
    /// The `echo` module answers and sends every received frame back.
    Echo,
    /// As `Echo`, but only over SDES-SRTP (`RTP/SAVP`, RFC 4568): a plain
    /// RTP offer is refused.
    EchoSrtp,
    /// Answers and plays this WAV (8 kHz mono 16-bit), then hangs up when the
    /// file ends.
    Play(PathBuf),
}

#[derive(Debug)]
pub struct Baresip {
    process: PeerProcess,
    addr: SocketAddr,
    user: &'static str,
    dir: TempDir,
}

impl Baresip {
    /// Starts baresip in `mode`; returns once its SIP port is bound.
    pub fn start(mode: BaresipMode) -> Self {
        Self::spawn(mode, None)
    }

    /// Like [`Baresip::start`], and also serving SIP over TLS with
    /// `certificate` (a PEM file holding the certificate, then its key) on
    /// [`Baresip::tls_addr`]; returns once that port listens.
    pub fn start_tls(mode: BaresipMode, certificate: &Path) -> Self {
        Self::spawn(mode, Some(certificate))
    }

    fn spawn(mode: BaresipMode, certificate: Option<&Path>) -> Self {
        let program = require_program("baresip");
        assert!(
            Path::new(MODULES).join("g711.so").is_file(),
            "baresip modules missing at {MODULES}: run scripts/install-test-deps.sh"
        );
        let dir = temp_dir("baresip");
        // baresip 1.0 listens on UDP and TCP, and puts TLS on the SIP
        // port + 1: keep both ours, for both protocols.
        let port = ports::free_udp_tcp_ports(2);
        let user = write_config(dir.path(), port, &mode);
        if let Some(certificate) = certificate {
            let mut config = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.path().join("config"))
                .expect("open baresip config");
            writeln!(config, "sip_certificate\t\t{}", certificate.display())
                .expect("write baresip config");
        }
        let mut command = Command::new(program);
        command.arg("-f").arg(dir.path());
        let mut process = PeerProcess::spawn_listening("baresip", command, dir.path(), port);
        if certificate.is_some() {
            let tls_port = port + 1;
            let listening = wait_until(Duration::from_secs(5), || {
                tcp_port_listening(tls_port) || !process.is_running()
            }) && process.is_running();
            assert!(
                listening,
                "baresip did not listen for TLS on {tls_port}\n{}",
                process.output_tail(30)
            );
        }
        Self {
            process,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            user,
            dir,
        }
    }

    /// Where baresip receives SIP over TLS (started with
    /// [`Baresip::start_tls`]).
    pub fn tls_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), self.addr.port() + 1)
    }

    /// Where baresip receives SIP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The user part its account answers to (`echo` or `play`).
    pub fn user(&self) -> &str {
        self.user
    }

    /// `sip:USER@127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("sip:{}@{}", self.user, self.addr)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The WAV files of what baresip received (`*-dec.wav`), oldest first.
    pub fn received_recordings(&self) -> Vec<PathBuf> {
        self.recordings("-dec.wav")
    }

    /// The WAV files of what baresip sent (`*-enc.wav`), oldest first.
    pub fn sent_recordings(&self) -> Vec<PathBuf> {
        self.recordings("-enc.wav")
    }

    fn recordings(&self, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// baresip's console output (calls, media, errors).
    pub fn log(&self) -> String {
        format!("{}\n{}", self.process.stdout(), self.process.stderr())
    }
}

/// Writes `config` and `accounts` for `mode`; returns the account's user.
fn write_config(dir: &Path, port: u16, mode: &BaresipMode) -> &'static str {
    let read = |name: &str| {
        std::fs::read_to_string(test_path(&format!("peers/baresip/{name}")))
            .unwrap_or_else(|e| panic!("read baresip template {name}: {e}"))
    };
    // Media ports come from ports.rs too, so peers in parallel tests never
    // share them.
    let rtp_first = ports::free_udp_ports(16, true);
    let rtp_ports = format!("{rtp_first}-{}", rtp_first + 15);
    let (user, answermode, source, modules) = match mode {
        BaresipMode::Echo => (
            "echo",
            "manual",
            "aubridge,echo".to_owned(),
            "module\t\t\taubridge.so\nmodule_app\t\techo.so",
        ),
        BaresipMode::EchoSrtp => (
            "echo",
            "manual",
            "aubridge,echo".to_owned(),
            "module\t\t\taubridge.so\nmodule\t\t\tsrtp.so\nmodule_app\t\techo.so",
        ),
        BaresipMode::Play(wav) => (
            "play",
            "auto",
            format!("aufile,{}", wav.display()),
            "module\t\t\taufile.so\nmodule\t\t\taubridge.so",
        ),
    };
    let config = read("config.tmpl")
        .replace("{{SIP_PORT}}", &port.to_string())
        .replace("{{RTP_PORTS}}", &rtp_ports)
        .replace("{{AUDIO_SOURCE}}", &source)
        .replace("{{AUDIO_PLAYER}}", "aubridge,sink")
        .replace("{{SND_PATH}}", &dir.display().to_string())
        .replace("{{MODULES}}", &format!("{modules}\nmodule\t\t\tsndfile.so"));
    let accounts = read("accounts.tmpl")
        .replace("{{USER}}", user)
        .replace("{{ANSWERMODE}}", answermode)
        .replace(
            "{{MEDIAENC}}",
            if matches!(mode, BaresipMode::EchoSrtp) {
                "srtp-mand"
            } else {
                ""
            },
        );
    std::fs::write(dir.join("config"), config).expect("write baresip config");
    std::fs::write(dir.join("accounts"), accounts).expect("write baresip accounts");
    user
}
