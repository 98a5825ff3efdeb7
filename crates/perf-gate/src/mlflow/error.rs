//! Errors of the MLflow client.

use std::time::Duration;

/// Longest excerpt of a non-JSON error body kept in an error (the rest is cut).
const BODY_EXCERPT: usize = 300;

/// An MLflow call failed. Messages name the endpoint; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The configuration is unusable (tracking URI, auth variables).
    #[error("invalid mlflow configuration: {0}")]
    Config(String),
    /// MLflow answered with its JSON error body (`error_code`, `message`).
    #[error("{endpoint}: mlflow error {error_code} (http {status}): {message}")]
    Api {
        /// Endpoint called, e.g. `POST runs/create`.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`.
        error_code: String,
        /// MLflow's `message`.
        message: String,
    },
    /// A non-success status whose body is not MLflow's JSON error (401/403 from basic-auth, an
    /// HTML 404 page, a proxy's 502).
    #[error("{endpoint}: http {status}{}{}", auth_hint(*.status), fmt_body(.body))]
    Http {
        /// Endpoint called.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// Start of the body text.
        body: String,
    },
    /// No answer: connection refused or reset, DNS, TLS, after every attempt.
    #[error("{endpoint}: cannot reach mlflow at {base} after {attempts} attempt(s)")]
    Transport {
        /// Endpoint called.
        endpoint: String,
        /// Tracking URI (no credentials).
        base: String,
        /// Attempts made.
        attempts: u32,
        /// Last transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Every attempt timed out.
    #[error("{endpoint}: timed out after {timeout:?} per attempt ({attempts} attempt(s))")]
    Timeout {
        /// Endpoint called.
        endpoint: String,
        /// Per-attempt timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("{endpoint}: malformed response (http {status}): {message}{}", fmt_body(.body))]
    Decode {
        /// Endpoint called.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// What did not parse.
        message: String,
        /// Start of the body text.
        body: String,
    },
    /// The server accepted a call but did not do what was asked (e.g. `runs/update` ignoring
    /// a status), or a reply contradicts the request.
    #[error("{endpoint}: {message}")]
    Unexpected {
        /// Endpoint called.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
    /// The run's artifact root is neither served by MLflow's artifact proxy nor an S3 bucket.
    #[error(
        "artifact root `{artifact_uri}` (scheme `{scheme}`) is not supported: artifacts are written through the mlflow artifact proxy (mlflow-artifacts:/..., server started with --serve-artifacts) or directly to s3://bucket/prefix"
    )]
    UnsupportedArtifactRoot {
        /// The run's `artifact_uri`.
        artifact_uri: String,
        /// Its scheme (`gs`, `file`, ...), or `none` for a bare path.
        scheme: String,
    },
    /// A direct request to the artifact store (S3) failed, after `object_store`'s retries.
    #[error("{operation} {location}: {message}")]
    ArtifactStore {
        /// `PUT` or `GET`.
        operation: &'static str,
        /// `s3://bucket/key` (no credentials).
        location: String,
        /// One line: the HTTP status with S3's error code and message, or the root cause of a
        /// transport failure and the retries made, then a hint (credentials, endpoint).
        message: String,
        /// The store's error, kept whole. Deliberately not the `source`: its text repeats every
        /// layer of its chain and carries the response body across lines, so printing the chain
        /// would bury the cause; `message` summarises it.
        error: Box<object_store::Error>,
    },
}

fn auth_hint(status: u16) -> &'static str {
    match status {
        401 => {
            " (check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN)"
        }
        403 => " (the MLflow user lacks permission for this call)",
        _ => "",
    }
}

fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl MlflowError {
    /// MLflow's `error_code`, when the server sent one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            MlflowError::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            MlflowError::Api { status, .. }
            | MlflowError::Http { status, .. }
            | MlflowError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `RESOURCE_DOES_NOT_EXIST` (experiment, run, model, version).
    pub fn is_not_found(&self) -> bool {
        self.error_code() == Some("RESOURCE_DOES_NOT_EXIST")
    }

    /// A write the database refused on a unique key another writer had just taken (SQLite
    /// `UNIQUE constraint failed`, PostgreSQL `duplicate key value`, MySQL `Duplicate entry`),
    /// which MLflow reports as a 400 `BAD_REQUEST` or a 500: the same call succeeds once the
    /// other writer's row exists.
    pub fn is_unique_key_race(&self) -> bool {
        match self {
            MlflowError::Api { message, .. } => [
                "UNIQUE constraint failed",
                "duplicate key value",
                "Duplicate entry",
            ]
            .iter()
            .any(|m| message.contains(m)),
            _ => false,
        }
    }

    /// `RESOURCE_ALREADY_EXISTS` (experiment or registered model name taken).
    pub fn is_already_exists(&self) -> bool {
        self.error_code() == Some("RESOURCE_ALREADY_EXISTS")
    }
}

/// Keeps the first [`BODY_EXCERPT`] characters of a body, on one line.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = one_line.chars().take(BODY_EXCERPT).collect();
    if one_line.chars().count() > BODY_EXCERPT {
        out.push_str("...");
    }
    out
}

/// MLflow's JSON error body.
#[derive(serde::Deserialize)]
struct ApiErrorBody {
    error_code: String,
    #[serde(default)]
    message: String,
}

/// Builds the error for a non-success answer: MLflow's JSON error if the body is one, else the
/// status and body text.
pub(crate) fn from_response(endpoint: &str, status: u16, body: &[u8]) -> MlflowError {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(b) => MlflowError::Api {
            endpoint: endpoint.to_string(),
            status,
            error_code: b.error_code,
            message: b.message,
        },
        Err(_) => MlflowError::Http {
            endpoint: endpoint.to_string(),
            status,
            body: excerpt(body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body_becomes_api_error() {
        let e = from_response(
            "GET experiments/get-by-name",
            404,
            br#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment with name 'x'", "sqlstate": "KAM00", "error_class": "RESOURCE_NOT_FOUND"}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(e.status(), Some(404));
        assert_eq!(
            e.to_string(),
            "GET experiments/get-by-name: mlflow error RESOURCE_DOES_NOT_EXIST (http 404): Could not find experiment with name 'x'"
        );
    }

    #[test]
    fn text_body_keeps_status_and_text() {
        let e = from_response(
            "POST runs/create",
            401,
            b"You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.",
        );
        assert!(matches!(e, MlflowError::Http { status: 401, .. }));
        assert!(
            e.to_string().starts_with(
                "POST runs/create: http 401 (check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN): You are not authenticated."
            ),
            "{e}"
        );
        assert_eq!(e.error_code(), None);
    }

    #[test]
    fn long_html_bodies_are_cut_to_one_line() {
        let body = format!("<html>\n{}\n</html>", "x".repeat(1000));
        let e = from_response("GET nope", 404, body.as_bytes());
        let s = e.to_string();
        assert!(!s.contains('\n'));
        assert!(s.ends_with("..."));
        assert!(s.len() < 400);
    }
}
