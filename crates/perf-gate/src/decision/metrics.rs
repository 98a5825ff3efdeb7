//! From `load_test_results.json` to the decision's named metrics.
//!
//! | metric | from the results (server source) | client figure (`client_` prefix) |
//! | --- | --- | --- |
//! | `p50/p95/p99_latency_s` | `server.e2e_latency_s.{p50,p95,p99}` | `client.e2e_adjusted_s.{p50,p95,p99}` |
//! | `p50/p95/p99_ttft_s` | `server.ttft_s.{p50,p95,p99}` | `client.ttft_adjusted_s.{p50,p95,p99}` |
//! | `throughput_rps` | `server.throughput_rps` | `client.requests_per_s` |
//! | `client_success_rate` | | `client.success_rate` (check 4, always) |
//! | `kv_cache_usage` | `server.kv_cache_usage_max` | |
//! | `gpu_utilization` | `server.gpu_utilization_avg` | |
//! | `wall_clock_duration_s` | `timing.wall_clock_duration_s` | |
//!
//! Both sources are always recorded: the unprefixed names hold the server's figures (the seed's
//! names and source), the `client_` names the client's. `--metrics-source` only picks which of
//! the two feeds checks 1–3 ([`CheckKeys`]). The client's percentiles are the error-adjusted
//! ones (each failure counts as +Inf, so failing fast never improves a P95; a percentile that
//! lands on a failure is "no data" and fails its check); a baseline is read under the same names, so a
//! comparison is always like for like. A figure that is absent or `null` is kept as "no data"
//! with a reason, and fails the check that needs it; so is a figure that cannot be true (a
//! negative latency, a success rate that disagrees with its counts: [`sanity`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::results::{AdjustedPercentiles, Latency, LoadTestResults, Measured, ServerQuantiles};

pub mod sanity;

/// Named metrics, each a value or "no data" with a reason.
pub type MetricMap = BTreeMap<String, Measured>;

/// Metric names (also the MLflow metric keys).
pub mod names {
    /// P50 E2E latency, seconds.
    pub const P50_LATENCY: &str = "p50_latency_s";
    /// P95 E2E latency, seconds (check 1).
    pub const P95_LATENCY: &str = "p95_latency_s";
    /// P99 E2E latency, seconds.
    pub const P99_LATENCY: &str = "p99_latency_s";
    /// P50 time to first token, seconds.
    pub const P50_TTFT: &str = "p50_ttft_s";
    /// P95 time to first token, seconds (check 2).
    pub const P95_TTFT: &str = "p95_ttft_s";
    /// P99 time to first token, seconds.
    pub const P99_TTFT: &str = "p99_ttft_s";
    /// Requests per second (check 3).
    pub const THROUGHPUT: &str = "throughput_rps";
    /// Client success rate, fraction (check 4).
    pub const CLIENT_SUCCESS_RATE: &str = "client_success_rate";
    /// Peak KV-cache usage, fraction.
    pub const KV_CACHE_USAGE: &str = "kv_cache_usage";
    /// Mean GPU utilisation, percent.
    pub const GPU_UTILIZATION: &str = "gpu_utilization";
    /// Wall-clock duration of the load-test step, seconds.
    pub const WALL_CLOCK: &str = "wall_clock_duration_s";
    /// Prefix of the client-side twins of the server figures.
    pub const CLIENT_PREFIX: &str = "client_";
    /// Prefix of the baseline figures logged beside the candidate's in comparative mode.
    pub const BASELINE_PREFIX: &str = "baseline_";
}

/// Which figures feed checks 1–3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricsSource {
    /// vLLM's own histograms via Prometheus or `/metrics` (the seed's choice; default).
    #[default]
    Server,
    /// The load tester's exact per-request figures.
    Client,
}

impl MetricsSource {
    /// `server` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsSource::Server => "server",
            MetricsSource::Client => "client",
        }
    }
}

/// The metric name each check reads, for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckKeys {
    /// Check 1.
    pub p95_latency: String,
    /// Check 2.
    pub p95_ttft: String,
    /// Check 3.
    pub throughput: String,
    /// Check 4 (always the client's success rate).
    pub success_rate: String,
}

impl CheckKeys {
    /// Names for `source`: `p95_latency_s`, or `client_p95_latency_s` with the client source.
    pub fn for_source(source: MetricsSource) -> Self {
        let prefix = match source {
            MetricsSource::Server => "",
            MetricsSource::Client => names::CLIENT_PREFIX,
        };
        CheckKeys {
            p95_latency: format!("{prefix}{}", names::P95_LATENCY),
            p95_ttft: format!("{prefix}{}", names::P95_TTFT),
            throughput: format!("{prefix}{}", names::THROUGHPUT),
            success_rate: names::CLIENT_SUCCESS_RATE.to_string(),
        }
    }
}

fn server_quantiles(
    out: &mut MetricMap,
    q: Option<&ServerQuantiles>,
    what: &str,
    keys: [&str; 3],
    absent: &str,
) {
    for (key, pick) in keys.into_iter().zip([0usize, 1, 2]) {
        let m = match q {
            Some(q) => {
                let m = [&q.p50, &q.p95, &q.p99][pick];
                with_context(m, &format!("server {what}"))
            }
            None => Measured::missing(absent),
        };
        out.insert(key.to_string(), m);
    }
}

/// The client's error-adjusted percentiles: every failed request counts as +Inf, so failing
/// fast never improves a percentile; a percentile that lands on a failure is "no data" (it
/// fails its check) with the share of failures as the reason.
fn client_quantiles(
    out: &mut MetricMap,
    d: Option<&AdjustedPercentiles>,
    what: &str,
    keys: [&str; 3],
    absent: &str,
) {
    for ((key, pick), q) in keys.into_iter().zip([0usize, 1, 2]).zip([50, 95, 99]) {
        let m = match d {
            Some(d) => match [d.p50, d.p95, d.p99][pick] {
                Some(Latency::Finite(v)) => Measured::value(v),
                Some(Latency::Inf) => Measured::missing(format!(
                    "client {what} P{q} counts each failed request as +Inf: more than {}% of the {} requests failed",
                    100 - q,
                    d.count
                )),
                None => {
                    Measured::missing(format!("client {what} has no samples (count {})", d.count))
                }
            },
            None => Measured::missing(absent),
        };
        out.insert(format!("{}{key}", names::CLIENT_PREFIX), m);
    }
}

/// A present value stays; a missing one gets `context` in front of its reason.
fn with_context(m: &Measured, context: &str) -> Measured {
    match m.get() {
        Some(v) => Measured::value(v),
        None => Measured::missing(format!(
            "{context}: {}",
            m.reason.as_deref().unwrap_or("no data")
        )),
    }
}

/// Every decision metric of a results document (see the module table), after the plausibility
/// checks of [`sanity::check_candidate`].
pub fn candidate_metrics(results: &LoadTestResults) -> MetricMap {
    use names::*;
    let mut out = MetricMap::new();
    let server = results.server.as_ref();
    let no_server = "the results have no server section (server figures were not collected)";
    server_quantiles(
        &mut out,
        server.map(|s| &s.e2e_latency_s),
        "e2e_latency_s",
        [P50_LATENCY, P95_LATENCY, P99_LATENCY],
        no_server,
    );
    server_quantiles(
        &mut out,
        server.map(|s| &s.ttft_s),
        "ttft_s",
        [P50_TTFT, P95_TTFT, P99_TTFT],
        no_server,
    );
    let server_single =
        |pick: fn(&crate::results::ServerMetrics) -> &Measured, what: &str| match server {
            Some(s) => with_context(pick(s), &format!("server {what}")),
            None => Measured::missing(no_server),
        };
    out.insert(
        THROUGHPUT.into(),
        server_single(|s| &s.throughput_rps, "throughput_rps"),
    );
    out.insert(
        KV_CACHE_USAGE.into(),
        server_single(|s| &s.kv_cache_usage_max, "kv_cache_usage_max"),
    );
    out.insert(
        GPU_UTILIZATION.into(),
        server_single(|s| &s.gpu_utilization_avg, "gpu_utilization_avg"),
    );

    let client = results.client.as_ref();
    let no_client = "the results have no client section (the load never ran)";
    client_quantiles(
        &mut out,
        client.map(|c| &c.e2e_adjusted_s),
        "e2e_adjusted_s",
        [P50_LATENCY, P95_LATENCY, P99_LATENCY],
        no_client,
    );
    client_quantiles(
        &mut out,
        client.map(|c| &c.ttft_adjusted_s),
        "ttft_adjusted_s",
        [P50_TTFT, P95_TTFT, P99_TTFT],
        no_client,
    );
    let client_single = |v: Option<Option<f64>>, what: &str| match v {
        Some(v) => Measured::from_option(v, format!("client {what} is null (nothing was sent)")),
        None => Measured::missing(no_client),
    };
    out.insert(
        format!("{CLIENT_PREFIX}{THROUGHPUT}"),
        client_single(client.map(|c| c.requests_per_s), "requests_per_s"),
    );
    out.insert(
        CLIENT_SUCCESS_RATE.into(),
        client_single(client.map(|c| c.success_rate), "success_rate"),
    );
    out.insert(
        WALL_CLOCK.into(),
        match &results.timing {
            Some(t) => Measured::value(t.wall_clock_duration_s),
            None => Measured::missing("the results have no timing section"),
        },
    );
    sanity::check_candidate(&mut out, results);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn maps_server_and_client_figures_under_their_names() {
        let m = candidate_metrics(&fixtures::results());
        let v = |k: &str| m.get(k).unwrap_or_else(|| panic!("{k} missing")).get();
        assert_eq!(v("p50_latency_s"), Some(3.0));
        assert_eq!(v("p95_latency_s"), Some(4.0));
        assert_eq!(v("p99_latency_s"), Some(4.4));
        assert_eq!(v("p95_ttft_s"), Some(0.5));
        assert_eq!(v("throughput_rps"), Some(5.0));
        assert_eq!(v("client_p95_latency_s"), Some(4.2));
        assert_eq!(v("client_p95_ttft_s"), Some(0.525));
        assert_eq!(v("client_throughput_rps"), Some(5.0));
        assert_eq!(v("client_success_rate"), Some(1.0));
        assert_eq!(v("kv_cache_usage"), Some(0.25));
        assert_eq!(v("wall_clock_duration_s"), Some(52.5));
        let gpu = &m["gpu_utilization"];
        assert_eq!(gpu.get(), None);
        assert_eq!(
            gpu.reason.as_deref(),
            Some("server gpu_utilization_avg: no DCGM series matched {gpu=\"0\"}")
        );
        assert_eq!(m.len(), 18);
    }

    #[test]
    fn absent_sections_become_reasons() {
        let mut r = fixtures::results();
        r.server = None;
        r.client.as_mut().unwrap().success_rate = None;
        r.client.as_mut().unwrap().e2e_adjusted_s.p95 = None;
        let m = candidate_metrics(&r);
        assert!(
            m["p95_latency_s"]
                .reason
                .as_deref()
                .unwrap()
                .contains("no server section")
        );
        assert!(m["throughput_rps"].get().is_none());
        assert!(
            m["client_success_rate"]
                .reason
                .as_deref()
                .unwrap()
                .contains("success_rate is null")
        );
        assert!(
            m["client_p95_latency_s"]
                .reason
                .as_deref()
                .unwrap()
                .contains("no samples")
        );
        assert_eq!(m["client_p95_ttft_s"].get(), Some(0.525));
    }

    #[test]
    fn the_client_s_percentiles_count_failures_as_infinitely_slow() {
        // 10 of 100 requests failed: the P95 lands on a failure, the P50 does not
        let r = fixtures::results_with(
            fixtures::Figures {
                success_rate: 0.9,
                ..fixtures::GOOD
            },
            "a",
        );
        let m = candidate_metrics(&r);
        assert_eq!(m["client_p95_latency_s"].get(), None);
        assert!(
            m["client_p95_latency_s"]
                .reason
                .as_deref()
                .unwrap()
                .contains(
                    "counts each failed request as +Inf: more than 5% of the 100 requests failed"
                )
        );
        assert!(m["client_p50_latency_s"].get().is_some());
        // the server's figures are not the client's to judge
        assert_eq!(m["p95_latency_s"].get(), Some(4.0));
    }

    #[test]
    fn check_keys_follow_the_source() {
        let s = CheckKeys::for_source(MetricsSource::Server);
        assert_eq!(
            (
                s.p95_latency.as_str(),
                s.p95_ttft.as_str(),
                s.throughput.as_str(),
                s.success_rate.as_str()
            ),
            (
                "p95_latency_s",
                "p95_ttft_s",
                "throughput_rps",
                "client_success_rate"
            )
        );
        let c = CheckKeys::for_source(MetricsSource::Client);
        assert_eq!(c.p95_latency, "client_p95_latency_s");
        assert_eq!(c.throughput, "client_throughput_rps");
        assert_eq!(c.success_rate, "client_success_rate");
    }
}
