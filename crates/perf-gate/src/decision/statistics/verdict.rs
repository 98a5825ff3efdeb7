//! The statistical comparison of a candidate with a baseline, as the decision records it:
//! one interval per judged metric, each judged against its tolerance ([`assess`]), and the
//! Mann–Whitney U tests reported beside them.
//!
//! Judged: the P95 TTFT ratio (tolerance `max_ttft_regression`), the P95 E2E ratio
//! (`max_latency_regression`), the throughput ratio (`max_throughput_drop`) and the
//! success-rate difference (`max_success_rate_drop`). The family confidence level (0.95) is
//! shared out over the four (Bonferroni: each interval at 98.75 %).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bootstrap::{Arm, Figure, NoInterval, Pairing, RatioInterval, ratio_interval};
use super::intervals::newcombe_difference;
use super::rank_test::mann_whitney;
use super::{Outcome, Worse, judge, per_metric_alpha, z_two_sided};
use crate::decision::thresholds::Thresholds;
use crate::stats::SampleStore;

/// The family confidence level of the judged metrics.
pub const CONFIDENCE_LEVEL: f64 = 0.95;
/// Resamples drawn per interval.
pub const RESAMPLES: usize = 2000;

/// How the decision is made (`--decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMethod {
    /// The seed's four checks decide; a metric whose whole interval lies beyond its tolerance
    /// adds a failure; an inconclusive metric is reported and does not fail.
    #[default]
    Seed,
    /// The intervals decide the comparison instead of the bare point bounds (the absolute
    /// floors still apply); an inconclusive metric counts as `--on-inconclusive` says.
    Statistical,
}

impl DecisionMethod {
    /// `seed` or `statistical`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionMethod::Seed => "seed",
            DecisionMethod::Statistical => "statistical",
        }
    }
}

/// What an inconclusive metric counts as under `--decision statistical` (`--on-inconclusive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInconclusive {
    /// Fail closed (the default): the run could not show the candidate is within tolerance.
    #[default]
    Fail,
    /// Pass: only a metric shown beyond the tolerance fails.
    Pass,
}

impl OnInconclusive {
    /// `fail` or `pass`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInconclusive::Fail => "fail",
            OnInconclusive::Pass => "pass",
        }
    }
}

/// The richer verdict of `perf_decision.json` and the run tag `perf_verdict`: the decision,
/// or `inconclusive` when it passed but a judged metric's interval straddles its tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RichVerdict {
    /// Passed, and no judged metric was inconclusive.
    Passed,
    /// Failed.
    Failed,
    /// The measurement cannot be trusted.
    Invalid,
    /// Passed (or, under `--decision statistical --on-inconclusive fail`, failed) while the
    /// evidence could not tell whether a metric is within its tolerance. Never a baseline.
    Inconclusive,
}

impl RichVerdict {
    /// `passed`, `failed`, `invalid`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            RichVerdict::Passed => "passed",
            RichVerdict::Failed => "failed",
            RichVerdict::Invalid => "invalid",
            RichVerdict::Inconclusive => "inconclusive",
        }
    }
}

/// One judged metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricInterval {
    /// `p95_ttft_ratio`, `p95_e2e_ratio`, `throughput_ratio` or `success_rate_difference`.
    pub name: String,
    /// Candidate over baseline (a difference for the success rate) of the full samples.
    pub point: Option<f64>,
    /// Lower end of the interval.
    pub lo: Option<f64>,
    /// Upper end.
    pub hi: Option<f64>,
    /// The tolerance as a limit on the ratio (`1 + regression`, `1 - drop`) or the difference
    /// (`-drop`).
    pub limit: f64,
    /// `higher` (a larger value is worse) or `lower`.
    pub worse: String,
    /// Where the interval lies against the limit.
    pub outcome: Outcome,
    /// Time blocks per arm (bootstrap intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    /// Block length, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_s: Option<f64>,
    /// How the interval was made, or why there is none.
    pub method: String,
    /// One line saying what the interval shows.
    pub reason: String,
}

/// A Mann–Whitney U test of one latency, for information.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RankTest {
    /// `ttft_s` or `e2e_s`.
    pub metric: String,
    /// The probability that a candidate request is slower than a baseline one (ties half).
    pub prob_candidate_slower: f64,
    /// Two-sided p-value (normal approximation).
    pub p_value: f64,
}

/// The statistical comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Statistics {
    /// `paired` (same-server A/B, blocks drawn for both arms together) or `independent`.
    pub pairing: String,
    /// Family confidence level over the judged metrics.
    pub confidence_level: f64,
    /// Two-sided alpha of each metric's interval (Bonferroni).
    pub per_metric_alpha: f64,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// The generator's seed (hex), from the digests of the inputs.
    pub seed: String,
    /// Failed if a metric failed, else inconclusive if one was, else passed.
    pub outcome: Outcome,
    /// The judged metrics.
    pub metrics: Vec<MetricInterval>,
    /// For information: does one arm tend to be slower at all?
    pub rank_tests: Vec<RankTest>,
    /// What the intervals assume or leave out (e.g. run-to-run variance).
    pub notes: Vec<String>,
}

/// The spread between runs of each judged ratio (standard deviation of the natural log of the
/// figure across repeated passed runs), keyed by the judged metric's name (`p95_ttft_ratio`,
/// ...), and how many runs it was estimated from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunToRun {
    /// Standard deviation of `ln(figure)` between runs, per judged metric.
    pub sd_log: std::collections::BTreeMap<String, f64>,
    /// Runs it was estimated from.
    pub runs: usize,
}

impl RunToRun {
    /// The spread of the client figures behind each judged ratio across `runs` (the metric
    /// maps of repeated passed runs): the sample standard deviation of their natural logs,
    /// for each figure every run has, positive; nothing from fewer than 3 runs.
    pub fn of_runs(runs: &[&crate::decision::MetricMap]) -> Self {
        const FIGURES: [(&str, &str); 3] = [
            ("p95_ttft_ratio", "client_p95_ttft_s"),
            ("p95_e2e_ratio", "client_p95_latency_s"),
            ("throughput_ratio", "client_throughput_rps"),
        ];
        let mut sd_log = std::collections::BTreeMap::new();
        if runs.len() >= 3 {
            for (name, key) in FIGURES {
                let logs: Option<Vec<f64>> = runs
                    .iter()
                    .map(|m| {
                        m.get(key)
                            .and_then(|v| v.get())
                            .filter(|v| *v > 0.0)
                            .map(f64::ln)
                    })
                    .collect();
                let Some(logs) = logs else { continue };
                let n = logs.len() as f64;
                let mean = logs.iter().sum::<f64>() / n;
                let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
                sd_log.insert(name.to_string(), var.sqrt());
            }
        }
        RunToRun {
            sd_log,
            runs: runs.len(),
        }
    }
}

impl Statistics {
    /// Widens each ratio interval by the run-to-run spread: the candidate's run and the
    /// baseline's each carry an offset of standard deviation `sd` in log space, so the log
    /// ratio gains a variance `2 sd²`, added in quadrature to the interval's half-width (at
    /// the interval's own level), and the metric is judged again. The note saying the interval
    /// ignores the run-to-run variance is replaced by one saying how it was included.
    pub fn include_run_to_run(&mut self, spread: &RunToRun) {
        let z = z_two_sided(self.per_metric_alpha);
        let mut widened = Vec::new();
        for m in &mut self.metrics {
            let (Some(sd), Some(lo), Some(hi)) = (spread.sd_log.get(&m.name), m.lo, m.hi) else {
                continue;
            };
            if !(lo > 0.0 && hi > 0.0 && sd.is_finite()) {
                continue;
            }
            let (c, half) = ((hi.ln() + lo.ln()) / 2.0, (hi.ln() - lo.ln()) / 2.0);
            let half = (half * half + 2.0 * (z * sd).powi(2)).sqrt();
            let (lo, hi) = ((c - half).exp(), (c + half).exp());
            let worse = if m.worse == "higher" {
                Worse::Higher
            } else {
                Worse::Lower
            };
            m.lo = Some(lo);
            m.hi = Some(hi);
            m.outcome = judge(lo, hi, m.limit, worse);
            m.method.push_str(&format!(
                ", widened by the run-to-run spread (sd of ln {sd:.4} over {} runs)",
                spread.runs
            ));
            let side = match m.outcome {
                Outcome::Failed if worse == Worse::Higher => "lies wholly above",
                Outcome::Failed => "lies wholly below",
                Outcome::Passed => "lies within",
                Outcome::Inconclusive => "straddles",
            };
            m.reason = format!(
                "{} {:.4} [{lo:.4}, {hi:.4}] {side} the limit {:.4} (run-to-run spread included)",
                m.name,
                m.point.unwrap_or(f64::NAN),
                m.limit
            );
            widened.push(m.name.clone());
        }
        if widened.is_empty() {
            return;
        }
        self.outcome = overall(&self.metrics);
        self.notes
            .retain(|n| !n.starts_with("the baseline ran separately"));
        self.notes.push(format!(
            "the ratio intervals include the run-to-run variance, estimated from {} passed runs of the baseline (--baseline-runs)",
            spread.runs
        ));
    }

    /// The judged metrics with the given outcome.
    pub fn with_outcome(&self, o: Outcome) -> impl Iterator<Item = &MetricInterval> {
        self.metrics.iter().filter(move |m| m.outcome == o)
    }
}

/// One arm of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct ArmInput<'a> {
    /// Its requests.
    pub samples: &'a SampleStore,
    /// The load's duration, seconds.
    pub duration_s: f64,
    /// Requests sent.
    pub total: u64,
    /// Requests that succeeded.
    pub successes: u64,
}

/// What [`assess`] compares.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The candidate.
    pub candidate: ArmInput<'a>,
    /// The baseline.
    pub baseline: ArmInput<'a>,
    /// Same run interleaved, or separate runs.
    pub pairing: Pairing,
    /// The tolerances.
    pub thresholds: &'a Thresholds,
    /// Seeds the resampling (digest of the inputs).
    pub seed: [u8; 32],
}

fn arm<'a>(a: &ArmInput<'a>) -> Arm<'a> {
    Arm {
        requests: a.samples.requests(),
        duration_s: a.duration_s,
    }
}

fn ratio_metric(
    name: &str,
    figure: Figure,
    limit: f64,
    worse: Worse,
    input: &Input,
    alpha: f64,
) -> MetricInterval {
    let got = ratio_interval(
        &arm(&input.candidate),
        &arm(&input.baseline),
        figure,
        input.pairing,
        alpha,
        RESAMPLES,
        input.seed,
    );
    let worse_word = match worse {
        Worse::Higher => "higher",
        Worse::Lower => "lower",
    };
    let level = 100.0 * (1.0 - alpha);
    match got {
        Ok(RatioInterval {
            point,
            lo,
            hi,
            blocks,
            block_s,
            resamples,
        }) => {
            let outcome = judge(lo, hi, limit, worse);
            let side = match (outcome, worse) {
                (Outcome::Failed, Worse::Higher) => "lies wholly above",
                (Outcome::Failed, Worse::Lower) => "lies wholly below",
                (Outcome::Passed, _) => "lies within",
                (Outcome::Inconclusive, _) => "straddles",
            };
            MetricInterval {
                name: name.into(),
                point: Some(point),
                lo: Some(lo),
                hi: Some(hi),
                limit,
                worse: worse_word.into(),
                outcome,
                blocks: Some(blocks),
                block_s: Some(block_s),
                method: format!(
                    "block bootstrap: {blocks} blocks of {block_s:.2} s, {resamples} resamples, {level:.2} % percentile interval"
                ),
                reason: format!("{name} {point:.4} [{lo:.4}, {hi:.4}] {side} the limit {limit:.4}"),
            }
        }
        Err(why) => no_interval(name, limit, worse_word, &why),
    }
}

fn no_interval(name: &str, limit: f64, worse: &str, why: &NoInterval) -> MetricInterval {
    MetricInterval {
        name: name.into(),
        point: None,
        lo: None,
        hi: None,
        limit,
        worse: worse.into(),
        outcome: Outcome::Inconclusive,
        blocks: None,
        block_s: None,
        method: "none".into(),
        reason: format!("{name}: no interval ({why}): inconclusive"),
    }
}

/// Failed if a metric failed, else inconclusive if one was, else passed.
fn overall(metrics: &[MetricInterval]) -> Outcome {
    if metrics.iter().any(|m| m.outcome == Outcome::Failed) {
        Outcome::Failed
    } else if metrics.iter().any(|m| m.outcome == Outcome::Inconclusive) {
        Outcome::Inconclusive
    } else {
        Outcome::Passed
    }
}

/// Compares the arms: an interval per judged metric, each judged against its tolerance.
pub fn assess(input: &Input) -> Statistics {
    let t = input.thresholds;
    let alpha = per_metric_alpha(CONFIDENCE_LEVEL, 4);
    let mut metrics = vec![
        ratio_metric(
            "p95_ttft_ratio",
            Figure::P95Ttft,
            1.0 + t.max_ttft_regression,
            Worse::Higher,
            input,
            alpha,
        ),
        ratio_metric(
            "p95_e2e_ratio",
            Figure::P95E2e,
            1.0 + t.max_latency_regression,
            Worse::Higher,
            input,
            alpha,
        ),
        ratio_metric(
            "throughput_ratio",
            Figure::Throughput,
            1.0 - t.max_throughput_drop,
            Worse::Lower,
            input,
            alpha,
        ),
    ];
    let (c, b) = (&input.candidate, &input.baseline);
    let limit = 0.0 - t.max_success_rate_drop;
    let z = z_two_sided(alpha);
    metrics.push(
        match newcombe_difference(c.successes, c.total, b.successes, b.total, z) {
            Some((lo, hi)) => {
                let point = c.successes as f64 / c.total as f64 - b.successes as f64 / b.total as f64;
                let mut outcome = judge(lo, hi, limit, Worse::Lower);
                let mut side = match outcome {
                    Outcome::Failed => "lies wholly below",
                    Outcome::Passed => "lies within",
                    Outcome::Inconclusive => "straddles",
                };
                // a zero tolerance (the seed's `>= baseline`) leaves no room for an interval
                // to lie within: the rate is judged failed only when shown worse
                if limit == 0.0 && outcome == Outcome::Inconclusive {
                    outcome = Outcome::Passed;
                    side = "does not lie wholly below (a zero tolerance is judged as: not shown worse)";
                }
                MetricInterval {
                    name: "success_rate_difference".into(),
                    point: Some(point),
                    lo: Some(lo),
                    hi: Some(hi),
                    limit,
                    worse: "lower".into(),
                    outcome,
                    blocks: None,
                    block_s: None,
                    method: format!(
                        "Newcombe's hybrid score interval (method 10), {:.2} %, requests taken as independent",
                        100.0 * (1.0 - alpha)
                    ),
                    reason: format!(
                        "success_rate_difference {point:+.4} [{lo:+.4}, {hi:+.4}] {side} the limit {limit:+.4}"
                    ),
                }
            }
            None => MetricInterval {
                name: "success_rate_difference".into(),
                point: None,
                lo: None,
                hi: None,
                limit,
                worse: "lower".into(),
                outcome: Outcome::Inconclusive,
                blocks: None,
                block_s: None,
                method: "none".into(),
                reason: "success_rate_difference: no interval (an arm sent no request): inconclusive"
                    .into(),
            },
        },
    );
    let outcome = overall(&metrics);
    let values = |s: &SampleStore, pick: fn(&crate::stats::RequestSample) -> f32| -> Vec<f64> {
        s.requests()
            .iter()
            .map(pick)
            .filter(|v| !v.is_nan())
            .map(f64::from)
            .collect()
    };
    let rank_tests = [
        (
            "ttft_s",
            (|r| r.ttft_s) as fn(&crate::stats::RequestSample) -> f32,
        ),
        ("e2e_s", |r| r.e2e_s),
    ]
    .into_iter()
    .filter_map(|(metric, pick)| {
        let u = mann_whitney(&values(c.samples, pick), &values(b.samples, pick))?;
        Some(RankTest {
            metric: metric.into(),
            prob_candidate_slower: u.prob_a_greater,
            p_value: u.p_value,
        })
    })
    .collect();
    let mut notes = vec![
        "the intervals use the client's exact per-request figures (vLLM labels its metrics by base model, not adapter)".to_string(),
        "the success-rate interval takes requests as independent: failures that come in bursts make it too narrow".to_string(),
    ];
    if input.pairing == Pairing::Independent {
        notes.push("the baseline ran separately: the interval covers the noise within each run, not the run-to-run variance between runs (--baseline-runs 3 or more estimates and includes it)".into());
    }
    Statistics {
        pairing: match input.pairing {
            Pairing::Paired => "paired",
            Pairing::Independent => "independent",
        }
        .into(),
        confidence_level: CONFIDENCE_LEVEL,
        per_metric_alpha: alpha,
        resamples: RESAMPLES,
        seed: input.seed.iter().map(|b| format!("{b:02x}")).collect(),
        outcome,
        metrics,
        rank_tests,
        notes,
    }
}
