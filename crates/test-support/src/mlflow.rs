//! A real `mlflow server` (from PyPI, in the project's venv) on a free loopback port: sqlite
//! store, proxied artifacts (`--serve-artifacts`), one worker, the GenAI job runner off, and
//! optionally `--app-name basic-auth`; or, with [`MlflowServer::start_s3`], artifacts in an
//! S3 bucket of a [`MotoServer`] (`--default-artifact-root s3://... --no-serve-artifacts`, the
//! usual production setup). Stopped (its whole process group) when dropped.
//!
//! The binary is `$MLFLOW_BIN`, else `cache_dir()/mlflow-venv/bin/mlflow`; a missing binary
//! panics with the install hint (tests never skip silently).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::{http, process};

pub mod moto;

pub use moto::MotoServer;

/// How long to wait for `/health` (a first start after an install can take ~25 s here).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Admin user of the basic-auth mode.
pub const ADMIN_USER: &str = "admin";
/// Admin password of the basic-auth mode (at least 12 characters, as MLflow requires).
pub const ADMIN_PASSWORD: &str = "admin-password-1234";

/// The `mlflow` executable: `$MLFLOW_BIN`, else `cache_dir()/mlflow-venv/bin/mlflow`.
pub fn find_mlflow() -> Result<PathBuf, String> {
    let bin = std::env::var_os("MLFLOW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join("mlflow-venv/bin/mlflow"));
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "mlflow not found: run scripts/install-test-deps.sh (looked for {})",
            bin.display()
        ))
    }
}

/// The `mlflow` executable to run ([`find_mlflow`]); panics if missing.
pub fn mlflow_bin() -> PathBuf {
    find_mlflow().unwrap_or_else(|e| panic!("{e}"))
}

/// A running MLflow tracking server.
pub struct MlflowServer {
    url: String,
    dir: tempfile::TempDir,
    child: Child,
    basic_auth: bool,
    artifact_root: Option<String>,
}

/// Where the server keeps artifacts.
enum Artifacts {
    /// `--serve-artifacts --artifacts-destination <dir>/mlartifacts`.
    Proxied,
    /// `--default-artifact-root <root> --no-serve-artifacts`, with the S3 endpoint and
    /// credentials in the server's environment.
    S3 { root: String, endpoint: String },
}

impl MlflowServer {
    /// Starts a server without authentication.
    pub fn start() -> Self {
        Self::start_mode(false, Artifacts::Proxied)
    }

    /// Starts a server with `--app-name basic-auth`; the admin is [`ADMIN_USER`] /
    /// [`ADMIN_PASSWORD`], and new users get READ by default.
    pub fn start_basic_auth() -> Self {
        Self::start_mode(true, Artifacts::Proxied)
    }

    /// Starts a server whose runs keep their artifacts in `moto`'s bucket:
    /// `--default-artifact-root s3://<bucket>/mlartifacts --no-serve-artifacts`, with
    /// `MLFLOW_S3_ENDPOINT_URL` and the dummy credentials ([`moto::ACCESS_KEY`]) in its
    /// environment, so it lists artifacts through boto3 as in production. A run's
    /// `artifact_uri` is then `s3://<bucket>/mlartifacts/<exp>/<run>/artifacts`.
    pub fn start_s3(moto: &MotoServer) -> Self {
        Self::start_mode(
            false,
            Artifacts::S3 {
                root: format!("s3://{}/mlartifacts", moto.bucket()),
                endpoint: moto.url().to_string(),
            },
        )
    }

    fn start_mode(basic_auth: bool, artifacts: Artifacts) -> Self {
        let bin = mlflow_bin();
        let mut last_log = String::new();
        // A port picked by free_port() can be taken before mlflow binds it: try a few.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("mlflow-test-")
                .tempdir()
                .expect("invariant: can create a temp dir");
            let port = crate::free_port();
            let mut child = spawn(&bin, dir.path(), port, basic_auth, &artifacts);
            match wait_ready(&mut child, port, &dir.path().join("mlflow.log")) {
                Ok(()) => {
                    let artifact_root = match &artifacts {
                        Artifacts::Proxied => None,
                        Artifacts::S3 { root, .. } => Some(root.clone()),
                    };
                    return MlflowServer {
                        url: format!("http://127.0.0.1:{port}"),
                        dir,
                        child,
                        basic_auth,
                        artifact_root,
                    };
                }
                Err(why) => {
                    process::stop_group(&mut child);
                    last_log = why;
                    if why_is_timeout(&last_log) {
                        break;
                    }
                }
            }
        }
        panic!("mlflow server did not start: {last_log}");
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `(user, password)` of the admin in basic-auth mode.
    pub fn admin(&self) -> Option<(&'static str, &'static str)> {
        self.basic_auth.then_some((ADMIN_USER, ADMIN_PASSWORD))
    }

    /// Where proxied artifacts land: `<dir>/<exp_id>/<run_id>/artifacts/...` (empty for a
    /// server started with [`MlflowServer::start_s3`]).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.path().join("mlartifacts")
    }

    /// `--default-artifact-root` of a server started with [`MlflowServer::start_s3`]
    /// (`s3://<bucket>/mlartifacts`); `None` for a proxied-artifacts server.
    pub fn artifact_root(&self) -> Option<&str> {
        self.artifact_root.as_deref()
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        process::stop_group(&mut self.child);
    }
}

fn why_is_timeout(why: &str) -> bool {
    why.contains("not ready after")
}

/// A detached MLflow server for the scripts (`vpg-stack mlflow`): sqlite store
/// `<dir>/mlflow.db`, proxied artifacts in `<dir>/mlartifacts`, log `<dir>/mlflow.log`; the same
/// command line as [`MlflowServer::start`].
pub fn spawn_detached(dir: &Path, port: u16) -> Result<Child, String> {
    let bin = find_mlflow()?;
    let mut child = spawn(&bin, dir, port, false, &Artifacts::Proxied);
    match wait_ready(&mut child, port, &dir.join("mlflow.log")) {
        Ok(()) => Ok(child),
        Err(why) => {
            process::stop_group(&mut child);
            Err(why)
        }
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16, basic_auth: bool, artifacts: &Artifacts) -> Child {
    let artifacts_dir = dir.join("mlartifacts");
    std::fs::create_dir_all(&artifacts_dir).expect("invariant: can create the artifacts dir");
    let mut cmd = Command::new(bin);
    cmd.arg("server");
    if basic_auth {
        let ini = dir.join("basic_auth.ini");
        std::fs::write(
            &ini,
            format!(
                "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{}\nadmin_username = {ADMIN_USER}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                dir.join("basic_auth.db").display()
            ),
        )
        .expect("invariant: can write the auth ini");
        cmd.args(["--app-name", "basic-auth"])
            .env("MLFLOW_AUTH_CONFIG_PATH", &ini)
            .env("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("MLFLOW_FLASK_SERVER_SECRET_KEY", "test-static-secret-key");
    }
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .args(["--workers", "1"])
        // no GenAI job runner: its huey consumers ignore SIGTERM
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .current_dir(dir);
    match artifacts {
        Artifacts::Proxied => {
            cmd.arg("--serve-artifacts")
                .arg("--artifacts-destination")
                .arg(&artifacts_dir);
        }
        Artifacts::S3 { root, endpoint } => {
            cmd.args(["--default-artifact-root", root, "--no-serve-artifacts"])
                .env("MLFLOW_S3_ENDPOINT_URL", endpoint)
                .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY)
                .env("AWS_DEFAULT_REGION", "us-east-1");
            for stray in [
                "AWS_SESSION_TOKEN",
                "AWS_PROFILE",
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3",
                "AWS_REGION",
            ] {
                cmd.env_remove(stray);
            }
        }
    }
    process::spawn_group(&mut cmd, &dir.join("mlflow.log"))
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Polls `/health` until 200, the process exits, or [`READY_TIMEOUT`].
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    process::wait_until(child, "mlflow", log, READY_TIMEOUT, || {
        matches!(http::get(port, "/health"), Ok((200, _)))
    })
}

fn log_tail(dir: &Path) -> String {
    process::log_tail(&dir.join("mlflow.log"))
}

/// A [`MlflowServer`] started off the async runtime (its start blocks), with a client for it.
pub async fn start_with_client() -> (MlflowServer, perf_gate::mlflow::MlflowClient) {
    let server = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .expect("the MLflow server starts");
    let config = perf_gate::mlflow::MlflowConfig::new(server.url()).expect("a loopback URL");
    let client = perf_gate::mlflow::MlflowClient::new(&config).expect("an MLflow client");
    (server, client)
}

/// Registers `model` with versions 1..=`versions` (sources `s3://bucket/<model>/v<N>`), each
/// tagged `served_adapter` with `adapter(N)`: what a decision checks the measured adapter
/// against.
pub async fn register_versions(
    client: &perf_gate::mlflow::MlflowClient,
    model: &str,
    versions: u32,
    adapter: impl Fn(u32) -> String,
) {
    client
        .create_registered_model(model)
        .await
        .expect("the model is registered");
    for v in 1..=versions {
        let mv = client
            .create_model_version(model, &format!("s3://bucket/{model}/v{v}"), None)
            .await
            .expect("the version is created");
        assert_eq!(mv.version, v.to_string());
        client
            .set_model_version_tag(model, &mv.version, "served_adapter", &adapter(v))
            .await
            .expect("the version is tagged");
    }
}
