//! A typed client for MLflow's REST API (`/api/2.0/mlflow/...` and the proxied artifact API),
//! written against MLflow 3.x as observed with a real server. Artifacts of a run whose root is
//! `s3://...` (a server with `--no-serve-artifacts`) go straight to the bucket instead
//! ([`artifact_store`]).
//!
//! Configuration follows the Python client's environment: `MLFLOW_TRACKING_URI`,
//! `MLFLOW_TRACKING_TOKEN` (bearer), `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`
//! (basic) and `MLFLOW_TRACKING_INSECURE_TLS` ([`MlflowConfig::from_env`]). Secrets never appear
//! in `Debug` output or logs.
//!
//! Every idempotent call is retried a bounded number of times with capped exponential backoff on
//! connection errors, timeouts, 408, 429 and 5xx (honouring `Retry-After`), never on other 4xx;
//! calls that create something only when the connection could not be made ([`crate::retry`]). Errors
//! carry MLflow's `error_code` and `message`, or the HTTP status and text of a non-JSON body
//! ([`MlflowError`]). A success with an empty body is accepted only from the calls whose real
//! reply is `{}` (log-batch, set-tag, aliases, ...): elsewhere (`runs/search`, where `{}` means
//! "no run") it is an error, never read as an empty answer.
//!
//! Pitfalls handled here (each seen on a real server): non-finite metric values are sent as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"` (a bare `NaN` silently corrupts the batch); every
//! param, tag, id and version is a string; empty lists are left out of responses; the
//! delete-alias call takes a JSON body; dataset digests are at most 36 characters; `runs/update`
//! ignores an unknown status, so the reply is checked.

pub mod artifact_store;
mod client;
mod config;
mod error;
mod registry;
mod tracking;
pub mod types;

pub use crate::retry::RetryPolicy;
pub use artifact_store::{ArtifactRoot, S3Settings};
pub use client::MlflowClient;
pub use config::{Auth, DEFAULT_REQUEST_TIMEOUT, MlflowConfig, Secret};
pub use error::MlflowError;
pub use tracking::{Batch, MAX_DIGEST_LEN, artifact_path_from_uri, chunk_batch, ensure_active};

#[cfg(test)]
mod tests;
