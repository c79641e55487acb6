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
        let d = &dir.path().to_path_buf();
        openssl(
            d,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key",
                "-out", "ca.pem", "-subj",
            ],
            &format!("/CN={name} test CA"),
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write certificate extensions");
        let pki = Self { dir };
        pki.issue("server");
        let mut bundle = read(d, "server.pem");
        bundle.extend_from_slice(&read(d, "server.key"));
        std::fs::write(d.join("server-bundle.pem"), bundle).expect("write certificate bundle");
        pki
    }

    /// A new key and a server certificate for it (127.0.0.1 and
    /// localhost), signed by this CA: `NAME.pem` and `NAME.key`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            d,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            ],
            "/CN=localhost",
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-extfile",
            ],
            "server.ext",
        );
        (d.join(pem), d.join(key))
    }

    /// The server certificate (PEM) and its key, as separate files.
    pub fn server_files(&self) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        (d.join("server.pem"), d.join("server.key"))
    }

    /// The CA certificate's file (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
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

/// base64(SHA-256(SubjectPublicKeyInfo)) of the certificate in `pem`: what
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
pub fn spki_sha256(pem: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        pem.display()
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "spki hash of {}", pem.display());
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The leaf certificate (PEM) a TLS server on `addr` presents to a new
/// connection for `localhost`, as `openssl s_client` receives it.
pub fn served_certificate(addr: std::net::SocketAddr) -> String {
    let output = Command::new(require_program("openssl"))
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(begin), Some(end)) => text[begin..end + 25].to_owned(),
        _ => panic!("no certificate from {addr}: {text}"),
    }
}
