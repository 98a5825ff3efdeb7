//! Tracking calls: experiments, runs, metrics/params/tags, dataset inputs, artifacts.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::artifact_store::ArtifactRoot;
use super::client::{Body, Call, MlflowClient};
use super::error::MlflowError;
use super::types::{
    ArtifactList, DatasetInput, Experiment, KeyValue, Metric, Run, RunInfo, RunStatus, RunsPage,
    SearchRuns,
};

/// Longest dataset digest the server accepts.
pub const MAX_DIGEST_LEN: usize = 36;

/// Times `runs/log-inputs` is sent again after losing a race on the dataset's unique key.
const DATASET_RACE_RETRIES: u64 = 3;

/// Server limits of one `runs/log-batch` request.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;
const MAX_ENTITIES: usize = 1000;

/// Metrics, params and tags for `runs/log-batch`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Params (immutable once logged).
    pub params: Vec<KeyValue>,
    /// Tags.
    pub tags: Vec<KeyValue>,
}

impl Batch {
    fn len(&self) -> usize {
        self.metrics.len() + self.params.len() + self.tags.len()
    }
}

/// Splits a batch into requests within the server's limits (1000 metrics, 100 params,
/// 100 tags, 1000 entities per request), keeping the order of each list.
pub fn chunk_batch(batch: Batch) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur = Batch::default();
    let mut metrics = batch.metrics.into_iter();
    let mut params = batch.params.into_iter();
    let mut tags = batch.tags.into_iter();
    loop {
        let mut progressed = false;
        while cur.params.len() < MAX_PARAMS && cur.len() < MAX_ENTITIES {
            let Some(p) = params.next() else { break };
            cur.params.push(p);
            progressed = true;
        }
        while cur.tags.len() < MAX_TAGS && cur.len() < MAX_ENTITIES {
            let Some(t) = tags.next() else { break };
            cur.tags.push(t);
            progressed = true;
        }
        while cur.metrics.len() < MAX_METRICS && cur.len() < MAX_ENTITIES {
            let Some(m) = metrics.next() else { break };
            cur.metrics.push(m);
            progressed = true;
        }
        if !progressed {
            break;
        }
        out.push(std::mem::take(&mut cur));
    }
    out
}

/// The proxied-artifact path of a run's artifact root: `mlflow-artifacts:/1/<run>/artifacts`
/// (also `mlflow-artifacts://host/1/...`) gives `1/<run>/artifacts`. Any other root (`s3://`,
/// a local path) is not reachable through the proxy and gives
/// [`MlflowError::UnsupportedArtifactRoot`]; [`ArtifactRoot::parse`] routes every root.
pub fn artifact_path_from_uri(artifact_uri: &str) -> Result<String, MlflowError> {
    match ArtifactRoot::parse(artifact_uri)? {
        ArtifactRoot::Proxied { path } => Ok(path),
        ArtifactRoot::S3 { .. } => Err(MlflowError::UnsupportedArtifactRoot {
            artifact_uri: artifact_uri.to_string(),
            scheme: "s3".into(),
        }),
    }
}

/// Refuses an experiment that is not `active` (a deleted experiment is still returned by
/// get-by-name, and runs cannot be created in it; a reply without a stage is not trusted).
pub fn ensure_active(exp: &Experiment) -> Result<(), MlflowError> {
    if exp.lifecycle_stage == "active" {
        return Ok(());
    }
    Err(MlflowError::Unexpected {
        endpoint: "GET experiments/get-by-name".into(),
        message: format!(
            "experiment `{}` (id {}) is {}; restore it (POST experiments/restore) or pick another name",
            exp.name, exp.experiment_id, exp.lifecycle_stage
        ),
    })
}

#[derive(Deserialize)]
struct ExperimentReply {
    experiment: Experiment,
}

#[derive(Deserialize)]
struct CreateExperimentReply {
    experiment_id: String,
}

#[derive(Deserialize)]
struct RunReply {
    run: Run,
}

#[derive(Deserialize)]
struct UpdateRunReply {
    run_info: RunInfo,
}

impl MlflowClient {
    pub(crate) fn get(&self, path: &str, query: Vec<(&'static str, String)>) -> Call {
        Call {
            method: Method::GET,
            url: self.api_url(path),
            query,
            body: Body::None,
            idempotent: true,
            endpoint: format!("GET {path}"),
        }
    }

    pub(crate) fn post(&self, path: &str, body: serde_json::Value, idempotent: bool) -> Call {
        Call {
            method: Method::POST,
            url: self.api_url(path),
            query: Vec::new(),
            body: Body::Json(body),
            idempotent,
            endpoint: format!("POST {path}"),
        }
    }

    /// `GET experiments/get-by-name`. `Ok(None)` when no experiment has that name.
    pub async fn get_experiment_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Experiment>, MlflowError> {
        let call = self.get(
            "experiments/get-by-name",
            vec![("experiment_name", name.to_string())],
        );
        match self.call_json::<ExperimentReply>(call).await {
            Ok(r) => Ok(Some(r.experiment)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST experiments/create`; returns the new id.
    pub async fn create_experiment(&self, name: &str) -> Result<String, MlflowError> {
        let call = self.post("experiments/create", json!({ "name": name }), false);
        Ok(self
            .call_json::<CreateExperimentReply>(call)
            .await?
            .experiment_id)
    }

    /// The experiment named `name`, created if missing (a parallel creator is tolerated).
    /// A deleted experiment is an error: restore it first.
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<Experiment, MlflowError> {
        Ok(self.ensure_experiment(name).await?.0)
    }

    /// As [`MlflowClient::get_or_create_experiment`], also saying whether this call created the
    /// experiment (a new experiment holds no baseline: worth a warning).
    pub async fn ensure_experiment(&self, name: &str) -> Result<(Experiment, bool), MlflowError> {
        let (exp, created) = match self.get_experiment_by_name(name).await? {
            Some(e) => (e, false),
            None => {
                let created = match self.create_experiment(name).await {
                    Ok(_) => true,
                    Err(e) if e.is_already_exists() => false,
                    Err(e) => return Err(e),
                };
                let exp = self.get_experiment_by_name(name).await?.ok_or_else(|| {
                    MlflowError::Unexpected {
                        endpoint: "GET experiments/get-by-name".into(),
                        message: format!("experiment `{name}` missing right after creation"),
                    }
                })?;
                (exp, created)
            }
        };
        ensure_active(&exp)?;
        Ok((exp, created))
    }

    /// `POST runs/search`, one page.
    pub async fn search_runs(&self, search: &SearchRuns) -> Result<RunsPage, MlflowError> {
        let body = serde_json::to_value(search).map_err(|e| MlflowError::Config(e.to_string()))?;
        self.call_json(self.post("runs/search", body, true)).await
    }

    /// `POST runs/create` (not retried after a timeout: that could make two runs).
    pub async fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        start_time_ms: i64,
        tags: &[KeyValue],
    ) -> Result<Run, MlflowError> {
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": start_time_ms,
            "tags": tags,
        });
        Ok(self
            .call_json::<RunReply>(self.post("runs/create", body, false))
            .await?
            .run)
    }

    /// `GET runs/get`.
    pub async fn get_run(&self, run_id: &str) -> Result<Run, MlflowError> {
        let call = self.get("runs/get", vec![("run_id", run_id.to_string())]);
        Ok(self.call_json::<RunReply>(call).await?.run)
    }

    /// `POST runs/log-batch`, split into requests within the server's limits.
    pub async fn log_batch(&self, run_id: &str, batch: Batch) -> Result<(), MlflowError> {
        for chunk in chunk_batch(batch) {
            let body = json!({
                "run_id": run_id,
                "metrics": chunk.metrics,
                "params": chunk.params,
                "tags": chunk.tags,
            });
            self.call_ack(self.post("runs/log-batch", body, true))
                .await?;
        }
        Ok(())
    }

    /// `POST runs/set-tag`.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<(), MlflowError> {
        let body = json!({ "run_id": run_id, "key": key, "value": value });
        self.call_ack(self.post("runs/set-tag", body, true)).await?;
        Ok(())
    }

    /// `POST runs/log-inputs` (sent again when another run created the same dataset at the
    /// same moment). Digests longer than [`MAX_DIGEST_LEN`] are refused here rather
    /// than by the server.
    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
    ) -> Result<(), MlflowError> {
        if let Some(d) = datasets
            .iter()
            .find(|d| d.dataset.digest.len() > MAX_DIGEST_LEN)
        {
            return Err(MlflowError::Config(format!(
                "dataset `{}` digest is {} characters; mlflow accepts at most {MAX_DIGEST_LEN}",
                d.dataset.name,
                d.dataset.digest.len()
            )));
        }
        let body = json!({ "run_id": run_id, "datasets": datasets });
        // MLflow gets-or-creates the dataset row without a lock: two runs logging the same
        // dataset at once (concurrent decisions on one eval set) make one fail on the unique
        // key. The row exists after that, and logging an input twice adds nothing, so the
        // call is simply sent again.
        let mut attempt = 0;
        loop {
            match self
                .call_ack(self.post("runs/log-inputs", body.clone(), true))
                .await
            {
                Err(e) if attempt < DATASET_RACE_RETRIES && e.is_unique_key_race() => {
                    attempt += 1;
                    tracing::info!(error = %e, "dataset created concurrently by another run: logging the input again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// `POST runs/update`, then checks the reply: the server ignores an unknown status silently.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<RunInfo, MlflowError> {
        let mut body = json!({ "run_id": run_id, "status": status.as_str() });
        if let Some(t) = end_time_ms {
            body["end_time"] = json!(t);
        }
        let info = self
            .call_json::<UpdateRunReply>(self.post("runs/update", body, true))
            .await?
            .run_info;
        if info.status != status.as_str() {
            return Err(MlflowError::Unexpected {
                endpoint: "POST runs/update".into(),
                message: format!(
                    "run {run_id} status is {} after asking for {}",
                    info.status,
                    status.as_str()
                ),
            });
        }
        Ok(info)
    }

    /// Uploads `bytes` as artifact `rel_path` of a run, where its `artifact_uri` says
    /// ([`ArtifactRoot`]): `PUT mlflow-artifacts/artifacts/<root>/<rel_path>` through the server's
    /// artifact proxy, or straight to `s3://<bucket>/<prefix>/<rel_path>` with the environment's
    /// AWS credentials (see [`crate::mlflow::artifact_store`]). Other roots are an error.
    pub async fn upload_artifact(
        &self,
        run: &RunInfo,
        rel_path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), MlflowError> {
        let root = match ArtifactRoot::parse(&run.artifact_uri)? {
            ArtifactRoot::Proxied { path } => path,
            ArtifactRoot::S3 { bucket, prefix } => {
                return self.s3_put(&bucket, &prefix, rel_path, bytes).await;
            }
        };
        let url = self.join_segments(&["api/2.0/mlflow-artifacts/artifacts", &root, rel_path]);
        let call = Call {
            method: Method::PUT,
            url,
            query: Vec::new(),
            body: Body::Bytes(bytes),
            idempotent: true,
            endpoint: format!("PUT mlflow-artifacts/artifacts/.../{rel_path}"),
        };
        self.call_raw(call).await?;
        Ok(())
    }

    /// Downloads an artifact's bytes from where [`MlflowClient::upload_artifact`] puts it:
    /// `GET mlflow-artifacts/artifacts/<root>/<rel_path>`, or the S3 object.
    pub async fn download_artifact(
        &self,
        run: &RunInfo,
        rel_path: &str,
    ) -> Result<Vec<u8>, MlflowError> {
        let root = match ArtifactRoot::parse(&run.artifact_uri)? {
            ArtifactRoot::Proxied { path } => path,
            ArtifactRoot::S3 { bucket, prefix } => {
                return self.s3_get(&bucket, &prefix, rel_path).await;
            }
        };
        let url = self.join_segments(&["api/2.0/mlflow-artifacts/artifacts", &root, rel_path]);
        let call = Call {
            method: Method::GET,
            url,
            query: Vec::new(),
            body: Body::None,
            idempotent: true,
            endpoint: format!("GET mlflow-artifacts/artifacts/.../{rel_path}"),
        };
        Ok(self.call_raw(call).await?.1)
    }

    /// `GET artifacts/list` for a run (optionally a sub-directory).
    pub async fn list_artifacts(
        &self,
        run_id: &str,
        path: Option<&str>,
    ) -> Result<ArtifactList, MlflowError> {
        let mut query = vec![("run_id", run_id.to_string())];
        if let Some(p) = path {
            query.push(("path", p.to_string()));
        }
        self.call_json(self.get("artifacts/list", query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlflow::types::MetricValue;

    fn metric(i: usize) -> Metric {
        Metric {
            key: format!("m{i}"),
            value: MetricValue(i as f64),
            timestamp: 1,
            step: 0,
        }
    }

    #[test]
    fn small_batch_is_one_request() {
        let b = Batch {
            metrics: (0..20).map(metric).collect(),
            params: vec![KeyValue::new("a", "1")],
            tags: vec![KeyValue::new("t", "x")],
        };
        let chunks = chunk_batch(b.clone());
        assert_eq!(chunks, vec![b]);
        assert!(chunk_batch(Batch::default()).is_empty());
    }

    #[test]
    fn big_batches_respect_every_limit_and_keep_everything() {
        let b = Batch {
            metrics: (0..2500).map(metric).collect(),
            params: (0..250)
                .map(|i| KeyValue::new(format!("p{i}"), "v"))
                .collect(),
            tags: (0..150)
                .map(|i| KeyValue::new(format!("t{i}"), "v"))
                .collect(),
        };
        let chunks = chunk_batch(b.clone());
        for c in &chunks {
            assert!(c.metrics.len() <= 1000 && c.params.len() <= 100 && c.tags.len() <= 100);
            assert!(c.len() <= 1000);
        }
        let metrics: Vec<_> = chunks.iter().flat_map(|c| c.metrics.clone()).collect();
        let params: Vec<_> = chunks.iter().flat_map(|c| c.params.clone()).collect();
        let tags: Vec<_> = chunks.iter().flat_map(|c| c.tags.clone()).collect();
        assert_eq!((metrics, params, tags), (b.metrics, b.params, b.tags));
    }

    #[test]
    fn artifact_paths_come_from_the_proxied_root_only() {
        assert_eq!(
            artifact_path_from_uri("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        assert_eq!(
            artifact_path_from_uri("mlflow-artifacts://mlflow:5000/2/abc/artifacts/").unwrap(),
            "2/abc/artifacts"
        );
        for bad in [
            "s3://bucket/1/abc/artifacts",
            "/tmp/mlruns/1/abc",
            "file:///x",
            "mlflow-artifacts:/",
            "mlflow-artifacts:/1/../../etc",
        ] {
            let e = artifact_path_from_uri(bad).unwrap_err();
            assert!(
                matches!(e, MlflowError::UnsupportedArtifactRoot { .. }),
                "{bad}"
            );
        }
    }
}
