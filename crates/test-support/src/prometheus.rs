//! A REAL Prometheus (Debian's `prometheus` binary) started on a free loopback port, with a temp
//! data dir and a generated config: one scrape job with the given name and targets, the given
//! global scrape interval. Stopped (kill + wait) when dropped.
//!
//! ```no_run
//! use std::time::Duration;
//! use test_support::prometheus::PrometheusServer;
//! let prom = PrometheusServer::start("vllm-service", &["127.0.0.1:8000"], Duration::from_secs(1));
//! prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
//! println!("{}", prom.url());
//! ```
//!
//! The binary is `$PROMETHEUS_BIN`, else `prometheus` on `PATH`. If it is missing the fixture
//! panics ("prometheus not found: run scripts/install-test-deps.sh"): tests never skip silently.
//! Blocking `std` I/O on purpose: it is a fixture, usable from sync and async tests alike (the
//! HTTP checks use a tiny HTTP/1.0 client over `TcpStream`, no runtime needed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `start` waits for `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Prometheus; killed on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The Prometheus binary: `$PROMETHEUS_BIN`, else `prometheus` on `PATH`; panics if missing.
pub fn prometheus_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROMETHEUS_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "prometheus not found: PROMETHEUS_BIN={} is not a file; run scripts/install-test-deps.sh",
            bin.display()
        );
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .expect("prometheus not found: run scripts/install-test-deps.sh")
}

/// A Prometheus duration for a `Duration`: whole seconds as `5s`, else milliseconds (`500ms`).
fn prom_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs().max(1))
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The YAML config: one job scraping `targets` every `scrape_interval`.
pub fn config_yaml(job: &str, targets: &[&str], scrape_interval: Duration) -> String {
    let interval = prom_duration(scrape_interval);
    let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n\
         scrape_configs:\n  - job_name: {job:?}\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`host:port`) as job `job` every `scrape_interval`,
    /// and waits until `/-/ready` answers 200 (up to [`READY_TIMEOUT`]). Panics on failure,
    /// with the server's log.
    pub fn start(job: &str, targets: &[&str], scrape_interval: Duration) -> Self {
        let dir = tempfile::tempdir().expect("invariant: can create a temp dir");
        Self::try_start_in(dir, &config_yaml(job, targets, scrape_interval))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts Prometheus with the config text `config_yaml` on the TSDB in `dir/data` (which may
    /// already hold blocks, e.g. backfilled ones: Prometheus loads blocks at start-up only), and
    /// waits until `/-/ready` answers 200. The server owns `dir` from then on. Fails with the
    /// server's log if it exits early or is not ready within [`READY_TIMEOUT`].
    pub fn try_start_in(dir: tempfile::TempDir, config_yaml: &str) -> anyhow::Result<Self> {
        let bin = prometheus_bin();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config.display()))?;
        // The free port is released before Prometheus binds it: retry if another process won.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = crate::free_port();
            let log_path = dir.path().join(format!("prometheus-{port}.log"));
            let log = std::fs::File::create(&log_path).expect("invariant: can create the log");
            let log2 = log.try_clone().expect("invariant: can clone a file handle");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg("--storage.tsdb.retention.time=1d")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
            let mut child = child;
            match wait_ready(&mut child, port, READY_TIMEOUT) {
                Ok(()) => return Ok(PrometheusServer { child, port, dir }),
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last_log = format!("{why}\n--- log ---\n{log}");
                }
            }
        }
        anyhow::bail!("prometheus did not become ready: {last_log}")
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding config, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        let path = self
            .dir
            .path()
            .join(format!("prometheus-{}.log", self.port));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// `GET path` on the server: status and body. Panics on a transport error.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.url()))
    }

    /// `.data.activeTargets` of `/api/v1/targets` as JSON values.
    pub fn active_targets(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/api/v1/targets");
        assert_eq!(status, 200, "GET /api/v1/targets: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).expect("invariant: /api/v1/targets answers JSON");
        v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until every target of `job` has been scraped successfully (`health: "up"`), so a
    /// test does not race the first scrape. Panics after `timeout` with the targets' state.
    pub fn wait_for_targets_up(&self, job: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let targets: Vec<_> = self
                .active_targets()
                .into_iter()
                .filter(|t| t["labels"]["job"] == job)
                .collect();
            if !targets.is_empty() && targets.iter().all(|t| t["health"] == "up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "targets of job {job:?} not up after {timeout:?}: {targets:?}\n--- log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `promql` (instant, at "now") returns at least one series; returns the first
    /// value as a string. Panics after `timeout`.
    pub fn wait_for_series(&self, promql: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.instant_value(promql) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no series for {promql} after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first value of an instant query at "now", as Prometheus spells it (`"3"`, `"NaN"`).
    pub fn instant_value(&self, promql: &str) -> Option<String> {
        let q: String = url_encode(promql);
        let (status, body) = self.get(&format!("/api/v1/query?query={q}"));
        assert_eq!(status, 200, "query {promql}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).expect("invariant: /api/v1/query answers JSON");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string)
    }
}

/// Polls `/-/ready` until 200, the process exits, or `timeout` passes.
fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("prometheus exited early with {status}"));
        }
        if let Ok((200, _)) = http_get(port, "/-/ready") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("/-/ready not 200 after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A minimal blocking HTTP/1.0 GET on 127.0.0.1:`port`: (status, body).
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {head:?}")))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_durations() {
        assert_eq!(prom_duration(Duration::from_secs(1)), "1s");
        assert_eq!(prom_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(
            config_yaml(
                "vllm-service",
                &["127.0.0.1:8000", "127.0.0.1:8001"],
                Duration::from_secs(1)
            ),
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: \"vllm-service\"\n    static_configs:\n      - targets: [\"127.0.0.1:8000\", \"127.0.0.1:8001\"]\n"
        );
        assert_eq!(url_encode("up{job=\"x\"}"), "up%7Bjob%3D%22x%22%7D");
    }

    #[test]
    fn serial_starts_and_stops_on_drop() {
        let port;
        {
            let prom = PrometheusServer::start("self", &["127.0.0.1:1"], Duration::from_secs(1));
            port = prom.port();
            assert_eq!(prom.get("/-/ready").0, 200);
            // Service discovery fills the target list shortly after ready; nothing listens on
            // port 1, so the target ends up "down".
            let deadline = Instant::now() + Duration::from_secs(20);
            let targets = loop {
                let t = prom.active_targets();
                if t.len() == 1 && t[0]["health"] == "down" {
                    break t;
                }
                assert!(Instant::now() < deadline, "targets: {t:?}");
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(targets[0]["labels"]["job"], "self");
            // Prometheus's own metrics answer queries.
            assert_eq!(prom.instant_value("vector(1)").as_deref(), Some("1"));
        }
        // Killed on drop: the port refuses connections now.
        assert!(http_get(port, "/-/ready").is_err());
    }
}
