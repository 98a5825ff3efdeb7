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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{log_tail, stop_group};

/// The bucket every [`MotoServer`] has.
pub const BUCKET: &str = "perf-gate-artifacts";
/// Dummy access key id (moto accepts any in its default mode).
pub const ACCESS_KEY: &str = "testing";
/// Dummy secret access key.
pub const SECRET_KEY: &str = "testing";

/// How long to wait for the port to open (a cold start imports a lot of Python).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one plain HTTP exchange with moto.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

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
    // the log file is named as MlflowServer's, so the shared log_tail() reads it
    let log = std::fs::File::create(dir.join("mlflow.log")).expect("invariant: can create log");
    let log2 = log.try_clone().expect("invariant: can clone a file handle");
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    if require_auth {
        // the bucket creation is the one request let through unauthenticated
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "1");
    } else {
        cmd.env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
    }
    cmd.spawn()
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

/// One HTTP/1.1 exchange with `Connection: close` (`headers`: extra `Name: value\r\n` lines);
/// returns the status and the body (de-chunked if needed).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {headers}"))?;
    let payload = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        return dechunk(&payload).map(|b| (status, b));
    }
    Ok((status, payload))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|e| e.to_string())?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
