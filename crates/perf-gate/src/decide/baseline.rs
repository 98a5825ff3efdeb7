//! Which passed run is the baseline, from a list of candidates (the newest first), and what a
//! run's params say about the load it ran. Pure: tested without MLflow.
//!
//! A lax pass must not become the bar: the newest passed run is skipped when it is the
//! candidate's own version (a rerun is never its own baseline), ran another load (the
//! settings of [`crate::decision::comparability`]), judged other figures (`metrics_source`), or
//! passed with thresholds looser than the candidate's. The first run left is the baseline.
//! When every run is skipped for its load or thresholds, the newest that is not the
//! candidate's version is used, with a warning (never absolute mode, which is laxer than the
//! seed). The skipped runs and why are recorded in the baseline's `skipped`. A run of
//! `perf-decision override` (tagged `perf_override=true`) is never a baseline, nor a fallback: it
//! says passed without measuring anything.

use super::document::{BaselineRecord, BaselineSource};
use super::override_decision::OVERRIDE_TAG;
use crate::decision::comparability::compare;
use crate::decision::load_settings::{LoadSettings, keys};
use crate::decision::{MetricMap, MetricsSource, Thresholds};
use crate::mlflow::types::Run;
use crate::results::Measured;

/// The chosen baseline and the warning when it is a fallback.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Choice {
    /// The baseline, if any run qualifies.
    pub baseline: Option<BaselineRecord>,
    /// Set when no run ran a comparable load and the newest was taken anyway.
    pub warning: Option<String>,
}

/// Chooses the baseline among `runs` (newest first; see the module docs).
pub(crate) fn choose(
    runs: &[Run],
    model: &str,
    candidate_version: &str,
    candidate_settings: &LoadSettings,
    thresholds: &Thresholds,
    source: MetricsSource,
) -> Choice {
    let mut skipped = Vec::new();
    let mut fallback: Option<(BaselineRecord, Vec<String>, Vec<String>)> = None;
    // the newest inconclusive pass (not the candidate's version): a last resort before
    // absolute mode, which would be laxer than the seed
    let mut inconclusive: Option<(BaselineRecord, Vec<String>)> = None;
    for run in runs {
        let b = baseline_from_run(run);
        let id = &run.info.run_id;
        let v = b.version.as_deref().unwrap_or("?");
        if run.data.tag(OVERRIDE_TAG) == Some("true") {
            skipped.push(format!(
                "run {id} (version {v}): an override (perf-decision override), not a measurement"
            ));
            continue;
        }
        if run.data.tag(super::plan::PERF_VERDICT_TAG) == Some("inconclusive") {
            if inconclusive.is_none() && b.version.as_deref() != Some(candidate_version) {
                inconclusive = Some((b.clone(), skipped.clone()));
            }
            skipped.push(format!(
                "run {id} (version {v}): its verdict was inconclusive (the evidence could not show it within the tolerances)"
            ));
            continue;
        }
        let same_model = b.model_name.as_deref().is_none_or(|m| m == model);
        if same_model && b.version.as_deref() == Some(candidate_version) {
            skipped.push(format!(
                "run {id}: it judged version {v}, the candidate itself"
            ));
            continue;
        }
        let load = compare(candidate_settings, &b.load_settings).reasons;
        // what the comparability warnings will not say about a baseline
        let mut other = Vec::new();
        match b.load_settings.get(keys::METRICS_SOURCE) {
            Some(s) if s == source.as_str() => {}
            Some(s) => other.push(format!(
                "it was judged on the {s} figures, the candidate on the {}",
                source.as_str()
            )),
            None => other.push("it does not record which figures it was judged on".into()),
        }
        other.extend(looser_thresholds(run, thresholds));
        let why: Vec<String> = load.iter().chain(&other).cloned().collect();
        if why.is_empty() {
            let mut b = b;
            b.skipped = skipped;
            return Choice {
                baseline: Some(b),
                warning: None,
            };
        }
        let line = format!("run {id} (version {v}): {}", why.join("; "));
        if fallback.is_none() {
            fallback = Some((b, skipped.clone(), other));
        }
        skipped.push(line);
    }
    match fallback {
        Some((mut b, before, other)) => {
            let id = b.run_id.clone().unwrap_or_default();
            // its load differences are warned about by the comparability assessment
            let also = if other.is_empty() {
                String::new()
            } else {
                format!("; {}", other.join("; "))
            };
            let warning = format!(
                "none of the {} newest passed runs ran a comparable load with thresholds no looser than the candidate's: the newest, run {id}, is the baseline anyway{also}",
                runs.len(),
            );
            b.skipped = before;
            Choice {
                baseline: Some(b),
                warning: Some(warning),
            }
        }
        None => match inconclusive {
            Some((mut b, before)) => {
                let id = b.run_id.clone().unwrap_or_default();
                b.skipped = before;
                Choice {
                    baseline: Some(b),
                    warning: Some(format!(
                        "every passed run that could be the baseline passed with an inconclusive verdict: the newest, run {id}, is the baseline anyway (absolute mode would be laxer than the seed)"
                    )),
                }
            }
            None => Choice {
                baseline: None,
                warning: (!skipped.is_empty())
                    .then(|| format!("no passed run can be the baseline: {}", skipped.join("; "))),
            },
        },
    }
}

/// Why a run's thresholds are looser than `current`, one line each; a threshold the run does
/// not record counts as looser (it cannot be shown not to be).
fn looser_thresholds(run: &Run, current: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    let mut unrecorded = Vec::new();
    for (field, param, now) in current.entries() {
        // a floor on a latency or a tolerance is looser when larger; a minimum when smaller
        let larger_is_looser = !field.starts_with("min_");
        match run.data.param(param).and_then(|v| v.parse::<f64>().ok()) {
            None => unrecorded.push(param),
            Some(then) if (larger_is_looser && then > now) || (!larger_is_looser && then < now) => {
                out.push(format!(
                    "it passed with --{} {then}, looser than {now}",
                    param.replace('_', "-")
                ));
            }
            Some(_) => {}
        }
    }
    if !unrecorded.is_empty() {
        out.push(format!(
            "it does not record its thresholds ({})",
            unrecorded.join(", ")
        ));
    }
    out
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
        adapter: None,
        samples: None,
        median_of: Vec::new(),
        run_to_run_sd_log: Default::default(),
        source: BaselineSource::Mlflow,
        run_id: Some(run.info.run_id.clone()),
        file: None,
        model_name: run.data.param("model_name").map(str::to_string),
        version: run.data.param("candidate_version").map(str::to_string),
        metrics,
        load_settings: run_settings(run),
        comparable: None,
        comparability: Vec::new(),
        skipped: Vec::new(),
    }
}

/// A baseline run's settings: its params of those names, and its dataset input's digest when
/// it has no `eval_data_digest` param.
pub fn run_settings(run: &Run) -> LoadSettings {
    let mut out: LoadSettings = keys::ALL
        .iter()
        .filter_map(|&k| run.data.param(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    if !out.contains_key(keys::EVAL_DATA_DIGEST)
        && let Some(d) = run
            .inputs
            .dataset_inputs
            .iter()
            .map(|i| &i.dataset.digest)
            .find(|d| !d.is_empty())
    {
        out.insert(keys::EVAL_DATA_DIGEST.into(), d.clone());
    }
    out
}

#[cfg(test)]
mod tests;
