//! Token timing on a reused keep-alive connection matches a fresh connection.
//!
//! Without `TCP_NODELAY` on accepted sockets, Nagle's algorithm holds each small SSE chunk
//! until the client ACKs the previous one, and once the connection has left TCP quick-ACK
//! mode (from the second request on) the client delays that ACK by ~40 ms: the tokens of
//! request 2..n then arrive in bursts (inter-chunk gaps of ~0 ms, TTFT ~40 ms late).
//! Timing-sensitive, hence `serial_*`; margins are wide for a loaded 2-core machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::HttpInfo;
use serde_json::json;
use vllm_sim::{SimConfig, spawn};

const TTFT: Duration = Duration::from_millis(20);
const ITL: Duration = Duration::from_millis(20);
const TOKENS: u32 = 12;
const REQUESTS: usize = 6;

/// Client-side timings of one streaming request, and the connection it used.
#[derive(Debug)]
struct Timed {
    local: SocketAddr,
    ttft: Duration,
    gaps: Vec<Duration>,
}

impl Timed {
    fn median_gap(&self) -> Duration {
        let mut g = self.gaps.clone();
        g.sort();
        g[g.len() / 2]
    }

    fn ms(&self) -> String {
        let gaps: Vec<String> = self
            .gaps
            .iter()
            .map(|g| format!("{:.1}", g.as_secs_f64() * 1e3))
            .collect();
        format!(
            "ttft {:.1} ms, gaps [{}] ms",
            self.ttft.as_secs_f64() * 1e3,
            gaps.join(", ")
        )
    }
}

/// Streams a completion of `TOKENS` tokens and timestamps every content chunk.
async fn timed_stream(client: &reqwest::Client, base: &str) -> Timed {
    let body =
        json!({"model": "candidate", "prompt": "hello", "max_tokens": TOKENS, "stream": true});
    let start = Instant::now();
    let mut resp = client
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let local = resp
        .extensions()
        .get::<HttpInfo>()
        .expect("reqwest records the connection's addresses")
        .local_addr();
    let mut buf = String::new();
    let mut stamps = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        let now = Instant::now();
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if !event.starts_with("data: [DONE]") {
                stamps.push(now);
            }
        }
    }
    assert_eq!(stamps.len(), TOKENS as usize, "one chunk per token");
    Timed {
        local,
        ttft: stamps[0] - start,
        gaps: stamps.windows(2).map(|w| w[1] - w[0]).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_reused_connection_streams_tokens_at_the_configured_pace() {
    let sim = spawn(SimConfig {
        ttft: TTFT,
        itl: ITL,
        ..Default::default()
    })
    .await
    .expect("sim starts");
    let base = sim.base_url();
    // One client, one idle connection kept: every request after the first reuses it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let mut runs = Vec::new();
    for _ in 0..REQUESTS {
        // Back to back, as a load generator sends them. (A pause of ~50 ms lets the client's
        // delayed ACK of the previous stream go out first, and hides the defect.)
        runs.push(timed_stream(&client, &base).await);
    }
    let report: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, t)| format!("request {}: {} via {}", i + 1, t.ms(), t.local))
        .collect();
    let report = report.join("\n");
    eprintln!("{report}");

    // The premise: requests 2..n went over a connection an earlier request had used. hyper
    // returns a connection to the pool on its own task after the body ends, so now and then
    // the next request opens a new one; those are left out.
    let fresh = &runs[0];
    let reused: Vec<&Timed> = runs
        .iter()
        .enumerate()
        .filter(|(i, t)| runs[..*i].iter().any(|e| e.local == t.local))
        .map(|(_, t)| t)
        .collect();
    assert!(
        reused.len() >= REQUESTS / 2,
        "only {} requests reused a connection:\n{report}",
        reused.len()
    );
    for t in &reused {
        // Paced at about the configured 20 ms.
        let median = t.median_gap();
        assert!(
            (Duration::from_millis(12)..=Duration::from_millis(35)).contains(&median),
            "median inter-chunk gap {median:?} on a reused connection, configured {ITL:?}\n{report}"
        );
    }
    // No burst: chunks 20 ms apart never arrive together. Without TCP_NODELAY the first two
    // chunks of every reused request do (one gap of ~0 ms each); one such gap in all is
    // allowed for a scheduling hiccup on a loaded machine.
    let bunched = reused
        .iter()
        .flat_map(|t| &t.gaps)
        .filter(|g| **g < Duration::from_millis(5))
        .count();
    assert!(
        bunched <= 1,
        "{bunched} inter-chunk gaps under 5 ms on the reused connection\n{report}"
    );
    // The first token comes after about the configured TTFT, as on the fresh connection
    // (~22 ms), not ~40 ms later (~45 ms without TCP_NODELAY). Compared with the
    // configuration rather than request 1, whose own TTFT a loaded machine can inflate.
    let mut ttfts: Vec<Duration> = reused.iter().map(|t| t.ttft).collect();
    ttfts.sort();
    let median_ttft = ttfts[ttfts.len() / 2];
    let limit = TTFT + Duration::from_millis(15);
    assert!(
        median_ttft < limit,
        "median ttft {median_ttft:?} on the reused connection, {:?} on the fresh one\n{report}",
        fresh.ttft
    );
    sim.shutdown().await.expect("sim stops");
}
