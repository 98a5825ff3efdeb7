//! A REAL Prometheus (Debian's `prometheus` binary) started on a free loopback port, with a temp
//! data dir and a generated config: one scrape job with the given name and targets, the given
//! global scrape interval. Stopped (its process group) when dropped. [`Launch`] is the one
//! place its command line is written, also for the scripts' detached servers (`vpg-stack`).
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
//! HTTP checks use [`crate::http`], no runtime needed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{http, process};

/// How long `start` waits for `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Prometheus; killed on drop.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The Prometheus binary: `$PROMETHEUS_BIN`, else `prometheus` on `PATH`.
pub fn find_prometheus() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("PROMETHEUS_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "prometheus not found: PROMETHEUS_BIN={} is not a file; run scripts/install-test-deps.sh",
                bin.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
        .ok_or_else(|| "prometheus not found: run scripts/install-test-deps.sh".to_string())
}

/// The Prometheus binary ([`find_prometheus`]); panics if missing.
pub fn prometheus_bin() -> PathBuf {
    find_prometheus().unwrap_or_else(|e| panic!("{e}"))
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

/// The YAML config of [`config_yaml`] with `honor_labels: true` on the job: the scraped
/// series keep their own `job` and `instance` (a Pushgateway's groups), as Prometheus's docs
/// ask for a Pushgateway.
pub fn config_yaml_honor_labels(job: &str, targets: &[&str], scrape_interval: Duration) -> String {
    config_yaml(job, targets, scrape_interval).replace(
        "    static_configs:\n",
        "    honor_labels: true\n    static_configs:\n",
    )
}

/// How to start a Prometheus: the one place its command line is written, for the fixture
/// ([`PrometheusServer`]) and the scripts' detached servers (`vpg-stack prometheus`).
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// Config (`prometheus.yml`), TSDB (`data/`, which may already hold blocks, e.g. backfilled
    /// ones: Prometheus loads blocks at start-up only) and log (`prometheus.log`) go here.
    pub dir: &'a Path,
    /// Loopback port to listen on.
    pub port: u16,
    /// The config text (see [`config_yaml`]).
    pub config_yaml: &'a str,
}

impl Launch<'_> {
    /// The log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }

    /// Writes the config and spawns Prometheus in its own process group (not waiting).
    pub fn spawn(&self) -> Result<Child, String> {
        let bin = find_prometheus()?;
        std::fs::create_dir_all(self.dir.join("data"))
            .and_then(|()| std::fs::write(self.dir.join("prometheus.yml"), self.config_yaml))
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(format!(
            "--config.file={}",
            self.dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            self.dir.join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=1d")
        .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
        .arg("--web.enable-lifecycle");
        process::spawn_group(&mut cmd, &self.log())
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))
    }

    /// Waits until `/-/ready` answers 200 (up to [`READY_TIMEOUT`]).
    pub fn wait_ready(&self, child: &mut Child) -> Result<(), String> {
        let port = self.port;
        process::wait_until(child, "prometheus", &self.log(), READY_TIMEOUT, || {
            matches!(http::get(port, "/-/ready"), Ok((200, _)))
        })
    }
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
        // The free port is released before Prometheus binds it: retry if another process won.
        let mut last = String::new();
        for _ in 0..3 {
            let launch = Launch {
                dir: dir.path(),
                port: crate::free_port(),
                config_yaml,
            };
            let mut child = launch.spawn().map_err(anyhow::Error::msg)?;
            match launch.wait_ready(&mut child) {
                Ok(()) => {
                    return Ok(PrometheusServer {
                        child,
                        port: launch.port,
                        dir,
                    });
                }
                Err(why) => {
                    process::stop_group(&mut child);
                    last = why;
                }
            }
        }
        anyhow::bail!("prometheus did not become ready: {last}")
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
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` on the server: status and body. Panics on a transport error.
    pub fn get(&self, path: &str) -> (u16, String) {
        http::get(self.port, path).unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.url()))
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

    /// Waits until every target of `job` answered a scrape taken after `after_unix_s` with
    /// `up == 1` ([`wait_scraped_after`]); panics after `timeout`.
    pub fn wait_scraped_after(&self, job: &str, after_unix_s: f64, timeout: Duration) {
        wait_scraped_after(self.port, job, after_unix_s, timeout).unwrap_or_else(|e| panic!("{e}"));
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
        let (status, body) = instant_query(self.port, promql).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "query {promql}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).expect("invariant: /api/v1/query answers JSON");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string)
    }
}

/// Percent-encodes everything but unreserved characters ([`http::url_encode`]).
pub(crate) fn url_encode(s: &str) -> String {
    http::url_encode(s)
}

/// A blocking GET on 127.0.0.1:`port`: (status, body) ([`http::get`]).
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http::get(port, path).map_err(std::io::Error::other)
}

fn instant_query(port: u16, promql: &str) -> Result<(u16, String), String> {
    let path = format!("/api/v1/query?query={}", http::url_encode(promql));
    http::get(port, &path).map_err(|e| format!("GET {path} on port {port}: {e}"))
}

/// Waits until every target of `job` on the Prometheus at `port` answered a scrape taken after
/// `after_unix_s` with `up == 1`: a query window starting later then has a sample before it (a
/// counter's increase needs two samples), and earlier traffic is in an older sample.
pub fn wait_scraped_after(
    port: u16,
    job: &str,
    after_unix_s: f64,
    timeout: Duration,
) -> Result<(), String> {
    let query = format!(
        "count(timestamp(up{{job=\"{job}\"}} == 1) > {after_unix_s}) == count(up{{job=\"{job}\"}})"
    );
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Ok((200, body)) = instant_query(port, &query) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return Ok(());
            }
            last = body;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "prometheus: job {job} not scraped up after {timeout:?} (last answer: {last})"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        process::stop_group(&mut self.child);
    }
}

/// Seconds since the Unix epoch, as Prometheus timestamps are.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
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
        assert!(http::get(port, "/-/ready").is_err());
    }
}
