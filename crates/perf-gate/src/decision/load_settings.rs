//! The settings that shape a load, as the candidate's results record them and as MLflow params
//! carry them for a baseline run: the inputs of [`super::comparability`].

use std::collections::BTreeMap;

use super::metrics::MetricsSource;
use crate::mlflow::MAX_DIGEST_LEN;
use crate::results::{LoadTestResults, ServerSource};

/// Load settings by MLflow param name (see the module table); an unrecorded setting is absent.
pub type LoadSettings = BTreeMap<String, String>;

/// Param names of the settings.
pub mod keys {
    /// The eval file's digest (8 hex characters of its sha256).
    pub const EVAL_DATA_DIGEST: &str = "eval_data_digest";
    /// Requests in flight.
    pub const CONCURRENCY: &str = "concurrency";
    /// Max output tokens per request.
    pub const MAX_TOKENS: &str = "max_tokens";
    /// `completions` or `chat`.
    pub const ENDPOINT: &str = "endpoint";
    /// Sampling temperature.
    pub const TEMPERATURE: &str = "temperature";
    /// Open-loop rate, req/s; `none` for the closed loop.
    pub const RATE: &str = "rate";
    /// How the open loop spaced its requests (`--arrival`): `constant`, `poisson`, `gamma:K`.
    pub const ARRIVAL: &str = "arrival";
    /// The open loop's in-flight cap (`--max-inflight`); `none` for the closed loop.
    pub const MAX_INFLIGHT: &str = "max_inflight";
    /// Requests asked for; `none` for each prompt once.
    pub const NUM_REQUESTS: &str = "num_requests";
    /// PromQL window mode; `none` without Prometheus.
    pub const WINDOW_MODE: &str = "window_mode";
    /// Where the server figures came from.
    pub const SERVER_SOURCE: &str = "server_source";
    /// Requests sent before the measurement and left out of it (`--warmup-requests`).
    pub const WARMUP_REQUESTS: &str = "warmup_requests";
    /// Whether the connection pool was opened before the load (`--preconnect`).
    pub const PRECONNECT: &str = "preconnect";
    /// Whether the run was a same-server A/B (`load-test --baseline-adapter`): `true`/`false`.
    pub const AB_INTERLEAVED: &str = "ab_interleaved";
    /// How the load ran over time: `list` (a list of requests: each prompt once, or
    /// `--num-requests`), else `--duration`, `--warmup`/`--cooldown`, `--ramp-up`,
    /// `--stages`, `--steps` and think time, e.g. `duration=60s,warmup=10s,think=1s..3s`.
    pub const LOAD_SHAPE: &str = "load_shape";
    /// `--max-tokens` as a distribution (`none`: a fixed number, `max_tokens`).
    pub const MAX_TOKENS_DIST: &str = "max_tokens_dist";
    /// Whether requests ignored end-of-sequence (`--ignore-eos`): `true`/`false`.
    pub const IGNORE_EOS: &str = "ignore_eos";
    /// The serving API spoken (`load-test --api`): `openai` (vLLM) or `llamacpp`.
    pub const API: &str = "api";
    /// Which figures fed checks 1–3 (noted, not part of comparability).
    pub const METRICS_SOURCE: &str = "metrics_source";

    /// Every setting, in the order they are compared and reported (`metrics_source` last: it
    /// is only noted, see [`super::super::comparability`]).
    pub const ALL: [&str; 19] = [
        EVAL_DATA_DIGEST,
        CONCURRENCY,
        MAX_TOKENS,
        ENDPOINT,
        TEMPERATURE,
        RATE,
        ARRIVAL,
        MAX_INFLIGHT,
        NUM_REQUESTS,
        WINDOW_MODE,
        SERVER_SOURCE,
        WARMUP_REQUESTS,
        PRECONNECT,
        AB_INTERLEAVED,
        LOAD_SHAPE,
        MAX_TOKENS_DIST,
        IGNORE_EOS,
        API,
        METRICS_SOURCE,
    ];
}

/// The word for "not set" in a setting (closed loop, each prompt once, no Prometheus).
pub const NONE: &str = "none";

/// The candidate's settings, from its results (see the module table).
pub fn candidate_settings(results: &LoadTestResults, source: MetricsSource) -> LoadSettings {
    let c = &results.config;
    let mut out = LoadSettings::new();
    let mut put = |k: &str, v: String| {
        out.insert(k.to_string(), v);
    };
    if let Some(e) = results.eval_data.as_ref().filter(|e| !e.digest.is_empty()) {
        put(
            keys::EVAL_DATA_DIGEST,
            e.digest.chars().take(MAX_DIGEST_LEN).collect(),
        );
    }
    put(keys::CONCURRENCY, c.concurrency.to_string());
    put(keys::MAX_TOKENS, c.max_tokens.to_string());
    put(keys::ENDPOINT, c.endpoint.clone());
    put(keys::TEMPERATURE, c.temperature.to_string());
    put(keys::RATE, c.rate.map_or(NONE.into(), |r| r.to_string()));
    put(keys::ARRIVAL, c.arrival.clone());
    put(
        keys::MAX_INFLIGHT,
        max_inflight(c.rate, c.max_inflight, c.concurrency),
    );
    put(
        keys::NUM_REQUESTS,
        c.num_requests.map_or(NONE.into(), |n| n.to_string()),
    );
    if let Some(s) = &results.server {
        let mode = match s.source {
            ServerSource::Prometheus => c.window_mode.as_str(),
            ServerSource::VllmMetrics => NONE,
        };
        put(keys::WINDOW_MODE, mode.into());
        put(keys::SERVER_SOURCE, s.source.as_str().into());
    }
    put(keys::WARMUP_REQUESTS, c.warmup_requests.to_string());
    put(keys::PRECONNECT, c.preconnect.to_string());
    put(
        keys::AB_INTERLEAVED,
        c.baseline_adapter.is_some().to_string(),
    );
    put(keys::LOAD_SHAPE, load_shape(c));
    put(
        keys::MAX_TOKENS_DIST,
        c.max_tokens_dist.clone().unwrap_or_else(|| NONE.into()),
    );
    put(keys::IGNORE_EOS, c.ignore_eos.to_string());
    put(keys::API, c.api.as_str().into());
    put(keys::METRICS_SOURCE, source.as_str().into());
    out
}

/// The `load_shape` setting of a run's config (see [`keys::LOAD_SHAPE`]): `list`, or the
/// timed-load settings that were given, in a fixed order.
pub fn load_shape(c: &crate::results::RunConfig) -> String {
    let secs = |v: f64| format!("{v}s");
    let mut parts = Vec::new();
    if let Some(d) = c
        .duration_s
        .filter(|_| c.stages.is_none() && c.steps.is_none())
    {
        parts.push(format!("duration={}", secs(d)));
    }
    if let Some(levels) = &c.steps {
        let levels: Vec<String> = levels.iter().map(ToString::to_string).collect();
        parts.push(format!("steps={}", levels.join("/")));
        if let Some(d) = c.step_duration_s {
            parts.push(format!("step_duration={}", secs(d)));
        }
    }
    if let Some(s) = &c.stages {
        parts.push(format!("stages={}", s.replace(',', "/")));
    }
    if c.warmup_s > 0.0 {
        parts.push(format!("warmup={}", secs(c.warmup_s)));
    }
    if c.cooldown_s > 0.0 {
        parts.push(format!("cooldown={}", secs(c.cooldown_s)));
    }
    if let Some(r) = c.ramp_up_s {
        parts.push(format!("ramp_up={}", secs(r)));
    }
    if let Some(t) = &c.think {
        parts.push(format!("think={}", t.replace(',', "/")));
    }
    if parts.is_empty() {
        "list".into()
    } else {
        parts.join(",")
    }
}

/// The `max_inflight` setting: `none` for a closed loop; for an open loop the cap, and for
/// results written before `--max-inflight` existed (no field) their `concurrency`, the cap then.
pub fn max_inflight(rate: Option<f64>, max_inflight: Option<u32>, concurrency: u32) -> String {
    match (rate, max_inflight) {
        (None, _) => NONE.into(),
        (Some(_), Some(n)) => n.to_string(),
        (Some(_), None) => concurrency.to_string(),
    }
}
