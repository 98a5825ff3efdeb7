//! `load-test merge` against a REAL Prometheus (Debian's, on a free loopback port, scraping
//! `vllm-sim` every second): two shards that do not query Prometheus themselves, merged with
//! `--prometheus-url`, get the server's figures over the union window, queried once: the P95
//! TTFT falls in the bucket holding the sim's configured TTFT, and the server's rate counts
//! every request of both shards.

use std::time::Duration;

use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results, run, stderr};

#[test]
fn merged_shards_get_the_server_s_figures_over_the_union_window() {
    // TTFT 0.6 s: in vLLM's (0.5, 0.75] bucket
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(600),
        itl: Duration::from_millis(20),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));

    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let shards: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("shard-{i}")))
        .collect();
    let children: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(i, d)| {
            load_test()
                .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
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
                .args(["--progress-interval", "0", "--poll-interval", "0"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("load-test starts")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for d in &shards {
        assert!(load_test_results(d)["server"].is_null());
    }
    let merged = dir.path().join("merged");
    let out = run(load_test()
        .arg("merge")
        .args(&shards)
        .arg("--output-dir")
        .arg(&merged)
        .args(["--prometheus-url", &prom.url(), "--scrape-interval", "1s"])
        .args(["--scrape-wait", "3s"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = load_test_results(&merged);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["client"]["successful_requests"], 20);
    let s = &r["server"];
    assert_eq!(s["source"], "prometheus", "{s}");
    assert_eq!(s["window"]["mode"], "seed");
    let p95 = s["ttft_s"]["p95"]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{s}"));
    assert!(p95 > 0.5 && p95 <= 0.75, "server TTFT p95 {p95}");
    // the server saw both shards' requests: the seed's rate over its 60 s window (which
    // extrapolates a little; Prometheus started under a minute ago, so the window holds all)
    let rps = s["throughput_rps"]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{s}"));
    let seen = rps * s["window"]["range_s"].as_f64().unwrap();
    assert!((seen - 20.0).abs() <= 3.0, "server counted {seen}");
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
}
