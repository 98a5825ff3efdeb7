//! The four checks, as pure functions (and [`Evaluation::push`] for an optional fifth).
//!
//! | # | check | absolute | relative to the baseline |
//! | --- | --- | --- | --- |
//! | 1 | P95 E2E latency | `< max_p95_latency_s` | `<= baseline * (1 + max_latency_regression)` |
//! | 2 | P95 TTFT | `< max_p95_ttft_s` | `<= baseline * (1 + max_ttft_regression)` |
//! | 3 | throughput | `> min_throughput_rps` | `>= baseline * (1 - max_throughput_drop)` |
//! | 4 | success rate | `>= min_success_rate` | `>= baseline - max_success_rate_drop` |
//!
//! Absolute mode (no baseline) applies the floors; comparative mode applies both. A missing
//! value fails its check, and so does a baseline missing the figure it would be compared with:
//! the gate fails closed. Inclusive bounds (`<=`, `>=`) allow a relative slack of 1e-12 so that
//! a value equal to `baseline * 1.15` in decimal is not failed by binary rounding (`3.0 * 1.15`
//! is `3.4499999999999997`, and `3.45` must pass); strict bounds are exact. Reason lines round
//! numbers to 6 decimals, except a value and a limit within 1e-3 of each other, which are shown
//! exactly, so a failing value never reads as equal to its limit.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::metrics::{CheckKeys, MetricMap};
use super::thresholds::Thresholds;
use crate::results::Measured;

/// The four checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// Check 1.
    P95Latency,
    /// Check 2.
    P95Ttft,
    /// Check 3.
    Throughput,
    /// Check 4.
    SuccessRate,
    /// The optional fifth check (`--require-comparable-baseline`): the baseline ran the same
    /// load (see `perf_gate::decision::comparability`).
    ComparableBaseline,
    /// With `--min-slo-attainment`: the share of requests meeting every `--slo` objective
    /// reaches the floor (see `perf_gate::decision::slo`).
    SloAttainment,
    /// With `--on-invalid fail`: the measurement can be trusted (see
    /// `perf_gate::decision::validity`); failing it fails the candidate, as the seed would.
    ValidMeasurement,
    /// A judged metric's confidence interval against its tolerance (see
    /// `perf_gate::decision::statistics`): with `--decision statistical` one per metric; by
    /// default only a metric whose whole interval lies beyond the tolerance, failed.
    StatisticalComparison,
    /// With `--fail-on-drift`: the metric sits within its tolerance of the passed runs of a
    /// month ago (see `perf_gate::decision::drift`).
    Drift,
    /// With `--also-stored-baseline` in a same-server A/B run: one of checks 1–4 against the
    /// stored baseline too (its `metric` names which).
    StoredBaseline,
}

/// A comparison operator, as written in the decision file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Op {
    /// Strictly less.
    #[serde(rename = "<")]
    Lt,
    /// Less or equal.
    #[serde(rename = "<=")]
    Le,
    /// Strictly greater.
    #[serde(rename = ">")]
    Gt,
    /// Greater or equal.
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// `value OP limit`, with a 1e-12 relative slack on the inclusive operators.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        let slack = 1e-12 * limit.abs().max(1.0);
        match self {
            Op::Lt => value < limit,
            Op::Gt => value > limit,
            Op::Le => value <= limit + slack,
            Op::Ge => value >= limit - slack,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// Which check.
    pub name: CheckName,
    /// The metric it read (`p95_latency_s`, or `client_p95_latency_s` with the client source).
    pub metric: String,
    /// The candidate's value; `null` when missing.
    pub value: Option<f64>,
    /// The absolute limit.
    pub absolute_limit: f64,
    /// How the value must compare with `absolute_limit`.
    pub absolute_op: Op,
    /// The limit derived from the baseline (comparative mode, baseline value present).
    pub relative_limit: Option<f64>,
    /// How the value must compare with `relative_limit`.
    pub relative_op: Op,
    /// The baseline's value of the same metric (comparative mode).
    pub baseline_value: Option<f64>,
    /// Whether the check passed.
    pub passed: bool,
    /// One line saying why.
    pub reason: String,
}

/// Absolute (no baseline) or comparative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Floors only: first deployment, no passed run to compare with.
    Absolute,
    /// Floors and bounds relative to the baseline.
    Comparative,
}

impl Mode {
    /// `absolute` or `comparative`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Absolute => "absolute",
            Mode::Comparative => "comparative",
        }
    }
}

/// Passed, failed, or invalid: the measurement cannot be trusted, so it says nothing about
/// the adapter (no alias, never a baseline; rerun the gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// At least one check failed.
    Failed,
    /// The measurement cannot be trusted (see `perf_gate::decision::validity`).
    Invalid,
}

impl Verdict {
    /// `passed`, `failed` or `invalid` (the word in `perf_status.txt` and the `perf_decision`
    /// tag).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Invalid => "invalid",
        }
    }
}

/// The four check results and what they add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Passed only if every check passed.
    pub verdict: Verdict,
    /// Absolute or comparative.
    pub mode: Mode,
    /// The four checks, in order.
    pub checks: Vec<CheckResult>,
}

impl Evaluation {
    /// Adds a check; a failed one fails a passed verdict (a check can only add reasons to
    /// fail; an invalid verdict stays invalid).
    pub fn push(&mut self, check: CheckResult) {
        if !check.passed && self.verdict == Verdict::Passed {
            self.verdict = Verdict::Failed;
        }
        self.checks.push(check);
    }
}

/// Which way a check's limits point.
#[derive(Debug, Clone, Copy)]
struct Rule {
    name: CheckName,
    unit: &'static str,
    absolute_op: Op,
    relative_op: Op,
}

/// Relative limit from a baseline value.
#[derive(Debug, Clone, Copy)]
enum Relative {
    /// `baseline * factor`.
    Factor(f64),
    /// `baseline - delta`.
    Minus(f64),
}

impl Relative {
    fn limit(self, baseline: f64) -> f64 {
        match self {
            Relative::Factor(f) => baseline * f,
            Relative::Minus(d) => baseline - d,
        }
    }

    fn describe(self, baseline: f64, unit: &str) -> String {
        match self {
            Relative::Factor(f) => format!("baseline {}{unit} x {}", num(baseline), num(f)),
            Relative::Minus(0.0) => format!("baseline {}{unit}", num(baseline)),
            Relative::Minus(d) => format!("baseline {}{unit} - {}", num(baseline), num(d)),
        }
    }
}

/// A number for a reason line: up to 6 decimals, trailing zeros dropped.
pub(crate) fn num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// Whether `a` and `b` are so close (within 1e-3, relative) that rounding them for a reason
/// line could show a failing value on its limit.
fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * a.abs().max(b.abs())
}

/// `v` for a reason line beside `limits`: exact (shortest round-trip form) when near one of
/// them, else rounded by [`num`].
fn shown(v: f64, limits: &[f64]) -> String {
    if limits.iter().any(|l| near(v, *l)) {
        format!("{v}")
    } else {
        num(v)
    }
}

/// Evaluates one check. `baseline` is `None` in absolute mode; in comparative mode it is the
/// baseline's entry for the same metric (itself possibly missing).
fn evaluate(
    rule: Rule,
    metric: &str,
    value: Option<&Measured>,
    absolute_limit: f64,
    relative: Relative,
    baseline: Option<Option<&Measured>>,
) -> CheckResult {
    let unit = rule.unit;
    let value_f = value.and_then(Measured::get);
    let baseline_f = baseline.flatten().and_then(Measured::get);
    let relative_limit = baseline_f.map(|b| relative.limit(b));
    let mut result = CheckResult {
        name: rule.name,
        metric: metric.to_string(),
        value: value_f,
        absolute_limit,
        absolute_op: rule.absolute_op,
        relative_limit,
        relative_op: rule.relative_op,
        baseline_value: baseline_f,
        passed: false,
        reason: String::new(),
    };
    let Some(v) = value_f else {
        let why = value
            .and_then(|m| m.reason.clone())
            .unwrap_or_else(|| "not in the results".into());
        result.reason = format!("{metric} is missing ({why}): fails closed");
        return result;
    };
    let abs_ok = rule.absolute_op.holds(v, absolute_limit);
    let abs_text = format!(
        "{} {}{unit} (absolute)",
        rule.absolute_op.symbol(),
        shown(absolute_limit, &[v])
    );
    let limits: Vec<f64> = std::iter::once(absolute_limit)
        .chain(relative_limit)
        .collect();
    let shown_value = format!("{metric} = {}{unit}", shown(v, &limits));
    match (baseline, baseline_f, relative_limit) {
        (None, _, _) => {
            result.passed = abs_ok;
            result.reason = if abs_ok {
                format!("{shown_value} is {abs_text}")
            } else {
                format!("{shown_value} is not {abs_text}")
            };
        }
        (Some(_), Some(b), Some(rel)) => {
            let rel_ok = rule.relative_op.holds(v, rel);
            result.passed = abs_ok && rel_ok;
            let rel_text = format!(
                "{} {}{unit} ({})",
                rule.relative_op.symbol(),
                shown(rel, &[v]),
                relative.describe(b, unit)
            );
            result.reason = match (abs_ok, rel_ok) {
                (true, true) => format!("{shown_value} is {abs_text} and {rel_text}"),
                (false, true) => format!("{shown_value} is not {abs_text}"),
                (true, false) => format!("{shown_value} is not {rel_text}"),
                (false, false) => format!("{shown_value} is neither {abs_text} nor {rel_text}"),
            };
        }
        (Some(b), _, _) => {
            let why = b
                .and_then(|m| m.reason.clone())
                .unwrap_or_else(|| "not recorded".into());
            result.passed = false;
            result.reason = format!(
                "the baseline has no {metric} ({why}), so the comparison cannot be made: fails closed"
            );
        }
    }
    result
}

/// Runs the four checks on `candidate`. `baseline` (comparative mode) holds the baseline run's
/// metrics under the same names. `keys` says which metric each check reads.
pub fn decide(
    candidate: &MetricMap,
    baseline: Option<&MetricMap>,
    thresholds: &Thresholds,
    keys: &CheckKeys,
) -> Evaluation {
    let t = thresholds;
    let specs = [
        (
            Rule {
                name: CheckName::P95Latency,
                unit: " s",
                absolute_op: Op::Lt,
                relative_op: Op::Le,
            },
            &keys.p95_latency,
            t.max_p95_latency_s,
            Relative::Factor(1.0 + t.max_latency_regression),
        ),
        (
            Rule {
                name: CheckName::P95Ttft,
                unit: " s",
                absolute_op: Op::Lt,
                relative_op: Op::Le,
            },
            &keys.p95_ttft,
            t.max_p95_ttft_s,
            Relative::Factor(1.0 + t.max_ttft_regression),
        ),
        (
            Rule {
                name: CheckName::Throughput,
                unit: " req/s",
                absolute_op: Op::Gt,
                relative_op: Op::Ge,
            },
            &keys.throughput,
            t.min_throughput_rps,
            Relative::Factor(1.0 - t.max_throughput_drop),
        ),
        (
            Rule {
                name: CheckName::SuccessRate,
                unit: "",
                absolute_op: Op::Ge,
                relative_op: Op::Ge,
            },
            &keys.success_rate,
            t.min_success_rate,
            Relative::Minus(t.max_success_rate_drop),
        ),
    ];
    let checks: Vec<CheckResult> = specs
        .into_iter()
        .map(|(rule, key, abs, rel)| {
            evaluate(
                rule,
                key,
                candidate.get(key.as_str()),
                abs,
                rel,
                baseline.map(|b| b.get(key.as_str())),
            )
        })
        .collect();
    let verdict = if checks.iter().all(|c| c.passed) {
        Verdict::Passed
    } else {
        Verdict::Failed
    };
    Evaluation {
        verdict,
        mode: if baseline.is_some() {
            Mode::Comparative
        } else {
            Mode::Absolute
        },
        checks,
    }
}

#[cfg(test)]
mod tests;
