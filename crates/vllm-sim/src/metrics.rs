//! vLLM's Prometheus metrics, kept in atomics and rendered as text format 0.0.4.
//!
//! Names, label names, label order, `# HELP` texts and bucket bounds are those of the real
//! vLLM 0.32 `/metrics` (captured in `tests/fixtures/metrics_after_load.txt`). Every engine
//! series carries `engine="0",model_name="<served-model-name>"`: requests for an adapter
//! are counted under the base model name, as vLLM does.
//!
//! When things are observed (mirroring vLLM's per-iteration and per-finished-request stats):
//! - `vllm:time_to_first_token_seconds` (arrival → first token, so queue time included) and
//!   `vllm:prompt_tokens_total` when the first token is produced;
//! - `vllm:inter_token_latency_seconds` and `vllm:generation_tokens_total` for every
//!   further token (one observation per gap);
//! - the per-request histograms (`e2e_request_latency`, `request_queue_time`,
//!   `request_prefill_time`, `request_decode_time`, `request_inference_time`,
//!   `request_time_per_output_token` = decode time / (tokens − 1), the token-count
//!   histograms) and `vllm:request_success_total{finished_reason}` when the request
//!   finishes: `length`, `stop`, or `abort` for a stream cut by `--cut-rate` (a server-side
//!   abort: observed like any finished request);
//! - a client that disconnects is not counted as finished (the real server's
//!   `request_success_total{finished_reason="abort"}` and e2e count did not move either);
//! - an error injected by `--error-rate` never reaches the engine: only
//!   `http_requests_total{status="5xx"}` moves.
//!
//! Not simulated (absent): prefix/multimodal cache counters, `iteration_tokens_total`,
//! `cache_config_info`, the `*_created` series and the Python process metrics.

mod histogram;
mod lora;
mod render;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

pub(crate) use histogram::{
    Histogram, ITL_BUCKETS, PARAMS_N_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS, one_two_five,
};
pub(crate) use lora::{LoraEvent, LoraTracker};

/// Why a request finished: the `finished_reason` label (vLLM's `FinishReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop condition (EOS) was met.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// Aborted (here: a stream cut by `--cut-rate`).
    Abort,
    /// Engine error (never produced by the simulator, pre-created at 0).
    Error,
    /// Repetition detected (never produced by the simulator, pre-created at 0).
    Repetition,
}

impl FinishReason {
    /// All five, in the order vLLM exposes them.
    pub const ALL: [FinishReason; 5] = [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::Abort,
        FinishReason::Error,
        FinishReason::Repetition,
    ];

    /// The label value (`"stop"`, `"length"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
            FinishReason::Repetition => "repetition",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The HTTP routes counted in `http_requests_total` (like prometheus-fastapi-instrumentator,
/// `/metrics` and `/health` are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Models,
    Completions,
    Chat,
}

impl Handler {
    const ALL: [Handler; 3] = [Handler::Models, Handler::Completions, Handler::Chat];

    fn path(self) -> &'static str {
        match self {
            Handler::Models => "/v1/models",
            Handler::Completions => "/v1/completions",
            Handler::Chat => "/v1/chat/completions",
        }
    }

    fn method(self) -> &'static str {
        match self {
            Handler::Models => "GET",
            Handler::Completions | Handler::Chat => "POST",
        }
    }
}

/// Status classes counted per handler.
const STATUS_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

/// Per-request latency and size histograms.
#[derive(Debug)]
pub(crate) struct Histograms {
    pub(crate) ttft: Histogram,
    pub(crate) itl: Histogram,
    pub(crate) tpot: Histogram,
    pub(crate) e2e: Histogram,
    pub(crate) queue: Histogram,
    pub(crate) inference: Histogram,
    pub(crate) prefill: Histogram,
    pub(crate) decode: Histogram,
    pub(crate) prompt_tokens: Histogram,
    pub(crate) generation_tokens: Histogram,
    pub(crate) max_num_generation_tokens: Histogram,
    pub(crate) params_n: Histogram,
    pub(crate) params_max_tokens: Histogram,
}

/// What a finished request reports (all durations in seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FinishedRequest {
    pub(crate) reason: FinishReason,
    pub(crate) e2e: f64,
    pub(crate) queue: f64,
    pub(crate) prefill: f64,
    pub(crate) decode: f64,
    pub(crate) prompt_tokens: u32,
    pub(crate) generation_tokens: u32,
    pub(crate) max_tokens: u32,
}

/// All metric state of one simulator.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// `model_name="..."`, escaped.
    model_label: String,
    max_num_seqs: usize,
    kv_capacity: u64,
    max_loras: u32,
    gpu_util: bool,
    /// `process_start_time_seconds`: when this simulator (process) started, unix seconds.
    started_unix: f64,
    pub(crate) running: AtomicI64,
    pub(crate) waiting: AtomicI64,
    pub(crate) kv_tokens: AtomicI64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success: [AtomicU64; 5],
    http: [[AtomicU64; 3]; 3],
    pub(crate) hist: Histograms,
    pub(crate) lora: LoraTracker,
}

/// Static settings the metrics need.
#[derive(Debug, Clone)]
pub(crate) struct MetricsSettings {
    pub(crate) model_name: String,
    pub(crate) adapters: Vec<String>,
    pub(crate) max_model_len: u32,
    pub(crate) max_num_seqs: usize,
    pub(crate) kv_capacity: u64,
    pub(crate) max_loras: u32,
    pub(crate) gpu_util: bool,
}

impl Metrics {
    pub(crate) fn new(s: MetricsSettings) -> Self {
        let tokens = one_two_five(s.max_model_len);
        Self {
            model_label: format!("model_name=\"{}\"", render::escape_label(&s.model_name)),
            max_num_seqs: s.max_num_seqs,
            kv_capacity: s.kv_capacity,
            max_loras: s.max_loras,
            gpu_util: s.gpu_util,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0),
            running: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            kv_tokens: AtomicI64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: Default::default(),
            http: Default::default(),
            hist: Histograms {
                ttft: Histogram::new(TTFT_BUCKETS),
                itl: Histogram::new(ITL_BUCKETS),
                tpot: Histogram::new(ITL_BUCKETS),
                e2e: Histogram::new(REQUEST_LATENCY_BUCKETS),
                queue: Histogram::new(REQUEST_LATENCY_BUCKETS),
                inference: Histogram::new(REQUEST_LATENCY_BUCKETS),
                prefill: Histogram::new(REQUEST_LATENCY_BUCKETS),
                decode: Histogram::new(REQUEST_LATENCY_BUCKETS),
                prompt_tokens: Histogram::new(&tokens),
                generation_tokens: Histogram::new(&tokens),
                max_num_generation_tokens: Histogram::new(&tokens),
                params_n: Histogram::new(PARAMS_N_BUCKETS),
                params_max_tokens: Histogram::new(&tokens),
            },
            lora: LoraTracker::new(s.adapters),
        }
    }

    /// The first token of a request: TTFT (seconds since arrival) and its prompt tokens.
    pub(crate) fn first_token(&self, ttft: f64, prompt_tokens: u32) {
        self.hist.ttft.observe(ttft);
        self.prompt_tokens
            .fetch_add(u64::from(prompt_tokens), Relaxed);
        self.generation_tokens.fetch_add(1, Relaxed);
    }

    /// A further token, `gap` seconds after the previous one.
    pub(crate) fn next_token(&self, gap: f64) {
        self.hist.itl.observe(gap);
        self.generation_tokens.fetch_add(1, Relaxed);
    }

    /// A request left the engine (finished, stopped, or cut by the server).
    pub(crate) fn finished(&self, r: &FinishedRequest) {
        let h = &self.hist;
        h.e2e.observe(r.e2e);
        h.queue.observe(r.queue);
        h.prefill.observe(r.prefill);
        h.decode.observe(r.decode);
        h.inference.observe(r.prefill + r.decode);
        let tpot = if r.generation_tokens > 1 {
            r.decode / f64::from(r.generation_tokens - 1)
        } else {
            0.0
        };
        h.tpot.observe(tpot);
        h.prompt_tokens.observe(f64::from(r.prompt_tokens));
        h.generation_tokens.observe(f64::from(r.generation_tokens));
        h.max_num_generation_tokens.observe(f64::from(r.max_tokens));
        h.params_n.observe(1.0);
        h.params_max_tokens.observe(f64::from(r.max_tokens));
        self.success[r.reason.index()].fetch_add(1, Relaxed);
    }

    /// One HTTP response of `handler` with `status`.
    pub(crate) fn http(&self, handler: Handler, status: u16) {
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => return,
        };
        self.http[handler as usize][class].fetch_add(1, Relaxed);
    }

    /// `vllm:request_success_total{finished_reason}` right now.
    pub(crate) fn success(&self, reason: FinishReason) -> u64 {
        self.success[reason.index()].load(Relaxed)
    }

    /// The exposition text, Prometheus format 0.0.4.
    pub(crate) fn render(&self) -> String {
        render::render(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MetricsSettings {
        MetricsSettings {
            model_name: "tiny-base".into(),
            adapters: vec!["candidate".into()],
            max_model_len: 1024,
            max_num_seqs: 4,
            kv_capacity: 100,
            max_loras: 1,
            gpu_util: false,
        }
    }

    #[test]
    fn finished_request_moves_its_reason_and_tpot() {
        let m = Metrics::new(settings());
        m.finished(&FinishedRequest {
            reason: FinishReason::Length,
            e2e: 1.0,
            queue: 0.1,
            prefill: 0.2,
            decode: 0.6,
            prompt_tokens: 5,
            generation_tokens: 4,
            max_tokens: 4,
        });
        assert_eq!(m.success(FinishReason::Length), 1);
        assert_eq!(m.success(FinishReason::Stop), 0);
        assert!((m.hist.tpot.sum() - 0.2).abs() < 1e-9);
        assert!((m.hist.inference.sum() - 0.8).abs() < 1e-9);
    }
}
