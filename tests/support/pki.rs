//! Throwaway X.509 material for TLS tests, made with the `openssl` command
//! at test time: a CA, and a server certificate it signs for 127.0.0.1 and
//! localhost (subjectAltName IP and DNS, serverAuth), valid for a day.
//! Nothing is committed and nothing outlives the test's directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::process::temp_dir;
use super::require_program;

/// A CA and a server certificate signed by it, in a temporary directory.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Makes a new CA named `name` and a server certificate from it.
    pub fn generate(name: &str) -> Self {
        let dir = temp_dir("pki");
        let d = dir.path();
        openssl(
            d,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key",
                "-out", "ca.pem", "-subj",
            ],
            &format!("/CN={name} test CA"),
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
            ],
            "/CN=localhost",
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write certificate extensions");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-extfile",
            ],
            "server.ext",
        );
        let mut bundle = read(d, "server.pem");
        bundle.extend_from_slice(&read(d, "server.key"));
        std::fs::write(d.join("server-bundle.pem"), bundle).expect("write certificate bundle");
        Self { dir }
    }

    /// The CA certificate (PEM): what a client trusts.
    pub fn ca_pem(&self) -> Vec<u8> {
        read(self.dir.path(), "ca.pem")
    }

    /// The server certificate followed by its key (PEM), in one file.
    pub fn server_bundle(&self) -> PathBuf {
        self.dir.path().join("server-bundle.pem")
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn openssl(dir: &Path, args: &[&str], last: &str) {
    let output = Command::new(require_program("openssl"))
        .args(args)
        .arg(last)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
