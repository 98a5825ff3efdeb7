//! The PromQL of every server-side figure, built from the settings and the window.
//!
//! Rules (DESIGN.md): every vLLM query carries `job="<job>"`; histograms are aggregated with
//! `sum by (le)` *before* `histogram_quantile`; ranges are integer seconds (`[93s]`; `[1.5s]` is
//! a PromQL parse error); gauges use `max_over_time` / `avg_over_time` over the window; GPU
//! series use `--gpu-selector` alone (DCGM is scraped by another job, so no vLLM `job` label).
//!
//! Counters (requests finished, generated tokens) are read as the exact difference
//! `sum(c) - sum(c offset W)`: the counter at `T` minus the counter at `T − W` (before the load),
//! with no extrapolation. `increase(c[W])` extrapolates to the window's edges from the first and
//! last sample inside it, which inflates a flat-edged count by up to two scrape intervals over W
//! (≈ 10 % for a 20 s window at a 1 s scrape); the gate needs the count itself. A restart inside
//! the window (counter reset) is detected with `resets(c[W])` and makes the figure missing.

use std::fmt::Write as _;

use super::window::{PromSettings, WindowPlan};

/// vLLM's end-to-end request latency histogram.
pub const E2E_LATENCY: &str = "vllm:e2e_request_latency_seconds";
/// vLLM's time-to-first-token histogram.
pub const TTFT: &str = "vllm:time_to_first_token_seconds";
/// vLLM's inter-token latency histogram (0.11+).
pub const ITL: &str = "vllm:inter_token_latency_seconds";
/// The older name of [`ITL`] (removed in newer vLLM).
pub const ITL_OLD: &str = "vllm:time_per_output_token_seconds";
/// Finished requests by `finished_reason` (counter, exposition name).
pub const REQUEST_SUCCESS: &str = "vllm:request_success_total";
/// Generated tokens (counter, exposition name).
pub const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";
/// KV-cache usage, fraction 0..1 (0.9.2+).
pub const KV_CACHE: &str = "vllm:kv_cache_usage_perc";
/// The older name of [`KV_CACHE`].
pub const KV_CACHE_OLD: &str = "vllm:gpu_cache_usage_perc";
/// DCGM exporter GPU utilisation, percent 0..100.
pub const GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
/// Finish reasons counted as a completed request.
pub const FINISHED_OK: &str = "stop|length";

/// A quantile of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    /// 0.5
    P50,
    /// 0.95
    P95,
    /// 0.99
    P99,
}

impl Quantile {
    /// All three, in order.
    pub const ALL: [Quantile; 3] = [Quantile::P50, Quantile::P95, Quantile::P99];

    /// φ as a number.
    pub fn phi(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P95 => 0.95,
            Quantile::P99 => 0.99,
        }
    }

    /// `p50`, `p95`, `p99`.
    pub fn label(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }
}

/// A latency histogram the gate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// [`E2E_LATENCY`].
    E2e,
    /// [`TTFT`].
    Ttft,
    /// [`ITL`] (alias [`ITL_OLD`]).
    Itl,
}

impl Latency {
    /// Prefix of the figure names (`e2e_latency`, `ttft`, `itl`).
    pub fn label(self) -> &'static str {
        match self {
            Latency::E2e => "e2e_latency",
            Latency::Ttft => "ttft",
            Latency::Itl => "itl",
        }
    }

    /// Metric (family) name, then its alias if vLLM renamed it.
    pub fn metric_names(self) -> (&'static str, Option<&'static str>) {
        match self {
            Latency::E2e => (E2E_LATENCY, None),
            Latency::Ttft => (TTFT, None),
            Latency::Itl => (ITL, Some(ITL_OLD)),
        }
    }
}

/// Which field of `ServerMetrics` a query feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// A latency quantile.
    Quantile(Latency, Quantile),
    /// Requests finished with `stop|length` in the window (exact counter difference).
    RequestsFinished,
    /// Counter resets of the finished-requests counter in the window (restart check).
    RequestsFinishedResets,
    /// Generated tokens in the window (exact counter difference).
    GenerationTokens,
    /// Counter resets of the generated-tokens counter (restart check).
    GenerationTokensResets,
    /// Peak KV-cache usage.
    KvCacheMax,
    /// Mean KV-cache usage.
    KvCacheAvg,
    /// Mean GPU utilisation.
    GpuUtilAvg,
    /// Peak GPU utilisation.
    GpuUtilMax,
}

/// The same query over a renamed metric, tried when the primary query matches no series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasQuery {
    /// The alias metric name.
    pub metric: String,
    /// The PromQL over the alias.
    pub promql: String,
}

/// One query to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    /// Figure name as recorded (e.g. `e2e_latency_p95`).
    pub name: String,
    /// The PromQL text.
    pub promql: String,
    /// What it computes.
    pub figure: Figure,
    /// The metric (family) name queried.
    pub metric: String,
    /// Fallback over a renamed metric.
    pub alias: Option<AliasQuery>,
    /// The series selector, for "no series matched" reasons.
    pub selector: String,
}

/// A PromQL string literal (double-quoted, `\` and `"` escaped).
pub(crate) fn promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `--gpu-selector` with braces: `gpu="0"` -> `{gpu="0"}`, empty -> empty.
pub(crate) fn normalize_selector(raw: &str) -> String {
    let s = raw.trim();
    if s.is_empty() || s == "{}" {
        String::new()
    } else if s.starts_with('{') {
        s.to_string()
    } else {
        format!("{{{s}}}")
    }
}

/// Every query of a run, in the order they are sent and recorded.
pub fn build_queries(settings: &PromSettings, plan: &WindowPlan) -> Vec<NamedQuery> {
    let w = format!("{}s", plan.range_s);
    let job = format!("job={}", promql_string(&settings.job));
    let sel = format!("{{{job}}}");
    let finished_sel = format!("{{{job},finished_reason=~{}}}", promql_string(FINISHED_OK));
    let gpu_sel = normalize_selector(&settings.gpu_selector);
    let mut out = Vec::new();

    for lat in [Latency::E2e, Latency::Ttft, Latency::Itl] {
        let (metric, alias) = lat.metric_names();
        for q in Quantile::ALL {
            let promql = |m: &str| {
                format!(
                    "histogram_quantile({}, sum by (le) (rate({m}_bucket{sel}[{w}])))",
                    q.phi()
                )
            };
            out.push(NamedQuery {
                name: format!("{}_{}", lat.label(), q.label()),
                promql: promql(metric),
                figure: Figure::Quantile(lat, q),
                metric: metric.to_string(),
                alias: alias.map(|a| AliasQuery {
                    metric: a.to_string(),
                    promql: promql(a),
                }),
                selector: format!("{metric}_bucket{sel}"),
            });
        }
    }

    let counter = |name: &str, figure, resets_name: &str, resets_figure, metric: &str, s: &str| {
        let delta = NamedQuery {
            name: name.to_string(),
            promql: format!("sum({metric}{s}) - sum({metric}{s} offset {w})"),
            figure,
            metric: metric.to_string(),
            alias: None,
            selector: format!("{metric}{s}"),
        };
        let resets = NamedQuery {
            name: resets_name.to_string(),
            promql: format!("sum(resets({metric}{s}[{w}]))"),
            figure: resets_figure,
            metric: metric.to_string(),
            alias: None,
            selector: format!("{metric}{s}"),
        };
        [delta, resets]
    };
    out.extend(counter(
        "requests_finished",
        Figure::RequestsFinished,
        "requests_finished_resets",
        Figure::RequestsFinishedResets,
        REQUEST_SUCCESS,
        &finished_sel,
    ));
    out.extend(counter(
        "generation_tokens",
        Figure::GenerationTokens,
        "generation_tokens_resets",
        Figure::GenerationTokensResets,
        GENERATION_TOKENS,
        &sel,
    ));

    let over_time = |name: &str, figure, agg: &str, metric: &str, alias: Option<&str>, s: &str| {
        let promql = |m: &str| format!("{agg}({agg}_over_time({m}{s}[{w}]))");
        NamedQuery {
            name: name.to_string(),
            promql: promql(metric),
            figure,
            metric: metric.to_string(),
            alias: alias.map(|a| AliasQuery {
                metric: a.to_string(),
                promql: promql(a),
            }),
            selector: format!("{metric}{s}"),
        }
    };
    out.push(over_time(
        "kv_cache_usage_max",
        Figure::KvCacheMax,
        "max",
        KV_CACHE,
        Some(KV_CACHE_OLD),
        &sel,
    ));
    out.push(over_time(
        "kv_cache_usage_avg",
        Figure::KvCacheAvg,
        "avg",
        KV_CACHE,
        Some(KV_CACHE_OLD),
        &sel,
    ));
    out.push(over_time(
        "gpu_utilization_avg",
        Figure::GpuUtilAvg,
        "avg",
        GPU_UTIL,
        None,
        &gpu_sel,
    ));
    out.push(over_time(
        "gpu_utilization_max",
        Figure::GpuUtilMax,
        "max",
        GPU_UTIL,
        None,
        &gpu_sel,
    ));
    out
}

/// A readable list of the queries (for logs and `--dry-run` style output).
pub fn describe(queries: &[NamedQuery]) -> String {
    let mut out = String::new();
    for q in queries {
        let _ = writeln!(out, "{}: {}", q.name, q.promql);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::window::{LoadSpan, plan_window};
    use crate::results::WindowMode;
    use chrono::DateTime;

    fn plan_120s() -> (PromSettings, WindowPlan) {
        let s = PromSettings::default();
        // Load 1000..1088: T = 1088 + 30 + 2 = 1120, W = 120.
        let span = LoadSpan {
            start: DateTime::from_timestamp(1000, 0).unwrap(),
            end: DateTime::from_timestamp(1088, 0).unwrap(),
        };
        let p = plan_window(&s, &span);
        assert_eq!(
            (p.range_s, p.eval_time_unix, p.mode),
            (120, 1120, WindowMode::EndAnchored)
        );
        (s, p)
    }

    #[test]
    fn exact_promql_strings() {
        let (s, p) = plan_120s();
        let got = describe(&build_queries(&s, &p));
        let want = r#"e2e_latency_p50: histogram_quantile(0.5, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm-service"}[120s])))
e2e_latency_p95: histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm-service"}[120s])))
e2e_latency_p99: histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm-service"}[120s])))
ttft_p50: histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{job="vllm-service"}[120s])))
ttft_p95: histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{job="vllm-service"}[120s])))
ttft_p99: histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{job="vllm-service"}[120s])))
itl_p50: histogram_quantile(0.5, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{job="vllm-service"}[120s])))
itl_p95: histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{job="vllm-service"}[120s])))
itl_p99: histogram_quantile(0.99, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{job="vllm-service"}[120s])))
requests_finished: sum(vllm:request_success_total{job="vllm-service",finished_reason=~"stop|length"}) - sum(vllm:request_success_total{job="vllm-service",finished_reason=~"stop|length"} offset 120s)
requests_finished_resets: sum(resets(vllm:request_success_total{job="vllm-service",finished_reason=~"stop|length"}[120s]))
generation_tokens: sum(vllm:generation_tokens_total{job="vllm-service"}) - sum(vllm:generation_tokens_total{job="vllm-service"} offset 120s)
generation_tokens_resets: sum(resets(vllm:generation_tokens_total{job="vllm-service"}[120s]))
kv_cache_usage_max: max(max_over_time(vllm:kv_cache_usage_perc{job="vllm-service"}[120s]))
kv_cache_usage_avg: avg(avg_over_time(vllm:kv_cache_usage_perc{job="vllm-service"}[120s]))
gpu_utilization_avg: avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL{gpu="0"}[120s]))
gpu_utilization_max: max(max_over_time(DCGM_FI_DEV_GPU_UTIL{gpu="0"}[120s]))
"#;
        assert_eq!(got, want);
    }

    #[test]
    fn aliases_for_renamed_metrics() {
        let (s, p) = plan_120s();
        let qs = build_queries(&s, &p);
        let itl = qs.iter().find(|q| q.name == "itl_p95").unwrap();
        let alias = itl.alias.as_ref().unwrap();
        assert_eq!(alias.metric, "vllm:time_per_output_token_seconds");
        assert_eq!(
            alias.promql,
            r#"histogram_quantile(0.95, sum by (le) (rate(vllm:time_per_output_token_seconds_bucket{job="vllm-service"}[120s])))"#
        );
        let kv = qs.iter().find(|q| q.name == "kv_cache_usage_max").unwrap();
        assert_eq!(
            kv.alias.as_ref().unwrap().promql,
            r#"max(max_over_time(vllm:gpu_cache_usage_perc{job="vllm-service"}[120s]))"#
        );
        assert!(qs.iter().filter(|q| q.alias.is_some()).count() == 5);
    }

    #[test]
    fn job_is_escaped_and_gpu_selector_normalized() {
        let (mut s, p) = plan_120s();
        s.job = r#"we"ird\job"#.into();
        s.gpu_selector = r#"gpu=~"0|1",Hostname="n1""#.into();
        let qs = build_queries(&s, &p);
        assert!(
            qs[0].promql.contains(r#"{job="we\"ird\\job"}"#),
            "{}",
            qs[0].promql
        );
        let gpu = qs.iter().find(|q| q.name == "gpu_utilization_avg").unwrap();
        assert_eq!(
            gpu.promql,
            r#"avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL{gpu=~"0|1",Hostname="n1"}[120s]))"#
        );
        s.gpu_selector = String::new();
        let qs = build_queries(&s, &p);
        let gpu = qs.iter().find(|q| q.name == "gpu_utilization_max").unwrap();
        assert_eq!(gpu.promql, "max(max_over_time(DCGM_FI_DEV_GPU_UTIL[120s]))");
    }

    #[test]
    fn seed_mode_changes_only_the_window() {
        let s = PromSettings {
            window_mode: WindowMode::Seed,
            ..PromSettings::default()
        };
        let span = LoadSpan {
            start: DateTime::from_timestamp(1000, 0).unwrap(),
            end: DateTime::from_timestamp(1025, 0).unwrap(),
        };
        let p = plan_window(&s, &span);
        let qs = build_queries(&s, &p);
        assert_eq!(
            qs[1].promql,
            r#"histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm-service"}[60s])))"#
        );
    }
}
