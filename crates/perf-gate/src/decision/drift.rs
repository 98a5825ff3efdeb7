//! Drift over the history of passed runs, and the median baseline of several of them (pure).
//!
//! # The drift rule
//!
//! The four checks compare a candidate with the newest passed run only, each with a tolerance
//! (15 % for the P95 latency). A metric that creeps 10 % per release passes every one of them
//! and yet, five releases on, is 61 % slower (1.1⁵). The drift rule compares the candidate
//! with a *fixed distance back* instead of with the previous step:
//!
//! * **reference**: the passed runs of the experiment at least `lookback` (default 28 days)
//!   older than the candidate; the newest [`DriftRule::reference_runs`] (default 3) of them;
//!   their median. When the history does not reach that far back, the oldest
//!   `reference_runs` runs stand in, and the result says so ([`ReferenceBasis::OldestRuns`]).
//! * **verdict**: `ratio = candidate / reference`; the candidate is *flagged* when the ratio is
//!   beyond `1 + tolerance` for a metric where higher is worse (latencies), or below
//!   `1 - tolerance` where lower is worse (throughput, success rate), the same shape as the
//!   relative bounds of checks 1–3. Fewer than 2 usable runs in the history give no verdict.
//!
//! Why this rule:
//!
//! * **Not step-to-step.** The step-to-step comparison is what the checks already do; drift is
//!   by definition the sum of steps that each pass it, so it is only visible against an anchor
//!   that does not move with every release.
//! * **An anchor in time, not in runs.** Releases come at an irregular pace: "the runs of a
//!   month ago" bounds how long a drift may build up before it shows, whatever the cadence.
//!   The anchor slides: a deliberate, accepted change stops being flagged once it is a month
//!   old (until then `perf-decision override` is the escape hatch when `--fail-on-drift` is on).
//! * **A median of several old runs.** One old run is one noisy sample: a lucky one (a quiet
//!   node) would make every later candidate look drifted, an unlucky one would hide a real
//!   drift. The median of three ignores one outlier either way, which a mean does not.
//! * **Not a change-point detector as the verdict.** E-divisive means (Apache Otava/Hunter)
//!   locates *where* a series changed and needs tens of points and a permutation test to say
//!   whether the change is significant; its answer is not a tolerance a platform team can
//!   state in a policy. It is kept for information: [`ChangePoint`], the split of the series
//!   (history plus candidate) that maximises the weighted squared difference of the means,
//!   E-divisive's statistic in its simplest (Euclidean, α = 2) form, reported only when the
//!   means on either side differ by more than the tolerance.
//!
//! # Several baseline runs
//!
//! [`median_metrics`] is the baseline of `--baseline-runs N`: per metric, the median of the
//! last N comparable passed runs; a metric that any of them lacks is missing (fails closed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::checks::{Op, num};
use super::metrics::MetricMap;
use crate::results::Measured;

/// The default lookback: the reference runs are at least this much older than the candidate.
pub const DEFAULT_LOOKBACK_MS: i64 = 28 * 24 * 3600 * 1000;
/// The default number of old runs whose median is the reference.
pub const DEFAULT_REFERENCE_RUNS: usize = 3;
/// The default tolerance, the same as the P95 latency's step-to-step bound.
pub const DEFAULT_DRIFT_TOLERANCE: f64 = 0.15;
/// Fewer usable runs than this in the history give no verdict.
pub const MIN_HISTORY_RUNS: usize = 2;

/// Which way a metric is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latencies: a larger value is worse; the limit is `1 + tolerance`.
    HigherIsWorse,
    /// Throughput, success rate: a smaller value is worse; the limit is `1 - tolerance`.
    LowerIsWorse,
}

impl Direction {
    /// The direction of a decision metric by its name: throughput and success rates are
    /// lower-is-worse, everything else (latencies, durations) higher-is-worse.
    pub fn of_metric(name: &str) -> Self {
        if name.ends_with("throughput_rps") || name.ends_with("success_rate") {
            Direction::LowerIsWorse
        } else {
            Direction::HigherIsWorse
        }
    }
}

/// One passed run's value of the metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PastRun {
    /// The MLflow run id.
    pub run_id: String,
    /// When the run started, ms since the epoch.
    pub start_time_ms: i64,
    /// Its value of the metric.
    pub value: f64,
}

/// The rule's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftRule {
    /// How far from the reference the candidate may sit (0.15: 15 %).
    pub tolerance: f64,
    /// How much older than the candidate a reference run must be, ms.
    pub lookback_ms: i64,
    /// How many old runs the reference is the median of.
    pub reference_runs: usize,
}

impl Default for DriftRule {
    fn default() -> Self {
        DriftRule {
            tolerance: DEFAULT_DRIFT_TOLERANCE,
            lookback_ms: DEFAULT_LOOKBACK_MS,
            reference_runs: DEFAULT_REFERENCE_RUNS,
        }
    }
}

/// Which runs the reference was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceBasis {
    /// The newest runs at least the lookback older than the candidate ("a month ago").
    Lookback,
    /// The history does not reach the lookback back: its oldest runs stand in.
    OldestRuns,
}

/// For information: where the series (history, then the candidate) shifted most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePoint {
    /// Index in the series of the first value after the change (the candidate is the last).
    pub index: usize,
    /// The run id of that value, or `candidate`.
    pub first_after: String,
    /// Mean of the values before the change.
    pub mean_before: f64,
    /// Mean of the values from the change on.
    pub mean_after: f64,
}

/// The drift verdict for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriftResult {
    /// The metric.
    pub metric: String,
    /// Which way is worse.
    pub direction: Direction,
    /// Which runs the reference came from; `null` without a verdict.
    pub basis: Option<ReferenceBasis>,
    /// The median of the reference runs; `null` without a verdict.
    pub reference_value: Option<f64>,
    /// The run ids of the reference runs, oldest first.
    pub reference_runs: Vec<String>,
    /// The candidate's value; `null` when it has none.
    pub candidate_value: Option<f64>,
    /// `candidate_value / reference_value`.
    pub ratio: Option<f64>,
    /// The bound on the ratio: `1 + tolerance` (higher is worse) or `1 - tolerance`.
    pub limit: f64,
    /// The candidate sits beyond the limit.
    pub flagged: bool,
    /// One line saying why.
    pub reason: String,
    /// For information: the largest shift of the series, when it exceeds the tolerance.
    pub change_point: Option<ChangePoint>,
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Judges the candidate's `candidate` value of `metric` (its run started at `candidate_time_ms`)
/// against the history of passed runs (any order; values that are not finite are ignored).
pub fn drift_check(
    metric: &str,
    direction: Direction,
    history: &[PastRun],
    candidate: Option<f64>,
    candidate_time_ms: i64,
    rule: &DriftRule,
) -> DriftResult {
    let limit = match direction {
        Direction::HigherIsWorse => 1.0 + rule.tolerance,
        Direction::LowerIsWorse => 1.0 - rule.tolerance,
    };
    let mut runs: Vec<&PastRun> = history.iter().filter(|r| r.value.is_finite()).collect();
    runs.sort_by_key(|r| r.start_time_ms);
    let candidate = candidate.filter(|v| v.is_finite());
    let no_verdict = |reason: String| DriftResult {
        metric: metric.to_string(),
        direction,
        basis: None,
        reference_value: None,
        reference_runs: Vec::new(),
        candidate_value: candidate,
        ratio: None,
        limit,
        flagged: false,
        reason: format!("no drift verdict: {reason}"),
        change_point: None,
    };
    if runs.len() < MIN_HISTORY_RUNS {
        return no_verdict(format!(
            "{} passed run(s) with {metric} in the history, at least {MIN_HISTORY_RUNS} needed",
            runs.len()
        ));
    }
    let Some(value) = candidate else {
        return no_verdict(format!("the candidate has no {metric}"));
    };
    let k = rule.reference_runs.max(1);
    let old_enough =
        runs.partition_point(|r| r.start_time_ms <= candidate_time_ms - rule.lookback_ms);
    let (basis, reference) = if old_enough > 0 {
        (
            ReferenceBasis::Lookback,
            &runs[old_enough.saturating_sub(k)..old_enough],
        )
    } else {
        (ReferenceBasis::OldestRuns, &runs[..k.min(runs.len())])
    };
    let reference_value = median(reference.iter().map(|r| r.value).collect())
        .expect("invariant: the reference holds at least one run");
    let reference_runs: Vec<String> = reference.iter().map(|r| r.run_id.clone()).collect();
    if reference_value <= 0.0 {
        return no_verdict(format!(
            "the reference {metric} {} is not positive",
            num(reference_value)
        ));
    }
    let ratio = value / reference_value;
    let bound = reference_value * limit;
    let within = match direction {
        Direction::HigherIsWorse => Op::Le.holds(value, bound),
        Direction::LowerIsWorse => Op::Ge.holds(value, bound),
    };
    let days = rule.lookback_ms as f64 / 86_400_000.0;
    let source = match basis {
        ReferenceBasis::Lookback => format!(
            "median of the {} newest passed run(s) at least {} days older",
            reference.len(),
            num(days)
        ),
        ReferenceBasis::OldestRuns => format!(
            "median of the oldest {} passed run(s): the history does not reach {} days back",
            reference.len(),
            num(days)
        ),
    };
    let reason = format!(
        "{metric} {} is {}x the reference {} ({source}: {}); {} the {}x drift limit",
        num(value),
        num(ratio),
        num(reference_value),
        reference_runs.join(", "),
        if within { "within" } else { "beyond" },
        num(limit),
    );
    let mut series: Vec<(String, f64)> = runs.iter().map(|r| (r.run_id.clone(), r.value)).collect();
    series.push(("candidate".to_string(), value));
    DriftResult {
        metric: metric.to_string(),
        direction,
        basis: Some(basis),
        reference_value: Some(reference_value),
        reference_runs,
        candidate_value: Some(value),
        ratio: Some(ratio),
        limit,
        flagged: !within,
        reason,
        change_point: change_point(&series, rule.tolerance),
    }
}

/// The split of `series` (at least two values on each side) that maximises
/// `(m·n / (m+n)) · (mean_before − mean_after)²`, reported when the means differ by more than
/// `tolerance` relative to the mean before.
pub fn change_point(series: &[(String, f64)], tolerance: f64) -> Option<ChangePoint> {
    const MIN_SIDE: usize = 2;
    let n = series.len();
    if n < 2 * MIN_SIDE {
        return None;
    }
    let total: f64 = series.iter().map(|(_, v)| v).sum();
    let mut before = 0.0;
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for (i, (_, v)) in series.iter().enumerate().take(n - MIN_SIDE) {
        before += v;
        let m = i + 1;
        if m < MIN_SIDE {
            continue;
        }
        let (mf, nf) = (m as f64, (n - m) as f64);
        let (mean_before, mean_after) = (before / mf, (total - before) / nf);
        let stat = mf * nf / (mf + nf) * (mean_before - mean_after).powi(2);
        if best.is_none_or(|(s, ..)| stat > s) {
            best = Some((stat, m, mean_before, mean_after));
        }
    }
    let (_, index, mean_before, mean_after) = best?;
    let shift = (mean_after - mean_before).abs() / mean_before.abs();
    (mean_before != 0.0 && shift > tolerance).then(|| ChangePoint {
        index,
        first_after: series[index].0.clone(),
        mean_before,
        mean_after,
    })
}

/// The baseline of several passed runs: per metric, the median of the runs' values. A metric
/// that any run lacks (absent or "no data") is "no data" in the result, with the reason: the
/// comparison fails closed rather than judge against fewer runs than asked for. Each metric's
/// median is taken on its own, so two metrics may come from different runs. No runs: empty.
pub fn median_metrics(runs: &[MetricMap]) -> MetricMap {
    let mut keys: Vec<&String> = runs.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let n = runs.len();
    keys.into_iter()
        .map(|key| {
            let mut values = Vec::with_capacity(n);
            let mut missing = Vec::new();
            for (i, run) in runs.iter().enumerate() {
                match run.get(key).and_then(Measured::get) {
                    Some(v) => values.push(v),
                    None => missing.push((
                        i + 1,
                        run.get(key)
                            .and_then(|m| m.reason.clone())
                            .unwrap_or_else(|| "absent".into()),
                    )),
                }
            }
            let m = match (missing.first(), median(values)) {
                (None, Some(v)) => Measured::value(v),
                (Some((i, why)), _) => Measured::missing(format!(
                    "{key} is missing in {} of the {n} baseline runs (run {i}: {why})",
                    missing.len()
                )),
                (None, None) => Measured::missing(format!("{key}: no baseline runs")),
            };
            (key.clone(), m)
        })
        .collect()
}

#[cfg(test)]
mod tests;
