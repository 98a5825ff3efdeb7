//! The `perf-decision` step end to end: read the results, find the baseline, decide, record
//! the decision in MLflow, write `perf_decision.json` and `perf_status.txt`.
//!
//! Order of MLflow calls (each retried by the client): registered model, candidate version (by
//! `--candidate-version` or the alias `--candidate-alias`), experiment (get or create), baseline
//! search (before the new run exists, so a run never becomes its own baseline), run create,
//! log-batch (params, metrics, tags), log-inputs (dataset), artifact `load_test_results.json`,
//! alias set on the candidate and the other alias deleted, model-version tags, artifact
//! `perf_decision.json`, tag `perf_decision`, run FINISHED. Any failure after the run exists
//! marks it FAILED (KILLED on a signal); since the `perf_decision` tag comes last and the
//! baseline search asks for FINISHED runs, such a run can never become a baseline.
//!
//! Files: on success `perf_decision.json` then `perf_status.txt` (`passed`/`failed`), both
//! atomically; on any error `perf_status.txt` says `error` and no `perf_decision.json` is left.

mod build;
mod remote;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checks::{Verdict, decide};
use super::document::{
    BaselineFileError, DECISION_FILE, PerfDecision, STATUS_ERROR, STATUS_FILE, read_baseline_file,
};
use super::metrics::{CheckKeys, MetricsSource, candidate_metrics};
use super::thresholds::{ThresholdError, Thresholds};
use crate::mlflow::{MlflowClient, MlflowConfig, MlflowError};
use crate::results::{LoadTestResults, ResultsError, RunStatus};

pub use build::{baseline_filter, build_batch, dataset_record};

/// The aliases the step sets; only one of the two exists on a model at a time.
pub const ALIAS_PASSED: &str = "perf-passed";
/// See [`ALIAS_PASSED`].
pub const ALIAS_FAILED: &str = "perf-failed";

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
pub struct StepConfig {
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
    /// Take any model's newest passed run as baseline (the seed's rule).
    pub baseline_any_model: bool,
    /// MLflow run name; else `perf-<model>-v<version>`.
    pub run_name: Option<String>,
}

/// The step could not make or record a decision.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The results file is missing, empty, malformed or of another schema version.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The results are not `completed`.
    #[error("{path} has status `{status}`{}; only `completed` results can be judged", .error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NotCompleted {
        /// Results file.
        path: String,
        /// Status found.
        status: &'static str,
        /// The results' own error line.
        error: Option<String>,
    },
    /// A threshold is out of range.
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    /// The baseline file is unusable.
    #[error(transparent)]
    BaselineFile(#[from] BaselineFileError),
    /// Another input problem (names, flags).
    #[error("{0}")]
    Input(String),
    /// An MLflow call failed, or MLflow does not know the model, version or alias.
    #[error("{context}")]
    Mlflow {
        /// What the step was doing.
        context: String,
        /// The client's error.
        #[source]
        source: MlflowError,
    },
    /// An output file could not be written.
    #[error("cannot write {path}")]
    Output {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// SIGINT/SIGTERM arrived before the decision was recorded.
    #[error("aborted by a signal before the decision was recorded")]
    Aborted,
}

impl StepError {
    /// The documented exit code (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::exit::*;
        match self {
            StepError::Mlflow {
                source: MlflowError::Config(_),
                ..
            } => BAD_INPUT,
            StepError::Mlflow { .. } => DEPENDENCY,
            StepError::Aborted => ABORTED,
            StepError::Results(_)
            | StepError::NotCompleted { .. }
            | StepError::Thresholds(_)
            | StepError::BaselineFile(_)
            | StepError::Input(_)
            | StepError::Output { .. } => BAD_INPUT,
        }
    }

    pub(crate) fn mlflow(context: impl Into<String>) -> impl FnOnce(MlflowError) -> StepError {
        let context = context.into();
        move |source| StepError::Mlflow { context, source }
    }
}

/// Runs the step. On error, `perf_status.txt` says `error` and no `perf_decision.json` is left
/// in the output directory.
pub async fn run_step(
    cfg: &StepConfig,
    cancel: &CancellationToken,
) -> Result<PerfDecision, StepError> {
    let result = run_inner(cfg, cancel).await;
    if result.is_err() {
        write_error_status(&cfg.output_dir);
    }
    result
}

/// Marks the output directory as "no decision": `perf_status.txt` = `error`, and any
/// `perf_decision.json` from an earlier run removed. Best effort (failures are logged).
pub fn write_error_status(output_dir: &Path) {
    let decision = output_dir.join(DECISION_FILE);
    match std::fs::remove_file(&decision) {
        Ok(()) => warn!(path = %decision.display(), "removed a stale decision file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(path = %decision.display(), error = %e, "cannot remove stale decision file")
        }
    }
    let status = output_dir.join(STATUS_FILE);
    let written = std::fs::create_dir_all(output_dir)
        .and_then(|()| crate::fsio::write_atomic(&status, format!("{STATUS_ERROR}\n").as_bytes()));
    if let Err(e) = written {
        warn!(path = %status.display(), error = %e, "cannot write status file");
    }
}

/// Runs `fut` unless `cancel` fires first.
async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    tokio::select! {
        r = fut => r,
        () = cancel.cancelled() => Err(StepError::Aborted),
    }
}

async fn run_inner(
    cfg: &StepConfig,
    cancel: &CancellationToken,
) -> Result<PerfDecision, StepError> {
    std::fs::create_dir_all(&cfg.output_dir).map_err(|source| StepError::Output {
        path: cfg.output_dir.display().to_string(),
        source,
    })?;
    let results = LoadTestResults::read(&cfg.results_path)?;
    if results.status != RunStatus::Completed {
        return Err(StepError::NotCompleted {
            path: cfg.results_path.display().to_string(),
            status: results.status.as_str(),
            error: results.error.clone(),
        });
    }
    cfg.thresholds.validate()?;
    let file_baseline = match &cfg.baseline_file {
        Some(p) => Some(read_baseline_file(
            p,
            &cfg.model_name,
            cfg.baseline_any_model,
        )?),
        None => None,
    };
    let metrics = candidate_metrics(&results);
    let keys = CheckKeys::for_source(cfg.metrics_source);
    let mut draft = build::Draft::new(cfg, &results, metrics);

    let (client, config, dry_run) = match &cfg.mlflow {
        MlflowMode::Off => {
            info!("MLflow disabled: deciding from files only (nothing is recorded in MLflow)");
            draft.baseline = file_baseline;
            let eval = decide(
                &draft.metrics,
                draft.baseline_metrics(),
                &cfg.thresholds,
                &keys,
            );
            let doc = draft.finish(eval, None);
            write_outputs(&cfg.output_dir, &doc)?;
            return Ok(doc);
        }
        MlflowMode::Record(c) => (MlflowClient::new(c), c, false),
        MlflowMode::DryRun(c) => (MlflowClient::new(c), c, true),
    };
    let client = client.map_err(StepError::mlflow("cannot set up the MLflow client"))?;
    info!(tracking_uri = %config.base_url(), auth = config.auth.kind(), dry_run, "using MLflow");

    let resolved = cancellable(
        cancel,
        remote::resolve(&client, cfg, file_baseline.is_none(), !dry_run),
    )
    .await?;
    draft.set_version(&resolved);
    draft.baseline = file_baseline.or(resolved.baseline.clone());
    match &draft.baseline {
        Some(b) => {
            info!(run_id = ?b.run_id, source = ?b.source, "baseline found: comparative mode")
        }
        None => info!("no passed baseline run: absolute mode"),
    }
    let eval = decide(
        &draft.metrics,
        draft.baseline_metrics(),
        &cfg.thresholds,
        &keys,
    );
    info!(
        decision = eval.verdict.as_str(),
        mode = eval.mode.as_str(),
        "decided"
    );

    let mut record =
        remote::mlflow_record(&client, cfg, resolved.experiment.as_ref(), eval.verdict);
    if dry_run {
        record.alias_set = None;
        record.alias_removed = None;
        let doc = draft.finish(eval, Some(record));
        write_outputs(&cfg.output_dir, &doc)?;
        return Ok(doc);
    }

    let experiment = resolved.experiment.as_ref().ok_or_else(|| {
        StepError::Input("invariant: the experiment exists when recording".into())
    })?;
    let version = resolved.version.as_ref().ok_or_else(|| {
        StepError::Input("invariant: the candidate version is resolved when recording".into())
    })?;
    let run = cancellable(
        cancel,
        remote::create_run(&client, cfg, experiment, version),
    )
    .await?;
    record.run_id = Some(run.info.run_id.clone());
    record.run_url = Some(remote::run_url(&client, experiment, &run.info.run_id));
    let verdict = eval.verdict;
    let doc = draft.finish(eval, Some(record));
    let recorded = cancellable(
        cancel,
        remote::record(&client, cfg, &run.info, version, &doc, &results),
    )
    .await;
    if let Err(e) = recorded {
        remote::fail_run(&client, &run.info.run_id, matches!(e, StepError::Aborted)).await;
        return Err(e);
    }
    info!(run_id = %run.info.run_id, decision = verdict.as_str(), "decision recorded in MLflow");
    write_outputs(&cfg.output_dir, &doc)?;
    Ok(doc)
}

/// Writes `perf_decision.json`, then `perf_status.txt`, each atomically.
fn write_outputs(dir: &Path, doc: &PerfDecision) -> Result<(), StepError> {
    let decision = dir.join(DECISION_FILE);
    crate::fsio::write_json_atomic(&decision, doc).map_err(|source| StepError::Output {
        path: decision.display().to_string(),
        source,
    })?;
    let status = dir.join(STATUS_FILE);
    let word = match doc.decision {
        Verdict::Passed => "passed\n",
        Verdict::Failed => "failed\n",
    };
    crate::fsio::write_atomic(&status, word.as_bytes()).map_err(|source| StepError::Output {
        path: status.display().to_string(),
        source,
    })
}
