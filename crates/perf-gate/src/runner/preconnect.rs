//! Opening the connection pool before the load, so no measured request pays for a TCP (and in
//! production a TLS) handshake.
//!
//! Without it, the first wave of a closed loop (every slot at once) opens one connection per
//! request inside the measured time: at 512 streams that wave's TTFT p50 was 91 ms against
//! ~20 ms after it, and it made the whole run's TTFT p99. `GET /health` is sent on `n`
//! connections at once (none is idle, so each opens its own), and they stay in the pool (sized
//! to the concurrency) for the load. The handshakes are measured here, never inside a TTFT.

use std::time::Instant;

use crate::client::VllmClient;
use crate::results::PreconnectInfo;
use crate::stats::Samples;

/// Opens `n` connections to vLLM at once and reports how long each took (connect plus one
/// `/health` round trip). A failure is counted, not fatal: the load opens what is missing.
pub async fn preconnect(client: &VllmClient, n: u32) -> PreconnectInfo {
    let started = Instant::now();
    let attempts = (0..n).map(|_| async {
        let t = Instant::now();
        client
            .open_connection()
            .await
            .map(|()| t.elapsed().as_secs_f64())
    });
    let outcomes = futures::future::join_all(attempts).await;
    let mut times = Samples::new();
    let mut failed = 0u64;
    for o in outcomes {
        match o {
            Ok(secs) => times.push(secs),
            Err(e) => {
                failed += 1;
                tracing::debug!(error = %e, "a pre-opened connection failed");
            }
        }
    }
    let info = PreconnectInfo {
        connections: u64::from(n),
        failed,
        connect_s: times.distribution(),
        total_s: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        connections = n,
        failed,
        p50_ms = format!("{:.1}", info.connect_s.p50.unwrap_or(0.0) * 1e3),
        "connection pool opened before the load"
    );
    info
}
