//! The per-step outputs (`step_summary.json`, `summary.md`, Locust's `stats.csv` and
//! `stats_history.csv`) end to end against `vllm-sim`: all four written beside the results,
//! each parses, and their counts agree with the results.

use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, load_test_status, run, stderr};

/// The fields of each line of a CSV text (names with a comma are quoted; these have none but
/// the quoted ones are kept whole).
fn csv(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let mut fields = vec![String::new()];
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(String::new()),
                    c => fields.last_mut().expect("one field at least").push(c),
                }
            }
            fields
        })
        .collect()
}

#[test]
fn a_run_writes_the_four_per_step_outputs_and_they_agree_with_the_results() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(5),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 30);
    let out = dir.path().join("out");
    // an open loop of 30 requests at 10/s: about three seconds of load
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--max-tokens", "4"])
        .args(["--rate", "10", "--concurrency", "4"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(load_test_status(&out), "completed");
    let r = results(&out);
    let total = r["client"]["total_requests"].as_u64().unwrap();
    assert_eq!(total, 30);

    // step_summary.json: one step (a run of one load), its counts those of the results
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("step_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["status"], "completed");
    let steps = summary["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["requests"].as_u64(), Some(total));
    assert_eq!(steps[0]["rate"], 10.0);
    assert!(
        steps[0]["ttft_s"]["p50"].as_f64().unwrap() >= 0.03,
        "{summary}"
    );
    assert_eq!(steps[0]["server"]["source"], "vllm_metrics");

    // summary.md: the header and one table row
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.starts_with("## ✅ load-test: completed"), "{md}");
    assert!(md.contains("| 0 | rate=10/s | "), "{md}");

    // stats.csv: Locust's header, the endpoint's row and the Aggregated row with every request
    let stats = std::fs::read_to_string(out.join("stats.csv")).unwrap();
    let rows = csv(&stats);
    assert_eq!(
        stats.lines().next().unwrap(),
        perf_gate::report::STATS_HEADER,
        "{stats}"
    );
    assert_eq!(rows.len(), 3, "{stats}");
    assert!(rows.iter().all(|r| r.len() == 22), "{stats}");
    assert_eq!(rows[1][0], "POST");
    assert_eq!(rows[2][1], "Aggregated");
    assert_eq!(rows[2][2], total.to_string(), "{stats}");
    assert_eq!(rows[2][3], "0", "{stats}");
    // milliseconds: the median E2E is at least the simulator's 30 ms TTFT
    assert!(rows[2][4].parse::<u64>().unwrap() >= 30, "{stats}");

    // stats_history.csv: a row a second of the load, counts adding up to the total
    let history = std::fs::read_to_string(out.join("stats_history.csv")).unwrap();
    let rows = csv(&history);
    assert_eq!(
        history.lines().next().unwrap(),
        perf_gate::report::STATS_HISTORY_HEADER
    );
    let seconds = r["timing"]["load_duration_s"].as_f64().unwrap();
    let n = rows.len() - 1;
    assert!(
        (n as f64) >= seconds.floor() && (n as f64) <= seconds.ceil() + 1.0,
        "{n} rows for {seconds} s: {history}"
    );
    assert!(rows.iter().all(|r| r.len() == 24), "{history}");
    let totals: Vec<u64> = rows[1..].iter().map(|r| r[17].parse().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{history}");
    assert_eq!(*totals.last().unwrap(), total, "{history}");
    let per_second: f64 = rows[1..].iter().map(|r| r[4].parse::<f64>().unwrap()).sum();
    assert_eq!(per_second, total as f64, "{history}");
}
