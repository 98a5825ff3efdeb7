//! The performance decision's pure parts (no I/O): four checks against absolute floors and,
//! when a baseline exists, bounds relative to it ([`checks`]); the metrics they read
//! ([`metrics`]); the limits ([`thresholds`]); the settings that shape a load
//! ([`load_settings`]); whether the baseline ran the same load ([`comparability`]) and
//! cross-checks of the results ([`crosschecks`]), both warnings that never change the four
//! checks. The `perf-decision` step that ties them to MLflow and files is [`crate::decide`].

pub mod checks;
pub mod comparability;
pub mod crosschecks;
pub mod drift;
pub mod load_settings;
pub mod metrics;
pub mod resolution;
pub mod slo;
pub mod statistics;
pub mod thresholds;
pub mod validity;

pub use checks::{CheckName, CheckResult, Evaluation, Mode, Verdict, decide};
pub use comparability::{Comparability, comparable_check};
pub use load_settings::LoadSettings;
pub use metrics::{CheckKeys, MetricMap, MetricsSource, candidate_metrics};
pub use thresholds::{ThresholdError, Thresholds};
pub use validity::OnInvalid;
