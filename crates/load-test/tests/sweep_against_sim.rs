//! Step sweeps (`--steps`) end to end against `vllm-sim`: one summary per step with rising
//! concurrency, each step's server figures counting exactly its own requests, read from vLLM's
//! `/metrics` before and after each step and (test `serial_real_...`) from a REAL Prometheus's
//! end-anchored windows, one per step.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::prometheus::PrometheusServer;
use test_support::sim::Sim;
use test_support::steps::{load_test_against, load_test_results as results, stderr};

fn sweep(sim: &Sim, dir: &Path, args: &[&str]) -> (std::process::Output, Value, Vec<Value>) {
    let run = load_test_against(&sim.url, dir, 20, &[&["--max-tokens", "3"], args].concat());
    (run.output, results(&run.out), run.records)
}

/// Requests of `step` in the records, and the largest number of them in flight at once.
fn step_records(records: &[Value], step: u64) -> (u64, usize) {
    let mine: Vec<&Value> = records
        .iter()
        .filter(|r| r["step"].as_u64() == Some(step))
        .collect();
    let mut edges: Vec<(f64, i32)> = mine
        .iter()
        .flat_map(|r| {
            let s = r["start_s"].as_f64().unwrap();
            [(s, 1), (s + r["total_s"].as_f64().unwrap(), -1)]
        })
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    (mine.len() as u64, peak as usize)
}

fn check_steps(r: &Value, records: &[Value], levels: &[u64]) {
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), levels.len(), "{steps:?}");
    let mut pooled = 0;
    for (i, (s, &level)) in steps.iter().zip(levels).enumerate() {
        assert_eq!(s["index"], i);
        assert_eq!(s["concurrency"], level);
        let total = s["client"]["total_requests"].as_u64().unwrap();
        assert!(total > 0, "step {i}: {s}");
        let (n, peak) = step_records(records, i as u64);
        assert_eq!(n, total, "step {i}: records vs figures");
        assert!(
            peak as u64 <= level,
            "step {i}: {peak} in flight at level {level}"
        );
        // the server counted exactly this step's requests
        let finished = s["server"]["requests_finished"]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("step {i}: {}", s["server"]));
        assert_eq!(finished as u64, total, "step {i}: {}", s["server"]);
        pooled += total;
    }
    // throughput rises with the level (the sim serves each request in ~the same time)
    let rps: Vec<f64> = steps
        .iter()
        .map(|s| s["client"]["requests_per_s"].as_f64().unwrap())
        .collect();
    assert!(rps.windows(2).all(|w| w[1] > w[0]), "{rps:?}");
    assert_eq!(r["client"]["total_requests"], pooled);
    assert_eq!(records.len() as u64, pooled);
    assert!(r["server"].is_null());
    assert_eq!(r["validity"]["valid"], false);
}

#[test]
fn a_sweep_has_one_summary_per_step_and_per_step_server_counts() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(60),
        itl: Duration::from_millis(5),
        max_num_seqs: 64,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (o, r, records) = sweep(
        &sim,
        dir.path(),
        &[
            "--steps",
            "1,2,4",
            "--step-duration",
            "1s",
            "--threshold",
            "e2e_p95<10s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(r["status"], "completed");
    check_steps(&r, &records, &[1, 2, 4]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for (i, level) in [(0, 1), (1, 2), (2, 4)] {
        assert!(
            stdout.contains(&format!("step {i} (c={level}): ")),
            "{stdout}"
        );
    }
    assert_eq!(r["config"]["steps"], serde_json::json!([1.0, 2.0, 4.0]));
    assert_eq!(r["config"]["step_duration_s"], 1.0);
    for s in r["steps"].as_array().unwrap() {
        assert_eq!(s["thresholds"][0]["passed"], true, "{s}");
        assert_eq!(s["server"]["source"], "vllm_metrics", "{s}");
    }
    // each step opened its 4 connections (the peak's) just before its load: the pause for a
    // step's window outlasts vLLM's 5 s idle timeout, after which the kept ones are closed
    let stats = sim.stats();
    assert!(
        (3 * 4 + 1..=3 * 4 + 3).contains(&stats.connections),
        "{stats:?}"
    );
    assert_eq!(
        r["preconnect"]["connections"], 4,
        "the first opening is recorded"
    );
}

#[test]
fn serial_real_prometheus_sweep_windows_count_each_step_s_requests() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(60),
        itl: Duration::from_millis(5),
        max_num_seqs: 64,
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let (o, r, records) = sweep(
        &sim,
        dir.path(),
        &[
            "--steps",
            "1,3",
            "--step-duration",
            "2s",
            "--prometheus-url",
            &prom.url(),
            "--scrape-interval",
            "1s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    check_steps(&r, &records, &[1, 3]);
    let steps = r["steps"].as_array().unwrap();
    for s in steps {
        assert_eq!(s["server"]["source"], "prometheus", "{s}");
        assert_eq!(s["server"]["integrity"]["edges_confirmed"], true, "{s}");
    }
    // the second step's window opens after the first's closed
    let end0 = steps[0]["server"]["window"]["eval_time_unix"]
        .as_f64()
        .unwrap();
    let range1 = steps[1]["server"]["window"]["range_s"].as_f64().unwrap();
    let eval1 = steps[1]["server"]["window"]["eval_time_unix"]
        .as_f64()
        .unwrap();
    assert!(eval1 - range1 >= end0 - 1e-6, "{steps:?}");
}

/// A threshold every step must meet: a step that crosses it makes the run exit 1 even when
/// the pooled figures pass.
#[test]
fn a_step_that_crosses_a_threshold_fails_the_sweep() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(60),
        itl: Duration::from_millis(5),
        max_num_seqs: 64,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // ~14 req/s at 1 in flight, ~110 at 8: pooled ~60, under the limit; the second step over
    let (o, r, _) = sweep(
        &sim,
        dir.path(),
        &[
            "--steps",
            "1,8",
            "--step-duration",
            "1s",
            "--threshold",
            "rps<80",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(r["status"], "completed");
    assert_eq!(r["thresholds"][0]["passed"], true, "{}", r["thresholds"]);
    assert_eq!(r["steps"][0]["thresholds"][0]["passed"], true);
    assert_eq!(
        r["steps"][1]["thresholds"][0]["passed"], false,
        "{}",
        r["steps"][1]
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("step 1: WARNING rps<80 crossed"),
        "{stdout}"
    );
}
