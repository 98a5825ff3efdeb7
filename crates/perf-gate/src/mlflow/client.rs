//! The client and its one request loop (attempts, classification, backoff, decoding).

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tracing::debug;
use url::Url;

use super::config::{Auth, MlflowConfig};
use super::error::{self, MlflowError};
use crate::retry::{self, AttemptOutcome, Failed, RetryPolicy};
use crate::secrets;
use crate::transport::{self, TlsSettings};

/// A typed MLflow REST client. Cheap to clone (the connection pool is shared).
///
/// ```no_run
/// # async fn demo() -> Result<(), perf_gate::mlflow::MlflowError> {
/// use perf_gate::mlflow::{MlflowClient, MlflowConfig};
/// let client = MlflowClient::new(&MlflowConfig::new("http://127.0.0.1:5000")?)?;
/// let exp = client.get_or_create_experiment("vllm-lora-performance").await?;
/// println!("experiment {}", exp.experiment_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    pub(super) retry: RetryPolicy,
    pub(super) request_timeout: Duration,
    pub(super) connect_timeout: Duration,
}

impl fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth.kind())
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The body of a request.
pub(crate) enum Body {
    None,
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

/// One logical call (retried as a whole).
pub(crate) struct Call {
    pub method: Method,
    /// Full URL.
    pub url: Url,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    /// Safe to repeat even if a previous attempt reached the server.
    pub idempotent: bool,
    /// Label for errors and logs, e.g. `POST runs/create`.
    pub endpoint: String,
}

impl MlflowClient {
    /// A client for `config`. Fails only if the TLS backend cannot be set up.
    ///
    /// It trusts the system's roots plus `config.ca_certs` (or, with `insecure_tls`, anything,
    /// logged at WARN); it follows redirects as reqwest does, which drops the credentials on a
    /// redirect to another scheme, host or port. The credentials are registered with
    /// [`crate::secrets`], so an error body that echoes them is scrubbed.
    pub fn new(config: &MlflowConfig) -> Result<Self, MlflowError> {
        let builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("perf-gate/", env!("CARGO_PKG_VERSION")));
        let tls = TlsSettings {
            ca: config.ca_certs.clone(),
            insecure: config.insecure_tls,
        };
        let http = tls
            .apply(builder, &transport::MLFLOW)
            .build()
            .map_err(|e| MlflowError::Config(format!("cannot build http client: {e}")))?;
        match &config.auth {
            Auth::None => {}
            Auth::Bearer(token) => secrets::register(token.expose()),
            Auth::Basic { username, password } => {
                secrets::register_basic(username, password.expose());
            }
        }
        let mut base = config.tracking_uri.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(MlflowClient {
            http,
            base,
            auth: config.auth.clone(),
            retry: config.retry,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
        })
    }

    /// The tracking URI, without a trailing slash (no credentials in it).
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// URL of a tracking API endpoint: `<base>/api/2.0/mlflow/<path>`.
    pub(crate) fn api_url(&self, path: &str) -> Url {
        self.join(&format!("api/2.0/mlflow/{path}"))
    }

    /// URL under the base, each `/`-separated segment percent-encoded.
    pub(crate) fn join_segments(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty();
            for s in segments {
                segs.extend(s.split('/').filter(|p| !p.is_empty()));
            }
        }
        url
    }

    fn join(&self, path: &str) -> Url {
        self.join_segments(&[path])
    }

    /// Sends a call, retrying as [`retry`] says, and decodes a JSON answer. An empty body is an
    /// error: for `runs/search` `{}` means "no run", so a proxy's empty 200/204 must never be
    /// read as an empty answer.
    pub(crate) async fn call_json<T: DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<T, MlflowError> {
        let endpoint = call.endpoint.clone();
        let (status, body) = self.call_raw(call).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(empty_body(endpoint, status));
        }
        serde_json::from_slice(&body).map_err(|e| MlflowError::Decode {
            endpoint,
            status,
            message: e.to_string(),
            body: error::excerpt(secrets::scrub(&String::from_utf8_lossy(&body)).as_bytes()),
        })
    }

    /// Sends a call whose real reply is `{}` (log-batch, set-tag, log-inputs, aliases, version
    /// tags): the answer carries nothing, so an empty body is accepted too; anything else must
    /// be a JSON object (an HTML page from a proxy is an error).
    pub(crate) async fn call_ack(&self, call: Call) -> Result<(), MlflowError> {
        let endpoint = call.endpoint.clone();
        let (status, body) = self.call_raw(call).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
            .map(|_| ())
            .map_err(|e| MlflowError::Decode {
                endpoint,
                status,
                message: e.to_string(),
                body: error::excerpt(secrets::scrub(&String::from_utf8_lossy(&body)).as_bytes()),
            })
    }

    /// Sends a call with retries ([`retry::run`], idempotent or not as the call says); returns
    /// the status and body of a 2xx answer.
    pub(crate) async fn call_raw(&self, call: Call) -> Result<(u16, Vec<u8>), MlflowError> {
        let mut attempt: u32 = 0;
        let result = retry::run(&self.retry, call.idempotent, &call.endpoint, || {
            attempt += 1;
            let n = attempt;
            let call = &call;
            async move {
                match self.attempt(call).await {
                    Ok(Answer { status, body, .. }) if (200..300).contains(&status) => {
                        debug!(endpoint = %call.endpoint, status, attempt = n, "mlflow call done");
                        Ok((status, body))
                    }
                    Ok(Answer {
                        status,
                        body,
                        retry_after,
                    }) => Err(Failed {
                        outcome: AttemptOutcome::Status(status),
                        retry_after,
                        error: error::from_response(
                            &call.endpoint,
                            status,
                            secrets::scrub(&String::from_utf8_lossy(&body)).as_bytes(),
                        ),
                    }),
                    Err(e) => {
                        let outcome = retry::classify(&e);
                        let error = if outcome == AttemptOutcome::Timeout {
                            MlflowError::Timeout {
                                endpoint: call.endpoint.clone(),
                                timeout: self.request_timeout,
                                attempts: n,
                            }
                        } else {
                            MlflowError::Transport {
                                endpoint: call.endpoint.clone(),
                                base: self.base_url(),
                                attempts: n,
                                source: e.without_url(),
                            }
                        };
                        Err(Failed {
                            outcome,
                            retry_after: None,
                            error,
                        })
                    }
                }
            }
        })
        .await;
        result.map_err(|gave_up| gave_up.error)
    }

    async fn attempt(&self, call: &Call) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        req = match &call.body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Bytes(b) => req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(b.clone()),
        };
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(token) => req.bearer_auth(token.expose()),
            Auth::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
        };
        let resp = req.send().await?;
        let status = resp.status();
        let retry_after = retry_after(&resp, status);
        let body = resp.bytes().await?.to_vec();
        Ok(Answer {
            status: status.as_u16(),
            body,
            retry_after,
        })
    }
}

fn empty_body(endpoint: String, status: u16) -> MlflowError {
    MlflowError::Decode {
        endpoint,
        status,
        message: "empty body where mlflow always sends a JSON object (a proxy in the way?)".into(),
        body: String::new(),
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

fn retry_after(resp: &reqwest::Response, status: StatusCode) -> Option<Duration> {
    if status.is_success() {
        return None;
    }
    retry::retry_after(resp.headers())
}
