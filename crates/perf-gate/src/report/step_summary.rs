//! `step_summary.json`: one flat object per step of the run (seed 001's per-step summary), for
//! a reader that wants each step's load, throughput, latency percentiles, errors and server
//! figures without walking the results document. Latencies in seconds; a figure that is
//! missing is `null`, never 0.

use std::collections::BTreeMap;

use serde::Serialize;

use super::steps::{StepView, steps};
use crate::results::{Distribution, LoadTestResults, Measured, ServerMetrics};

/// Version of the `step_summary.json` layout (bumped on any field change).
pub const STEP_SUMMARY_VERSION: u32 = 1;

/// The whole `step_summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSummary {
    /// [`STEP_SUMMARY_VERSION`].
    pub version: u32,
    /// `completed`, `failed` or `aborted` (the figures cover what ran).
    pub status: String,
    /// The adapter under test.
    pub adapter: String,
    /// The steps, in the order run (one for a run of one load).
    pub steps: Vec<StepLine>,
}

/// One step, flattened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLine {
    /// 0-based position in the sweep.
    pub index: u32,
    /// Requests in flight (closed loop); `null` for an open-loop step.
    pub concurrency: Option<u32>,
    /// Requests per second asked for (open loop); `null` for a closed-loop step.
    pub rate: Option<f64>,
    /// First request sent (RFC 3339).
    pub load_start: Option<String>,
    /// Last request finished (RFC 3339).
    pub load_end: Option<String>,
    /// Measured duration, seconds.
    pub duration_s: Option<f64>,
    /// Requests sent.
    pub requests: Option<u64>,
    /// Requests that succeeded.
    pub successful: Option<u64>,
    /// Requests that failed.
    pub failed: Option<u64>,
    /// `failed / requests`.
    pub error_rate: Option<f64>,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub rps: Option<f64>,
    /// Output tokens per second (`null` when some responses carried no usage).
    pub output_tokens_per_s: Option<f64>,
    /// Time to first token, seconds.
    pub ttft_s: Percentiles,
    /// Inter-token latency, seconds.
    pub itl_s: Percentiles,
    /// End-to-end latency, seconds.
    pub e2e_s: Percentiles,
    /// Time per output token, seconds.
    pub tpot_s: Percentiles,
    /// Server figures over the step's window; `null` when none were collected.
    pub server: Option<ServerLine>,
    /// Why the server figures are absent or mixed with another step's, if they are.
    pub server_note: Option<String>,
}

/// A client distribution's summary, seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl From<&Distribution> for Percentiles {
    fn from(d: &Distribution) -> Self {
        Percentiles {
            p50: d.p50,
            p90: d.p90,
            p95: d.p95,
            p99: d.p99,
            mean: d.mean,
            max: d.max,
        }
    }
}

/// The server's figures for one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerLine {
    /// `prometheus` or `vllm_metrics`.
    pub source: String,
    /// TTFT median, seconds.
    pub ttft_p50_s: Option<f64>,
    /// TTFT 95th percentile, seconds.
    pub ttft_p95_s: Option<f64>,
    /// TTFT 99th percentile, seconds.
    pub ttft_p99_s: Option<f64>,
    /// E2E median, seconds.
    pub e2e_p50_s: Option<f64>,
    /// E2E 95th percentile, seconds.
    pub e2e_p95_s: Option<f64>,
    /// E2E 99th percentile, seconds.
    pub e2e_p99_s: Option<f64>,
    /// Requests finished per second.
    pub throughput_rps: Option<f64>,
    /// Generated tokens per second.
    pub generation_tokens_per_s: Option<f64>,
    /// Peak KV-cache usage (fraction 0..1).
    pub kv_cache_usage_max: Option<f64>,
    /// Mean KV-cache usage (fraction 0..1).
    pub kv_cache_usage_avg: Option<f64>,
    /// Mean GPU utilisation (percent).
    pub gpu_utilization_avg: Option<f64>,
    /// Peak GPU utilisation (percent).
    pub gpu_utilization_max: Option<f64>,
}

impl From<&ServerMetrics> for ServerLine {
    fn from(s: &ServerMetrics) -> Self {
        let v = Measured::get;
        ServerLine {
            source: s.source.as_str().to_string(),
            ttft_p50_s: v(&s.ttft_s.p50),
            ttft_p95_s: v(&s.ttft_s.p95),
            ttft_p99_s: v(&s.ttft_s.p99),
            e2e_p50_s: v(&s.e2e_latency_s.p50),
            e2e_p95_s: v(&s.e2e_latency_s.p95),
            e2e_p99_s: v(&s.e2e_latency_s.p99),
            throughput_rps: v(&s.throughput_rps),
            generation_tokens_per_s: v(&s.generation_tokens_per_s),
            kv_cache_usage_max: v(&s.kv_cache_usage_max),
            kv_cache_usage_avg: v(&s.kv_cache_usage_avg),
            gpu_utilization_avg: v(&s.gpu_utilization_avg),
            gpu_utilization_max: v(&s.gpu_utilization_max),
        }
    }
}

impl StepSummary {
    /// Takes every known secret out of its texts ([`crate::secrets::scrub_string`]): the
    /// results were scrubbed, unless the scrubbed text no longer fitted their type.
    pub fn scrub(&mut self) {
        use crate::secrets::scrub_string;
        scrub_string(&mut self.adapter);
        for l in &mut self.steps {
            for text in [&mut l.load_start, &mut l.load_end, &mut l.server_note]
                .into_iter()
                .flatten()
            {
                scrub_string(text);
            }
            l.errors_by_kind = std::mem::take(&mut l.errors_by_kind)
                .into_iter()
                .map(|(mut k, n)| {
                    scrub_string(&mut k);
                    (k, n)
                })
                .collect();
        }
    }
}

fn line(s: &StepView<'_>) -> StepLine {
    let c = s.client;
    let dist = |pick: fn(&crate::results::ClientMetrics) -> &Distribution| {
        c.map(|c| Percentiles::from(pick(c))).unwrap_or_default()
    };
    StepLine {
        index: s.index,
        concurrency: s.concurrency,
        rate: s.rate,
        load_start: s.load_start.map(str::to_string),
        load_end: s.load_end.map(str::to_string),
        duration_s: s.duration_s,
        requests: c.map(|c| c.total_requests),
        successful: c.map(|c| c.successful_requests),
        failed: c.map(|c| c.failed_requests),
        error_rate: c
            .filter(|c| c.total_requests > 0)
            .map(|c| c.failed_requests as f64 / c.total_requests as f64),
        errors_by_kind: c.map(|c| c.errors_by_kind.clone()).unwrap_or_default(),
        rps: c.and_then(|c| c.requests_per_s),
        output_tokens_per_s: c.and_then(|c| c.output_tokens_per_s),
        ttft_s: dist(|c| &c.ttft_s),
        itl_s: dist(|c| &c.itl_s),
        e2e_s: dist(|c| &c.e2e_s),
        tpot_s: dist(|c| &c.tpot_s),
        server: s.server.map(ServerLine::from),
        server_note: s.server_note.map(str::to_string),
    }
}

/// `step_summary.json` for `results` (see [`super::step_summary`]).
pub(crate) fn render(results: &LoadTestResults) -> StepSummary {
    StepSummary {
        version: STEP_SUMMARY_VERSION,
        status: results.status.as_str().to_string(),
        adapter: results.measured().into_owned(),
        steps: steps(results).iter().map(line).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn a_run_of_one_load_is_one_step_from_the_top_level_figures() {
        let r = fixtures::results();
        let v = serde_json::to_value(render(&r)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["status"], "completed");
        assert_eq!(v["adapter"], fixtures::ADAPTER);
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1);
        let s = &steps[0];
        assert_eq!(s["index"], 0);
        assert_eq!(s["concurrency"], 10);
        assert_eq!(s["rate"], serde_json::Value::Null);
        assert_eq!(s["requests"], 100);
        assert_eq!(s["failed"], 0);
        assert_eq!(s["error_rate"], 0.0);
        assert_eq!(s["duration_s"], 20.0);
        assert_eq!(s["rps"], 5.0);
        // seconds, as in the results: the client's P95 TTFT is 5 % above the server's 0.5 s
        assert!((s["ttft_s"]["p95"].as_f64().unwrap() - 0.525).abs() < 1e-12);
        assert!((s["e2e_s"]["p99"].as_f64().unwrap() - 4.2 * 1.1).abs() < 1e-12);
        assert_eq!(s["server"]["source"], "prometheus");
        assert_eq!(s["server"]["e2e_p95_s"], 4.0);
        assert_eq!(s["server"]["throughput_rps"], 5.0);
        // missing on the server (no DCGM): null, not 0
        assert_eq!(s["server"]["gpu_utilization_avg"], serde_json::Value::Null);
        assert_eq!(s["server_note"], serde_json::Value::Null);
    }

    #[test]
    fn a_sweep_gives_one_line_per_step_with_its_own_figures() {
        let r = fixtures::two_step_results();
        let v = serde_json::to_value(render(&r)).unwrap();
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0]["concurrency"], 2);
        assert_eq!(steps[1]["concurrency"], 8);
        assert_eq!(steps[1]["index"], 1);
        assert_eq!(steps[0]["requests"], 40);
        assert_eq!(steps[1]["requests"], 60);
        assert_eq!(steps[1]["failed"], 3);
        assert!((steps[1]["error_rate"].as_f64().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(steps[1]["errors_by_kind"]["timeout"], 3);
        // the second step has no server figures, and says why
        assert_eq!(steps[1]["server"], serde_json::Value::Null);
        assert!(
            steps[1]["server_note"]
                .as_str()
                .unwrap()
                .contains("Prometheus")
        );
        assert!(steps[0]["server"].is_object());
    }

    #[test]
    fn a_run_that_never_started_has_a_step_of_nulls() {
        let mut r = fixtures::results();
        r.status = crate::results::RunStatus::Failed;
        r.client = None;
        r.server = None;
        r.timing = None;
        let v = serde_json::to_value(render(&r)).unwrap();
        let s = &v["steps"][0];
        assert_eq!(s["requests"], serde_json::Value::Null);
        assert_eq!(s["ttft_s"]["p50"], serde_json::Value::Null);
        assert_eq!(s["server"], serde_json::Value::Null);
        assert_eq!(v["status"], "failed");
    }
}
