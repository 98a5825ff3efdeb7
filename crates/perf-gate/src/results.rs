//! The JSON contract between `load-test` and `perf-decision`: `load_test_results.json`.
//!
//! The schema is versioned ([`SCHEMA_VERSION`]); any change to a field bumps it, and the
//! generated JSON Schema under `schemas/` is checked in CI. Every figure that can be missing is a
//! [`Measured`]: a number, or `null` with a reason. NaN never appears: "no data" is `null`.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the `load_test_results.json` schema. Bumped on any field change.
pub const SCHEMA_VERSION: u32 = 5;
/// The oldest schema version still read (its missing fields default): version 2 lacks
/// `client.samples` (a baseline recorded by an older build is still judged by the seed's
/// checks), version 3 lacks `steps` (a run of one step).
pub const OLDEST_READ_SCHEMA_VERSION: u32 = 2;

/// File name of the results document inside `--output-dir`.
pub const RESULTS_FILE: &str = "load_test_results.json";
/// File name of the one-word status file inside `--output-dir` (for an Argo output parameter).
pub const STATUS_FILE: &str = "load_test_status.txt";
/// File name of the per-request records (one JSON object per line).
pub const REQUESTS_FILE: &str = "requests.jsonl";

/// Outcome of a load-test run, written both in the JSON and in `load_test_status.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The load ran to the end and server figures were collected (some may be `null`).
    Completed,
    /// The run could not be carried out (bad input, dependency down); see `error`.
    Failed,
    /// Stopped by a signal; figures cover only what ran.
    Aborted,
}

impl RunStatus {
    /// The word written to the status file.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }
}

/// A figure that may be missing. `value` is finite or `null`; when `null`, `reason` says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Measured {
    /// The value, always finite; `null` means "no data" (never 0, never NaN).
    pub value: Option<f64>,
    /// Why `value` is `null` (or a caveat about it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Measured {
    /// A present value. Non-finite input becomes "no data" with a reason, so NaN can never pass.
    pub fn value(v: f64) -> Self {
        if v.is_finite() {
            Measured {
                value: Some(v),
                reason: None,
            }
        } else {
            Measured::missing(format!("value is not finite ({v})"))
        }
    }

    /// No data, with the reason.
    pub fn missing(reason: impl Into<String>) -> Self {
        Measured {
            value: None,
            reason: Some(reason.into()),
        }
    }

    /// From an optional value; `None` gets `reason`.
    pub fn from_option(v: Option<f64>, reason: impl Into<String>) -> Self {
        match v {
            Some(v) => Measured::value(v),
            None => Measured::missing(reason),
        }
    }

    /// The value if present.
    pub fn get(&self) -> Option<f64> {
        self.value.filter(|v| v.is_finite())
    }
}

/// P50/P95/P99 of a server-side histogram, each possibly missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct ServerQuantiles {
    /// Median.
    pub p50: Measured,
    /// 95th percentile.
    pub p95: Measured,
    /// 99th percentile.
    pub p99: Measured,
}

/// Where the server-side figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerSource {
    /// PromQL against a Prometheus server (`--prometheus-url`).
    Prometheus,
    /// Deltas of vLLM's own `/metrics`, scraped before and after the load.
    VllmMetrics,
}

impl ServerSource {
    /// The name as written in the results (`prometheus`, `vllm_metrics`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServerSource::Prometheus => "prometheus",
            ServerSource::VllmMetrics => "vllm_metrics",
        }
    }
}

/// How the PromQL window was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// Evaluate at load end + scrape interval + 2 s over a range covering the whole load (default).
    #[default]
    EndAnchored,
    /// The seed's rule: W = duration rounded up to the minute (min 1m), evaluated after `--scrape-wait`.
    Seed,
}

impl WindowMode {
    /// The name as written in the results (`end_anchored`, `seed`).
    pub fn as_str(self) -> &'static str {
        match self {
            WindowMode::EndAnchored => "end_anchored",
            WindowMode::Seed => "seed",
        }
    }
}

/// The query window actually used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryWindow {
    /// Window rule.
    pub mode: WindowMode,
    /// Range `W` of the windowed queries, seconds (to the millisecond: the PromQL says `[93417ms]`).
    pub range_s: f64,
    /// Evaluation time `T` of the queries, unix seconds (to the millisecond).
    pub eval_time_unix: f64,
    /// `T` as RFC 3339.
    pub eval_time: String,
    /// The scrape interval the waits were bounded with, seconds.
    #[serde(default)]
    pub scrape_interval_s: Option<f64>,
    /// Where it came from: `flag`, `prometheus` (the job's targets) or `default` (30 s, when
    /// Prometheus does not report one).
    #[serde(default)]
    pub scrape_interval_source: Option<String>,
    /// Time waited before the load for every target's confirmed quiet sample, seconds.
    #[serde(default)]
    pub waited_before_load_s: Option<f64>,
    /// Time waited after the load for every target's sample with nothing running, seconds.
    #[serde(default)]
    pub waited_after_load_s: Option<f64>,
    /// The samples the window rests on, per target (end-anchored mode).
    #[serde(default)]
    pub samples: Vec<EdgeSamples>,
}

/// The two samples of one target the window is anchored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EdgeSamples {
    /// The target (its `instance` label, or its target labels).
    pub target: String,
    /// Its last sample before the load (RFC 3339): after the pre-flight and warm-up, nothing
    /// running or waiting, counts unchanged since the sample before. `null`: the target
    /// appeared during the load and is counted from 0.
    pub before_load: Option<String>,
    /// Its last sample at `T` (RFC 3339): after the load, nothing running or waiting.
    pub after_load: Option<String>,
}

/// The facts that say whether the server figures can be trusted (each a reason for the
/// decision's `invalid` when it fails; see `perf_gate::decision::validity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct ServerIntegrity {
    /// Whether both edges of the window rest on confirmed samples (end-anchored mode with
    /// Prometheus; with `/metrics` deltas, whether both scrapes came from one process).
    pub edges_confirmed: bool,
    /// Why not, one line per target or problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<String>,
    /// Requests the server counted as finished in the window with any reason (stop, length,
    /// abort, error, ...).
    pub requests_finished_any: Measured,
    /// Counter resets inside the window (`resets()` of vLLM's counters and buckets): vLLM
    /// restarted. `null`: not measured.
    pub counter_resets: Option<u64>,
    /// Process restarts inside the window (`process_start_time_seconds` changed). `null`: not
    /// measured.
    pub process_restarts: Option<u64>,
    /// Series absent before the load and counted from 0 (a target or label set born during it).
    pub series_born: u64,
    /// Targets (Prometheus `instance`s) or processes (`/metrics`: start time) the figures read
    /// before the load.
    pub targets_before: Vec<String>,
    /// The same after the load.
    pub targets_after: Vec<String>,
}

/// Whether the measurement can be trusted, with the reasons when it cannot (computed from the
/// facts in the results by `perf_gate::decision::validity`; `perf-decision` recomputes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Validity {
    /// No reason to distrust the measurement was found.
    pub valid: bool,
    /// Why it cannot be trusted, one line each.
    pub reasons: Vec<String>,
}

/// One query that was sent, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueryRecord {
    /// Which figure it computes (e.g. `e2e_latency_p95`).
    pub name: String,
    /// The PromQL text, or a description of the computation for `vllm_metrics` mode.
    pub query: String,
}

/// Server-side figures (checks 1–3 of the gate use these by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerMetrics {
    /// Prometheus or direct `/metrics` deltas.
    pub source: ServerSource,
    /// The PromQL window (Prometheus source only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<QueryWindow>,
    /// End-to-end request latency (`vllm:e2e_request_latency_seconds`), seconds.
    pub e2e_latency_s: ServerQuantiles,
    /// Time to first token (`vllm:time_to_first_token_seconds`), seconds.
    pub ttft_s: ServerQuantiles,
    /// Inter-token latency (`vllm:inter_token_latency_seconds`), seconds.
    pub itl_s: ServerQuantiles,
    /// Requests finished with `stop` or `length` during the load.
    pub requests_finished: Measured,
    /// `requests_finished` / load duration, requests per second.
    pub throughput_rps: Measured,
    /// Generated tokens per second over the load (`vllm:generation_tokens_total`).
    pub generation_tokens_per_s: Measured,
    /// Peak `vllm:kv_cache_usage_perc` over the window (fraction 0..1).
    pub kv_cache_usage_max: Measured,
    /// Mean `vllm:kv_cache_usage_perc` over the window (fraction 0..1).
    pub kv_cache_usage_avg: Measured,
    /// Mean `DCGM_FI_DEV_GPU_UTIL` over the window (percent 0..100).
    pub gpu_utilization_avg: Measured,
    /// Peak `DCGM_FI_DEV_GPU_UTIL` over the window (percent 0..100).
    pub gpu_utilization_max: Measured,
    /// Every query used, in order.
    pub queries: Vec<QueryRecord>,
    /// Metric names resolved when aliases exist (e.g. `kv_cache_usage` -> `vllm:kv_cache_usage_perc`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolved_names: BTreeMap<String, String>,
    /// Non-fatal problems met while collecting (warnings from Prometheus, count mismatches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whether the figures can be trusted: confirmed window edges, counts, restarts.
    #[serde(default)]
    pub integrity: ServerIntegrity,
}

/// A latency that may be +infinity (error-adjusted percentiles count a failure as +inf).
/// Serialized as a number, or the string `"+Inf"` (Prometheus's spelling); `null` means no data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// A finite latency in seconds.
    Finite(f64),
    /// A failed request counted as infinitely slow.
    Inf,
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Latency::Finite(v) => s.serialize_f64(*v),
            Latency::Inf => s.serialize_str("+Inf"),
        }
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) if v.is_finite() => Ok(Latency::Finite(v)),
            Raw::Str(s) if s == "+Inf" => Ok(Latency::Inf),
            _ => Err(serde::de::Error::custom(
                "expected a finite number or \"+Inf\"",
            )),
        }
    }
}

impl JsonSchema for Latency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Latency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Seconds, or \"+Inf\" for a failed request in error-adjusted percentiles",
            "oneOf": [{"type": "number"}, {"type": "string", "const": "+Inf"}]
        })
    }
}

/// Summary of one client-side distribution, seconds. `null` fields mean no samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Nearest-rank 50th percentile.
    pub p50: Option<f64>,
    /// Nearest-rank 90th percentile.
    pub p90: Option<f64>,
    /// Nearest-rank 95th percentile.
    pub p95: Option<f64>,
    /// Nearest-rank 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// Set when the figures come from a histogram (pooled inter-token gaps, TPOT, queueing):
    /// each percentile is the upper edge of its sample's bucket, at most this fraction above
    /// the exact nearest-rank sample and never below it. Absent: exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_error: Option<f64>,
}

/// Error-adjusted percentiles: every failed request counts as `+Inf`, so failing fast never
/// improves a percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct AdjustedPercentiles {
    /// Samples including failures.
    pub count: u64,
    /// Nearest-rank 50th percentile.
    pub p50: Option<Latency>,
    /// Nearest-rank 95th percentile.
    pub p95: Option<Latency>,
    /// Nearest-rank 99th percentile.
    pub p99: Option<Latency>,
}

/// Per-request service-level objectives (`--slo ttft=2s,tpot=50ms,e2e=8s`), seconds; an
/// absent one is not required.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Slo {
    /// Time to first token at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_s: Option<f64>,
    /// Time per output token after the first at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_s: Option<f64>,
    /// End to end at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_s: Option<f64>,
}

/// SLO attainment (goodput): how many requests met every objective. A failed request meets
/// none; a request whose TPOT cannot be known (no usage chunk) does not meet a TPOT objective;
/// one of a single output token has no TPOT and meets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloAttainment {
    /// The objectives.
    pub slo: Slo,
    /// Requests that met all of them.
    pub met: u64,
    /// Requests judged (every request of the load, failures included).
    pub requests: u64,
    /// `met / requests` (`null` without requests).
    pub fraction: Option<f64>,
}

/// Client-side figures measured by `load-test` itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct ClientMetrics {
    /// Requests sent (or attempted).
    pub total_requests: u64,
    /// Requests that returned 2xx and a complete stream (`[DONE]` seen).
    pub successful_requests: u64,
    /// `total_requests - successful_requests`.
    pub failed_requests: u64,
    /// `successful_requests / total_requests`; `null` when nothing was sent.
    pub success_rate: Option<f64>,
    /// Failures counted by kind (`http_500`, `timeout`, `connect`, `stream_incomplete`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Successful responses that carried no usage chunk (their output tokens are unknown, not guessed).
    pub responses_without_usage: u64,
    /// Successful responses whose usage chunk said 0 completion tokens though content chunks
    /// arrived: the server's count contradicts the stream (flagged in the warnings).
    #[serde(default)]
    pub zero_usage_with_content: u64,
    /// Output tokens reported by the server's usage chunks, summed over successful requests.
    pub output_tokens: u64,
    /// Prompt tokens reported by the server's usage chunks.
    pub prompt_tokens: u64,
    /// Successful requests per second over the load duration.
    pub requests_per_s: Option<f64>,
    /// Output tokens per second over the load duration.
    pub output_tokens_per_s: Option<f64>,
    /// Time to first token: request sent to the first chunk with non-empty content.
    pub ttft_s: Distribution,
    /// Inter-token latency: gaps between consecutive content chunks, over all successful requests.
    pub itl_s: Distribution,
    /// End-to-end latency: request sent to the last content chunk.
    pub e2e_s: Distribution,
    /// Time per output token per request: (e2e - ttft) / (output_tokens - 1).
    pub tpot_s: Distribution,
    /// Time a request waited for a free slot after its scheduled start (coordinated omission).
    pub client_queue_s: Distribution,
    /// E2E latency with failures counted as +Inf.
    pub e2e_adjusted_s: AdjustedPercentiles,
    /// TTFT with failures counted as +Inf.
    pub ttft_adjusted_s: AdjustedPercentiles,
    /// The share of requests that met every per-request SLO of `--slo` (goodput), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<SloAttainment>,
    /// Every request's finish time, TTFT and E2E, packed: what the statistical verdict
    /// resamples (see `perf_gate::decision::statistics`). Absent in files of schema version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<PackedSamples>,
}

/// The encoding of [`PackedSamples::data`].
pub const SAMPLES_ENCODING: &str = "base64(f32le[finished_s, ttft_s, e2e_s] per request)";

/// Every request of a load in 12 bytes each, base64 in the JSON: per request, in the order
/// they finished, three little-endian `f32`: seconds from the load's start to its finish, its
/// TTFT and its E2E latency (`NaN` for none: a failure). 16 characters a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PackedSamples {
    /// [`SAMPLES_ENCODING`].
    pub encoding: String,
    /// Requests packed.
    pub count: u64,
    /// The packed requests.
    #[schemars(with = "String")]
    pub data: PackedData,
}

/// The base64 text of [`PackedSamples`]: as read from a file, or a live
/// [`crate::stats::store::SampleStore`] encoded only as it is written (a run's results never
/// hold a second, 16-bytes-a-request copy of its samples).
#[derive(Clone)]
pub struct PackedData(PackedRepr);

#[derive(Clone)]
enum PackedRepr {
    Text(String),
    Store(crate::stats::store::SampleStore),
}

impl PackedData {
    /// Samples not yet encoded: the text is made when written or asked for.
    pub fn from_store(store: crate::stats::store::SampleStore) -> Self {
        PackedData(PackedRepr::Store(store))
    }

    /// The base64 text (encoded now for a live store).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            PackedRepr::Text(t) => std::borrow::Cow::Borrowed(t),
            PackedRepr::Store(s) => std::borrow::Cow::Owned(s.encoded().to_string()),
        }
    }

    /// Length of the base64 text.
    pub fn len(&self) -> usize {
        match &self.0 {
            PackedRepr::Text(t) => t.len(),
            // 12 bytes a request: whole base64 quanta, 16 characters
            PackedRepr::Store(s) => s.len() * 16,
        }
    }

    /// True when there is no text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live store, when this was made from one.
    pub(crate) fn store(&self) -> Option<&crate::stats::store::SampleStore> {
        match &self.0 {
            PackedRepr::Text(_) => None,
            PackedRepr::Store(s) => Some(s),
        }
    }
}

impl From<String> for PackedData {
    fn from(text: String) -> Self {
        PackedData(PackedRepr::Text(text))
    }
}

impl From<&str> for PackedData {
    fn from(text: &str) -> Self {
        PackedData(PackedRepr::Text(text.to_string()))
    }
}

impl PartialEq for PackedData {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.text() == other.text()
    }
}

impl std::fmt::Debug for PackedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedData({} base64 characters)", self.len())
    }
}

impl Serialize for PackedData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            PackedRepr::Text(t) => s.serialize_str(t),
            // streamed into the writer a block at a time
            PackedRepr::Store(store) => s.collect_str(&store.encoded()),
        }
    }
}

impl<'de> Deserialize<'de> for PackedData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(PackedData::from)
    }
}

/// Whether the load generator could keep up (see `runner::health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct GeneratorHealth {
    /// Cores available to `load-test`.
    pub cores: u32,
    /// Process CPU time (user + system) during the load, seconds.
    pub cpu_seconds: Option<f64>,
    /// `cpu_seconds` / load duration, in percent of one core.
    pub cpu_percent_of_one_core: Option<f64>,
    /// P99 of how late a 50 ms timer woke on the client's runtime, seconds.
    pub event_loop_lag_p99_s: Option<f64>,
    /// Largest such lag, seconds.
    pub event_loop_lag_max_s: Option<f64>,
    /// True when lag P99 > 20 ms or CPU > 80 % of the cores: client timings may be inflated.
    pub saturated: bool,
}

/// How far an open loop (`--rate`) kept to its schedule: the requested rate against the rate
/// at which requests were actually dispatched. Absent for a closed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct ScheduleLag {
    /// `--rate`, requests per second.
    pub requested_rate: f64,
    /// The drawn schedule's own rate: (dispatched - 1) over the scheduled offset of the last
    /// dispatched request; differs from `requested_rate` by the arrival process's chance
    /// (`poisson`, `gamma`), not by any lag. `null` below two dispatches.
    pub scheduled_rate: Option<f64>,
    /// Achieved dispatch rate: (dispatched - 1) over the span from the first to the last
    /// dispatch. `null` below two dispatches.
    pub achieved_rate: Option<f64>,
    /// Requests dispatched.
    pub dispatched: u64,
    /// The in-flight cap (`--max-inflight`).
    pub max_inflight: u32,
    /// Requests that, when due, found every slot taken and waited for one.
    pub waited_for_slot: u64,
    /// P99 of the client queue time (scheduled to actual start, `client.client_queue_s`),
    /// seconds.
    pub client_queue_p99_s: Option<f64>,
}

/// The warm-up phase (`--warmup-requests`), left out of every figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct WarmupInfo {
    /// Warm-up requests sent.
    pub requests: u64,
    /// Of those, how many succeeded.
    pub successful_requests: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Quiet gap waited after the warm-up (one scrape interval + 2 s with Prometheus), seconds.
    pub gap_s: f64,
}

/// The requests a timed load sent in its `--warmup` and `--cooldown` (both together): left
/// out of the client's figures, counted by the server's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnmeasuredInfo {
    /// Requests issued in either period.
    pub requests: u64,
    /// Of which succeeded.
    pub successful_requests: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// `--warmup`, seconds.
    pub warmup_s: f64,
    /// `--cooldown`, seconds.
    pub cooldown_s: f64,
}

/// The connections opened before the load (`--preconnect`), so that no measured request
/// includes a handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct PreconnectInfo {
    /// Connections opened (one per slot of the concurrency).
    pub connections: u64,
    /// Of those, how many failed (the load opens them itself).
    pub failed: u64,
    /// Per connection: connect (and TLS) plus one `GET /health` round trip, seconds.
    pub connect_s: Distribution,
    /// The whole phase, seconds.
    pub total_s: f64,
}

/// Wall-clock timing of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunTiming {
    /// When `load-test` started (RFC 3339).
    pub started_at: String,
    /// When the pre-flight and any warm-up ended (RFC 3339): the server's last quiet sample
    /// before the load must be newer. `load-test merge` checks the shards' left edges with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
    /// When the first request was sent (RFC 3339).
    pub load_start: String,
    /// When the last request finished (RFC 3339).
    pub load_end: String,
    /// `load_end - load_start`, seconds.
    pub load_duration_s: f64,
    /// From start of the step to the results being written, seconds.
    pub wall_clock_duration_s: f64,
}

/// The served adapter, as `/v1/models` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterInfo {
    /// The model id requests were sent to.
    pub name: String,
    /// `root` from `/v1/models`: the adapter's path or URI on the server.
    pub root: Option<String>,
    /// `parent` from `/v1/models`: the base model's served name.
    pub parent: Option<String>,
}

/// How the prompts of a run were made, and the sizes they came out at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InputsInfo {
    /// `eval-file`, `prompt-file`, `prompt-text`, `synthetic` or `task-mix`.
    pub source: String,
    /// Distinct prompts.
    pub prompts: u64,
    /// Requests prepared for the measured load (candidate's; an A/B run sends as many twins).
    pub requests: u64,
    /// How synthetic prompt lengths were calibrated: `tokenize` (vLLM's `/tokenize`),
    /// `tokenizer-file` (`--tokenizer-file`, when the server has no `/tokenize`) or `words`
    /// (one word per token: approximate); absent for other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    /// Why `/tokenize` was not used (not offered, or failed), when another calibration was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_note: Option<String>,
    /// Tokens per word fitted with `/tokenize` or the tokenizer file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_word: Option<f64>,
    /// The synthetic prompts' target lengths (tokens), one per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_target: Option<SizeSummary>,
    /// Their lengths as `/tokenize` or the tokenizer file counted them (with the BOS token);
    /// absent for `words`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_measured: Option<SizeSummary>,
    /// Mean of |measured - target| over the prompts, tokens (absent for `words`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_mean_abs_error: Option<f64>,
    /// The `max_tokens` drawn per request, when `--max-tokens` is a distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<SizeSummary>,
    /// Requests per task of `--task-mix` (generation tasks only: the others are not sent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, u64>,
}

/// Mean and range of a list of sizes (tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SizeSummary {
    /// How many.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: u32,
    /// Largest.
    pub max: u32,
}

impl SizeSummary {
    /// The summary of `values`; `None` when empty.
    pub fn of(values: &[u32]) -> Option<Self> {
        let (min, max) = (values.iter().min()?, values.iter().max()?);
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        Some(SizeSummary {
            count: values.len() as u64,
            mean: sum / values.len() as f64,
            min: *min,
            max: *max,
        })
    }
}

/// The eval data file that supplied the prompts. For the other sources, the same identity of
/// what was sent: `path` is the prompt file, or `prompt-text` / `synthetic:SPEC` /
/// `task-mix:SPEC`, and the digest is that of the file or of the prompt texts in order (so a
/// baseline over other prompts shows as not comparable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvalDataInfo {
    /// Path as given.
    pub path: String,
    /// First 8 hex characters of the file's sha256 (as MLflow shows dataset digests).
    pub digest: String,
    /// Full sha256 of the file, hex.
    pub sha256: String,
    /// Prompts read.
    pub rows: u64,
}

/// The run's configuration, without secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunConfig {
    /// vLLM base URL (any userinfo removed).
    pub vllm_url: String,
    /// Adapter (model id) under test.
    pub adapter_name: String,
    /// Eval JSONL path; absent (empty) when the prompts came from another source
    /// (`input_source`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub eval_data_path: String,
    /// Requests in flight.
    pub concurrency: u32,
    /// Max output tokens per request.
    pub max_tokens: u32,
    /// `completions`, `chat`, or `auto`.
    pub endpoint: String,
    /// Sampling temperature sent.
    pub temperature: f64,
    /// Prometheus base URL, if any.
    pub prometheus_url: Option<String>,
    /// `job` label used in every PromQL selector.
    pub prometheus_job: String,
    /// `--scrape-interval`, seconds; `null`: `auto` (read from Prometheus's targets; the value
    /// used is in `server.window`).
    pub scrape_interval_s: Option<f64>,
    /// `--scrape-wait`, seconds; `null`: `auto` (end-anchored: wait for confirmed samples, at
    /// most two scrape intervals + 5 s; seed: 20 s).
    pub scrape_wait_s: Option<f64>,
    /// Window rule.
    pub window_mode: WindowMode,
    /// Label selector for DCGM GPU series.
    pub gpu_selector: String,
    /// Per-request timeout, seconds.
    pub request_timeout_s: f64,
    /// JSONL field holding the prompt, if forced.
    pub prompt_field: Option<String>,
    /// Where the prompts came from: `eval-file` (`--eval-data-path`, the seed's), `prompt-file`,
    /// `prompt-text`, `synthetic` (`--input-size`) or `task-mix`; absent in results written
    /// before these existed (an eval file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_source: Option<String>,
    /// `--prompt-file`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<String>,
    /// `--input-size`: the synthetic prompts' token lengths (`N`, `uniform:A:B`,
    /// `normal:MEAN:STD:MIN:MAX`, `lognormal:MU:SIGMA:MIN:MAX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<String>,
    /// `--max-tokens` when a distribution (then `max_tokens` is its upper bound); absent for
    /// a fixed number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_dist: Option<String>,
    /// The serving API spoken (`--api`): `openai` (vLLM), or `llamacpp` (llama.cpp's native
    /// `/completion`: no server-side figures). `openai` in results written before `--api`.
    #[serde(default)]
    pub api: crate::api::Api,
    /// Whether requests asked vLLM to ignore end-of-sequence (`--ignore-eos`): every output
    /// runs to its `max_tokens`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_eos: bool,
    /// `--task-mix`, as normalised (`short=10,medium=5,...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_mix: Option<String>,
    /// `--tokenizer-file`, as given (used only when the server has no `/tokenize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_file: Option<String>,
    /// Whether an API key was sent (the key itself is never written).
    pub api_key_set: bool,
    /// Open-loop rate (requests per second); `null` for the closed loop.
    #[serde(default)]
    pub rate: Option<f64>,
    /// How the open loop spaced its requests (`--arrival`): `constant`, `poisson` or
    /// `gamma:K`; results without the field were `constant` (also written for a closed loop,
    /// where it has no effect).
    #[serde(default = "default_arrival")]
    pub arrival: String,
    /// The open loop's in-flight cap (`--max-inflight`); `null` for a closed loop. Results
    /// without the field capped an open loop at `concurrency`.
    #[serde(default)]
    pub max_inflight: Option<u32>,
    /// Seed of the arrival process (`--seed`): same seed, same scheduled times.
    #[serde(default)]
    pub seed: u64,
    /// Total requests asked for; `null` means each prompt once.
    #[serde(default)]
    pub num_requests: Option<u64>,
    /// Warm-up requests sent before the measurement.
    #[serde(default)]
    pub warmup_requests: u32,
    /// `--duration`, seconds (with `--stages`, their total); `null`: a list of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `--warmup` by time, seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_s: f64,
    /// `--cooldown` by time, seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cooldown_s: f64,
    /// `--ramp-up`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_up_s: Option<f64>,
    /// `--stages`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<String>,
    /// A sweep's levels (`--steps`): requests in flight, or per second with `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<f64>>,
    /// A sweep's measured time per step (`--step-duration`), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_duration_s: Option<f64>,
    /// The `--scenario` preset under the flags, if any (its values are in the other fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// A target mix's `--target`s (`name=...,url=...,model=...,weight=...`, URLs without
    /// credentials); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// A LoRA mix's adapters and weights (`--lora-mix`, e.g. `sql-a=3,sql-b=1`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_mix: Option<String>,
    /// The weight of a LoRA mix's base-model control stream (`--base-model-weight`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_weight: Option<f64>,
    /// Think time between a virtual user's requests (`--think-time`, e.g. `1s..3s`) or the
    /// user classes (`--user-class`, e.g. `standard=3,high=1`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<String>,
    /// Whether the connection pool was opened before the load (`--preconnect`): with it, no
    /// client TTFT includes a handshake; results without the field did not.
    #[serde(default)]
    pub preconnect: bool,
    /// The HTTP client that sent the load's requests (`--http-client` after its fallbacks):
    /// `native` (load-test's own HTTP/1.1 client) or `reqwest`; absent: reqwest (runs before
    /// the option). Recorded, not compared: the server sees the same requests either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_client: Option<String>,
    /// The baseline adapter measured alongside (`--baseline-adapter`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_adapter: Option<String>,
    /// Per-request objectives whose attainment is reported (`--slo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// How long `load-test` would wait for vLLM to become ready, seconds.
    #[serde(default)]
    pub wait_ready_s: f64,
    /// Grace given to in-flight requests after a signal, seconds.
    #[serde(default)]
    pub drain_grace_s: f64,
    /// `--threshold` expressions, as given (their outcomes: [`LoadTestResults::thresholds`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_arrival() -> String {
    "constant".to_string()
}

/// Name and version of the program that wrote a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    /// Program name.
    pub name: String,
    /// Program version.
    pub version: String,
}

impl ToolInfo {
    /// This build of the given program.
    pub fn this(name: &str) -> Self {
        ToolInfo {
            name: name.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The whole `load_test_results.json` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadTestResults {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Outcome.
    pub status: RunStatus,
    /// One line saying what went wrong, when `status` is not `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Writer.
    pub tool: ToolInfo,
    /// Configuration (no secrets).
    pub config: RunConfig,
    /// The adapter as served.
    pub adapter: Option<AdapterInfo>,
    /// The eval data file (or the identity of the prompts of another source: see
    /// [`EvalDataInfo`]).
    pub eval_data: Option<EvalDataInfo>,
    /// How the prompts and sizes were made (every source; calibration and achieved lengths
    /// for synthetic prompts); absent when the run failed before, and in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputsInfo>,
    /// Timing; absent when the load never started.
    pub timing: Option<RunTiming>,
    /// Client-side figures; absent when the load never started.
    pub client: Option<ClientMetrics>,
    /// Server-side figures; absent when the load never ran or collection failed.
    pub server: Option<ServerMetrics>,
    /// Whether the load generator kept up; absent when the load never started.
    #[serde(default)]
    pub load_generator: Option<GeneratorHealth>,
    /// How far an open loop (`--rate`) kept to its schedule; absent for a closed loop and
    /// when the load never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleLag>,
    /// The warm-up, when `--warmup-requests` > 0.
    #[serde(default)]
    pub warmup: Option<WarmupInfo>,
    /// The requests of a timed load's `--warmup` and `--cooldown`, sent but not measured;
    /// absent without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmeasured: Option<UnmeasuredInfo>,
    /// The connections opened before the load, when `--preconnect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconnect: Option<PreconnectInfo>,
    /// Whether the measurement can be trusted (absent when the load did not complete).
    #[serde(default)]
    pub validity: Option<Validity>,
    /// The baseline adapter measured in the same run (`--baseline-adapter`), its requests
    /// interleaved with the candidate's over the same prompts; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_arm: Option<BaselineArm>,
    /// Deliberate departures from the seed's behaviour, in words.
    #[serde(default)]
    pub departures: Vec<String>,
    /// Non-fatal problems.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The `--threshold` outcomes, in the order given; evaluated only when the run completed
    /// (empty otherwise, and without thresholds). A crossed one makes `load-test` exit 1; the
    /// status stays `completed` (the measurement itself succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdOutcome>,
    /// The GET tasks of a `--task-mix` (health, model list), counted apart from the
    /// generations; empty without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeSummary>,
    /// A step sweep's steps (`--steps`), in the order run; empty for a run of one load (the
    /// top-level figures are then the run's). In a sweep, the top-level `client` pools every
    /// step's requests and `server` is absent: each step has its own server window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    /// A mix's members (`--target`, `--lora-mix`), each with its own client figures; the
    /// top-level `client` pools them. Absent outside a mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixResults>,
    /// A shard of a scaled-out load (`--shard-index`/`--shard-count`), with what `load-test
    /// merge` needs; or, in merged results, the shards merged. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// One shard of a load split over several `load-test` processes, or the merge of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// This shard's index (0-based); absent in merged results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Shards in the load.
    pub count: u32,
    /// Seconds the shard's rates are over (its measured window, or first issue to last finish).
    pub rate_span_s: f64,
    /// The shard's measured requests, mergeable: counts, every request's exact sample, and
    /// the pooled histograms (HDR V2, base64). Absent in merged results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tally: Option<crate::runner::aggregate::TallyWire>,
    /// The same for the requests of the warm-up and cool-down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub unmeasured: Option<crate::runner::aggregate::TallyWire>,
    /// The same for the measured requests of the baseline arm (`--baseline-adapter`); absent
    /// without one, and in merged results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub baseline: Option<crate::runner::aggregate::TallyWire>,
    /// The same for each member of a mix (`--target`, `--lora-mix`), in the mix's order;
    /// empty without one, and in merged results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub members: Vec<crate::runner::aggregate::TallyWire>,
    /// The same for each step of a sweep (`--steps`), in order; empty without one, and in
    /// merged results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<ShardStep>,
}

/// One step of a shard's sweep, mergeable (see [`ShardInfo`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardStep {
    /// Seconds the step's rates are over (its measured window, or what ran of it).
    pub rate_span_s: f64,
    /// The step's measured requests (finish times from the step's own start).
    #[schemars(with = "serde_json::Value")]
    pub tally: crate::runner::aggregate::TallyWire,
    /// The step's warm-up and cool-down requests.
    #[schemars(with = "serde_json::Value")]
    pub unmeasured: crate::runner::aggregate::TallyWire,
}

/// The members of a mix and their figures under the shared load (seed 002's per-endpoint
/// breakdown: each one's error rate and latency while the others load the same servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MixResults {
    /// `targets` (several servers) or `adapters` (several LoRA adapters on one vLLM).
    pub kind: crate::mix::MixKind,
    /// How the requests were split: `smooth weighted round robin` (deterministic).
    pub split: String,
    /// What the server-side figures cover (vLLM labels its metrics by base model, not by
    /// adapter; a target mix has none).
    pub server_note: String,
    /// The members, in the order given.
    pub members: Vec<MixMemberResult>,
}

impl LoadTestResults {
    /// What the client figures measured, for titles and labels: the adapter, or a mix's
    /// [`crate::mix::label`] (the pooled figures are no one member's).
    pub fn measured(&self) -> std::borrow::Cow<'_, str> {
        match &self.mix {
            Some(m) => crate::mix::label(m.members.iter().map(|m| m.name.as_str())).into(),
            None => self.config.adapter_name.as_str().into(),
        }
    }
}

/// One member of a mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MixMemberResult {
    /// Its name (`target` in `requests.jsonl`).
    pub name: String,
    /// `target`, `adapter` or `base` (the base-model control stream).
    pub role: crate::mix::Role,
    /// Its serving API.
    #[serde(default)]
    pub api: crate::api::Api,
    /// Its server (a target), without credentials; absent: `--vllm-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The model its requests named.
    pub model: String,
    /// Its weight as given.
    pub weight: f64,
    /// Its own requests in flight (a target's `concurrency=`), if it has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Its share of the requests asked for: weight / total weight.
    pub share_requested: f64,
    /// Its share of the measured requests sent.
    pub share_sent: Option<f64>,
    /// Failed / sent, of its measured requests.
    pub error_rate: Option<f64>,
    /// Its requests' client figures (rates over the run's measured time).
    pub client: ClientMetrics,
    /// An adapter's first request, sent alone before the load (and before any warm-up): the
    /// time vLLM took to load it, kept out of the percentiles. Absent for targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_load: Option<ColdLoad>,
    /// The `--threshold`s judged on this member's figures (a crossed one fails the run as a
    /// crossed pooled one does: a slow member is not hidden in the pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdOutcome>,
}

/// A LoRA adapter's first request, alone, before the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColdLoad {
    /// Whether it succeeded.
    pub ok: bool,
    /// Its time to first token, seconds (includes loading the adapter, when vLLM had not).
    pub ttft_s: Option<f64>,
    /// Its end-to-end latency, seconds.
    pub e2e_s: Option<f64>,
    /// Its TTFT above the member's TTFT p50 under load, seconds: the cost of the first request.
    pub extra_ttft_over_p50_s: Option<f64>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The GET requests of one `--task-mix` task (`health`: `GET /health`, `models`:
/// `GET /v1/models`), sent in the load's stream and counted apart from the generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeSummary {
    /// `health` or `models`.
    pub task: String,
    /// The path it GETs.
    pub path: String,
    /// Sent.
    pub requests: u64,
    /// Of which answered 2xx and read to the end.
    pub successful_requests: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of the successful ones (whole answer), seconds.
    pub latency_s: Distribution,
}

/// One step of a sweep (`load-test --steps`): its load, its client figures and the server's
/// figures over the step's own window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepResult {
    /// 0-based position in the sweep.
    pub index: u32,
    /// Requests in flight (closed loop); `null` for an open-loop step.
    pub concurrency: Option<u32>,
    /// Requests per second (open loop); `null` for a closed-loop step.
    pub rate: Option<f64>,
    /// Wall-clock time of the step's first request (RFC 3339).
    pub load_start: String,
    /// Wall-clock time the step's last request finished (RFC 3339).
    pub load_end: String,
    /// Measured duration of the step, seconds (warm-up and cool-down excluded).
    pub duration_s: f64,
    /// Client-side figures of the step's measured requests.
    pub client: ClientMetrics,
    /// Server-side figures over the step's own window; absent when they could not be
    /// collected (`server_note` says why).
    pub server: Option<ServerMetrics>,
    /// Why the server figures are absent or mixed with another step's requests, if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_note: Option<String>,
    /// The `--threshold` outcomes for this step alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdOutcome>,
}

/// One `load-test --threshold` judged against the client's figures (see
/// `perf_gate::loadtest::thresholds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdOutcome {
    /// The expression as given, e.g. `ttft_p95<2s`.
    pub expression: String,
    /// The metric's canonical name (`latency_p95` is `e2e_p95`).
    pub metric: String,
    /// `<`, `<=`, `>` or `>=`.
    pub op: String,
    /// The limit: seconds for latencies, a fraction for rates, per second for `rps` and
    /// `tokens_per_s`.
    pub limit: f64,
    /// The measured value in the same unit; `null` when the results have none (the threshold
    /// then fails).
    pub value: Option<f64>,
    /// Whether `value op limit` holds.
    pub passed: bool,
    /// The comparison in words, or why there is no value.
    pub reason: String,
}

/// The baseline adapter's half of a same-server A/B run (`load-test --baseline-adapter`).
/// vLLM labels its metrics by base model, not adapter, so the server figures of the run cover
/// both arms; this arm has the client's figures only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaselineArm {
    /// The baseline adapter as served.
    pub adapter: AdapterInfo,
    /// Its client-side figures (with its `samples`), over the same load duration as the
    /// candidate's.
    pub client: ClientMetrics,
}

/// Errors reading a results file.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path} is empty")]
    Empty {
        /// File path.
        path: String,
    },
    /// The file is not valid JSON or does not match the schema.
    #[error("{path} is not a valid results document: {message}")]
    Malformed {
        /// File path.
        path: String,
        /// What is wrong (serde's message with line and column).
        message: String,
    },
    /// The file has a schema version this build does not read.
    #[error(
        "{path} has schema_version {found}; this build reads versions {OLDEST_READ_SCHEMA_VERSION} to {expected}"
    )]
    SchemaVersion {
        /// File path.
        path: String,
        /// Version in the file.
        found: u64,
        /// Version this build reads.
        expected: u32,
    },
}

impl LoadTestResults {
    /// Reads and validates a results file: it must exist, be non-empty JSON, and carry
    /// [`SCHEMA_VERSION`]. Each failure names the file.
    pub fn read(path: &Path) -> Result<Self, ResultsError> {
        Self::read_with_bytes(path).map(|(results, _)| results)
    }

    /// As [`LoadTestResults::read`], also returning the exact bytes read, so what is judged and
    /// what is archived (e.g. uploaded as an artifact) come from one read of the file.
    pub fn read_with_bytes(path: &Path) -> Result<(Self, Vec<u8>), ResultsError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ResultsError::Read {
            path: shown.clone(),
            source,
        })?;
        let results = Self::from_slice(&bytes, &shown)?;
        Ok((results, bytes))
    }

    /// Parses and validates a results document; `shown` names its source in errors.
    pub fn from_slice(bytes: &[u8], shown: &str) -> Result<Self, ResultsError> {
        let malformed = |message: String| ResultsError::Malformed {
            path: shown.to_string(),
            message,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ResultsError::Empty {
                path: shown.to_string(),
            });
        }
        let raw = crate::strict_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        match raw.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v)
                if (u64::from(OLDEST_READ_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION))
                    .contains(&v) => {}
            Some(found) => {
                return Err(ResultsError::SchemaVersion {
                    path: shown.to_string(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            None => return Err(malformed("missing integer field `schema_version`".into())),
        }
        serde_json::from_value(raw).map_err(|e| malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_never_holds_nan() {
        let m = Measured::value(f64::NAN);
        assert_eq!(m.value, None);
        assert!(m.reason.unwrap().contains("not finite"));
        assert_eq!(
            serde_json::to_string(&Measured::value(1.5)).unwrap(),
            r#"{"value":1.5}"#
        );
        assert_eq!(
            serde_json::to_string(&Measured::missing("no series")).unwrap(),
            r#"{"value":null,"reason":"no series"}"#
        );
    }

    #[test]
    fn reading_keeps_the_exact_bytes_and_names_the_file_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, " \n").unwrap();
        assert_eq!(
            LoadTestResults::read(&p).unwrap_err().to_string(),
            format!("{} is empty", p.display())
        );
        std::fs::write(&p, "{\"schema_version\": 99}").unwrap();
        assert!(
            LoadTestResults::read(&p)
                .unwrap_err()
                .to_string()
                .contains("has schema_version 99")
        );
        std::fs::write(&p, "{\"schema_version\": 1, \"status\"").unwrap();
        assert!(
            LoadTestResults::read(&p)
                .unwrap_err()
                .to_string()
                .contains("is not a valid results document")
        );
    }

    #[test]
    fn a_version_2_file_without_samples_is_still_read() {
        let mut v = serde_json::to_value(crate::fixtures::results()).unwrap();
        v["schema_version"] = 2.into();
        assert!(v["client"].get("samples").is_none());
        let read = LoadTestResults::from_slice(v.to_string().as_bytes(), "old.json").unwrap();
        assert_eq!(read.client.unwrap().samples, None);
        v["schema_version"] = 1.into();
        let e = LoadTestResults::from_slice(v.to_string().as_bytes(), "older.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "older.json has schema_version 1; this build reads versions 2 to 5"
        );
    }

    #[test]
    fn latency_inf_round_trips_as_prometheus_spelling() {
        let v = vec![Latency::Finite(0.25), Latency::Inf];
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, r#"[0.25,"+Inf"]"#);
        let back: Vec<Latency> = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        assert!(serde_json::from_str::<Latency>(r#""inf""#).is_err());
    }
}
