//! Model registry calls: registered models, versions, aliases, version tags.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{Body, Call, MlflowClient};
use super::error::MlflowError;
use super::types::{KeyValue, ModelVersion, RegisteredModel};

#[derive(Deserialize)]
struct RegisteredModelReply {
    registered_model: RegisteredModel,
}

#[derive(Deserialize)]
struct ModelVersionReply {
    model_version: ModelVersion,
}

impl MlflowClient {
    /// `POST registered-models/create`.
    pub async fn create_registered_model(
        &self,
        name: &str,
    ) -> Result<RegisteredModel, MlflowError> {
        let call = self.post("registered-models/create", json!({ "name": name }), false);
        Ok(self
            .call_json::<RegisteredModelReply>(call)
            .await?
            .registered_model)
    }

    /// `POST registered-models/create` with tags, in one call: MLflow creates the model
    /// atomically or answers 400 `RESOURCE_ALREADY_EXISTS`, which makes it a lock (see
    /// `perf_gate::decide` leases). Not retried after the request may have reached the server.
    pub async fn create_registered_model_tagged(
        &self,
        name: &str,
        tags: &[KeyValue],
    ) -> Result<RegisteredModel, MlflowError> {
        let call = self.post(
            "registered-models/create",
            json!({ "name": name, "tags": tags }),
            false,
        );
        Ok(self
            .call_json::<RegisteredModelReply>(call)
            .await?
            .registered_model)
    }

    /// `DELETE registered-models/delete` (JSON body): removes a registered model and its
    /// versions; 404 `RESOURCE_DOES_NOT_EXIST` when there is none.
    pub async fn delete_registered_model(&self, name: &str) -> Result<(), MlflowError> {
        let call = Call {
            method: Method::DELETE,
            url: self.api_url("registered-models/delete"),
            query: Vec::new(),
            body: Body::Json(json!({ "name": name })),
            idempotent: true,
            endpoint: "DELETE registered-models/delete".into(),
        };
        self.call_ack(call).await
    }

    /// `GET registered-models/get` (404 `RESOURCE_DOES_NOT_EXIST` for an unknown model).
    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel, MlflowError> {
        let call = self.get("registered-models/get", vec![("name", name.to_string())]);
        Ok(self
            .call_json::<RegisteredModelReply>(call)
            .await?
            .registered_model)
    }

    /// `POST model-versions/create`; `source` is `runs:/...`, `s3://...`, `mlflow-artifacts:/...`.
    pub async fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: Option<&str>,
    ) -> Result<ModelVersion, MlflowError> {
        let mut body = json!({ "name": name, "source": source });
        if let Some(r) = run_id {
            body["run_id"] = json!(r);
        }
        let call = self.post("model-versions/create", body, false);
        Ok(self
            .call_json::<ModelVersionReply>(call)
            .await?
            .model_version)
    }

    /// `GET model-versions/get` (404 for an unknown model or version).
    pub async fn get_model_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<ModelVersion, MlflowError> {
        let call = self.get(
            "model-versions/get",
            vec![("name", name.to_string()), ("version", version.to_string())],
        );
        Ok(self
            .call_json::<ModelVersionReply>(call)
            .await?
            .model_version)
    }

    /// `GET registered-models/alias`: the version an alias points at. A missing alias is a
    /// 400 `INVALID_PARAMETER_VALUE` ("... alias X not found"), not a 404.
    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion, MlflowError> {
        let call = self.get(
            "registered-models/alias",
            vec![("name", name.to_string()), ("alias", alias.to_string())],
        );
        Ok(self
            .call_json::<ModelVersionReply>(call)
            .await?
            .model_version)
    }

    /// `POST registered-models/alias`: points `alias` at `version` (moving it if it existed).
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<(), MlflowError> {
        let body = json!({ "name": name, "alias": alias, "version": version });
        self.call_ack(self.post("registered-models/alias", body, true))
            .await?;
        Ok(())
    }

    /// `DELETE registered-models/alias` with a JSON body (query parameters do not work for this
    /// call). Deleting a missing alias succeeds.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), MlflowError> {
        let call = Call {
            method: Method::DELETE,
            url: self.api_url("registered-models/alias"),
            query: Vec::new(),
            body: Body::Json(json!({ "name": name, "alias": alias })),
            idempotent: true,
            endpoint: "DELETE registered-models/alias".into(),
        };
        self.call_ack(call).await?;
        Ok(())
    }

    /// `POST model-versions/set-tag`.
    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<(), MlflowError> {
        let body = json!({ "name": name, "version": version, "key": key, "value": value });
        self.call_ack(self.post("model-versions/set-tag", body, true))
            .await?;
        Ok(())
    }

    /// `DELETE model-versions/delete-tag` with a JSON body (as the delete-alias call).
    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<(), MlflowError> {
        let call = Call {
            method: Method::DELETE,
            url: self.api_url("model-versions/delete-tag"),
            query: Vec::new(),
            body: Body::Json(json!({ "name": name, "version": version, "key": key })),
            idempotent: true,
            endpoint: "DELETE model-versions/delete-tag".into(),
        };
        self.call_ack(call).await
    }
}
