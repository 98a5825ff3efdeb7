//! The `load-test` step (seed 000, Step 1) as a library function: validate inputs, health-check
//! vLLM, check the adapter is served, fire the prompts, collect server-side figures, write
//! `load_test_results.json`, `load_test_status.txt` and `requests.jsonl`.
//!
//! Whatever happens after the output directory exists, a results file and a status file are
//! written (atomically): `completed`, `failed` (with a one-line `error`) or `aborted`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use crate::client::{ClientOptions, VllmClient, redact_url};
use crate::exit;
use crate::fsio;
use crate::prom::{
    LoadSpan, MetricsScraper, PromSettings, PrometheusCollector, server_metrics_from_deltas,
};
use crate::results::{
    EvalDataInfo, LoadTestResults, REQUESTS_FILE, RESULTS_FILE, RunConfig, RunStatus, RunTiming,
    SCHEMA_VERSION, STATUS_FILE, ServerMetrics, ToolInfo, WarmupInfo, WindowMode,
};
use crate::runner::{RunOptions, Schedule, run_load};
use crate::workload::{EndpointChoice, Sampling, load_eval_file, prepare_requests};

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

impl Stop {
    fn input(e: impl std::fmt::Display) -> Self {
        Stop {
            code: exit::BAD_INPUT,
            message: e.to_string(),
        }
    }
    fn dependency(e: impl std::fmt::Display) -> Self {
        Stop {
            code: exit::DEPENDENCY,
            message: e.to_string(),
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
    let mut results = skeleton(&cfg);
    let outcome = execute(&cfg, &mut results, cancel, started_wall).await;
    let code = match outcome {
        Ok(status) => {
            results.status = status;
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
        code = exit::BAD_INPUT;
    }
    Ok(LoadTestOutcome {
        results,
        exit_code: code,
        results_path,
    })
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

async fn execute(
    cfg: &LoadTestConfig,
    results: &mut LoadTestResults,
    cancel: CancellationToken,
    started_wall: chrono::DateTime<Utc>,
) -> Result<RunStatus, Stop> {
    // Local inputs first: a bad file fails fast without touching the network.
    let eval =
        load_eval_file(&cfg.eval_data_path, cfg.prompt_field.as_deref()).map_err(Stop::input)?;
    results.eval_data = Some(EvalDataInfo {
        path: cfg.eval_data_path.display().to_string(),
        digest: eval.digest().to_string(),
        sha256: eval.sha256.clone(),
        rows: eval.prompts.len() as u64,
    });
    let collector = match cfg.prometheus.clone() {
        Some(p) => Some(PrometheusCollector::new(p).map_err(Stop::input)?),
        None => None,
    };
    let client = VllmClient::new(
        &cfg.vllm_url,
        cfg.api_key.as_deref(),
        ClientOptions {
            pool_size: cfg.concurrency as usize,
            ..ClientOptions::default()
        },
    )
    .map_err(Stop::input)?;

    match cfg.wait_ready {
        Some(t) if !t.is_zero() => client.wait_ready(t).await,
        _ => client.health().await,
    }
    .map_err(Stop::dependency)?;
    let adapter = client
        .find_adapter(&cfg.adapter_name)
        .await
        .map_err(Stop::dependency)?;
    tracing::info!(adapter = %adapter.name, root = ?adapter.root, parent = ?adapter.parent, "adapter is served");
    results.adapter = Some(adapter);
    if let Some(c) = &collector {
        c.check_ready().await.map_err(Stop::dependency)?;
    }

    let sampling = Sampling {
        max_tokens: cfg.max_tokens,
        temperature: cfg.temperature,
    };
    let mut requests = prepare_requests(&eval.prompts, &cfg.adapter_name, cfg.endpoint, sampling);
    if let Some(n) = cfg.num_requests {
        let base = requests.clone();
        requests = base.iter().cycle().take(n as usize).cloned().collect();
    }
    let client = Arc::new(client);
    if cfg.warmup_requests > 0 {
        results.warmup = Some(warm_up(cfg, &client, &requests, &cancel).await?);
        if cancel.is_cancelled() {
            return Ok(RunStatus::Aborted);
        }
    }

    let mut server_source = match collector {
        Some(c) => ServerSide::Prometheus(c),
        None => {
            let scraper =
                MetricsScraper::new(client.http().clone(), &cfg.vllm_url, cfg.api_key.clone())
                    .map_err(Stop::input)?;
            let before = match scraper.snapshot().await {
                Ok(snap) => Some(snap),
                Err(e) => {
                    results
                        .warnings
                        .push(format!("cannot scrape vLLM /metrics before the load: {e}"));
                    None
                }
            };
            ServerSide::Scrape { scraper, before }
        }
    };

    let schedule = match cfg.rate {
        Some(r) => Schedule::Rate {
            per_second: r,
            max_in_flight: cfg.concurrency,
        },
        None => Schedule::Closed {
            concurrency: cfg.concurrency,
        },
    };
    let partial = cfg.output_dir.join(format!("{REQUESTS_FILE}.partial"));
    tracing::info!(requests = requests.len(), concurrency = cfg.concurrency, rate = ?cfg.rate, "load starting");
    let out = run_load(
        client.clone(),
        Arc::new(requests),
        RunOptions {
            schedule,
            request_timeout: cfg.request_timeout,
            drain_grace: cfg.drain_grace,
            progress_every: cfg.progress_every,
            requests_path: Some(partial.clone()),
        },
        cancel.clone(),
    )
    .await
    .map_err(|e| Stop {
        code: exit::DEPENDENCY,
        message: e.to_string(),
    })?;
    if let Err(e) = std::fs::rename(&partial, cfg.output_dir.join(REQUESTS_FILE)) {
        results
            .warnings
            .push(format!("cannot finalise {REQUESTS_FILE}: {e}"));
    }
    results.warnings.extend(out.warnings.iter().cloned());
    let load_s = out.duration.as_secs_f64();
    tracing::info!(
        duration_s = format!("{load_s:.2}"),
        ok = out.client.successful_requests,
        failed = out.client.failed_requests,
        "load finished"
    );
    results.timing = Some(RunTiming {
        started_at: rfc3339(started_wall),
        load_start: rfc3339(out.load_start),
        load_end: rfc3339(out.load_end),
        load_duration_s: load_s,
        wall_clock_duration_s: 0.0,
    });
    if out.client.responses_without_usage > 0 {
        results.warnings.push(format!(
            "{} successful responses carried no usage chunk: their output tokens are unknown (not guessed from max_tokens)",
            out.client.responses_without_usage
        ));
    }
    results.client = Some(out.client.clone());
    results.load_generator = Some(out.health.clone());
    if out.aborted {
        return Ok(RunStatus::Aborted);
    }

    let span = LoadSpan {
        start: out.load_start,
        end: out.load_end,
    };
    let server: ServerMetrics = match &mut server_source {
        ServerSide::Prometheus(c) => {
            tracing::info!("waiting for the Prometheus scrape, then querying");
            tokio::select! {
                r = c.collect(&span) => r.map_err(Stop::dependency)?,
                _ = cancel.cancelled() => return Ok(RunStatus::Aborted),
            }
        }
        ServerSide::Scrape { before: None, .. } => return Ok(RunStatus::Completed),
        ServerSide::Scrape {
            scraper,
            before: Some(before),
        } => {
            // vLLM records a request's metrics just after its last chunk: wait (briefly) until
            // the server has counted what the client saw finish.
            match scraper
                .snapshot_settled(
                    before,
                    out.client.successful_requests,
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(after) => server_metrics_from_deltas(before, &after, load_s),
                Err(e) => {
                    results
                        .warnings
                        .push(format!("cannot scrape vLLM /metrics after the load: {e}"));
                    return Ok(RunStatus::Completed);
                }
            }
        }
    };
    reconcile(results, &server, &out.client);
    results.server = Some(server);
    Ok(RunStatus::Completed)
}

/// Sends the first `--warmup-requests` requests (cycling the prompts), outside the measurement:
/// the first request to a LoRA adapter loads it. With Prometheus, then waits one scrape interval
/// + 2 s so warm-up observations fall before the window's first sample.
async fn warm_up(
    cfg: &LoadTestConfig,
    client: &Arc<VllmClient>,
    requests: &[crate::workload::PreparedRequest],
    cancel: &CancellationToken,
) -> Result<WarmupInfo, Stop> {
    let n = cfg.warmup_requests as usize;
    let warm: Vec<_> = requests.iter().cycle().take(n).cloned().collect();
    tracing::info!(requests = n, "warm-up (not measured)");
    let out = run_load(
        client.clone(),
        Arc::new(warm),
        RunOptions {
            schedule: Schedule::Closed {
                concurrency: cfg.concurrency.min(cfg.warmup_requests).max(1),
            },
            request_timeout: cfg.request_timeout,
            drain_grace: cfg.drain_grace,
            progress_every: None,
            requests_path: None,
        },
        cancel.clone(),
    )
    .await
    .map_err(|e| Stop {
        code: exit::DEPENDENCY,
        message: e.to_string(),
    })?;
    let gap = match &cfg.prometheus {
        Some(p) => p.scrape_interval + Duration::from_secs(2),
        None => Duration::ZERO,
    };
    if !gap.is_zero() {
        tracing::info!(gap = ?gap, "quiet gap after warm-up so its observations stay out of the window");
        tokio::select! {
            _ = tokio::time::sleep(gap) => {}
            _ = cancel.cancelled() => {}
        }
    }
    Ok(WarmupInfo {
        requests: out.client.total_requests,
        successful_requests: out.client.successful_requests,
        errors_by_kind: out.client.errors_by_kind,
        gap_s: gap.as_secs_f64(),
    })
}

/// Where server-side figures come from.
enum ServerSide {
    /// PromQL over the load's window.
    Prometheus(PrometheusCollector),
    /// vLLM `/metrics` before and after the load.
    Scrape {
        /// The scraper.
        scraper: MetricsScraper,
        /// The snapshot before the load, if it could be taken.
        before: Option<crate::prom::MetricsSnapshot>,
    },
}

/// Server-side finished count should match the client's successes; a gap means wrong labels,
/// a wrong window, or foreign traffic on the server.
fn reconcile(
    results: &mut LoadTestResults,
    server: &ServerMetrics,
    client: &crate::results::ClientMetrics,
) {
    if let Some(n) = server.requests_finished.get() {
        let ok = client.successful_requests as f64;
        if ok > 0.0 && ((n - ok).abs() / ok) > 0.10 {
            results.warnings.push(format!(
                "server counted {n:.0} finished requests but the client saw {ok:.0} succeed: check --prometheus-job, the window, or other traffic on this vLLM"
            ));
        }
    }
}
