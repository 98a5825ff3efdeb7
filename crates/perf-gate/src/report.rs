//! The reports people look at: `perf_decision_report.html` and `load_test_report.html`, each
//! one self-contained file (inline SVG plots drawn by `plotters`, an inline stylesheet, no
//! script, a Content-Security-Policy that lets nothing be fetched), and
//! `perf_decision_summary.md` for a CI or Argo step summary.
//!
//! What the pages show: the verdict; the checks against their limits (green passed, red
//! failed); the statistical intervals against their tolerances (amber: inconclusive); the TTFT
//! and E2E distributions of the candidate beside the baseline; latency, throughput and
//! requests in flight over the load; the drift of the metrics over earlier passed runs. Any of
//! it may be missing from the inputs (a results file without per-request samples, a decision
//! without a baseline): the page says so in words and shows the rest.
//!
//! Rendering is pure and deterministic (same input, same bytes: no clock, no hash order) and
//! bounded: curves and scatter plots are thinned to a few thousand points, so a load of
//! 100 000 requests reads and renders in tens of milliseconds (optimised build). Every string
//! from the documents is escaped.

mod decision;
pub(crate) mod html;
mod load;
mod load_page;
mod plots;
mod series;
pub(crate) mod summary;

#[cfg(test)]
mod tests;

pub use decision::{DecisionReport, HistoryPoint};

use crate::decide::PerfDecision;
use crate::results::LoadTestResults;

/// File name of the decision's HTML report inside `--output-dir`.
pub const DECISION_REPORT_FILE: &str = "perf_decision_report.html";
/// File name of the load test's HTML report inside `--output-dir` (the steps share one
/// directory, so the name carries the step).
pub const LOAD_TEST_REPORT_FILE: &str = "load_test_report.html";
/// File name of the decision's Markdown summary inside `--output-dir`.
pub const DECISION_SUMMARY_FILE: &str = "perf_decision_summary.md";

/// `perf_decision_report.html`: the verdict, checks, statistical intervals, the candidate's
/// and baseline's loads (when their results are given) and the drift history.
pub fn render_decision(r: &DecisionReport) -> String {
    decision::render(r)
}

/// `load_test_report.html`: one load's figures, distributions and over-time plots; both arms
/// when the results hold a same-server A/B (`baseline_arm`).
pub fn render_load_test(results: &LoadTestResults) -> String {
    load_page::render(results)
}

/// `perf_decision_summary.md`: the verdict line, the checks (✅/❌), the statistical intervals
/// when present, the warnings, and a link to the MLflow run when there is one.
pub fn decision_summary_markdown(d: &PerfDecision) -> String {
    summary::render(d)
}
