//! The `perf-decision` step end to end (the orchestration; the pure parts are in
//! [`crate::decision`] and [`plan`]): read the results, find the baseline, decide, record
//! the decision in MLflow, write `perf_decision.json` and `perf_status.txt`.
//!
//! Modules: `config` (what to do), [`document`] (`perf_decision.json`), [`plan`] (the
//! document and the MLflow batch, pure), `resolve` (reads: version, experiment, baseline),
//! `record` (the run and its evidence), `publish` (the claims and their undo).
//!
//! Order of MLflow calls (each retried by the client when that is safe): registered model,
//! candidate version (by `--candidate-version` or the alias `--candidate-alias`; it must be
//! READY), experiment (get or create; it must be active), baseline search (before the new run
//! exists, so a run never becomes its own baseline), run create, then the evidence: log-batch
//! (params, metrics, tags), log-inputs (dataset), artifacts `load_test_results.json` (the bytes
//! judged) and `perf_decision.json` (which names the alias about to be set), run FINISHED.
//! Only then the claims (module `publish`), under the model's
//! lease ([`lease`]: one decision per model claims at a time, whoever runs it) and after
//! repairing what earlier runs left (module `reconcile`): the candidate version's tags, the
//! other alias deleted, the alias set on the version. So no alias or tag names a verdict unless
//! the run holding its evidence is complete. If a claim fails, or a signal arrives while they
//! are written, the claims already made are undone where they are still as this run left them
//! (after waiting for a write that timed out to land), and the run is marked FAILED (KILLED on
//! a signal), which also keeps it from ever being a baseline (the search asks for FINISHED runs
//! tagged with their verdict, and that tag is the last claim). A claim that lands after its
//! undo, or that a SIGKILLed run left, disagrees with its run, and the next decision for the
//! model deletes it before claiming.
//!
//! A rerun of the same decision (same results bytes, same decision flags: an Argo retry after
//! the claims landed) records nothing again: it finds the earlier run by its
//! `perf_decision_key` tag and reports that decision.
//!
//! Warnings (each logged at WARN and listed in the document's `warnings`; their count is the
//! run tag `perf_warnings`) say when the inputs or the comparison are not trustworthy: the
//! cross-checks of the results ([`crate::decision::crosschecks`]) and a baseline that ran another load
//! ([`crate::decision::comparability`]). They never change the four checks; `require_comparable_baseline`
//! adds a fifth that fails on an incomparable baseline.
//!
//! Files: first of all `perf_status.txt` says `error` and any older `perf_decision.json` is
//! removed ([`claim_outputs`], [`crate::step::StepOutputs`]), so an exit that skips the error path (a panic, a SIGKILL) never
//! leaves an older decision standing; on success `perf_decision.json` then `perf_status.txt`
//! (`passed`/`failed`, written last), both atomically.

mod baseline;
mod config;
pub mod document;
mod error;
mod history;
pub mod lease;
mod measured_baseline;
pub mod override_decision;
pub mod plan;
mod publish;
mod reconcile;
mod record;
mod resolve;

use std::path::Path;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{
    DEFAULT_CANDIDATE_ALIAS, DEFAULT_EXPERIMENT, DEFAULT_LOCK_TIMEOUT, DecideConfig, MlflowMode,
};
pub use document::{
    BaselineFileError, BaselineRecord, BaselineSource, DECISION_FILE, DECISION_SCHEMA_VERSION,
    PerfDecision, STATUS_ERROR, STATUS_FILE, read_baseline_file,
};
pub use error::DecideError;
pub use override_decision::{OverrideConfig, OverrideOutcome, override_decision, override_warning};
pub use plan::{baseline_filter, build_batch, dataset_record};
pub use resolve::CandidateRef;

use crate::decision::metrics::sanity;
use crate::decision::statistics::apply::ArmSamples;
use crate::decision::{CheckKeys, MetricsSource, candidate_metrics};
use crate::mlflow::MlflowClient;
use crate::results::{LoadTestResults, RunStatus};
use crate::step::StepOutputs;
use lease::Lease;

/// The aliases the step sets; only one of the two exists on a model at a time.
pub const ALIAS_PASSED: &str = "perf-passed";
/// See [`ALIAS_PASSED`].
pub const ALIAS_FAILED: &str = "perf-failed";

/// Marks `output_dir` "no decision yet": creates it, writes `error` to `perf_status.txt`, then
/// removes any `perf_decision.json` of an earlier run. Called before anything else (the binary
/// calls it even for a command line it refuses), so an exit that never reaches an error path
/// cannot leave an older "passed" standing.
pub fn claim_outputs(output_dir: &Path) -> Result<StepOutputs, DecideError> {
    Ok(StepOutputs::claim(
        output_dir,
        STATUS_FILE,
        &[
            DECISION_FILE,
            crate::report::DECISION_REPORT_FILE,
            crate::report::DECISION_SUMMARY_FILE,
            crate::step::CONFIG_RECORD_FILE,
        ],
        STATUS_ERROR,
    )?)
}

/// What a second SIGINT/SIGTERM leaves before the process exits at once (the first lets the
/// step undo its claims): while the status file still says `error` (the decision not yet
/// recorded), no `perf_decision.json` may stand beside it claiming a decision; once the final
/// status is written the files are complete and stay. MLflow is left as it is: the next
/// decision's reconciliation repairs a half-made claim. Best effort, synchronous.
pub fn mark_killed(output_dir: &Path) {
    let status = std::fs::read_to_string(output_dir.join(STATUS_FILE)).unwrap_or_default();
    if status.trim() != STATUS_ERROR && !status.trim().is_empty() {
        return;
    }
    for name in [
        DECISION_FILE,
        crate::report::DECISION_REPORT_FILE,
        crate::report::DECISION_SUMMARY_FILE,
    ] {
        let doc = output_dir.join(name);
        for p in [crate::fsio::tmp_path(&doc), doc] {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove a decision document");
            }
        }
    }
}

/// Runs the step. On error `perf_status.txt` says `error` and no `perf_decision.json` is left.
pub async fn run(
    cfg: &DecideConfig,
    cancel: &CancellationToken,
) -> Result<PerfDecision, DecideError> {
    let outputs = claim_outputs(&cfg.output_dir)?;
    let result = decide_and_record(cfg, cancel, &outputs).await;
    if result.is_err() {
        outputs.abandon(STATUS_ERROR);
    }
    result
}

/// Runs `fut` unless `cancel` fires first. A signal that arrived while the step was busy
/// (reading its files) is seen before `fut` starts: the yield lets the runtime deliver it, and
/// the cancellation is checked first, so no MLflow call begins after it.
async fn cancellable<T>(
    cancel: &CancellationToken,
    fut: impl Future<Output = Result<T, DecideError>>,
) -> Result<T, DecideError> {
    tokio::task::yield_now().await;
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(DecideError::Aborted),
        r = fut => r,
    }
}

async fn decide_and_record(
    cfg: &DecideConfig,
    cancel: &CancellationToken,
    outputs: &StepOutputs,
) -> Result<PerfDecision, DecideError> {
    // One read: the document judged and the bytes uploaded as the artifact are the same file.
    let (results, results_bytes) = LoadTestResults::read_with_bytes(&cfg.results_path)?;
    // a same-run baseline has client figures only: the checks read the client's
    let adjusted;
    let cfg = if results.baseline_arm.is_some() && cfg.metrics_source == MetricsSource::Server {
        let mut c = cfg.clone();
        c.metrics_source = MetricsSource::Client;
        c.warnings.push("the results hold a same-run baseline (load-test --baseline-adapter): checks 1-3 read the client's figures, as vLLM labels its server figures by base model, not adapter".into());
        adjusted = c;
        &adjusted
    } else {
        cfg
    };
    // what makes a rerun the same decision: the bytes judged and every flag that shapes it
    let decision_key = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(&results_bytes);
        let flags = serde_json::json!({
            "thresholds": cfg.thresholds,
            "metrics_source": cfg.metrics_source.as_str(),
            "on_invalid": cfg.on_invalid.as_str(),
            "require_comparable_baseline": cfg.require_comparable_baseline,
            "baseline_any_model": cfg.baseline_any_model,
            "baseline_file": cfg.baseline_file,
            "baseline_results": cfg.baseline_results,
            "baseline_alias": cfg.baseline_alias,
            "fail_on_drift": cfg.fail_on_drift,
            "baseline_runs": cfg.baseline_runs,
            "also_stored_baseline": cfg.also_stored_baseline,
            "drift_lookback_s": cfg.drift_lookback.as_secs(),
            "decision_method": cfg.decision_method.as_str(),
            "on_inconclusive": cfg.on_inconclusive.as_str(),
            "experiment": cfg.experiment_name,
        });
        h.update(flags.to_string().as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if results.status != RunStatus::Completed {
        return Err(DecideError::NotCompleted {
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
    // a measured baseline (same run, or --baseline-results) comes with its samples
    // (and the baseline's results, for the report)
    let mut baseline_results = None;
    // with --also-stored-baseline, a same-run baseline is compared and so is the stored one
    // (a --baseline-results file, a --baseline-file, or MLflow's): `also_file` holds the first
    let mut also_file = None;
    let measured = match (
        measured_baseline::same_run(&results, &cfg.model_name),
        &cfg.baseline_results,
    ) {
        (Some(m), Some(p)) if cfg.also_stored_baseline => {
            also_file = Some(measured_baseline::from_results_file(p, cfg.metrics_source)?.0);
            Some(m)
        }
        (Some(m), _) => Some(m),
        (None, Some(p)) => {
            let (record, samples, r) = measured_baseline::from_results_file(p, cfg.metrics_source)?;
            baseline_results = Some(r);
            Some((record, samples))
        }
        (None, None) => None,
    };
    let mut metrics = candidate_metrics(&results);
    if let Some(rate) = measured_baseline::combined_throughput(&results) {
        metrics.insert(
            format!(
                "{}{}",
                crate::decision::metrics::names::CLIENT_PREFIX,
                crate::decision::metrics::names::THROUGHPUT
            ),
            crate::results::Measured::value(rate),
        );
    }
    let keys = CheckKeys::for_source(cfg.metrics_source);
    let mut draft = plan::Draft::new(cfg, &results, metrics);
    draft.set_decision_key(&decision_key);
    for w in draft.warnings() {
        tracing::warn!("{w}");
    }
    let same_run = measured
        .as_ref()
        .is_some_and(|(b, _)| b.source == BaselineSource::SameRun);
    let also = same_run && cfg.also_stored_baseline;
    if !same_run && cfg.also_stored_baseline {
        draft.warn("--also-stored-baseline: the results hold no same-run baseline (load-test --baseline-adapter), so the stored baseline is the only one".into());
    }
    if same_run
        && !also
        && (cfg.baseline_file.is_some()
            || cfg.baseline_results.is_some()
            || cfg.baseline_alias.is_some()
            || cfg.baseline_runs > 1)
    {
        draft.warn("the results hold a same-run baseline: it is the baseline, and --baseline-file / --baseline-results / --baseline-alias / --baseline-runs are not used".into());
    }
    let file_baseline = if measured.is_some() && !also {
        None
    } else {
        file_baseline
    };

    let (client, dry_run) = match &cfg.mlflow {
        MlflowMode::Off => {
            info!("MLflow disabled: deciding from files only (nothing is recorded in MLflow)");
            match measured {
                Some((record, samples)) => {
                    set_baseline(&mut draft, Some(record), Some(samples));
                    if also {
                        draft.set_stored_baseline(also_file.or(file_baseline).map(sane));
                    }
                }
                None => set_baseline(&mut draft, file_baseline, None),
            }
            let eval = draft.evaluate(&keys);
            let doc = draft.finish(eval, None);
            write_outputs(
                outputs,
                &doc,
                &Reports::new(&doc, &results, baseline_results.as_ref(), &[]),
            )?;
            return Ok(doc);
        }
        MlflowMode::Record(c) => (c, false),
        MlflowMode::DryRun(c) => (c, true),
    };
    let config = client;
    let client = MlflowClient::new(config)
        .map_err(DecideError::mlflow("cannot set up the MLflow client"))?;
    info!(tracking_uri = %config.base_url(), auth = config.auth.kind(), dry_run, "using MLflow");

    let (version, via_alias) =
        cancellable(cancel, resolve::candidate(&client, &cfg.into())).await?;
    draft.set_version(&version, via_alias);
    for r in draft.invalid_reasons() {
        tracing::warn!("measurement not trustworthy: {r}");
    }
    let (experiment, created) = if dry_run {
        let exp = cancellable(cancel, resolve::existing_experiment(&client, cfg)).await?;
        (exp, false)
    } else {
        let (exp, created) = cancellable(cancel, resolve::ensure_experiment(&client, cfg)).await?;
        (Some(exp), created)
    };
    let searched = match (&file_baseline, &experiment) {
        _ if measured.is_some() && !(also && also_file.is_none()) => None,
        (Some(_), _) => None,
        // the alias names its run directly: no experiment search needed (a dry run may have
        // no experiment yet)
        (None, None) if cfg.baseline_alias.is_some() => {
            let alias = cfg.baseline_alias.as_deref().unwrap_or_default();
            Some(
                cancellable(
                    cancel,
                    resolve::by_alias(&client, cfg, alias, &version.version),
                )
                .await?,
            )
        }
        (None, Some(exp)) => {
            let (found, warning) = cancellable(
                cancel,
                resolve::find_baseline(&client, cfg, exp, &version.version, draft.load_settings()),
            )
            .await?;
            if let Some(w) = warning {
                draft.warn(w);
            }
            found
        }
        _ => None,
    };
    // an alias set by hand shows in every later decision of the model until a measured
    // decision replaces it
    for w in cancellable(cancel, async {
        Ok(override_decision::standing_overrides(&client, &cfg.model_name).await)
    })
    .await?
    {
        draft.warn(w);
    }
    let stored_samples = match &searched {
        Some(b) => {
            let id = b.run_id.clone().unwrap_or_default();
            let stored = cancellable(cancel, async {
                Ok(measured_baseline::stored_results(&client, &id).await)
            })
            .await?;
            Some(stored.and_then(|r| {
                let samples = ArmSamples::candidate(&r);
                baseline_results = Some(r);
                samples
            }))
        }
        None => None,
    };
    match measured {
        Some((record, samples)) => {
            set_baseline(&mut draft, Some(record), Some(samples));
            if also {
                draft.set_stored_baseline(also_file.or(file_baseline).or(searched).map(sane));
            }
        }
        None => match searched {
            Some(b) => set_baseline(&mut draft, Some(b), stored_samples),
            None => set_baseline(&mut draft, file_baseline, None),
        },
    }
    if let Some(exp) = &experiment {
        let (runs, warning) = cancellable(cancel, async {
            Ok(resolve::passed_runs(&client, cfg, exp).await)
        })
        .await?;
        if let Some(w) = warning {
            draft.drift_unavailable(w);
        }
        draft.assess_drift(&runs, &keys, chrono::Utc::now().timestamp_millis());
    }
    match &draft.baseline {
        Some(b) => {
            info!(run_id = ?b.run_id, source = ?b.source, "baseline found: comparative mode")
        }
        None => draft.warn(resolve::no_baseline_warning(
            cfg,
            experiment.as_ref(),
            created,
        )),
    }
    let eval = draft.evaluate(&keys);
    info!(
        decision = eval.verdict.as_str(),
        mode = eval.mode.as_str(),
        "decided"
    );

    let mut mlflow = record::mlflow_record(&client, cfg, experiment.as_ref(), eval.verdict);
    let experiment = match experiment {
        Some(exp) if !dry_run => exp,
        _ => {
            mlflow.alias_set = None;
            mlflow.alias_removed = None;
            let history = draft.history().to_vec();
            let doc = draft.finish(eval, Some(mlflow));
            write_outputs(
                outputs,
                &doc,
                &Reports::new(&doc, &results, baseline_results.as_ref(), &history),
            )?;
            return Ok(doc);
        }
    };

    // a rerun of a decision already recorded (an Argo retry after the claims landed) records
    // nothing again: it reports that decision
    if let Some((earlier, doc)) = cancellable(
        cancel,
        record::already_recorded(&client, cfg, &experiment, &version.version, &decision_key),
    )
    .await?
    {
        info!(run_id = %earlier, decision = doc.decision.as_str(), "this decision was already recorded: reporting it, recording nothing again");
        let lease =
            lease::Lease::acquire(&client, &cfg.model_name, &earlier, cfg.lock_wait, cancel)
                .await?;
        let repaired = reconcile::reconcile(&client, &cfg.model_name).await;
        lease.release(&client).await;
        repaired?;
        write_outputs(outputs, &doc, &Reports::new(&doc, &results, None, &[]))?;
        return Ok(doc);
    }
    let run = cancellable(
        cancel,
        record::create_run(&client, cfg, &experiment, &version),
    )
    .await?;
    let run_id = run.info.run_id.clone();
    mlflow.run_id = Some(run_id.clone());
    mlflow.run_url = Some(record::run_url(&client, &experiment, &run_id));
    let verdict = eval.verdict;
    let history = draft.history().to_vec();
    let doc = draft.finish(eval, Some(mlflow));
    let reports = Reports::new(&doc, &results, baseline_results.as_ref(), &history);
    // the evidence, complete and FINISHED, before any claim
    let recorded = cancellable(
        cancel,
        record::record(&client, &run.info, &doc, &results, results_bytes, &reports),
    )
    .await;
    // the decision file before the claims, so a directory that cannot take it stops the step
    // before MLflow says anything; then the claims, undone on failure or signal
    let ready = match recorded {
        Ok(()) => reports
            .write(outputs)
            .and_then(|()| outputs.write_json(DECISION_FILE, &doc))
            .map_err(DecideError::from),
        Err(e) => Err(e),
    };
    // the claims, under the model's lease, after repairing what earlier runs left
    let lease = match ready {
        Ok(()) => Lease::acquire(&client, &cfg.model_name, &run_id, cfg.lock_wait, cancel).await,
        Err(e) => Err(e),
    };
    let lease = match lease {
        Ok(lease) => lease,
        Err(e) => {
            record::fail_run(&client, &run_id, matches!(e, DecideError::Aborted)).await;
            return Err(e);
        }
    };
    let published = match reconcile::reconcile(&client, &cfg.model_name)
        .await
        .and_then(|_| lease.ensure_valid())
    {
        Ok(()) => publish::publish(&client, &cfg.model_name, &version, &run_id, &doc, cancel).await,
        Err(e) => Err(e),
    };
    let claims = match published {
        Ok(claims) => claims,
        Err(e) => {
            lease.release(&client).await;
            record::fail_run(&client, &run_id, matches!(e, DecideError::Aborted)).await;
            return Err(e);
        }
    };
    // the status word last; if even that cannot be written, MLflow must not say otherwise
    if let Err(e) = outputs.finish(verdict.as_str()) {
        claims
            .revert(&client, &cfg.model_name, &version.version)
            .await;
        lease.release(&client).await;
        record::fail_run(&client, &run_id, false).await;
        return Err(e.into());
    }
    lease.release(&client).await;
    info!(run_id = %run_id, decision = verdict.as_str(), "decision recorded in MLflow");
    Ok(doc)
}

/// File name of the resolved candidate version ([`resolve_candidate`]) inside `--output-dir`.
pub const CANDIDATE_VERSION_FILE: &str = "candidate_version.txt";

/// Resolves the candidate version once, before the load (`perf-decision --resolve-candidate`):
/// the version given, or the one the alias points at now, which must be READY; written to
/// `<output_dir>/candidate_version.txt` (atomically) so a pipeline passes the same version to
/// both steps, however long the load takes and whatever moves the alias meanwhile.
pub async fn resolve_candidate(
    mlflow: &crate::mlflow::MlflowConfig,
    candidate: &CandidateRef,
    output_dir: &Path,
    cancel: &CancellationToken,
) -> Result<crate::mlflow::types::ModelVersion, DecideError> {
    let client = MlflowClient::new(mlflow)
        .map_err(DecideError::mlflow("cannot set up the MLflow client"))?;
    let (version, _) = cancellable(cancel, resolve::candidate(&client, candidate)).await?;
    std::fs::create_dir_all(output_dir).map_err(|source| {
        DecideError::Output(crate::step::OutputError {
            path: output_dir.display().to_string(),
            source,
        })
    })?;
    let path = output_dir.join(CANDIDATE_VERSION_FILE);
    crate::fsio::write_atomic(&path, format!("{}\n", version.version).as_bytes()).map_err(
        |source| {
            DecideError::Output(crate::step::OutputError {
                path: path.display().to_string(),
                source,
            })
        },
    )?;
    Ok(version)
}

/// Sets the draft's baseline (its impossible figures turned into "no data"), assesses its
/// load, then its samples (`None`: a `perf_decision.json` baseline, which has none) and the
/// statistics.
fn set_baseline(
    draft: &mut plan::Draft<'_>,
    baseline: Option<BaselineRecord>,
    samples: Option<Result<ArmSamples, String>>,
) {
    let from = baseline.as_ref().map(|b| match b.source {
        BaselineSource::Mlflow => format!(
            "the {} artifact of run {}",
            crate::results::RESULTS_FILE,
            b.run_id.as_deref().unwrap_or("?")
        ),
        BaselineSource::SameRun => "the same run's baseline arm".to_string(),
        BaselineSource::Results | BaselineSource::File => {
            b.file.clone().unwrap_or_else(|| "a file".into())
        }
    });
    draft.baseline = baseline.map(sane);
    draft.assess_baseline();
    let Some(from) = from else {
        return;
    };
    let samples = samples.unwrap_or_else(|| {
        Err("a perf_decision.json carries no per-request samples (give the baseline's load_test_results.json with --baseline-results instead)".into())
    });
    draft.set_baseline_samples(samples, &from);
    draft.assess_statistics();
}

/// A baseline with its impossible figures turned into "no data" (see [`sanity`]).
fn sane(mut b: BaselineRecord) -> BaselineRecord {
    sanity::check_ranges(&mut b.metrics);
    b
}

/// The decision's report for people: `perf_decision_report.html` and
/// `perf_decision_summary.md` (see [`crate::report`]), scrubbed of every known secret.
pub(crate) struct Reports {
    /// The HTML page.
    pub html: String,
    /// The Markdown summary.
    pub summary: String,
}

impl Reports {
    fn new(
        doc: &PerfDecision,
        results: &LoadTestResults,
        baseline: Option<&LoadTestResults>,
        history: &[crate::report::HistoryPoint],
    ) -> Self {
        let mut html = crate::report::render_decision(&crate::report::DecisionReport {
            decision: doc,
            candidate: Some(results),
            baseline,
            history,
        });
        let mut summary = crate::report::decision_summary_markdown(doc);
        crate::secrets::scrub_string(&mut html);
        crate::secrets::scrub_string(&mut summary);
        Reports { html, summary }
    }

    /// Writes both into the output directory (before `perf_decision.json`).
    fn write(&self, outputs: &StepOutputs) -> Result<(), crate::step::OutputError> {
        outputs.write(crate::report::DECISION_REPORT_FILE, self.html.as_bytes())?;
        outputs.write(
            crate::report::DECISION_SUMMARY_FILE,
            self.summary.as_bytes(),
        )
    }
}

/// Writes the reports, `perf_decision.json`, then `perf_status.txt` (last: until then it says
/// `error`).
fn write_outputs(
    outputs: &StepOutputs,
    doc: &PerfDecision,
    reports: &Reports,
) -> Result<(), DecideError> {
    reports.write(outputs)?;
    outputs.write_json(DECISION_FILE, doc)?;
    outputs.finish(doc.decision.as_str())?;
    Ok(())
}
