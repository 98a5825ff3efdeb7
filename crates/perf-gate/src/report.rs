//! The reports people look at: `perf_decision_report.html` and `load_test_report.html`, each
//! one self-contained file (inline SVG plots drawn by `plotters`, an inline stylesheet, no
//! script, a Content-Security-Policy that lets nothing be fetched), and
//! `perf_decision_summary.md` for a CI or Argo step summary. Beside the load test's page, its
//! per-step outputs: `step_summary.json`, `summary.md`, and Locust's `stats.csv` and
//! `stats_history.csv` (each from the results alone, but the history, read from
//! `requests.jsonl`), pure functions from data to bytes.
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
pub(crate) mod load_files;
mod load_page;
mod locust_csv;
mod plots;
mod series;
mod stats_history;
mod step_summary;
mod steps;
pub(crate) mod summary;
mod summary_md;

#[cfg(test)]
mod tests;

pub use decision::{DecisionReport, HistoryPoint};
pub use locust_csv::STATS_HEADER;
pub use stats_history::{STATS_HISTORY_HEADER, StatsHistoryError};
pub use step_summary::{Percentiles, STEP_SUMMARY_VERSION, ServerLine, StepLine, StepSummary};

use crate::decide::PerfDecision;
use crate::results::LoadTestResults;

/// File name of the decision's HTML report inside `--output-dir`.
pub const DECISION_REPORT_FILE: &str = "perf_decision_report.html";
/// File name of the load test's HTML report inside `--output-dir` (the steps share one
/// directory, so the name carries the step).
pub const LOAD_TEST_REPORT_FILE: &str = "load_test_report.html";
/// File name of the decision's Markdown summary inside `--output-dir`.
pub const DECISION_SUMMARY_FILE: &str = "perf_decision_summary.md";
/// File name of the load test's per-step summary inside `--output-dir`.
pub const STEP_SUMMARY_FILE: &str = "step_summary.json";
/// File name of the load test's Markdown summary inside `--output-dir`.
pub const LOAD_TEST_SUMMARY_FILE: &str = "summary.md";
/// File name of the load test's Locust-style statistics inside `--output-dir`.
pub const STATS_CSV_FILE: &str = "stats.csv";
/// File name of the load test's Locust-style per-second history inside `--output-dir`.
pub const STATS_HISTORY_CSV_FILE: &str = "stats_history.csv";

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

/// `step_summary.json`: one flat line per step (a run of one load is one step): its load,
/// requests, errors, throughput, client latency percentiles (seconds) and server figures,
/// `null` where missing.
pub fn step_summary(results: &LoadTestResults) -> StepSummary {
    step_summary::render(results)
}

/// `summary.md`: the run's header, the per-step table, the thresholds as PASS/FAIL lines and
/// the warnings.
pub fn load_test_summary_markdown(results: &LoadTestResults) -> String {
    summary_md::render(results)
}

/// `stats.csv` as Locust writes it: a row per step and the `Aggregated` row, response times in
/// milliseconds (see [`STATS_HEADER`]).
pub fn locust_stats_csv(results: &LoadTestResults) -> String {
    locust_csv::stats(results)
}

/// `stats_history.csv` as Locust writes it, one `Aggregated` row per second of the load,
/// computed from the run's request records (`requests.jsonl`, read a line at a time).
pub fn locust_stats_history_csv(
    results: &LoadTestResults,
    records: impl std::io::BufRead,
) -> Result<String, StatsHistoryError> {
    stats_history::render(results, records)
}
