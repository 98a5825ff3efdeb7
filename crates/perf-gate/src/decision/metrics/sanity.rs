//! Plausibility checks on the figures before they are judged: the gate fails closed on values
//! that cannot be true, as it does on missing ones.
//!
//! | metric | must be |
//! | --- | --- |
//! | latency and TTFT quantiles (`*_latency_s`, `*_ttft_s`) | `> 0`: a request takes time, so a quantile of exactly 0 s is an empty or broken histogram, not a fast server |
//! | `wall_clock_duration_s` | `>= 0` |
//! | `throughput_rps`, `client_throughput_rps` | `>= 0`, within 5 % of the count it is derived from divided by the load's duration (the seed window's rate is not a count over the load), and never more requests over the load than the client sent (both arms, in a same-server A/B run: vLLM's series are labelled by base model) |
//! | `client_success_rate` | in `[0, 1]`, equal (to 1e-9) to `successful_requests / total_requests`, and `total_requests > 0` |
//! | `kv_cache_usage` | in `[0, 1]` |
//! | `gpu_utilization` | in `[0, 100]` (percent) |
//!
//! A value that breaks its rule becomes "no data" with the reason, so the check that reads it
//! fails. The range rules also apply to a baseline's figures ([`check_ranges`]); the
//! cross-checks need the results document ([`check_candidate`]).

use super::MetricMap;
use super::names::*;
use crate::results::{LoadTestResults, Measured};

/// Largest gap allowed between `success_rate` and `successful / total`.
const RATE_TOLERANCE: f64 = 1e-9;
/// Largest relative gap allowed between a throughput and `count / load duration` (the server's
/// window is timed by the wall clock, the client's by a monotonic clock).
const THROUGHPUT_TOLERANCE: f64 = 0.05;

/// The range a metric must lie in, with its wording.
struct Range {
    lo: f64,
    hi: f64,
    /// `lo` itself is outside the range.
    lo_open: bool,
    rule: &'static str,
}

impl Range {
    fn holds(&self, v: f64) -> bool {
        let above = if self.lo_open {
            v > self.lo
        } else {
            v >= self.lo
        };
        above && v <= self.hi
    }
}

fn range(key: &str) -> Option<Range> {
    let base = key.strip_prefix(CLIENT_PREFIX).unwrap_or(key);
    let r = |lo, hi, lo_open, rule| {
        Some(Range {
            lo,
            hi,
            lo_open,
            rule,
        })
    };
    match base {
        P50_LATENCY | P95_LATENCY | P99_LATENCY | P50_TTFT | P95_TTFT | P99_TTFT => r(
            0.0,
            f64::INFINITY,
            true,
            "a request takes time: a quantile of 0 s or less is an empty or broken histogram",
        ),
        WALL_CLOCK => r(0.0, f64::INFINITY, false, "a duration cannot be negative"),
        THROUGHPUT => r(0.0, f64::INFINITY, false, "a rate cannot be negative"),
        // `client_success_rate` loses its prefix above
        "success_rate" | KV_CACHE_USAGE => r(0.0, 1.0, false, "a fraction lies in [0, 1]"),
        GPU_UTILIZATION => r(0.0, 100.0, false, "a percentage lies in [0, 100]"),
        _ => None,
    }
}

/// A figure in a reason: exact, in scientific notation when very large or small.
fn fig(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn void(metrics: &mut MetricMap, key: &str, why: String) {
    if metrics.get(key).and_then(Measured::get).is_some() {
        metrics.insert(
            key.to_string(),
            Measured::missing(format!("{why}: the figure cannot be trusted")),
        );
    }
}

/// Replaces every value outside its metric's range (see the module table) by "no data".
pub fn check_ranges(metrics: &mut MetricMap) {
    let bad: Vec<(String, String)> = metrics
        .iter()
        .filter_map(|(key, m)| {
            let v = m.get()?;
            let r = range(key)?;
            (!r.holds(v)).then(|| {
                (
                    key.clone(),
                    format!("{key} = {} is impossible ({})", fig(v), r.rule),
                )
            })
        })
        .collect();
    for (key, why) in bad {
        void(metrics, &key, why);
    }
}

/// `value` within `tolerance` (relative) of `expected`.
fn close(value: f64, expected: f64, tolerance: f64) -> bool {
    (value - expected).abs() <= 1e-9 + tolerance * expected.abs()
}

/// [`check_ranges`], then the cross-checks against the counts in `results`: the client's success
/// rate against its counts, each throughput against its count over the load's duration.
pub fn check_candidate(metrics: &mut MetricMap, results: &LoadTestResults) {
    check_ranges(metrics);
    let duration = results
        .timing
        .as_ref()
        .map(|t| t.load_duration_s)
        .filter(|d| d.is_finite() && *d > 0.0);
    let client_rps = format!("{CLIENT_PREFIX}{THROUGHPUT}");
    if let Some(c) = &results.client {
        let (ok, total) = (c.successful_requests, c.total_requests);
        if total == 0 {
            let why = "client total_requests is 0: no request was measured".to_string();
            void(metrics, CLIENT_SUCCESS_RATE, why.clone());
            void(metrics, &client_rps, why);
        } else if ok > total {
            let why = format!("client successful_requests {ok} exceeds total_requests {total}");
            void(metrics, CLIENT_SUCCESS_RATE, why.clone());
            void(metrics, &client_rps, why);
        } else {
            let expected = ok as f64 / total as f64;
            if let Some(rate) = metrics.get(CLIENT_SUCCESS_RATE).and_then(Measured::get)
                && (rate - expected).abs() > RATE_TOLERANCE
            {
                void(
                    metrics,
                    CLIENT_SUCCESS_RATE,
                    format!(
                        "client success_rate {} disagrees with successful_requests / total_requests = {ok}/{total} = {}",
                        fig(rate),
                        fig(expected)
                    ),
                );
            }
            if let (Some(d), Some(rps)) =
                (duration, metrics.get(&client_rps).and_then(Measured::get))
            {
                let expected = ok as f64 / d;
                if !close(rps, expected, THROUGHPUT_TOLERANCE) {
                    void(
                        metrics,
                        &client_rps,
                        format!(
                            "client requests_per_s {} disagrees with successful_requests / load_duration_s = {ok}/{} = {}",
                            fig(rps),
                            fig(d),
                            fig(expected)
                        ),
                    );
                }
            }
        }
    }
    let finished = results
        .server
        .as_ref()
        .and_then(|s| s.requests_finished.get());
    let seed = results
        .server
        .as_ref()
        .and_then(|s| s.window.as_ref())
        .is_some_and(|w| w.mode == crate::results::WindowMode::Seed);
    let rps = metrics.get(THROUGHPUT).and_then(Measured::get);
    // Whatever the window: no server can have finished more of this run's requests than the
    // client sent (a hand-edited 1e9 req/s, or a seed-mode rate, are caught here).
    let counts = crate::decision::validity::client_counts(results);
    if let (Some(d), Some(rps), Some(c)) = (duration, rps, counts) {
        let most = c.total as f64 * (1.0 + THROUGHPUT_TOLERANCE) + 1.0;
        if rps * d > most {
            void(
                metrics,
                THROUGHPUT,
                format!(
                    "server throughput_rps {} over the {}s load is {} requests, more than the {} the client sent",
                    fig(rps),
                    fig(d),
                    fig(rps * d),
                    c.total
                ),
            );
        }
    }
    let rps = metrics.get(THROUGHPUT).and_then(Measured::get);
    if let (false, Some(d), Some(n), Some(rps)) = (seed, duration, finished, rps) {
        let expected = n / d;
        if !close(rps, expected, THROUGHPUT_TOLERANCE) {
            void(
                metrics,
                THROUGHPUT,
                format!(
                    "server throughput_rps {} disagrees with requests_finished / load_duration_s = {}/{} = {}",
                    fig(rps),
                    fig(n),
                    fig(d),
                    fig(expected)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::metrics::candidate_metrics;
    use crate::fixtures;

    fn reason(m: &MetricMap, key: &str) -> String {
        let entry = &m[key];
        assert_eq!(entry.get(), None, "{key} should be no data");
        entry.reason.clone().unwrap()
    }

    #[test]
    fn consistent_results_are_untouched() {
        let m = candidate_metrics(&fixtures::results());
        for k in [
            P95_LATENCY,
            THROUGHPUT,
            CLIENT_SUCCESS_RATE,
            "client_throughput_rps",
        ] {
            assert!(m[k].get().is_some(), "{k}: {:?}", m[k]);
        }
    }

    #[test]
    fn impossible_values_become_no_data() {
        let mut r = fixtures::results();
        let s = r.server.as_mut().unwrap();
        s.e2e_latency_s.p95 = Measured::value(-1.0);
        s.kv_cache_usage_max = Measured::value(1.5);
        s.gpu_utilization_avg = Measured::value(101.0);
        r.client.as_mut().unwrap().ttft_adjusted_s.p95 =
            Some(crate::results::Latency::Finite(-0.5));
        let m = candidate_metrics(&r);
        assert!(
            reason(&m, P95_LATENCY)
                .contains("p95_latency_s = -1 is impossible (a request takes time"),
            "{m:?}"
        );
        assert!(reason(&m, "client_p95_ttft_s").contains("a request takes time"));
        assert!(reason(&m, KV_CACHE_USAGE).contains("[0, 1]"));
        assert!(reason(&m, GPU_UTILIZATION).contains("[0, 100]"));
        // the neighbours keep their values
        assert_eq!(m[P99_LATENCY].get(), Some(4.4));
    }

    #[test]
    fn a_quantile_of_exactly_zero_seconds_is_not_a_fast_server() {
        let mut r = fixtures::results();
        r.server.as_mut().unwrap().e2e_latency_s.p95 = Measured::value(0.0);
        r.server.as_mut().unwrap().ttft_s.p95 = Measured::value(0.0);
        let m = candidate_metrics(&r);
        for key in [P95_LATENCY, P95_TTFT] {
            assert!(
                reason(&m, key).contains(" = 0 is impossible (a request takes time"),
                "{m:?}"
            );
        }
        // a tiny positive quantile is a measurement
        r.server.as_mut().unwrap().ttft_s.p95 = Measured::value(1e-4);
        assert_eq!(candidate_metrics(&r)[P95_TTFT].get(), Some(1e-4));
    }

    #[test]
    fn a_success_rate_must_match_its_counts() {
        // the reviewer's case: 1.0 with no successful request
        let mut r = fixtures::results();
        let c = r.client.as_mut().unwrap();
        c.successful_requests = 0;
        c.failed_requests = 100;
        let m = candidate_metrics(&r);
        assert!(
            reason(&m, CLIENT_SUCCESS_RATE).contains(
                "success_rate 1 disagrees with successful_requests / total_requests = 0/100 = 0"
            ),
            "{m:?}"
        );
        // out of range
        let mut r = fixtures::results();
        r.client.as_mut().unwrap().success_rate = Some(1.2);
        assert!(reason(&candidate_metrics(&r), CLIENT_SUCCESS_RATE).contains("[0, 1]"));
        // nothing measured
        let mut r = fixtures::results();
        let c = r.client.as_mut().unwrap();
        (c.total_requests, c.successful_requests) = (0, 0);
        let m = candidate_metrics(&r);
        assert!(reason(&m, CLIENT_SUCCESS_RATE).contains("total_requests is 0"));
        assert!(reason(&m, "client_throughput_rps").contains("total_requests is 0"));
        // more successes than requests
        let mut r = fixtures::results();
        r.client.as_mut().unwrap().successful_requests = 101;
        assert!(reason(&candidate_metrics(&r), CLIENT_SUCCESS_RATE).contains("exceeds"));
        // within 1e-9 is the same figure
        let mut r = fixtures::results();
        let c = r.client.as_mut().unwrap();
        (c.total_requests, c.successful_requests, c.success_rate) = (3, 2, Some(0.6666666667));
        c.requests_per_s = Some(0.1);
        assert_eq!(
            candidate_metrics(&r)[CLIENT_SUCCESS_RATE].get(),
            Some(0.6666666667)
        );
    }

    #[test]
    fn a_throughput_must_match_its_count_over_the_duration() {
        let mut r = fixtures::results(); // 100 finished in 20 s: 5 req/s
        r.server.as_mut().unwrap().throughput_rps = Measured::value(1e300);
        r.client.as_mut().unwrap().requests_per_s = Some(-3.0);
        let m = candidate_metrics(&r);
        assert!(
            reason(&m, THROUGHPUT).contains(
                "throughput_rps 1e300 over the 20s load is 2e301 requests, more than the 100 the client sent"
            ),
            "{m:?}"
        );
        // within the client's count but not the server's: the count decides
        let mut r = fixtures::results();
        r.server.as_mut().unwrap().throughput_rps = Measured::value(4.0);
        assert!(
            reason(&candidate_metrics(&r), THROUGHPUT)
                .contains("disagrees with requests_finished / load_duration_s = 100/20 = 5")
        );
        // no count to check against: the client's requests still bound it
        let mut r = fixtures::results();
        let s = r.server.as_mut().unwrap();
        s.requests_finished = Measured::missing("lost");
        s.throughput_rps = Measured::value(1e9);
        assert!(reason(&candidate_metrics(&r), THROUGHPUT).contains("more than the 100"));
        assert!(reason(&m, "client_throughput_rps").contains("cannot be negative"));
        // a few percent of clock difference is fine
        let mut r = fixtures::results();
        r.server.as_mut().unwrap().throughput_rps = Measured::value(5.1);
        assert_eq!(candidate_metrics(&r)[THROUGHPUT].get(), Some(5.1));
    }

    #[test]
    fn an_ab_run_s_server_throughput_counts_both_arms() {
        // 200 requests (100 per arm) finished in 20 s: 10 req/s is the server's, not too many
        let mut r = fixtures::results();
        let s = r.server.as_mut().unwrap();
        s.requests_finished = Measured::value(200.0);
        s.throughput_rps = Measured::value(10.0);
        assert!(reason(&candidate_metrics(&r), THROUGHPUT).contains("more than the 100"));
        r.baseline_arm = Some(crate::results::BaselineArm {
            adapter: r.adapter.clone().unwrap(),
            client: r.client.clone().unwrap(),
        });
        assert_eq!(candidate_metrics(&r)[THROUGHPUT].get(), Some(10.0));
    }

    #[test]
    fn baseline_figures_get_the_range_rules() {
        let mut m = MetricMap::new();
        m.insert(P95_LATENCY.into(), Measured::value(-2.0));
        m.insert(CLIENT_SUCCESS_RATE.into(), Measured::value(1.0));
        m.insert("unknown_metric".into(), Measured::value(-5.0));
        check_ranges(&mut m);
        assert!(reason(&m, P95_LATENCY).contains("impossible"));
        assert_eq!(m[CLIENT_SUCCESS_RATE].get(), Some(1.0));
        assert_eq!(m["unknown_metric"].get(), Some(-5.0));
    }
}
