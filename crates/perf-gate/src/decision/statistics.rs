//! Statistics beside the seed's checks: is the candidate worse than the baseline by more than
//! the tolerance, *given the noise*?
//!
//! For the P95 TTFT, P95 E2E and throughput the evidence is a confidence interval of the
//! candidate/baseline ratio from a block bootstrap over time ([`bootstrap`]); for the success
//! rate, Newcombe's interval of the difference ([`intervals`]), which assumes independent
//! requests (failures that come in bursts make it too narrow: a block bootstrap of the rate is
//! the better evidence where failures cluster); a Mann–Whitney U test is reported for
//! information ([`rank_test`]). Each judged metric is then
//! [`Outcome::Failed`] when its whole interval lies beyond the tolerance,
//! [`Outcome::Passed`] when it lies within, and [`Outcome::Inconclusive`] when it straddles
//! it. The confidence level is shared out over the metrics judged (Bonferroni), so judging
//! four metrics does not quadruple the false alarms.

pub mod apply;
pub mod bootstrap;
pub mod intervals;
pub mod rank_test;
pub mod verdict;

use statrs::distribution::{ContinuousCDF, Normal};

/// What the evidence says about one metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole interval lies within the tolerance.
    Passed,
    /// The whole interval lies beyond the tolerance.
    Failed,
    /// The interval straddles the tolerance: the run cannot tell.
    Inconclusive,
}

impl Outcome {
    /// `passed`, `failed`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// Which way is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worse {
    /// A larger ratio is worse (latencies): the limit is `1 + tolerance`.
    Higher,
    /// A smaller ratio (or difference) is worse (throughput, success rate): the limit is
    /// `1 - tolerance` for a ratio, `-tolerance` for a difference.
    Lower,
}

/// Judges an interval `[lo, hi]` against `limit`.
pub fn judge(lo: f64, hi: f64, limit: f64, worse: Worse) -> Outcome {
    if lo.is_nan() || hi.is_nan() {
        return Outcome::Inconclusive;
    }
    match worse {
        Worse::Higher if lo > limit => Outcome::Failed,
        Worse::Higher if hi <= limit => Outcome::Passed,
        Worse::Lower if hi < limit => Outcome::Failed,
        Worse::Lower if lo >= limit => Outcome::Passed,
        _ => Outcome::Inconclusive,
    }
}

/// The two-sided `alpha` of each of `metrics` metrics judged at family confidence `level`
/// (Bonferroni): `(1 - level) / metrics`.
pub fn per_metric_alpha(level: f64, metrics: usize) -> f64 {
    (1.0 - level) / metrics.max(1) as f64
}

/// The standard normal quantile for a two-sided `alpha` (1.96 for 0.05).
pub fn z_two_sided(alpha: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - alpha / 2.0)
}

/// Fewest successful requests a P95 is judged on: below it the nearest-rank P95 is the
/// slowest request, or close to it, and the metric is inconclusive rather than passed.
pub const MIN_SUCCESSES_FOR_P95: u64 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_judged_by_where_it_lies_against_the_limit() {
        use Outcome::*;
        assert_eq!(judge(1.20, 1.40, 1.15, Worse::Higher), Failed);
        assert_eq!(judge(0.95, 1.10, 1.15, Worse::Higher), Passed);
        assert_eq!(judge(1.05, 1.25, 1.15, Worse::Higher), Inconclusive);
        assert_eq!(judge(0.60, 0.80, 0.90, Worse::Lower), Failed);
        assert_eq!(judge(0.92, 1.10, 0.90, Worse::Lower), Passed);
        assert_eq!(judge(0.85, 0.95, 0.90, Worse::Lower), Inconclusive);
        assert_eq!(judge(f64::NAN, 1.0, 1.15, Worse::Higher), Inconclusive);
    }

    #[test]
    fn the_level_is_shared_out_over_the_metrics() {
        assert!((per_metric_alpha(0.95, 4) - 0.0125).abs() < 1e-15);
        assert!((z_two_sided(0.05) - 1.959_963_985).abs() < 1e-8);
        assert!((z_two_sided(0.0125) - 2.497_705_474).abs() < 1e-6);
    }
}
