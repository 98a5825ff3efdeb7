//! What `perf-decision` is asked to do, validated: [`DecideConfig`].

use std::path::PathBuf;

use crate::decision::statistics::verdict::{DecisionMethod, OnInconclusive};
use crate::decision::{MetricsSource, OnInvalid, Thresholds};
use crate::mlflow::MlflowConfig;

/// The experiment holding the performance runs by default (the seed's).
pub const DEFAULT_EXPERIMENT: &str = "vllm-lora-performance";
/// How long a decision waits for another one of the same model to release the lease.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// The alias naming the candidate by default (set by the evaluation gate, the seed's lifecycle).
pub const DEFAULT_CANDIDATE_ALIAS: &str = "eval-passed";

/// Whether and how the step talks to MLflow.
#[derive(Debug, Clone)]
pub enum MlflowMode {
    /// No MLflow at all (`--no-mlflow`, or `--baseline-file` without a tracking URI).
    Off,
    /// Read the baseline and record the decision.
    Record(MlflowConfig),
    /// Read the baseline, write nothing (`--dry-run`).
    DryRun(MlflowConfig),
}

/// Everything the step needs, validated by the binary.
#[derive(Debug, Clone)]
pub struct DecideConfig {
    /// `load_test_results.json` to judge.
    pub results_path: PathBuf,
    /// Where `perf_decision.json` and `perf_status.txt` go (created if missing).
    pub output_dir: PathBuf,
    /// Registered model name.
    pub model_name: String,
    /// Candidate version; else resolved from `candidate_alias`.
    pub candidate_version: Option<String>,
    /// Alias naming the candidate (`eval-passed`).
    pub candidate_alias: String,
    /// Experiment (`vllm-lora-performance`).
    pub experiment_name: String,
    /// Dataset name; else `eval-v{eval_data_version}`, else `eval-<digest>`.
    pub eval_dataset_name: Option<String>,
    /// Eval data version N, for the `eval-v{N}` dataset name.
    pub eval_data_version: Option<String>,
    /// Where the eval data lives (e.g. `s3://.../eval.jsonl`); else the path in the results.
    pub eval_data_source: Option<String>,
    /// Which figures feed checks 1–3.
    pub metrics_source: MetricsSource,
    /// Limits.
    pub thresholds: Thresholds,
    /// MLflow mode.
    pub mlflow: MlflowMode,
    /// A previous `perf_decision.json` to compare with instead of searching MLflow.
    pub baseline_file: Option<PathBuf>,
    /// An earlier `load_test_results.json` to compare with (`--baseline-results`): its figures
    /// and per-request samples are the baseline, instead of a passed decision.
    pub baseline_results: Option<PathBuf>,
    /// `--also-stored-baseline`: in a same-server A/B run, compare with the stored baseline
    /// too (checks `stored_baseline`), not only with the same-run arm.
    pub also_stored_baseline: bool,
    /// `--baseline-runs`: the baseline is the per-metric median of this many of the newest
    /// comparable passed runs (1: the newest, as the seed).
    pub baseline_runs: usize,
    /// `--baseline-alias`: the baseline is the passed run of the version holding this alias
    /// (e.g. `live`: what serves production), instead of the newest passed run.
    pub baseline_alias: Option<String>,
    /// `--fail-on-drift`: a metric that drifted beyond its tolerance from the passed runs of a
    /// month ago fails a check `drift` (else it is a warning).
    pub fail_on_drift: bool,
    /// How far back the drift check's reference runs are (`--drift-lookback-days`, 28 days).
    pub drift_lookback: std::time::Duration,
    /// `--decision`: the seed's checks decide (default), or the intervals do.
    pub decision_method: DecisionMethod,
    /// `--on-inconclusive`: what an inconclusive metric counts as under
    /// `--decision statistical`.
    pub on_inconclusive: OnInconclusive,
    /// Take any model's newest passed run as baseline (the seed's rule).
    pub baseline_any_model: bool,
    /// Fail the decision when the baseline did not run the same load (a fifth check,
    /// `comparable_baseline`; see [`crate::decision::comparability`]). Off by default: a comparative
    /// decision against an incomparable baseline otherwise only warns.
    pub require_comparable_baseline: bool,
    /// The floor of the `slo_attainment` check (`--min-slo-attainment`); `None`: no check.
    pub min_slo_attainment: Option<f64>,
    /// What an untrustworthy measurement makes of the decision: `invalid` (default) or, as
    /// the seed, `failed`.
    pub on_invalid: OnInvalid,
    /// How long to wait while another decision for the same model holds the lease.
    pub lock_wait: std::time::Duration,
    /// MLflow run name; else `perf-<model>-v<version>`.
    pub run_name: Option<String>,
    /// Warnings found while building the configuration (e.g. an ignored env var); copied into
    /// the decision's `warnings`.
    pub warnings: Vec<String>,
}
