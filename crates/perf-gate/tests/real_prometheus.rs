//! `prom` against a REAL Prometheus (Debian's binary, started by the test) scraping `vllm-sim`
//! every second: the figures `PrometheusCollector` reports must match what the simulator was
//! configured to do and what the client counted.
//!
//! Blocking fixture calls run under `block_in_place` on a multi-thread runtime, so the in-process
//! simulator (and wiremock) keep serving Prometheus's scrapes meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use perf_gate::prom::{
    LoadSpan, MetricsSnapshot, PromError, PromSettings, PrometheusCollector, histogram_quantile,
};
use perf_gate::results::{Measured, ServerMetrics, WindowMode};
use test_support::prometheus::PrometheusServer;
use tokio::task::block_in_place;

const JOB: &str = "vllm-service";
const REQUESTS: usize = 30;
const CONCURRENCY: usize = 5;
/// Output tokens per request (every request runs to `max_tokens`: finish reason `length`).
const MAX_TOKENS: u64 = 9;
/// The simulator's latencies, chosen in the middle of vLLM's buckets:
/// TTFT 0.35 s in (0.25, 0.5]; ITL 0.035 s in (0.025, 0.05];
/// E2E ≈ 0.35 + 8 × 0.035 = 0.63 s in (0.5, 0.8].
const TTFT: Duration = Duration::from_millis(350);
const ITL: Duration = Duration::from_millis(35);

fn sim_config() -> vllm_sim::SimConfig {
    vllm_sim::SimConfig {
        ttft: TTFT,
        itl: ITL,
        max_num_seqs: 10,
        gpu_util: true,
        ..Default::default()
    }
}

fn settings(job: &str) -> PromSettings {
    PromSettings {
        job: job.to_string(),
        scrape_interval: Duration::from_secs(1),
        query_timeout: Duration::from_secs(10),
        window_mode: WindowMode::EndAnchored,
        ..PromSettings::default()
    }
}

/// Starts Prometheus scraping `target` and waits for the first successful scrape, plus a
/// little more, so a sample exists before the load starts (the counter figures need one).
fn start_prometheus(target: &str) -> PrometheusServer {
    block_in_place(|| {
        let prom = PrometheusServer::start(JOB, &[target], Duration::from_secs(1));
        prom.wait_for_targets_up(JOB, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(1500));
        prom
    })
}

/// Fires `REQUESTS` streaming completions with `CONCURRENCY` workers; returns the successes.
async fn fire(base_url: &str) -> usize {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (http, next, url) = (
            http.clone(),
            next.clone(),
            format!("{base_url}/v1/completions"),
        );
        workers.spawn(async move {
            let mut ok = 0;
            while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                let body = serde_json::json!({
                    "model": "candidate", "prompt": "Say something.", "max_tokens": MAX_TOKENS,
                    "stream": true, "stream_options": {"include_usage": true},
                });
                let resp = http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("request sent");
                let status = resp.status();
                let text = resp.text().await.expect("stream read");
                if status.is_success() && text.contains("data: [DONE]") {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(n) = workers.join_next().await {
        ok += n.expect("worker finished");
    }
    ok
}

fn value(m: &Measured, what: &str) -> f64 {
    m.value
        .unwrap_or_else(|| panic!("{what} is missing: {:?}", m.reason))
}

fn assert_in_bucket(m: &Measured, what: &str, low: f64, high: f64) {
    let v = value(m, what);
    assert!(
        v > low && v <= high,
        "{what} = {v}, expected in ({low}, {high}]"
    );
}

fn print(label: &str, m: &ServerMetrics) {
    println!(
        "{label}:\n{}",
        serde_json::to_string_pretty(m).expect("serializes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_figures_match_the_sim_and_the_client() {
    let sim = vllm_sim::spawn(sim_config()).await.expect("sim starts");
    let prom = start_prometheus(&sim.addr().to_string());
    let collector = PrometheusCollector::new(&prom.url(), settings(JOB)).expect("settings ok");
    collector.check_ready().await.expect("prometheus ready");

    let start = Utc::now();
    let ok = fire(&sim.base_url()).await;
    let end = Utc::now();
    assert_eq!(ok, REQUESTS, "every request succeeded");
    let span = LoadSpan { start, end };
    let duration = span.duration_s();

    let m = collector.collect(&span).await.expect("collected");
    print("server metrics", &m);

    // Latency quantiles fall in the bucket holding the configured latency.
    assert_in_bucket(&m.ttft_s.p95, "ttft p95", 0.25, 0.5);
    assert_in_bucket(&m.ttft_s.p50, "ttft p50", 0.25, 0.5);
    assert_in_bucket(&m.e2e_latency_s.p95, "e2e p95", 0.5, 0.8);
    assert_in_bucket(&m.e2e_latency_s.p99, "e2e p99", 0.5, 0.8);
    assert_in_bucket(&m.itl_s.p95, "itl p95", 0.025, 0.05);
    // Counts are exact (no extrapolation), throughput is count / load duration.
    assert_eq!(m.requests_finished, Measured::value(REQUESTS as f64));
    let want_rps = REQUESTS as f64 / duration;
    let rps = value(&m.throughput_rps, "throughput");
    assert!(
        (rps - want_rps).abs() <= 0.1 * want_rps,
        "throughput {rps} vs {want_rps}"
    );
    let tps = value(&m.generation_tokens_per_s, "generation tokens/s");
    let want_tps = (REQUESTS as u64 * MAX_TOKENS) as f64 / duration;
    assert!(
        (tps - want_tps).abs() <= 0.1 * want_tps,
        "tokens/s {tps} vs {want_tps}"
    );
    // Gauges over the window: the sim's DCGM gauge (gpu="0") and KV cache.
    let gpu_max = value(&m.gpu_utilization_max, "gpu max");
    assert!((30.0..=100.0).contains(&gpu_max), "gpu max {gpu_max}");
    let kv = value(&m.kv_cache_usage_max, "kv max");
    assert!(kv > 0.0 && kv <= 1.0, "kv max {kv}");
    // The record: window and every query with the job selector (GPU: the gpu selector).
    let w = m.window.as_ref().expect("window recorded");
    assert_eq!(w.mode, WindowMode::EndAnchored);
    assert!(w.eval_time_unix as f64 >= end.timestamp() as f64 + 3.0);
    assert!((w.eval_time_unix - w.range_s as i64) <= start.timestamp());
    assert_eq!(m.queries.len(), 17);
    for q in &m.queries {
        if q.name.starts_with("gpu_") {
            assert!(
                q.query.contains(r#"DCGM_FI_DEV_GPU_UTIL{gpu="0"}"#),
                "{q:?}"
            );
        } else {
            assert!(q.query.contains(r#"job="vllm-service""#), "{q:?}");
        }
    }
    assert_eq!(
        m.resolved_names.get("itl").map(String::as_str),
        Some("vllm:inter_token_latency_seconds")
    );

    // For the record: what `increase()` (the seed's form) reports for the same window.
    let increase = format!(
        r#"sum(increase(vllm:request_success_total{{job="{JOB}",finished_reason=~"stop|length"}}[{}s]))"#,
        w.range_s
    );
    let inc = collector
        .instant_query(&increase, w.eval_time_unix)
        .await
        .expect("increase");
    println!(
        "client: {ok} requests in {duration:.3}s; exact difference: {:?}; increase(): {:?}",
        m.requests_finished.value, inc.value
    );
    drop(prom);
    sim.shutdown().await.expect("sim stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_wrong_job_label_gives_missing_figures_not_zero() {
    let sim = vllm_sim::spawn(sim_config()).await.expect("sim starts");
    let prom = start_prometheus(&sim.addr().to_string());
    let collector =
        PrometheusCollector::new(&prom.url(), settings("no-such-job")).expect("settings ok");
    collector.check_ready().await.expect("prometheus ready");
    let now = Utc::now();
    let span = LoadSpan {
        start: now - chrono::Duration::seconds(5),
        end: now,
    };
    // Evaluate now (no waiting): the series exist under job="vllm-service" only.
    let mut plan = collector.plan(&span);
    plan.eval_time_unix = now.timestamp();
    let m = collector.query_at(&plan, &span).await.expect("queries run");
    print("wrong job", &m);
    for (what, f) in [
        ("e2e p95", &m.e2e_latency_s.p95),
        ("ttft p95", &m.ttft_s.p95),
        ("itl p95", &m.itl_s.p95),
        ("requests_finished", &m.requests_finished),
        ("throughput", &m.throughput_rps),
        ("kv max", &m.kv_cache_usage_max),
    ] {
        assert_eq!(f.value, None, "{what} must be missing, not {:?}", f.value);
        let reason = f.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("no series matched"), "{what}: {reason}");
        assert!(reason.contains(r#"job="no-such-job""#), "{what}: {reason}");
    }
    // The DCGM series carry no vLLM job label, so the GPU figures are still found.
    assert!(
        m.gpu_utilization_avg.value.is_some(),
        "{:?}",
        m.gpu_utilization_avg
    );
    drop(prom);
    sim.shutdown().await.expect("sim stops");
}

#[tokio::test]
async fn unreachable_prometheus_fails_check_ready_naming_the_url() {
    let port = test_support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let c = PrometheusCollector::new(&url, settings(JOB))
        .expect("settings ok")
        .with_retry_policy(perf_gate::prom::RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_millis(10),
        });
    let e = c.check_ready().await.expect_err("nothing listens there");
    assert!(matches!(e, PromError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
    println!("error: {e}");
}

/// Our `histogram_quantile` must equal Prometheus's on the same buckets: serve the real vLLM
/// capture as a scrape target and compare every quantile the gate uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_histogram_quantile_matches_prometheus_on_the_real_capture() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const CAPTURE: &str = include_str!("../src/prom/fixtures/metrics_after_load.txt");
    let target = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(CAPTURE, "text/plain; version=0.0.4"))
        .mount(&target)
        .await;
    let prom = start_prometheus(&target.address().to_string());
    let snap = MetricsSnapshot::parse(CAPTURE, Utc::now()).expect("capture parses");
    for family in [
        "vllm:e2e_request_latency_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
    ] {
        let buckets = snap.histogram(family).expect("histogram present");
        for q in [0.5, 0.95, 0.99] {
            let promql =
                format!(r#"histogram_quantile({q}, sum by (le) ({family}_bucket{{job="{JOB}"}}))"#);
            let theirs: f64 =
                block_in_place(|| prom.wait_for_series(&promql, Duration::from_secs(10)))
                    .parse()
                    .expect("a number");
            let ours = histogram_quantile(q, &buckets).expect("an answer");
            println!("{family} q={q}: prometheus {theirs} ours {ours}");
            assert!(
                (theirs - ours).abs() <= 1e-12 * ours.abs().max(1.0),
                "{family} q={q}: {theirs} vs {ours}"
            );
        }
    }
}
