//! The server's figures must account for what the client saw: a server count below the
//! client's successes is not a measurement of this load (a killed vLLM, a target missing from
//! the job, an idle second target answering for the job), so every server figure (counts,
//! rates, quantiles, and the KV-cache and GPU gauges read from the same targets) is `null`
//! with a reason naming both counts, never a 0 that reads like a measured collapse.

use crate::results::{Measured, ServerMetrics, WindowMode};

/// Nulls the count-based figures and the latency quantiles of `server` when its count of
/// finished requests cannot account for the `client_successes` the client saw (in a same-server
/// A/B run, both arms': vLLM labels its series by base model, not adapter).
///
/// Exact counts (confirmed windows, `/metrics` deltas) must reach the client's successes;
/// the seed's window is extrapolated by `rate()` over a longer span, so there only a count of
/// 0 against client successes is taken as "nothing of this load was seen".
pub(super) fn require_client_successes(server: &mut ServerMetrics, client_successes: u64) {
    let Some(n) = server.requests_finished.get() else {
        return;
    };
    if client_successes == 0 {
        return;
    }
    let seed = server
        .window
        .as_ref()
        .is_some_and(|w| w.mode == WindowMode::Seed);
    let unaccounted = if seed {
        n == 0.0
    } else {
        n < client_successes as f64
    };
    if !unaccounted {
        return;
    }
    let why = format!(
        "the server counted {n} finished requests, the client saw {client_successes} succeed: the server's figures do not cover this load (a vLLM that went down, a target missing from the job, or another target answering for it)"
    );
    tracing::warn!("{why}");
    no_figures(server, why);
}

/// Nulls every figure of `server` (counts, rates, quantiles, and the gauges read from the same
/// targets over the same window) with the reason `why`, which joins its warnings.
pub(super) fn no_figures(server: &mut ServerMetrics, why: String) {
    for m in [
        &mut server.requests_finished,
        &mut server.throughput_rps,
        &mut server.generation_tokens_per_s,
        &mut server.kv_cache_usage_max,
        &mut server.kv_cache_usage_avg,
        &mut server.gpu_utilization_avg,
        &mut server.gpu_utilization_max,
    ] {
        *m = Measured::missing(why.clone());
    }
    for q in [
        &mut server.e2e_latency_s,
        &mut server.ttft_s,
        &mut server.itl_s,
    ] {
        for m in [&mut q.p50, &mut q.p95, &mut q.p99] {
            *m = Measured::missing(why.clone());
        }
    }
    server.warnings.push(why);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{QueryWindow, ServerSource};

    fn server(finished: f64, mode: Option<WindowMode>) -> ServerMetrics {
        let mut s = crate::fixtures::results()
            .server
            .expect("the fixture has server figures");
        s.requests_finished = Measured::value(finished);
        s.throughput_rps = Measured::value(finished / 10.0);
        s.generation_tokens_per_s = Measured::value(finished * 5.0);
        s.e2e_latency_s.p95 = Measured::value(1.5);
        s.ttft_s.p95 = Measured::value(0.2);
        s.kv_cache_usage_max = Measured::value(0.4);
        s.warnings.clear();
        match mode {
            Some(mode) => {
                s.window = Some(QueryWindow {
                    mode,
                    range_s: 60.0,
                    eval_time_unix: 0.0,
                    eval_time: String::new(),
                    scrape_interval_s: None,
                    scrape_interval_source: None,
                    waited_before_load_s: None,
                    waited_after_load_s: None,
                    samples: Vec::new(),
                })
            }
            None => {
                s.source = ServerSource::VllmMetrics;
                s.window = None;
            }
        }
        s
    }

    #[test]
    fn a_zero_against_client_successes_is_null_with_both_counts() {
        // the defect: a killed vLLM and an idle second target gave 0.0 req/s with no reason
        let mut s = server(0.0, Some(WindowMode::EndAnchored));
        require_client_successes(&mut s, 40);
        for m in [
            &s.requests_finished,
            &s.throughput_rps,
            &s.e2e_latency_s.p95,
            &s.kv_cache_usage_max,
        ] {
            assert_eq!(m.value, None);
            let r = m.reason.as_deref().unwrap();
            assert!(
                r.contains("counted 0 ") && r.contains("saw 40 succeed"),
                "{r}"
            );
        }
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn exact_counts_below_the_client_s_are_null_too() {
        for mode in [Some(WindowMode::EndAnchored), None] {
            let mut s = server(39.0, mode);
            require_client_successes(&mut s, 40);
            assert_eq!(s.throughput_rps.value, None, "{mode:?}");
            assert_eq!(s.ttft_s.p95.value, None, "{mode:?}");
        }
    }

    #[test]
    fn counts_that_cover_the_client_are_kept() {
        for (n, ok) in [(40.0, 40), (45.0, 40), (3.0, 0)] {
            let mut s = server(n, Some(WindowMode::EndAnchored));
            require_client_successes(&mut s, ok);
            assert_eq!(s.requests_finished.value, Some(n));
            assert_eq!(s.e2e_latency_s.p95.value, Some(1.5));
            assert_eq!(s.kv_cache_usage_max.value, Some(0.4));
            assert!(s.warnings.is_empty());
        }
    }

    #[test]
    fn the_seed_s_extrapolated_window_is_nulled_only_at_zero() {
        let mut s = server(38.7, Some(WindowMode::Seed));
        require_client_successes(&mut s, 40);
        assert_eq!(s.requests_finished.value, Some(38.7));
        let mut s = server(0.0, Some(WindowMode::Seed));
        require_client_successes(&mut s, 40);
        assert_eq!(s.throughput_rps.value, None);
    }
}
