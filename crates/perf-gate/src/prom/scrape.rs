//! Server-side figures without Prometheus: two snapshots of vLLM's own `/metrics` (before and
//! after the load) and their differences (the seed 001 approach).
//!
//! - Histograms: bucket counts are summed over all label sets by `le` (like `sum by (le)`), the
//!   before-snapshot is subtracted from the after-snapshot, and the quantile is taken with
//!   Prometheus's exact `histogram_quantile` rule ([`histogram_quantile`](super::histogram_quantile)).
//! - Counters (`vllm:request_success_total` with `finished_reason` `stop|length`,
//!   `vllm:generation_tokens_total`; the names without `_total` are accepted too): after − before.
//!   A series that went down or vanished means vLLM restarted: the figure is missing, with reason.
//! - Gauges can only be read at the two instants: `kv_cache_usage_max` is the larger of the two
//!   reads (with a caveat: not the peak during the load); the mean and the GPU figures need
//!   Prometheus and are missing with a reason.
//!
//! Any traffic other than the load's that the server handles between the snapshots is counted.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::answer::{empty_metrics, per_second};
use super::error::PromError;
use super::exposition::{MetricFamily, Sample, parse_exposition};
use super::histogram::bucket_quantile;
use super::promql::{
    E2E_LATENCY, FINISHED_OK, ITL, ITL_OLD, KV_CACHE, KV_CACHE_OLD, Latency, Quantile, TTFT,
};
use super::retry::{self, Attempt};
use crate::results::{Measured, QueryRecord, ServerMetrics, ServerQuantiles, ServerSource};
use crate::retry::{AttemptOutcome, RetryPolicy, retry_after};
use crate::urls::{parse_base_url, redact_url};

const WHAT: &str = "vLLM /metrics";
/// Bound of one `/metrics` request.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);
/// Counter families read, without `_total`.
const REQUEST_SUCCESS_BASE: &str = "vllm:request_success";
const GENERATION_TOKENS_BASE: &str = "vllm:generation_tokens";
/// The process collector's start time (every vLLM exposes it).
pub(crate) const PROCESS_START: &str = "process_start_time_seconds";

/// One parse of `/metrics`, with the time it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// When the response arrived.
    pub taken_at: DateTime<Utc>,
    /// Parsed families.
    pub families: Vec<MetricFamily>,
}

impl MetricsSnapshot {
    /// Parses an exposition taken at `taken_at`.
    pub fn parse(
        text: &str,
        taken_at: DateTime<Utc>,
    ) -> Result<Self, super::exposition::ExpositionError> {
        Ok(MetricsSnapshot {
            taken_at,
            families: parse_exposition(text)?,
        })
    }

    /// Every sample whose series name is `name`, whatever family it was filed under.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .iter()
            .flat_map(|f| f.samples.iter())
            .filter(move |s| s.name == name)
    }

    /// `sum by (le)` of `<family>_bucket`, sorted by `le`; `None` if no bucket is exposed.
    pub fn histogram(&self, family: &str) -> Option<Vec<(f64, f64)>> {
        let name = format!("{family}_bucket");
        let mut sums: Vec<(f64, f64)> = Vec::new();
        for s in self.samples(&name) {
            let Some(le) = s.label("le").and_then(super::exposition::parse_le) else {
                continue;
            };
            match sums.iter_mut().find(|(b, _)| *b == le) {
                Some(slot) => slot.1 += s.value,
                None => sums.push((le, s.value)),
            }
        }
        sums.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!sums.is_empty()).then_some(sums)
    }

    /// Counter series `<base>_total` (or `<base>`) passing `keep`, by sorted label set.
    fn counter_series(
        &self,
        base: &str,
        keep: &dyn Fn(&Sample) -> bool,
    ) -> Option<BTreeMap<Vec<(String, String)>, f64>> {
        let total = format!("{base}_total");
        let mut out = BTreeMap::new();
        for s in self.samples(&total).chain(self.samples(base)) {
            if keep(s) {
                let mut labels = s.labels.clone();
                labels.sort();
                *out.entry(labels).or_insert(0.0) += s.value;
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Largest value of a gauge across its series.
    fn gauge_max(&self, name: &str) -> Option<f64> {
        self.samples(name)
            .map(|s| s.value)
            .filter(|v| !v.is_nan())
            .reduce(f64::max)
    }
}

/// Scrapes vLLM's `/metrics` (used when no Prometheus is given).
#[derive(Clone)]
pub struct MetricsScraper {
    http: reqwest::Client,
    url: url::Url,
    shown_url: String,
    auth: Option<HeaderValue>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for MetricsScraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsScraper")
            .field("url", &self.shown_url)
            .field("api_key_set", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl MetricsScraper {
    /// A scraper of `{vllm_base_url}/metrics` through `http` (the vLLM client's pool, with its
    /// TLS settings), sending the same one `Authorization` header as the vLLM client:
    /// `Bearer <api_key>` if given, else the URL's `user:password` as `Basic`
    /// ([`crate::transport::vllm_auth`]; vLLM's `--api-key` does not guard `/metrics`, but a
    /// proxy in front may).
    pub fn new(
        http: reqwest::Client,
        vllm_base_url: &str,
        api_key: Option<String>,
    ) -> Result<Self, PromError> {
        let mut url = parse_base_url("--vllm-url", vllm_base_url)?;
        let auth = crate::transport::vllm_auth(&mut url, api_key.as_deref()).map_err(|_| {
            PromError::BadSetting {
                setting: "--api-key",
                reason: "it contains characters not allowed in an HTTP header".into(),
            }
        })?;
        let path = format!("{}/metrics", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(MetricsScraper {
            http,
            shown_url: redact_url(url.as_str()),
            url,
            auth: auth.header,
            retry: RetryPolicy::QUERIES,
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The `/metrics` URL as shown in messages.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// `GET /metrics` (with retries on connection errors and 5xx) and parse it.
    pub async fn snapshot(&self) -> Result<MetricsSnapshot, PromError> {
        let text = retry::run(&self.retry, "GET /metrics", || async {
            let mut req = self.http.get(self.url.clone()).timeout(SCRAPE_TIMEOUT);
            if let Some(auth) = &self.auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let transport = |e: reqwest::Error| Attempt {
                outcome: retry::transport_outcome(&e),
                retry_after: None,
                error: Box::new(PromError::Unreachable {
                    what: WHAT,
                    url: self.shown_url.clone(),
                    attempts: 1,
                    source: e.into(),
                }),
            };
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                return Err(Attempt {
                    outcome: AttemptOutcome::Status(status),
                    retry_after: retry_after(resp.headers()),
                    error: Box::new(PromError::MetricsStatus {
                        url: self.shown_url.clone(),
                        status,
                    }),
                });
            }
            resp.text().await.map_err(transport)
        })
        .await?;
        MetricsSnapshot::parse(&text, Utc::now()).map_err(|source| PromError::Exposition {
            url: self.shown_url.clone(),
            source,
        })
    }

    /// Snapshots until the finished-requests count has grown by `expected_finished` since
    /// `before` (vLLM records a request's metrics just after its last chunk), or `timeout`
    /// passes; returns the last snapshot either way.
    pub async fn snapshot_settled(
        &self,
        before: &MetricsSnapshot,
        expected_finished: u64,
        timeout: Duration,
    ) -> Result<MetricsSnapshot, PromError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snap = self.snapshot().await?;
            let done = counter_delta(before, &snap, REQUEST_SUCCESS_BASE, &finished_ok)
                .is_ok_and(|d| d >= expected_finished as f64);
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(snap);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn finished_ok(s: &Sample) -> bool {
    s.label("finished_reason")
        .is_some_and(|r| FINISHED_OK.split('|').any(|ok| ok == r))
}

/// `after − before` summed over a counter's series; `Err(reason)` when it cannot be trusted.
fn counter_delta(
    before: &MetricsSnapshot,
    after: &MetricsSnapshot,
    base: &str,
    keep: &dyn Fn(&Sample) -> bool,
) -> Result<f64, String> {
    let Some(a) = after.counter_series(base, keep) else {
        return Err(format!("{base}_total is not on /metrics"));
    };
    let b = before.counter_series(base, keep).unwrap_or_default();
    let mut sum = 0.0;
    for (labels, after_v) in &a {
        let before_v = b.get(labels).copied().unwrap_or(0.0);
        if after_v < &before_v {
            return Err(format!(
                "{base}_total went down between the snapshots ({before_v} -> {after_v}): vLLM restarted during the load"
            ));
        }
        sum += after_v - before_v;
    }
    if b.keys().any(|k| !a.contains_key(k)) {
        return Err(format!(
            "a {base}_total series vanished between the snapshots: vLLM restarted during the load"
        ));
    }
    Ok(sum)
}

/// The three quantiles of a histogram's change between the snapshots.
fn delta_quantiles(
    before: &MetricsSnapshot,
    after: &MetricsSnapshot,
    family: &str,
) -> ServerQuantiles {
    let all = |m: Measured| ServerQuantiles {
        p50: m.clone(),
        p95: m.clone(),
        p99: m,
    };
    let Some(a) = after.histogram(family) else {
        return all(Measured::missing(format!(
            "{family}_bucket is not on /metrics"
        )));
    };
    let b = before.histogram(family).unwrap_or_default();
    let mut delta = Vec::with_capacity(a.len());
    for (le, after_c) in &a {
        let before_c = b.iter().find(|(x, _)| x == le).map_or(0.0, |(_, c)| *c);
        if *after_c < before_c {
            return all(Measured::missing(format!(
                "{family} bucket counts went down between the snapshots: vLLM restarted during the load"
            )));
        }
        delta.push((*le, after_c - before_c));
    }
    let one = |q: Quantile| match bucket_quantile(q.phi(), &delta) {
        None => Measured::missing("no observations between the snapshots"),
        Some(e) if e.above_highest_finite => Measured {
            value: Some(e.value),
            reason: Some(format!(
                "above the highest finite bucket ({}s): the true quantile is higher",
                e.value
            )),
        },
        Some(e) => Measured::value(e.value),
    };
    ServerQuantiles {
        p50: one(Quantile::P50),
        p95: one(Quantile::P95),
        p99: one(Quantile::P99),
    }
}

/// What two snapshots of the counters and histograms say about the load between them: the
/// latency quantiles, the finished requests and generated tokens (exact counter differences;
/// a series absent before counts from 0). Shared by the `/metrics` and the Prometheus paths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeltaFigures {
    /// E2E latency quantiles.
    pub e2e: ServerQuantiles,
    /// TTFT quantiles.
    pub ttft: ServerQuantiles,
    /// ITL quantiles.
    pub itl: ServerQuantiles,
    /// The ITL histogram used (`vllm:inter_token_latency_seconds` or its old name).
    pub itl_family: &'static str,
    /// Requests finished with `stop` or `length`.
    pub finished: Measured,
    /// Requests finished with any reason.
    pub finished_any: Measured,
    /// Generated tokens.
    pub tokens: Measured,
    /// Counter and bucket series present after but not before (counted from 0).
    pub series_born: u64,
}

pub(crate) fn delta_figures(before: &MetricsSnapshot, after: &MetricsSnapshot) -> DeltaFigures {
    let itl_family = if after.histogram(ITL).is_none() && after.histogram(ITL_OLD).is_some() {
        ITL_OLD
    } else {
        ITL
    };
    let counted =
        |base: &str, keep: &dyn Fn(&Sample) -> bool| match counter_delta(before, after, base, keep)
        {
            Ok(v) => Measured::value(v),
            Err(reason) => Measured::missing(reason),
        };
    let born = {
        let names: Vec<String> = [E2E_LATENCY, TTFT, itl_family]
            .iter()
            .map(|f| format!("{f}_bucket"))
            .chain([
                format!("{REQUEST_SUCCESS_BASE}_total"),
                format!("{GENERATION_TOKENS_BASE}_total"),
            ])
            .collect();
        let keys = |snap: &MetricsSnapshot| -> std::collections::BTreeSet<(String, Vec<(String, String)>)> {
            names
                .iter()
                .flat_map(|n| snap.samples(n))
                .map(|s| {
                    let mut l = s.labels.clone();
                    l.sort();
                    (s.name.clone(), l)
                })
                .collect()
        };
        let b = keys(before);
        keys(after).difference(&b).count() as u64
    };
    DeltaFigures {
        e2e: delta_quantiles(before, after, E2E_LATENCY),
        ttft: delta_quantiles(before, after, TTFT),
        itl: delta_quantiles(before, after, itl_family),
        itl_family,
        finished: counted(REQUEST_SUCCESS_BASE, &finished_ok),
        finished_any: counted(REQUEST_SUCCESS_BASE, &|_| true),
        tokens: counted(GENERATION_TOKENS_BASE, &|_| true),
        series_born: born,
    }
}

impl DeltaFigures {
    /// Places the figures into `m` (rates over `load_duration_s`).
    pub(crate) fn apply(self, m: &mut ServerMetrics, load_duration_s: f64) {
        m.e2e_latency_s = self.e2e;
        m.ttft_s = self.ttft;
        m.itl_s = self.itl;
        m.resolved_names
            .insert("itl".into(), self.itl_family.into());
        m.throughput_rps = per_second(&self.finished, load_duration_s);
        m.generation_tokens_per_s = per_second(&self.tokens, load_duration_s);
        m.requests_finished = self.finished;
        m.integrity.requests_finished_any = self.finished_any;
        m.integrity.series_born = self.series_born;
    }
}

/// The process start times a snapshot shows (`process_start_time_seconds`), as RFC 3339.
fn process_starts(snap: &MetricsSnapshot) -> Vec<String> {
    let mut v: Vec<String> = snap
        .samples(PROCESS_START)
        .map(|s| {
            chrono::DateTime::from_timestamp_millis((s.value * 1000.0).round() as i64).map_or_else(
                || s.value.to_string(),
                |t| {
                    format!(
                        "process started {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )
                },
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Server-side figures from two `/metrics` snapshots around a load of `load_duration_s` seconds.
pub fn server_metrics_from_deltas(
    before: &MetricsSnapshot,
    after: &MetricsSnapshot,
    load_duration_s: f64,
) -> ServerMetrics {
    let mut m = empty_metrics(ServerSource::VllmMetrics);
    let between = format!(
        "between /metrics snapshots at {} and {}",
        before
            .taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        after
            .taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let mut queries = Vec::new();
    let mut record = |name: String, query: String| queries.push(QueryRecord { name, query });

    let figures = delta_figures(before, after);
    for lat in [Latency::E2e, Latency::Ttft, Latency::Itl] {
        let family = match lat {
            Latency::E2e => E2E_LATENCY,
            Latency::Ttft => TTFT,
            Latency::Itl => figures.itl_family,
        };
        for q in Quantile::ALL {
            record(
                format!("{}_{}", lat.label(), q.label()),
                format!(
                    "histogram_quantile({}, sum by (le) ({family}_bucket after - before)) {between}",
                    q.phi()
                ),
            );
        }
    }
    record(
        "requests_finished".into(),
        format!(
            "sum({REQUEST_SUCCESS_BASE}_total{{finished_reason=~\"{FINISHED_OK}\"}} after - before) {between}"
        ),
    );
    record(
        "generation_tokens".into(),
        format!("sum({GENERATION_TOKENS_BASE}_total after - before) {between}"),
    );
    let itl_found = after.histogram(figures.itl_family).is_some();
    figures.apply(&mut m, load_duration_s);
    if !itl_found {
        m.resolved_names.remove("itl");
    }

    // One process on both sides: a restart, or a Service alternating between replicas, would
    // mix the counters of different processes.
    let (pb, pa) = (process_starts(before), process_starts(after));
    m.integrity.targets_before = pb.clone();
    m.integrity.targets_after = pa.clone();
    m.integrity.counter_resets = None;
    m.integrity.process_restarts = Some(u64::from(!pb.is_empty() && pb != pa));
    m.integrity.edges_confirmed = !pb.is_empty() && pb == pa && pb.len() == 1;
    if pb.is_empty() || pa.is_empty() {
        m.integrity.unconfirmed.push(
            "/metrics shows no process_start_time_seconds: cannot tell whether both scrapes came from one vLLM process".into(),
        );
    } else if pb != pa {
        m.integrity.unconfirmed.push(format!(
            "the /metrics scrapes before and after the load came from different processes ({} / {}): vLLM restarted, or a Service spread the scrapes over several replicas",
            pb.join(", "),
            pa.join(", ")
        ));
    } else if pb.len() > 1 {
        m.integrity.unconfirmed.push(format!(
            "/metrics shows several processes ({}): the deltas mix their counters",
            pb.join(", ")
        ));
    }

    let kv = if after.gauge_max(KV_CACHE).is_none() && after.gauge_max(KV_CACHE_OLD).is_some() {
        KV_CACHE_OLD
    } else {
        KV_CACHE
    };
    record(
        "kv_cache_usage_max".into(),
        format!("max({kv}) over the two snapshots (instant reads) {between}"),
    );
    m.kv_cache_usage_max = match (before.gauge_max(kv), after.gauge_max(kv)) {
        (None, None) => Measured::missing(format!("{kv} is not on /metrics")),
        (b, a) => {
            m.resolved_names.insert("kv_cache_usage".into(), kv.into());
            Measured {
                value: Some(b.unwrap_or(f64::MIN).max(a.unwrap_or(f64::MIN))),
                reason: Some(
                    "larger of two instant reads (before and after the load), not the peak during it; use Prometheus for a peak"
                        .into(),
                ),
            }
        }
    };
    m.kv_cache_usage_avg = Measured::missing(
        "a mean over the load needs Prometheus (--prometheus-url); /metrics gives instant reads only",
    );
    let no_gpu =
        "DCGM GPU metrics are not on vLLM's /metrics: they need Prometheus (--prometheus-url)";
    m.gpu_utilization_avg = Measured::missing(no_gpu);
    m.gpu_utilization_max = Measured::missing(no_gpu);
    m.queries = queries;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: &str = include_str!("fixtures/metrics_fresh_before_requests.txt");
    const SMOKE: &str = include_str!("fixtures/metrics_after_smoke.txt");
    const AFTER_LOAD: &str = include_str!("fixtures/metrics_after_load.txt");

    fn snap(text: &str, secs: i64) -> MetricsSnapshot {
        MetricsSnapshot::parse(text, DateTime::from_timestamp(secs, 0).unwrap()).unwrap()
    }

    fn close(m: &Measured, want: f64) -> bool {
        m.value.is_some_and(|v| (v - want).abs() < 1e-9)
    }

    #[test]
    fn fresh_to_after_load_counts_the_168_requests() {
        let m = server_metrics_from_deltas(&snap(FRESH, 1000), &snap(AFTER_LOAD, 1100), 84.0);
        assert_eq!(m.source, ServerSource::VllmMetrics);
        assert_eq!(m.requests_finished, Measured::value(168.0));
        assert!(close(&m.throughput_rps, 2.0));
        // generation tokens: 10310 - 0
        assert!(close(&m.generation_tokens_per_s, 10310.0 / 84.0));
        // The fresh capture has zero observations, so the quantiles are those of the whole
        // after-load histogram (worked by hand in histogram.rs).
        assert!(close(&m.e2e_latency_s.p50, 0.8));
        assert!(close(&m.e2e_latency_s.p95, 4.32258064516129));
        assert!(close(&m.e2e_latency_s.p99, 4.864516129032258));
        assert!(close(&m.ttft_s.p95, 0.4));
        // ITL q=0.95: rank 9634.9 in le=0.05 (9831): 0.025 + 0.025 * (9634.9-9526)/(9831-9526)
        assert!(close(&m.itl_s.p95, 0.025 + 0.025 * 108.9 / 305.0));
        // q=0.5: rank 5071 in the first bucket le=0.01 (5555): 0.01 * 5071/5555
        assert!(close(&m.itl_s.p50, 0.01 * 5071.0 / 5555.0));
        assert_eq!(m.resolved_names.get("itl").map(String::as_str), Some(ITL));
        assert_eq!(
            m.resolved_names.get("kv_cache_usage").map(String::as_str),
            Some(KV_CACHE)
        );
        // KV cache read 0.0 both times: a value with a caveat, the mean is missing.
        assert_eq!(m.kv_cache_usage_max.value, Some(0.0));
        assert!(
            m.kv_cache_usage_max
                .reason
                .as_deref()
                .unwrap()
                .contains("instant reads")
        );
        assert_eq!(m.kv_cache_usage_avg.value, None);
        assert_eq!(m.gpu_utilization_avg.value, None);
        assert!(
            m.gpu_utilization_max
                .reason
                .as_deref()
                .unwrap()
                .contains("DCGM")
        );
        assert!(m.window.is_none());
        let names: Vec<&str> = m.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names.len(), 12);
        assert!(names.contains(&"e2e_latency_p95") && names.contains(&"requests_finished"));
        assert!(
            m.queries[1]
                .query
                .contains("vllm:e2e_request_latency_seconds_bucket")
        );
        assert!(m.queries[1].query.contains("1970-01-01T00:16:40.000Z"));
        crate::prom::answer::assert_every_null_has_a_reason(&serde_json::to_value(&m).unwrap());
    }

    #[test]
    fn smoke_to_after_load_subtracts_bucket_by_bucket() {
        // Same process: 8 smoke requests, then 160 more.
        let m = server_metrics_from_deltas(&snap(SMOKE, 1000), &snap(AFTER_LOAD, 1100), 80.0);
        assert_eq!(m.requests_finished, Measured::value(160.0));
        assert!(close(&m.throughput_rps, 2.0));
        assert!(close(&m.generation_tokens_per_s, (10310.0 - 70.0) / 80.0));
        // e2e deltas: 0.3:0, 0.5:0, 0.8:78, 1.0:100, 1.5:122, 2.0:130, 2.5:130, 5.0:160.
        // q=0.5: rank 80 in le=1.0 (100): 0.8 + 0.2 * (80-78)/(100-78) = 0.8181818...
        assert!(close(&m.e2e_latency_s.p50, 0.8 + 0.2 * 2.0 / 22.0));
        // q=0.95: rank 152 in le=5 (160): 2.5 + 2.5 * (152-130)/(160-130) = 4.3333...
        assert!(close(&m.e2e_latency_s.p95, 2.5 + 2.5 * 22.0 / 30.0));
    }

    #[test]
    fn no_load_means_missing_not_zero() {
        let m = server_metrics_from_deltas(&snap(AFTER_LOAD, 1000), &snap(AFTER_LOAD, 1010), 10.0);
        assert_eq!(m.requests_finished, Measured::value(0.0));
        assert_eq!(m.e2e_latency_s.p95.value, None);
        assert_eq!(
            m.e2e_latency_s.p95.reason.as_deref(),
            Some("no observations between the snapshots")
        );
    }

    #[test]
    fn a_restart_voids_the_figures() {
        // Backwards: after-load first, then the fresh process.
        let m = server_metrics_from_deltas(&snap(AFTER_LOAD, 1000), &snap(FRESH, 1100), 10.0);
        assert_eq!(m.requests_finished.value, None);
        assert!(
            m.requests_finished
                .reason
                .as_deref()
                .unwrap()
                .contains("restarted")
        );
        assert_eq!(m.throughput_rps.value, None);
        assert!(
            m.e2e_latency_s
                .p95
                .reason
                .as_deref()
                .unwrap()
                .contains("restarted")
        );
        crate::prom::answer::assert_every_null_has_a_reason(&serde_json::to_value(&m).unwrap());
    }

    #[test]
    fn counters_without_total_and_renamed_metrics() {
        let before = "# TYPE vllm:request_success counter\n\
            vllm:request_success{finished_reason=\"stop\"} 1\n\
            vllm:request_success{finished_reason=\"abort\"} 0\n\
            vllm:gpu_cache_usage_perc 0.5\n";
        let after = "# TYPE vllm:request_success counter\n\
            vllm:request_success{finished_reason=\"stop\"} 5\n\
            vllm:request_success{finished_reason=\"length\"} 2\n\
            vllm:request_success{finished_reason=\"abort\"} 9\n\
            vllm:time_per_output_token_seconds_bucket{le=\"0.1\"} 3\n\
            vllm:time_per_output_token_seconds_bucket{le=\"+Inf\"} 4\n\
            vllm:gpu_cache_usage_perc 0.25\n";
        let m = server_metrics_from_deltas(&snap(before, 0), &snap(after, 10), 2.0);
        // stop: 5-1, length: 2-0 (new series); abort not counted.
        assert_eq!(m.requests_finished, Measured::value(6.0));
        assert_eq!(m.throughput_rps, Measured::value(3.0));
        assert_eq!(
            m.resolved_names.get("itl").map(String::as_str),
            Some(ITL_OLD)
        );
        assert_eq!(
            m.resolved_names.get("kv_cache_usage").map(String::as_str),
            Some(KV_CACHE_OLD)
        );
        assert_eq!(m.kv_cache_usage_max.value, Some(0.5));
        // ITL q=0.5: rank 2 in le=0.1 (3): 0.1 * 2/3
        assert!(close(&m.itl_s.p50, 0.1 * 2.0 / 3.0));
        // q=0.99: rank 3.96 falls in +Inf: the highest finite bound, with a caveat.
        assert_eq!(m.itl_s.p99.value, Some(0.1));
        assert!(
            m.itl_s
                .p99
                .reason
                .as_deref()
                .unwrap()
                .contains("above the highest finite bucket")
        );
        // Metrics absent altogether.
        assert_eq!(m.generation_tokens_per_s.value, None);
        assert!(
            m.generation_tokens_per_s
                .reason
                .as_deref()
                .unwrap()
                .contains("not on /metrics")
        );
        assert!(
            m.e2e_latency_s
                .p95
                .reason
                .as_deref()
                .unwrap()
                .contains("not on /metrics")
        );
    }

    #[tokio::test]
    async fn scraper_sends_the_bearer_token_and_parses() {
        use wiremock::matchers::{header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .and(header("authorization", "Bearer k3y"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(AFTER_LOAD, "text/plain; version=0.0.4"),
            )
            .mount(&server)
            .await;
        let fast = RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            max_retry_after: Duration::from_millis(1),
        };
        let s = MetricsScraper::new(
            reqwest::Client::new(),
            &format!("{}/", server.uri()),
            Some("k3y".into()),
        )
        .unwrap()
        .with_retry_policy(fast);
        assert_eq!(s.url(), format!("{}/metrics", server.uri()));
        assert!(!format!("{s:?}").contains("k3y"));
        let snap = s.snapshot().await.unwrap();
        assert_eq!(
            snap.histogram(E2E_LATENCY).unwrap().last(),
            Some(&(f64::INFINITY, 168.0))
        );
        // `snapshot_settled` returns at once when the count is already there.
        let before = MetricsSnapshot::parse(FRESH, Utc::now()).unwrap();
        let after = s
            .snapshot_settled(&before, 168, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            server_metrics_from_deltas(&before, &after, 1.0)
                .requests_finished
                .value,
            Some(168.0)
        );

        // Without the token: no mock matches -> 404, not retried, named.
        let s = MetricsScraper::new(reqwest::Client::new(), &server.uri(), None)
            .unwrap()
            .with_retry_policy(fast);
        let e = s.snapshot().await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "vLLM /metrics at {}/metrics returned HTTP 404",
                server.uri()
            )
        );

        // Garbage body: a parse error naming the URL and the line.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok 1\nbroken{ 2\n"))
            .mount(&server)
            .await;
        let s = MetricsScraper::new(reqwest::Client::new(), &server.uri(), None).unwrap();
        let e = s.snapshot().await.unwrap_err();
        assert!(
            matches!(e, PromError::Exposition { ref source, .. } if source.line == 2),
            "{e:?}"
        );
        let e = MetricsScraper::new(reqwest::Client::new(), "http://h", Some("bad\nkey".into()))
            .unwrap_err();
        assert!(e.is_bad_input());
    }

    #[test]
    fn histogram_sums_label_sets_by_le() {
        let text = "h_bucket{engine=\"0\",le=\"1.0\"} 2\nh_bucket{engine=\"1\",le=\"1\"} 3\n\
                    h_bucket{engine=\"0\",le=\"+Inf\"} 4\nh_bucket{engine=\"1\",le=\"+Inf\"} 5\n";
        let s = snap(text, 0);
        assert_eq!(
            s.histogram("h"),
            Some(vec![(1.0, 5.0), (f64::INFINITY, 9.0)])
        );
        assert_eq!(s.histogram("nope"), None);
    }
}
