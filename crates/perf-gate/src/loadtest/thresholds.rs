//! `load-test --threshold` (k6 style, seed 004): pass/fail criteria on the client's figures
//! for standalone use, e.g. `ttft_p95<2s` or `error_rate<5%`. A pure parser ([`Threshold`],
//! `FromStr`) and evaluator ([`evaluate`]); the gate's own checks stay in `perf-decision`.
//!
//! Grammar: `METRIC OP VALUE`, whitespace allowed around `OP`, metric names case-insensitive.
//! `OP` is one of `<`, `<=`, `>`, `>=`. `VALUE` depends on the metric:
//! - latencies (`ttft_pNN`, `e2e_pNN` alias `latency_pNN`, `itl_pNN`, `tpot_pNN`, `NN` one of
//!   50, 90, 95, 99): a duration, `850ms`, `2s` or a bare number of seconds;
//! - rates (`error_rate` = failed / total, `success_rate`, `slo_attainment`): `5%` or a bare
//!   fraction from 0 to 1 (`0.05`);
//! - `rps` (successful requests per second) and `tokens_per_s` (output tokens per second): a
//!   plain number.
//!
//! A threshold whose metric has no value in the results (no successful request, so no p95;
//! no `--slo`) fails, with the reason: it never passes by default.
//!
//! The whole run is evaluated once, at its end: `load-test` has no load steps yet, so there is
//! no per-step evaluation (issue 11 asks for one when steps exist).

use std::fmt;
use std::str::FromStr;

use crate::results::{ClientMetrics, Distribution, LoadTestResults, ThresholdOutcome};

/// A percentile of a [`Distribution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// 50th.
    P50,
    /// 90th.
    P90,
    /// 95th.
    P95,
    /// 99th.
    P99,
}

impl Percentile {
    const ALL: [Percentile; 4] = [
        Percentile::P50,
        Percentile::P90,
        Percentile::P95,
        Percentile::P99,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
        }
    }

    fn of(self, d: &Distribution) -> Option<f64> {
        match self {
            Percentile::P50 => d.p50,
            Percentile::P90 => d.p90,
            Percentile::P95 => d.p95,
            Percentile::P99 => d.p99,
        }
    }
}

/// What a threshold is about (client-side figures of `load_test_results.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `ttft_pNN`: `client.ttft_s`.
    Ttft(Percentile),
    /// `e2e_pNN` (alias `latency_pNN`): `client.e2e_s`.
    E2e(Percentile),
    /// `itl_pNN`: `client.itl_s`.
    Itl(Percentile),
    /// `tpot_pNN`: `client.tpot_s`.
    Tpot(Percentile),
    /// `error_rate`: `failed_requests / total_requests`.
    ErrorRate,
    /// `success_rate`: `client.success_rate`.
    SuccessRate,
    /// `rps`: `client.requests_per_s`.
    Rps,
    /// `tokens_per_s`: `client.output_tokens_per_s`.
    TokensPerS,
    /// `slo_attainment`: `client.slo_attainment.fraction` (with `--slo`).
    SloAttainment,
}

/// The names [`Metric::from_name`] knows, for error messages.
const KNOWN: &str = "ttft_pNN, e2e_pNN (alias latency_pNN), itl_pNN, tpot_pNN with NN one of 50, 90, 95, 99; error_rate, success_rate, rps, tokens_per_s, slo_attainment";

/// How a metric's value is written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Seconds; `ms`, `s` or bare seconds.
    Seconds,
    /// A fraction; `%` or a bare fraction.
    Fraction,
    /// A plain number.
    Plain,
}

impl Metric {
    /// The metric of a (case-insensitive) name, `None` if unknown.
    pub fn from_name(name: &str) -> Option<Metric> {
        let name = name.to_ascii_lowercase();
        let simple = match name.as_str() {
            "error_rate" => Some(Metric::ErrorRate),
            "success_rate" => Some(Metric::SuccessRate),
            "rps" => Some(Metric::Rps),
            "tokens_per_s" => Some(Metric::TokensPerS),
            "slo_attainment" => Some(Metric::SloAttainment),
            _ => None,
        };
        if simple.is_some() {
            return simple;
        }
        let (family, pct) = name.rsplit_once('_')?;
        let pct = Percentile::ALL.into_iter().find(|p| p.suffix() == pct)?;
        match family {
            "ttft" => Some(Metric::Ttft(pct)),
            "e2e" | "latency" => Some(Metric::E2e(pct)),
            "itl" => Some(Metric::Itl(pct)),
            "tpot" => Some(Metric::Tpot(pct)),
            _ => None,
        }
    }

    /// The canonical name (`latency_p95` is `e2e_p95`).
    pub fn name(self) -> String {
        match self {
            Metric::Ttft(p) => format!("ttft_{}", p.suffix()),
            Metric::E2e(p) => format!("e2e_{}", p.suffix()),
            Metric::Itl(p) => format!("itl_{}", p.suffix()),
            Metric::Tpot(p) => format!("tpot_{}", p.suffix()),
            Metric::ErrorRate => "error_rate".into(),
            Metric::SuccessRate => "success_rate".into(),
            Metric::Rps => "rps".into(),
            Metric::TokensPerS => "tokens_per_s".into(),
            Metric::SloAttainment => "slo_attainment".into(),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Metric::Ttft(_) | Metric::E2e(_) | Metric::Itl(_) | Metric::Tpot(_) => Kind::Seconds,
            Metric::ErrorRate | Metric::SuccessRate | Metric::SloAttainment => Kind::Fraction,
            Metric::Rps | Metric::TokensPerS => Kind::Plain,
        }
    }

    /// The metric's value in `client`, or why there is none.
    fn value(self, c: &ClientMetrics) -> Result<f64, String> {
        let pct = |d: &Distribution, p: Percentile, what: &str| {
            p.of(d)
                .ok_or_else(|| format!("no {what} {} (no request measured it)", p.suffix()))
        };
        match self {
            Metric::Ttft(p) => pct(&c.ttft_s, p, "TTFT"),
            Metric::E2e(p) => pct(&c.e2e_s, p, "E2E latency"),
            Metric::Itl(p) => pct(&c.itl_s, p, "inter-token latency"),
            Metric::Tpot(p) => pct(&c.tpot_s, p, "TPOT"),
            Metric::ErrorRate if c.total_requests == 0 => {
                Err("no error rate (no request was sent)".into())
            }
            Metric::ErrorRate => Ok(c.failed_requests as f64 / c.total_requests as f64),
            Metric::SuccessRate => c
                .success_rate
                .ok_or_else(|| "no success rate (no request was sent)".into()),
            Metric::Rps => c
                .requests_per_s
                .ok_or_else(|| "no request rate (no load duration)".into()),
            Metric::TokensPerS => c
                .output_tokens_per_s
                .ok_or_else(|| "no output token rate (no load duration)".into()),
            Metric::SloAttainment => match &c.slo_attainment {
                None => Err("no SLO attainment (run without --slo)".into()),
                Some(s) => s
                    .fraction
                    .ok_or_else(|| "no SLO attainment (no request was judged)".into()),
            },
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether `value OP limit` holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
        }
    }
}

/// Why a `--threshold` expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Not `METRIC OP VALUE`.
    #[error("expected METRIC OP VALUE with OP one of <, <=, >, >=")]
    Syntax,
    /// A metric name not in the list.
    #[error("unknown metric {0:?} (known: {KNOWN})")]
    UnknownMetric(String),
    /// A latency's value that is not a duration.
    #[error("{0:?} is not a duration (use ms or s)")]
    Duration(String),
    /// A rate's value that is not a fraction or percentage.
    #[error("{0:?} is not a rate (use a percentage like 5% or a fraction from 0 to 1)")]
    Rate(String),
    /// A value that is not a number.
    #[error("{0:?} is not a number (0 or more)")]
    Number(String),
}

/// One parsed `--threshold`: `metric op limit`, the limit in seconds for latencies and as a
/// fraction for rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given.
    pub expression: String,
    /// What it is about.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit, in the metric's base unit (seconds, fraction, per second).
    pub limit: f64,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let at = s.find(['<', '>']).ok_or(ThresholdError::Syntax)?;
        let (name, rest) = s.split_at(at);
        let (op, value) = match (rest.as_bytes()[0], rest.as_bytes().get(1)) {
            (b'<', Some(b'=')) => (Op::Le, &rest[2..]),
            (b'<', _) => (Op::Lt, &rest[1..]),
            (b'>', Some(b'=')) => (Op::Ge, &rest[2..]),
            (_, _) => (Op::Gt, &rest[1..]),
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || name.contains('=')
            || value.is_empty()
            || value.contains(['<', '>', '='])
        {
            return Err(ThresholdError::Syntax);
        }
        let metric = Metric::from_name(name)
            .ok_or_else(|| ThresholdError::UnknownMetric(name.to_string()))?;
        let limit = parse_value(metric.kind(), value)?;
        Ok(Threshold {
            expression: s.to_string(),
            metric,
            op,
            limit,
        })
    }
}

/// A non-negative finite number.
fn number(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn parse_value(kind: Kind, text: &str) -> Result<f64, ThresholdError> {
    let lower = text.to_ascii_lowercase();
    match kind {
        Kind::Seconds => {
            let v = if let Some(ms) = lower.strip_suffix("ms") {
                number(ms).map(|v| v / 1000.0)
            } else if let Some(s) = lower.strip_suffix('s') {
                number(s)
            } else {
                number(&lower)
            };
            v.ok_or_else(|| ThresholdError::Duration(text.to_string()))
        }
        Kind::Fraction => {
            let v = match lower.strip_suffix('%') {
                Some(p) => number(p).map(|v| v / 100.0),
                None => number(&lower),
            };
            v.filter(|v| *v <= 1.0)
                .ok_or_else(|| ThresholdError::Rate(text.to_string()))
        }
        Kind::Plain => number(&lower).ok_or_else(|| ThresholdError::Number(text.to_string())),
    }
}

impl Threshold {
    /// Judges the threshold against the client's figures (`None`: none measured). A missing
    /// value fails it.
    pub fn evaluate(&self, client: Option<&ClientMetrics>) -> ThresholdOutcome {
        let kind = self.metric.kind();
        let value = client
            .ok_or_else(|| "no client figures".to_string())
            .and_then(|c| self.metric.value(c));
        let limit = show(kind, self.limit);
        let (value, passed, reason) = match value {
            Ok(v) if self.op.holds(v, self.limit) => (
                Some(v),
                true,
                format!("{} {} {limit}", show(kind, v), self.op.as_str()),
            ),
            Ok(v) => (
                Some(v),
                false,
                format!("{} is not {} {limit}", show(kind, v), self.op.as_str()),
            ),
            Err(why) => (None, false, why),
        };
        ThresholdOutcome {
            expression: self.expression.clone(),
            metric: self.metric.name(),
            op: self.op.as_str().to_string(),
            limit: self.limit,
            value,
            passed,
            reason,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// Judges every threshold against the results' client figures.
pub fn evaluate(thresholds: &[Threshold], results: &LoadTestResults) -> Vec<ThresholdOutcome> {
    thresholds
        .iter()
        .map(|t| t.evaluate(results.client.as_ref()))
        .collect()
}

/// A value in its metric's unit, for people.
fn show(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Seconds => format!("{v:.3} s"),
        Kind::Fraction => format!("{:.2}%", v * 100.0),
        Kind::Plain => format!("{v:.3}"),
    }
}

/// The line printed for an outcome (seed 002's wording): `PASS ttft_p95<2s (0.412 s)` or
/// `WARNING ttft_p95<2s crossed: 2.310 s` (a missing value gives its reason instead).
pub fn line(o: &ThresholdOutcome) -> String {
    let kind = Metric::from_name(&o.metric).map_or(Kind::Plain, Metric::kind);
    match (o.passed, o.value) {
        (true, Some(v)) => format!("PASS {} ({})", o.expression, show(kind, v)),
        (_, Some(v)) => format!("WARNING {} crossed: {}", o.expression, show(kind, v)),
        (_, None) => format!("WARNING {} crossed: {}", o.expression, o.reason),
    }
}

#[cfg(test)]
mod tests;
