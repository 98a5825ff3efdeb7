//! `histogram_quantile` over classic (bucketed) histograms, computed exactly as Prometheus does
//! (`promql/quantile.go`, `bucketQuantile`), so the direct `/metrics` mode and the PromQL mode
//! agree to the last bit on the same bucket counts.

/// The φ-quantile of a classic histogram, as PromQL's `histogram_quantile(q, ...)` computes it.
///
/// `buckets` are `(le, cumulative count)` pairs in any order; pairs with the same `le` are summed
/// (as `sum by (le)` would), so the buckets of several label sets can be passed together.
/// Prometheus's rules, in order:
/// - `q` NaN gives `None`; `q < 0` gives `Some(-inf)`; `q > 1` gives `Some(+inf)`;
/// - the highest bucket must be `+Inf`, and at least two buckets must remain after merging equal
///   bounds, else `None` (Prometheus: NaN);
/// - counts are made monotonic (each bucket at least the one below it), after treating relative
///   differences up to 1e-12 as float noise;
/// - total = the `+Inf` bucket's count; a total of 0 gives `None` (no observations);
/// - rank = q × total; the quantile lies in the first bucket whose count is ≥ rank and is
///   interpolated linearly inside it; the lowest bucket starts at 0 when its bound is positive
///   (else its bound is returned);
/// - if the rank falls in the `+Inf` bucket, the highest *finite* bound is returned: the true
///   quantile is then at least that value.
///
/// `None` always means "no answer" (Prometheus prints `NaN`); a finite value is never invented.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    bucket_quantile(q, buckets).map(|e| e.value)
}

/// A quantile estimate and whether it fell in the `+Inf` bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuantileEstimate {
    /// The value Prometheus returns.
    pub value: f64,
    /// The rank fell in the `+Inf` bucket: `value` is the highest finite bound, a lower bound of
    /// the true quantile.
    pub above_highest_finite: bool,
}

/// [`histogram_quantile`] with the `+Inf`-bucket case made visible.
pub(crate) fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<QuantileEstimate> {
    let plain = |value: f64| QuantileEstimate {
        value,
        above_highest_finite: false,
    };
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(plain(f64::NEG_INFINITY));
    }
    if q > 1.0 {
        return Some(plain(f64::INFINITY));
    }
    // Prometheus ignores series whose `le` does not parse; a NaN bound cannot be ordered.
    let mut b: Vec<(f64, f64)> = buckets
        .iter()
        .copied()
        .filter(|(le, _)| !le.is_nan())
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    match b.last() {
        Some((le, _)) if *le == f64::INFINITY => {}
        _ => return None,
    }
    let mut b = coalesce(b);
    correct_precision_errors(&mut b, 1e-12);
    ensure_monotonic(&mut b);
    if b.len() < 2 {
        return None;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return None;
    }
    let mut rank = q * observations;
    // `sort.Search(len-1, count >= rank)`: counts are monotonic, so the first match is the answer.
    let idx = (0..b.len() - 1)
        .find(|&i| b[i].1 >= rank)
        .unwrap_or(b.len() - 1);
    if idx == b.len() - 1 {
        return Some(QuantileEstimate {
            value: b[b.len() - 2].0,
            above_highest_finite: true,
        });
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return Some(plain(b[0].0));
    }
    let bucket_end = b[idx].0;
    let mut count = b[idx].1;
    let mut bucket_start = 0.0;
    if idx > 0 {
        bucket_start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    let value = bucket_start + (bucket_end - bucket_start) * (rank / count);
    // 0/0 (q = 0 over an empty lowest bucket) is NaN in Prometheus too: no answer.
    (!value.is_nan()).then(|| plain(value))
}

/// Merges buckets with the same upper bound (input sorted), summing their counts.
fn coalesce(sorted: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(sorted.len());
    for (le, count) in sorted {
        match out.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => out.push((le, count)),
        }
    }
    out
}

/// Prometheus's `correctPrecisionErrors`: a relative difference up to `tolerance` between
/// neighbouring counts is float noise, so the higher bucket takes the lower one's count.
fn correct_precision_errors(b: &mut [(f64, f64)], tolerance: f64) {
    let Some(first) = b.first() else { return };
    let mut prev = first.1;
    for bucket in b.iter_mut().skip(1) {
        let curr = bucket.1;
        let delta = (curr - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / curr <= tolerance {
            bucket.1 = prev;
        } else {
            prev = curr;
        }
    }
}

/// Prometheus's `ensureMonotonic`: no bucket may count less than one below it.
fn ensure_monotonic(b: &mut [(f64, f64)]) {
    let Some(first) = b.first() else { return };
    let mut max = first.1;
    for bucket in b.iter_mut().skip(1) {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn interpolates_inside_the_bucket_holding_the_rank() {
        let b = [(1.0, 10.0), (2.0, 20.0), (INF, 20.0)];
        // q=0.75: total 20, rank 15; first count >= 15 is le=2 (20).
        // start 1, count 20-10 = 10, rank 15-10 = 5 -> 1 + (2-1) * 5/10 = 1.5
        assert!(close(histogram_quantile(0.75, &b), 1.5));
        // q=0.5: rank 10; le=1 already has 10 -> first bucket, from 0: 0 + 1 * 10/10 = 1.0
        assert!(close(histogram_quantile(0.5, &b), 1.0));
    }

    #[test]
    fn first_bucket_interpolates_from_zero() {
        let b = [(1.0, 10.0), (2.0, 20.0), (INF, 20.0)];
        // q=0.25: rank 5 in le=1 (10): bucketStart = 0 -> 0 + 1 * 5/10 = 0.5
        assert!(close(histogram_quantile(0.25, &b), 0.5));
        // A non-positive lowest bound is returned as is: rank 3 in le=-1 (5) -> -1.
        let neg = [(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)];
        assert!(close(histogram_quantile(0.3, &neg), -1.0));
    }

    #[test]
    fn rank_in_the_inf_bucket_returns_the_highest_finite_bound() {
        let b = [(1.0, 10.0), (2.0, 20.0), (INF, 30.0)];
        // q=0.9: rank 27; no finite bucket reaches 27 -> upper bound of the 2nd highest = 2.
        assert!(close(histogram_quantile(0.9, &b), 2.0));
        let e = bucket_quantile(0.9, &b).unwrap();
        assert!(e.above_highest_finite);
        // q=0.6: rank 18 lies in le=2 -> 1 + 1 * 8/10 = 1.8, not in the +Inf bucket.
        let e = bucket_quantile(0.6, &b).unwrap();
        assert!(!e.above_highest_finite);
        assert!((e.value - 1.8).abs() < 1e-12);
    }

    #[test]
    fn no_answer_cases_are_none_never_zero() {
        // Empty histogram: total 0.
        assert_eq!(histogram_quantile(0.95, &[(1.0, 0.0), (INF, 0.0)]), None);
        // No buckets at all.
        assert_eq!(histogram_quantile(0.95, &[]), None);
        // Highest bucket is not +Inf.
        assert_eq!(histogram_quantile(0.5, &[(1.0, 1.0), (2.0, 2.0)]), None);
        // Only the +Inf bucket: fewer than 2 buckets.
        assert_eq!(histogram_quantile(0.5, &[(INF, 5.0)]), None);
        // q NaN.
        assert_eq!(
            histogram_quantile(f64::NAN, &[(1.0, 1.0), (INF, 1.0)]),
            None
        );
        // q = 0 with an empty lowest bucket: 0 * (0/0) -> NaN in Prometheus.
        assert_eq!(
            histogram_quantile(0.0, &[(1.0, 0.0), (2.0, 3.0), (INF, 3.0)]),
            None
        );
    }

    #[test]
    fn out_of_range_q_gives_infinities() {
        let b = [(1.0, 1.0), (INF, 1.0)];
        assert_eq!(histogram_quantile(-0.1, &b), Some(f64::NEG_INFINITY));
        assert_eq!(histogram_quantile(1.1, &b), Some(f64::INFINITY));
    }

    #[test]
    fn sorts_and_merges_equal_bounds_like_sum_by_le() {
        // Two label sets, shuffled: le=1 -> 3+2 = 5, le=2 -> 5+5 = 10, +Inf -> 8+2 = 10.
        let b = [
            (2.0, 5.0),
            (1.0, 3.0),
            (INF, 8.0),
            (1.0, 2.0),
            (2.0, 5.0),
            (INF, 2.0),
        ];
        // q=0.8: rank 8 in le=2: 1 + 1 * (8-5)/(10-5) = 1.6
        assert!(close(histogram_quantile(0.8, &b), 1.6));
    }

    #[test]
    fn forces_monotonic_counts() {
        // le=2 (8) < le=1 (10) -> raised to 10. q=0.8: rank 12 in le=3 (15):
        // start 2, count 15-10 = 5, rank 12-10 = 2 -> 2 + 1 * 2/5 = 2.4
        let b = [(1.0, 10.0), (2.0, 8.0), (3.0, 15.0), (INF, 15.0)];
        assert!(close(histogram_quantile(0.8, &b), 2.4));
    }

    /// vLLM's request-latency buckets from the real capture `metrics_after_load.txt` (168 requests).
    const E2E_AFTER_LOAD: [(f64, f64); 22] = [
        (0.3, 6.0),
        (0.5, 6.0),
        (0.8, 84.0),
        (1.0, 106.0),
        (1.5, 129.0),
        (2.0, 137.0),
        (2.5, 137.0),
        (5.0, 168.0),
        (10.0, 168.0),
        (15.0, 168.0),
        (20.0, 168.0),
        (30.0, 168.0),
        (40.0, 168.0),
        (50.0, 168.0),
        (60.0, 168.0),
        (120.0, 168.0),
        (240.0, 168.0),
        (480.0, 168.0),
        (960.0, 168.0),
        (1920.0, 168.0),
        (7680.0, 168.0),
        (INF, 168.0),
    ];

    #[test]
    fn vllm_e2e_buckets_from_the_real_capture() {
        // q=0.5: rank 84, first count >= 84 is le=0.8 (84): 0.5 + 0.3 * (84-6)/(84-6) = 0.8
        assert!(close(histogram_quantile(0.5, &E2E_AFTER_LOAD), 0.8));
        // q=0.95: rank 159.6 in le=5 (168): 2.5 + 2.5 * (159.6-137)/(168-137)
        //   = 2.5 + 2.5 * 22.6/31 = 4.32258064516129
        assert!(close(
            histogram_quantile(0.95, &E2E_AFTER_LOAD),
            4.32258064516129
        ));
        // q=0.99: rank 166.32: 2.5 + 2.5 * 29.32/31 = 4.864516129032258
        assert!(close(
            histogram_quantile(0.99, &E2E_AFTER_LOAD),
            4.864516129032258
        ));
    }

    #[test]
    fn vllm_ttft_buckets_from_the_real_capture() {
        let b = [
            (0.001, 0.0),
            (0.005, 0.0),
            (0.01, 0.0),
            (0.02, 6.0),
            (0.04, 100.0),
            (0.06, 128.0),
            (0.08, 139.0),
            (0.1, 140.0),
            (0.25, 159.0),
            (0.5, 160.0),
            (0.75, 160.0),
            (1.0, 167.0),
            (2.5, 168.0),
            (5.0, 168.0),
            (2560.0, 168.0),
            (INF, 168.0),
        ];
        // q=0.5: rank 84 in le=0.04 (100): 0.02 + 0.02 * (84-6)/(100-6) = 0.02 + 0.02*78/94
        assert!(close(
            histogram_quantile(0.5, &b),
            0.02 + 0.02 * 78.0 / 94.0
        ));
        // q=0.95: rank 159.6 in le=0.5 (160): 0.25 + 0.25 * 0.6/1 = 0.4
        assert!(close(histogram_quantile(0.95, &b), 0.4));
        // q=0.99: rank 166.32 in le=1.0 (167): 0.75 + 0.25 * 6.32/7 = 0.9757142857142858
        assert!(close(histogram_quantile(0.99, &b), 0.9757142857142858));
    }
}
