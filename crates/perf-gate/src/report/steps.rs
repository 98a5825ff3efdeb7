//! The steps of a run as the per-step outputs (`step_summary.json`, `summary.md`, `stats.csv`)
//! see them: a sweep's [`StepResult`]s, or a run of one load read as a single step built from
//! the top-level figures.

use crate::results::{ClientMetrics, LoadTestResults, ServerMetrics, StepResult, ThresholdOutcome};

/// One step of a run, borrowed from the results.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepView<'a> {
    /// 0-based position in the sweep.
    pub(crate) index: u32,
    /// Requests in flight (closed loop).
    pub(crate) concurrency: Option<u32>,
    /// Requests per second (open loop).
    pub(crate) rate: Option<f64>,
    /// First request sent (RFC 3339), when the load started.
    pub(crate) load_start: Option<&'a str>,
    /// Last request finished (RFC 3339), when the load started.
    pub(crate) load_end: Option<&'a str>,
    /// Measured duration, seconds.
    pub(crate) duration_s: Option<f64>,
    /// Client figures (absent: the load never started).
    pub(crate) client: Option<&'a ClientMetrics>,
    /// Server figures over the step's window.
    pub(crate) server: Option<&'a ServerMetrics>,
    /// Why the server figures are absent or mixed.
    pub(crate) server_note: Option<&'a str>,
    /// The step's own threshold outcomes.
    pub(crate) thresholds: &'a [ThresholdOutcome],
}

impl<'a> StepView<'a> {
    fn of(s: &'a StepResult) -> Self {
        StepView {
            index: s.index,
            concurrency: s.concurrency,
            rate: s.rate,
            load_start: Some(&s.load_start),
            load_end: Some(&s.load_end),
            duration_s: Some(s.duration_s),
            client: Some(&s.client),
            server: s.server.as_ref(),
            server_note: s.server_note.as_deref(),
            thresholds: &s.thresholds,
        }
    }

    /// The load as a short label: `c=4`, `rate=2.5/s`, or `staged load` (`--stages`).
    pub(crate) fn load_label(&self) -> String {
        match (self.rate, self.concurrency) {
            (Some(r), _) => format!("rate={}/s", super::html::num(r)),
            (None, Some(c)) => format!("c={c}"),
            (None, None) => "staged load".into(),
        }
    }
}

/// The run's steps: `results.steps`, or the whole run as step 0 when it has none (a run of
/// one load: its concurrency (none with `--stages`), or its rate for an open loop, and the top-level figures; the
/// run-level thresholds are its own).
pub(crate) fn steps(r: &LoadTestResults) -> Vec<StepView<'_>> {
    if !r.steps.is_empty() {
        return r.steps.iter().map(StepView::of).collect();
    }
    let timing = r.timing.as_ref();
    vec![StepView {
        index: 0,
        // a staged closed loop has no one level (--concurrency is not used): none, so the
        // history counts the requests in flight instead
        concurrency: (r.config.rate.is_none() && r.config.stages.is_none())
            .then_some(r.config.concurrency),
        rate: r.config.rate,
        load_start: timing.map(|t| t.load_start.as_str()),
        load_end: timing.map(|t| t.load_end.as_str()),
        duration_s: timing.map(|t| t.load_duration_s),
        client: r.client.as_ref(),
        server: r.server.as_ref(),
        server_note: None,
        thresholds: &r.thresholds,
    }]
}

/// The endpoint the requests went to, as a path (`auto` may have sent each prompt to either).
pub(crate) fn endpoint_name(r: &LoadTestResults) -> &'static str {
    match r.config.endpoint.as_str() {
        "completions" => "/v1/completions",
        "chat" => "/v1/chat/completions",
        _ => "/v1/completions, /v1/chat/completions",
    }
}
