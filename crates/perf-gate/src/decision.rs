//! The performance decision: four checks against absolute floors and, when a baseline exists,
//! bounds relative to it (pure functions in [`checks`]); the metrics they read ([`metrics`]);
//! the limits ([`thresholds`]); whether the baseline ran the same load ([`comparability`]) and
//! cross-checks of the results ([`crosschecks`]), both warnings that never change the four
//! checks; the `perf_decision.json` document ([`document`]); and the `perf-decision` step that
//! ties them to MLflow ([`step`]).

pub mod checks;
pub mod comparability;
pub mod crosschecks;
pub mod document;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod step;
pub mod thresholds;

pub use checks::{CheckName, CheckResult, Evaluation, Mode, Verdict, decide};
pub use comparability::{Comparability, LoadSettings, comparable_check};
pub use document::{
    BaselineRecord, BaselineSource, DECISION_FILE, DECISION_SCHEMA_VERSION, PerfDecision,
    STATUS_FILE, read_baseline_file,
};
pub use metrics::{CheckKeys, MetricMap, MetricsSource, candidate_metrics};
pub use step::{MlflowMode, StepConfig, StepError, mark_undecided, run_step, write_error_status};
pub use thresholds::Thresholds;
