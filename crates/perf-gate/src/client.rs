//! The vLLM (OpenAI-compatible) client: health, `/v1/models`, and timed streaming requests.
//!
//! One pooled `reqwest::Client` serves every request of a run. Every request carries at most one
//! `Authorization` header ([`crate::transport::vllm_auth`]: the API key as a bearer token, else
//! the URL's `user:password` as `Basic`), marked sensitive; redirects are not followed (a 3xx is
//! a failed request); the TLS roots are the system's plus `--vllm-ca-cert`
//! ([`crate::transport::TlsSettings`]). The credentials never reach a log or a file: every text
//! that comes from the server (error bodies, stream errors) is scrubbed
//! ([`crate::secrets::scrub`]) before it is stored in a record or an error.

pub mod batch_window;
mod h1;
mod link;
pub mod record;
pub mod sse;
mod stream;
mod timed_socket;
pub mod trace;

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use crate::api::Api;
use crate::secrets::scrubbed;
use crate::transport::{self, TlsSettings};

pub use record::{ErrorKind, Phase, RequestRecord};
pub use stream::Timing;

use crate::results::AdapterInfo;
use crate::workload::PreparedRequest;

/// Errors talking to vLLM before the load (the load itself never fails: failures are records).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an absolute http(s) base URL.
    #[error(transparent)]
    BadUrl(#[from] crate::urls::UrlError),
    /// The API key cannot be sent as a header.
    #[error("invalid --api-key: it contains characters not allowed in an HTTP header")]
    BadApiKey,
    /// `--vllm-ca-cert` cannot be used.
    #[error(transparent)]
    Tls(#[from] transport::TlsError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer from vLLM.
    #[error("vLLM at {url} is unreachable: {message}")]
    Unreachable {
        /// Base URL (no credentials).
        url: String,
        /// Transport error text.
        message: String,
    },
    /// vLLM's TLS certificate is not trusted (waiting does not help: every attempt meets the
    /// same certificate).
    #[error("vLLM at {url} is unreachable: {message}")]
    UntrustedCertificate {
        /// Base URL (no credentials).
        url: String,
        /// The client's error and the flags that fix it.
        message: String,
    },
    /// `/health` answered with a non-200 status.
    #[error("vLLM at {url} is unhealthy: GET /health returned HTTP {status}")]
    Unhealthy {
        /// Base URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// `--wait-ready` ran out.
    #[error("vLLM at {url} was not ready after waiting {waited:?}: {last}")]
    NotReady {
        /// Base URL.
        url: String,
        /// Time waited.
        waited: Duration,
        /// The last problem seen.
        last: String,
    },
    /// `/v1/models` failed or answered something unexpected.
    #[error("vLLM at {url}: GET /v1/models failed: {message}")]
    Models {
        /// Base URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// llama.cpp's `/lora-adapters` failed or answered something unexpected.
    #[error("llama-server at {url}: GET /lora-adapters failed: {message}")]
    LoraAdapters {
        /// Base URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A LoRA adapter `llama-server` loaded but applies to no request (global scale 0, e.g.
    /// `--lora-init-without-apply`): the requests would measure the base model.
    #[error(
        "LoRA adapter {adapter:?} is loaded by llama-server at {url} (id {id}) but not applied: its scale is 0 (start it without --lora-init-without-apply, or POST /lora-adapters a scale)"
    )]
    LoraNotApplied {
        /// The adapter asked for.
        adapter: String,
        /// Base URL.
        url: String,
        /// Its id in `/lora-adapters`.
        id: i64,
    },
    /// The adapter is not listed by `/v1/models`.
    #[error("adapter {adapter:?} is not served by vLLM at {url}; it serves: {}", listed.join(", "))]
    AdapterNotServed {
        /// The adapter asked for.
        adapter: String,
        /// Base URL.
        url: String,
        /// Model ids that are listed.
        listed: Vec<String>,
    },
}

/// One entry of `/v1/models`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelCard {
    /// Model id (served name or adapter name).
    pub id: String,
    /// Path or URI the model was loaded from.
    #[serde(default)]
    pub root: Option<String>,
    /// For a LoRA adapter, the base model's served name.
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelCard>,
}

/// A client for one vLLM server.
#[derive(Debug, Clone)]
pub struct VllmClient {
    http: reqwest::Client,
    base: String,
    shown: String,
    auth: Option<HeaderValue>,
    /// Hands out each generation request's `traceparent`; `None`: none is sent.
    trace: Option<std::sync::Arc<trace::TraceIds>>,
    /// The serving API spoken.
    api: Api,
    /// The load's own HTTP/1.1 client for the load's requests (`http` or `https` without a
    /// proxy); `None`: reqwest sends them.
    native: Option<std::sync::Arc<h1::H1Client>>,
    /// The base URL's path (no trailing `/`), which request targets start with.
    base_path: String,
}

/// One entry of llama.cpp's `GET /lora-adapters`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LoraAdapter {
    /// Its id (what a request's `lora` field names).
    pub id: i64,
    /// The GGUF file it was loaded from (`--lora PATH`).
    pub path: String,
    /// The global scale applied to every request that does not set its own (0: not applied).
    #[serde(default)]
    pub scale: f64,
}

impl LoraAdapter {
    /// Whether `name` names this adapter: its path as given, its file name, or its file name
    /// without the `.gguf` extension.
    pub fn is_named(&self, name: &str) -> bool {
        let file = self.path.rsplit(['/', '\\']).next().unwrap_or(&self.path);
        self.path == name || file == name || file.strip_suffix(".gguf") == Some(name)
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Idle connections kept per host (set to the concurrency).
    pub pool_size: usize,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Which certificates an `https` vLLM may present.
    pub tls: TlsSettings,
    /// Send a W3C `traceparent` with each generation request (recorded in its record).
    pub traceparent: bool,
    /// The serving API the server speaks (`--api`).
    pub api: Api,
    /// Which HTTP client sends the streaming requests (`--http-client`).
    pub http_client: HttpClient,
}

/// Which HTTP client sends a load's streaming requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpClient {
    /// The load's own HTTP/1.1 client, which reads each answer in its request's task (less
    /// client CPU a request, half the memory) and dates each read by the kernel's receive
    /// time, where it applies: `http` or `https` that reqwest would not send through a proxy;
    /// reqwest otherwise.
    #[default]
    Native,
    /// reqwest (hyper) for every request.
    Reqwest,
}

impl HttpClient {
    /// The client that sends the load's requests to `base_url` when this one is asked for:
    /// [`HttpClient::Native`] only for an `http` or `https` URL that reqwest would not send
    /// through a proxy (its own decision: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`, and the system's settings on macOS and Windows).
    pub fn effective(self, base_url: &str) -> HttpClient {
        let direct = || {
            base_url
                .parse::<http::Uri>()
                .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && !proxied(&u))
        };
        match self {
            HttpClient::Native if direct() => HttpClient::Native,
            _ => HttpClient::Reqwest,
        }
    }

    /// Its name, as the flag and the results spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpClient::Native => "native",
            HttpClient::Reqwest => "reqwest",
        }
    }
}

/// Whether reqwest would send a request for `url` through a proxy (`false` for a URL it
/// cannot read).
pub(crate) fn proxied_url(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|u| proxied(&u))
}

/// Whether reqwest would send a request for `uri` through a proxy.
fn proxied(uri: &http::Uri) -> bool {
    hyper_util::client::proxy::matcher::Matcher::from_system()
        .intercept(uri)
        .is_some()
}

/// The own client's TLS configuration for `base`: `Some(None)` for `http`, `Some(Some(_))` for
/// `https`; `None` when it cannot be built (reqwest, which built the same verifier without
/// fault, then sends the load: logged).
fn native_tls(
    base: &url::Url,
    tls: &TlsSettings,
) -> Option<Option<std::sync::Arc<rustls::ClientConfig>>> {
    if base.scheme() != "https" {
        return Some(None);
    }
    match tls.rustls_config() {
        Ok(config) => Some(Some(config)),
        Err(e) => {
            tracing::warn!(
                "the own HTTP client cannot verify TLS here ({e}): reqwest sends the load's requests"
            );
            None
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            pool_size: 64,
            connect_timeout: Duration::from_secs(10),
            tls: TlsSettings::default(),
            traceparent: true,
            api: Api::Openai,
            http_client: HttpClient::default(),
        }
    }
}

impl VllmClient {
    /// A client for the vLLM server at `base_url`, sending `api_key` as a bearer token (else
    /// the URL's `user:password` as `Basic`; with both, only the key: see
    /// [`transport::vllm_auth`]).
    pub fn new(
        base_url: &str,
        api_key: Option<&str>,
        opts: ClientOptions,
    ) -> Result<Self, ClientError> {
        let mut base = crate::urls::parse_base_url("--vllm-url", base_url)?;
        let auth = transport::vllm_auth(&mut base, api_key).map_err(|_| ClientError::BadApiKey)?;
        if auth.userinfo_dropped {
            tracing::warn!(
                "--vllm-url carries user:password and VLLM_API_KEY is set: only the API key is sent (as a bearer token), the URL's credentials are not"
            );
        }
        // llama-server (cpp-httplib) closes connections it answered with `Keep-Alive`: a
        // request sent on one fails ("connection closed before message completed"; seen on 1
        // request in 8, with or without --threads-http), so with llama.cpp every request opens
        // its own connection (its TTFT includes a TCP connect: ~0.1 ms on loopback)
        let idle = match opts.api {
            Api::Openai => opts.pool_size,
            Api::Llamacpp => 0,
        };
        let builder = reqwest::Client::builder()
            .pool_max_idle_per_host(idle)
            // the own client's limit, for the same reason: a request (or a /metrics poll every
            // 5 s) on a connection vLLM closes at 5 s idle would meet the close
            .pool_idle_timeout(h1::KEEP_IDLE_FOR)
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true)
            .http1_only()
            // a load generator measures the server it was given: a 3xx is a failed request
            .redirect(reqwest::redirect::Policy::none());
        let http = opts
            .tls
            .apply(builder, &transport::VLLM)
            .build()
            .map_err(ClientError::Build)?;
        let native = match opts.http_client.effective(base.as_str()) {
            HttpClient::Native => native_tls(&base, &opts.tls).and_then(|tls| {
                h1::H1Client::new(&base, idle, opts.connect_timeout, tls).map(std::sync::Arc::new)
            }),
            HttpClient::Reqwest => None,
        };
        Ok(VllmClient {
            http,
            native,
            base_path: base.path().trim_end_matches('/').to_string(),
            base: base.as_str().trim_end_matches('/').to_string(),
            shown: crate::urls::redact_url(base_url),
            auth: auth.header,
            trace: opts
                .traceparent
                .then(|| std::sync::Arc::new(trace::TraceIds::random())),
            api: opts.api,
        })
    }

    /// The HTTP client that sends this client's load requests (after the fallbacks).
    pub fn http_client(&self) -> HttpClient {
        match self.native {
            Some(_) => HttpClient::Native,
            None => HttpClient::Reqwest,
        }
    }

    /// The serving API this client speaks.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The base URL without credentials, for logs.
    pub fn display_url(&self) -> &str {
        &self.shown
    }

    /// The pooled HTTP client (shared with the `/metrics` scraper).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .get(self.url(path))
            .timeout(Duration::from_secs(30));
        if let Some(a) = &self.auth {
            b = b.header(AUTHORIZATION, a.clone());
        }
        b
    }

    /// The pooled client's `Authorization` header, if any (shared with the `/metrics` scraper).
    pub fn auth_header(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        if transport::is_certificate_error(&e) {
            let hint = transport::VLLM.hint();
            return ClientError::UntrustedCertificate {
                url: self.shown.clone(),
                message: scrubbed(format!("{} ({hint})", stream::describe(e))),
            };
        }
        ClientError::Unreachable {
            url: self.shown.clone(),
            message: scrubbed(stream::describe(e)),
        }
    }

    /// `GET /health` must answer 200.
    pub async fn health(&self) -> Result<(), ClientError> {
        let resp = self
            .get("/health")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().as_u16() == 200 {
            Ok(())
        } else {
            Err(ClientError::Unhealthy {
                url: self.shown.clone(),
                status: resp.status().as_u16(),
            })
        }
    }

    /// Opens one new connection for the load and leaves it in the pool: a `GET /health` on it,
    /// which must answer 200 (see [`crate::runner::preconnect`]).
    pub async fn open_connection(&self) -> Result<(), ClientError> {
        let Some(h1) = &self.native else {
            return self.health().await;
        };
        let target = format!("{}/health", self.base_path);
        let auth = self.auth.as_ref().map(|a| ("authorization", a.as_bytes()));
        let request = h1::Request {
            method: "GET",
            target: &target,
            headers: auth.as_slice(),
            body: b"",
        };
        let unreachable = |message: String| ClientError::Unreachable {
            url: self.shown.clone(),
            message: scrubbed(message),
        };
        let answer = async {
            let mut resp = h1.send(&request, true).await.map_err(|e| e.message)?;
            let status = resp.status();
            while resp.chunk().await.map_err(|e| e.message)?.is_some() {}
            resp.finish();
            Ok(status)
        };
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(200)) => Ok(()),
            Ok(Ok(status)) => Err(ClientError::Unhealthy {
                url: self.shown.clone(),
                status,
            }),
            Ok(Err(message)) => Err(unreachable(message)),
            Err(_) => Err(unreachable("no answer to GET /health within 30s".into())),
        }
    }

    /// Polls every second until `/health` answers 200 and `adapter` is listed by `/v1/models`
    /// (an adapter may be loaded after the server starts), for at most `timeout`.
    pub async fn wait_for_adapter(
        &self,
        adapter: &str,
        timeout: Duration,
    ) -> Result<AdapterInfo, ClientError> {
        let started = Instant::now();
        loop {
            let attempt = async {
                self.health().await?;
                self.find_adapter(adapter).await
            };
            let left = timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(1));
            let outcome = match tokio::time::timeout(left, attempt).await {
                Ok(r) => r,
                Err(_) => Err(ClientError::Unreachable {
                    url: self.shown.clone(),
                    message: "no answer before the wait ran out".into(),
                }),
            };
            match outcome {
                Ok(info) => return Ok(info),
                Err(e @ ClientError::UntrustedCertificate { .. }) => return Err(e),
                Err(e) if started.elapsed() >= timeout => {
                    return Err(ClientError::NotReady {
                        url: self.shown.clone(),
                        waited: started.elapsed(),
                        last: e.to_string(),
                    });
                }
                Err(e) => tracing::info!(error = %e, "waiting for vLLM and the adapter"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<Vec<ModelCard>, ClientError> {
        let list: ModelList = self
            .get_json("/v1/models", |url, message| ClientError::Models {
                url,
                message,
            })
            .await?;
        Ok(list.data)
    }

    /// `GET /lora-adapters` (llama.cpp): the LoRA adapters `llama-server` loaded.
    pub async fn lora_adapters(&self) -> Result<Vec<LoraAdapter>, ClientError> {
        self.get_json(crate::api::LLAMACPP_LORA_PATH, |url, message| {
            ClientError::LoraAdapters { url, message }
        })
        .await
    }

    /// `GET path` read as JSON: unreachable is [`ClientError::Unreachable`]; a failed read, a
    /// non-2xx status (with the body's text) or an unexpected body is `err(url, message)`,
    /// the message scrubbed of secrets.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        err: impl Fn(String, String) -> ClientError,
    ) -> Result<T, ClientError> {
        let fail = |message: String| err(self.shown.clone(), scrubbed(message));
        let resp = self
            .get(path)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(fail(format!("HTTP {}: {}", status.as_u16(), text.trim())));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("unexpected body ({e})")))
    }

    /// Checks that `adapter` is served and returns how. vLLM (OpenAI API): an id listed by
    /// `/v1/models`. llama.cpp: the model alias listed by `/v1/models` (`--alias`; served as
    /// the base model, with whatever LoRA adapters the server applies), else a LoRA adapter of
    /// `/lora-adapters` named by its path or file name, which must be applied (scale ≠ 0):
    /// `llama-server` applies it to every request ([`AdapterInfo::root`] is its path,
    /// [`AdapterInfo::parent`] the model alias).
    pub async fn find_adapter(&self, adapter: &str) -> Result<AdapterInfo, ClientError> {
        let models = self.models().await?;
        if self.api == Api::Llamacpp && !models.iter().any(|m| m.id == adapter) {
            return self.find_llamacpp_lora(adapter, models).await;
        }
        match models.iter().find(|m| m.id == adapter) {
            Some(m) => Ok(AdapterInfo {
                name: m.id.clone(),
                root: m.root.clone(),
                parent: m.parent.clone(),
            }),
            None => Err(ClientError::AdapterNotServed {
                adapter: adapter.to_string(),
                url: self.shown.clone(),
                listed: models.into_iter().map(|m| m.id).collect(),
            }),
        }
    }

    /// The llama.cpp side of [`Self::find_adapter`] for a name that is not the model alias.
    async fn find_llamacpp_lora(
        &self,
        adapter: &str,
        models: Vec<ModelCard>,
    ) -> Result<AdapterInfo, ClientError> {
        let loras = self.lora_adapters().await?;
        match loras.iter().find(|l| l.is_named(adapter)) {
            Some(l) if l.scale == 0.0 => Err(ClientError::LoraNotApplied {
                adapter: adapter.to_string(),
                url: self.shown.clone(),
                id: l.id,
            }),
            Some(l) => Ok(AdapterInfo {
                name: adapter.to_string(),
                root: Some(l.path.clone()),
                parent: models.first().map(|m| m.id.clone()),
            }),
            None => Err(ClientError::AdapterNotServed {
                adapter: adapter.to_string(),
                url: self.shown.clone(),
                listed: models
                    .into_iter()
                    .map(|m| m.id)
                    .chain(loras.into_iter().map(|l| format!("LoRA {}", l.path)))
                    .collect(),
            }),
        }
    }

    /// Sends one streaming request and measures it (see [`record::RequestRecord`]); its error
    /// text, which may quote the server, is scrubbed of every known secret.
    pub async fn stream(&self, req: &PreparedRequest, timing: Timing) -> RequestRecord {
        let path = req
            .probe
            .map_or(self.api.generation_path(req.endpoint), |p| p.path());
        // a generation's own trace (a GET task is not traced)
        let traceparent = match (&self.trace, req.probe) {
            (Some(ids), None) => Some(ids.next()),
            _ => None,
        };
        // the own client takes the request target, reqwest the whole URL
        let address;
        let via = match &self.native {
            Some(h1) => {
                address = format!("{}{path}", self.base_path);
                stream::Via::Native(h1, &address)
            }
            None => {
                address = self.url(path);
                stream::Via::Reqwest(&self.http, &address)
            }
        };
        let mut rec =
            stream::execute(self.api, via, self.auth.as_ref(), req, timing, traceparent).await;
        if let Some(e) = rec.error.as_mut() {
            // the detail is cut to a length (with `…`) before it reaches here
            crate::secrets::scrub_cut(e, "…");
        }
        // the one other text of a record that comes from the server
        if let Some(reason) = rec.finish_reason.as_mut() {
            crate::secrets::scrub_string(reason);
        }
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_bad_input_named_after_its_flag() {
        let e = VllmClient::new(
            "http://u:s3cret@vllm:notaport",
            None,
            ClientOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ClientError::BadUrl(_)), "{e}");
        let text = e.to_string();
        assert!(text.starts_with("invalid --vllm-url "), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn a_lora_is_named_by_its_path_its_file_name_or_its_stem() {
        let l = LoraAdapter {
            id: 0,
            path: "/cache/llamacpp/candidate.gguf".into(),
            scale: 1.0,
        };
        for name in [
            "/cache/llamacpp/candidate.gguf",
            "candidate.gguf",
            "candidate",
        ] {
            assert!(l.is_named(name), "{name}");
        }
        for name in ["cand", "llamacpp", "candidate.gg", ""] {
            assert!(!l.is_named(name), "{name}");
        }
    }

    #[tokio::test]
    async fn both_clients_send_under_the_url_s_path_with_the_key_and_get_tasks_too() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let sse = "data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":null}]}\n\n\
                   data: {\"choices\":[{\"text\":\"b\",\"finish_reason\":\"length\"}]}\n\n\
                   data: [DONE]\n\n";
        Mock::given(method("POST"))
            .and(path("/prefix/v1/completions"))
            .and(header("authorization", "Bearer sk-1"))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/prefix/v1/models"))
            .and(header("authorization", "Bearer sk-1"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"data\":[]}"))
            .mount(&server)
            .await;
        let base = format!("{}/prefix/", server.uri());
        let direct = !proxied(&base.parse().unwrap());
        for http_client in [HttpClient::Native, HttpClient::Reqwest] {
            if http_client == HttpClient::Native && !direct {
                continue; // a proxy in this machine's environment takes loopback too
            }
            assert_eq!(http_client.effective(&base), http_client);
            let opts = ClientOptions {
                http_client,
                ..ClientOptions::default()
            };
            let c = VllmClient::new(&base, Some("sk-1"), opts).unwrap();
            assert_eq!(c.native.is_some(), http_client == HttpClient::Native);
            let now = Instant::now();
            let timing = Timing {
                seq: 0,
                scheduled: now,
                load_start: now,
                timeout: Duration::from_secs(10),
            };
            let mut req = PreparedRequest {
                prompt_index: 0,
                arm: None,
                endpoint: crate::workload::Endpoint::Completions,
                body: bytes::Bytes::from_static(b"{}"),
                probe: None,
            };
            let rec = c.stream(&req, timing).await;
            assert!(rec.ok, "{http_client:?}: {rec:?}");
            assert_eq!(rec.content_chunks, 2);
            req.probe = Some(crate::workload::Probe::Models);
            let rec = c.stream(&req, timing).await;
            assert!(rec.ok, "{http_client:?}: {rec:?}");
            assert_eq!(rec.http_status, Some(200));
            req.probe = Some(crate::workload::Probe::Health);
            let rec = c.stream(&req, timing).await;
            assert_eq!(rec.http_status, Some(404), "{http_client:?}: {rec:?}");
            assert_eq!(rec.error_kind, Some(ErrorKind::Http));
        }
        // https too (unless a proxy in this machine's environment takes it)
        let https = "https://vllm:8000";
        let expected = match proxied_url(https) {
            true => HttpClient::Reqwest,
            false => HttpClient::Native,
        };
        assert_eq!(HttpClient::Native.effective(https), expected);
        assert_eq!(HttpClient::Reqwest.effective(https), HttpClient::Reqwest);
    }

    #[test]
    fn api_key_is_sensitive_and_not_in_debug() {
        let c =
            VllmClient::new("http://h:1", Some("sk-TOPSECRET"), ClientOptions::default()).unwrap();
        assert!(c.auth.as_ref().unwrap().is_sensitive());
        assert!(!format!("{c:?}").contains("TOPSECRET"));
    }
}
