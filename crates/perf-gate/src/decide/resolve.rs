//! Reading MLflow before deciding: the candidate version, the experiment, the baseline run.

use tracing::{info, warn};

use super::baseline::Choice;
use super::config::DecideConfig;
use super::document::BaselineRecord;
use super::error::DecideError;
use super::plan::baseline_filter;
use crate::decision::load_settings::LoadSettings;
use crate::mlflow::types::{Experiment, ModelVersion, SearchRuns};
use crate::mlflow::{MlflowClient, MlflowError, ensure_active};

/// What names the candidate: the model, and a version or else an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateRef {
    /// Registered model name.
    pub model_name: String,
    /// `--candidate-version`.
    pub version: Option<String>,
    /// `--candidate-alias` (used when `version` is `None`).
    pub alias: String,
}

impl From<&DecideConfig> for CandidateRef {
    fn from(cfg: &DecideConfig) -> Self {
        CandidateRef {
            model_name: cfg.model_name.clone(),
            version: cfg.candidate_version.clone(),
            alias: cfg.candidate_alias.clone(),
        }
    }
}

/// The candidate model version: `--candidate-version`, else the version `--candidate-alias`
/// points at (then `via_alias` is true). The model must exist and the version be READY.
pub(crate) async fn candidate(
    client: &MlflowClient,
    cfg: &CandidateRef,
) -> Result<(ModelVersion, bool), DecideError> {
    let model = &cfg.model_name;
    client
        .get_registered_model(model)
        .await
        .map_err(|e| match e.is_not_found() {
            true => {
                DecideError::mlflow(format!("registered model `{model}` not found in MLflow"))(e)
            }
            false => DecideError::mlflow(format!("cannot read registered model `{model}`"))(e),
        })?;
    let (version, via_alias) = match &cfg.version {
        Some(v) => {
            let version = client.get_model_version(model, v).await.map_err(|e| {
                let what = if e.is_not_found() {
                    format!("version {v} of registered model `{model}` not found")
                } else {
                    format!("cannot read version {v} of registered model `{model}`")
                };
                DecideError::mlflow(what)(e)
            })?;
            (version, false)
        }
        None => {
            let alias = &cfg.alias;
            let version = client
                .get_model_version_by_alias(model, alias)
                .await
                .map_err(|e| {
                    let missing = e.status() == Some(400) || e.is_not_found();
                    let what = if missing {
                        format!("alias `{alias}` not found on registered model `{model}`; set it or pass --candidate-version")
                    } else {
                        format!("cannot resolve alias `{alias}` of registered model `{model}`")
                    };
                    DecideError::mlflow(what)(e)
                })?;
            (version, true)
        }
    };
    if version.status != "READY" {
        let v = &version.version;
        let status = if version.status.is_empty() {
            "not reported"
        } else {
            version.status.as_str()
        };
        return Err(DecideError::Mlflow {
            context: format!(
                "version {v} of registered model `{model}` is not READY (status {status}): it can be neither judged nor given an alias; rerun once its registration has finished"
            ),
            source: MlflowError::Unexpected {
                endpoint: "GET model-versions/get".into(),
                message: format!("model version status {status}"),
            },
        });
    }
    info!(model = %model, version = %version.version, via_alias, "candidate version");
    Ok((version, via_alias))
}

/// The experiment, created if missing (`created` says so: it holds no run yet).
pub(crate) async fn ensure_experiment(
    client: &MlflowClient,
    cfg: &DecideConfig,
) -> Result<(Experiment, bool), DecideError> {
    let name = &cfg.experiment_name;
    let (exp, created) = client
        .ensure_experiment(name)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot get experiment `{name}`"
        )))?;
    if created {
        warn!(experiment = %name, id = %exp.experiment_id, "experiment created");
    }
    Ok((exp, created))
}

/// The experiment if it exists (a dry run creates nothing); a deleted one is an error, as it
/// would be for a recording run.
pub(crate) async fn existing_experiment(
    client: &MlflowClient,
    cfg: &DecideConfig,
) -> Result<Option<Experiment>, DecideError> {
    let name = &cfg.experiment_name;
    let ctx = || format!("cannot get experiment `{name}`");
    let exp = client
        .get_experiment_by_name(name)
        .await
        .map_err(DecideError::mlflow(ctx()))?;
    if let Some(e) = &exp {
        ensure_active(e).map_err(DecideError::mlflow(ctx()))?;
    }
    Ok(exp)
}

/// The warning for a decision without a baseline: absolute mode is right for a first
/// deployment, and silently wrong when the experiment name points somewhere else.
pub(crate) fn no_baseline_warning(
    cfg: &DecideConfig,
    experiment: Option<&Experiment>,
    created: bool,
) -> String {
    let exp = &cfg.experiment_name;
    let whose = if cfg.baseline_any_model {
        "for any model".to_string()
    } else {
        format!("for model `{}`", cfg.model_name)
    };
    let why = match (experiment, created) {
        (None, _) => " (the experiment does not exist; a recording run would create it)",
        (Some(_), true) => " (the experiment did not exist and was just created)",
        (Some(_), false) => " (no FINISHED run tagged perf_decision=passed)",
    };
    format!(
        "absolute mode: no baseline in experiment `{exp}` {whose}{why}; if a baseline was expected, check --experiment-name / PERF_EXPERIMENT_NAME"
    )
}

/// How many of the newest passed runs make the drift history.
const HISTORY_RUNS: u32 = 100;

/// The newest passed runs of the model (FINISHED, tagged `perf_decision = 'passed'`), for the
/// drift check and the report's history. Best effort: a failed search leaves the history empty
/// with a warning (the drift check then has no verdict), never fails the decision.
pub(crate) async fn passed_runs(
    client: &MlflowClient,
    cfg: &DecideConfig,
    exp: &Experiment,
) -> (Vec<crate::mlflow::types::Run>, Option<String>) {
    let filter = match baseline_filter(Some(cfg.model_name.as_str())) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), Some(format!("no drift history: {e}"))),
    };
    let search = SearchRuns {
        experiment_ids: vec![exp.experiment_id.clone()],
        filter,
        order_by: vec!["attributes.start_time DESC".into()],
        max_results: HISTORY_RUNS,
        page_token: None,
    };
    match client.search_runs(&search).await {
        Ok(page) => (page.runs, None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "no drift history: cannot search MLflow for the passed runs: {e}"
            )),
        ),
    }
}

/// How many of the newest passed runs the baseline is chosen from.
const BASELINE_CANDIDATES: u32 = 20;

/// The baseline: among the newest FINISHED runs tagged `perf_decision = 'passed'` (for the
/// same model unless `--baseline-any-model`), the newest that ran the same load with
/// thresholds no looser than the candidate's and is not the candidate's own version; else the
/// newest that is not the candidate's version, with a warning (see [`super::baseline`]).
pub(crate) async fn find_baseline(
    client: &MlflowClient,
    cfg: &DecideConfig,
    exp: &Experiment,
    candidate_version: &str,
    candidate_settings: &LoadSettings,
) -> Result<(Option<BaselineRecord>, Option<String>), DecideError> {
    if let Some(alias) = &cfg.baseline_alias {
        return by_alias(client, cfg, alias, candidate_version)
            .await
            .map(|b| (Some(b), None));
    }
    let model = (!cfg.baseline_any_model).then_some(cfg.model_name.as_str());
    let search = SearchRuns {
        experiment_ids: vec![exp.experiment_id.clone()],
        filter: baseline_filter(model)?,
        order_by: vec!["attributes.start_time DESC".into()],
        max_results: BASELINE_CANDIDATES,
        page_token: None,
    };
    let page = client
        .search_runs(&search)
        .await
        .map_err(DecideError::mlflow(
            "cannot search MLflow for the baseline run",
        ))?;
    let pick = |runs: &[crate::mlflow::types::Run]| {
        super::baseline::choose(
            runs,
            &cfg.model_name,
            candidate_version,
            candidate_settings,
            &cfg.thresholds,
            cfg.metrics_source,
        )
    };
    let choice = pick(&page.runs);
    let (Some(first), None) = (&choice.baseline, &choice.warning) else {
        return Ok((choice.baseline, choice.warning));
    };
    if cfg.baseline_runs <= 1 {
        return Ok((choice.baseline, choice.warning));
    }
    // --baseline-runs N: the next runs that qualify as the first did, newest first
    let mut chosen = vec![first.clone()];
    let mut rest = &page.runs[..];
    while chosen.len() < cfg.baseline_runs {
        let last = chosen.last().and_then(|b| b.run_id.clone());
        let Some(at) = rest
            .iter()
            .position(|r| Some(&r.info.run_id) == last.as_ref())
        else {
            break;
        };
        rest = &rest[at + 1..];
        match pick(rest) {
            Choice {
                baseline: Some(b),
                warning: None,
            } => chosen.push(b),
            _ => break,
        }
    }
    let n = chosen.len();
    let warning = (n < cfg.baseline_runs).then(|| {
        format!(
            "--baseline-runs {}: only {n} comparable passed run(s) among the {} newest: the baseline is the median of {n}",
            cfg.baseline_runs,
            page.runs.len()
        )
    });
    let mut baseline = first.clone();
    baseline.metrics = crate::decision::drift::median_metrics(
        &chosen.iter().map(|b| b.metrics.clone()).collect::<Vec<_>>(),
    );
    baseline.median_of = chosen.iter().filter_map(|b| b.run_id.clone()).collect();
    baseline.run_to_run_sd_log = crate::decision::statistics::verdict::RunToRun::of_runs(
        &chosen.iter().map(|b| &b.metrics).collect::<Vec<_>>(),
    )
    .sd_log;
    info!(runs = ?baseline.median_of, "baseline: the median of the newest comparable passed runs");
    Ok((Some(baseline), warning))
}

/// The baseline named by `--baseline-alias`: the version holding the alias, and the passed run
/// its `perf_run_id` tag names. Every way this can fail is an error, never absolute mode: the
/// comparison asked for cannot be made.
pub(crate) async fn by_alias(
    client: &MlflowClient,
    cfg: &DecideConfig,
    alias: &str,
    candidate_version: &str,
) -> Result<BaselineRecord, DecideError> {
    let model = &cfg.model_name;
    let refuse = |why: String| DecideError::Input(format!("--baseline-alias {alias}: {why}"));
    let version = client
        .get_model_version_by_alias(model, alias)
        .await
        // MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE
        .map_err(|e| match e.status() == Some(400) || e.is_not_found() {
            true => refuse(format!("model `{model}` has no alias `{alias}`")),
            false => DecideError::mlflow(format!("cannot read alias `{alias}` of `{model}`"))(e),
        })?;
    let v = &version.version;
    if v == candidate_version {
        return Err(refuse(format!(
            "it points at version {v}, the candidate itself: a version is never its own baseline"
        )));
    }
    if version.tag("perf_decision") != Some("passed") {
        return Err(refuse(format!(
            "version {v} holds it, but its perf_decision tag is {:?}, not `passed`: it has no passed performance run to compare with",
            version.tag("perf_decision").unwrap_or("absent")
        )));
    }
    let run_id = version.tag("perf_run_id").ok_or_else(|| {
        refuse(format!(
            "version {v} carries no perf_run_id tag naming its performance run"
        ))
    })?;
    let run = client
        .get_run(run_id)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot read run {run_id}, version {v}'s performance run"
        )))?;
    if run.info.status != "FINISHED" || run.data.tag("perf_decision") != Some("passed") {
        return Err(refuse(format!(
            "run {run_id} of version {v} is {} with perf_decision {:?}: not a passed decision",
            run.info.status,
            run.data.tag("perf_decision").unwrap_or("absent")
        )));
    }
    if run.data.tag(super::override_decision::OVERRIDE_TAG) == Some("true") {
        return Err(refuse(format!(
            "run {run_id} of version {v} is an override (perf-decision override), not a measurement: it is never a baseline"
        )));
    }
    if run.data.tag(super::plan::PERF_VERDICT_TAG) == Some("inconclusive") {
        return Err(refuse(format!(
            "run {run_id} of version {v} passed with an inconclusive verdict: it is never a baseline"
        )));
    }
    info!(alias, version = %v, run_id, "baseline: the run of the version holding the alias");
    Ok(super::baseline::baseline_from_run(&run))
}
