//! The step's MLflow conversations: resolve what to judge against, then record the decision.

use std::time::Duration;

use tracing::{info, warn};

use super::build::{baseline_filter, build_batch, source_type};
use super::{ALIAS_FAILED, ALIAS_PASSED, StepConfig, StepError};
use crate::decision::checks::Verdict;
use crate::decision::comparability::run_settings;
use crate::decision::document::{
    BaselineRecord, BaselineSource, DECISION_FILE, MlflowRecord, PerfDecision,
};
use crate::decision::metrics::MetricMap;
use crate::mlflow::types::{
    Dataset, DatasetInput, Experiment, KeyValue, ModelVersion, Run, RunInfo, RunStatus, SearchRuns,
};
use crate::mlflow::{MlflowClient, MlflowError, ensure_active};
use crate::results::{LoadTestResults, Measured, RESULTS_FILE};

/// What MLflow said before deciding.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// The candidate version (always set when MLflow is on).
    pub version: Option<ModelVersion>,
    /// Whether it came from the alias.
    pub via_alias: bool,
    /// The experiment (absent in a dry run if it does not exist yet).
    pub experiment: Option<Experiment>,
    /// Whether this step created the experiment (so it holds no run yet).
    pub experiment_created: bool,
    /// The baseline found in MLflow.
    pub baseline: Option<BaselineRecord>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Model, candidate version, experiment (created when `create` is set), and the baseline
/// (when `search` is set).
pub(crate) async fn resolve(
    client: &MlflowClient,
    cfg: &StepConfig,
    search: bool,
    create: bool,
) -> Result<Resolved, StepError> {
    let model = &cfg.model_name;
    let mut out = Resolved::default();
    client
        .get_registered_model(model)
        .await
        .map_err(|e| match e.is_not_found() {
            true => StepError::mlflow(format!("registered model `{model}` not found in MLflow"))(e),
            false => StepError::mlflow(format!("cannot read registered model `{model}`"))(e),
        })?;
    let version = match &cfg.candidate_version {
        Some(v) => client.get_model_version(model, v).await.map_err(|e| {
            let what = if e.is_not_found() {
                format!("version {v} of registered model `{model}` not found")
            } else {
                format!("cannot read version {v} of registered model `{model}`")
            };
            StepError::mlflow(what)(e)
        })?,
        None => {
            let alias = &cfg.candidate_alias;
            out.via_alias = true;
            client
                .get_model_version_by_alias(model, alias)
                .await
                .map_err(|e| {
                    let missing = e.status() == Some(400) || e.is_not_found();
                    let what = if missing {
                        format!("alias `{alias}` not found on registered model `{model}`; set it or pass --candidate-version")
                    } else {
                        format!("cannot resolve alias `{alias}` of registered model `{model}`")
                    };
                    StepError::mlflow(what)(e)
                })?
        }
    };
    if version.status != "READY" {
        let v = &version.version;
        let status = if version.status.is_empty() {
            "not reported"
        } else {
            version.status.as_str()
        };
        return Err(StepError::Mlflow {
            context: format!(
                "version {v} of registered model `{model}` is not READY (status {status}): it can be neither judged nor given an alias; rerun once its registration has finished"
            ),
            source: MlflowError::Unexpected {
                endpoint: "GET model-versions/get".into(),
                message: format!("model version status {status}"),
            },
        });
    }
    info!(model = %model, version = %version.version, via_alias = out.via_alias, "candidate version");
    out.version = Some(version);

    let exp_name = &cfg.experiment_name;
    let ctx = || format!("cannot get experiment `{exp_name}`");
    out.experiment = if create {
        let (exp, created) = client
            .ensure_experiment(exp_name)
            .await
            .map_err(StepError::mlflow(ctx()))?;
        out.experiment_created = created;
        if created {
            warn!(experiment = %exp_name, id = %exp.experiment_id, "experiment created");
        }
        Some(exp)
    } else {
        // a dry run reads as a recording run would: a deleted experiment is an error here too
        let exp = client
            .get_experiment_by_name(exp_name)
            .await
            .map_err(StepError::mlflow(ctx()))?;
        if let Some(e) = &exp {
            ensure_active(e).map_err(StepError::mlflow(ctx()))?;
        }
        exp
    };
    if let (true, Some(exp)) = (search, &out.experiment) {
        out.baseline = find_baseline(client, cfg, exp).await?;
    }
    Ok(out)
}

/// The warning for a decision without a baseline: absolute mode is right for a first
/// deployment, and silently wrong when the experiment name points somewhere else.
pub(crate) fn no_baseline_warning(cfg: &StepConfig, resolved: &Resolved) -> String {
    let exp = &cfg.experiment_name;
    let whose = if cfg.baseline_any_model {
        "for any model".to_string()
    } else {
        format!("for model `{}`", cfg.model_name)
    };
    let why = match (&resolved.experiment, resolved.experiment_created) {
        (None, _) => " (the experiment does not exist; a recording run would create it)",
        (Some(_), true) => " (the experiment did not exist and was just created)",
        (Some(_), false) => " (no FINISHED run tagged perf_decision=passed)",
    };
    format!(
        "absolute mode: no baseline in experiment `{exp}` {whose}{why}; if a baseline was expected, check --experiment-name / PERF_EXPERIMENT_NAME"
    )
}

/// The newest FINISHED run tagged `perf_decision = 'passed'` (for the same model unless
/// `--baseline-any-model`).
async fn find_baseline(
    client: &MlflowClient,
    cfg: &StepConfig,
    exp: &Experiment,
) -> Result<Option<BaselineRecord>, StepError> {
    let model = (!cfg.baseline_any_model).then_some(cfg.model_name.as_str());
    let search = SearchRuns {
        experiment_ids: vec![exp.experiment_id.clone()],
        filter: baseline_filter(model)?,
        order_by: vec!["attributes.start_time DESC".into()],
        max_results: 1,
        page_token: None,
    };
    let page = client
        .search_runs(&search)
        .await
        .map_err(StepError::mlflow(
            "cannot search MLflow for the baseline run",
        ))?;
    Ok(page
        .runs
        .into_iter()
        .next()
        .map(|run| baseline_from_run(&run)))
}

/// A baseline from a run: its latest metric values (NaN read back as "no data") and its load
/// settings (params).
pub(crate) fn baseline_from_run(run: &Run) -> BaselineRecord {
    let metrics: MetricMap = run
        .data
        .metrics
        .iter()
        .map(|m| (m.key.clone(), Measured::value(m.value.0)))
        .collect();
    BaselineRecord {
        source: BaselineSource::Mlflow,
        run_id: Some(run.info.run_id.clone()),
        file: None,
        model_name: run.data.param("model_name").map(str::to_string),
        version: run.data.param("candidate_version").map(str::to_string),
        metrics,
        load_settings: run_settings(run),
        comparable: None,
        comparability: Vec::new(),
    }
}

/// Link to a run in the MLflow UI.
pub(crate) fn run_url(client: &MlflowClient, exp: &Experiment, run_id: &str) -> String {
    format!(
        "{}/#/experiments/{}/runs/{run_id}",
        client.base_url(),
        exp.experiment_id
    )
}

/// The MLflow section of the document, before the run exists.
pub(crate) fn mlflow_record(
    client: &MlflowClient,
    cfg: &StepConfig,
    exp: Option<&Experiment>,
    verdict: Verdict,
) -> MlflowRecord {
    let (set, removed) = aliases(verdict);
    MlflowRecord {
        tracking_uri: client.base_url(),
        experiment_name: cfg.experiment_name.clone(),
        experiment_id: exp.map(|e| e.experiment_id.clone()),
        run_id: None,
        run_url: None,
        alias_set: Some(set.into()),
        alias_removed: Some(removed.into()),
    }
}

/// `(alias set, alias removed)` for a verdict.
pub(super) fn aliases(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Passed => (ALIAS_PASSED, ALIAS_FAILED),
        Verdict::Failed => (ALIAS_FAILED, ALIAS_PASSED),
    }
}

/// Creates the run (no `perf_decision` tag yet).
pub(crate) async fn create_run(
    client: &MlflowClient,
    cfg: &StepConfig,
    exp: &Experiment,
    version: &ModelVersion,
) -> Result<Run, StepError> {
    let name = cfg
        .run_name
        .clone()
        .unwrap_or_else(|| format!("perf-{}-v{}", cfg.model_name, version.version));
    let tags = [KeyValue::new("mlflow.source.name", "perf-decision")];
    let run = client
        .create_run(&exp.experiment_id, &name, now_ms(), &tags)
        .await
        .map_err(StepError::mlflow(format!(
            "cannot create a run in experiment `{}`",
            cfg.experiment_name
        )))?;
    info!(run_id = %run.info.run_id, run_name = %name, "MLflow run created");
    Ok(run)
}

/// Logs the evidence of the decision to `run` and finishes it: params, metrics and tags, the
/// dataset input, the artifacts `load_test_results.json` (`results_bytes`, the bytes judged)
/// and `perf_decision.json`, the `perf_decision` tag, then FINISHED. No alias or version tag is
/// touched here ([`super::publish`] does that once the run is complete).
pub(crate) async fn record(
    client: &MlflowClient,
    run: &RunInfo,
    doc: &PerfDecision,
    results: &LoadTestResults,
    results_bytes: Vec<u8>,
) -> Result<(), StepError> {
    let run_id = &run.run_id;
    let batch = build_batch(doc, results, now_ms());
    client
        .log_batch(run_id, batch)
        .await
        .map_err(StepError::mlflow("cannot log params and metrics"))?;
    if let Some(d) = &doc.dataset {
        let profile = results
            .eval_data
            .as_ref()
            .map(|e| format!("{{\"num_rows\": {}}}", e.rows));
        let input = DatasetInput {
            tags: vec![KeyValue::new("mlflow.data.context", &d.context)],
            dataset: Dataset {
                name: d.name.clone(),
                digest: d.digest.clone(),
                source_type: source_type(&d.source),
                source: serde_json::json!({ "uri": d.source }).to_string(),
                schema: None,
                profile,
            },
        };
        client
            .log_inputs(run_id, &[input])
            .await
            .map_err(StepError::mlflow("cannot log the dataset input"))?;
    }
    client
        .upload_artifact(run, RESULTS_FILE, results_bytes)
        .await
        .map_err(StepError::mlflow(format!("cannot upload {RESULTS_FILE}")))?;
    let json = serde_json::to_vec_pretty(doc).map_err(|e| StepError::Input(e.to_string()))?;
    client
        .upload_artifact(run, DECISION_FILE, json)
        .await
        .map_err(StepError::mlflow(format!("cannot upload {DECISION_FILE}")))?;
    client
        .set_tag(run_id, "perf_decision", doc.decision.as_str())
        .await
        .map_err(StepError::mlflow("cannot tag the run with the decision"))?;
    client
        .update_run(run_id, RunStatus::Finished, Some(now_ms()))
        .await
        .map_err(StepError::mlflow("cannot mark the run FINISHED"))?;
    Ok(())
}

/// Marks a run FAILED (KILLED after a signal), best effort and bounded: the step is failing
/// already, and the run must not stay RUNNING, nor stay FINISHED (a baseline candidate) when
/// its decision could not be published.
pub(crate) async fn fail_run(client: &MlflowClient, run_id: &str, killed: bool) {
    let status = if killed {
        RunStatus::Killed
    } else {
        RunStatus::Failed
    };
    let update = client.update_run(run_id, status, Some(now_ms()));
    match tokio::time::timeout(Duration::from_secs(15), update).await {
        Ok(Ok(_)) => warn!(run_id, status = status.as_str(), "MLflow run marked"),
        Ok(Err(e)) => warn!(run_id, error = %e, "cannot mark the MLflow run {}", status.as_str()),
        Err(_) => warn!(
            run_id,
            "timed out marking the MLflow run {}",
            status.as_str()
        ),
    }
}
