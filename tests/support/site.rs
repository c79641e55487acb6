//! A customer's website on another origin than the node: Python's
//! `http.server` serving one page that embeds the widget with the one tag a
//! customer pastes, over HTTP or (with a certificate) HTTPS.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::ports::free_tcp_port;
use super::process::{PeerProcess, temp_dir};
use super::require_program;

/// Serves the current directory, wrapped in TLS when a certificate is given.
const SERVER: &str = "\
import functools, http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='.')
httpd = http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)
if cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
";

/// A running site; stopped when dropped.
pub struct CustomerSite {
    origin: String,
    _process: PeerProcess,
    _dir: TempDir,
}

impl CustomerSite {
    /// A shop page at `http://localhost:PORT/` whose only callgate part is
    /// `<script src="SCRIPT_URL" data-widget="WIDGET" async>`.
    pub fn start(script_url: &str, widget: &str) -> Self {
        Self::serve(script_url, widget, None)
    }

    /// [`CustomerSite::start`] over HTTPS with `cert` and `key` (PEM) for
    /// `localhost`.
    pub fn start_https(script_url: &str, widget: &str, cert: &Path, key: &Path) -> Self {
        Self::serve(script_url, widget, Some((cert, key)))
    }

    fn serve(script_url: &str, widget: &str, tls: Option<(&Path, &Path)>) -> Self {
        let python = require_program("python3");
        let dir = temp_dir("customer-site");
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>A shop</title></head>\n<body><h1>A shop</h1><p>Questions? Call us.</p>\n\
             <script src=\"{script_url}\" data-widget=\"{widget}\" async></script>\n\
             </body></html>\n"
        );
        std::fs::write(dir.path().join("index.html"), page).expect("write the shop page");
        let port = free_tcp_port();
        let (cert, key) = tls.map_or((String::new(), String::new()), |(c, k)| {
            (c.display().to_string(), k.display().to_string())
        });
        let mut command = Command::new(python);
        command
            .args(["-c", SERVER, &port.to_string(), &cert, &key])
            .current_dir(dir.path());
        let process =
            PeerProcess::spawn_listening_tcp("customer site", command, dir.path(), &[port]);
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self {
            origin: format!("{scheme}://localhost:{port}"),
            _process: process,
            _dir: dir,
        }
    }

    /// `scheme://localhost:PORT`: the Origin its pages send.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The shop page.
    pub fn page(&self) -> String {
        format!("{}/", self.origin)
    }
}

/// `127.0.0.1:port`, for plain requests to a loopback listener.
pub fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}
