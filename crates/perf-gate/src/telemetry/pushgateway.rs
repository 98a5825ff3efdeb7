//! The client's live figures pushed to a Prometheus Pushgateway (seed 002,
//! `--pushgateway-url`), under seed 002's metric names (`llm_ttft_p50_seconds`, ...).
//!
//! - What: a [`Figures`] snapshot rendered as the Prometheus text exposition format
//!   ([`render`]): TTFT, ITL and end-to-end (`llm_client_lag_*`, seed 002's name) percentiles
//!   p50/p90/p99, the request rate, output tokens per second, the error rate and the contention
//!   error rate (timeouts and 503s), requests in flight (`llm_active_users`), the running
//!   totals, and the run's state (`llm_run_finished`, `llm_run_status{status}`).
//! - Where: `PUT <url>/metrics/job/<job>/instance/<instance>/adapter/<adapter>`
//!   ([`group_path`]): a PUT replaces the whole group, so a figure that has no value yet
//!   (no successful request) is absent rather than stale. Label values are percent-encoded; a
//!   value holding `/` (or an empty one) uses the Pushgateway's `<label>@base64/<value>` form.
//! - When: every `--push-interval` while the load runs, from the snapshot the aggregator
//!   thread publishes ([`LiveFigures`], HDR-histogram percentiles over the measured requests of
//!   the candidate adapter, rates since the load's start), and once at the end from the final
//!   results (exact percentiles: the pushed values are the results' client figures) with
//!   `llm_run_finished 1`. The group is then kept, so Prometheus scrapes the final values;
//!   `--pushgateway-delete` deletes it instead.
//! - Failures: a push that fails is counted; the run goes on, and the results get one warning
//!   with the count and the last error. The push runs on its own tokio task, never on the
//!   aggregator thread.
//! - Auth: optional HTTP Basic (`--pushgateway-username`, `PUSHGATEWAY_PASSWORD`); the
//!   password is a registered secret ([`crate::secrets`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::results::{ClientMetrics, Distribution, RunStatus};
use crate::urls::redact_url;

/// `job` of the grouping key by default (`--pushgateway-job`).
pub const DEFAULT_JOB: &str = "vllm_perf_gate";
/// How often the live figures are pushed by default (`--push-interval`; seed 002's 5 s).
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Deadline of one push (or delete): a slow gateway delays the end of the run by at most this.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to push, and the board the run publishes its live figures on.
#[derive(Clone)]
pub struct PushgatewaySettings {
    /// Base URL of the Pushgateway (checked: absolute http(s), no trailing `/`).
    pub url: String,
    /// `job` of the grouping key.
    pub job: String,
    /// `instance` of the grouping key (the host name by default: [`default_instance`]).
    pub instance: String,
    /// How often the live figures are pushed.
    pub interval: Duration,
    /// HTTP Basic user name, if the gateway wants one.
    pub username: Option<String>,
    /// HTTP Basic password (a secret: never logged or written).
    pub password: Option<String>,
    /// Delete the group at the end (after the final push) instead of keeping it.
    pub delete_at_end: bool,
    /// The live figures the aggregator publishes and the pusher reads (shared by clones, so a
    /// sweep's steps publish on the same board).
    pub figures: Arc<LiveFigures>,
}

impl std::fmt::Debug for PushgatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushgatewaySettings")
            .field("url", &redact_url(&self.url))
            .field("job", &self.job)
            .field("instance", &self.instance)
            .field("interval", &self.interval)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("delete_at_end", &self.delete_at_end)
            .finish_non_exhaustive()
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`), else `load-test`: the
/// default `instance` of the grouping key.
pub fn default_instance() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "load-test".into())
}

/// p50, p90 and p99 of one latency, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

impl From<&Distribution> for Percentiles {
    fn from(d: &Distribution) -> Self {
        Percentiles {
            p50: d.p50,
            p90: d.p90,
            p99: d.p99,
        }
    }
}

/// One snapshot of the client's figures (of the candidate adapter's measured requests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Requests finished.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which failed by a timeout or a 503 (seed 002's contention errors).
    pub contention_errors: u64,
    /// Output tokens received.
    pub output_tokens: u64,
    /// Requests in flight (seed 002's active users); 0 at the end.
    pub in_flight: u64,
    /// Successful requests per second.
    pub requests_per_s: Option<f64>,
    /// Output tokens per second.
    pub output_tokens_per_s: Option<f64>,
    /// Time to first token.
    pub ttft: Percentiles,
    /// Inter-token latency.
    pub itl: Percentiles,
    /// End-to-end latency.
    pub e2e: Percentiles,
}

/// Failures counted as contention (seed 002: timeouts and 503s), from an `errors_by_kind` map.
pub fn contention_errors<'a>(errors: impl IntoIterator<Item = (&'a String, &'a u64)>) -> u64 {
    errors
        .into_iter()
        .filter(|(k, _)| matches!(k.as_str(), "timeout" | "http_503"))
        .map(|(_, n)| n)
        .sum()
}

impl Figures {
    /// The final figures of a run, as the results state them.
    pub fn from_client(c: &ClientMetrics) -> Self {
        Figures {
            requests: c.total_requests,
            failed: c.failed_requests,
            contention_errors: contention_errors(&c.errors_by_kind),
            output_tokens: c.output_tokens,
            in_flight: 0,
            requests_per_s: c.requests_per_s,
            output_tokens_per_s: c.output_tokens_per_s,
            ttft: (&c.ttft_s).into(),
            itl: (&c.itl_s).into(),
            e2e: (&c.e2e_s).into(),
        }
    }
}

/// The latest live [`Figures`], published by the aggregator thread at most every `every`
/// and read by the pusher. A lock held for a copy, never across I/O.
#[derive(Debug)]
pub struct LiveFigures {
    every: Duration,
    latest: Mutex<Option<Figures>>,
}

impl LiveFigures {
    /// A board the aggregator publishes on every `every` (at most the push interval: a
    /// push shows a snapshot at most `every` old).
    pub fn new(every: Duration) -> Self {
        LiveFigures {
            every,
            latest: Mutex::new(None),
        }
    }

    /// How often the aggregator publishes.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Replaces the snapshot.
    pub fn publish(&self, f: Figures) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// The latest snapshot, if any was published.
    pub fn latest(&self) -> Option<Figures> {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether the run is still going (`llm_run_finished 0`) or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// The load is running.
    Running,
    /// The run ended with this status.
    Finished(RunStatus),
}

/// The exposition text of `f` in state `state`: one gauge per figure (absent when it has no
/// value), the totals as counters, then `llm_run_finished` and `llm_run_status{status}`.
pub fn render(f: &Figures, state: RunState) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            // `{}` of an f64 is its shortest round-trip form: a reader gets the value exactly
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        }
    };
    for (what, p, help) in [
        ("ttft", &f.ttft, "time to first token"),
        ("itl", &f.itl, "inter-token latency"),
        ("client_lag", &f.e2e, "end-to-end request latency"),
    ] {
        for (q, v) in [("p50", p.p50), ("p90", p.p90), ("p99", p.p99)] {
            metric(
                &format!("llm_{what}_{q}_seconds"),
                "gauge",
                &format!("{q} of the client's {help}, seconds"),
                v,
            );
        }
    }
    let rate = |n: u64| {
        (f.requests > 0)
            .then(|| n as f64 / f.requests as f64)
            .or(Some(0.0))
    };
    metric(
        "llm_request_rate_per_second",
        "gauge",
        "successful requests per second",
        f.requests_per_s,
    );
    metric(
        "llm_tokens_per_second",
        "gauge",
        "output tokens per second",
        f.output_tokens_per_s,
    );
    metric(
        "llm_error_rate",
        "gauge",
        "failed requests / finished requests",
        rate(f.failed),
    );
    metric(
        "llm_contention_error_rate",
        "gauge",
        "timeouts and 503s / finished requests",
        rate(f.contention_errors),
    );
    metric(
        "llm_active_users",
        "gauge",
        "requests in flight",
        Some(f.in_flight as f64),
    );
    metric(
        "llm_requests_total",
        "counter",
        "requests finished",
        Some(f.requests as f64),
    );
    metric(
        "llm_requests_failed_total",
        "counter",
        "requests failed",
        Some(f.failed as f64),
    );
    metric(
        "llm_output_tokens_total",
        "counter",
        "output tokens received",
        Some(f.output_tokens as f64),
    );
    let (finished, status) = match state {
        RunState::Running => (0.0, "running"),
        RunState::Finished(s) => (1.0, s.as_str()),
    };
    metric(
        "llm_run_finished",
        "gauge",
        "1 once the run has ended (the figures are final)",
        Some(finished),
    );
    let _ = write!(
        out,
        "# HELP llm_run_status the run's status (running, completed, failed, aborted)\n\
         # TYPE llm_run_status gauge\nllm_run_status{{status=\"{status}\"}} 1\n"
    );
    out
}

/// Characters left as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path of a group: `/metrics/job/<job>/<label>/<value>...`, each value percent-encoded,
/// or `<label>@base64/<base64url>` when it holds a `/` or is empty (the Pushgateway's rule).
pub fn group_path(job: &str, labels: &[(&str, &str)]) -> String {
    let mut path = String::from("/metrics");
    for (name, value) in std::iter::once(&("job", job)).chain(labels) {
        if value.is_empty() || value.contains('/') {
            let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
            let encoded = if encoded.is_empty() {
                "=".into()
            } else {
                encoded
            };
            let _ = write!(path, "/{name}@base64/{encoded}");
        } else {
            let _ = write!(path, "/{name}/{}", utf8_percent_encode(value, SEGMENT));
        }
    }
    path
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The HTTP client could not be built.
    #[error("cannot build the Pushgateway client")]
    Client(#[source] reqwest::Error),
    /// No answer (refused, timed out, ...).
    #[error("no answer from the Pushgateway")]
    Send(#[source] reqwest::Error),
    /// The gateway refused the push.
    #[error("the Pushgateway answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
}

/// One group on one Pushgateway.
#[derive(Debug)]
pub struct Gateway {
    http: reqwest::Client,
    group_url: String,
    auth: Option<(String, Option<String>)>,
}

impl Gateway {
    /// The group of `adapter` per `settings`.
    pub fn new(settings: &PushgatewaySettings, adapter: &str) -> Result<Self, PushError> {
        let http = reqwest::Client::builder()
            .timeout(PUSH_TIMEOUT)
            .build()
            .map_err(PushError::Client)?;
        let path = group_path(
            &settings.job,
            &[("instance", &settings.instance), ("adapter", adapter)],
        );
        Ok(Gateway {
            http,
            group_url: format!("{}{path}", settings.url.trim_end_matches('/')),
            auth: settings
                .username
                .clone()
                .map(|u| (u, settings.password.clone())),
        })
    }

    /// The group's URL.
    pub fn group_url(&self) -> &str {
        &self.group_url
    }

    /// Replaces the group with `body` (exposition text).
    pub async fn put(&self, body: String) -> Result<(), PushError> {
        let req = self
            .http
            .put(&self.group_url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(body);
        self.send(req).await
    }

    /// Deletes the group.
    pub async fn delete(&self) -> Result<(), PushError> {
        self.send(self.http.delete(&self.group_url)).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> Result<(), PushError> {
        if let Some((user, pw)) = &self.auth {
            req = req.basic_auth(user, pw.as_deref());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PushError::Send(e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(PushError::Status {
            status: status.as_u16(),
            body: body
                .chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string(),
        })
    }
}

/// Pushes and failures so far.
#[derive(Debug, Default)]
struct PushLog {
    attempts: u64,
    failures: u64,
    last_error: Option<String>,
}

impl PushLog {
    fn record(&mut self, what: &str, res: Result<(), PushError>) {
        self.attempts += 1;
        if let Err(e) = res {
            let line = crate::secrets::scrub(&format!("{what}: {}", crate::step::error_line(&e)))
                .into_owned();
            if self.failures == 0 {
                // once: the results' warning carries the count
                tracing::warn!("Pushgateway {line} (further failures are counted, not logged)");
            }
            self.failures += 1;
            self.last_error = Some(line);
        }
    }
}

/// The periodic pusher of one run: [`Pusher::start`] at the run's start, [`Pusher::finish`]
/// at its end.
#[derive(Debug)]
pub struct Pusher {
    gateway: Arc<Gateway>,
    figures: Arc<LiveFigures>,
    delete_at_end: bool,
    stop: CancellationToken,
    task: JoinHandle<PushLog>,
}

impl Pusher {
    /// Starts pushing the live figures of `adapter` every `settings.interval` (from the first
    /// snapshot on) on a tokio task.
    pub fn start(settings: &PushgatewaySettings, adapter: &str) -> Result<Self, PushError> {
        let gateway = Arc::new(Gateway::new(settings, adapter)?);
        tracing::info!(group = %redact_url(gateway.group_url()), every = ?settings.interval, "pushing live figures to the Pushgateway");
        let stop = CancellationToken::new();
        let task = tokio::spawn(push_loop(
            gateway.clone(),
            settings.figures.clone(),
            settings.interval,
            stop.clone(),
        ));
        Ok(Pusher {
            gateway,
            figures: settings.figures.clone(),
            delete_at_end: settings.delete_at_end,
            stop,
            task,
        })
    }

    /// Stops the periodic pushes, pushes `last` (the final figures; else the latest live
    /// ones) with `llm_run_finished 1` and `status`, then deletes the group if asked. Returns
    /// the warning for the results when a push failed.
    pub async fn finish(self, last: Option<Figures>, status: RunStatus) -> Option<String> {
        self.stop.cancel();
        let mut log = self.task.await.unwrap_or_default();
        let figures = last.or_else(|| self.figures.latest()).unwrap_or_default();
        let body = render(&figures, RunState::Finished(status));
        log.record("final push", self.gateway.put(body).await);
        if self.delete_at_end {
            log.record("delete", self.gateway.delete().await);
        }
        (log.failures > 0).then(|| {
            format!(
                "Pushgateway: {} of {} requests to {} failed (last: {}); the run's figures are not affected",
                log.failures,
                log.attempts,
                redact_url(self.gateway.group_url()),
                log.last_error.as_deref().unwrap_or("unknown"),
            )
        })
    }
}

async fn push_loop(
    gateway: Arc<Gateway>,
    figures: Arc<LiveFigures>,
    every: Duration,
    stop: CancellationToken,
) -> PushLog {
    let mut log = PushLog::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(f) = figures.latest() else { continue };
        log.record("push", gateway.put(render(&f, RunState::Running)).await);
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Figures {
        Figures {
            requests: 10,
            failed: 2,
            contention_errors: 1,
            output_tokens: 80,
            in_flight: 3,
            requests_per_s: Some(4.0),
            output_tokens_per_s: Some(32.5),
            ttft: Percentiles {
                p50: Some(0.125),
                p90: Some(0.2),
                p99: None,
            },
            itl: Percentiles::default(),
            e2e: Percentiles {
                p50: Some(1.5),
                p90: Some(2.0),
                p99: Some(0.1 + 0.2),
            },
        }
    }

    #[test]
    fn exposition_text_has_seed_002_names_and_skips_missing_values() {
        let text = render(&sample(), RunState::Running);
        for line in [
            "# TYPE llm_ttft_p50_seconds gauge\nllm_ttft_p50_seconds 0.125\n",
            "llm_ttft_p90_seconds 0.2\n",
            "llm_client_lag_p50_seconds 1.5\n",
            // shortest round-trip form
            "llm_client_lag_p99_seconds 0.30000000000000004\n",
            "llm_request_rate_per_second 4\n",
            "llm_tokens_per_second 32.5\n",
            "llm_error_rate 0.2\n",
            "llm_contention_error_rate 0.1\n",
            "llm_active_users 3\n",
            "# TYPE llm_requests_total counter\nllm_requests_total 10\n",
            "llm_requests_failed_total 2\n",
            "llm_output_tokens_total 80\n",
            "llm_run_finished 0\n",
            "llm_run_status{status=\"running\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        assert!(!text.contains("llm_ttft_p99_seconds"), "{text}");
        assert!(!text.contains("llm_itl_"), "{text}");
        let done = render(
            &Figures::default(),
            RunState::Finished(RunStatus::Completed),
        );
        assert!(done.contains("llm_run_finished 1\n"), "{done}");
        assert!(done.contains("llm_run_status{status=\"completed\"} 1\n"));
        assert!(done.contains("llm_error_rate 0\n"), "{done}");
        // every sample line is `name[{labels}] value`, every HELP and TYPE names a sample
        for l in done.lines().chain(text.lines()) {
            assert!(
                l.starts_with("# HELP llm_")
                    || l.starts_with("# TYPE llm_")
                    || (l.starts_with("llm_") && l.split(' ').count() == 2),
                "{l:?}"
            );
        }
    }

    #[test]
    fn grouping_key_values_are_encoded_per_the_pushgateway_api() {
        assert_eq!(
            group_path(
                "vllm_perf_gate",
                &[("instance", "pod-1"), ("adapter", "a.b")]
            ),
            "/metrics/job/vllm_perf_gate/instance/pod-1/adapter/a.b"
        );
        // a `/` cannot be percent-encoded through the gateway's router: base64url
        assert_eq!(
            group_path("j", &[("adapter", "org/lora-v2")]),
            "/metrics/job/j/adapter@base64/b3JnL2xvcmEtdjI="
        );
        assert_eq!(
            group_path("j", &[("instance", "")]),
            "/metrics/job/j/instance@base64/="
        );
        assert_eq!(
            group_path("my job", &[("adapter", "ü?#%")]),
            "/metrics/job/my%20job/adapter/%C3%BC%3F%23%25"
        );
    }

    #[test]
    fn contention_is_timeouts_and_503s() {
        let m: std::collections::BTreeMap<String, u64> = [
            ("timeout".to_string(), 2),
            ("http_503".to_string(), 3),
            ("http_500".to_string(), 7),
        ]
        .into();
        assert_eq!(contention_errors(&m), 5);
    }
}
