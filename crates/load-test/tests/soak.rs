//! A 30-second soak: `load-test` at concurrency 256 against `vllm-sim` answering 5 % of the
//! requests with HTTP 500. No request is lost (the client's counts equal the simulator's,
//! exactly) and load-test's memory stays flat apart from its compact latency samples.
//! `scripts/soak.sh` runs the same for 10 minutes on release binaries.
//!
//! load-test has no `--duration`: the run is `--num-requests`, sized from the simulator's
//! latency so that 256 requests in flight take about [`SECONDS`] (longer when this machine
//! cannot keep up; the figures printed say how long it took).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results, load_test_status};
use test_support::wire::{Sample, parse_metrics, value};

const SECONDS: u64 = 30;
const CONCURRENCY: u64 = 256;
const ERROR_RATE: f64 = 0.05;
const TTFT: Duration = Duration::from_millis(50);
const ITL: Duration = Duration::from_millis(30);
const MAX_TOKENS: u32 = 16;
/// RSS is read this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The baseline RSS is the one read this long after the start: 256 connections open, buffers
/// and the runtime warmed up.
const RAMP: Duration = Duration::from_secs(5);
const MIB: u64 = 1024 * 1024;

/// `VmRSS` of `pid` in bytes, or `None` once it has exited.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn count(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a count: {v}"))
}

/// The simulator's `/metrics` right now.
fn sim_metrics(sim: &Sim) -> Vec<Sample> {
    let port: u16 = sim
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the sim's URL ends with its port");
    let (status, body) = test_support::http::get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// Bytes of the client's per-request samples: finish time, TTFT and E2E (`f32` each, 12
/// bytes) for every request; the per-token figures are fixed-size histograms.
fn compact_sample_bytes(client: &Value) -> u64 {
    count(&client["total_requests"], "total_requests") * 12
}

#[test]
fn serial_soak_30s_at_concurrency_256_with_5_percent_errors_loses_nothing_and_stays_flat() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: TTFT,
        itl: ITL,
        error_rate: ERROR_RATE,
        seed: 2024,
        max_num_seqs: CONCURRENCY as usize,
        kv_cache_tokens: 1_000_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 500);
    let out = dir.path().join("out");
    let per_request = TTFT + ITL * (MAX_TOKENS - 1);
    let requests = (CONCURRENCY as f64 * SECONDS as f64 / per_request.as_secs_f64()) as u64;
    let log = std::fs::File::create(dir.path().join("load-test.log")).unwrap();
    let started = Instant::now();
    let mut child = load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--max-tokens", &MAX_TOKENS.to_string()])
        .args(["--num-requests", &requests.to_string()])
        .args(["--progress-interval", "5s"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("load-test starts");
    let pid = child.id();
    let mut rss: Vec<(Duration, u64)> = Vec::new();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if let Some(b) = rss_bytes(pid) {
            rss.push((started.elapsed(), b));
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let wall = started.elapsed();
    let log_text = std::fs::read_to_string(dir.path().join("load-test.log")).unwrap();
    assert!(exit.success(), "load-test: {exit}\n{log_text}");
    assert_eq!(load_test_status(&out), "completed");
    let r = load_test_results(&out);
    let c = &r["client"];
    let total = count(&c["total_requests"], "total_requests");
    let ok = count(&c["successful_requests"], "successful_requests");
    let failed = count(&c["failed_requests"], "failed_requests");
    let http_500 = c["errors_by_kind"]["http_500"].as_u64().unwrap_or(0);

    let m = sim_metrics(&sim);
    let handler = [("handler", "/v1/completions")];
    let http = |class: &str| {
        let labels = [handler[0], ("status", class)];
        value(&m, "http_requests_total", &labels).unwrap_or(0.0) as u64
    };
    let (sim_2xx, sim_4xx, sim_5xx) = (http("2xx"), http("4xx"), http("5xx"));
    let sim_success: u64 = m
        .iter()
        .filter(|s| s.name == "vllm:request_success_total")
        .map(|s| s.value as u64)
        .sum();
    let stats = sim.stats();

    let first = rss.first().map_or(0, |s| s.1);
    let start = rss.iter().find(|(t, _)| *t >= RAMP).map_or(first, |s| s.1);
    let peak = rss.iter().map(|s| s.1).max().unwrap_or(0);
    let end = rss.last().map_or(0, |s| s.1);
    let samples = compact_sample_bytes(c);
    let allowance = 64 * MIB + 2 * samples + 64 * total;
    let g = &r["load_generator"];
    let duration = r["timing"]["load_duration_s"].as_f64().unwrap_or(0.0);
    eprintln!(
        "soak {SECONDS}s-sized ({requests} requests, concurrency {CONCURRENCY}, error rate {ERROR_RATE}): \
         load {duration:.1} s (wall {:.1} s), {:.0} req/s ok\n\
         client: sent {total}, ok {ok}, failed {failed} (http_500 {http_500}); errors {}\n\
         sim: /v1/completions 2xx {sim_2xx} 4xx {sim_4xx} 5xx {sim_5xx}, request_success_total {sim_success}; {stats:?}\n\
         load-test RSS: first {:.1} MiB, start (at {RAMP:?}) {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; \
         growth {:+.1} MiB, allowed {:.1} MiB (compact samples {:.1} MiB)\n\
         RSS over time (s: MiB): {}\n\
         generator: saturated {}, CPU {:.0} % of one core, event-loop lag p99 {:.1} ms",
        wall.as_secs_f64(),
        c["requests_per_s"].as_f64().unwrap_or(0.0),
        c["errors_by_kind"],
        first as f64 / MIB as f64,
        start as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        end as f64 / MIB as f64,
        (end as f64 - start as f64) / MIB as f64,
        allowance as f64 / MIB as f64,
        samples as f64 / MIB as f64,
        rss.iter()
            .step_by(5)
            .map(|(t, b)| format!("{:.0}: {:.1}", t.as_secs_f64(), *b as f64 / MIB as f64))
            .collect::<Vec<_>>()
            .join(", "),
        g["saturated"],
        g["cpu_percent_of_one_core"].as_f64().unwrap_or(f64::NAN),
        g["event_loop_lag_p99_s"].as_f64().unwrap_or(f64::NAN) * 1e3,
    );

    // Every request is accounted for, on both sides, exactly.
    assert_eq!(total, requests, "the client ran every planned request");
    assert_eq!(ok + failed, total);
    assert_eq!(
        failed, http_500,
        "the only failures are the injected 500s: {}",
        c["errors_by_kind"]
    );
    assert_eq!(sim_2xx + sim_5xx, total, "responses the sim sent");
    assert_eq!(sim_4xx, 0);
    assert_eq!(sim_5xx, http_500, "injected errors");
    assert_eq!(sim_success, ok, "requests the sim finished");
    assert_eq!(
        (stats.accepted, stats.injected_errors, stats.finished),
        (total, http_500, ok)
    );
    assert_eq!(stats.disconnected, 0, "no client went away mid-stream");
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count() as u64,
        total,
        "one record per request"
    );
    // 5 % of the requests, give or take (binomial; > 5 sd of slack).
    let rate = http_500 as f64 / total as f64;
    assert!((0.03..0.07).contains(&rate), "error rate {rate:.4}");

    // Memory: flat apart from the compact samples (generous: RSS is pages, the allocator keeps
    // freed memory, and Vec capacity doubles).
    assert!(rss.len() >= 5, "too few RSS samples: {rss:?}");
    assert!(
        end < start + allowance,
        "load-test RSS grew from {start} to {end} bytes over {total} requests (allowed {allowance})"
    );
    assert_files_complete(&out);
}

/// The run wrote its three files and a complete `requests.jsonl` (no `.partial` left).
fn assert_files_complete(out: &Path) {
    for f in [
        "load_test_results.json",
        "requests.jsonl",
        "load_test_status.txt",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(!out.join("requests.jsonl.partial").exists());
}
