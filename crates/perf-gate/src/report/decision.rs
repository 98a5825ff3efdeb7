//! `perf_decision_report.html`: the verdict, the checks, the statistical intervals, the load
//! of the candidate beside its baseline's, and the drift of the passed runs before it.

use std::collections::BTreeMap;

use plotters::style::RGBColor;

use super::html::{self, Cell, esc, figure, missing, notes, num, opt_num, table};
use super::load::{self, ArmView};
use super::plots::{self, AMBER, FAIL, INVALID, Mark, PASS, Panel, Row};
use crate::decide::PerfDecision;
use crate::decision::checks::{CheckResult, Op, Verdict};
use crate::decision::statistics::Outcome;
use crate::decision::statistics::verdict::{RichVerdict, Statistics};
use crate::results::LoadTestResults;

/// One earlier passed run in the drift history (oldest first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPoint {
    /// The run's MLflow id.
    pub run_id: String,
    /// What the x axis shows for it, e.g. the model version.
    pub label: String,
    /// When it ran (RFC 3339), if known.
    pub time: Option<String>,
    /// Its metrics, under the names of [`PerfDecision::metrics`].
    pub values: BTreeMap<String, f64>,
}

/// Everything `perf_decision_report.html` shows.
#[derive(Debug, Clone, Copy)]
pub struct DecisionReport<'a> {
    /// The decision document.
    pub decision: &'a PerfDecision,
    /// The candidate's results (for the distributions and over-time plots), if at hand.
    pub candidate: Option<&'a LoadTestResults>,
    /// The baseline's results (another run), if at hand; a same-server A/B's baseline arm is
    /// taken from `candidate` when this is absent.
    pub baseline: Option<&'a LoadTestResults>,
    /// Metric history of earlier passed runs, oldest first.
    pub history: &'a [HistoryPoint],
}

/// The verdict word and its CSS class (the same word).
pub(crate) fn verdict_word(d: &PerfDecision) -> &'static str {
    match d.verdict {
        Some(v) => v.as_str(),
        None => d.decision.as_str(),
    }
}

fn verdict_color(d: &PerfDecision) -> RGBColor {
    match (d.verdict, d.decision) {
        (Some(RichVerdict::Inconclusive), _) => AMBER,
        (Some(RichVerdict::Invalid), _) | (None, Verdict::Invalid) => INVALID,
        (Some(RichVerdict::Failed), _) | (None, Verdict::Failed) => FAIL,
        _ => PASS,
    }
}

pub(crate) fn outcome_class(o: Outcome) -> &'static str {
    o.as_str()
}

fn outcome_color(o: Outcome) -> RGBColor {
    match o {
        Outcome::Passed => PASS,
        Outcome::Failed => FAIL,
        Outcome::Inconclusive => AMBER,
    }
}

/// The check's name as the decision file spells it.
pub(crate) fn check_name(c: &CheckResult) -> String {
    serde_json::to_value(c.name)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", c.name))
}

pub(crate) fn op(o: Op) -> &'static str {
    match o {
        Op::Lt => "<",
        Op::Le => "≤",
        Op::Gt => ">",
        Op::Ge => "≥",
    }
}

/// The page (see [`super::render_decision`]).
pub(crate) fn render(r: &DecisionReport) -> String {
    let d = r.decision;
    let word = verdict_word(d);
    let mut body = banner(d, word);
    if !d.invalid_reasons.is_empty() {
        body.push_str(&notes(
            "Why the measurement cannot be trusted",
            &d.invalid_reasons,
        ));
    }
    body.push_str(&checks(d));
    body.push_str(&statistics(d.statistics.as_ref(), d));
    body.push_str(&loads(r));
    body.push_str(&metrics_table(d));
    body.push_str(&drift(r));
    body.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n");
    body.push_str(&notes("Warnings", &d.warnings));
    if let Some(b) = &d.baseline {
        body.push_str(&notes("Baseline not comparable", &b.comparability));
        body.push_str(&notes("Newer runs passed over as baseline", &b.skipped));
    }
    body.push_str(&notes("Departures from the seed", &d.departures));
    body.push_str("</section>\n");
    body.push_str(&format!(
        "<footer>{} {}, decision schema version {}, decided at {}{}</footer>\n",
        esc(&d.tool.name),
        esc(&d.tool.version),
        d.schema_version,
        esc(&d.decided_at),
        d.decision_key
            .as_ref()
            .map(|k| format!(", decision key {}", esc(k)))
            .unwrap_or_default()
    ));
    html::page(&format!("perf-decision: {word}, {}", d.model_name), &body)
}

fn banner(d: &PerfDecision, word: &str) -> String {
    let version = match (&d.candidate_version, &d.candidate_alias) {
        (Some(v), Some(a)) => format!("version {} (alias {})", esc(v), esc(a)),
        (Some(v), None) => format!("version {}", esc(v)),
        (None, _) => "no registered version".into(),
    };
    let mut method = d.decision_method.as_str().to_string();
    if let Some(o) = d.on_inconclusive {
        method.push_str(&format!(", inconclusive counts as {}", o.as_str()));
    }
    let baseline = match &d.baseline {
        None => "no baseline (absolute mode)".to_string(),
        Some(b) => format!(
            "baseline {} {}",
            esc(b.version.as_deref().map_or("(version unknown)", |v| v)),
            esc(b.run_id.as_deref().or(b.file.as_deref()).unwrap_or(""))
        ),
    };
    let mlflow = d
        .mlflow
        .as_ref()
        .and_then(|m| m.run_url.as_deref())
        .map(|u| format!("<p>{}</p>\n", html::link(u, "the MLflow run")))
        .unwrap_or_default();
    format!(
        "<header class=\"banner {word}\">\n<h1>perf-decision: {word}</h1>\n\
         <p>model {} {version}, adapter {}</p>\n\
         <p>{} mode, {method} decision, {} figures; {baseline}</p>\n\
         <p>decided at {}{}</p>\n{mlflow}</header>\n",
        esc(&d.model_name),
        esc(d.candidate_adapter.as_deref().unwrap_or("unknown")),
        d.mode.as_str(),
        d.metrics_source.as_str(),
        esc(&d.decided_at),
        if d.dry_run {
            " (dry run: nothing recorded)"
        } else {
            ""
        },
    )
}

fn checks(d: &PerfDecision) -> String {
    let mut out = String::from("<section id=\"checks\">\n<h2>Checks</h2>\n");
    if d.checks.is_empty() {
        out.push_str(&missing("no check was made"));
        out.push_str("</section>\n");
        return out;
    }
    let rows: Vec<Vec<Cell>> = d
        .checks
        .iter()
        .map(|c| {
            vec![
                Cell::Verdict(if c.passed { "passed" } else { "failed" }),
                Cell::Text(check_name(c)),
                Cell::Text(c.metric.clone()),
                Cell::Num(opt_num(c.value)),
                Cell::Num(format!("{} {}", op(c.absolute_op), num(c.absolute_limit))),
                Cell::Num(
                    c.relative_limit
                        .map(|l| format!("{} {}", op(c.relative_op), num(l)))
                        .unwrap_or_default(),
                ),
                Cell::Num(c.baseline_value.map(num).unwrap_or_default()),
                Cell::Text(c.reason.clone()),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "result",
            "check",
            "metric",
            "value",
            "limit",
            "vs baseline",
            "baseline",
            "reason",
        ],
        &rows,
    ));
    let gauges: Vec<Row> = d.checks.iter().map(check_row).collect();
    let title = "Checks";
    out.push_str(&figure(
        "plot-checks",
        title,
        "Each check's value (green: passed, red: failed) against its limits (grey lines); the shaded band passes.",
        plots::rows(title, &gauges),
    ));
    out.push_str("</section>\n");
    out
}

fn check_row(c: &CheckResult) -> Row {
    let mut marks = vec![Mark {
        at: c.absolute_limit,
        label: format!("{} {}", op(c.absolute_op), num(c.absolute_limit)),
    }];
    if let Some(l) = c.relative_limit {
        marks.push(Mark {
            at: l,
            label: format!("{} {} (baseline)", op(c.relative_op), num(l)),
        });
    }
    let upper = matches!(c.absolute_op, Op::Lt | Op::Le);
    let bound = c.relative_limit.map_or(c.absolute_limit, |l| {
        if upper {
            l.min(c.absolute_limit)
        } else {
            l.max(c.absolute_limit)
        }
    });
    Row {
        label: format!("{} ({})", check_name(c), c.metric),
        point: c.value,
        interval: None,
        color: if c.passed { PASS } else { FAIL },
        marks,
        allowed: Some(if upper {
            (None, Some(bound))
        } else {
            (Some(bound), None)
        }),
    }
}

fn statistics(s: Option<&Statistics>, d: &PerfDecision) -> String {
    let mut out = String::from("<section id=\"statistics\">\n<h2>Statistical verdict</h2>\n");
    let Some(s) = s else {
        let why = if d.baseline.is_none() {
            "no statistical comparison: there is no baseline (absolute mode)"
        } else {
            "no statistical comparison: the candidate or the baseline has no per-request samples"
        };
        out.push_str(&missing(why));
        out.push_str("</section>\n");
        return out;
    };
    out.push_str(&format!(
        "<p>Outcome <strong class=\"{0}\">&nbsp;{0}&nbsp;</strong>: {1} arms, family confidence {2} % \
         (each interval at {3} %), {4} resamples.</p>\n",
        outcome_class(s.outcome),
        esc(&s.pairing),
        num(100.0 * s.confidence_level),
        num(100.0 * (1.0 - s.per_metric_alpha)),
        s.resamples
    ));
    let rows: Vec<Row> = s
        .metrics
        .iter()
        .map(|m| {
            let ratio = m.name.ends_with("_ratio");
            let higher_worse = m.worse == "higher";
            Row {
                label: format!("{} ({} is worse)", m.name, m.worse),
                point: m.point,
                interval: m.lo.zip(m.hi),
                color: outcome_color(m.outcome),
                marks: {
                    let equal = if ratio { 1.0 } else { 0.0 };
                    let mut marks = vec![Mark {
                        at: m.limit,
                        label: format!("limit {}", num(m.limit)),
                    }];
                    // "no difference", unless it is the limit itself (a zero tolerance)
                    if (m.limit - equal).abs() > 1e-12 {
                        marks.push(Mark {
                            at: equal,
                            label: format!("equal ({})", num(equal)),
                        });
                    }
                    marks
                },
                allowed: Some(if higher_worse {
                    (None, Some(m.limit))
                } else {
                    (Some(m.limit), None)
                }),
            }
        })
        .collect();
    let title = "Statistical verdict";
    out.push_str(&figure(
        "plot-statistics",
        title,
        "Each judged metric's confidence interval and point estimate (green: within the tolerance, red: wholly beyond it, amber: straddles it).",
        plots::rows(title, &rows),
    ));
    let table_rows: Vec<Vec<Cell>> = s
        .metrics
        .iter()
        .map(|m| {
            vec![
                Cell::Verdict(outcome_class(m.outcome)),
                Cell::Text(m.name.clone()),
                Cell::Num(opt_num(m.point)),
                Cell::Num(match (m.lo, m.hi) {
                    (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
                    _ => "none".into(),
                }),
                Cell::Num(num(m.limit)),
                Cell::Text(m.method.clone()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["outcome", "metric", "point", "interval", "limit", "method"],
        &table_rows,
    ));
    if !s.rank_tests.is_empty() {
        let rt: Vec<Vec<Cell>> = s
            .rank_tests
            .iter()
            .map(|t| {
                vec![
                    Cell::Text(t.metric.clone()),
                    Cell::Num(num(t.prob_candidate_slower)),
                    Cell::Num(num(t.p_value)),
                ]
            })
            .collect();
        out.push_str("<h3>Mann–Whitney U tests (for information)</h3>\n");
        out.push_str(&table(&["latency", "P(candidate slower)", "p-value"], &rt));
    }
    out.push_str(&notes("What the intervals assume", &s.notes));
    out.push_str("</section>\n");
    out
}

fn loads(r: &DecisionReport) -> String {
    let Some(candidate) = r.candidate else {
        return format!(
            "<section id=\"client\">\n<h2>The load</h2>\n{}</section>\n",
            missing(
                "the candidate's results were not given to the report: no distributions or over-time plots"
            )
        );
    };
    let mut arms = vec![ArmView::candidate(candidate)];
    match r.baseline {
        Some(b) => arms.push(ArmView::baseline_run(b)),
        None => arms.extend(ArmView::same_run_baseline(candidate)),
    }
    let mut out = String::new();
    if arms.len() == 1 && r.decision.baseline.is_some() {
        out.push_str(&missing(
            "the baseline's results were not given to the report: the plots show the candidate alone",
        ));
    }
    out.push_str(&load::sections(&arms, Some(candidate.config.concurrency)));
    out
}

fn metrics_table(d: &PerfDecision) -> String {
    let empty = BTreeMap::new();
    let base = d.baseline.as_ref().map_or(&empty, |b| &b.metrics);
    let names: std::collections::BTreeSet<&String> = d.metrics.keys().chain(base.keys()).collect();
    let show = |m: Option<&crate::results::Measured>| match m {
        None => String::new(),
        Some(m) => match (m.get(), &m.reason) {
            (Some(v), _) => num(v),
            (None, Some(r)) => format!("missing: {r}"),
            (None, None) => "missing".into(),
        },
    };
    let rows: Vec<Vec<Cell>> = names
        .into_iter()
        .map(|n| {
            vec![
                Cell::Text(n.clone()),
                Cell::Num(show(d.metrics.get(n))),
                Cell::Num(show(base.get(n))),
            ]
        })
        .collect();
    format!(
        "<section id=\"metrics\">\n<h2>Decision metrics</h2>\n{}</section>\n",
        table(&["metric", "candidate", "baseline"], &rows)
    )
}

/// The metrics the drift plot follows: those the checks read, then any other the history has,
/// at most six.
fn drift_metrics(r: &DecisionReport) -> Vec<String> {
    let in_history = |m: &str| r.history.iter().any(|h| h.values.contains_key(m));
    let mut out: Vec<String> = Vec::new();
    for c in &r.decision.checks {
        if in_history(&c.metric) && !out.contains(&c.metric) {
            out.push(c.metric.clone());
        }
    }
    let all: std::collections::BTreeSet<&String> =
        r.history.iter().flat_map(|h| h.values.keys()).collect();
    for m in all {
        if out.len() >= 6 {
            break;
        }
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out.truncate(6);
    out
}

fn drift(r: &DecisionReport) -> String {
    let mut out = String::from("<section id=\"drift\">\n<h2>Drift history</h2>\n");
    let metrics = drift_metrics(r);
    if r.history.is_empty() || metrics.is_empty() {
        out.push_str(&missing(
            "no history of earlier passed runs was given: the drift plot is not drawn",
        ));
        out.push_str("</section>\n");
        return out;
    }
    let d = r.decision;
    let mut runs: Vec<String> = r.history.iter().map(|h| h.label.clone()).collect();
    runs.push(format!(
        "{} (now)",
        d.candidate_version.as_deref().unwrap_or("candidate")
    ));
    let now = r.history.len() as f64;
    let color = verdict_color(d);
    let panels: Vec<Panel> = metrics
        .iter()
        .map(|m| Panel {
            metric: m.clone(),
            history: r
                .history
                .iter()
                .enumerate()
                .filter_map(|(i, h)| Some((i as f64, *h.values.get(m)?)))
                .collect(),
            current: d
                .metrics
                .get(m)
                .and_then(|v| v.get())
                .map(|v| (now, v, color)),
        })
        .collect();
    let title = "Drift history";
    out.push_str(&figure(
        "plot-drift",
        title,
        &format!(
            "Each metric over the last {} passed runs (oldest first, blue) and this run (last, in the verdict's colour).",
            r.history.len()
        ),
        plots::small_multiples(title, &runs, &panels),
    ));
    let rows: Vec<Vec<Cell>> = r
        .history
        .iter()
        .map(|h| {
            vec![
                Cell::Text(h.label.clone()),
                Cell::Text(h.run_id.clone()),
                Cell::Text(h.time.clone().unwrap_or_default()),
            ]
        })
        .collect();
    out.push_str(&table(&["run", "MLflow run id", "time"], &rows));
    out.push_str("</section>\n");
    out
}
