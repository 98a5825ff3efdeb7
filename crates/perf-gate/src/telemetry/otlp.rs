//! One OpenTelemetry span per generation request, exported over OTLP/HTTP (`--otlp-endpoint`),
//! so the client's view of each request sits in the same trace as vLLM's own span of it.
//!
//! - Ids: the span's trace id and span id are the ones of the `traceparent` the request carried
//!   ([`crate::client::trace`]): vLLM (started with `--otlp-traces-endpoint`) continues that
//!   trace, so its server span is a child of ours. Requests sent without a `traceparent`
//!   (`--traceparent false`, the GET tasks of a task mix) get no span.
//! - What: `llm.request`, kind CLIENT, from the request's start to the end of its stream;
//!   attributes in OpenTelemetry's GenAI and HTTP conventions where one exists
//!   (`gen_ai.request.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//!   `url.path`, `http.response.status_code`, `error.type`) and the gate's own
//!   (`llm.ttft_s`, `llm.e2e_s`, `load_test.phase`, `load_test.step`, `load_test.arm`,
//!   `load_test.seq`, a mix's `load_test.target`); a failed request has status ERROR with its error line. Resource:
//!   `service.name=load-test`, `service.version`, `load_test.run_id`.
//! - Wire: OTLP/HTTP with the JSON encoding (`POST <endpoint>/v1/traces`, protobuf's JSON
//!   mapping: hex ids, times as decimal strings, integer enums), built with `serde_json`, which
//!   the crate has anyway; every OTLP/HTTP receiver accepts it.
//! - When: the aggregator thread queues a span as each record arrives ([`SpanFeed::offer`],
//!   never waiting: a full queue drops the span and counts it); a tokio task posts the queue in
//!   batches of at most [`MAX_BATCH`] every [`EXPORT_EVERY`], and once more at the end within
//!   [`FLUSH_TIMEOUT`].
//! - Failures: a failed post is logged once and counted; the run goes on, and the results get
//!   one warning with the counts and the last error. Header values (`--otlp-header`) are
//!   secrets: never logged or written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{Phase, RequestRecord};
use crate::urls::redact_url;
use crate::workload::{Arm, Endpoint, PreparedRequest};

/// Spans queued between the aggregator and the exporter at most; more are dropped (counted).
pub const QUEUE_CAPACITY: usize = 16_384;
/// Spans in one export request at most.
pub const MAX_BATCH: usize = 512;
/// How often the queue is exported while the load runs.
pub const EXPORT_EVERY: Duration = Duration::from_secs(1);
/// Deadline of one export request.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of the final export at the end of the run: a slow receiver delays the end by at
/// most this.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The span's name.
pub const SPAN_NAME: &str = "llm.request";
/// OTLP's `SPAN_KIND_CLIENT`.
const SPAN_KIND_CLIENT: u8 = 3;
/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u8 = 2;

/// Why the OTLP settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The endpoint is not an absolute http(s) URL.
    #[error("--otlp-endpoint {shown}: {reason}")]
    Endpoint {
        /// The URL, redacted.
        shown: String,
        /// What is wrong.
        reason: String,
    },
    /// A header is not `name=value` (the text may hold a secret: not shown).
    #[error("--otlp-header: a header is not name=value (not shown: it may hold a secret)")]
    HeaderForm,
    /// A header is not a valid HTTP header.
    #[error("--otlp-header {name:?}: {reason}")]
    Header {
        /// The header's name (never its value).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The traces URL of `raw`: an endpoint without a path (`http://collector:4318`) gets
/// `/v1/traces`, OTLP/HTTP's traces path; one with a path is used as it is.
pub fn traces_url(raw: &str) -> Result<String, OtlpError> {
    let trimmed = raw.trim();
    let bad = |reason: String| OtlpError::Endpoint {
        shown: redact_url(trimmed),
        reason,
    };
    let mut u = url::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") || !u.has_host() {
        return Err(bad("not an absolute http(s) URL".into()));
    }
    if let Some(pw) = u.password() {
        crate::secrets::register(pw);
    }
    if matches!(u.path(), "" | "/") {
        u.set_path("/v1/traces");
    }
    Ok(u.to_string())
}

/// `name=value` pairs (`--otlp-header`, `OTEL_EXPORTER_OTLP_HEADERS`), values percent-decoded
/// as the OpenTelemetry spec says; each value is registered as a secret.
pub fn parse_headers(raw: &[String]) -> Result<Vec<(String, String)>, OtlpError> {
    raw.iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| {
            let (name, value) = h.split_once('=').ok_or(OtlpError::HeaderForm)?;
            let name = name.trim().to_string();
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8_lossy()
                .into_owned();
            crate::secrets::register(&value);
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                OtlpError::Header {
                    name: name.clone(),
                    reason: e.to_string(),
                }
            })?;
            reqwest::header::HeaderValue::from_str(&value).map_err(|_| OtlpError::Header {
                name: name.clone(),
                reason: "the value is not a valid HTTP header value".into(),
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Where spans go, and the queue the aggregator fills (shared by clones, so a sweep's steps
/// feed one exporter).
#[derive(Clone)]
pub struct OtlpSettings {
    /// The traces URL ([`traces_url`]).
    pub endpoint: String,
    /// Headers sent with each export (values are secrets).
    pub headers: Vec<(String, String)>,
    /// `load_test.run_id` of the resource: tells this run's spans from others'.
    pub run_id: String,
    queue: SpanQueue,
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &redact_url(&self.endpoint))
            .field("headers", &names)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl OtlpSettings {
    /// Settings for `endpoint` (a traces URL) with `headers`, a fresh run id, an empty queue.
    pub fn new(endpoint: String, headers: Vec<(String, String)>) -> Self {
        OtlpSettings {
            endpoint,
            headers,
            run_id: format!("{:016x}", rand::random::<u64>()),
            queue: SpanQueue::new(QUEUE_CAPACITY),
        }
    }

    /// The queue the aggregator feeds.
    pub fn queue(&self) -> SpanQueue {
        self.queue.clone()
    }
}

/// The bounded queue of spans from the aggregator to the exporter.
#[derive(Clone)]
pub struct SpanQueue {
    tx: mpsc::Sender<RequestSpan>,
    rx: Arc<Mutex<Option<mpsc::Receiver<RequestSpan>>>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for SpanQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanQueue")
            .field("capacity", &self.tx.max_capacity())
            .finish_non_exhaustive()
    }
}

impl SpanQueue {
    fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        SpanQueue {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            dropped: Arc::default(),
        }
    }
}

/// What the aggregator turns records into spans with: the queue, when the load started (wall
/// clock), and the load's requests (each record's endpoint and arm).
pub struct SpanFeed {
    queue: SpanQueue,
    load_start_unix_ns: u64,
    requests: Arc<Vec<PreparedRequest>>,
}

impl SpanFeed {
    /// A feed for a load that started at `load_start` and sends `requests` (cycled).
    pub fn new(
        queue: SpanQueue,
        load_start: std::time::SystemTime,
        requests: Arc<Vec<PreparedRequest>>,
    ) -> Self {
        let load_start_unix_ns = load_start
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SpanFeed {
            queue,
            load_start_unix_ns,
            requests,
        }
    }

    /// Queues the span of `rec` (one that carried a `traceparent`), without waiting: a full
    /// queue drops it (counted).
    pub fn offer(&self, rec: &RequestRecord) {
        let Some(traceparent) = rec.traceparent.clone() else {
            return;
        };
        let req = (!self.requests.is_empty())
            .then(|| &self.requests[(rec.seq % self.requests.len() as u64) as usize]);
        let ns = |s: f64| self.load_start_unix_ns + (s.max(0.0) * 1e9) as u64;
        let span = RequestSpan {
            traceparent,
            start_unix_ns: ns(rec.start_s),
            end_unix_ns: ns(rec.start_s + rec.total_s),
            endpoint: req.map(|r| r.endpoint),
            arm: rec.arm.or(req.and_then(|r| r.arm)),
            seq: rec.seq,
            target: rec.target.clone(),
            phase: rec.phase,
            step: rec.step,
            http_status: rec.http_status,
            error_type: (!rec.ok).then(|| {
                rec.error_kind
                    .map(|k| k.key(rec.http_status, rec.finish_reason.as_deref()))
                    .unwrap_or_else(|| "unknown".into())
            }),
            error: rec.error.clone(),
            prompt_tokens: rec.prompt_tokens,
            output_tokens: rec.output_tokens,
            ttft_s: rec.ttft_s,
            e2e_s: rec.e2e_s,
            finish_reason: rec.finish_reason.clone(),
        };
        if self.queue.tx.try_send(span).is_err() {
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One request, as a span.
#[derive(Debug, Clone)]
struct RequestSpan {
    traceparent: String,
    start_unix_ns: u64,
    end_unix_ns: u64,
    endpoint: Option<Endpoint>,
    arm: Option<Arm>,
    seq: u64,
    /// The member of a mix it went to (`--target`, `--lora-mix`).
    target: Option<std::sync::Arc<str>>,
    phase: Phase,
    step: Option<u32>,
    http_status: Option<u16>,
    error_type: Option<String>,
    error: Option<String>,
    prompt_tokens: Option<u32>,
    output_tokens: Option<u32>,
    ttft_s: Option<f64>,
    e2e_s: Option<f64>,
    finish_reason: Option<String>,
}

/// The models a run's requests go to: the candidate adapter, and the baseline in an A/B run.
#[derive(Debug, Clone)]
pub struct Models {
    /// `--adapter-name`.
    pub candidate: String,
    /// `--baseline-adapter`.
    pub baseline: Option<String>,
}

impl Models {
    fn of(&self, arm: Option<Arm>) -> &str {
        match (arm, &self.baseline) {
            (Some(Arm::Baseline), Some(b)) => b,
            _ => &self.candidate,
        }
    }
}

fn string_attr(key: &str, v: &str) -> Value {
    json!({"key": key, "value": {"stringValue": v}})
}

fn int_attr(key: &str, v: impl Into<i64>) -> Value {
    // protobuf's JSON mapping writes 64-bit integers as strings
    json!({"key": key, "value": {"intValue": v.into().to_string()}})
}

fn double_attr(key: &str, v: f64) -> Value {
    json!({"key": key, "value": {"doubleValue": v}})
}

impl RequestSpan {
    fn to_json(&self, models: &Models) -> Value {
        let tp = &self.traceparent;
        let (trace_id, span_id) = (tp.get(3..35).unwrap_or(""), tp.get(36..52).unwrap_or(""));
        let mut attrs = vec![
            string_attr("gen_ai.request.model", models.of(self.arm)),
            string_attr(
                "gen_ai.operation.name",
                match self.endpoint {
                    Some(Endpoint::Chat) => "chat",
                    _ => "text_completion",
                },
            ),
            int_attr("load_test.seq", self.seq as i64),
            string_attr(
                "load_test.phase",
                match self.phase {
                    Phase::Measured => "measured",
                    Phase::Warmup => "warmup",
                    Phase::Cooldown => "cooldown",
                },
            ),
        ];
        if let Some(e) = self.endpoint {
            attrs.push(string_attr("url.path", e.path()));
        }
        if let Some(a) = self.arm {
            let arm = match a {
                Arm::Candidate => "candidate",
                Arm::Baseline => "baseline",
            };
            attrs.push(string_attr("load_test.arm", arm));
        }
        if let Some(s) = self.step {
            attrs.push(int_attr("load_test.step", s));
        }
        if let Some(t) = &self.target {
            attrs.push(string_attr("load_test.target", t));
        }
        if let Some(s) = self.http_status {
            attrs.push(int_attr("http.response.status_code", s));
        }
        if let Some(n) = self.prompt_tokens {
            attrs.push(int_attr("gen_ai.usage.input_tokens", n));
        }
        if let Some(n) = self.output_tokens {
            attrs.push(int_attr("gen_ai.usage.output_tokens", n));
        }
        if let Some(t) = self.ttft_s {
            attrs.push(double_attr("llm.ttft_s", t));
        }
        if let Some(t) = self.e2e_s {
            attrs.push(double_attr("llm.e2e_s", t));
        }
        if let Some(r) = &self.finish_reason {
            attrs.push(string_attr("gen_ai.response.finish_reasons", r));
        }
        let mut span = json!({
            "traceId": trace_id,
            "spanId": span_id,
            "name": SPAN_NAME,
            "kind": SPAN_KIND_CLIENT,
            "startTimeUnixNano": self.start_unix_ns.to_string(),
            "endTimeUnixNano": self.end_unix_ns.max(self.start_unix_ns).to_string(),
        });
        if let Some(kind) = &self.error_type {
            attrs.push(string_attr("error.type", kind));
            let message = self.error.as_deref().unwrap_or(kind);
            span["status"] =
                json!({"code": STATUS_CODE_ERROR, "message": crate::secrets::scrub(message)});
        }
        span["attributes"] = Value::Array(attrs);
        span
    }
}

/// An `ExportTraceServiceRequest` (OTLP/JSON) of `spans`.
fn export_body(spans: &[RequestSpan], models: &Models, run_id: &str) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                string_attr("service.name", "load-test"),
                string_attr("service.version", env!("CARGO_PKG_VERSION")),
                string_attr("load_test.run_id", run_id),
            ]},
            "scopeSpans": [{
                "scope": {"name": "perf-gate", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(|s| s.to_json(models)).collect::<Vec<_>>(),
            }],
        }],
    })
}

/// What the exporter did.
#[derive(Debug, Default, Clone, PartialEq)]
struct Counts {
    exported: u64,
    failed: u64,
    last_error: Option<String>,
}

/// The running exporter: a tokio task posting the queue.
pub struct SpanExporter {
    stop: CancellationToken,
    task: JoinHandle<Counts>,
    dropped: Arc<AtomicU64>,
    shown: String,
    run_id: String,
}

impl SpanExporter {
    /// Starts exporting the spans queued on `settings` (once per settings: a second start
    /// finds no queue and exports nothing).
    pub fn start(settings: &OtlpSettings, models: Models) -> Result<SpanExporter, OtlpError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (n, v) in &settings.headers {
            let name = reqwest::header::HeaderName::from_bytes(n.as_bytes()).map_err(|e| {
                OtlpError::Header {
                    name: n.clone(),
                    reason: e.to_string(),
                }
            })?;
            let mut value =
                reqwest::header::HeaderValue::from_str(v).map_err(|_| OtlpError::Header {
                    name: n.clone(),
                    reason: "the value is not a valid HTTP header value".into(),
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(OtlpError::Client)?;
        let rx = settings
            .queue
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let stop = CancellationToken::new();
        let shown = redact_url(&settings.endpoint);
        let task = tokio::spawn(export_loop(
            rx,
            client,
            settings.endpoint.clone(),
            shown.clone(),
            models,
            settings.run_id.clone(),
            stop.clone(),
        ));
        Ok(SpanExporter {
            stop,
            task,
            dropped: settings.queue.dropped.clone(),
            shown,
            run_id: settings.run_id.clone(),
        })
    }

    /// Exports what is left (within [`FLUSH_TIMEOUT`]) and stops. Returns the results'
    /// warning when a span was not exported.
    pub async fn finish(self) -> Option<String> {
        self.stop.cancel();
        let abort = self.task.abort_handle();
        let counts = match tokio::time::timeout(FLUSH_TIMEOUT, self.task).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => Counts {
                last_error: Some(format!("the exporter task failed: {e}")),
                ..Counts::default()
            },
            Err(_) => {
                abort.abort();
                Counts {
                    last_error: Some(format!(
                        "the final export did not finish within {} s",
                        FLUSH_TIMEOUT.as_secs()
                    )),
                    ..Counts::default()
                }
            }
        };
        let dropped = self.dropped.load(Ordering::Relaxed);
        tracing::info!(
            exported = counts.exported,
            failed = counts.failed,
            dropped,
            endpoint = %self.shown,
            run_id = %self.run_id,
            "OTLP spans exported (resource load_test.run_id)"
        );
        (counts.failed > 0 || dropped > 0 || counts.last_error.is_some()).then(|| {
            let mut w = format!(
                "OTLP: {} span(s) not exported to {} ({} exported, {} in failed exports, {} dropped on a full queue)",
                counts.failed + dropped,
                self.shown,
                counts.exported,
                counts.failed,
                dropped,
            );
            if let Some(e) = counts.last_error {
                w.push_str("; last error: ");
                w.push_str(&e);
            }
            crate::secrets::scrub(&w).into_owned()
        })
    }
}

/// Posts the queue every [`EXPORT_EVERY`] in batches, until `stop`, then once more.
async fn export_loop(
    rx: Option<mpsc::Receiver<RequestSpan>>,
    client: reqwest::Client,
    url: String,
    shown: String,
    models: Models,
    run_id: String,
    stop: CancellationToken,
) -> Counts {
    let mut counts = Counts::default();
    let Some(mut rx) = rx else { return counts };
    let mut tick = tokio::time::interval(EXPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        loop {
            batch.clear();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let body = export_body(&batch, &models, &run_id);
            match post(&client, &url, &body).await {
                Ok(()) => counts.exported += batch.len() as u64,
                Err(e) => {
                    if counts.last_error.is_none() {
                        tracing::warn!(endpoint = %shown, "OTLP export failed (the run goes on): {e}");
                    }
                    counts.failed += batch.len() as u64;
                    counts.last_error = Some(e);
                }
            }
            if batch.len() < MAX_BATCH {
                break;
            }
        }
        if stopping {
            return counts;
        }
    }
}

/// One export request; the error as one scrubbed line.
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let line = |e: reqwest::Error| {
        let e = e.without_url();
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        crate::secrets::scrub(&s).into_owned()
    };
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(line)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(crate::secrets::scrub(&format!("HTTP {status}: {}", text.trim())).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_a_path_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/").unwrap(),
            "https://otel.example/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/custom/traces").unwrap(),
            "http://c:4318/custom/traces"
        );
        let e = traces_url("collector:4318").unwrap_err().to_string();
        assert!(e.starts_with("--otlp-endpoint collector:4318: "), "{e}");
        assert!(traces_url("not a url").is_err());
    }

    #[test]
    fn headers_are_name_value_percent_decoded_and_secret() {
        let h = parse_headers(&["api-key=s%3Dcr%20et".into(), " x-tenant = t1 ".into()]).unwrap();
        assert_eq!(
            h,
            [
                ("api-key".to_string(), "s=cr et".to_string()),
                ("x-tenant".to_string(), "t1".to_string())
            ]
        );
        assert_eq!(crate::secrets::scrub("key s=cr et"), "key <redacted>");
        let e = parse_headers(&["novalue".into()]).unwrap_err().to_string();
        assert!(
            e.starts_with("--otlp-header: a header is not name=value"),
            "{e}"
        );
        assert!(!e.contains("novalue"), "{e}");
        assert!(parse_headers(&["bad name=v".into()]).is_err());
    }

    fn record(ok: bool) -> RequestRecord {
        RequestRecord {
            seq: 3,
            prompt_index: 1,
            arm: None,
            probe: None,
            step: Some(2),
            phase: Phase::Measured,
            scheduled_s: 1.0,
            start_s: 1.5,
            http_status: Some(if ok { 200 } else { 503 }),
            ok,
            error_kind: (!ok).then_some(crate::client::ErrorKind::Http),
            error: (!ok).then(|| "HTTP 503: busy".to_string()),
            ttft_s: ok.then_some(0.25),
            e2e_s: ok.then_some(2.0),
            total_s: 2.5,
            content_chunks: 3,
            output_tokens: ok.then_some(7),
            prompt_tokens: ok.then_some(11),
            finish_reason: ok.then(|| "length".to_string()),
            itl_mean_s: None,
            itl_max_s: None,
            itl_gaps: vec![],
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            target: None,
            member: None,
        }
    }

    fn spans_of(recs: &[RequestRecord]) -> Value {
        let queue = SpanQueue::new(8);
        let start = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let feed = SpanFeed::new(queue.clone(), start, Arc::new(vec![]));
        for r in recs {
            feed.offer(r);
        }
        let mut rx = queue.rx.lock().unwrap().take().unwrap();
        let mut spans = vec![];
        while let Ok(s) = rx.try_recv() {
            spans.push(s);
        }
        let models = Models {
            candidate: "cand".into(),
            baseline: None,
        };
        export_body(&spans, &models, "run1")
    }

    fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
        span["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| &a["value"])
    }

    #[test]
    fn a_span_carries_the_traceparent_s_ids_times_and_figures() {
        let body = spans_of(&[record(true)]);
        let rs = &body["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "load-test"}})
        );
        let span = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "00f067aa0ba902b7");
        assert_eq!(span["kind"], 3);
        assert_eq!(span["startTimeUnixNano"], "1001500000000");
        assert_eq!(span["endTimeUnixNano"], "1004000000000");
        assert!(span.get("status").is_none(), "{span}");
        assert_eq!(
            attr(span, "gen_ai.request.model").unwrap()["stringValue"],
            "cand"
        );
        assert_eq!(
            attr(span, "gen_ai.usage.output_tokens").unwrap()["intValue"],
            "7"
        );
        assert_eq!(
            attr(span, "gen_ai.usage.input_tokens").unwrap()["intValue"],
            "11"
        );
        assert_eq!(attr(span, "llm.ttft_s").unwrap()["doubleValue"], 0.25);
        assert_eq!(attr(span, "load_test.step").unwrap()["intValue"], "2");
        assert!(attr(span, "error.type").is_none());
    }

    #[test]
    fn a_failed_request_has_error_status_and_its_kind() {
        let body = spans_of(&[record(false)]);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["status"]["message"], "HTTP 503: busy");
        assert_eq!(attr(span, "error.type").unwrap()["stringValue"], "http_503");
        assert_eq!(
            attr(span, "http.response.status_code").unwrap()["intValue"],
            "503"
        );
    }

    #[test]
    fn an_a_b_run_s_baseline_span_names_the_baseline_adapter() {
        let models = Models {
            candidate: "cand".into(),
            baseline: Some("base".into()),
        };
        let queue = SpanQueue::new(4);
        let feed = SpanFeed::new(queue.clone(), std::time::UNIX_EPOCH, Arc::new(vec![]));
        for arm in [Arm::Candidate, Arm::Baseline] {
            let mut r = record(true);
            r.arm = Some(arm);
            feed.offer(&r);
        }
        let mut rx = queue.rx.lock().unwrap().take().unwrap();
        let spans: Vec<RequestSpan> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let body = export_body(&spans, &models, "run1");
        let got: Vec<(&Value, &Value)> = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    &attr(s, "gen_ai.request.model").unwrap()["stringValue"],
                    &attr(s, "load_test.arm").unwrap()["stringValue"],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (&json!("cand"), &json!("candidate")),
                (&json!("base"), &json!("baseline"))
            ]
        );
    }

    #[test]
    fn no_traceparent_no_span_and_a_full_queue_drops_and_counts() {
        let mut r = record(true);
        r.traceparent = None;
        let body = spans_of(&[r]);
        assert_eq!(
            body["resourceSpans"][0]["scopeSpans"][0]["spans"],
            json!([])
        );
        let queue = SpanQueue::new(2);
        let feed = SpanFeed::new(queue.clone(), std::time::UNIX_EPOCH, Arc::new(vec![]));
        for _ in 0..5 {
            feed.offer(&record(true));
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 3);
    }
}
