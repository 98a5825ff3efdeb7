//! `load-test` against a REAL Prometheus scraping `vllm-sim` at the intervals production uses,
//! in real time: the window rests on confirmed samples, so a short load is counted exactly
//! (server finished = client successes) with non-null quantiles at 5, 10 and 30 s scrapes,
//! with `--scrape-interval auto` read from Prometheus. Prometheus is started just before each
//! load (its first scrape, and the 5 s discovery delay, fall inside the gate's wait), a vLLM
//! restarted just before the load still gives exact figures, and a second client sending
//! traffic during the load makes the measurement invalid, naming the contamination.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};

const JOB: &str = "vllm-service";

fn sim_on(port: u16) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        ttft: Duration::from_millis(120),
        itl: Duration::from_millis(20),
        max_num_seqs: 64,
        ..Default::default()
    })
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Runs `load-test` with `requests` prompts against `sim` and `prom` (auto scrape interval),
/// returning its results.
fn gate(sim: &Sim, prom: &PrometheusServer, requests: usize, concurrency: u32) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), requests);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--prometheus-url", &prom.url()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--max-tokens", "6", "--progress-interval", "0"]));
    assert!(o.status.success(), "{}", stderr(&o));
    results(&out)
}

/// The figures count exactly the requests the client saw succeed, with every quantile there.
fn assert_exact(r: &Value, interval: u64) {
    let label = format!("at a {interval} s scrape");
    assert_eq!(r["status"], "completed", "{label}");
    let s = &r["server"];
    let ok = r["client"]["successful_requests"].as_f64().unwrap();
    assert_eq!(
        s["requests_finished"]["value"].as_f64(),
        Some(ok),
        "{label}: {s}"
    );
    for k in ["e2e_latency_s", "ttft_s"] {
        for q in ["p50", "p95", "p99"] {
            assert!(s[k][q]["value"].as_f64().is_some(), "{label}: {k} {q}: {s}");
        }
    }
    assert_eq!(s["integrity"]["edges_confirmed"], true, "{label}: {s}");
    assert_eq!(r["validity"]["valid"], true, "{label}: {}", r["validity"]);
    let w = &s["window"];
    assert_eq!(w["scrape_interval_source"], "prometheus", "{label}");
    assert_eq!(
        w["scrape_interval_s"].as_f64(),
        Some(interval as f64),
        "{label}"
    );
    let samples = w["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{label}: {w}");
    assert!(samples[0]["before_load"].is_string() && samples[0]["after_load"].is_string());
    // T is a real scrape after the load
    let end = chrono::DateTime::parse_from_rfc3339(r["timing"]["load_end"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as f64
        / 1000.0;
    assert!(w["eval_time_unix"].as_f64().unwrap() > end, "{label}: {w}");
}

#[test]
fn serial_short_loads_are_counted_exactly_at_5_and_10_s_scrapes() {
    for interval in [5, 10] {
        let sim = sim_on(0);
        let target = sim.url.trim_start_matches("http://").to_string();
        // started just before the gate: its first scrape comes during the gate's wait
        let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(interval));
        let started = Instant::now();
        let r = gate(&sim, &prom, 20, 4);
        assert_exact(&r, interval);
        println!(
            "{interval} s scrape: gate took {:.1} s; window {}",
            started.elapsed().as_secs_f64(),
            r["server"]["window"]
        );
    }
}

#[test]
fn serial_a_short_load_is_counted_exactly_at_a_30_s_scrape() {
    let sim = sim_on(0);
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(30));
    let r = gate(&sim, &prom, 12, 4);
    assert_exact(&r, 30);
}

#[test]
fn serial_a_vllm_restarted_just_before_the_load_is_still_counted_exactly() {
    let first = sim_on(0);
    let port = port_of(&first.url);
    let target = format!("127.0.0.1:{port}");
    let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(5));
    prom.wait_for_targets_up(JOB, Duration::from_secs(30));
    // traffic on the first process, scraped, then a restart on the same address
    for _ in 0..5 {
        let (status, _) = test_support::http::post_json(
            port,
            "/v1/completions",
            &serde_json::json!({"model": "candidate", "prompt": "hi", "max_tokens": 3}),
        )
        .unwrap();
        assert_eq!(status, 200);
    }
    std::thread::sleep(Duration::from_secs(6));
    drop(first);
    let second = sim_on(port);
    let r = gate(&second, &prom, 20, 4);
    assert_exact(&r, 5);
    assert_eq!(r["server"]["integrity"]["process_restarts"], 0);
}

#[test]
fn serial_a_second_client_during_the_load_makes_it_invalid() {
    let sim = Arc::new(sim_on(0));
    let port = port_of(&sim.url);
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start(JOB, &[&target], Duration::from_secs(5));
    prom.wait_for_targets_up(JOB, Duration::from_secs(30));

    // once the gate's load is under way (the sim accepts its first request), another client
    // sends requests for 3 s
    let before = sim.stats().accepted;
    let intruder = {
        let sim = sim.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while sim.stats().accepted == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let until = Instant::now() + Duration::from_secs(3);
            let mut sent = 0;
            while Instant::now() < until {
                let body =
                    serde_json::json!({"model": "candidate", "prompt": "other", "max_tokens": 3});
                if let Ok((200, _)) = test_support::http::post_json(port, "/v1/completions", &body)
                {
                    sent += 1;
                }
            }
            sent
        })
    };
    let r = gate(&sim, &prom, 60, 2);
    let sent = intruder.join().unwrap();
    assert!(sent > 0, "the second client sent nothing");
    assert_eq!(r["validity"]["valid"], false, "{}", r["validity"]);
    let reasons = r["validity"]["reasons"].to_string();
    assert!(
        reasons.contains("other traffic on the server during the load"),
        "{reasons}"
    );
}
