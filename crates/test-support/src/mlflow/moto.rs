//! A real S3-compatible server: `moto_server` (PyPI `moto[server]`, in the MLflow venv) on a
//! free loopback port, with one bucket ([`BUCKET`]) created before it is handed out. Stopped
//! (its whole process group) when dropped.
//!
//! [`MotoServer::start`] accepts any credentials, and unsigned requests too (the tests read
//! objects back with a plain GET, independently of the code under test).
//! [`MotoServer::start_requiring_auth`] turns moto's IAM checks on once the bucket exists: every
//! later request must be signed with an access key moto's IAM knows, and [`ACCESS_KEY`] is not
//! one, so a signed PUT gets `403 InvalidAccessKeyId` (wrong credentials, as with real S3).
//!
//! The binary is `$MOTO_SERVER_BIN`, else `cache_dir()/mlflow-venv/bin/moto_server`; a missing
//! binary panics with the install hint.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::log_tail;
use crate::http::request as http;
use crate::process::{self, stop_group};

/// The bucket every [`MotoServer`] has.
pub const BUCKET: &str = "perf-gate-artifacts";
/// Dummy access key id (moto accepts any in its default mode).
pub const ACCESS_KEY: &str = "testing";
/// Dummy secret access key.
pub const SECRET_KEY: &str = "testing";

/// How long to wait for the port to open (a cold start imports a lot of Python).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `moto_server` executable to run.
pub fn moto_bin() -> PathBuf {
    let bin = std::env::var_os("MOTO_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join("mlflow-venv/bin/moto_server"));
    if !bin.exists() {
        panic!(
            "moto_server not found: run scripts/install-test-deps.sh (looked for {})",
            bin.display()
        );
    }
    bin
}

/// A running moto S3 server with [`BUCKET`] created.
pub struct MotoServer {
    url: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl MotoServer {
    /// Starts a server that accepts any credentials (and unsigned requests).
    pub fn start() -> Self {
        Self::start_mode(false)
    }

    /// Starts a server that, once [`BUCKET`] exists, refuses every request not signed with a
    /// key its IAM knows (none is created: [`ACCESS_KEY`] gets `403 InvalidAccessKeyId`).
    pub fn start_requiring_auth() -> Self {
        Self::start_mode(true)
    }

    fn start_mode(require_auth: bool) -> Self {
        let bin = moto_bin();
        let mut last = String::new();
        // A port picked by free_port() can be taken before moto binds it: try a few.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("moto-test-")
                .tempdir()
                .expect("invariant: can create a temp dir");
            let port = crate::free_port();
            let mut child = spawn(&bin, dir.path(), port, require_auth);
            let ready = wait_port(&mut child, port).and_then(|()| create_bucket(port));
            match ready {
                Ok(()) => {
                    return MotoServer {
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                        dir,
                        child,
                    };
                }
                Err(why) => {
                    stop_group(&mut child);
                    last = format!("{why}\n{}", log_tail(dir.path()));
                }
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// Endpoint URL, `http://127.0.0.1:PORT` (what `MLFLOW_S3_ENDPOINT_URL` should say).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bucket created at start ([`BUCKET`]).
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The bytes of `s3://<bucket>/<key>` read with a plain GET, straight from moto (not
    /// through the code under test); `None` on 404. Only for [`MotoServer::start`]: its objects
    /// are private, so the GET names [`ACCESS_KEY`] in an `Authorization` header, whose
    /// signature moto does not check in that mode (an anonymous GET gets 403).
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let path = format!("/{BUCKET}/{}", key.trim_start_matches('/'));
        let auth = format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n"
        );
        match http(self.port, "GET", &path, &auth, b"") {
            Ok((200, body)) => Some(body),
            Ok((404, _)) => None,
            Ok((status, body)) => panic!(
                "GET {path} from moto: http {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("GET {path} from moto: {e}"),
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16, require_auth: bool) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir);
    if require_auth {
        // the bucket creation is the one request let through unauthenticated
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "1");
    } else {
        cmd.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
    }
    // the log file is named as MlflowServer's, so the shared log_tail() reads it
    process::spawn_group(&mut cmd, &dir.join("mlflow.log"))
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Waits for the port to accept connections. A bare TCP connect, not an HTTP request: in auth
/// mode every HTTP request counts against the unauthenticated allowance.
fn wait_port(child: &mut Child, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited early ({status})"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "timed out after {READY_TIMEOUT:?} waiting for port {port}"
    ))
}

/// `PUT /<bucket>` (unsigned; moto's default region needs no location constraint).
fn create_bucket(port: u16) -> Result<(), String> {
    match http(port, "PUT", &format!("/{BUCKET}"), "", b"")? {
        (200, _) => Ok(()),
        (status, body) => Err(format!(
            "creating bucket {BUCKET}: http {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}
