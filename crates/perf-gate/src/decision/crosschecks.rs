//! Cross-checks of the results file that make figures less trustworthy without making them
//! impossible: each gives a warning, never a changed verdict (the impossible ones fail closed in
//! [`super::metrics::sanity`]).
//!
//! | warning when | because |
//! | --- | --- |
//! | `load_generator.saturated` | client timings (`client_*`) may be inflated |
//! | `warnings` / `server.warnings` are not empty | copied, prefixed `load-test: ` / `load-test (server metrics): ` |
//! | client `successful_requests` (with `baseline_arm`, both arms') and server `requests_finished` differ by more than 10 % of the larger | the server figures may count other traffic, or miss part of the load |
//! | the client's P95 E2E (with `baseline_arm`, neither arm's) lies inside the server P95's histogram bucket, widened by 10 % each side | the two measured different requests |
//! | fewer than 20 successful requests | a nearest-rank P95 of fewer than 20 samples is the largest sample |
//!
//! The bucket rule: vLLM's server P95 is `histogram_quantile` over its E2E histogram, which
//! interpolates inside the bucket `(lo, hi]` holding the 95th-percentile request, so the exact
//! P95 of the same requests lies in that bucket too. The client's P95 also carries the client's
//! own overhead (HTTP, SSE parsing) and the server's counts every finished request, so the
//! bucket is widened to `[lo x 0.9, hi x 1.1]`. The bounds are vLLM's default `request_latency`
//! buckets ([`E2E_BUCKETS`]); a vLLM started with `--custom-histogram-buckets` can make this
//! warning spurious (it says so). In a same-server A/B run the server's histogram holds both
//! adapters' requests, whose pooled P95 lies between the two arms' P95s: the check passes when
//! that span meets the widened bucket.

use super::checks::num;
use super::metrics::MetricsSource;
use super::validity::client_counts;
use crate::results::LoadTestResults;

/// vLLM's default `vllm:e2e_request_latency_seconds` bucket bounds (`vllm/v1/metrics/buckets.py`).
pub const E2E_BUCKETS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Relative widening of the bucket on each side (client overhead, failed requests in the
/// server's histogram).
pub const BUCKET_SLACK: f64 = 0.10;
/// Largest relative gap between the client's and the server's request counts.
pub const COUNT_TOLERANCE: f64 = 0.10;
/// Fewest successful requests for a P95 that is not simply the slowest request.
pub const MIN_SAMPLES: u64 = 20;

/// The bucket `(lo, hi]` of [`E2E_BUCKETS`] holding `v` (`lo` 0 below the first bound, `hi`
/// infinite above the last).
pub fn e2e_bucket(v: f64) -> (f64, f64) {
    let mut lo = 0.0;
    for hi in E2E_BUCKETS {
        if v <= hi {
            return (lo, hi);
        }
        lo = hi;
    }
    (lo, f64::INFINITY)
}

/// Every warning of the module table, in its order.
pub fn results_warnings(results: &LoadTestResults, source: MetricsSource) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = results.load_generator.as_ref().filter(|g| g.saturated) {
        let cpu = g
            .cpu_percent_of_one_core
            .map_or("unknown".into(), |c| format!("{}%", num(c)));
        let lag = g
            .event_loop_lag_p99_s
            .map_or("unknown".into(), |l| format!("{} ms", num(l * 1000.0)));
        let used = match source {
            MetricsSource::Client => "checks 1-3 read them (--metrics-source client)",
            MetricsSource::Server => "checks 1-3 read the server's figures",
        };
        out.push(format!(
            "the load generator was saturated (CPU {cpu} of one core on {} core(s), event-loop lag P99 {lag}): the client's timings (client_*) may be inflated; {used}",
            g.cores
        ));
    }
    out.extend(results.warnings.iter().map(|w| format!("load-test: {w}")));
    if let Some(s) = &results.server {
        out.extend(
            s.warnings
                .iter()
                .map(|w| format!("load-test (server metrics): {w}")),
        );
    }
    let client = results.client.as_ref();
    let server = results.server.as_ref();
    let finished = server.and_then(|s| s.requests_finished.get());
    if let (Some(c), Some(s)) = (client_counts(results), finished) {
        let ok = c.successful as f64;
        let larger = ok.max(s);
        if larger > 0.0 && (ok - s).abs() > COUNT_TOLERANCE * larger {
            out.push(format!(
                "the client counted {} successful requests{}, the server {} finished ones ({}% apart, more than {}%): the server figures may include other traffic (check --prometheus-job) or miss part of the load (check the query window)",
                c.successful,
                if c.both_arms {
                    " (candidate and baseline adapters)"
                } else {
                    ""
                },
                num(s),
                num((ok - s).abs() / larger * 100.0),
                num(COUNT_TOLERANCE * 100.0)
            ));
        }
    }
    let server_p95 = server.and_then(|s| s.e2e_latency_s.p95.get());
    let client_p95 = client.and_then(|c| c.e2e_s.p95);
    // the server's histogram pools both arms of an A/B run: its P95 lies between theirs
    let baseline_p95 = match &results.baseline_arm {
        Some(b) => b.client.e2e_s.p95,
        None => client_p95,
    };
    if let (Some(s), Some(c), Some(b)) = (server_p95, client_p95, baseline_p95) {
        let (lo, hi) = e2e_bucket(s);
        let (min, max) = (lo * (1.0 - BUCKET_SLACK), hi * (1.0 + BUCKET_SLACK));
        if c.max(b) < min || c.min(b) > max {
            let upper = if hi.is_finite() {
                format!("{} s]", num(max))
            } else {
                "+Inf)".into()
            };
            out.push(format!(
                "the server's P95 E2E latency {} s lies in vLLM's histogram bucket ({}, {}] s, but the client's P95 is {} s, outside [{}, {upper} (the bucket widened by {}%): the two measured different requests (other traffic or another adapter in the server's series?), or vLLM runs with custom histogram buckets",
                num(s),
                num(lo),
                if hi.is_finite() { num(hi) } else { "+Inf".into() },
                num(c),
                num(min),
                num(BUCKET_SLACK * 100.0)
            ));
        }
    }
    if let Some(c) = client.filter(|c| c.successful_requests > 0) {
        let n = c.successful_requests;
        if n < MIN_SAMPLES {
            out.push(format!(
                "only {n} successful requests: the P95 of {n} samples is the {n}-th smallest, i.e. the largest (nearest rank ceil(0.95 x {n}) = {n}), so one slow request decides checks 1 and 2; send at least {MIN_SAMPLES} requests (100 or more for a stable P95)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::results::{GeneratorHealth, Measured};

    fn warnings(r: &LoadTestResults) -> Vec<String> {
        results_warnings(r, MetricsSource::Server)
    }

    #[test]
    fn consistent_results_give_no_warning() {
        // server p95 4.0 s and client 4.2 s share the bucket (2.5, 5]; 100 = 100 requests
        assert_eq!(warnings(&fixtures::results()), Vec::<String>::new());
        let mut r = fixtures::results();
        r.load_generator = Some(GeneratorHealth {
            cores: 2,
            saturated: false,
            ..GeneratorHealth::default()
        });
        assert!(warnings(&r).is_empty());
    }

    #[test]
    fn a_saturated_generator_is_named_with_its_figures() {
        let mut r = fixtures::results();
        r.load_generator = Some(GeneratorHealth {
            cores: 2,
            cpu_seconds: Some(19.0),
            cpu_percent_of_one_core: Some(95.0),
            event_loop_lag_p99_s: Some(0.035),
            event_loop_lag_max_s: Some(0.2),
            saturated: true,
        });
        assert_eq!(
            warnings(&r),
            [
                "the load generator was saturated (CPU 95% of one core on 2 core(s), event-loop lag P99 35 ms): the client's timings (client_*) may be inflated; checks 1-3 read the server's figures"
            ]
        );
        let w = results_warnings(&r, MetricsSource::Client);
        assert!(
            w[0].ends_with("checks 1-3 read them (--metrics-source client)"),
            "{w:?}"
        );
    }

    #[test]
    fn an_ab_run_is_compared_with_both_arms_together() {
        // the server counted 200 (both arms); its P95 4.0 s pools candidate 4.2 s and baseline
        // 5.6 s (outside the bucket (2.5, 5] widened by 10 %, alone)
        let mut r = fixtures::results();
        r.server.as_mut().unwrap().requests_finished = Measured::value(200.0);
        assert_eq!(warnings(&r).len(), 1, "without the baseline arm");
        let mut baseline = r.client.clone().unwrap();
        baseline.e2e_s.p95 = Some(5.6);
        r.baseline_arm = Some(crate::results::BaselineArm {
            adapter: r.adapter.clone().unwrap(),
            client: baseline,
        });
        assert_eq!(warnings(&r), Vec::<String>::new());
        // both arms outside the widened bucket still warn
        r.client.as_mut().unwrap().e2e_s.p95 = Some(5.7);
        assert_eq!(warnings(&r).len(), 1, "{:?}", warnings(&r));
        r.server.as_mut().unwrap().requests_finished = Measured::value(150.0);
        assert!(
            warnings(&r)[0].contains("200 successful requests (candidate and baseline adapters)"),
            "{:?}",
            warnings(&r)
        );
    }

    #[test]
    fn load_test_warnings_are_copied_with_a_prefix() {
        let mut r = fixtures::results();
        r.warnings = vec!["3 responses carried no usage chunk".into()];
        r.server.as_mut().unwrap().warnings = vec!["window shorter than 4 scrapes".into()];
        assert_eq!(
            warnings(&r),
            [
                "load-test: 3 responses carried no usage chunk",
                "load-test (server metrics): window shorter than 4 scrapes"
            ]
        );
    }

    #[test]
    fn request_counts_more_than_10_percent_apart_warn() {
        let mut r = fixtures::results(); // client 100 successful
        r.server.as_mut().unwrap().requests_finished = Measured::value(90.0); // 10 %: fine
        assert!(warnings(&r).is_empty());
        r.server.as_mut().unwrap().requests_finished = Measured::value(89.5);
        assert_eq!(
            warnings(&r),
            [
                "the client counted 100 successful requests, the server 89.5 finished ones (10.5% apart, more than 10%): the server figures may include other traffic (check --prometheus-job) or miss part of the load (check the query window)"
            ]
        );
        r.server.as_mut().unwrap().requests_finished = Measured::value(250.0);
        assert!(warnings(&r)[0].contains("the server 250 finished ones (60% apart"));
        // no server count: nothing to compare
        r.server.as_mut().unwrap().requests_finished = Measured::missing("no data");
        assert!(warnings(&r).is_empty());
    }

    #[test]
    fn buckets_follow_vllm_defaults() {
        assert_eq!(e2e_bucket(0.1), (0.0, 0.3));
        assert_eq!(e2e_bucket(0.3), (0.0, 0.3));
        assert_eq!(e2e_bucket(4.0), (2.5, 5.0));
        assert_eq!(e2e_bucket(5.0), (2.5, 5.0));
        assert_eq!(e2e_bucket(5.2), (5.0, 10.0));
        assert_eq!(e2e_bucket(9000.0), (7680.0, f64::INFINITY));
    }

    #[test]
    fn a_client_p95_outside_the_server_bucket_warns() {
        let mut r = fixtures::results(); // server p95 4.0: bucket (2.5, 5], widened [2.25, 5.5]
        for ok in [2.25, 5.5, 3.0] {
            r.client.as_mut().unwrap().e2e_s.p95 = Some(ok);
            assert!(warnings(&r).is_empty(), "{ok}");
        }
        r.client.as_mut().unwrap().e2e_s.p95 = Some(5.6);
        assert_eq!(
            warnings(&r),
            [
                "the server's P95 E2E latency 4 s lies in vLLM's histogram bucket (2.5, 5] s, but the client's P95 is 5.6 s, outside [2.25, 5.5 s] (the bucket widened by 10%): the two measured different requests (other traffic or another adapter in the server's series?), or vLLM runs with custom histogram buckets"
            ]
        );
        r.client.as_mut().unwrap().e2e_s.p95 = Some(2.2);
        assert_eq!(warnings(&r).len(), 1);
        // above the top bound: no upper limit
        let mut r = fixtures::results();
        r.server.as_mut().unwrap().e2e_latency_s.p95 = Measured::value(8000.0);
        r.client.as_mut().unwrap().e2e_s.p95 = Some(1.0);
        assert!(
            warnings(&r)[0].contains("bucket (7680, +Inf] s"),
            "{:?}",
            warnings(&r)
        );
        r.client.as_mut().unwrap().e2e_s.p95 = Some(1e6);
        assert!(warnings(&r).is_empty());
    }

    #[test]
    fn fewer_than_20_successes_warn() {
        let mut r = fixtures::results();
        let set = |r: &mut LoadTestResults, n: u64| {
            let c = r.client.as_mut().unwrap();
            (c.total_requests, c.successful_requests) = (n, n);
            r.server.as_mut().unwrap().requests_finished = Measured::value(n as f64);
        };
        set(&mut r, 20);
        assert!(warnings(&r).is_empty());
        set(&mut r, 19);
        assert_eq!(
            warnings(&r),
            [
                "only 19 successful requests: the P95 of 19 samples is the 19-th smallest, i.e. the largest (nearest rank ceil(0.95 x 19) = 19), so one slow request decides checks 1 and 2; send at least 20 requests (100 or more for a stable P95)"
            ]
        );
        // none at all: the checks fail closed on the missing figures instead
        set(&mut r, 0);
        assert!(warnings(&r).is_empty());
    }
}
