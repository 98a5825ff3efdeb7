//! Timing behaviour: latency model, FIFO queueing, slowdown with load, many streams.
//! Timing-sensitive, hence `serial_*` (run one at a time); tolerances are wide for a loaded
//! 2-core machine.

use std::time::{Duration, Instant};

use serde_json::json;
use test_support::wire::*;
use vllm_sim::{SimConfig, SimHandle, spawn};

/// Client-side timings of one streaming request.
#[derive(Debug, Clone)]
struct Timed {
    ttft: Duration,
    gaps: Vec<Duration>,
    e2e: Duration,
    done: bool,
}

/// Streams a completion of `n` tokens and timestamps every content chunk.
async fn timed_stream(client: &reqwest::Client, base: &str, n: u32) -> Timed {
    let start = Instant::now();
    let body = json!({"model": "candidate", "prompt": "hello", "max_tokens": n, "stream": true});
    let mut resp = client
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let mut buf = String::new();
    let mut stamps = Vec::new();
    let mut done = false;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        let now = Instant::now();
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.starts_with("data: [DONE]") {
                done = true;
            } else {
                stamps.push(now);
            }
        }
    }
    let e2e = start.elapsed();
    let ttft = stamps.first().map(|t| *t - start).unwrap_or(e2e);
    let gaps = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    Timed {
        ttft,
        gaps,
        e2e,
        done,
    }
}

async fn sim(config: SimConfig) -> SimHandle {
    spawn(config).await.expect("sim starts")
}

fn mean(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum::<f64>() / d.len().max(1) as f64
}

fn in_range(what: &str, v: f64, lo: f64, hi: f64) {
    assert!(
        (lo..=hi).contains(&v),
        "{what} = {v:.4} not in [{lo}, {hi}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_latency_model_shapes_ttft_itl_and_e2e() {
    let sim = sim(SimConfig {
        ttft: Duration::from_millis(100),
        itl: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let t = timed_stream(&client(), &sim.base_url(), 11).await;
    assert!(t.done);
    assert_eq!(t.gaps.len(), 10);
    in_range("ttft", t.ttft.as_secs_f64(), 0.095, 0.3);
    in_range("mean itl", mean(&t.gaps), 0.015, 0.04);
    in_range("e2e", t.e2e.as_secs_f64(), 0.29, 0.7);

    let samples = parse_metrics(&get_text(&format!("{}/metrics", sim.base_url())).await);
    let ttft_sum = value(&samples, "vllm:time_to_first_token_seconds_sum", &[]).expect("ttft");
    in_range("server ttft", ttft_sum, 0.099, 0.3);
    let e2e_sum = value(&samples, "vllm:e2e_request_latency_seconds_sum", &[]).expect("e2e");
    in_range("server e2e", e2e_sum, 0.299, 0.7);
    // 20 ms gaps fall in the (0.01, 0.025] bucket.
    let le = |b| {
        value(
            &samples,
            "vllm:inter_token_latency_seconds_bucket",
            &[("le", b)],
        )
    };
    let in_bucket = le("0.025").expect("bucket") - le("0.01").expect("bucket");
    assert!(in_bucket >= 7.0, "{in_bucket} of 10 gaps in (0.01, 0.025]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_queueing_adds_queue_time_to_ttft() {
    let sim = sim(SimConfig {
        max_num_seqs: 1,
        ttft: Duration::from_millis(300),
        itl: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    let client = client();
    let start = Instant::now();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { timed_stream(&client, &base, 1).await })
        })
        .collect();
    // While the first request runs, the other two wait.
    let mut seen = None;
    while start.elapsed() < Duration::from_millis(250) {
        let mid = parse_metrics(&get_text(&format!("{base}/metrics")).await);
        let running = value(&mid, "vllm:num_requests_running", &[]);
        let waiting = value(&mid, "vllm:num_requests_waiting", &[]);
        seen = Some((running, waiting));
        if seen == Some((Some(1.0), Some(2.0))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some((Some(1.0), Some(2.0))), "running, waiting");

    let mut ttfts = Vec::new();
    for r in runs {
        ttfts.push(r.await.expect("task").ttft.as_secs_f64());
    }
    ttfts.sort_by(f64::total_cmp);
    let [t1, t2, t3] = [ttfts[0], ttfts[1], ttfts[2]];
    in_range("first ttft", t1, 0.29, 0.6);
    in_range("second / first", t2 / t1, 1.5, 3.0);
    in_range("third / first", t3 / t1, 2.2, 4.5);

    let end = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    let queue = value(&end, "vllm:request_queue_time_seconds_sum", &[]).expect("queue");
    // 0 + ~0.3 + ~0.6
    in_range("queue time sum", queue, 0.85, 1.6);
    assert_eq!(value(&end, "vllm:num_requests_waiting", &[]), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_decode_slows_down_with_load() {
    let sim = sim(SimConfig {
        max_num_seqs: 4,
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(10),
        decode_slowdown: 3.0,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    let client = client();
    // Alone: itl * (1 + 3 * 1/4) = 17.5 ms.
    let alone = mean(&timed_stream(&client, &base, 20).await.gaps);
    // Four at once: itl * (1 + 3 * 4/4) = 40 ms.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { timed_stream(&client, &base, 20).await })
        })
        .collect();
    let mut loaded = Vec::new();
    for r in runs {
        loaded.extend(r.await.expect("task").gaps);
    }
    let loaded = mean(&loaded);
    in_range("alone itl", alone, 0.014, 0.03);
    in_range("loaded / alone", loaded / alone, 1.6, 3.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_jitter_spreads_delays() {
    let sim = sim(SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(20),
        jitter: 0.5,
        seed: 42,
        ..Default::default()
    })
    .await;
    let t = timed_stream(&client(), &sim.base_url(), 30).await;
    let ms: Vec<f64> = t.gaps.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ms.iter().copied().fold(0.0, f64::max);
    assert!(
        min < 16.0 && max > 24.0,
        "gaps {min:.1}..{max:.1} ms should spread around 20"
    );
    in_range("mean itl", mean(&t.gaps), 0.015, 0.03);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_a_thousand_concurrent_streams_keep_their_schedule() {
    let sim = sim(SimConfig {
        ttft: Duration::from_millis(100),
        itl: Duration::from_millis(100),
        max_num_seqs: 2000,
        kv_cache_tokens: 1_000_000,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(2000)
        .build()
        .expect("client");
    let n = 1000;
    let start = Instant::now();
    let runs: Vec<_> = (0..n)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { timed_stream(&client, &base, 10).await })
        })
        .collect();
    let mut done = 0;
    for r in runs {
        done += usize::from(r.await.expect("task").done);
    }
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(done, n);
    // Ideal: 0.1 s + 9 * 0.1 s = 1 s per stream, all in parallel.
    in_range("wall time", wall, 0.95, 10.0);
    let samples = parse_metrics(&get_text(&format!("{base}/metrics")).await);
    let count = value(&samples, "vllm:inter_token_latency_seconds_count", &[]).expect("count");
    let sum = value(&samples, "vllm:inter_token_latency_seconds_sum", &[]).expect("sum");
    assert_eq!(count, (n * 9) as f64);
    eprintln!(
        "{n} streams: wall {wall:.2} s, server mean itl {:.4} s",
        sum / count
    );
    // A late first token (1000 connections opening at once) shortens the following gaps:
    // the schedule is absolute, so the mean stays near 0.1 s.
    in_range("server mean itl", sum / count, 0.07, 0.13);
    assert_eq!(sim.stats().finished, n as u64);
}
