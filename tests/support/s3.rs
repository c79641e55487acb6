//! SeaweedFS (`weed mini` 4.48, from the test virtualenv) as the
//! S3-compatible server: on loopback, every port its parts listen on
//! chosen free, one identity whose requests must be signed (SigV4), one
//! bucket made at start, its data and sockets in its own temporary
//! directory. It can be killed and started again on the same data and
//! ports, as a store that goes down and comes back.
//!
//! weed puts its gRPC sockets at `/tmp/seaweedfs-PART-grpc-PORT.sock`
//! whatever TMPDIR says, and a kill (or a slow stop) leaves them: they are
//! removed when the server is dropped.
//!
//! The test lists and reads the bucket with `object_store`'s S3 client, an
//! independent S3 client of its own (the node's code does not take part).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};
use tempfile::TempDir;

use super::ports::free_tcp_port;
use super::process::{PeerProcess, temp_dir};
use super::{repo_dir, require_program};

pub const ACCESS_KEY_ID: &str = "callgate-test";
pub const SECRET_ACCESS_KEY: &str = "s3-test-secret-8f2c1d";
pub const BUCKET: &str = "recordings";
pub const REGION: &str = "us-east-1";

/// The parts of `weed mini` that listen, each with an HTTP and a gRPC port.
const PARTS: [&str; 5] = ["master", "volume", "filer", "s3", "admin"];

/// A running SeaweedFS; stopped (by pid) when dropped.
pub struct S3Server {
    process: Option<PeerProcess>,
    /// HTTP and gRPC port of each of [`PARTS`].
    ports: Vec<(u16, u16)>,
    starts: u32,
    dir: TempDir,
}

impl S3Server {
    /// Starts the server and waits until the bucket answers signed requests.
    pub async fn start() -> Self {
        let dir = temp_dir("seaweedfs");
        for sub in ["data", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).expect("seaweedfs directories");
        }
        let identities = serde_json::json!({"identities": [{
            "name": "callgate",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).expect("s3.json");
        let ports = PARTS
            .iter()
            .map(|_| (free_tcp_port(), free_tcp_port()))
            .collect();
        let mut server = Self {
            process: None,
            ports,
            starts: 0,
            dir,
        };
        server.spawn().await;
        server
    }

    /// `http://127.0.0.1:PORT` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3].0)
    }

    /// Kills it at once (SIGKILL): a store that fails mid-call.
    pub fn kill(&mut self) {
        let mut process = self.process.take().expect("the server is running");
        process.signal("KILL");
        assert!(
            process.wait_for_exit(Duration::from_secs(10)).is_some(),
            "seaweedfs did not die"
        );
    }

    /// Starts it again on the same data directory and ports.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "kill it first");
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let program = require_program(
            &repo_dir()
                .join("target/test-venv/bin/weed")
                .display()
                .to_string(),
        );
        self.starts += 1;
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let mut command = Command::new(program);
        command
            .arg("mini")
            .arg(format!("-dir={}", path("data")))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .arg(format!("-s3.config={}", path("s3.json")))
            .arg(format!("-bucket={BUCKET}"))
            .args(["-webdav=false", "-admin.ui=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-master.volumeSizeLimitMB=64"])
            .arg(format!("-filer.localSocket={}", path("filer.sock")))
            .arg(format!("-s3.localSocket={}", path("s3.sock")))
            // Its log files go to its own directory, not /tmp.
            .env("TMPDIR", path("tmp"));
        for (part, (http, grpc)) in PARTS.iter().zip(&self.ports) {
            command.arg(format!("-{part}.port={http}"));
            command.arg(format!("-{part}.port.grpc={grpc}"));
        }
        let name = format!("weed-{}", self.starts);
        let mut process = PeerProcess::spawn(&name, command, self.dir.path());
        let client = self.client(SECRET_ACCESS_KEY);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = client.list_with_delimiter(None).await;
            if listed.is_ok() {
                break;
            }
            assert!(
                process.is_running() && tokio::time::Instant::now() < deadline,
                "seaweedfs did not serve the bucket: {listed:?}\n{}",
                process.output_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.process = Some(process);
    }

    /// A client of the bucket signing with `secret` (the right one or not).
    pub fn client(&self, secret: &str) -> AmazonS3 {
        self.builder()
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(secret)
            .build()
            .expect("an S3 client")
    }

    /// A client that does not sign at all.
    pub fn anonymous_client(&self) -> AmazonS3 {
        let builder = self.builder().with_skip_signature(true);
        builder.build().expect("an S3 client")
    }

    /// The bucket on this server, no retries: a refusal shows at once.
    fn builder(&self) -> AmazonS3Builder {
        install_crypto();
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region(REGION)
            .with_retry(object_store::RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
    }

    /// Every object in the bucket.
    pub async fn objects(&self) -> Vec<ObjectMeta> {
        use futures_util::TryStreamExt as _;
        let client: Arc<dyn ObjectStore> = Arc::new(self.client(SECRET_ACCESS_KEY));
        client
            .list(None)
            .try_collect()
            .await
            .expect("list the bucket")
    }

    /// The bytes of object `key`.
    pub async fn read(&self, key: &ObjectPath) -> Vec<u8> {
        let client = self.client(SECRET_ACCESS_KEY);
        let got = client.get(key).await.expect("get the object");
        got.bytes().await.expect("read the object").to_vec()
    }

    /// A `[recording.s3]` section for this server, objects under `prefix`,
    /// the access key id from the file `key_file` (written here) and the
    /// secret from the variable `secret_var`.
    pub fn config_section(
        &self,
        prefix: &str,
        key_file: &std::path::Path,
        secret_var: &str,
    ) -> String {
        std::fs::write(key_file, format!("{ACCESS_KEY_ID}\n")).expect("write the key id file");
        format!(
            "[recording.s3]\nendpoint = \"{}\"\nallow_http = true\nbucket = \"{BUCKET}\"\n\
             region = \"{REGION}\"\nprefix = \"{prefix}\"\naccess_key_id_file = {:?}\n\
             secret_access_key_env = \"{secret_var}\"\n",
            self.endpoint(),
            key_file.display().to_string(),
        )
    }

    /// Its output so far, for a failure message.
    pub fn output_tail(&self) -> String {
        self.process
            .as_ref()
            .map_or_else(String::new, |p| p.output_tail(30))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
        for (part, (_, grpc)) in PARTS.iter().zip(&self.ports) {
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{part}-grpc-{grpc}.sock"));
        }
    }
}

/// The crate builds reqwest without a TLS crypto provider of its own (see
/// `recording::storage`): its clients need the process default, ring.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
