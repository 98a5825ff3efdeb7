//! [`PrometheusCollector`]: readiness check before the load, then every PromQL of
//! [`build_queries`] evaluated at the window's time `T`, with bounded retries.

use std::collections::BTreeMap;

use chrono::Utc;
use prometheus_http_query::Client;

use super::answer::{
    Envelope, FigureResult, InstantAnswer, Outcome, assemble, empty_metrics, measured,
};
use super::error::PromError;
use super::promql::{Figure, Latency, NamedQuery, build_queries, normalize_selector};
use super::retry::{self, Attempt};
use super::window::{LoadSpan, PromSettings, WindowPlan, plan_seed_window, window_warnings};
use crate::results::{QueryRecord, ServerMetrics, ServerSource};
use crate::retry::{AttemptOutcome, RetryPolicy, retry_after};
use crate::transport::{self, TlsSettings};
use crate::urls::{parse_base_url, redact_url};

const WHAT: &str = "Prometheus";
/// The flag the Prometheus URL comes from, for error messages.
const FLAG: &str = "--prometheus-url";
/// Extra time the HTTP request gets over the server-side query timeout, so Prometheus's own
/// timeout error (503 `timeout`) arrives before ours.
const HTTP_SLACK: std::time::Duration = std::time::Duration::from_secs(5);
/// Bound of one `/-/ready` request.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Collects the server-side figures of a load from Prometheus.
///
/// ```no_run
/// # async fn demo(span: perf_gate::prom::LoadSpan) -> Result<(), perf_gate::prom::PromError> {
/// use perf_gate::prom::{PromSettings, PrometheusCollector};
/// let prom = PrometheusCollector::new("http://127.0.0.1:9090", PromSettings::default())?;
/// prom.check_ready().await?; // before the load
/// // every target's quiet sample before the load: the window's left edges
/// let pre = prom.await_left_edges(chrono::Utc::now()).await?;
/// // ... run the load (the span), counting the client's successes ...
/// let client_successes = 100;
/// // waits for the right edges, then reads every figure between the confirmed samples
/// let server = prom.collect_confirmed(&pre, &span, client_successes).await?;
/// println!("p95 e2e: {:?}", server.e2e_latency_s.p95.get());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PrometheusCollector {
    settings: PromSettings,
    client: Client,
    base: url::Url,
    shown_url: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PrometheusCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusCollector")
            .field("url", &self.shown_url)
            .field("job", &self.settings.job)
            .finish_non_exhaustive()
    }
}

impl PrometheusCollector {
    /// Checks the URL (`--prometheus-url`) and the settings (job label, GPU selector) and
    /// builds the HTTP client, trusting the system's TLS roots.
    pub fn new(url: &str, settings: PromSettings) -> Result<Self, PromError> {
        Self::with_tls(url, settings, &TlsSettings::default())
    }

    /// [`PrometheusCollector::new`] trusting what `tls` says (`--prometheus-ca-cert`,
    /// `--prometheus-insecure-tls`). A `user:password@` in the URL is sent as `Basic` (and
    /// dropped by a redirect to another server).
    pub fn with_tls(
        url: &str,
        settings: PromSettings,
        tls: &TlsSettings,
    ) -> Result<Self, PromError> {
        let base = parse_base_url(FLAG, url)?;
        if settings.job.trim().is_empty() {
            return Err(PromError::BadSetting {
                setting: "--prometheus-job",
                reason: "the job label must not be empty".into(),
            });
        }
        let gpu = normalize_selector(&settings.gpu_selector);
        if !gpu.is_empty() && !gpu.ends_with('}') {
            return Err(PromError::BadSetting {
                setting: "--gpu-selector",
                reason: format!(
                    "{:?} is not a label selector like {{gpu=\"0\"}}",
                    settings.gpu_selector
                ),
            });
        }
        let builder = reqwest::Client::builder()
            .timeout(settings.query_timeout + HTTP_SLACK)
            .connect_timeout(std::time::Duration::from_secs(5));
        let http = tls
            .apply(builder, &transport::PROMETHEUS)
            .build()
            .map_err(PromError::Build)?;
        let shown_url = redact_url(base.as_str()).trim_end_matches('/').to_string();
        let client = Client::from(http, base.as_str()).map_err(|e| {
            PromError::BadUrl(crate::urls::UrlError {
                flag: FLAG,
                shown: shown_url.clone(),
                reason: e.to_string(),
            })
        })?;
        Ok(PrometheusCollector {
            settings,
            client,
            base,
            shown_url,
            retry: RetryPolicy::QUERIES,
        })
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &PromSettings {
        &self.settings
    }

    /// The Prometheus URL as shown in messages (no credentials).
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// The seed window a load would be queried over (see [`plan_seed_window`]).
    pub fn plan(&self, span: &LoadSpan) -> WindowPlan {
        plan_seed_window(&self.settings, span)
    }

    pub(crate) fn endpoint(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        let joined = format!("{}/{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    /// `GET /-/ready` (with retries). Call it before the load, so a wrong `--prometheus-url`
    /// fails fast with an error naming the URL instead of after the whole load.
    pub async fn check_ready(&self) -> Result<(), PromError> {
        let url = self.endpoint("-/ready");
        retry::run(&self.retry, "GET /-/ready", || async {
            let resp = self
                .client
                .inner()
                .get(url.clone())
                .timeout(READY_TIMEOUT)
                .send()
                .await
                .map_err(|e| self.transport(e.into()))?;
            let status = resp.status().as_u16();
            if status == 200 {
                return Ok(());
            }
            Err(Attempt {
                outcome: AttemptOutcome::Status(status),
                retry_after: retry_after(resp.headers()),
                error: Box::new(PromError::NotReady {
                    url: self.shown_url.clone(),
                    status,
                    attempts: 1,
                }),
            })
        })
        .await
    }

    fn transport(&self, source: super::error::BoxError) -> Attempt {
        let source = transport::explain_certificate_error(&transport::PROMETHEUS, source);
        Attempt {
            outcome: retry::transport_outcome(source.as_ref()),
            retry_after: None,
            error: Box::new(PromError::Unreachable {
                what: WHAT,
                url: self.shown_url.clone(),
                attempts: 1,
                source,
            }),
        }
    }

    /// One instant query at `time_unix` (POST, with retries). Empty results, NaN and ±Inf come
    /// back as they are; the caller decides what they mean.
    pub async fn instant_query(
        &self,
        promql: &str,
        time_unix: i64,
    ) -> Result<InstantAnswer, PromError> {
        let answer = self
            .query_data(promql, time_unix.saturating_mul(1000))
            .await?;
        InstantAnswer::from_data(&answer.data, answer.warnings).map_err(|message| {
            PromError::Parse {
                what: WHAT,
                url: self.shown_url.clone(),
                message,
            }
        })
    }

    /// One instant query evaluated at `at_ms` (unix milliseconds; Prometheus keeps timestamps
    /// to the millisecond), returning its data as sent: a vector, a scalar, or a matrix of raw
    /// samples for a range selector (`x[90s]`). POST, with retries.
    pub async fn query_data(&self, promql: &str, at_ms: i64) -> Result<QueryData, PromError> {
        let timeout_ms = i64::try_from(self.settings.query_timeout.as_millis()).unwrap_or(i64::MAX);
        let time = unix_ms_param(at_ms);
        retry::run(&self.retry, promql, || async {
            let resp = self
                .client
                .query(promql)
                .query("time", &time)
                .timeout(timeout_ms)
                .post_raw()
                .await
                .map_err(|e| self.transport(e.into()))?;
            let status = resp.status().as_u16();
            let after = retry_after(resp.headers());
            let body = resp.text().await.map_err(|e| self.transport(e.into()))?;
            self.read_answer(promql, status, after, &body)
        })
        .await
    }

    /// `GET <prometheus>/<path>` with retries, its JSON `data` (for the read APIs beside
    /// `/api/v1/query`, e.g. `/api/v1/targets`).
    pub(crate) async fn get_api(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<serde_json::Value, PromError> {
        let mut url = self.endpoint(path);
        url.set_query(query);
        retry::run(&self.retry, path, || async {
            let resp = self
                .client
                .inner()
                .get(url.clone())
                .send()
                .await
                .map_err(|e| self.transport(e.into()))?;
            let status = resp.status().as_u16();
            let after = retry_after(resp.headers());
            let body = resp.text().await.map_err(|e| self.transport(e.into()))?;
            let parsed: Result<serde_json::Value, _> = serde_json::from_str(&body);
            match parsed {
                Ok(v) if (200..300).contains(&status) && v["status"] == "success" => {
                    Ok(v["data"].clone())
                }
                _ => Err(Attempt {
                    outcome: AttemptOutcome::Status(if (200..300).contains(&status) {
                        400
                    } else {
                        status
                    }),
                    retry_after: after,
                    error: Box::new(PromError::Http {
                        url: self.shown_url.clone(),
                        status,
                        error_type: "http".into(),
                        error: snippet(&body),
                        query: path.to_string(),
                    }),
                }),
            }
        })
        .await
    }

    fn read_answer(
        &self,
        promql: &str,
        status: u16,
        after: Option<std::time::Duration>,
        body: &str,
    ) -> Result<QueryData, Attempt> {
        let http_error = |error_type: String, error: String| PromError::Http {
            url: self.shown_url.clone(),
            status,
            error_type,
            error,
            query: promql.to_string(),
        };
        let ok = (200..300).contains(&status);
        match (serde_json::from_str::<Envelope>(body), ok) {
            (
                Ok(Envelope::Success {
                    data,
                    mut warnings,
                    infos,
                }),
                true,
            ) => {
                warnings.extend(infos);
                Ok(QueryData { data, warnings })
            }
            (Ok(Envelope::Error { error_type, error }), _) => {
                // A 200 with status "error" is classified by its errorType.
                let failure = match (ok, error_type.as_str()) {
                    (false, _) => AttemptOutcome::Status(status),
                    (true, "timeout" | "unavailable" | "internal") => AttemptOutcome::Status(503),
                    (true, _) => AttemptOutcome::Status(400),
                };
                Err(Attempt {
                    outcome: failure,
                    retry_after: after,
                    error: Box::new(http_error(error_type, error)),
                })
            }
            (Ok(Envelope::Success { .. }) | Err(_), false) => Err(Attempt {
                outcome: AttemptOutcome::Status(status),
                retry_after: after,
                error: Box::new(http_error("http".into(), snippet(body))),
            }),
            (Err(e), true) => Err(Attempt {
                outcome: AttemptOutcome::Status(status),
                retry_after: None,
                error: Box::new(PromError::Parse {
                    what: WHAT,
                    url: self.shown_url.clone(),
                    message: format!("{e}; body starts {:?}", snippet(body)),
                }),
            }),
        }
    }

    /// Sends every query of the plan at `T` without waiting, and assembles the figures.
    /// Unreachable Prometheus (after retries) or a rejected query is an error; a query with no
    /// data is a missing figure with its reason.
    pub async fn query_at(
        &self,
        plan: &WindowPlan,
        span: &LoadSpan,
    ) -> Result<ServerMetrics, PromError> {
        let mut m = empty_metrics(ServerSource::Prometheus);
        m.window = Some(plan.query_window());
        let interval = self
            .settings
            .scrape_interval
            .unwrap_or(super::window::DEFAULT_SCRAPE_INTERVAL);
        m.warnings = window_warnings(interval, plan, span);
        m.integrity.unconfirmed.push(
            "seed window: chosen by arithmetic from the clock, not anchored on confirmed samples (counts are not checked)".into(),
        );
        let at_ms = plan.eval_time_unix.saturating_mul(1000);
        let mut results = Vec::new();
        for q in build_queries(&self.settings, plan) {
            let (metric, outcome) = self.resolve(&q, at_ms, &mut m).await?;
            results.push(FigureResult {
                figure: q.figure,
                measured: measured(&q, &metric, outcome, &format!("{}s", plan.range_s)),
            });
        }
        assemble(&mut m, &results, span.duration_s());
        Ok(m)
    }

    /// Runs a query, and its alias when the primary matches no series; records both.
    pub(crate) async fn resolve(
        &self,
        q: &NamedQuery,
        at_ms: i64,
        m: &mut ServerMetrics,
    ) -> Result<(String, Outcome), PromError> {
        let primary = self.run_recorded(&q.name, &q.promql, at_ms, m).await?;
        let mut chosen = (q.metric.clone(), primary);
        if primary == Outcome::Empty
            && let Some(alias) = &q.alias
        {
            let name = format!("{} (alias)", q.name);
            let second = self.run_recorded(&name, &alias.promql, at_ms, m).await?;
            if second != Outcome::Empty {
                chosen = (alias.metric.clone(), second);
            }
        }
        if let Some(key) = alias_key(q.figure)
            && (q.alias.is_some() && chosen.1 != Outcome::Empty)
        {
            record_resolved(&mut m.resolved_names, key, &chosen.0);
        }
        Ok(chosen)
    }

    async fn run_recorded(
        &self,
        name: &str,
        promql: &str,
        at_ms: i64,
        m: &mut ServerMetrics,
    ) -> Result<Outcome, PromError> {
        m.queries.push(QueryRecord {
            name: name.to_string(),
            query: promql.to_string(),
        });
        tracing::debug!(%name, %promql, time = %unix_ms_param(at_ms), "PromQL");
        let answer = self.query_data(promql, at_ms).await?;
        let answer =
            InstantAnswer::from_data(&answer.data, answer.warnings).map_err(|message| {
                PromError::Parse {
                    what: WHAT,
                    url: self.shown_url.clone(),
                    message,
                }
            })?;
        for w in &answer.warnings {
            m.warnings
                .push(format!("Prometheus warning on {name}: {w}"));
        }
        if answer.series > 1 {
            m.warnings.push(format!(
                "{name} returned {} series; the first was used",
                answer.series
            ));
        }
        Ok(answer.outcome())
    }

    /// Seed window mode: plans the seed's window, sleeps until its time `T` (`--scrape-wait`
    /// after the load), then runs [`query_at`](Self::query_at).
    pub async fn collect_seed(&self, span: &LoadSpan) -> Result<ServerMetrics, PromError> {
        let plan = self.plan(span);
        let wait = (plan.wait_until - Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            tracing::info!(
                wait_s = wait.as_secs_f64(),
                range_s = plan.range_s,
                eval_time = plan.eval_time_unix,
                "waiting for the Prometheus scrape after the load"
            );
            tokio::time::sleep(wait).await;
        }
        self.query_at(&plan, span).await
    }
}

/// What one query returned: its data as Prometheus sent it, and its `warnings` and `infos`.
#[derive(Debug)]
pub struct QueryData {
    /// Vector, scalar or matrix.
    pub data: prometheus_http_query::response::Data,
    /// Prometheus's warnings and infos about the query.
    pub warnings: Vec<String>,
}

/// The `time` parameter for unix milliseconds: seconds with three decimals.
pub(crate) fn unix_ms_param(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// Key in `resolved_names` for figures whose metric has an alias.
fn alias_key(figure: Figure) -> Option<&'static str> {
    match figure {
        Figure::Quantile(Latency::Itl, _) => Some("itl"),
        Figure::KvCacheMax | Figure::KvCacheAvg => Some("kv_cache_usage"),
        _ => None,
    }
}

fn record_resolved(names: &mut BTreeMap<String, String>, key: &str, metric: &str) {
    names
        .entry(key.to_string())
        .or_insert_with(|| metric.to_string());
}

/// The first 200 characters of a body, for messages.
fn snippet(body: &str) -> String {
    let t = body.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests;
