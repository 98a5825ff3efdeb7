//! The statistical verdict end to end on the simulator: `load-test` measures a baseline and a
//! candidate (separate simulators, different random seeds), `perf-decision
//! --baseline-results` compares them. Identical configurations pass, a candidate 30 % slower
//! fails, and one at the tolerance measured with few requests is inconclusive. Serial (the
//! figures are latencies: a busy machine would blur them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_support::steps::{decision, decision_status, measure_sim, perf_decision};

/// Measures a simulator with these delays (ms) and ±30 % jitter drawn from `seed`.
fn measure(
    dir: &Path,
    name: &str,
    ms: (f64, f64),
    seed: u64,
    requests: usize,
    concurrency: u32,
) -> PathBuf {
    let cfg = vllm_sim::SimConfig {
        ttft: Duration::from_secs_f64(ms.0 / 1000.0),
        itl: Duration::from_secs_f64(ms.1 / 1000.0),
        jitter: 0.3,
        seed,
        ..Default::default()
    };
    measure_sim(dir, name, cfg, requests, concurrency)
}

/// `perf-decision --decision statistical` of `candidate` against `baseline`: (status, document).
fn judge(dir: &Path, candidate: &Path, baseline: &Path, method: &str) -> (String, Value) {
    let out = dir.join(format!("decision-{method}"));
    let o = perf_decision()
        .arg(format!("--load-test-results={}", candidate.display()))
        .arg(format!("--baseline-results={}", baseline.display()))
        .args(["--model-name=m", "--decision", method])
        .arg(format!("--output-dir={}", out.display()))
        .output()
        .unwrap();
    let status = decision_status(&out);
    assert!(
        status == "passed" || status == "failed",
        "{status}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (status, decision(&out))
}

/// Each judged metric's (name, outcome); the intervals are printed for the record.
fn outcomes(doc: &Value) -> Vec<(String, String)> {
    for m in doc["statistics"]["metrics"].as_array().unwrap() {
        eprintln!("{}", m["reason"].as_str().unwrap());
    }
    doc["statistics"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome<'a>(all: &'a [(String, String)], name: &str) -> &'a str {
    &all.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn serial_identical_configurations_pass_and_a_slower_candidate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = measure(dir.path(), "base", (40.0, 8.0), 1, 400, 8);
    let same = measure(dir.path(), "same", (40.0, 8.0), 2, 400, 8);
    let slow = measure(dir.path(), "slow", (52.0, 10.4), 3, 400, 8);

    let (status, doc) = judge(&dir.path().join("same"), &same, &base, "statistical");
    let all = outcomes(&doc);
    assert_eq!(status, "passed", "{all:?}\n{:#}", doc["statistics"]);
    assert_eq!(doc["verdict"], "passed", "{all:?}");
    assert_eq!(doc["baseline"]["source"], "results");
    assert_eq!(doc["statistics"]["pairing"], "independent");
    assert!(
        doc["departures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("--decision statistical")),
        "the opt-in is recorded as a departure"
    );
    // the same files give the same intervals (the generator is seeded from their digests)
    let (_, again) = judge(&dir.path().join("again"), &same, &base, "statistical");
    assert_eq!(again["statistics"], doc["statistics"]);

    let (status, doc) = judge(&dir.path().join("slow"), &slow, &base, "statistical");
    let all = outcomes(&doc);
    assert_eq!(status, "failed", "{all:?}");
    assert_eq!(doc["verdict"], "failed");
    assert_eq!(outcome(&all, "p95_ttft_ratio"), "failed", "{all:?}");
    assert_eq!(outcome(&all, "p95_e2e_ratio"), "failed", "{all:?}");
    let ttft = &doc["statistics"]["metrics"][0];
    let (lo, hi) = (ttft["lo"].as_f64().unwrap(), ttft["hi"].as_f64().unwrap());
    assert!(lo > 1.15 && lo <= 1.3 && 1.3 <= hi + 0.1, "{ttft}");

    // by default the seed's checks decide, and the intervals add their failure
    let (status, doc) = judge(&dir.path().join("slow-seed"), &slow, &base, "seed");
    assert_eq!(status, "failed");
    let added: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "statistical_comparison")
        .map(|c| c["metric"].as_str().unwrap())
        .collect();
    assert!(added.contains(&"p95_ttft_ratio"), "{added:?}");
}

#[test]
fn serial_a_slowdown_at_the_tolerance_measured_briefly_is_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    // 60 requests two at a time: enough for 20 blocks, too few for a narrow P95 interval
    let base = measure(dir.path(), "base", (40.0, 8.0), 4, 60, 2);
    let near = measure(dir.path(), "near", (46.0, 9.2), 5, 60, 2);
    let (status, doc) = judge(&dir.path().join("near"), &near, &base, "statistical");
    let all = outcomes(&doc);
    assert_eq!(outcome(&all, "p95_ttft_ratio"), "inconclusive", "{all:?}");
    assert_eq!(doc["verdict"], "inconclusive");
    // --on-inconclusive fail (the default) fails closed
    assert_eq!(status, "failed");
    // by default (the seed's checks), inconclusive is reported and does not fail by itself
    let (_, doc) = judge(&dir.path().join("near-seed"), &near, &base, "seed");
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "statistical_comparison")
            .all(|c| c["passed"] == false),
        "only failures are added in the default mode"
    );
}

/// A same-server A/B run (`load-test --baseline-adapter`) of a simulator whose baseline adapter
/// runs at `baseline_scale` times the candidate's delays; returns the results file.
fn measure_ab(dir: &Path, name: &str, baseline_scale: f64) -> PathBuf {
    let sim = test_support::sim::Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(40),
        itl: Duration::from_millis(8),
        jitter: 0.3,
        seed: 9,
        lora_modules: vec![
            vllm_sim::LoraModule::new("candidate", "/models/lora"),
            vllm_sim::LoraModule::new("baseline", "/models/lora-prod"),
        ],
        max_loras: 2,
        adapter_latency_scale: vec![vllm_sim::LatencyScale::new("baseline", baseline_scale)],
        ..Default::default()
    });
    let work = dir.join(name);
    std::fs::create_dir_all(&work).unwrap();
    let eval = test_support::sim::eval_file(&work, 300);
    let out = work.join("out");
    let o = test_support::steps::run(
        test_support::steps::load_test()
            .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
            .args(["--baseline-adapter", "baseline"])
            .arg("--eval-data-path")
            .arg(&eval)
            .arg("--output-dir")
            .arg(&out)
            .args(["--progress-interval", "0", "--max-tokens", "16"])
            .args(["--concurrency", "8", "--warmup-requests", "2"]),
    );
    assert!(o.status.success(), "{}", test_support::steps::stderr(&o));
    out.join("load_test_results.json")
}

/// `perf-decision` of an A/B results file, files only (the baseline is in the file), with
/// `extra` flags.
fn judge_ab(dir: &Path, results: &Path, extra: &[String]) -> (String, Value) {
    let out = dir.join("decision");
    let o = perf_decision()
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .args(extra)
        .arg(format!("--output-dir={}", out.display()))
        .output()
        .unwrap();
    let status = decision_status(&out);
    assert!(
        status == "passed" || status == "failed",
        "{status}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (status, decision(&out))
}

#[test]
fn serial_same_server_ab_equal_adapters_pass_and_a_slower_candidate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let equal = measure_ab(dir.path(), "equal", 1.0);
    let (status, doc) = judge_ab(&dir.path().join("equal"), &equal, &[]);
    let all = outcomes(&doc);
    assert_eq!(doc["baseline"]["source"], "same_run");
    assert_eq!(doc["baseline"]["adapter"], "baseline");
    assert_eq!(doc["statistics"]["pairing"], "paired");
    assert_eq!(
        doc["metrics_source"], "client",
        "the arms' server figures are pooled"
    );
    assert_eq!(doc["mode"], "comparative");
    assert_eq!(status, "passed", "{all:?}\n{:#}", doc["checks"]);
    assert_eq!(doc["verdict"], "passed", "{all:?}");

    // the baseline adapter 1/1.3 as slow: the candidate is 30 % slower than it
    let slower = measure_ab(dir.path(), "slower", 1.0 / 1.3);
    let (status, doc) = judge_ab(&dir.path().join("slower"), &slower, &[]);
    let all = outcomes(&doc);
    assert_eq!(status, "failed", "{all:?}");
    assert_eq!(outcome(&all, "p95_ttft_ratio"), "failed", "{all:?}");
    assert_eq!(outcome(&all, "p95_e2e_ratio"), "failed", "{all:?}");
    // check 2 compares the client's P95 TTFT of the two arms
    let ttft = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "p95_ttft")
        .unwrap();
    assert_eq!(ttft["metric"], "client_p95_ttft_s");
    assert_eq!(ttft["passed"], false, "{ttft}");

    // --also-stored-baseline: compared with a stored run as well; the candidate adapter runs
    // as fast as in the earlier A/B run, so those checks pass while the same-run ones fail
    let also = [
        "--also-stored-baseline".to_string(),
        format!("--baseline-results={}", equal.display()),
    ];
    let (status, doc) = judge_ab(&dir.path().join("also"), &slower, &also);
    assert_eq!(status, "failed");
    assert_eq!(doc["baseline"]["source"], "same_run");
    assert_eq!(doc["stored_baseline"]["source"], "results");
    let stored: Vec<&Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "stored_baseline")
        .collect();
    assert_eq!(stored.len(), 4, "checks 1-4 against the stored run too");
    let ttft = stored
        .iter()
        .find(|c| c["metric"] == "client_p95_ttft_s")
        .unwrap();
    assert_eq!(ttft["passed"], true, "{ttft}");
    assert!(
        ttft["reason"]
            .as_str()
            .unwrap()
            .starts_with("against the stored baseline")
    );
}
