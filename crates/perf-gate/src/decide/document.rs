//! `perf_decision.json`: the decision, everything it was based on, and where it was recorded.
//! It is also a baseline: `--baseline-file` reloads a previous one ([`read_baseline_file`]).

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::decision::checks::{CheckResult, Mode, Verdict};
use crate::decision::drift::DriftResult;
use crate::decision::load_settings::{LoadSettings, keys};
use crate::decision::metrics::{MetricMap, MetricsSource};
use crate::decision::statistics::verdict::{
    DecisionMethod, OnInconclusive, RichVerdict, Statistics,
};
use crate::decision::thresholds::Thresholds;
use crate::results::ToolInfo;

/// Version of the `perf_decision.json` schema. Bumped on any field change.
pub const DECISION_SCHEMA_VERSION: u32 = 3;
/// The oldest `perf_decision.json` version still read as a baseline (its missing fields default).
pub const OLDEST_BASELINE_SCHEMA_VERSION: u32 = 1;
/// File name of the decision document inside `--output-dir`.
pub const DECISION_FILE: &str = "perf_decision.json";
/// File name of the one-word status (`passed`, `failed`, `invalid` or `error`) inside
/// `--output-dir`.
pub const STATUS_FILE: &str = "perf_status.txt";
/// The word in [`STATUS_FILE`] when no decision could be made.
pub const STATUS_ERROR: &str = "error";

/// Where a baseline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// The newest passed run in the MLflow experiment.
    Mlflow,
    /// A previous `perf_decision.json` (`--baseline-file`).
    File,
    /// An earlier `load_test_results.json` (`--baseline-results`): a measurement, not a
    /// passed decision.
    Results,
    /// The baseline adapter measured in the same run (`load-test --baseline-adapter`).
    SameRun,
}

impl BaselineSource {
    /// `mlflow`, `file`, `results`, `same_run` (the MLflow param `baseline_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineSource::Mlflow => "mlflow",
            BaselineSource::File => "file",
            BaselineSource::Results => "results",
            BaselineSource::SameRun => "same_run",
        }
    }
}

/// The baseline a comparative decision used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineRecord {
    /// MLflow or file.
    pub source: BaselineSource,
    /// The baseline's MLflow run id (from the file's `mlflow.run_id` for a file baseline).
    pub run_id: Option<String>,
    /// The file path, for a file baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The baseline adapter, for a same-run baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// With `--baseline-runs N`: the runs (newest first) whose per-metric median is `metrics`;
    /// the statistics use the newest one's samples (`run_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub median_of: Vec<String>,
    /// With `--baseline-runs` 3 or more: the spread between those runs (standard deviation of
    /// the natural log of the client figure behind each judged ratio, keyed by the ratio),
    /// which widens the statistical intervals.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub run_to_run_sd_log: std::collections::BTreeMap<String, f64>,
    /// Where the baseline's per-request samples came from (the statistics resample them), or
    /// why it has none (then the seed's checks alone compare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<String>,
    /// The model the baseline run measured, when known.
    pub model_name: Option<String>,
    /// The baseline's candidate version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The baseline's metrics, under the same names as [`PerfDecision::metrics`].
    pub metrics: MetricMap,
    /// The load settings the baseline recorded (its MLflow params, or the file's
    /// `load_settings`); a setting it did not record is absent.
    #[serde(default)]
    pub load_settings: LoadSettings,
    /// Whether the baseline ran the same load as the candidate: every load setting
    /// recorded by both, and equal. `null` only in documents written
    /// before this was assessed.
    #[serde(default)]
    pub comparable: Option<bool>,
    /// Why it is not comparable, one line per setting (each also a warning).
    #[serde(default)]
    pub comparability: Vec<String>,
    /// Newer passed runs passed over for this one, each with why (another load, looser
    /// thresholds, the candidate's own version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The dataset input logged with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetRecord {
    /// `eval-v{N}` or `eval-<digest>`.
    pub name: String,
    /// The eval file's digest (from the results).
    pub digest: String,
    /// Where the eval data lives (`--eval-data-source`, else the path in the results).
    pub source: String,
    /// The dataset input's context tag.
    pub context: String,
}

/// Where the decision was recorded in MLflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MlflowRecord {
    /// Tracking server (no credentials).
    pub tracking_uri: String,
    /// Experiment name.
    pub experiment_name: String,
    /// Experiment id (absent in a dry run when the experiment does not exist yet).
    pub experiment_id: Option<String>,
    /// The run holding this decision (absent in a dry run).
    pub run_id: Option<String>,
    /// Link to the run in the MLflow UI.
    pub run_url: Option<String>,
    /// Alias set on the candidate version (`perf-passed` or `perf-failed`).
    pub alias_set: Option<String>,
    /// The other alias, removed from the model.
    pub alias_removed: Option<String>,
}

/// The whole `perf_decision.json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PerfDecision {
    /// [`DECISION_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Writer.
    pub tool: ToolInfo,
    /// When the decision was made (RFC 3339).
    pub decided_at: String,
    /// Passed, failed, or invalid (the measurement cannot be trusted: see `invalid_reasons`).
    pub decision: Verdict,
    /// The richer verdict (also the run tag `perf_verdict`): the decision, or `inconclusive`
    /// when a judged metric's interval straddles its tolerance (see `statistics`). Absent in
    /// documents of schema version 2 and older.
    #[serde(default)]
    pub verdict: Option<RichVerdict>,
    /// `--decision`: `seed` (the four checks decide; the statistics can only add failures) or
    /// `statistical` (the intervals decide the comparison).
    #[serde(default)]
    pub decision_method: DecisionMethod,
    /// `--on-inconclusive` under `--decision statistical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<OnInconclusive>,
    /// The statistical comparison with the baseline, when both have per-request samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
    /// The drift of each metric checks 1–3 read from the passed runs of a month ago (see
    /// `perf_gate::decision::drift`); empty without MLflow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftResult>,
    /// Why the measurement cannot be trusted (each makes the decision `invalid`, or with
    /// `--on-invalid fail` a failed `valid_measurement` check); empty when it can.
    #[serde(default)]
    pub invalid_reasons: Vec<String>,
    /// `--on-invalid`: `invalid` (an untrustworthy measurement makes the decision `invalid`) or
    /// `fail` (the seed's behaviour: it fails the candidate).
    #[serde(default = "default_on_invalid")]
    pub on_invalid: String,
    /// Absolute (no baseline) or comparative.
    pub mode: Mode,
    /// Registered model name.
    pub model_name: String,
    /// Candidate model version (absent with `--no-mlflow` and no `--candidate-version`).
    pub candidate_version: Option<String>,
    /// The alias the version was resolved from, if it was.
    pub candidate_alias: Option<String>,
    /// The adapter (served model id) the load test measured.
    pub candidate_adapter: Option<String>,
    /// The adapter's `root` as vLLM reported it.
    pub adapter_root: Option<String>,
    /// The model version's `source` in the registry.
    pub model_version_source: Option<String>,
    /// Which figures fed checks 1–3.
    pub metrics_source: MetricsSource,
    /// Every decision metric of the candidate (server figures unprefixed, client ones `client_`).
    pub metrics: MetricMap,
    /// The candidate's load settings (eval digest, concurrency, max_tokens, ...), as logged to
    /// MLflow as params; compared with the baseline's (see `perf_gate::decision::comparability`).
    #[serde(default)]
    pub load_settings: LoadSettings,
    /// The baseline (comparative mode).
    pub baseline: Option<BaselineRecord>,
    /// With `--also-stored-baseline` in a same-server A/B run: the stored baseline the
    /// candidate was also compared with (checks `stored_baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_baseline: Option<BaselineRecord>,
    /// The four checks (and `comparable_baseline` with `--require-comparable-baseline`).
    pub checks: Vec<CheckResult>,
    /// The limits used.
    pub thresholds: Thresholds,
    /// The eval dataset.
    pub dataset: Option<DatasetRecord>,
    /// The results file judged.
    pub results_file: String,
    /// What identifies this decision (hex sha256 of the results file's bytes and the flags
    /// that shape the verdict): a rerun of the same step (an Argo retry) finds the run tagged
    /// with it and reports that decision instead of recording a second one.
    #[serde(default)]
    pub decision_key: Option<String>,
    /// Where the decision was recorded (absent with `--no-mlflow`).
    pub mlflow: Option<MlflowRecord>,
    /// `--dry-run`: MLflow was read but not written.
    pub dry_run: bool,
    /// Deliberate departures from the seed's behaviour, in words.
    pub departures: Vec<String>,
    /// Non-fatal problems, including why the comparison or its inputs may not be trustworthy
    /// (each also logged at WARN).
    pub warnings: Vec<String>,
}

fn default_on_invalid() -> String {
    "invalid".into()
}

/// Errors reading a previous decision as a baseline.
#[derive(Debug, thiserror::Error)]
pub enum BaselineFileError {
    /// The file could not be read.
    #[error("cannot read baseline file {path}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Empty file.
    #[error("baseline file {path} is empty")]
    Empty {
        /// File path.
        path: String,
    },
    /// Not a decision document.
    #[error("baseline file {path} is not a valid perf_decision.json: {message}")]
    Malformed {
        /// File path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Another schema version.
    #[error("baseline file {path} has schema_version {found}; this build reads version {expected}")]
    SchemaVersion {
        /// File path.
        path: String,
        /// Version found.
        found: u64,
        /// Version read.
        expected: u32,
    },
    /// The file records a failed decision: only a passed decision is a baseline.
    #[error(
        "baseline file {path} records a `{decision}` decision; only a passed decision can be a baseline"
    )]
    NotPassed {
        /// File path.
        path: String,
        /// The decision recorded.
        decision: &'static str,
    },
    /// The file is about another model.
    #[error(
        "baseline file {path} is for model `{found}`, not `{expected}` (pass --baseline-any-model to allow it)"
    )]
    OtherModel {
        /// File path.
        path: String,
        /// Model in the file.
        found: String,
        /// Model being judged.
        expected: String,
    },
}

impl PerfDecision {
    /// Reads and validates a decision document (exists, non-empty JSON, known schema version).
    pub fn read(path: &Path) -> Result<Self, BaselineFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BaselineFileError::Read {
            path: shown.clone(),
            source,
        })?;
        if text.trim().is_empty() {
            return Err(BaselineFileError::Empty { path: shown });
        }
        let raw = crate::strict_json::from_slice(text.as_bytes()).map_err(|e| {
            BaselineFileError::Malformed {
                path: shown.clone(),
                message: e.to_string(),
            }
        })?;
        match raw.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v)
                if (u64::from(OLDEST_BASELINE_SCHEMA_VERSION)
                    ..=u64::from(DECISION_SCHEMA_VERSION))
                    .contains(&v) => {}
            Some(found) => {
                return Err(BaselineFileError::SchemaVersion {
                    path: shown,
                    found,
                    expected: DECISION_SCHEMA_VERSION,
                });
            }
            None => {
                return Err(BaselineFileError::Malformed {
                    path: shown,
                    message: "missing integer field `schema_version`".into(),
                });
            }
        }
        serde_json::from_value(raw).map_err(|e| BaselineFileError::Malformed {
            path: shown,
            message: e.to_string(),
        })
    }
}

/// Loads a previous `perf_decision.json` as a baseline. It must record a passed decision, for
/// `model_name` unless `any_model`.
pub fn read_baseline_file(
    path: &Path,
    model_name: &str,
    any_model: bool,
) -> Result<BaselineRecord, BaselineFileError> {
    let doc = PerfDecision::read(path)?;
    let shown = path.display().to_string();
    if doc.decision != Verdict::Passed {
        return Err(BaselineFileError::NotPassed {
            path: shown,
            decision: doc.decision.as_str(),
        });
    }
    if doc.verdict == Some(RichVerdict::Inconclusive) {
        return Err(BaselineFileError::NotPassed {
            path: shown,
            decision: "passed but inconclusive",
        });
    }
    if !any_model && doc.model_name != model_name {
        return Err(BaselineFileError::OtherModel {
            path: shown,
            found: doc.model_name,
            expected: model_name.to_string(),
        });
    }
    // a file written before `load_settings` existed still knows its digest and metrics source
    let mut load_settings = doc.load_settings;
    if let Some(d) = &doc.dataset {
        load_settings
            .entry(keys::EVAL_DATA_DIGEST.into())
            .or_insert_with(|| d.digest.clone());
    }
    load_settings
        .entry(keys::METRICS_SOURCE.into())
        .or_insert_with(|| doc.metrics_source.as_str().into());
    Ok(BaselineRecord {
        source: BaselineSource::File,
        run_id: doc.mlflow.and_then(|m| m.run_id),
        file: Some(shown),
        adapter: None,
        samples: None,
        median_of: Vec::new(),
        run_to_run_sd_log: Default::default(),
        model_name: Some(doc.model_name),
        version: doc.candidate_version,
        metrics: doc.metrics,
        load_settings,
        comparable: None,
        comparability: Vec::new(),
        skipped: Vec::new(),
    })
}
