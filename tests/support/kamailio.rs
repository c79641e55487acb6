//! kamailio 5.6 as a stateful proxy between the node and a trunk, from
//! `tests/peers/kamailio/kamailio.cfg.tmpl`: it record-routes initial
//! INVITEs, relays every initial request to one target, and loose-routes
//! in-dialog requests, so a test can check that the node's ACK, BYE,
//! re-INVITE and CANCEL follow the route set.
//!
//! Runs in the foreground (`-DD -E`), logging to stderr, with small memory
//! pools; its worker processes share its process group and stop with it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::process::{PeerProcess, temp_dir};
use super::{ports, require_program, test_path};

/// Debian's module directory for kamailio 5.6 on x86_64 (the template's
/// `mpath`).
pub const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

#[derive(Debug)]
pub struct Kamailio {
    process: PeerProcess,
    addr: SocketAddr,
    dir: TempDir,
}

impl Kamailio {
    /// Starts a proxy on a free loopback port relaying to `target`; returns
    /// once it listens.
    pub fn start(target: SocketAddr) -> Self {
        let program = require_program("kamailio");
        assert!(
            Path::new(MODULES).is_dir(),
            "kamailio modules missing at {MODULES}: run scripts/install-test-deps.sh"
        );
        let dir = temp_dir("kamailio");
        let port = ports::free_udp_port();
        let template = std::fs::read_to_string(test_path("peers/kamailio/kamailio.cfg.tmpl"))
            .expect("read kamailio template");
        let config = template
            .replace("{{LISTEN_PORT}}", &port.to_string())
            .replace("{{TARGET}}", &target.to_string());
        let config_path = dir.path().join("kamailio.cfg");
        std::fs::write(&config_path, config).expect("write kamailio config");
        let mut command = Command::new(program);
        command
            .arg("-f")
            .arg(&config_path)
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-Y")
            .arg(dir.path());
        let process = PeerProcess::spawn_listening("kamailio", command, dir.path(), port);
        Self {
            process,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            dir,
        }
    }

    /// Where the proxy receives SIP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// kamailio's log (stderr), e.g. for a failure report.
    pub fn log(&self) -> String {
        self.process.stderr()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
