//! `load-test merge` against a REAL Prometheus (Debian's, on a free loopback port, scraping
//! `vllm-sim`): two shards that do not query Prometheus themselves, merged with
//! `--prometheus-url`, get the server's figures over the union window, queried once.
//!
//! - At a 30 s scrape (production's), end-anchored (the default): the window rests on
//!   confirmed samples, so the server's finished count equals the client's successes exactly
//!   and the measurement is valid. The seed's rate window counted 36 of 20 requests at a 15 s
//!   scrape (extrapolated edges), which failed a healthy adapter.
//! - At a 1 s scrape with `--window-mode seed`: the P95 TTFT falls in the bucket holding the
//!   sim's configured TTFT, and the server's rate counts every request of both shards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results, run, run_together, stderr};

const JOB: &str = "vllm-service";
const REQUESTS: u64 = 20;

/// Two shards of `REQUESTS` prompts against a sim scraped every `interval` s, starting together
/// `lead` from now, then `load-test merge` with `merge_args`: the merged results, and the
/// shards' directories in `dir`.
fn merged(dir: &Path, interval: u64, lead: Duration, merge_args: &[&str]) -> (Value, Vec<PathBuf>) {
    // TTFT 0.6 s: in vLLM's (0.5, 0.75] bucket
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(600),
        itl: Duration::from_millis(20),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(interval));
    prom.wait_for_targets_up(JOB, Duration::from_secs(30 + interval));

    let eval = eval_file(dir, REQUESTS as usize);
    let start_at = (chrono::Utc::now() + lead).to_rfc3339();
    let shards: Vec<_> = (0..2).map(|i| dir.join(format!("shard-{i}"))).collect();
    let commands: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = load_test();
            c.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
                .arg("--eval-data-path")
                .arg(&eval)
                .arg("--output-dir")
                .arg(d)
                // given, but a shard leaves Prometheus to the merge
                .args(["--prometheus-url", &prom.url()])
                .args(["--shard-count", "2", "--shard-index", &i.to_string()])
                .args([
                    "--start-at",
                    &start_at,
                    "--concurrency",
                    "6",
                    "--max-tokens",
                    "4",
                ])
                .args(["--progress-interval", "0", "--poll-interval", "0"]);
            c
        })
        .collect();
    run_together(commands);
    for d in &shards {
        let r = load_test_results(d);
        assert!(r["server"].is_null());
        assert!(
            r["timing"]["ready_at"].as_str().unwrap()
                <= r["timing"]["load_start"].as_str().unwrap()
        );
    }
    let out_dir = dir.join("merged");
    let started = Instant::now();
    let out = run(load_test()
        .arg("merge")
        .args(&shards)
        .arg("--output-dir")
        .arg(&out_dir)
        .args(["--prometheus-url", &prom.url()])
        .args(merge_args));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = load_test_results(&out_dir);
    println!(
        "{interval} s scrape: merge took {:.1} s; window {}",
        started.elapsed().as_secs_f64(),
        r["server"]["window"]
    );
    assert_eq!(r["status"], "completed");
    assert_eq!(r["client"]["successful_requests"], REQUESTS);
    // the server side is the merge's, not the shards' (launched without Prometheus's window)
    assert_eq!(r["config"]["window_mode"], r["server"]["window"]["mode"]);
    assert!(r["config"]["prometheus_url"].is_string());
    let departures = r["departures"].to_string();
    assert!(!departures.contains("no --prometheus-url"), "{departures}");
    let s = &r["server"];
    assert_eq!(s["source"], "prometheus", "{s}");
    let p95 = s["ttft_s"]["p95"]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{s}"));
    assert!(p95 > 0.5 && p95 <= 0.75, "server TTFT p95 {p95}");
    // the window spans the union of the shards' loads
    let start = r["timing"]["load_start"].as_str().unwrap();
    for d in &shards {
        assert!(
            load_test_results(d)["timing"]["load_start"]
                .as_str()
                .unwrap()
                >= start
        );
    }
    (r, shards)
}

#[test]
fn serial_merged_shards_are_counted_exactly_at_a_30_s_scrape() {
    // the shards start a scrape interval after they are ready: a quiet sample falls between
    let dir = tempfile::tempdir().unwrap();
    let (r, shards) = merged(dir.path(), 30, Duration::from_secs(34), &[]);
    let s = &r["server"];
    assert_eq!(s["window"]["mode"], "end_anchored", "{s}");
    assert_eq!(s["window"]["scrape_interval_source"], "prometheus", "{s}");
    assert_eq!(s["window"]["scrape_interval_s"], 30.0, "{s}");
    assert_eq!(s["requests_finished"]["value"], REQUESTS as f64, "{s}");
    assert_eq!(s["integrity"]["edges_confirmed"], true, "{s}");
    assert_eq!(r["validity"]["valid"], true, "{}", r["validity"]);
    // the left edge is newer than the last shard's start (no warm-up: a pre-flight sends
    // nothing the server counts), which the merge records
    let ready = shards
        .iter()
        .map(|d| {
            load_test_results(d)["timing"]["started_at"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .max()
        .unwrap();
    assert_eq!(r["timing"]["ready_at"], ready.as_str());
}

#[test]
fn merged_shards_in_the_seed_window_at_a_1_s_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = merged(
        dir.path(),
        1,
        Duration::from_secs(3),
        &[
            "--window-mode",
            "seed",
            "--scrape-interval",
            "1s",
            "--scrape-wait",
            "3s",
        ],
    );
    let s = &r["server"];
    assert_eq!(s["window"]["mode"], "seed");
    // the shards were launched end-anchored; the merge's window is the seed's, and says so
    let departures = r["departures"].to_string();
    assert!(departures.contains("--window-mode seed"), "{departures}");
    assert!(
        !departures.contains("confirmed scrape samples"),
        "{departures}"
    );
    // the server saw both shards' requests: the seed's rate over its 60 s window (which
    // extrapolates a little; Prometheus started under a minute ago, so the window holds all)
    let rps = s["throughput_rps"]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{s}"));
    let seen = rps * s["window"]["range_s"].as_f64().unwrap();
    assert!(
        (seen - REQUESTS as f64).abs() <= 3.0,
        "server counted {seen}"
    );
}

/// A sweep in two shards that warm up, at a 15 s scrape: each step's server figures come from
/// its own union window, its left edge confirmed after the warm-ups (step 0) or in the gap
/// after the previous step (`--step-gap`), its right edge before the next step, and the
/// server's finished count of each step equals the client's successes of that step exactly.
#[test]
fn serial_a_sharded_sweep_is_counted_step_by_step_at_a_15_s_scrape() {
    // two scrape intervals after the shards' warm-up (a quiet sample must follow a sample that
    // already counts it), and a gap of two scrapes after each step
    let (r, _dir) = sharded_sweep(15, 36, "33s");
    let steps = r["steps"].as_array().unwrap();
    for (i, step) in steps.iter().enumerate() {
        let ok = step["client"]["successful_requests"].as_f64().unwrap();
        assert!(ok > 0.0, "step {i}");
        let s = &step["server"];
        assert_eq!(s["integrity"]["edges_confirmed"], true, "step {i}: {s}");
        // exact: the step's own requests, none of the other step's
        assert_eq!(s["requests_finished"]["value"], ok, "step {i}: {s}");
    }
}

/// A sweep whose `--step-gap` is too short for a scrape between its steps (1 ms, at a 5 s
/// scrape): no step may count the other's requests. A step whose edges quiet samples
/// confirmed is exact; every other step has no server figures, each `null` with the reason
/// naming `--step-gap` (before: step 0 blamed a server that "went down", and step 1 counted
/// both steps' requests as its own).
#[test]
fn serial_a_sharded_sweep_with_too_short_a_gap_has_no_mingled_step() {
    let (r, _dir) = sharded_sweep(5, 12, "1ms");
    let steps = r["steps"].as_array().unwrap();
    let mut without = 0;
    for (i, step) in steps.iter().enumerate() {
        let ok = step["client"]["successful_requests"].as_f64().unwrap();
        let s = &step["server"];
        if s["integrity"]["edges_confirmed"] == true {
            assert_eq!(s["requests_finished"]["value"], ok, "step {i}: {s}");
            continue;
        }
        without += 1;
        for figure in [
            &s["requests_finished"],
            &s["throughput_rps"],
            &s["ttft_s"]["p95"],
        ] {
            assert!(figure["value"].is_null(), "step {i}: {s}");
            let why = figure["reason"].as_str().unwrap_or_default();
            assert!(why.contains("--step-gap"), "step {i}: {why}");
        }
    }
    // each shard starts step 1 as soon as its own step 0 has drained: when one shard's step 1
    // began before the other's step 0 ended, no sample can fall between the steps and both
    // are without figures; otherwise at most milliseconds lie between them, which a scrape
    // rarely hits (and then both steps are exact, above)
    println!("short gap: warnings {}", r["warnings"]);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    if at(&steps[1]["load_start"]) <= at(&steps[0]["load_end"]) {
        assert_eq!(without, 2, "{}", r["steps"]);
    }
    if without > 0 {
        let warnings = r["warnings"].to_string();
        assert!(warnings.contains("--step-gap"), "{warnings}");
    }
}

/// Two shards of a closed-loop sweep `2,4` (2 s steps, `--step-gap gap`) with one warm-up
/// request each, against a sim scraped every `interval` s, starting `lead_s` from now, merged
/// with `--prometheus-url`: the merged results (both steps on Prometheus, end-anchored), and
/// the directory holding the shards.
fn sharded_sweep(interval: u64, lead_s: i64, gap: &str) -> (Value, tempfile::TempDir) {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(100),
        itl: Duration::from_millis(10),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(interval));
    prom.wait_for_targets_up(JOB, Duration::from_secs(30 + interval));
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 10);
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(lead_s)).to_rfc3339();
    let shards: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    let commands: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = load_test();
            c.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
                .arg("--eval-data-path")
                .arg(&eval)
                .arg("--output-dir")
                .arg(d)
                .args(["--shard-count", "2", "--shard-index", &i.to_string()])
                .args(["--start-at", &start_at, "--max-tokens", "4"])
                // the first request to a LoRA adapter loads it: the usual warm-up, which the
                // first step's window must start after
                .args(["--warmup-requests", "1"])
                .args(["--steps", "2,4", "--step-duration", "2s", "--step-gap", gap])
                .args(["--progress-interval", "0", "--poll-interval", "0"]);
            c
        })
        .collect();
    run_together(commands);
    let out_dir = dir.path().join("merged");
    let started = Instant::now();
    let out = run(load_test()
        .arg("merge")
        .args(&shards)
        .arg("--output-dir")
        .arg(&out_dir)
        .args(["--prometheus-url", &prom.url()]));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = load_test_results(&out_dir);
    println!(
        "sharded sweep at a {interval} s scrape, gap {gap}: merge took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r["status"], "completed");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (i, step) in steps.iter().enumerate() {
        let s = &step["server"];
        assert_eq!(s["source"], "prometheus", "step {i}: {s}");
        assert_eq!(s["window"]["mode"], "end_anchored", "step {i}: {s}");
    }
    assert_eq!(steps[1]["concurrency"], 4);
    (r, dir)
}
