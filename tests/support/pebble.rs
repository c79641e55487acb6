//! pebble (Debian's 2.4), the ACME (RFC 8555) test CA, on loopback: its
//! directory over HTTPS with a certificate from a throwaway CA of the
//! test's own (Debian's package ships none), every challenge taken as
//! valid (`PEBBLE_VA_ALWAYS_VALID`), no random waits and no refused nonces,
//! so an issuance takes about a second. Its issuing root is regenerated at
//! every start; [`Pebble::root_pem`] fetches it.

use std::process::Command;

use tempfile::TempDir;

use super::pki::TestPki;
use super::ports::free_tcp_port;
use super::process::{PeerProcess, temp_dir};
use super::require_program;

/// A running pebble; stopped when dropped.
pub struct Pebble {
    pki: TestPki,
    directory_port: u16,
    management_port: u16,
    _process: PeerProcess,
    _dir: TempDir,
}

impl Pebble {
    pub fn start() -> Self {
        let program = require_program("pebble");
        let dir = temp_dir("pebble");
        let pki = TestPki::generate("pebble");
        let (cert, key) = pki.server_files();
        let (directory_port, management_port) = (free_tcp_port(), free_tcp_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{directory_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": free_tcp_port(),
            "tlsPort": free_tcp_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).expect("write the pebble config");
        let mut command = Command::new(program);
        command
            .arg("-config")
            .arg(&config_file)
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let ports = [directory_port, management_port];
        let process = PeerProcess::spawn_listening_tcp("pebble", command, dir.path(), &ports);
        Self {
            pki,
            directory_port,
            management_port,
            _process: process,
            _dir: dir,
        }
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.directory_port)
    }

    /// The CA file that makes the directory's HTTPS trusted.
    pub fn directory_ca_file(&self) -> std::path::PathBuf {
        self.pki.ca_file()
    }

    /// The root that pebble's issued certificates chain to (PEM).
    pub fn root_pem(&self) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let output = Command::new(require_program("curl"))
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.pki.ca_file())
            .arg(url)
            .output()
            .expect("run curl");
        assert!(output.status.success(), "pebble's root: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
