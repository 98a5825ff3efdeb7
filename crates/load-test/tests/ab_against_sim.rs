//! `load-test --baseline-adapter` (a same-server A/B run) end to end against `vllm-sim` with two
//! adapters, server figures from /metrics deltas: the measured comparison follows the adapters'
//! configured speeds, the two arms interleave over the same prompts, and the run stays valid
//! although the server's figures count both arms.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_gate::results::{ClientMetrics, LoadTestResults};
use perf_gate::stats::SampleStore;
use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_status as status, run, stderr};
use vllm_sim::{LatencyScale, LoraModule, SimConfig};

/// A simulator serving `candidate` and `baseline`, the baseline's TTFT and token delays
/// `baseline_scale` times the candidate's.
fn two_adapter_sim(ttft_ms: u64, itl_ms: u64, baseline_scale: f64) -> Sim {
    Sim::start(SimConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        lora_modules: vec![
            LoraModule::new("candidate", "/models/lora"),
            LoraModule::new("baseline", "/models/lora-prod"),
        ],
        max_loras: 2,
        adapter_latency_scale: vec![LatencyScale::new("baseline", baseline_scale)],
        ..Default::default()
    })
}

/// `load-test` against `sim` with the candidate and `--baseline-adapter baseline`, an eval
/// file of `prompts` prompts, and `extra` flags: (the directory, the output dir, the process).
fn ab_run(sim: &Sim, prompts: usize, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Output) {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), prompts);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .args(["--baseline-adapter", "baseline", "--progress-interval", "0"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(extra));
    (dir, out, o)
}

type Output = std::process::Output;

/// The typed results in `out`, after checking the run completed.
fn completed(out: &Path, o: &Output) -> LoadTestResults {
    assert!(o.status.success(), "{}", stderr(o));
    assert_eq!(status(out), "completed");
    LoadTestResults::read(&out.join("load_test_results.json")).unwrap()
}

/// Candidate's figure / baseline's, for P95 TTFT and P95 E2E.
fn p95_ratios(r: &LoadTestResults) -> (f64, f64) {
    let c = r.client.as_ref().expect("candidate figures");
    let b = &r.baseline_arm.as_ref().expect("a baseline arm").client;
    let ratio = |f: fn(&ClientMetrics) -> Option<f64>| f(c).unwrap() / f(b).unwrap();
    (ratio(|m| m.ttft_s.p95), ratio(|m| m.e2e_s.p95))
}

/// Every line of `requests.jsonl` in `out`, in dispatch order (`seq`).
fn records(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let mut recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    recs.sort_by_key(|r| r["seq"].as_u64().unwrap());
    recs
}

#[test]
fn serial_ab_a_slower_baseline_shows_its_configured_ratio() {
    // 100 ms TTFT and 20 ms a token against 1.3x: the client's few ms of overhead move the
    // ratios from 1/1.3 = 0.769 towards 1, not past 0.85; 4 in flight never queue on 256 slots
    let sim = two_adapter_sim(100, 20, 1.3);
    let (_dir, out, o) = ab_run(
        &sim,
        40,
        &[
            "--concurrency",
            "4",
            "--max-tokens",
            "10",
            "--warmup-requests",
            "1",
        ],
    );
    let r = completed(&out, &o);
    let (ttft, e2e) = p95_ratios(&r);
    eprintln!("slower baseline: candidate / baseline P95 TTFT {ttft:.3}, P95 E2E {e2e:.3}");
    assert!((0.70..=0.85).contains(&ttft), "P95 TTFT ratio {ttft}");
    assert!((0.70..=0.85).contains(&e2e), "P95 E2E ratio {e2e}");

    // both arms complete, with their own samples on the same clock
    let c = r.client.as_ref().unwrap();
    let b = &r.baseline_arm.as_ref().unwrap();
    assert_eq!((c.total_requests, c.successful_requests), (40, 40));
    assert_eq!(
        (b.client.total_requests, b.client.successful_requests),
        (40, 40)
    );
    assert_eq!(b.adapter.name, "baseline");
    assert_eq!(b.adapter.root.as_deref(), Some("/models/lora-prod"));
    assert_eq!(r.config.baseline_adapter.as_deref(), Some("baseline"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("baseline baseline: 40 requests, 40 ok"),
        "{stdout}"
    );
    let cand = SampleStore::unpack(c.samples.as_ref().unwrap()).unwrap();
    let base = SampleStore::unpack(b.client.samples.as_ref().unwrap()).unwrap();
    assert_eq!(base.len() as u64, b.client.total_requests);
    assert_eq!(cand.len() as u64, c.total_requests);
    // finish times measured from the one load start: both arms span the same load
    let last = |s: &SampleStore| {
        s.requests()
            .iter()
            .map(|x| f64::from(x.finished_s))
            .fold(0.0, f64::max)
    };
    let duration = r.timing.as_ref().unwrap().load_duration_s;
    for s in [&cand, &base] {
        assert!(last(s) <= duration + 0.01, "{} > {duration}", last(s));
        assert!(last(s) > duration * 0.8, "{} against {duration}", last(s));
    }
    // the warm-up warmed both adapters: one request each, outside the figures
    let w = r.warmup.as_ref().unwrap();
    assert_eq!((w.requests, w.successful_requests), (2, 2));
    assert_eq!(sim.stats().accepted, 82);
}

#[test]
fn serial_ab_equal_adapters_compare_equal() {
    let sim = two_adapter_sim(100, 20, 1.0);
    let (_dir, out, o) = ab_run(&sim, 40, &["--concurrency", "4", "--max-tokens", "10"]);
    let r = completed(&out, &o);
    let (ttft, e2e) = p95_ratios(&r);
    eprintln!("equal adapters: candidate / baseline P95 TTFT {ttft:.3}, P95 E2E {e2e:.3}");
    assert!((0.8..=1.25).contains(&ttft), "P95 TTFT ratio {ttft}");
    assert!((0.8..=1.25).contains(&e2e), "P95 E2E ratio {e2e}");
}

#[test]
fn ab_requests_alternate_in_counterbalanced_pairs_over_the_same_prompts() {
    let sim = two_adapter_sim(2, 1, 1.3);
    let (_dir, out, o) = ab_run(&sim, 7, &["--concurrency", "3", "--max-tokens", "4"]);
    completed(&out, &o);
    let recs = records(&out);
    assert_eq!(recs.len(), 14, "7 prompts, once per arm");
    let seqs: Vec<u64> = recs.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..14).collect::<Vec<_>>(), "one record per dispatch");
    for (k, pair) in recs.chunks(2).enumerate() {
        let arms = (pair[0]["arm"].as_str(), pair[1]["arm"].as_str());
        let want = if k % 2 == 0 {
            (Some("candidate"), Some("baseline"))
        } else {
            (Some("baseline"), Some("candidate"))
        };
        assert_eq!(arms, want, "pair {k}: {pair:?}");
        assert_eq!(pair[0]["prompt_index"], pair[1]["prompt_index"], "pair {k}");
    }
    // each prompt measured exactly once per arm
    let seen: BTreeSet<(u64, String)> = recs
        .iter()
        .map(|r| {
            (
                r["prompt_index"].as_u64().unwrap(),
                r["arm"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 14);
    assert!(seen.iter().all(|(p, _)| *p < 7));
}

#[test]
fn ab_num_requests_counts_the_candidate_s_requests() {
    let sim = two_adapter_sim(2, 1, 1.0);
    let (_dir, out, o) = ab_run(
        &sim,
        3,
        &["--num-requests", "8", "--rate", "200", "--max-tokens", "2"],
    );
    let r = completed(&out, &o);
    assert_eq!(r.client.as_ref().unwrap().total_requests, 8);
    assert_eq!(r.baseline_arm.as_ref().unwrap().client.total_requests, 8);
    let recs = records(&out);
    // cycled prompts: pair k is prompt k mod 3, for both arms
    for (k, pair) in recs.chunks(2).enumerate() {
        for rec in pair {
            assert_eq!(rec["prompt_index"].as_u64(), Some(k as u64 % 3), "{rec}");
        }
    }
}

#[test]
fn ab_run_is_valid_although_the_server_counts_both_adapters() {
    // no --prometheus-url: /metrics deltas, whose counts (labelled by base model, as vLLM's)
    // hold both arms' requests
    let sim = two_adapter_sim(2, 1, 1.3);
    let (_dir, out, o) = ab_run(&sim, 30, &["--concurrency", "4", "--max-tokens", "4"]);
    let r = completed(&out, &o);
    let s = r.server.as_ref().unwrap();
    assert_eq!(s.requests_finished.get(), Some(60.0), "{s:?}");
    let v = r.validity.as_ref().unwrap();
    assert!(v.valid, "{:?}", v.reasons);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(
        !r.warnings.iter().any(|w| w.contains("server counted")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.departures
            .iter()
            .any(|d| d.contains("server figures cover both adapters")
                && d.contains("uses the client's figures")),
        "{:?}",
        r.departures
    );
    // the decision's cross-checks see no count mismatch either
    let w = perf_gate::decision::crosschecks::results_warnings(
        &r,
        perf_gate::decision::metrics::MetricsSource::Client,
    );
    assert!(
        !w.iter().any(|w| w.contains("successful requests")),
        "{w:?}"
    );
    // the file a consumer validates
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("load_test_results.json")).unwrap())
            .unwrap();
    test_support::schema::assert_valid(&doc, "load_test_results.schema.json");
}

#[test]
fn ab_a_baseline_adapter_not_served_stops_before_the_load() {
    let sim = two_adapter_sim(2, 1, 1.0);
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 3);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .args(["--baseline-adapter", "prod-adapter"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    // the adapter check's exit code: a dependency not as expected
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let r = LoadTestResults::read(&out.join("load_test_results.json")).unwrap();
    assert!(r.client.is_none() && r.baseline_arm.is_none());
    let e = r.error.unwrap();
    assert!(!e.contains('\n'), "{e}");
    assert!(
        e.starts_with(
            "the baseline adapter (--baseline-adapter): adapter \"prod-adapter\" is not served"
        ),
        "{e}"
    );
    assert!(
        e.contains("it serves: tiny-base, candidate, baseline"),
        "{e}"
    );
    // the same line on stdout (the summary) and in the log
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("error: {e}")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(stderr(&o).contains(&e), "{}", stderr(&o));
    assert_eq!(sim.stats().accepted, 0, "no load was sent");

    // the same adapter twice is bad input, named by its flag
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .args(["--baseline-adapter", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(dir.path().join("out2")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "load-test: --baseline-adapter must name another adapter than --adapter-name (\"candidate\")"
    );
}
