//! The `perf-decision` step end to end: read the results, find the baseline, decide, record
//! the decision in MLflow, write `perf_decision.json` and `perf_status.txt`.
//!
//! Order of MLflow calls (each retried by the client when that is safe): registered model,
//! candidate version (by `--candidate-version` or the alias `--candidate-alias`; it must be
//! READY), experiment (get or create; it must be active), baseline search (before the new run
//! exists, so a run never becomes its own baseline), run create, then the evidence: log-batch
//! (params, metrics, tags), log-inputs (dataset), artifacts `load_test_results.json` (the bytes
//! judged) and `perf_decision.json` (which names the alias about to be set), tag
//! `perf_decision`, run FINISHED. Only then the claims (module `publish`): the candidate version's
//! tags and the alias moved onto it (the other alias deleted). So no alias or tag names a verdict
//! unless the run holding its evidence is complete. If a claim fails, or a signal arrives while
//! they are written, the claims already made are undone (each alias put back where it pointed
//! before, each version tag restored), and the run is marked FAILED (KILLED on a signal), which
//! also keeps it from ever being a baseline (the search asks for FINISHED runs). A claim can
//! outlive a failure only if the process is SIGKILLed between the claim and its undo, or MLflow
//! stops answering during the undo (each claim left is logged with what to restore by hand);
//! if marking the run FAILED fails too, a FINISHED run tagged with its verdict remains, without
//! the alias: its evidence is complete, so as a baseline it is truthful.
//!
//! Warnings (each logged at WARN and listed in the document's `warnings`; their count is the
//! run tag `perf_warnings`) say when the inputs or the comparison are not trustworthy: the
//! cross-checks of the results ([`super::crosschecks`]) and a baseline that ran another load
//! ([`super::comparability`]). They never change the four checks; `require_comparable_baseline`
//! adds a fifth that fails on an incomparable baseline.
//!
//! Files: first of all `perf_status.txt` says `error` and any older `perf_decision.json` is
//! removed ([`mark_undecided`]), so an exit that skips the error path (a panic, a SIGKILL) never
//! leaves an older decision standing; on success `perf_decision.json` then `perf_status.txt`
//! (`passed`/`failed`, written last), both atomically.

mod build;
mod publish;
mod remote;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checks::Verdict;
use super::document::{
    BaselineFileError, DECISION_FILE, PerfDecision, STATUS_ERROR, STATUS_FILE, read_baseline_file,
};
use super::metrics::{CheckKeys, MetricsSource, candidate_metrics, sanity};
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
    /// Fail the decision when the baseline did not run the same load (a fifth check,
    /// `comparable_baseline`; see [`super::comparability`]). Off by default: a comparative
    /// decision against an incomparable baseline otherwise only warns.
    pub require_comparable_baseline: bool,
    /// MLflow run name; else `perf-<model>-v<version>`.
    pub run_name: Option<String>,
    /// Warnings found while building the configuration (e.g. an ignored env var); copied into
    /// the decision's `warnings`.
    pub warnings: Vec<String>,
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

/// Runs the step. It first marks the output directory undecided ([`mark_undecided`]); on error
/// `perf_status.txt` says `error` and no `perf_decision.json` is left in it.
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

/// Marks the output directory "no decision yet": creates it, writes `error` to
/// `perf_status.txt`, then removes any `perf_decision.json` of an earlier run. Called before
/// anything else, so an exit that never reaches the error path (a panic, SIGKILL, a flag the
/// parser refuses) cannot leave an older "passed" standing. Fails if the directory is not
/// writable (the step could not write its result either).
pub fn mark_undecided(output_dir: &Path) -> Result<(), StepError> {
    let fail = |path: &Path| {
        let path = path.display().to_string();
        move |source| StepError::Output { path, source }
    };
    std::fs::create_dir_all(output_dir).map_err(fail(output_dir))?;
    let status = output_dir.join(STATUS_FILE);
    crate::fsio::write_atomic(&status, format!("{STATUS_ERROR}\n").as_bytes())
        .map_err(fail(&status))?;
    let decision = output_dir.join(DECISION_FILE);
    match std::fs::remove_file(&decision) {
        Ok(()) => {
            info!(path = %decision.display(), "removed the decision file of an earlier run");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(&decision)(e)),
    }
}

/// Marks the output directory as "no decision": `perf_status.txt` = `error`, and any
/// `perf_decision.json` removed. Best effort (failures are logged): for error paths.
pub fn write_error_status(output_dir: &Path) {
    if let Err(e) = mark_undecided(output_dir) {
        warn!(error = %error_chain(&e), "cannot mark the output directory undecided");
    }
}

/// `error: cause: cause` on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
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
    mark_undecided(&cfg.output_dir)?;
    // read once: the bytes judged are the bytes uploaded
    // One read: the document judged and the bytes uploaded as the artifact are the same file.
    let (results, results_bytes) = LoadTestResults::read_with_bytes(&cfg.results_path)?;
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
    for w in draft.warnings() {
        warn!("{w}");
    }

    let (client, config, dry_run) = match &cfg.mlflow {
        MlflowMode::Off => {
            info!("MLflow disabled: deciding from files only (nothing is recorded in MLflow)");
            draft.baseline = file_baseline.map(sane);
            draft.assess_baseline();
            let eval = draft.evaluate(&keys);
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
    draft.baseline = file_baseline.or(resolved.baseline.clone()).map(sane);
    match &draft.baseline {
        Some(b) => {
            info!(run_id = ?b.run_id, source = ?b.source, "baseline found: comparative mode")
        }
        None => draft.warn(remote::no_baseline_warning(cfg, &resolved)),
    }
    draft.assess_baseline();
    let eval = draft.evaluate(&keys);
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
    let run_id = run.info.run_id.clone();
    record.run_id = Some(run_id.clone());
    record.run_url = Some(remote::run_url(&client, experiment, &run_id));
    let verdict = eval.verdict;
    let doc = draft.finish(eval, Some(record));
    // the evidence, complete and FINISHED, before any claim
    let recorded = cancellable(
        cancel,
        remote::record(&client, &run.info, &doc, &results, results_bytes),
    )
    .await;
    // then the claims, undone on failure or signal
    let published = match recorded {
        Ok(()) => publish::publish(&client, &cfg.model_name, version, &run_id, &doc, cancel).await,
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        remote::fail_run(&client, &run_id, matches!(e, StepError::Aborted)).await;
        return Err(e);
    }
    info!(run_id = %run_id, decision = verdict.as_str(), "decision recorded in MLflow");
    write_outputs(&cfg.output_dir, &doc)?;
    Ok(doc)
}

/// A baseline with its impossible figures turned into "no data" (see [`sanity`]).
fn sane(mut b: super::document::BaselineRecord) -> super::document::BaselineRecord {
    sanity::check_ranges(&mut b.metrics);
    b
}

/// Writes `perf_decision.json`, then `perf_status.txt` (last: until then it says `error`), each
/// atomically.
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
