//! When a server figure cannot tell which side of its limit it is on: vLLM's P95 is
//! `histogram_quantile` over fixed buckets, interpolated linearly inside the bucket `(lo, hi]`
//! holding the 95th-percentile request. A limit that is not a bucket bound (the seed's 2 s TTFT
//! inside `(1.0, 2.5]`, 8 s E2E inside `(5, 10]`) splits a bucket, and a P95 in that same bucket
//! is on one side of the limit or the other by interpolation, not by measurement. The decision
//! says so ([`bucket_warnings`]); the remedies are in docs/deploy.md (custom buckets, the
//! client's exact figures).

use super::checks::num;
use super::crosschecks::E2E_BUCKETS;
use super::metrics::{MetricMap, MetricsSource, names};
use super::thresholds::Thresholds;

/// vLLM's default `vllm:time_to_first_token_seconds` bucket bounds (`vllm/v1/metrics/buckets.py`).
pub const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// The bucket `(lo, hi]` of `bounds` holding `v` (`hi` infinite above the last bound).
fn bucket(bounds: &[f64], v: f64) -> (f64, f64) {
    let mut lo = 0.0;
    for &hi in bounds {
        if v <= hi {
            return (lo, hi);
        }
        lo = hi;
    }
    (lo, f64::INFINITY)
}

/// One line per server check whose P95 shares a default vLLM histogram bucket with its limit
/// (the limit not a bound of it): the check's outcome there rests on interpolation. Nothing
/// when the checks read the client's figures.
pub fn bucket_warnings(
    metrics: &MetricMap,
    thresholds: &Thresholds,
    source: MetricsSource,
) -> Vec<String> {
    if source == MetricsSource::Client {
        return Vec::new();
    }
    let cases = [
        (
            names::P95_LATENCY,
            "P95 E2E latency",
            thresholds.max_p95_latency_s,
            "--max-p95-latency",
            &E2E_BUCKETS[..],
        ),
        (
            names::P95_TTFT,
            "P95 TTFT",
            thresholds.max_p95_ttft_s,
            "--max-p95-ttft",
            &TTFT_BUCKETS[..],
        ),
    ];
    let mut out = Vec::new();
    for (key, what, limit, flag, bounds) in cases {
        let Some(v) = metrics.get(key).and_then(|m| m.get()) else {
            continue;
        };
        let (lo, hi) = bucket(bounds, limit);
        if bounds.contains(&limit) || !(v > lo && v <= hi) {
            continue;
        }
        out.push(format!(
            "the server's {what} {} s and the limit {} s ({flag}) lie in the same vLLM histogram bucket ({}, {}] s: the P95 is interpolated inside it, so which side of the limit it is on is not measured (judge the client's exact figures with --metrics-source client, or give vLLM --custom-histogram-buckets with a bound at {} s; see docs/deploy.md)",
            num(v),
            num(limit),
            num(lo),
            num(hi),
            num(limit)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Measured;

    fn metrics(p95_latency: f64, p95_ttft: f64) -> MetricMap {
        [
            (names::P95_LATENCY.to_string(), Measured::value(p95_latency)),
            (names::P95_TTFT.to_string(), Measured::value(p95_ttft)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_p95_in_the_limits_bucket_is_named_and_one_elsewhere_is_not() {
        let t = Thresholds::SEED;
        // 1.8 s TTFT and the 2 s limit share (1.0, 2.5]; 6 s E2E and 8 s share (5, 10]
        let w = bucket_warnings(&metrics(6.0, 1.8), &t, MetricsSource::Server);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("P95 E2E latency 6 s and the limit 8 s") && w[0].contains("(5, 10]"));
        assert!(w[1].contains("P95 TTFT 1.8 s and the limit 2 s") && w[1].contains("(1, 2.5]"));
        // 0.9 s TTFT is in (0.75, 1.0], 4 s E2E in (2.5, 5]: measured below the limits
        assert!(bucket_warnings(&metrics(4.0, 0.9), &t, MetricsSource::Server).is_empty());
        // the client's figures are exact
        assert!(bucket_warnings(&metrics(6.0, 1.8), &t, MetricsSource::Client).is_empty());
        // a limit on a bucket bound splits nothing
        let on_bounds = Thresholds {
            max_p95_latency_s: 10.0,
            max_p95_ttft_s: 2.5,
            ..t
        };
        assert!(bucket_warnings(&metrics(6.0, 1.8), &on_bounds, MetricsSource::Server).is_empty());
    }
}
