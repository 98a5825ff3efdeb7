//! Request and response bodies of the MLflow REST API, typed as the server really sends them:
//! ids, versions, params and tags are strings; timestamps are integer milliseconds; empty lists
//! are left out (every `Vec` is `#[serde(default)]`); unknown fields are ignored.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An experiment (`experiments/get-by-name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Id, a string such as `"1"`.
    pub experiment_id: String,
    /// Name.
    pub name: String,
    /// Default artifact root of its runs (`mlflow-artifacts:/1` with `--serve-artifacts`).
    #[serde(default)]
    pub artifact_location: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// In progress.
    Running,
    /// Scheduled.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped (e.g. by a signal).
    Killed,
}

impl RunStatus {
    /// The wire spelling (`FINISHED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// 32 hex characters.
    pub run_id: String,
    /// Experiment id.
    pub experiment_id: String,
    /// Run name.
    #[serde(default)]
    pub run_name: String,
    /// `RUNNING`, `FINISHED`, ... (kept as text so an unknown value still parses).
    #[serde(default)]
    pub status: String,
    /// Start, ms since the epoch.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// End, ms since the epoch.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Artifact root, e.g. `mlflow-artifacts:/1/<run_id>/artifacts`.
    #[serde(default)]
    pub artifact_uri: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// A metric value: finite numbers travel as JSON numbers, non-finite ones as the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"` (proto3 JSON). A bare `NaN` token or `null` would make
/// the server drop or reject the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(MetricValue(v)),
            Raw::Str(s) => match s.as_str() {
                "NaN" => Ok(MetricValue(f64::NAN)),
                "Infinity" => Ok(MetricValue(f64::INFINITY)),
                "-Infinity" => Ok(MetricValue(f64::NEG_INFINITY)),
                other => other.parse::<f64>().map(MetricValue).map_err(|_| {
                    serde::de::Error::custom(format!("metric value `{other}` is not a number"))
                }),
            },
        }
    }
}

/// One metric point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Key.
    pub key: String,
    /// Value (may be non-finite).
    pub value: MetricValue,
    /// ms since the epoch (required by the server).
    #[serde(default)]
    pub timestamp: i64,
    /// Step.
    #[serde(default)]
    pub step: i64,
}

/// A key/value string pair: a param, a run tag, a dataset input tag or a model-version tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value (always a string on the wire; a number would be stored as `""`).
    #[serde(default)]
    pub value: String,
}

impl KeyValue {
    /// A pair.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Metrics, params and tags of a run (`data.metrics` holds the latest value per key).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunData {
    /// Latest value of each metric.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Params.
    #[serde(default)]
    pub params: Vec<KeyValue>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl RunData {
    /// A metric's latest value.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.0)
    }

    /// A param's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }
}

/// A dataset as logged by `runs/log-inputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Name, e.g. `eval-v3`.
    pub name: String,
    /// Digest, at most 36 characters.
    pub digest: String,
    /// `local`, `s3`, `http`, ... (not enforced by the server).
    #[serde(default)]
    pub source_type: String,
    /// Where it lives; by convention a JSON string such as `{"uri": "s3://..."}`.
    #[serde(default)]
    pub source: String,
    /// Optional JSON schema text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Optional JSON profile text (e.g. `{"num_rows": 200}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A dataset attached to a run, with its input tags (e.g. `mlflow.data.context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Input tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    /// The dataset.
    pub dataset: Dataset,
}

/// Inputs of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunInputs {
    /// Datasets.
    #[serde(default)]
    pub dataset_inputs: Vec<DatasetInput>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Metrics, params, tags.
    #[serde(default)]
    pub data: RunData,
    /// Datasets.
    #[serde(default)]
    pub inputs: RunInputs,
}

/// Body of `runs/search`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchRuns {
    /// Experiments to search.
    pub experiment_ids: Vec<String>,
    /// Filter, e.g. `tags.perf_decision = 'passed'`.
    pub filter: String,
    /// Ordering, e.g. `attributes.start_time DESC`.
    pub order_by: Vec<String>,
    /// Page size (at most 50000).
    pub max_results: u32,
    /// Continuation token from a previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
}

/// A page of `runs/search` (`{}` when nothing matches).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RunsPage {
    /// Runs.
    #[serde(default)]
    pub runs: Vec<Run>,
    /// Token of the next page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// Version, a string such as `"3"`.
    pub version: String,
    /// Where the model's files are (`runs:/...`, `s3://...`).
    #[serde(default)]
    pub source: String,
    /// Run that produced it (may be empty).
    #[serde(default)]
    pub run_id: String,
    /// `READY`, `PENDING_REGISTRATION`, `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: String,
    /// Aliases pointing at this version (plain strings here).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Version tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl ModelVersion {
    /// A version tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// An alias of a registered model (objects here, unlike in [`ModelVersion::aliases`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAlias {
    /// Alias name.
    pub alias: String,
    /// Version it points at.
    pub version: String,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Name.
    pub name: String,
    /// Latest version per stage.
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    /// Aliases.
    #[serde(default)]
    pub aliases: Vec<ModelAlias>,
    /// Registered-model tags.
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

impl RegisteredModel {
    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// The version an alias points at.
    pub fn alias(&self, alias: &str) -> Option<&str> {
        self.aliases
            .iter()
            .find(|a| a.alias == alias)
            .map(|a| a.version.as_str())
    }
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileInfo {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Directory?
    #[serde(default)]
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(default)]
    pub file_size: Option<i64>,
}

/// `artifacts/list` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ArtifactList {
    /// The run's artifact root.
    #[serde(default)]
    pub root_uri: Option<String>,
    /// Entries (absent when empty).
    #[serde(default)]
    pub files: Vec<FileInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_use_proto3_spelling_for_non_finite() {
        let vals = [
            MetricValue(1.5),
            MetricValue(f64::NAN),
            MetricValue(f64::INFINITY),
            MetricValue(f64::NEG_INFINITY),
            MetricValue(3.0),
        ];
        let s = serde_json::to_string(&vals).unwrap();
        assert_eq!(s, r#"[1.5,"NaN","Infinity","-Infinity",3.0]"#);
        let back: Vec<MetricValue> = serde_json::from_str(r#"[1.5,"NaN",1,"Infinity"]"#).unwrap();
        assert_eq!(back[0].0, 1.5);
        assert!(back[1].0.is_nan());
        assert_eq!(back[2].0, 1.0);
        assert_eq!(back[3].0, f64::INFINITY);
        assert!(serde_json::from_str::<MetricValue>(r#""nan?""#).is_err());
    }

    #[test]
    fn empty_lists_are_left_out_by_the_server() {
        let page: RunsPage = serde_json::from_str("{}").unwrap();
        assert!(page.runs.is_empty());
        let run: Run = serde_json::from_str(
            r#"{"info":{"run_uuid":"a","run_id":"a","experiment_id":"1","status":"RUNNING",
                "start_time":1,"artifact_uri":"mlflow-artifacts:/1/a/artifacts","lifecycle_stage":"active",
                "user_id":"","workspace":"default"},
               "data":{"tags":[{"key":"mlflow.runName","value":"x"}]},"inputs":{},"outputs":{}}"#,
        )
        .unwrap();
        assert!(run.data.metrics.is_empty());
        assert_eq!(run.data.tag("mlflow.runName"), Some("x"));
        assert!(run.inputs.dataset_inputs.is_empty());
        let list: ArtifactList =
            serde_json::from_str(r#"{"root_uri":"mlflow-artifacts:/1/a/artifacts"}"#).unwrap();
        assert!(list.files.is_empty());
    }

    #[test]
    fn registered_model_aliases_are_objects_version_aliases_strings() {
        let m: RegisteredModel = serde_json::from_str(
            r#"{"name":"m","creation_timestamp":1,"aliases":[{"alias":"perf-passed","version":"3"}]}"#,
        )
        .unwrap();
        assert_eq!(m.alias("perf-passed"), Some("3"));
        assert_eq!(m.alias("perf-failed"), None);
        let v: ModelVersion = serde_json::from_str(
            r#"{"name":"m","version":"2","aliases":["perf-failed"],"current_stage":"None"}"#,
        )
        .unwrap();
        assert_eq!(v.aliases, vec!["perf-failed"]);
    }
}
