//! The `load-test` binary against a REAL Prometheus (Debian's, started here on a free loopback
//! port, scraping `vllm-sim` every second) with `--scrape-interval 1s`: the P95 TTFT and E2E it
//! reports fall in the histogram bucket holding the sim's configured latencies, and its
//! throughput matches the client's count over the load duration.

use std::time::Duration;

use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};

/// vLLM's TTFT and E2E bucket bounds (from a real vLLM 0.32 `/metrics`).
const TTFT_BOUNDS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const E2E_BOUNDS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// The (lower, upper] bucket holding `v`.
fn bucket(bounds: &[f64], v: f64) -> (f64, f64) {
    let i = bounds
        .iter()
        .position(|b| v <= *b)
        .expect("below the top bound");
    (if i == 0 { 0.0 } else { bounds[i - 1] }, bounds[i])
}

#[test]
fn p95_falls_in_the_configured_bucket_and_throughput_matches_the_client() {
    // TTFT 0.6 s in (0.5, 0.75]; e2e = 0.6 + 5 x 0.05 = 0.85 s in (0.8, 1.0].
    let ttft = 0.6;
    let e2e = 0.85;
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_secs_f64(ttft),
        itl: Duration::from_millis(50),
        max_num_seqs: 64,
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500)); // a sample before the load starts

    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 60);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--prometheus-url", &prom.url(), "--scrape-interval", "1s"])
        .args([
            "--concurrency",
            "6",
            "--max-tokens",
            "6",
            "--progress-interval",
            "0",
        ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["status"], "completed");
    let s = &r["server"];
    assert_eq!(s["source"], "prometheus");
    assert_eq!(s["window"]["mode"], "end_anchored");

    let p95 = |k: &str| {
        s[k]["p95"]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {}", s[k]))
    };
    let (lo, hi) = bucket(&TTFT_BOUNDS, ttft);
    let got = p95("ttft_s");
    assert!(
        got > lo && got <= hi,
        "server TTFT p95 {got} not in ({lo}, {hi}]"
    );
    let (lo, hi) = bucket(&E2E_BOUNDS, e2e);
    let got = p95("e2e_latency_s");
    assert!(
        got > lo && got <= hi,
        "server E2E p95 {got} not in ({lo}, {hi}]"
    );

    let client_ok = r["client"]["successful_requests"].as_f64().unwrap();
    let duration = r["timing"]["load_duration_s"].as_f64().unwrap();
    let tput = s["throughput_rps"]["value"].as_f64().unwrap();
    let want = client_ok / duration;
    assert!(
        (tput - want).abs() / want <= 0.10,
        "server throughput {tput} vs client {want}"
    );

    // Every query carries the job selector and aggregates before the quantile.
    for q in s["queries"].as_array().unwrap() {
        let text = q["query"].as_str().unwrap();
        if text.contains("vllm:") {
            assert!(text.contains("job=\"vllm-service\""), "{text}");
        }
        if text.starts_with("histogram_quantile") {
            assert!(text.contains("sum by (le)"), "{text}");
        }
    }
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| !w.as_str().unwrap().contains("finished requests"))
    );
}
