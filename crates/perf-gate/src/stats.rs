//! Client-side percentiles.
//!
//! **Rank rule** (used everywhere in this project): exact *nearest-rank* over all samples. For `n`
//! sorted samples and quantile `q` in (0, 1], the percentile is the sample at 1-based rank
//! `ceil(q * n)` (rank 1 for `q * n <= 1`). No interpolation: every reported percentile is a latency
//! that some request really had. `q * n` is computed in integer parts-per-million, so
//! `0.95 * 20` is exactly rank 19, not 20 through float error.
//!
//! Samples are kept compactly as `f32` seconds (4 bytes each; ~0.1 µs resolution at 1 s, far below
//! network jitter). Error-adjusted percentiles treat each failure as `+Inf`.
//!
//! What a run keeps: [`SampleStore`] (per request, exact: finish time, TTFT, E2E; 12 bytes) and
//! [`LatencyHistogram`] for the figures that grow with every token (inter-token gaps, TPOT,
//! client queueing): constant memory, percentiles within [`hist::RELATIVE_ERROR`].

use crate::results::{AdjustedPercentiles, Distribution, Latency};

pub mod hist;
pub mod select;
pub mod store;

pub use hist::LatencyHistogram;
pub use store::{RequestSample, SampleStore};

/// 1-based nearest rank of quantile `q` among `n` samples (`n > 0`).
pub fn nearest_rank(q: f64, n: usize) -> usize {
    let ppm = (q.clamp(0.0, 1.0) * 1_000_000.0).round() as u128;
    let n128 = n as u128;
    let rank = (ppm * n128).div_ceil(1_000_000);
    (rank as usize).clamp(1, n.max(1))
}

/// Exact nearest-rank percentile of `sorted` (ascending); `None` if empty.
pub fn percentile_sorted(sorted: &[f32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(f64::from(sorted[nearest_rank(q, sorted.len()) - 1]))
}

/// A growing set of latency samples (seconds).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f32>,
    sum: f64,
}

impl Samples {
    /// Empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample (non-finite or negative values are ignored: they are not latencies).
    pub fn push(&mut self, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            self.values.push(secs as f32);
            self.sum += secs;
        }
    }

    /// Adds many samples.
    pub fn extend_from_slice(&mut self, secs: &[f32]) {
        for &s in secs {
            self.push(f64::from(s));
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Merges another set (for sharded runs).
    pub fn merge(&mut self, other: &Samples) {
        self.values.extend_from_slice(&other.values);
        self.sum += other.sum;
    }

    /// Summary with nearest-rank percentiles.
    pub fn distribution(&self) -> Distribution {
        distribution_sorted(self.sorted().as_slice(), self.sum)
    }

    /// Error-adjusted percentiles: these samples plus `failures` samples of `+Inf`.
    pub fn adjusted(&self, failures: u64) -> AdjustedPercentiles {
        adjusted_sorted(self.sorted().as_slice(), failures)
    }

    fn sorted(&self) -> Vec<f32> {
        let mut sorted = self.values.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        sorted
    }
}

/// Samples whose `i`-th smallest (0-based) can be read: a sorted slice, or the few ranks
/// [`select::OrderStatistics`] counted out of a store ([`ranks_wanted`] lists them).
pub(crate) trait Ranked {
    /// How many samples.
    fn count(&self) -> usize;
    /// The `i`-th smallest.
    fn at(&self, i: usize) -> f32;
}

impl Ranked for [f32] {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> f32 {
        self[i]
    }
}

/// The quantiles of a [`Distribution`] and of [`AdjustedPercentiles`].
const DISTRIBUTION_QS: [f64; 4] = [0.50, 0.90, 0.95, 0.99];
const ADJUSTED_QS: [f64; 3] = [0.50, 0.95, 0.99];

/// The 0-based ranks [`distribution_sorted`] reads of `n` samples, and (with `failures`)
/// [`adjusted_sorted`]: every rank of those two an [`Ranked`] must answer.
pub(crate) fn ranks_wanted(n: usize, failures: Option<u64>) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut ranks: Vec<usize> = [0, n - 1]
        .into_iter()
        .chain(DISTRIBUTION_QS.iter().map(|&q| nearest_rank(q, n) - 1))
        .collect();
    if let Some(f) = failures {
        let total = n + f as usize;
        ranks.extend(
            ADJUSTED_QS
                .iter()
                .map(|&q| nearest_rank(q, total) - 1)
                .filter(|&r| r < n),
        );
    }
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

/// Exact nearest-rank summary of `sorted` (ascending) whose values add up to `sum`.
pub(crate) fn distribution_sorted<R: Ranked + ?Sized>(sorted: &R, sum: f64) -> Distribution {
    let n = sorted.count();
    let at = |q: f64| (n > 0).then(|| f64::from(sorted.at(nearest_rank(q, n) - 1)));
    let [p50, p90, p95, p99] = DISTRIBUTION_QS.map(at);
    Distribution {
        count: n as u64,
        min: (n > 0).then(|| f64::from(sorted.at(0))),
        mean: (n > 0).then(|| sum / n as f64),
        p50,
        p90,
        p95,
        p99,
        max: (n > 0).then(|| f64::from(sorted.at(n - 1))),
        relative_error: None,
    }
}

/// Nearest-rank percentiles of `sorted` (ascending) plus `failures` samples of `+Inf`.
pub(crate) fn adjusted_sorted<R: Ranked + ?Sized>(
    sorted: &R,
    failures: u64,
) -> AdjustedPercentiles {
    let n = sorted.count();
    let total = n + failures as usize;
    let at = |q: f64| -> Option<Latency> {
        if total == 0 {
            return None;
        }
        let rank = nearest_rank(q, total);
        Some(if rank <= n {
            Latency::Finite(f64::from(sorted.at(rank - 1)))
        } else {
            Latency::Inf
        })
    };
    let [p50, p95, p99] = ADJUSTED_QS.map(at);
    AdjustedPercentiles {
        count: total as u64,
        p50,
        p95,
        p99,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_exact_at_integer_products() {
        assert_eq!(nearest_rank(0.95, 20), 19); // 0.95*20 = 19 exactly, not 19.000000000000004
        assert_eq!(nearest_rank(0.95, 21), 20); // 19.95 -> 20
        assert_eq!(nearest_rank(0.5, 1), 1);
        assert_eq!(nearest_rank(0.99, 100), 99);
        assert_eq!(nearest_rank(0.99, 101), 100); // 99.99 -> 100
        assert_eq!(nearest_rank(0.0, 10), 1);
        assert_eq!(nearest_rank(1.0, 10), 10);
    }

    #[test]
    fn distribution_of_one_to_hundred() {
        let mut s = Samples::new();
        for i in (1..=100).rev() {
            s.push(f64::from(i) / 100.0);
        }
        let d = s.distribution();
        assert_eq!(d.count, 100);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-6;
        assert!(close(d.p50, 0.50));
        assert!(close(d.p90, 0.90));
        assert!(close(d.p95, 0.95));
        assert!(close(d.p99, 0.99));
        assert!(close(d.min, 0.01));
        assert!(close(d.max, 1.00));
        assert!(close(d.mean, 0.505));
    }

    #[test]
    fn empty_distribution_is_all_null_not_zero() {
        let d = Samples::new().distribution();
        assert_eq!(d.count, 0);
        assert_eq!(d.p95, None);
        assert_eq!(d.mean, None);
        assert_eq!(Samples::new().adjusted(0).p95, None);
    }

    #[test]
    fn failures_push_adjusted_percentiles_to_inf() {
        let mut s = Samples::new();
        for _ in 0..94 {
            s.push(1.0);
        }
        // 94 successes + 6 failures: rank 95 of 100 is a failure.
        let a = s.adjusted(6);
        assert_eq!(a.count, 100);
        assert_eq!(a.p50, Some(Latency::Finite(1.0)));
        assert_eq!(a.p95, Some(Latency::Inf));
        // 96 successes + 4 failures: rank 95 is still a success.
        for _ in 0..2 {
            s.push(2.0);
        }
        assert_eq!(s.adjusted(4).p95, Some(Latency::Finite(2.0)));
        // Only failures: every percentile is +Inf, never null or 0.
        assert_eq!(Samples::new().adjusted(3).p50, Some(Latency::Inf));
    }

    #[test]
    fn ignores_non_latencies_and_merges() {
        let mut a = Samples::new();
        a.push(f64::NAN);
        a.push(-1.0);
        a.push(0.5);
        let mut b = Samples::new();
        b.push(1.5);
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a.distribution().max, Some(1.5));
    }
}
