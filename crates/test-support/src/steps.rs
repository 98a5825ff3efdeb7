//! Running the gate's binaries as child processes with a clean environment, and reading the
//! files they leave behind.
//!
//! The binaries are found with [`assert_cmd::cargo::cargo_bin`], so any integration test of
//! the workspace can run any of them (a test of `load-test` can run `perf-decision` too).

use std::path::{Path, PathBuf};
use std::process::Output;

use perf_gate::results::LoadTestResults;
use serde_json::Value;

/// Env vars `load-test` reads (a test must never inherit them from the developer's shell).
const LOAD_TEST_ENV: &[&str] = &[
    "VLLM_URL",
    "ADAPTER_NAME",
    "BASELINE_ADAPTER",
    "EVAL_DATA_PATH",
    "CONCURRENCY",
    "MAX_TOKENS",
    "PROMETHEUS_URL",
    "OUTPUT_DIR",
    "VLLM_API_KEY",
    "REQUEST_TIMEOUT",
    "NUM_REQUESTS",
    "RATE",
    "LOG_FORMAT",
    "SCRAPE_INTERVAL",
    "SCRAPE_WAIT",
    "WINDOW_MODE",
    "WARMUP_REQUESTS",
    "THRESHOLDS",
    "LOAD_TEST_CONFIG",
    "PROMPT_FIELD",
    "PROMPT_FILE",
    "PROMPT_TEXT",
    "INPUT_SIZE",
    "TASK_MIX",
    "IGNORE_EOS",
    "TOKENIZER_FILE",
    "SEED",
    "PUSHGATEWAY_URL",
    "PUSH_INTERVAL",
    "PUSHGATEWAY_JOB",
    "PUSHGATEWAY_INSTANCE",
    "PUSHGATEWAY_USERNAME",
    "PUSHGATEWAY_PASSWORD",
    "PUSHGATEWAY_DELETE",
    "LOAD_TEST_TARGETS",
    "LORA_MIX",
    "BASE_MODEL_WEIGHT",
    "PROGRESS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "SHARD_INDEX",
    "SHARD_COUNT",
    "START_AT",
    "JOB_COMPLETION_INDEX",
    "HTTP_CLIENT",
    // a proxy would carry the streaming requests (and the tests' loopback traffic) elsewhere
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// The path of the workspace binary `name` (built by the test run).
pub fn bin(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

/// `load-test` without the env vars it reads, without backtraces, logging at info.
pub fn load_test() -> std::process::Command {
    let mut c = std::process::Command::new(bin("load-test"));
    for var in LOAD_TEST_ENV {
        c.env_remove(var);
    }
    c.env("RUST_BACKTRACE", "0").env("RUST_LOG", "info");
    c
}

/// `perf-decision` with an empty environment (no stray MLFLOW_* or flag env vars).
pub fn perf_decision() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(bin("perf-decision"));
    c.env_clear()
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// Starts `perf-decision` in the background against MLflow at `uri` (clean env, candidate
/// version 1 of model `m`), for tests that signal or kill it mid-step; stderr is piped.
pub fn spawn_perf_decision(uri: &str, results: &Path, out: &Path) -> std::process::Child {
    std::process::Command::new(bin("perf-decision"))
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

/// Runs `cmd` to completion.
pub fn run(cmd: &mut std::process::Command) -> Output {
    cmd.output().expect("the command runs")
}

/// A `load-test` run against a server: what the command printed, where its files went, and
/// its request records.
pub struct LoadRun {
    /// The command's output.
    pub output: Output,
    /// The output directory.
    pub out: PathBuf,
    /// `requests.jsonl`, one value a line (empty when it was not written).
    pub records: Vec<Value>,
}

/// Runs `load-test` against the server at `url` (adapter `candidate`), with an eval file of
/// `prompts` rows in `dir`, output in `dir/out`, no progress lines, then `args`.
pub fn load_test_against(url: &str, dir: &Path, prompts: usize, args: &[&str]) -> LoadRun {
    let eval = crate::sim::eval_file(dir, prompts);
    let out = dir.join("out");
    let output = run(load_test()
        .args(["--vllm-url", url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0"])
        .args(args));
    let records = request_records(&out);
    LoadRun {
        output,
        out,
        records,
    }
}

/// The records of `requests.jsonl` in `dir`, one value a line; empty when there is none.
pub fn request_records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a record: {e}: {l}")))
        .collect()
}

/// A process's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn read_word(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The parsed `load_test_results.json` in `dir`.
pub fn load_test_results(dir: &Path) -> Value {
    read_json(&dir.join("load_test_results.json"))
}

/// `load_test_status.txt` in `dir`, trimmed.
pub fn load_test_status(dir: &Path) -> String {
    read_word(&dir.join("load_test_status.txt"))
}

/// Writes `results` as `<dir>/<name>` and returns the path.
pub fn write_results(dir: &Path, name: &str, results: &LoadTestResults) -> PathBuf {
    let p = dir.join(name);
    perf_gate::fsio::write_json_atomic(&p, results).expect("the results file is written");
    p
}

/// The parsed `perf_decision.json` in `dir`.
pub fn decision(dir: &Path) -> Value {
    read_json(&dir.join("perf_decision.json"))
}

/// `perf_status.txt` in `dir`, trimmed.
pub fn decision_status(dir: &Path) -> String {
    read_word(&dir.join("perf_status.txt"))
}

/// Asserts the directory holds no decision: status `error`, no `perf_decision.json`.
pub fn assert_no_decision(dir: &Path) {
    assert_eq!(decision_status(dir), "error");
    assert!(
        !dir.join("perf_decision.json").exists(),
        "a perf_decision.json claims a decision that was not made"
    );
}

/// Runs `load-test` against a fresh in-process simulator with `cfg`: `requests` prompts at
/// `concurrency`, 16 tokens each, in `<dir>/<name>/`; returns the results file. Panics with
/// load-test's stderr when it fails.
pub fn measure_sim(
    dir: &Path,
    name: &str,
    cfg: vllm_sim::SimConfig,
    requests: usize,
    concurrency: u32,
) -> PathBuf {
    let sim = crate::sim::Sim::start(cfg);
    let work = dir.join(name);
    std::fs::create_dir_all(&work).expect("the work directory is created");
    let eval = crate::sim::eval_file(&work, requests);
    let out = work.join("out");
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--max-tokens", "16"])
        .args(["--concurrency", &concurrency.to_string()]));
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("load_test_results.json")
}

/// The most requests in flight at once among `records` (request records: `start_s`,
/// `total_s`); a request ending at the instant another starts frees its slot first.
pub fn most_in_flight<'a>(records: impl IntoIterator<Item = &'a Value>) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for r in records {
        let start = r["start_s"].as_f64().expect("start_s");
        edges.push((start, 1));
        edges.push((start + r["total_s"].as_f64().expect("total_s"), -1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Starts every command at once (shards that wait for their common `--start-at`), then waits
/// for each to succeed.
pub fn run_together(commands: Vec<std::process::Command>) {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut c| {
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("load-test starts")
        })
        .collect();
    // each drained on a thread of its own: one that fills its pipe must not wait for another
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let waiting: Vec<_> = children
            .into_iter()
            .map(|c| s.spawn(move || c.wait_with_output().unwrap()))
            .collect();
        waiting.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for out in outputs {
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
