//! The local stack (`scripts/local-stack.sh`, through `vpg-stack`): `vllm-sim`, Prometheus
//! scraping it as job `vllm-service` and an MLflow server with a registered model `demo-model`
//! whose version 1 carries the alias `eval-passed`, natively on loopback, detached, with their
//! PIDs and logs in one state directory. Built on the same launchers as the tests
//! ([`crate::sim`], [`crate::prometheus::Launch`], [`crate::mlflow::spawn_detached`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::{http, mlflow, process, prometheus, sim};

/// The registered model the stack creates.
pub const MODEL_NAME: &str = "demo-model";
/// The adapter the simulator serves.
pub const ADAPTER_NAME: &str = "demo-adapter";
/// The three servers, in start order.
pub const SERVERS: [&str; 3] = ["vllm-sim", "prometheus", "mlflow"];

/// Where and how the stack runs.
#[derive(Debug, Clone)]
pub struct Stack {
    /// State: PID files, logs, data, results, the eval file.
    pub dir: PathBuf,
    /// vllm-sim's port.
    pub sim_port: u16,
    /// Prometheus's port.
    pub prometheus_port: u16,
    /// MLflow's port.
    pub mlflow_port: u16,
    /// Prometheus's scrape interval (load-test gets the same).
    pub scrape_interval: Duration,
    /// The simulator binary.
    pub sim_bin: PathBuf,
    /// Extra simulator flags (they win over the stack's defaults).
    pub sim_args: Vec<String>,
}

/// The simulator's defaults, as its own `VLLM_SIM_*` env vars, so a variable already set in the
/// environment (or a flag in `sim_args`) wins.
const SIM_DEFAULTS: &[(&str, &str)] = &[
    ("VLLM_SIM_SERVED_MODEL_NAME", "demo-base"),
    ("VLLM_SIM_LORA_MODULES", "demo-adapter=/models/demo-adapter"),
    ("VLLM_SIM_TTFT", "0.08"),
    ("VLLM_SIM_ITL", "0.015"),
    ("VLLM_SIM_JITTER", "0.2"),
    ("VLLM_SIM_SEED", "7"),
    ("VLLM_SIM_MAX_NUM_SEQS", "16"),
    // a fake DCGM_FI_DEV_GPU_UTIL gauge, so the GPU query and the dashboard have data
    ("VLLM_SIM_GPU_UTIL", "true"),
];

impl Stack {
    fn pidfile(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pid"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Whether `name` (one of [`SERVERS`]) runs, with its PID.
    pub fn running(&self, name: &str) -> Option<u32> {
        process::read_pid(&self.pidfile(name)).filter(|pid| process::alive(*pid))
    }

    /// Starts what is not running yet (vllm-sim, Prometheus, MLflow), registers the model, and
    /// writes the eval file.
    pub fn up(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.dir.join("results"))
            .with_context(|| format!("creating {}", self.dir.display()))?;
        self.write_eval()?;
        if self.skip("vllm-sim", self.sim_port)? {
            let envs: Vec<(String, String)> = SIM_DEFAULTS
                .iter()
                .filter(|(k, _)| std::env::var_os(k).is_none())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let child = sim::spawn(
                &self.sim_bin,
                self.sim_port,
                &self.sim_args,
                &envs,
                &self.log("vllm-sim"),
            )
            .map_err(anyhow::Error::msg)?;
            self.record("vllm-sim", child.id(), self.sim_port)?;
        }
        if self.skip("prometheus", self.prometheus_port)? {
            let dir = self.dir.join("prometheus");
            let target = format!("127.0.0.1:{}", self.sim_port);
            let config = prometheus::config_yaml("vllm-service", &[&target], self.scrape_interval);
            let launch = prometheus::Launch {
                dir: &dir,
                port: self.prometheus_port,
                config_yaml: &config,
            };
            let mut child = launch.spawn().map_err(anyhow::Error::msg)?;
            if let Err(why) = launch.wait_ready(&mut child) {
                process::stop_group(&mut child);
                bail!(why);
            }
            self.record("prometheus", child.id(), self.prometheus_port)?;
        }
        if self.skip("mlflow", self.mlflow_port)? {
            let dir = self.dir.join("mlflow");
            std::fs::create_dir_all(&dir)?;
            let child =
                mlflow::spawn_detached(&dir, self.mlflow_port).map_err(anyhow::Error::msg)?;
            self.record("mlflow", child.id(), self.mlflow_port)?;
        }
        seed_mlflow(self.mlflow_port)
    }

    /// `true` when `name` must be started: not running, and its port free.
    fn skip(&self, name: &str, port: u16) -> anyhow::Result<bool> {
        if let Some(pid) = self.running(name) {
            eprintln!("vpg-stack: {name} already running (pid {pid})");
            return Ok(false);
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("port {port} for {name} is busy (choose another with its *_PORT variable)");
        }
        Ok(true)
    }

    fn record(&self, name: &str, pid: u32, port: u16) -> anyhow::Result<()> {
        std::fs::write(self.pidfile(name), format!("{pid}\n"))?;
        eprintln!(
            "vpg-stack: {name} ready on http://127.0.0.1:{port} (pid {pid}, log {})",
            self.log(name).display()
        );
        Ok(())
    }

    /// Stops the servers this stack started (newest first); with `clean`, deletes the state.
    pub fn down(&self, clean: bool) -> anyhow::Result<()> {
        for name in SERVERS.iter().rev() {
            match process::stop_pidfile(&self.pidfile(name)) {
                Ok(true) => eprintln!("vpg-stack: {name} stopped"),
                Ok(false) => eprintln!("vpg-stack: {name}: not running"),
                Err(e) => eprintln!("vpg-stack: {name}: {e}"),
            }
        }
        if clean && self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("removing {}", self.dir.display()))?;
            eprintln!(
                "vpg-stack: removed {} (MLflow runs, Prometheus data, results)",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// One line per server: running (pid) or stopped.
    pub fn status(&self) -> String {
        SERVERS
            .iter()
            .map(|name| match self.running(name) {
                Some(pid) => format!("{name}: running (pid {pid})\n"),
                None => format!("{name}: stopped\n"),
            })
            .collect()
    }

    /// `export NAME=VALUE` lines for both binaries (shell-quoted).
    pub fn env(&self) -> String {
        let d = self.dir.display();
        let interval = humantime::format_duration(self.scrape_interval);
        let vars = [
            ("VLLM_URL", format!("http://127.0.0.1:{}", self.sim_port)),
            ("ADAPTER_NAME", ADAPTER_NAME.into()),
            ("EVAL_DATA_PATH", format!("{d}/eval.jsonl")),
            (
                "PROMETHEUS_URL",
                format!("http://127.0.0.1:{}", self.prometheus_port),
            ),
            ("PROMETHEUS_JOB", "vllm-service".into()),
            ("SCRAPE_INTERVAL", interval.to_string()),
            ("CONCURRENCY", "4".into()),
            ("MAX_TOKENS", "64".into()),
            ("OUTPUT_DIR", format!("{d}/results")),
            (
                "LOAD_TEST_RESULTS",
                format!("{d}/results/load_test_results.json"),
            ),
            (
                "MLFLOW_TRACKING_URI",
                format!("http://127.0.0.1:{}", self.mlflow_port),
            ),
            ("MODEL_NAME", MODEL_NAME.into()),
            ("CANDIDATE_ALIAS", "eval-passed".into()),
            (
                "EVAL_DATA_SOURCE",
                "s3://demo-bucket/eval/eval.jsonl".into(),
            ),
        ];
        let mut out = format!("# vllm-perf-gate local stack ({d})\n");
        for (k, v) in vars {
            out.push_str(&format!("export {k}={}\n", shell_quote(&v)));
        }
        out
    }

    fn write_eval(&self) -> anyhow::Result<()> {
        let path = self.dir.join("eval.jsonl");
        if path.exists() {
            return Ok(());
        }
        let text: String = (1..=40)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"prompt_inference": format!("Question {i}: explain in two sentences what a LoRA adapter changes in a model.")})
                )
            })
            .collect();
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// Registers `demo-model` v1 (an s3:// source: MLflow rejects local paths) with the alias
/// `eval-passed`, the candidate perf-decision resolves by default. Idempotent.
fn seed_mlflow(port: u16) -> anyhow::Result<()> {
    let api = "/api/2.0/mlflow";
    let call = |path: &str, body: serde_json::Value| -> anyhow::Result<(u16, serde_json::Value)> {
        http::post_json(port, &format!("{api}/{path}"), &body).map_err(anyhow::Error::msg)
    };
    let (status, reply) = call("registered-models/create", json!({"name": MODEL_NAME}))?;
    if status != 200 && reply["error_code"] != "RESOURCE_ALREADY_EXISTS" {
        bail!("mlflow: creating {MODEL_NAME}: http {status}: {reply}");
    }
    let (status, body) = http::get(
        port,
        &format!("{api}/registered-models/get?name={MODEL_NAME}"),
    )
    .map_err(anyhow::Error::msg)?;
    if status == 200 && body.contains("\"latest_versions\"") {
        eprintln!("vpg-stack: mlflow: {MODEL_NAME} already has versions");
        return Ok(());
    }
    let (status, reply) = call(
        "model-versions/create",
        json!({
            "name": MODEL_NAME,
            "source": format!("s3://demo-bucket/adapters/{ADAPTER_NAME}"),
            "tags": [{"key": "adapter", "value": ADAPTER_NAME}],
        }),
    )?;
    if status != 200 {
        bail!("mlflow: creating {MODEL_NAME} version 1: http {status}: {reply}");
    }
    let version = reply["model_version"]["version"]
        .as_str()
        .unwrap_or("1")
        .to_string();
    let (status, reply) = call(
        "registered-models/alias",
        json!({"name": MODEL_NAME, "alias": "eval-passed", "version": version}),
    )?;
    if status != 200 {
        bail!("mlflow: setting alias eval-passed: http {status}: {reply}");
    }
    eprintln!("vpg-stack: mlflow: registered {MODEL_NAME} v{version} (alias eval-passed)");
    Ok(())
}

/// `'...'` quoting for a POSIX shell (`eval "$(vpg-stack env)"`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Base URL `http://127.0.0.1:PORT` → PORT (the launchers are loopback-only).
pub fn loopback_port(url: &str) -> anyhow::Result<u16> {
    let rest = url
        .trim_end_matches('/')
        .strip_prefix("http://127.0.0.1:")
        .or_else(|| url.trim_end_matches('/').strip_prefix("http://localhost:"))
        .with_context(|| format!("{url} is not http://127.0.0.1:PORT"))?;
    rest.parse()
        .with_context(|| format!("{url}: `{rest}` is not a port"))
}

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_ports() {
        assert_eq!(shell_quote("http://127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(loopback_port("http://127.0.0.1:9090/").unwrap(), 9090);
        assert!(loopback_port("http://10.0.0.1:9090").is_err());
    }
}
