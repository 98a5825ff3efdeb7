//! Live progress shown while a load runs, as something to draw rather than a log line: the
//! aggregator thread hands a [`ProgressView`] a [`Snapshot`] at a fixed tick
//! ([`VIEW_TICK`]), from the counters and the HDR histogram it keeps anyway (the live
//! [`Figures`] the Pushgateway gets), so drawing costs the requests nothing. The binary
//! decides what a view is (`load-test --progress bar`: a terminal progress bar); the library
//! draws nothing itself.

use crate::telemetry::pushgateway::Figures;

/// How often the aggregator hands the view a snapshot.
pub const VIEW_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// What one load is: how its end is known, and the sweep step it is, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadShape {
    /// Requests to send (a list sent once); 0 when the load runs for a time or until its
    /// level ends.
    pub planned: u64,
    /// Seconds after the load's start at which nothing more is issued (a timed load: warm-up +
    /// duration + cool-down); `None` for a list.
    pub end_s: Option<f64>,
    /// The sweep step, as people read it (`step 2/5 at 8 in flight`); `None` outside a sweep.
    pub step: Option<String>,
}

/// The load so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// Requests finished, of every kind (both arms, warm-up and cool-down, GET tasks).
    pub done: u64,
    /// Seconds since the load started.
    pub elapsed_s: f64,
    /// The measured requests' live figures (the candidate's in an A/B run): rates since the
    /// start, HDR-histogram percentiles.
    pub figures: Figures,
}

/// Draws a load's progress. Called on the aggregator thread: an implementation must return
/// quickly (no network, no waiting on other threads).
pub trait ProgressView: Send + Sync {
    /// A load starts (a sweep calls this once per step).
    fn start(&self, shape: &LoadShape);
    /// The latest figures, every [`VIEW_TICK`].
    fn update(&self, now: &Snapshot);
    /// The load is over (every record received): the last figures.
    fn finish(&self, last: &Snapshot);
}

impl std::fmt::Debug for dyn ProgressView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressView")
    }
}
