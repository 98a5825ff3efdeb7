//! End-anchored windows on confirmed samples, against a live Prometheus: wait before the load
//! until every target's last sample is a left edge ([`super::confirm::before_edges`]), wait
//! after it for the right edge ([`super::confirm::after_edge`]), then read the figures.
//!
//! The counters and histograms are read as two instant vectors, at the load's start and at
//! `T` (every series' latest sample at or before each instant), and subtracted series by
//! series: the exact counts of the load, with no extrapolation at the window's edges and with a
//! series born during the load counted from 0 ([`super::scrape::delta_figures`], the same
//! arithmetic as `/metrics` deltas). `resets()` and `changes(process_start_time_seconds)` over
//! the window say whether a target restarted. Gauges are `*_over_time` over `[T − start]`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_http_query::response::Data;

use super::answer::{FigureResult, empty_metrics, measured};
use super::confirm::{Before, after_edge, before_edges};
use super::error::PromError;
use super::exposition::{MetricFamily, MetricKind, Sample};
use super::promql::{
    E2E_LATENCY, Figure, GENERATION_TOKENS, ITL, ITL_OLD, REQUEST_SUCCESS, TTFT, gauge_queries,
    promql_string,
};
use super::query::{PrometheusCollector, QueryData, unix_ms_param};
use super::scrape::{MetricsSnapshot, PROCESS_START, delta_figures};
use super::timeline::{self, Timelines};
use super::window::{DEFAULT_SCRAPE_INTERVAL, LoadSpan};
use crate::results::{
    EdgeSamples, QueryRecord, QueryWindow, ServerMetrics, ServerSource, WindowMode,
};

/// What the wait before the load found, carried to the collection after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreLoad {
    /// When the pre-flight and warm-up ended: the left edges must be newer.
    pub ready: DateTime<Utc>,
    /// The scrape interval the waits are bounded with.
    pub interval: Duration,
    /// Where it came from: `flag`, `prometheus`, `default`.
    pub interval_source: &'static str,
    /// Time spent waiting for the left edges.
    pub waited: Duration,
    /// Why the left edges were not confirmed in time (empty: they were).
    pub unconfirmed: Vec<String>,
}

/// Both edges as computed from one read of the samples.
struct Edges {
    timelines: Timelines,
    before: BTreeMap<String, Before>,
    before_problems: Vec<String>,
    after: Result<(i64, BTreeMap<String, super::timeline::Scrape>), Vec<String>>,
}

/// How often the waits ask Prometheus: a fifth of the interval, between 0.2 s and 1 s.
fn poll_every(interval: Duration) -> Duration {
    (interval / 5).clamp(Duration::from_millis(200), Duration::from_secs(1))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn rfc3339_ms(t_ms: i64) -> String {
    DateTime::from_timestamp_millis(t_ms).map_or_else(
        || t_ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// The counters, buckets and process start times the figures subtract.
fn counter_names() -> Vec<String> {
    [E2E_LATENCY, TTFT, ITL, ITL_OLD]
        .iter()
        .map(|f| format!("{f}_bucket"))
        .chain([REQUEST_SUCCESS.to_string(), GENERATION_TOKENS.to_string()])
        .collect()
}

impl PrometheusCollector {
    fn job_literal(&self) -> String {
        promql_string(&self.settings().job)
    }

    /// The scrape interval: `--scrape-interval`, else the job's targets, else 30 s.
    async fn resolve_interval(&self) -> Result<(Duration, &'static str, usize), PromError> {
        let targets = self.job_targets().await?;
        Ok(
            match (self.settings().scrape_interval, targets.interval()) {
                (Some(i), _) => (i, "flag", targets.count),
                (None, Some(i)) => (i, "prometheus", targets.count),
                (None, None) => (DEFAULT_SCRAPE_INTERVAL, "default", targets.count),
            },
        )
    }

    /// The raw samples of the timeline series over the last `range`, at `at_ms`.
    async fn timelines(&self, at_ms: i64, range: Duration) -> Result<Timelines, PromError> {
        let promql = format!(
            "{}[{}ms]",
            timeline::selector(&self.job_literal()),
            range.as_millis().max(1)
        );
        let answer = self.query_data(&promql, at_ms).await?;
        Ok(Timelines::from_data(&answer.data))
    }

    /// Before the load (the pre-flight and warm-up ended at `ready`): waits, at most
    /// `--scrape-wait` or two scrape intervals + 5 s, until every target's last sample is a
    /// confirmed left edge. A job with no target at all after that wait is an error (nothing
    /// could be measured); edges still unconfirmed are reported in [`PreLoad::unconfirmed`] and
    /// make the measurement invalid.
    pub async fn await_left_edges(&self, ready: DateTime<Utc>) -> Result<PreLoad, PromError> {
        let (mut interval, mut interval_source, _) = self.resolve_interval().await?;
        let started = tokio::time::Instant::now();
        tracing::info!(
            interval_s = interval.as_secs_f64(),
            source = interval_source,
            "waiting for every target's quiet sample before the load"
        );
        loop {
            // a Prometheus that just started lists its targets only after discovery (~5 s)
            if interval_source == "default" {
                let (i, source, _) = self.resolve_interval().await?;
                if source != "default" {
                    (interval, interval_source) = (i, source);
                    tracing::info!(
                        interval_s = i.as_secs_f64(),
                        "scrape interval read from Prometheus"
                    );
                }
            }
            let bound = self.settings().confirm_bound(interval);
            let lookback = interval.saturating_mul(3) + Duration::from_secs(10);
            let (targets, problems) = self.left_edges_at(ready, lookback, ms(Utc::now())).await?;
            let waited = started.elapsed();
            if (targets > 0 && problems.is_empty()) || waited >= bound {
                if targets == 0 {
                    let targets = self.job_targets().await?;
                    return Err(PromError::NoTargets {
                        job: self.settings().job.clone(),
                        jobs: targets.jobs.into_iter().collect(),
                        waited,
                    });
                }
                if !problems.is_empty() {
                    tracing::warn!(
                        ?problems,
                        "no confirmed sample before the load: the measurement will be invalid"
                    );
                }
                return Ok(PreLoad {
                    ready,
                    interval,
                    interval_source,
                    waited,
                    unconfirmed: problems,
                });
            }
            tokio::time::sleep(poll_every(interval)).await;
        }
    }

    /// What [`await_left_edges`](Self::await_left_edges) checks at each step, for a load that
    /// would start at `at_ms`: how many targets Prometheus knows, and why their left edges are
    /// not confirmed (empty: they are). `lookback` is how far before `ready` samples are read.
    pub async fn left_edges_at(
        &self,
        ready: DateTime<Utc>,
        lookback: Duration,
        at_ms: i64,
    ) -> Result<(usize, Vec<String>), PromError> {
        let since_ready = Duration::from_millis((at_ms - ms(ready)).max(0) as u64);
        let tl = self.timelines(at_ms, lookback + since_ready).await?;
        let (_, problems) = before_edges(&tl, ms(ready), at_ms);
        Ok((tl.targets.len(), problems))
    }

    /// For a load read after it ran (`load-test merge`: the shards do not query Prometheus):
    /// what [`await_left_edges`](Self::await_left_edges) would have found just before it
    /// started at `start`, from the samples Prometheus still holds, without waiting (the load
    /// is over). `ready` is when the last pre-load request (a warm-up's) ended. Edges that are
    /// not confirmed (no quiet sample between `ready` and `start`) are in
    /// [`PreLoad::unconfirmed`] and make the measurement invalid.
    pub async fn left_edges_of_past_load(
        &self,
        ready: DateTime<Utc>,
        start: DateTime<Utc>,
    ) -> Result<PreLoad, PromError> {
        let (interval, interval_source, _) = self.resolve_interval().await?;
        let lookback = interval.saturating_mul(3) + Duration::from_secs(10);
        let (_, unconfirmed) = self.left_edges_at(ready, lookback, ms(start)).await?;
        if !unconfirmed.is_empty() {
            tracing::warn!(
                problems = ?unconfirmed,
                "no confirmed sample before the load: the measurement will be invalid"
            );
        }
        Ok(PreLoad {
            ready,
            interval,
            interval_source,
            waited: Duration::ZERO,
            unconfirmed,
        })
    }

    /// After the load: waits (bounded as before it) for the right edge, then reads every
    /// figure at `T` (see the module docs). `client_successes` is the requests the client saw
    /// succeed: `T` waits until the servers have counted at least that many.
    pub async fn collect_confirmed(
        &self,
        pre: &PreLoad,
        span: &LoadSpan,
        client_successes: u64,
    ) -> Result<ServerMetrics, PromError> {
        let bound = self.settings().confirm_bound(pre.interval);
        let started = tokio::time::Instant::now();
        loop {
            let now = ms(Utc::now());
            let edges = self.edges_at(pre, span, client_successes, now).await?;
            if edges.after.is_ok() || started.elapsed() >= bound {
                return self.figures(pre, span, edges, started.elapsed(), now).await;
            }
            tokio::time::sleep(poll_every(pre.interval)).await;
        }
    }

    /// [`collect_confirmed`](Self::collect_confirmed) as Prometheus saw it at `at_ms`, without
    /// waiting: for reading a load again later, and for tests on backfilled data.
    pub async fn confirmed_figures_at(
        &self,
        pre: &PreLoad,
        span: &LoadSpan,
        client_successes: u64,
        at_ms: i64,
    ) -> Result<ServerMetrics, PromError> {
        let edges = self.edges_at(pre, span, client_successes, at_ms).await?;
        self.figures(pre, span, edges, Duration::ZERO, at_ms).await
    }

    /// Both edges, from the samples Prometheus holds at `now_ms`.
    async fn edges_at(
        &self,
        pre: &PreLoad,
        span: &LoadSpan,
        client_successes: u64,
        now_ms: i64,
    ) -> Result<Edges, PromError> {
        let (start_ms, end_ms, ready_ms) = (ms(span.start), ms(span.end), ms(pre.ready));
        let margin = pre.interval.saturating_mul(3) + Duration::from_secs(10);
        let range = Duration::from_millis((now_ms - ready_ms).max(0) as u64) + margin;
        let timelines = self.timelines(now_ms, range).await?;
        let (before, before_problems) = before_edges(&timelines, ready_ms, start_ms);
        let after = after_edge(&timelines, &before, end_ms, client_successes as f64);
        Ok(Edges {
            timelines,
            before,
            before_problems,
            after,
        })
    }

    /// Every figure, read at the right edge (or at `now_ms` when it was not confirmed).
    async fn figures(
        &self,
        pre: &PreLoad,
        span: &LoadSpan,
        edges: Edges,
        waited_after: Duration,
        now_ms: i64,
    ) -> Result<ServerMetrics, PromError> {
        let start_ms = ms(span.start);
        let Edges {
            timelines: tl,
            before,
            before_problems,
            after,
        } = edges;
        let (eval_ms, after_edges, after_problems) = match after {
            Ok((t, edges)) => (t, edges, Vec::new()),
            Err(problems) => {
                tracing::warn!(
                    ?problems,
                    "no confirmed sample after the load: the measurement will be invalid"
                );
                (now_ms, BTreeMap::new(), problems)
            }
        };
        let mut m = empty_metrics(ServerSource::Prometheus);
        let range_ms = (eval_ms - start_ms).max(1);
        m.window = Some(QueryWindow {
            mode: WindowMode::EndAnchored,
            range_s: range_ms as f64 / 1000.0,
            eval_time_unix: eval_ms as f64 / 1000.0,
            eval_time: rfc3339_ms(eval_ms),
            scrape_interval_s: Some(pre.interval.as_secs_f64()),
            scrape_interval_source: Some(pre.interval_source.to_string()),
            waited_before_load_s: Some(pre.waited.as_secs_f64()),
            waited_after_load_s: Some(waited_after.as_secs_f64()),
            samples: tl
                .targets
                .keys()
                .map(|t| EdgeSamples {
                    target: t.clone(),
                    before_load: match before.get(t) {
                        Some(Before::Sample(s)) => Some(rfc3339_ms(s.ts_ms)),
                        _ => None,
                    },
                    after_load: after_edges.get(t).map(|s| rfc3339_ms(s.ts_ms)),
                })
                .collect(),
        });
        m.queries.push(QueryRecord {
            name: "samples".into(),
            query: format!(
                "{}[...] at each wait step (the edges' raw samples)",
                timeline::selector(&self.job_literal())
            ),
        });
        let integrity = &mut m.integrity;
        integrity.unconfirmed = pre
            .unconfirmed
            .iter()
            .chain(&before_problems)
            .chain(&after_problems)
            .map(|p| p.to_string())
            .collect();
        integrity.unconfirmed.dedup();
        integrity.edges_confirmed = integrity.unconfirmed.is_empty();

        // counters and buckets at the load's start and at T
        let counters = format!(
            "{{__name__=~\"{}\",job={}}}",
            counter_names().join("|"),
            self.job_literal()
        );
        let before_snap = self
            .snapshot_at(&counters, start_ms, "counters_at_load_start", &mut m)
            .await?;
        let after_snap = self
            .snapshot_at(&counters, eval_ms, "counters_at_t", &mut m)
            .await?;
        delta_figures(&before_snap, &after_snap).apply(&mut m, span.duration_s());
        m.integrity.targets_before = instances(&before_snap);
        m.integrity.targets_after = instances(&after_snap);

        // restarts inside the window: from the earliest left edge on
        let first_edge = before
            .values()
            .filter_map(|b| match b {
                Before::Sample(s) => Some(s.ts_ms),
                Before::Born => None,
            })
            .min()
            .unwrap_or(start_ms);
        let integrity_range = format!("{}ms", (eval_ms - first_edge + 1).max(1));
        // one query per counter: resets() drops the metric name, so several names at once
        // would collide
        let mut resets = None;
        for name in [
            REQUEST_SUCCESS.to_string(),
            GENERATION_TOKENS.to_string(),
            format!("{E2E_LATENCY}_count"),
        ] {
            let q = format!(
                "sum(resets({name}{{job={}}}[{integrity_range}]))",
                self.job_literal()
            );
            if let Some(n) = self.count(&q, eval_ms, "counter_resets", &mut m).await? {
                resets = Some(resets.unwrap_or(0) + n);
            }
        }
        m.integrity.counter_resets = resets;
        let restarts = format!(
            "sum(changes({PROCESS_START}{{job={}}}[{integrity_range}]))",
            self.job_literal()
        );
        m.integrity.process_restarts = self
            .count(&restarts, eval_ms, "process_restarts", &mut m)
            .await?;

        // gauges over the load
        let w = format!("{range_ms}ms");
        let mut results = Vec::new();
        for q in gauge_queries(self.settings(), &w) {
            let (metric, outcome) = self.resolve(&q, eval_ms, &mut m).await?;
            results.push(FigureResult {
                figure: q.figure,
                measured: measured(&q, &metric, outcome, &w),
            });
        }
        let find = |f: Figure| {
            results
                .iter()
                .find(|r| r.figure == f)
                .map(|r| r.measured.clone())
        };
        if let Some(v) = find(Figure::KvCacheMax) {
            m.kv_cache_usage_max = v;
        }
        if let Some(v) = find(Figure::KvCacheAvg) {
            m.kv_cache_usage_avg = v;
        }
        if let Some(v) = find(Figure::GpuUtilAvg) {
            m.gpu_utilization_avg = v;
        }
        if let Some(v) = find(Figure::GpuUtilMax) {
            m.gpu_utilization_max = v;
        }
        Ok(m)
    }

    /// An instant vector read as a `/metrics`-like snapshot, recorded in `m.queries`.
    async fn snapshot_at(
        &self,
        promql: &str,
        at_ms: i64,
        name: &str,
        m: &mut ServerMetrics,
    ) -> Result<MetricsSnapshot, PromError> {
        m.queries.push(QueryRecord {
            name: name.into(),
            query: format!("{promql} @ {}", unix_ms_param(at_ms)),
        });
        let answer = self.query_data(promql, at_ms).await?;
        warn_on(&answer, name, m);
        Ok(snapshot_of(&answer.data, at_ms))
    }

    /// A scalar count (`sum(...)`), recorded; `None` when no series matched.
    async fn count(
        &self,
        promql: &str,
        at_ms: i64,
        name: &str,
        m: &mut ServerMetrics,
    ) -> Result<Option<u64>, PromError> {
        m.queries.push(QueryRecord {
            name: name.into(),
            query: format!("{promql} @ {}", unix_ms_param(at_ms)),
        });
        let answer = self.query_data(promql, at_ms).await?;
        warn_on(&answer, name, m);
        Ok(match &answer.data {
            Data::Vector(v) => v.first().map(|s| s.sample().value()),
            Data::Scalar(s) => Some(s.value()),
            Data::Matrix(_) => None,
        }
        .filter(|v| v.is_finite())
        .map(|v| v.max(0.0).round() as u64))
    }
}

fn warn_on(answer: &QueryData, name: &str, m: &mut ServerMetrics) {
    for w in &answer.warnings {
        m.warnings
            .push(format!("Prometheus warning on {name}: {w}"));
    }
}

/// An instant vector as a snapshot: one sample per series, labels as sent.
fn snapshot_of(data: &Data, at_ms: i64) -> MetricsSnapshot {
    let samples = match data {
        Data::Vector(v) => v
            .iter()
            .map(|s| {
                let mut labels: Vec<(String, String)> = s
                    .metric()
                    .iter()
                    .filter(|(k, _)| k.as_str() != "__name__")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                Sample {
                    name: s.metric().get("__name__").cloned().unwrap_or_default(),
                    labels,
                    value: s.sample().value(),
                    timestamp: None,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    MetricsSnapshot {
        taken_at: DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
        families: vec![MetricFamily {
            name: String::new(),
            kind: MetricKind::Untyped,
            help: None,
            samples,
        }],
    }
}

/// The targets whose counters a snapshot holds (their `instance` labels, else their target
/// labels), sorted.
fn instances(snap: &MetricsSnapshot) -> Vec<String> {
    let mut out: Vec<String> = snap
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .map(|s| timeline::target_name(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_poll_often_enough_and_not_too_often() {
        assert_eq!(
            poll_every(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(poll_every(Duration::from_secs(15)), Duration::from_secs(1));
        assert_eq!(
            poll_every(Duration::from_secs(2)),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn the_counter_selector_names_every_histogram_and_counter() {
        let names = counter_names();
        assert!(names.contains(&"vllm:e2e_request_latency_seconds_bucket".to_string()));
        assert!(names.contains(&"vllm:request_success_total".to_string()));
        assert!(names.contains(&"vllm:time_per_output_token_seconds_bucket".to_string()));
    }
}
