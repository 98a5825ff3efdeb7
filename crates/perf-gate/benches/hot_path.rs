//! Benchmark of the client's hot path. Prints figures; asserts nothing (machines are noisy).
//!
//! 1. SSE decode + chunk parse: ns and heap allocations per chunk, ours vs the obvious
//!    alternative (eventsource-stream + serde_json::Value).
//! 2. End to end: `run_load` on ONE core (current-thread runtime) against a `vllm-sim` process
//!    pinned to the other core, at high concurrency. Reports streams, chunks/s, the client's CPU
//!    per chunk, and how far client-measured ITL sits above the sim's configured ITL.
//!
//! Run: `scripts/bench.sh` (builds release binaries, pins cores with taskset).
#![expect(
    unsafe_code,
    reason = "a counting global allocator needs `unsafe impl GlobalAlloc`"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use perf_gate::client::sse::{ChunkReader, SseDecoder, StreamItem, parse_item};
use perf_gate::client::{ClientOptions, VllmClient};
use perf_gate::runner::{RunOptions, run_load};
use perf_gate::workload::{EndpointChoice, Prompt, Sampling, prepare_requests};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHUNK: &str = "data: {\"id\":\"cmpl-a7b4c8b731cd475f\",\"object\":\"text_completion\",\"created\":1795445693,\"model\":\"candidate\",\"choices\":[{\"index\":0,\"text\":\"tests\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}]}\n\n";

fn micro() {
    let n = 200_000u64;
    // Network chunks as a server sends them: one event per read.
    let bytes = CHUNK.as_bytes();
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut dec = SseDecoder::new();
    let mut tokens = 0u64;
    for _ in 0..n {
        dec.push(bytes);
        while let Ok(Some(ev)) = dec.next_event() {
            if let Ok(StreamItem::Chunk(c)) = parse_item(&ev) {
                tokens += u64::from(c.has_token);
            }
        }
    }
    let ours = t0.elapsed();
    let ours_allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    assert_eq!(tokens, n);

    // the same stream read as load-test reads it: a token's chunk by the stream's shape
    let words = [" the", "OFTW", " imp", "ew", "\\n", " caf\\u00e9"];
    let stream: Vec<u8> = words
        .iter()
        .map(|w| CHUNK.replace("\"tests\"", &format!("\"{w}\"")))
        .collect::<String>()
        .into_bytes();
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut dec = SseDecoder::new();
    let mut chunks = ChunkReader::new();
    let mut tokens = 0u64;
    for _ in 0..n / words.len() as u64 {
        dec.push(&stream);
        while let Ok(Some(ev)) = dec.next_event() {
            if let Ok(StreamItem::Chunk(c)) = chunks.parse(&ev) {
                tokens += u64::from(c.has_token);
            }
        }
    }
    let shaped = t0.elapsed();
    let shaped_allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let shaped_n = n / words.len() as u64 * words.len() as u64;
    assert_eq!(tokens, shaped_n);

    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let stream = futures::stream::iter((0..n).map(|_| Ok::<_, std::io::Error>(bytes)));
    let naive = futures::executor::block_on(async {
        use futures::StreamExt;
        let mut es = eventsource_stream::Eventsource::eventsource(stream);
        let mut tokens = 0u64;
        while let Some(Ok(ev)) = es.next().await {
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
            tokens += u64::from(
                v["choices"][0]["text"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
            );
        }
        tokens
    });
    let theirs = t0.elapsed();
    let theirs_allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    assert_eq!(naive, n);
    println!("sse decode+parse, {n} chunks of {} bytes:", bytes.len());
    println!(
        "  perf-gate SseDecoder+parse_item : {:7.0} ns/chunk, {:5.2} allocations/chunk",
        ours.as_nanos() as f64 / n as f64,
        ours_allocs as f64 / n as f64
    );
    println!(
        "  ... read by the stream's shape  : {:7.0} ns/chunk, {:5.2} allocations/chunk",
        shaped.as_nanos() as f64 / shaped_n as f64,
        shaped_allocs as f64 / shaped_n as f64
    );
    println!(
        "  eventsource-stream+Value        : {:7.0} ns/chunk, {:5.2} allocations/chunk",
        theirs.as_nanos() as f64 / n as f64,
        theirs_allocs as f64 / n as f64
    );
}

/// Process CPU seconds (user + system) from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn end_to_end(sim_url: &str, concurrency: u32, requests: usize, max_tokens: u32, itl_ms: f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Arc::new(
            VllmClient::new(sim_url, None, ClientOptions { pool_size: concurrency as usize, ..Default::default() })
                .unwrap(),
        );
        let prompts: Vec<Prompt> = (0..64).map(|i| Prompt::Text(format!("bench prompt {i}"))).collect();
        let base = prepare_requests(perf_gate::api::Api::Openai, &prompts, "candidate", EndpointChoice::Auto, Sampling { max_tokens, temperature: 0.0 });
        let reqs: Vec<_> = base.iter().cycle().take(requests).cloned().collect();
        let cpu0 = cpu_seconds();
        let out = run_load(
            client,
            Arc::new(reqs),
            RunOptions::closed(concurrency, Duration::from_secs(120), Duration::from_secs(1)),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let cpu = cpu_seconds() - cpu0;
        let c = &out.client;
        let chunks = c.itl_s.count + c.successful_requests;
        let wall = out.duration.as_secs_f64();
        let ms = |v: Option<f64>| v.map_or(f64::NAN, |v| v * 1e3);
        println!(
            "end to end, 1 client core, concurrency {concurrency}, {requests} requests x {max_tokens} tokens, sim ITL {itl_ms} ms:"
        );
        println!(
            "  {} ok / {} failed in {wall:.1} s: {:.0} req/s, {:.0} chunks/s",
            c.successful_requests,
            c.failed_requests,
            c.successful_requests as f64 / wall,
            chunks as f64 / wall
        );
        println!(
            "  client CPU {cpu:.2} s = {:.0}% of one core, {:.2} µs per chunk",
            100.0 * cpu / wall,
            1e6 * cpu / chunks as f64
        );
        println!(
            "  client ITL p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (configured {itl_ms} ms; excess = client + sim + kernel)",
            ms(c.itl_s.p50),
            ms(c.itl_s.p99),
            ms(c.itl_s.max)
        );
        println!("  client TTFT p50 {:.1} ms, p99 {:.1} ms", ms(c.ttft_s.p50), ms(c.ttft_s.p99));
    });
}

fn main() {
    micro();
    match std::env::var("VLLM_SIM_URL") {
        Ok(url) => {
            let conc = std::env::var("BENCH_CONCURRENCY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            let itl = std::env::var("BENCH_ITL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20.0);
            end_to_end(&url, conc, conc as usize * 2, 64, itl);
        }
        Err(_) => println!("(set VLLM_SIM_URL to run the end-to-end part; scripts/bench.sh does)"),
    }
}
