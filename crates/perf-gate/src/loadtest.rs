//! The `load-test` step (seed 000, Step 1) as a library function: validate inputs, health-check
//! vLLM, check the adapter is served, fire the prompts, collect server-side figures, write
//! `load_test_results.json`, `load_test_status.txt` and `requests.jsonl`.
//!
//! Whatever happens after the output directory exists, a results file and a status file are
//! written (atomically): `completed`, `failed` (with a one-line `error`) or `aborted`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

mod phases;

use crate::client::redact_url;
use crate::exit;
use crate::fsio;
use crate::prom::PromSettings;
use crate::results::{
    LoadTestResults, REQUESTS_FILE, RESULTS_FILE, RunConfig, RunStatus, SCHEMA_VERSION,
    STATUS_FILE, ToolInfo, WindowMode,
};
use crate::workload::EndpointChoice;

/// Everything `load-test` needs, validated.
#[derive(Clone)]
pub struct LoadTestConfig {
    /// vLLM base URL.
    pub vllm_url: String,
    /// Model id (adapter) requests go to.
    pub adapter_name: String,
    /// Eval JSONL.
    pub eval_data_path: PathBuf,
    /// Requests in flight (closed loop), or the in-flight cap with `rate`.
    pub concurrency: u32,
    /// Open-loop rate, requests per second.
    pub rate: Option<f64>,
    /// Total requests; prompts are cycled to reach it. `None`: each prompt once (the seed).
    pub num_requests: Option<u64>,
    /// Max output tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Endpoint choice.
    pub endpoint: EndpointChoice,
    /// Forced prompt field.
    pub prompt_field: Option<String>,
    /// Bearer token for vLLM (never written anywhere).
    pub api_key: Option<String>,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Wait up to this long for `/health` (None: one check).
    pub wait_ready: Option<Duration>,
    /// Output directory.
    pub output_dir: PathBuf,
    /// Prometheus settings; `None` means vLLM `/metrics` deltas.
    pub prometheus: Option<PromSettings>,
    /// Label job recorded even without Prometheus.
    pub prometheus_job: String,
    /// Scrape interval recorded in the config.
    pub scrape_interval: Duration,
    /// Seed-mode wait recorded in the config.
    pub scrape_wait: Duration,
    /// Window mode recorded in the config.
    pub window_mode: WindowMode,
    /// GPU selector recorded in the config.
    pub gpu_selector: String,
    /// Progress line interval.
    pub progress_every: Option<Duration>,
    /// Grace for in-flight requests after SIGINT/SIGTERM.
    pub drain_grace: Duration,
    /// Requests sent before the measurement and left out of it.
    pub warmup_requests: u32,
}

impl std::fmt::Debug for LoadTestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadTestConfig")
            .field("vllm_url", &redact_url(&self.vllm_url))
            .field("adapter_name", &self.adapter_name)
            .field("eval_data_path", &self.eval_data_path)
            .field("concurrency", &self.concurrency)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// How the step ended.
#[derive(Debug)]
pub struct LoadTestOutcome {
    /// The document written (or that would have been written).
    pub results: LoadTestResults,
    /// Exit code per the shared table.
    pub exit_code: u8,
    /// Where the results went.
    pub results_path: PathBuf,
}

/// A failure that stops the step, with its exit code.
struct Stop {
    code: u8,
    message: String,
}

/// An error's message followed by its causes (`a: b: c`), so the one line says why.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        src = s.source();
    }
    text
}

impl Stop {
    fn input(e: impl std::error::Error + 'static) -> Self {
        Stop {
            code: exit::BAD_INPUT,
            message: error_chain(&e),
        }
    }
    fn dependency(e: impl Into<Box<dyn std::error::Error + 'static>>) -> Self {
        let e = e.into();
        Stop {
            code: exit::DEPENDENCY,
            message: error_chain(e.as_ref()),
        }
    }
    fn runner(e: crate::runner::RunError) -> Self {
        Stop {
            code: exit::DEPENDENCY,
            message: e.to_string(),
        }
    }
    fn aborted(message: &str) -> Self {
        Stop {
            code: exit::ABORTED,
            message: message.to_string(),
        }
    }
}

/// Error creating the output directory: nothing can be written, so it is returned instead.
#[derive(Debug, thiserror::Error)]
#[error("cannot create --output-dir {path}")]
pub struct OutputDirError {
    /// The directory.
    pub path: String,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Runs the whole step. Returns an error only when the output directory cannot be created;
/// every other failure is recorded in the files and reflected in the exit code.
pub async fn run(
    cfg: LoadTestConfig,
    cancel: CancellationToken,
) -> Result<LoadTestOutcome, OutputDirError> {
    let started_wall = Utc::now();
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.output_dir).map_err(|source| OutputDirError {
        path: cfg.output_dir.display().to_string(),
        source,
    })?;
    clear_stale_outputs(&cfg.output_dir);
    let mut results = skeleton(&cfg);
    warn_about_proxies(&mut results);
    let outcome = phases::execute(&cfg, &mut results, cancel, started_wall).await;
    let code = match outcome {
        Ok(status) => {
            results.status = status;
            if status == RunStatus::Aborted {
                results.error = Some(
                    "stopped by a signal (SIGINT/SIGTERM): the figures cover only the requests that finished"
                        .into(),
                );
            }
            if status == RunStatus::Aborted {
                exit::ABORTED
            } else {
                exit::SUCCESS
            }
        }
        Err(stop) => {
            tracing::error!("{}", stop.message);
            results.status = if stop.code == exit::ABORTED {
                RunStatus::Aborted
            } else {
                RunStatus::Failed
            };
            results.error = Some(stop.message);
            stop.code
        }
    };
    if let Some(t) = results.timing.as_mut() {
        t.wall_clock_duration_s = started.elapsed().as_secs_f64();
    }
    let results_path = cfg.output_dir.join(RESULTS_FILE);
    let mut code = code;
    if let Err(e) = write_outputs(&cfg.output_dir, &results) {
        tracing::error!("cannot write results to {}: {e}", cfg.output_dir.display());
        // Whatever was measured, nobody may read a stale "completed" here.
        let _ = fsio::write_atomic(&cfg.output_dir.join(STATUS_FILE), b"failed\n");
        if code == exit::SUCCESS {
            code = exit::DEPENDENCY;
        }
    }
    Ok(LoadTestOutcome {
        results,
        exit_code: code,
        results_path,
    })
}

/// Removes what an earlier run left in the output directory, so no stale `completed` status or
/// request log can be mistaken for this run's.
fn clear_stale_outputs(dir: &Path) {
    for name in [STATUS_FILE, RESULTS_FILE, REQUESTS_FILE] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_file(dir.join(format!("{REQUESTS_FILE}.partial")));
}

/// A proxy between the client and vLLM can buffer the SSE stream and make TTFT look like e2e.
fn warn_about_proxies(results: &mut LoadTestResults) {
    let set: Vec<&str> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    .collect();
    if !set.is_empty() {
        results.warnings.push(format!(
            "{} set: requests to vLLM may go through a proxy, which can buffer the stream and distort TTFT (add vLLM's host to NO_PROXY)",
            set.join(", ")
        ));
    }
}

fn write_outputs(dir: &Path, results: &LoadTestResults) -> std::io::Result<()> {
    // Results first, then the status word: a reader that sees the status also sees the results.
    fsio::write_json_atomic(&dir.join(RESULTS_FILE), results)?;
    fsio::write_atomic(
        &dir.join(STATUS_FILE),
        format!("{}\n", results.status.as_str()).as_bytes(),
    )
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn skeleton(cfg: &LoadTestConfig) -> LoadTestResults {
    let mut departures = vec![
        "requests are streamed (stream_options.include_usage) so the client also measures TTFT, inter-token latency and e2e".to_string(),
        "PromQL aggregates with sum by (le) before histogram_quantile and carries the job selector on every query".to_string(),
    ];
    if cfg.prometheus.is_some() {
        departures.push("finished requests and generated tokens are exact counter differences (sum(x) - sum(x offset W), with resets() guarding restarts) instead of increase(), which extrapolates to the window edges and over-counts short loads".to_string());
    }
    if cfg.prometheus.is_some() && cfg.window_mode == WindowMode::EndAnchored {
        departures.push("window is end-anchored: queries evaluated at load end + scrape interval + 2 s over a range covering the whole load, and throughput is finished requests / load duration (the seed's minute-rounded rate under-reports short runs; --window-mode seed restores it)".to_string());
    }
    if cfg.prometheus.is_none() {
        departures.push("no --prometheus-url: server figures come from vLLM /metrics deltas taken before and after the load (seed 001)".to_string());
    }
    LoadTestResults {
        schema_version: SCHEMA_VERSION,
        status: RunStatus::Failed,
        error: None,
        tool: ToolInfo::this("load-test"),
        config: RunConfig {
            vllm_url: redact_url(&cfg.vllm_url),
            adapter_name: cfg.adapter_name.clone(),
            eval_data_path: cfg.eval_data_path.display().to_string(),
            concurrency: cfg.concurrency,
            max_tokens: cfg.max_tokens,
            endpoint: cfg.endpoint.as_str().to_string(),
            temperature: cfg.temperature,
            prometheus_url: cfg.prometheus.as_ref().map(|p| redact_url(&p.url)),
            prometheus_job: cfg.prometheus_job.clone(),
            scrape_interval_s: cfg.scrape_interval.as_secs_f64(),
            scrape_wait_s: cfg.scrape_wait.as_secs_f64(),
            window_mode: cfg.window_mode,
            gpu_selector: cfg.gpu_selector.clone(),
            request_timeout_s: cfg.request_timeout.as_secs_f64(),
            prompt_field: cfg.prompt_field.clone(),
            api_key_set: cfg.api_key.as_deref().is_some_and(|k| !k.is_empty()),
            rate: cfg.rate,
            num_requests: cfg.num_requests,
            warmup_requests: cfg.warmup_requests,
            wait_ready_s: cfg.wait_ready.map_or(0.0, |d| d.as_secs_f64()),
            drain_grace_s: cfg.drain_grace.as_secs_f64(),
        },
        adapter: None,
        eval_data: None,
        timing: None,
        client: None,
        server: None,
        load_generator: None,
        warmup: None,
        departures,
        warnings: Vec::new(),
    }
}
