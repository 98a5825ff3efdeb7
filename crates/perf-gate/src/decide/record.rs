//! Recording a decision in MLflow: the run, its evidence (params, metrics, tags, dataset,
//! artifacts), FINISHED; and marking it FAILED or KILLED when what follows fails.

use std::time::Duration;

use tracing::{info, warn};

use super::config::DecideConfig;
use super::document::{DECISION_FILE, MlflowRecord, PerfDecision};
use super::error::DecideError;
use super::plan::{build_batch, source_type};
use super::{ALIAS_FAILED, ALIAS_PASSED};
use crate::decision::Verdict;
use crate::mlflow::MlflowClient;
use crate::mlflow::types::{
    Dataset, DatasetInput, Experiment, KeyValue, ModelVersion, Run, RunInfo, RunStatus,
};
use crate::results::{LoadTestResults, RESULTS_FILE};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
    cfg: &DecideConfig,
    exp: Option<&Experiment>,
    verdict: Verdict,
) -> MlflowRecord {
    let claimed = aliases(verdict);
    MlflowRecord {
        tracking_uri: client.base_url(),
        experiment_name: cfg.experiment_name.clone(),
        experiment_id: exp.map(|e| e.experiment_id.clone()),
        run_id: None,
        run_url: None,
        alias_set: claimed.map(|(set, _)| set.into()),
        alias_removed: claimed.map(|(_, removed)| removed.into()),
    }
}

/// `(alias set, alias removed)` for a verdict; an invalid measurement claims no alias.
pub(crate) fn aliases(verdict: Verdict) -> Option<(&'static str, &'static str)> {
    match verdict {
        Verdict::Passed => Some((ALIAS_PASSED, ALIAS_FAILED)),
        Verdict::Failed => Some((ALIAS_FAILED, ALIAS_PASSED)),
        Verdict::Invalid => None,
    }
}

/// Creates the run (no `perf_decision` tag yet).
pub(crate) async fn create_run(
    client: &MlflowClient,
    cfg: &DecideConfig,
    exp: &Experiment,
    version: &ModelVersion,
) -> Result<Run, DecideError> {
    let name = cfg
        .run_name
        .clone()
        .unwrap_or_else(|| format!("perf-{}-v{}", cfg.model_name, version.version));
    let tags = [KeyValue::new("mlflow.source.name", "perf-decision")];
    let run = client
        .create_run(&exp.experiment_id, &name, now_ms(), &tags)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot create a run in experiment `{}`",
            cfg.experiment_name
        )))?;
    info!(run_id = %run.info.run_id, run_name = %name, "MLflow run created");
    Ok(run)
}

/// Logs the evidence of the decision to `run` and finishes it: params, metrics and tags, the
/// dataset input, the artifacts `load_test_results.json` (`results_bytes`, the bytes judged),
/// `perf_decision.json`, `perf_decision_report.html` and `perf_decision_summary.md`, then
/// FINISHED. No claim is made here: the version's tags, the
/// aliases and the run's `perf_decision` tag come after ([`super::publish`]).
pub(crate) async fn record(
    client: &MlflowClient,
    run: &RunInfo,
    doc: &PerfDecision,
    results: &LoadTestResults,
    results_bytes: Vec<u8>,
    reports: &super::Reports,
) -> Result<(), DecideError> {
    let run_id = &run.run_id;
    let batch = build_batch(doc, results, now_ms());
    client
        .log_batch(run_id, batch)
        .await
        .map_err(DecideError::mlflow("cannot log params and metrics"))?;
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
            .map_err(DecideError::mlflow("cannot log the dataset input"))?;
    }
    client
        .upload_artifact(run, RESULTS_FILE, results_bytes)
        .await
        .map_err(DecideError::mlflow(format!("cannot upload {RESULTS_FILE}")))?;
    let json = serde_json::to_vec_pretty(doc).map_err(DecideError::Document)?;
    client
        .upload_artifact(run, DECISION_FILE, json)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot upload {DECISION_FILE}"
        )))?;
    for (name, text) in [
        (crate::report::DECISION_REPORT_FILE, &reports.html),
        (crate::report::DECISION_SUMMARY_FILE, &reports.summary),
    ] {
        client
            .upload_artifact(run, name, text.as_bytes().to_vec())
            .await
            .map_err(DecideError::mlflow(format!("cannot upload {name}")))?;
    }
    client
        .update_run(run_id, RunStatus::Finished, Some(now_ms()))
        .await
        .map_err(DecideError::mlflow("cannot mark the run FINISHED"))?;
    Ok(())
}

/// The decision this step already recorded for this version (same results bytes, same flags:
/// `decision_key`), if a run recorded it with all its claims (its `perf_decision` tag, set
/// last, is there): `(run id, its perf_decision.json)`.
pub(crate) async fn already_recorded(
    client: &MlflowClient,
    cfg: &DecideConfig,
    exp: &Experiment,
    version: &str,
    decision_key: &str,
) -> Result<Option<(String, PerfDecision)>, DecideError> {
    // the key is hex and the version digits (checked when the config was made)
    let filter = format!(
        "tags.perf_decision_key = '{decision_key}' and attributes.status = 'FINISHED' and params.candidate_version = '{version}' and {}",
        super::plan::model_filter(&cfg.model_name)?
    );
    let search = crate::mlflow::types::SearchRuns {
        experiment_ids: vec![exp.experiment_id.clone()],
        filter,
        order_by: vec!["attributes.start_time DESC".into()],
        max_results: 5,
        page_token: None,
    };
    let page = client
        .search_runs(&search)
        .await
        .map_err(DecideError::mlflow(
            "cannot search MLflow for an earlier run of this decision",
        ))?;
    let Some(run) = page
        .runs
        .into_iter()
        .find(|r| r.data.tag("perf_decision").is_some())
    else {
        return Ok(None);
    };
    let bytes = client
        .download_artifact(&run.info, DECISION_FILE)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot read {DECISION_FILE} of the earlier run {}",
            run.info.run_id
        )))?;
    let doc: PerfDecision = serde_json::from_slice(&bytes).map_err(|e| DecideError::Mlflow {
        context: format!(
            "{DECISION_FILE} of the earlier run {} is not a decision",
            run.info.run_id
        ),
        source: crate::mlflow::MlflowError::Unexpected {
            endpoint: "GET artifact".into(),
            message: e.to_string(),
        },
    })?;
    Ok(Some((run.info.run_id, doc)))
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
