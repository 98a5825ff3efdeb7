//! The `load-test` step (seed 000, Step 1) as a library function: validate inputs, health-check
//! vLLM, check the adapter is served, fire the prompts, collect server-side figures, write
//! `load_test_results.json`, `load_test_status.txt` and `requests.jsonl`.
//!
//! Files follow [`crate::step::StepOutputs`]: first the status says `failed` and an earlier
//! run's files are removed; whatever happens after that, a results file and a status file are
//! written (atomically): `completed`, `failed` (with a one-line `error`) or `aborted`.
//!
//! Modules: `config` (what to do, defaults), `error` (why it stopped, exit codes),
//! `phases` (the run, in order), `inputs` (prompts and sizes, planned then built), `accounting` (server figures that cannot account for the
//! client's successes).

use std::path::PathBuf;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

mod accounting;
mod config;
mod error;
mod gpu_poll;
mod inputs;
pub mod merge;
mod mixes;
mod phases;
mod poll;
pub mod scenarios;
mod sweep;
pub mod thresholds;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_DRAIN_GRACE, DEFAULT_MAX_TOKENS, DEFAULT_POLL_INTERVAL,
    DEFAULT_PROGRESS_INTERVAL, DEFAULT_REQUEST_TIMEOUT, LoadTestConfig, Shard,
};
pub use error::LoadTestError;
pub use gpu_poll::{GPU_HEADER, QUERY as GPU_QUERY, SKIPPED as GPU_SKIPPED};
pub use poll::{GPU_METRICS_FILE, VLLM_HEADER, VLLM_METRICS_FILE};

use crate::results::{
    LoadTestResults, REQUESTS_FILE, RESULTS_FILE, RunConfig, RunStatus, SCHEMA_VERSION,
    STATUS_FILE, ToolInfo, WindowMode,
};
use crate::step::{Exit, StepFailure, StepOutputs, error_line};
use crate::urls::redact_url;
use crate::workload::plan::InputSource;

/// The files `load-test` owns in its output directory (besides the status file).
const DOCUMENTS: &[&str] = &[
    RESULTS_FILE,
    REQUESTS_FILE,
    PARTIAL_REQUESTS_FILE,
    crate::report::LOAD_TEST_REPORT_FILE,
    crate::report::STEP_SUMMARY_FILE,
    crate::report::LOAD_TEST_SUMMARY_FILE,
    crate::report::STATS_CSV_FILE,
    crate::report::STATS_HISTORY_CSV_FILE,
    crate::step::CONFIG_RECORD_FILE,
    poll::VLLM_METRICS_FILE,
    poll::GPU_METRICS_FILE,
];
/// Held while the final files are written, and by a second signal's [`mark_killed`] (which
/// runs on another thread of the runtime): the two never interleave.
static FINAL_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `requests.jsonl` while the load runs; renamed when complete.
pub(crate) const PARTIAL_REQUESTS_FILE: &str = "requests.jsonl.partial";

/// How the step ended.
#[derive(Debug)]
pub struct LoadTestOutcome {
    /// The document written (or that would have been written).
    pub results: LoadTestResults,
    /// Exit code per the shared table.
    pub exit: Exit,
    /// Where the results went.
    pub results_path: PathBuf,
    /// Whether the results file was written; when not, `results` says `failed` with the
    /// write error, as the status file does.
    pub results_written: bool,
}

/// Runs the whole step. Returns an error only when the output directory cannot be claimed
/// (created, its status written); every other failure is recorded in the files and reflected
/// in [`LoadTestOutcome::exit`].
pub async fn run(
    cfg: LoadTestConfig,
    cancel: CancellationToken,
) -> Result<LoadTestOutcome, LoadTestError> {
    let started_wall = Utc::now();
    let started = Instant::now();
    let outputs = StepOutputs::claim(
        &cfg.output_dir,
        STATUS_FILE,
        DOCUMENTS,
        RunStatus::Failed.as_str(),
    )?;
    let mut results = skeleton(&cfg);
    warn_about_proxies(&cfg.vllm_url, &mut results);
    // what was asked, first: it stands even when the run fails (an extra, as the report is)
    if let Some(record) = &cfg.effective_config
        && let Err(e) = outputs.write_json(crate::step::CONFIG_RECORD_FILE, record)
    {
        let line = format!("config.json was not written: {}", error_line(&e));
        tracing::warn!("{line}");
        results.warnings.push(line);
    }
    // seed 002's live figures: a failed push is a warning, never a failed step
    let pusher = cfg.pushgateway.as_ref().and_then(|p| {
        let measured = cfg
            .mix
            .as_ref()
            .map_or_else(|| cfg.adapter_name.clone(), crate::mix::Mix::label);
        match crate::telemetry::pushgateway::Pusher::start(p, &measured) {
            Ok(pusher) => Some(pusher),
            Err(e) => {
                results
                    .warnings
                    .push(format!("Pushgateway: no push: {}", error_line(&e)));
                None
            }
        }
    });
    // one span per request: a failed export is a warning, never a failed step
    let spans = cfg.otlp.as_ref().and_then(|o| {
        let models = crate::telemetry::otlp::Models {
            candidate: cfg.adapter_name.clone(),
            baseline: cfg.baseline_adapter.clone(),
        };
        match crate::telemetry::otlp::SpanExporter::start(o, models) {
            Ok(exporter) => Some(exporter),
            Err(e) => {
                results
                    .warnings
                    .push(format!("OTLP: no spans exported: {}", error_line(&e)));
                None
            }
        }
    });
    let mut exit = match phases::execute(&cfg, &mut results, cancel, started_wall).await {
        Ok(RunStatus::Aborted) => {
            results.status = RunStatus::Aborted;
            results.error = Some(
                "stopped by a signal (SIGINT/SIGTERM): the figures cover only the requests that finished"
                    .into(),
            );
            Exit::Aborted
        }
        Ok(status) => {
            results.status = status;
            Exit::Done
        }
        Err(e) => {
            let line = error_line(&e);
            tracing::error!("{line}");
            let exit = e.exit();
            results.status = if exit == Exit::Aborted {
                RunStatus::Aborted
            } else {
                RunStatus::Failed
            };
            results.error = Some(line);
            exit
        }
    };
    if let Some(t) = results.timing.as_mut() {
        t.wall_clock_duration_s = started.elapsed().as_secs_f64();
    }
    if judge_thresholds(&cfg, &mut results) && exit == Exit::Done {
        exit = Exit::Rejected;
    }
    if let Some(w) = match spans {
        Some(exporter) => exporter.finish().await,
        None => None,
    } {
        tracing::warn!("{w}");
        results.warnings.push(w);
    }
    if let Some(pusher) = pusher {
        let last = results
            .client
            .as_ref()
            .map(crate::telemetry::pushgateway::Figures::from_client);
        if let Some(w) = pusher.finish(last, results.status).await {
            results.warnings.push(w);
        }
    }
    // texts that may quote a server (which may echo a credential): no known secret is shown
    // (the error line goes to stdout) or written
    let unusual = scrub_results(&mut results);
    // the report of what the results say (an extra: a report that cannot be written is a
    // warning, not a failed step), before the results so a reader of these sees it too
    let mut report = crate::report::render_load_test(&results);
    crate::secrets::scrub_string(&mut report);
    if let Err(e) = outputs.write(crate::report::LOAD_TEST_REPORT_FILE, report.as_bytes()) {
        let line = format!("the HTML report was not written: {}", error_line(&e));
        tracing::warn!("{line}");
        results.warnings.push(line);
    }
    // the per-step outputs (step_summary.json, summary.md, Locust's stats.csv and
    // stats_history.csv), extras as the report is
    let unwritten = crate::report::load_files::write(&outputs, &results);
    results.warnings.extend(unwritten);
    // Results first, then the status word: a reader that sees the status also sees the results.
    // Held against a second signal's [`mark_killed`] (another thread): both or neither.
    let final_files = FINAL_FILES.lock().unwrap_or_else(|p| p.into_inner());
    let written = match &unusual {
        Some(doc) => outputs.write_json(RESULTS_FILE, doc),
        None => outputs.write_json(RESULTS_FILE, &results),
    }
    .and_then(|()| outputs.finish(results.status.as_str()));
    let results_written = written.is_ok();
    drop(final_files);
    if let Err(e) = written {
        let line = error_line(&e);
        tracing::error!("{line}");
        // Whatever was measured, nobody may read a stale "completed" here, and what the
        // caller prints must say what the files say: `failed`, and why.
        outputs.abandon(RunStatus::Failed.as_str());
        results.status = RunStatus::Failed;
        results.error = Some(match results.error.take() {
            Some(earlier) => format!("{line} (the run had already stopped: {earlier})"),
            None => line,
        });
        if matches!(exit, Exit::Done | Exit::Rejected) {
            exit = LoadTestError::Output(e).exit();
        }
    }
    Ok(LoadTestOutcome {
        results,
        exit,
        results_path: outputs.path(RESULTS_FILE),
        results_written,
    })
}

/// Judges the `--threshold`s when the run completed (recorded in `results.thresholds`, each
/// logged); otherwise records that they were not judged. Whether one was crossed, on the
/// pooled figures or in any step of a sweep.
fn judge_thresholds(cfg: &LoadTestConfig, results: &mut LoadTestResults) -> bool {
    if cfg.thresholds.is_empty() {
        return false;
    }
    if results.status != RunStatus::Completed {
        let line = format!(
            "thresholds not evaluated: the run did not complete (status {})",
            results.status.as_str()
        );
        tracing::warn!("{line}");
        results.warnings.push(line);
        return false;
    }
    results.thresholds = thresholds::evaluate(&cfg.thresholds, results);
    for o in &results.thresholds {
        if o.passed {
            tracing::info!(threshold = %o.expression, value = ?o.value, "threshold passed: {}", o.reason);
        } else {
            tracing::warn!(threshold = %o.expression, value = ?o.value, "threshold crossed: {}", o.reason);
        }
    }
    // a mix: every member must meet them too (a slow member is not hidden in the pool)
    if let Some(mix) = results.mix.take() {
        let mut judged = mix;
        for m in &mut judged.members {
            let mut alone = results.clone();
            alone.client = Some(m.client.clone());
            alone.server = None;
            m.thresholds = thresholds::evaluate(&cfg.thresholds, &alone);
            for o in m.thresholds.iter().filter(|o| !o.passed) {
                tracing::warn!(member = %m.name, threshold = %o.expression, value = ?o.value, "threshold crossed by a mix member: {}", o.reason);
            }
        }
        results.mix = Some(judged);
    }
    // a sweep: every step must meet them too (a crossed step is a level the server cannot
    // carry, whatever the pooled figures say)
    results.thresholds.iter().any(|o| !o.passed)
        || results.mix.as_ref().is_some_and(|m| {
            m.members
                .iter()
                .any(|m| m.thresholds.iter().any(|o| !o.passed))
        })
        || results
            .steps
            .iter()
            .any(|s| s.thresholds.iter().any(|o| !o.passed))
}

/// Takes every known secret out of every string of `results` ([`crate::secrets::scrub_json`]):
/// a server may be quoted in any field, not only the error line and the warnings. In the
/// unlikely case that the scrubbed text no longer fits the type (a secret inside an enum's
/// word), the scrubbed document is returned, to be written instead (keys in another order).
fn scrub_results(results: &mut LoadTestResults) -> Option<serde_json::Value> {
    for text in results.error.iter_mut().chain(results.warnings.iter_mut()) {
        crate::secrets::scrub_string(text);
    }
    // the packed samples are numbers in base64 (16 bytes a request): kept out of the copies
    // below, which would otherwise hold them three times over at the end of a long run
    let samples = take_samples(results);
    let Ok(mut doc) = serde_json::to_value(&*results) else {
        // plain data always converts; if not, writing it fails the same way and says so
        put_samples(results, samples);
        return None;
    };
    let original = doc.clone();
    crate::secrets::scrub_json(&mut doc);
    if doc == original {
        put_samples(results, samples);
        return None;
    }
    match serde_json::from_value(doc.clone()) {
        Ok(clean) => {
            *results = clean;
            put_samples(results, samples);
            None
        }
        Err(_) => {
            // written as the scrubbed document (rare): scrubbed again with its samples
            put_samples(results, samples);
            match serde_json::to_value(&*results) {
                Ok(mut with_samples) => {
                    crate::secrets::scrub_json(&mut with_samples);
                    Some(with_samples)
                }
                // never unscrubbed: the scrubbed document without its samples
                Err(_) => Some(doc),
            }
        }
    }
}

/// The packed samples of every client section (the run's, the baseline arm's, each step's),
/// taken out of `results` in a fixed order.
fn take_samples(results: &mut LoadTestResults) -> SamplesTaken {
    SamplesTaken {
        client: results.client.as_mut().and_then(|c| c.samples.take()),
        baseline: results
            .baseline_arm
            .as_mut()
            .and_then(|b| b.client.samples.take()),
        steps: results
            .steps
            .iter_mut()
            .map(|s| s.client.samples.take())
            .collect(),
    }
}

/// Puts back what [`take_samples`] took.
fn put_samples(results: &mut LoadTestResults, taken: SamplesTaken) {
    if let Some(c) = results.client.as_mut() {
        c.samples = taken.client;
    }
    if let Some(b) = results.baseline_arm.as_mut() {
        b.client.samples = taken.baseline;
    }
    for (s, samples) in results.steps.iter_mut().zip(taken.steps) {
        s.client.samples = samples;
    }
}

/// The samples of [`take_samples`], held aside while the results are scrubbed.
struct SamplesTaken {
    client: Option<crate::results::PackedSamples>,
    baseline: Option<crate::results::PackedSamples>,
    steps: Vec<Option<crate::results::PackedSamples>>,
}

/// What a second SIGINT/SIGTERM leaves before the process exits at once (the first one lets
/// the step drain and write its files): the status says `aborted` and no results file is left
/// claiming more (one written just before the signal goes too); `requests.jsonl.partial` stays
/// as the record of what was sent. Best effort, synchronous: the process is about to exit.
pub fn mark_killed(output_dir: &std::path::Path) {
    // never between the results and the status word of the step's own final write; held
    // until the process exits
    let _final_files = FINAL_FILES.lock().unwrap_or_else(|p| p.into_inner());
    let status = output_dir.join(STATUS_FILE);
    if let Err(e) = crate::fsio::write_atomic(&status, b"aborted\n") {
        tracing::warn!(path = %status.display(), error = %e, "cannot mark the run aborted");
    }
    let results = output_dir.join(RESULTS_FILE);
    for p in [crate::fsio::tmp_path(&results), results] {
        if let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove the results file");
        }
    }
}

/// A proxy between the client and vLLM can buffer the SSE stream and make TTFT look like e2e.
/// Said when reqwest's own matcher sends vLLM's URL through one (not when `NO_PROXY` spares it).
fn warn_about_proxies(vllm_url: &str, results: &mut LoadTestResults) {
    if !crate::client::proxied_url(vllm_url) {
        return;
    }
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

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How the server side is read, as `departures` lines: with or without Prometheus, and in
/// which window mode (the merge of shards replaces its first shard's with its own).
pub(crate) fn prometheus_departures(prometheus: bool, mode: WindowMode) -> Vec<String> {
    let mut departures = Vec::new();
    match (prometheus, mode) {
        (true, WindowMode::EndAnchored) => departures.push("the window rests on confirmed scrape samples, not on the clock: the load starts once every target of the job shows a sample newer than the pre-flight and warm-up with nothing running and its counts unchanged, and T is the first scrape after the load at which every target is quiet and has counted the load (the seed waits a fixed 20 s and takes W = the duration rounded up to the minute, which misses the start of long loads and under-reports short ones; --window-mode seed restores it)".to_string()),
        (true, WindowMode::Seed) => departures.push("--window-mode seed: the seed's window (W = the duration rounded up to the minute, at least 1m, evaluated --scrape-wait after the load) and its throughput sum(rate(vllm:request_success_total[W])) over every finish reason; its edges and counts are not checked, only restarts".to_string()),
        (false, _) => departures.push("no --prometheus-url: server figures come from vLLM /metrics deltas taken before and after the load (seed 001); both scrapes must come from one process".to_string()),
    }
    if prometheus && mode == WindowMode::EndAnchored {
        departures.push("counters and histograms are read at the load's start and at T and subtracted series by series: exact counts with no extrapolation to the window's edges (increase() and rate() extrapolate), a series born during the load counted from 0; throughput = requests finished with stop or length / the load's duration".to_string());
    }
    departures
}

fn skeleton(cfg: &LoadTestConfig) -> LoadTestResults {
    let mut departures = vec![
        "requests are streamed (stream_options.include_usage) so the client also measures TTFT, inter-token latency and e2e".to_string(),
        "PromQL aggregates with sum by (le) before histogram_quantile and carries the job selector on every query".to_string(),
    ];
    departures.extend(prometheus_departures(
        cfg.prometheus_url.is_some(),
        cfg.prom.window_mode,
    ));
    if !(cfg.warmup.is_zero() && cfg.cooldown.is_zero()) {
        departures.push("--warmup/--cooldown by time: requests issued in them are sent but left out of the client's figures (`unmeasured`); the server's window spans the whole load, so its figures include them, and its finished count is reconciled with every request's".to_string());
    }
    if !cfg.api.has_vllm_metrics() {
        departures.push(phases::NO_SERVER_SIDE.to_string());
        departures.push("--api llamacpp: requests go to llama-server's POST /completion (prompt, n_predict, stream); a stream ends at its \"stop\": true chunk, whose tokens_predicted and tokens_evaluated are the token counts and whose stop_type is the finish reason (eos, word: stop; limit: length); one event may carry several tokens (llama-server holds back a token that ends inside a UTF-8 character), so inter-token gaps are between events, as with vLLM; each request opens its own connection (llama-server closes connections it answered with Keep-Alive), so TTFT includes a TCP connect, and --preconnect does nothing".to_string());
    }
    if let Some(b) = &cfg.baseline_adapter {
        departures.push(format!(
            "--baseline-adapter {b}: the baseline adapter is measured on the same vLLM in the same run, each candidate request with a baseline twin over the same prompt, dispatched interleaved (pairs AB, BA, AB, ...; --concurrency and --rate apply to both together); vLLM labels its metrics by base model, not adapter, so the server figures cover both adapters' requests, and the A/B comparison uses the client's figures (client against baseline_arm.client)"
        ));
    }
    LoadTestResults {
        schema_version: SCHEMA_VERSION,
        status: RunStatus::Failed,
        error: None,
        tool: ToolInfo::this("load-test"),
        config: RunConfig {
            vllm_url: redact_url(&cfg.vllm_url),
            adapter_name: cfg.adapter_name.clone(),
            eval_data_path: match cfg.input {
                InputSource::EvalFile => cfg.eval_data_path.display().to_string(),
                _ => String::new(),
            },
            concurrency: cfg.concurrency,
            max_tokens: cfg.max_tokens,
            endpoint: cfg.endpoint.as_str().to_string(),
            api: cfg.api,
            temperature: cfg.temperature,
            prometheus_url: cfg.prometheus_url.as_deref().map(redact_url),
            prometheus_job: cfg.prom.job.clone(),
            scrape_interval_s: cfg.prom.scrape_interval.map(|d| d.as_secs_f64()),
            scrape_wait_s: cfg.prom.scrape_wait.map(|d| d.as_secs_f64()),
            window_mode: cfg.prom.window_mode,
            gpu_selector: cfg.prom.gpu_selector.clone(),
            request_timeout_s: cfg.request_timeout.as_secs_f64(),
            prompt_field: cfg.prompt_field.clone(),
            input_source: Some(cfg.input.name().to_string()),
            prompt_file: match &cfg.input {
                InputSource::PromptFile(p) => Some(p.display().to_string()),
                _ => None,
            },
            input_size: match &cfg.input {
                InputSource::Synthetic(d) => Some(d.to_string()),
                _ => None,
            },
            max_tokens_dist: cfg.max_tokens_dist.map(|d| d.to_string()),
            ignore_eos: cfg.ignore_eos,
            task_mix: match &cfg.input {
                InputSource::TaskMix(m) => Some(m.to_string()),
                _ => None,
            },
            tokenizer_file: cfg.tokenizer_file.as_ref().map(|p| p.display().to_string()),
            api_key_set: cfg.api_key.as_deref().is_some_and(|k| !k.is_empty()),
            rate: cfg.rate,
            arrival: cfg.arrival.to_string(),
            max_inflight: cfg.max_inflight,
            seed: cfg.seed,
            num_requests: cfg.num_requests,
            warmup_requests: cfg.warmup_requests,
            duration_s: cfg.duration.map(|d| d.as_secs_f64()),
            warmup_s: cfg.warmup.as_secs_f64(),
            cooldown_s: cfg.cooldown.as_secs_f64(),
            ramp_up_s: cfg.ramp_up.map(|d| d.as_secs_f64()),
            stages: cfg.stages_text.clone(),
            steps: cfg.steps.clone(),
            step_duration_s: cfg.steps.as_ref().map(|_| cfg.step_duration.as_secs_f64()),
            think: cfg.think.as_ref().map(ToString::to_string),
            scenario: cfg.scenario.clone(),
            targets: match &cfg.mix {
                Some(m) if m.kind == crate::mix::MixKind::Targets => m
                    .members
                    .iter()
                    .map(|t| {
                        format!(
                            "name={},url={},model={},weight={}{}{}",
                            t.name,
                            redact_url(t.url.as_deref().unwrap_or_default()),
                            t.model.as_deref().unwrap_or_default(),
                            t.weight,
                            t.api.map(|a| format!(",api={a}")).unwrap_or_default(),
                            t.concurrency
                                .map(|n| format!(",concurrency={n}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            },
            lora_mix: cfg
                .mix
                .as_ref()
                .filter(|m| m.kind == crate::mix::MixKind::Adapters)
                .map(crate::mix::Mix::adapters_text),
            base_model_weight: cfg.mix.as_ref().and_then(|m| {
                m.members
                    .iter()
                    .find(|m| m.role == crate::mix::Role::Base)
                    .map(|m| m.weight)
            }),
            preconnect: cfg.preconnect,
            http_client: Some(
                cfg.http_client
                    .effective(&cfg.vllm_url)
                    .as_str()
                    .to_string(),
            ),
            baseline_adapter: cfg.baseline_adapter.clone(),
            slo: cfg.slo,
            wait_ready_s: cfg.wait_ready.map_or(0.0, |d| d.as_secs_f64()),
            drain_grace_s: cfg.drain_grace.as_secs_f64(),
            thresholds: cfg
                .thresholds
                .iter()
                .map(|t| t.expression.clone())
                .collect(),
        },
        adapter: None,
        eval_data: None,
        inputs: None,
        timing: None,
        client: None,
        server: None,
        load_generator: None,
        schedule: None,
        warmup: None,
        preconnect: None,
        unmeasured: None,
        baseline_arm: None,
        validity: None,
        departures,
        warnings: Vec::new(),
        thresholds: Vec::new(),
        steps: Vec::new(),
        probes: Vec::new(),
        mix: None,
        shard: None,
    }
}
