//! Shared by the CLI tests: a results document built in code (no load-test run needed), and a
//! command with a clean environment.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use perf_gate::results::*;

/// The figures a test varies.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Server P95 E2E latency, seconds (client's is 5 % higher).
    pub p95_latency: f64,
    /// Server P95 TTFT, seconds.
    pub p95_ttft: f64,
    /// Server throughput, req/s.
    pub throughput: f64,
    /// Client success rate.
    pub success_rate: f64,
}

/// Good figures: passes the seed's floors comfortably.
pub const GOOD: Figures = Figures {
    p95_latency: 4.0,
    p95_ttft: 0.5,
    throughput: 5.0,
    success_rate: 1.0,
};

/// A completed results document with these figures; GPU utilisation is missing (no DCGM).
pub fn results(f: Figures, adapter: &str) -> LoadTestResults {
    let q = |b: f64| ServerQuantiles {
        p50: Measured::value(b * 0.75),
        p95: Measured::value(b),
        p99: Measured::value(b * 1.1),
    };
    let dist = |b: f64| Distribution {
        count: 100,
        min: Some(b * 0.5),
        mean: Some(b * 0.75),
        p50: Some(b * 0.75),
        p90: Some(b * 0.95),
        p95: Some(b),
        p99: Some(b * 1.1),
        max: Some(b * 1.2),
    };
    let total = 100u64;
    let ok = (f.success_rate * total as f64).round() as u64;
    // every rate is its count over this duration, as load-test computes them (perf-decision
    // cross-checks them)
    let duration = 20.0;
    LoadTestResults {
        schema_version: SCHEMA_VERSION,
        status: RunStatus::Completed,
        error: None,
        tool: ToolInfo::this("load-test"),
        config: RunConfig {
            vllm_url: "http://127.0.0.1:8000".into(),
            adapter_name: adapter.into(),
            eval_data_path: "/data/eval.jsonl".into(),
            concurrency: 10,
            max_tokens: 256,
            endpoint: "completions".into(),
            temperature: 0.0,
            prometheus_url: Some("http://127.0.0.1:9090".into()),
            prometheus_job: "vllm-service".into(),
            scrape_interval_s: 30.0,
            scrape_wait_s: 20.0,
            window_mode: WindowMode::EndAnchored,
            gpu_selector: "{gpu=\"0\"}".into(),
            request_timeout_s: 300.0,
            prompt_field: None,
            api_key_set: false,
            rate: None,
            num_requests: None,
            warmup_requests: 0,
            wait_ready_s: 0.0,
            drain_grace_s: 10.0,
        },
        adapter: Some(AdapterInfo {
            name: adapter.into(),
            root: Some(format!("/adapters/{adapter}")),
            parent: Some("mistral-7b".into()),
        }),
        eval_data: Some(EvalDataInfo {
            path: "/data/eval.jsonl".into(),
            digest: "d9a73a27".into(),
            sha256: "d9a73a27".repeat(8),
            rows: 100,
        }),
        timing: Some(RunTiming {
            started_at: "2026-01-01T00:00:00Z".into(),
            load_start: "2026-01-01T00:00:01Z".into(),
            load_end: "2026-01-01T00:00:21Z".into(),
            load_duration_s: duration,
            wall_clock_duration_s: 52.5,
        }),
        client: Some(ClientMetrics {
            total_requests: total,
            successful_requests: ok,
            failed_requests: total - ok,
            success_rate: Some(ok as f64 / total as f64),
            errors_by_kind: BTreeMap::new(),
            responses_without_usage: 0,
            output_tokens: 25600,
            prompt_tokens: 5000,
            requests_per_s: Some(ok as f64 / duration),
            output_tokens_per_s: Some(1254.0),
            ttft_s: dist(f.p95_ttft * 1.05),
            itl_s: dist(0.02),
            e2e_s: dist(f.p95_latency * 1.05),
            tpot_s: dist(0.02),
            client_queue_s: Distribution::default(),
            e2e_adjusted_s: AdjustedPercentiles::default(),
            ttft_adjusted_s: AdjustedPercentiles::default(),
        }),
        server: Some(ServerMetrics {
            source: ServerSource::Prometheus,
            window: None,
            e2e_latency_s: q(f.p95_latency),
            ttft_s: q(f.p95_ttft),
            itl_s: q(0.02),
            requests_finished: Measured::value(f.throughput * duration),
            throughput_rps: Measured::value(f.throughput),
            generation_tokens_per_s: Measured::value(1280.0),
            kv_cache_usage_max: Measured::value(0.25),
            kv_cache_usage_avg: Measured::value(0.1),
            gpu_utilization_avg: Measured::missing("no DCGM series matched {gpu=\"0\"}"),
            gpu_utilization_max: Measured::missing("no DCGM series matched {gpu=\"0\"}"),
            queries: vec![],
            resolved_names: BTreeMap::new(),
            warnings: vec![],
        }),
        load_generator: None,
        warmup: None,
        departures: vec![],
        warnings: vec![],
    }
}

/// Writes `results` as `<dir>/<name>` and returns the path.
pub fn write_results(dir: &Path, name: &str, results: &LoadTestResults) -> PathBuf {
    let p = dir.join(name);
    perf_gate::fsio::write_json_atomic(&p, results).unwrap();
    p
}

/// `perf-decision` with an empty environment (no stray MLFLOW_* or flag env vars).
pub fn cmd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_perf-decision"));
    c.env_clear()
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// Starts `perf-decision` in the background against MLflow at `uri` (clean env, candidate
/// version 1 of model `m`), for tests that signal or kill it mid-step; stderr is piped.
pub fn spawn_decision(uri: &str, results: &Path, out: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_perf-decision"))
        .env_clear()
        .env("NO_COLOR", "1")
        .env("MLFLOW_TRACKING_URI", uri)
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m", "--candidate-version=1"])
        .arg(format!("--output-dir={}", out.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("perf-decision starts")
}

/// The parsed `perf_decision.json` in `dir`.
pub fn decision(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("perf_decision.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `perf_status.txt` in `dir`, trimmed.
pub fn status(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("perf_status.txt"))
        .unwrap()
        .trim()
        .to_string()
}

/// Asserts the directory holds no decision: status `error`, no `perf_decision.json`.
pub fn assert_no_decision(dir: &Path) {
    assert_eq!(status(dir), "error");
    assert!(
        !dir.join("perf_decision.json").exists(),
        "a perf_decision.json claims a decision that was not made"
    );
}
