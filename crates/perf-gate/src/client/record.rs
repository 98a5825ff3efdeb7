//! The per-request record: what one streaming request did, as measured where its bytes arrived.
//! One JSON line of `requests.jsonl` per record.

use serde::{Deserialize, Serialize};

use crate::workload::Arm;

/// Why a request failed. The wire name is the key of `errors_by_kind` in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The server answered with a non-2xx status (the code is in `http_status`).
    Http,
    /// No connection could be made.
    Connect,
    /// The request did not finish within `--request-timeout`.
    Timeout,
    /// The body ended (or broke) before `[DONE]`.
    StreamIncomplete,
    /// The server sent an `error` object inside the stream.
    StreamError,
    /// A chunk was not valid JSON / SSE.
    Malformed,
    /// Any other transport error while sending or reading.
    Transport,
    /// The stream completed but its finish reason is not a normal end (`abort`, `error`, ...);
    /// the key is `finish_<reason>`.
    AbnormalFinish,
    /// The stream completed (`[DONE]`) without a single generated token.
    EmptyResponse,
}

/// Finish reasons that end a request normally. Anything else is a failure: `abort` and `error`
/// are what vLLM counts as unsuccessful, and an unknown reason fails closed.
pub const NORMAL_FINISH_REASONS: [&str; 4] = ["stop", "length", "tool_calls", "function_call"];

impl ErrorKind {
    /// Key used in `errors_by_kind`; HTTP errors carry their status (`http_503`), abnormal
    /// finishes their reason (`finish_abort`).
    pub fn key(self, status: Option<u16>, finish_reason: Option<&str>) -> String {
        match (self, status) {
            (ErrorKind::AbnormalFinish, _) => {
                format!("finish_{}", finish_reason.unwrap_or("missing"))
            }
            (ErrorKind::EmptyResponse, _) => "empty_response".into(),
            (ErrorKind::Http, Some(code)) => format!("http_{code}"),
            (ErrorKind::Http, None) => "http".into(),
            (ErrorKind::Connect, _) => "connect".into(),
            (ErrorKind::Timeout, _) => "timeout".into(),
            (ErrorKind::StreamIncomplete, _) => "stream_incomplete".into(),
            (ErrorKind::StreamError, _) => "stream_error".into(),
            (ErrorKind::Malformed, _) => "malformed".into(),
            (ErrorKind::Transport, _) => "transport".into(),
        }
    }
}

/// Which part of a timed load (`--duration` with `--warmup` / `--cooldown`) a request was
/// issued in: only `measured` requests count in the client's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Issued inside the measured window (every request of a run without time phases).
    #[default]
    Measured,
    /// Issued during `--warmup`, before the measured window.
    Warmup,
    /// Issued during `--cooldown`, after the measured window.
    Cooldown,
}

impl Phase {
    /// Whether this is [`Phase::Measured`] (the default, not written to `requests.jsonl`).
    pub fn is_measured(&self) -> bool {
        *self == Phase::Measured
    }
}

/// One request, measured. Times are seconds; offsets are from the load's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Order in which the request was issued (0-based).
    pub seq: u64,
    /// Index of the prompt in the eval file.
    pub prompt_index: u32,
    /// The adapter it went to in a same-server A/B run (`--baseline-adapter`); absent (not
    /// written) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<Arm>,
    /// The GET task of a `--task-mix` this was (`health`, `models`), counted apart from the
    /// generations; absent for a generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::workload::Probe>,
    /// The sweep step (`--steps`, 0-based) the request belongs to; absent outside a sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The part of a timed load it was issued in; absent (`measured`) when it counts.
    #[serde(default, skip_serializing_if = "Phase::is_measured")]
    pub phase: Phase,
    /// When the schedule wanted the request sent (offset from load start).
    pub scheduled_s: f64,
    /// When it was really sent (offset from load start).
    pub start_s: f64,
    /// HTTP status, if a response head arrived.
    pub http_status: Option<u16>,
    /// True for 2xx and a complete stream (`[DONE]` seen).
    pub ok: bool,
    /// Failure kind, when not ok.
    pub error_kind: Option<ErrorKind>,
    /// One-line error detail (truncated), when not ok.
    pub error: Option<String>,
    /// Time to the first chunk with non-empty content.
    pub ttft_s: Option<f64>,
    /// Time to the last chunk with content (vLLM's e2e ends at the last token).
    pub e2e_s: Option<f64>,
    /// Time until the stream ended (`[DONE]` or failure).
    pub total_s: f64,
    /// Chunks that carried content.
    pub content_chunks: u32,
    /// Output tokens from the usage chunk; `null` when the server sent none.
    pub output_tokens: Option<u32>,
    /// Prompt tokens from the usage chunk.
    pub prompt_tokens: Option<u32>,
    /// `finish_reason` of the last choice that had one.
    pub finish_reason: Option<String>,
    /// Mean gap between content chunks.
    pub itl_mean_s: Option<f64>,
    /// Largest gap between content chunks.
    pub itl_max_s: Option<f64>,
    /// Every gap between consecutive content chunks (kept in memory for exact percentiles, not
    /// written to `requests.jsonl`).
    #[serde(skip)]
    pub itl_gaps: Vec<f32>,
    /// The W3C `traceparent` sent with the request (find it in vLLM's OpenTelemetry traces);
    /// absent when none was sent (`--no-traceparent`, a GET task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The member of a mix (`--target`, `--lora-mix`) the request went to, by name; absent
    /// outside a mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<std::sync::Arc<str>>,
    /// The member's index in the mix (for the aggregator; not written).
    #[serde(skip)]
    pub member: Option<u16>,
}

impl RequestRecord {
    /// Time per output token: `(e2e - ttft) / (output_tokens - 1)`, when all are known.
    pub fn tpot_s(&self) -> Option<f64> {
        let (ttft, e2e, tokens) = (self.ttft_s?, self.e2e_s?, self.output_tokens?);
        (tokens > 1).then(|| (e2e - ttft) / f64::from(tokens - 1))
    }

    /// Client-side queueing: actual start minus scheduled start.
    pub fn queue_s(&self) -> f64 {
        (self.start_s - self.scheduled_s).max(0.0)
    }
}
