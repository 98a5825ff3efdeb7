//! Open-loop arrivals (`--rate --arrival --seed --max-inflight`) end to end against `vllm-sim`:
//! the scheduled times in `requests.jsonl` follow the process, repeat with the seed, and a cap
//! too small for the rate shows as a shortfall in `schedule` with a warning.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};

/// Runs `load-test` against `sim` with `args`; returns (results, sorted scheduled times).
fn open_loop(sim: &Sim, dir: &Path, name: &str, args: &[&str]) -> (Value, Vec<f64>) {
    let eval = eval_file(dir, 20);
    let out = dir.join(name);
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--max-tokens", "2"])
        .args(args));
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let mut at: Vec<f64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["scheduled_s"]
                .as_f64()
                .unwrap()
        })
        .collect();
    at.sort_by(f64::total_cmp);
    (results(&out), at)
}

fn sim(ttft_ms: u64) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(1),
        max_num_seqs: 1024,
        ..Default::default()
    })
}

/// Coefficient of variation of the gaps between sorted times.
fn gap_cv(at: &[f64]) -> f64 {
    let g: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    let n = g.len() as f64;
    let mean = g.iter().sum::<f64>() / n;
    let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() / mean
}

#[test]
fn serial_poisson_arrivals_repeat_with_the_seed() {
    let sim = sim(2);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--rate",
        "200",
        "--arrival",
        "poisson",
        "--seed",
        "7",
        "--num-requests",
        "400",
    ];
    let (r, a) = open_loop(&sim, dir.path(), "a", &args);
    let (_, b) = open_loop(&sim, dir.path(), "b", &args);
    assert_eq!(a.len(), 400);
    assert_eq!(a, b, "same seed, same scheduled times");
    let cv = gap_cv(&a);
    assert!((0.8..=1.2).contains(&cv), "inter-arrival CV {cv}");
    assert_eq!(r["config"]["arrival"], "poisson");
    assert_eq!(r["config"]["seed"], 7);
    assert_eq!(r["config"]["max_inflight"], 1024);
    let s = &r["schedule"];
    assert_eq!(s["requested_rate"], 200.0);
    assert_eq!(s["dispatched"], 400);
    let scheduled = s["scheduled_rate"].as_f64().unwrap();
    let achieved = s["achieved_rate"].as_f64().unwrap();
    assert!((150.0..=250.0).contains(&scheduled), "{s}");
    eprintln!("poisson: gap CV {cv:.3}, scheduled {scheduled:.1}/s, achieved {achieved:.1}/s");
    // goodness of fit: the scheduled gaps against Exp(200) by Kolmogorov-Smirnov; the 1 %
    // critical value for n gaps is 1.63 / sqrt(n) (the schedule is drawn from the seed, so
    // this is the same figure on every machine)
    let (d, critical) = ks_exponential(&a, 200.0);
    eprintln!("poisson: KS D {d:.4} (1 % critical {critical:.4})");
    assert!(d < critical, "KS D {d} >= {critical}: not exponential gaps");
    // and the test can fail: constant gaps are far from exponential
    let constant: Vec<f64> = (0..400).map(|i| f64::from(i) / 200.0).collect();
    assert!(ks_exponential(&constant, 200.0).0 > 0.3);
}

/// The Kolmogorov-Smirnov distance between the gaps of sorted `at` and Exp(`rate`), and its
/// 1 % critical value.
fn ks_exponential(at: &[f64], rate: f64) -> (f64, f64) {
    let mut g: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    g.sort_by(f64::total_cmp);
    let n = g.len() as f64;
    let d = g
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = 1.0 - (-rate * x).exp();
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max);
    (d, 1.63 / n.sqrt())
}

#[test]
fn serial_arrivals_fall_behind_a_small_max_inflight_with_a_warning() {
    // 4 in flight, each ~100 ms: at most ~40/s against 200/s asked
    let sim = sim(100);
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = open_loop(
        &sim,
        dir.path(),
        "out",
        &[
            "--rate",
            "200",
            "--max-inflight",
            "4",
            "--num-requests",
            "60",
        ],
    );
    assert_eq!(r["config"]["arrival"], "constant");
    assert_eq!(r["config"]["max_inflight"], 4);
    let s = &r["schedule"];
    let achieved = s["achieved_rate"].as_f64().unwrap();
    assert!(achieved < 0.9 * 200.0, "{s}");
    assert!(s["waited_for_slot"].as_u64().unwrap() > 0, "{s}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("fell behind") && warnings.contains("--max-inflight 4"),
        "{warnings}"
    );
    eprintln!("max-inflight 4: achieved {achieved:.1}/s of 200/s");
}

#[test]
fn arrival_without_rate_exits_2_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 2);
    let o = run(load_test()
        .args([
            "--vllm-url",
            "http://127.0.0.1:9",
            "--adapter-name",
            "candidate",
        ])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .args(["--arrival", "poisson"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--arrival poisson needs --rate"),
        "{}",
        stderr(&o)
    );
}
