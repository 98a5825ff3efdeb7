//! Settings and the query window: which range `[W]` every query covers and at which time `T` it
//! is evaluated (DESIGN.md and README, "Windows").
//!
//! - End-anchored (default): the window rests on confirmed scrape samples, not on arithmetic
//!   from the clock: its left edge is every target's last sample before the load (taken after
//!   the pre-flight and warm-up, nothing running, counts unchanged), `T` the first scrape time
//!   after the load at which every target is quiet and has counted the load
//!   ([`super::confirm`]; collected by [`super::PrometheusCollector::collect_confirmed`]). `W` = `T` − load start.
//! - Seed (`--window-mode seed`): `W` = load duration rounded up to the minute, at least 60 s;
//!   `T` = load end + `--scrape-wait` (20 s), rounded up ([`plan_seed_window`]). For loads longer
//!   than `W − scrape_wait` this window misses the start of the load (the seed's behaviour,
//!   kept for comparison; a warning says so).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::results::{QueryWindow, WindowMode};

/// Default `job` label of the vLLM scrape job (the seed's).
pub const DEFAULT_JOB: &str = "vllm-service";
/// Scrape interval assumed when `--scrape-interval auto` finds none in Prometheus (the seed's
/// Prometheus, and kube-prometheus's default).
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(30);
/// Wait after the load in seed window mode (the seed's).
pub const DEFAULT_SCRAPE_WAIT: Duration = Duration::from_secs(20);
/// Prometheus's service-discovery delay: a target can appear up to this long after it exists.
pub const DISCOVERY_DELAY: Duration = Duration::from_secs(5);
/// Default selector of the DCGM GPU series (the seed's).
pub const DEFAULT_GPU_SELECTOR: &str = r#"{gpu="0"}"#;
/// Default per-query timeout.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which series to read from Prometheus and how to window them (the URL is given to
/// [`super::PrometheusCollector::new`] beside these).
#[derive(Debug, Clone, PartialEq)]
pub struct PromSettings {
    /// `job` label of the vLLM scrape job; every vLLM query carries `job="<job>"`.
    pub job: String,
    /// Prometheus's scrape interval for the vLLM job; `None` (`auto`): read from Prometheus's
    /// `/api/v1/targets`, else [`DEFAULT_SCRAPE_INTERVAL`].
    pub scrape_interval: Option<Duration>,
    /// End-anchored: the longest wait for confirmed samples, before and after the load;
    /// `None` (`auto`): two scrape intervals + [`DISCOVERY_DELAY`]. Seed: the fixed wait after
    /// the load; `None`: [`DEFAULT_SCRAPE_WAIT`].
    pub scrape_wait: Option<Duration>,
    /// Window rule.
    pub window_mode: WindowMode,
    /// Label selector of the DCGM series, braces included (e.g. `{gpu="0"}`); `gpu="0"` without
    /// braces is accepted, and an empty string selects every GPU series. The vLLM `job` label is
    /// NOT added: DCGM exporters are scraped by their own job.
    pub gpu_selector: String,
    /// Timeout of one query (sent to Prometheus as `timeout`, and bounding the HTTP request).
    pub query_timeout: Duration,
}

impl Default for PromSettings {
    /// The seed's job label; `auto` interval and wait; end-anchored windows; GPU 0.
    fn default() -> Self {
        PromSettings {
            job: DEFAULT_JOB.to_string(),
            scrape_interval: None,
            scrape_wait: None,
            window_mode: WindowMode::EndAnchored,
            gpu_selector: DEFAULT_GPU_SELECTOR.to_string(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }
}

impl PromSettings {
    /// The longest wait for confirmed samples at `interval`: `--scrape-wait`, else two scrape
    /// intervals + the discovery delay.
    pub fn confirm_bound(&self, interval: Duration) -> Duration {
        self.scrape_wait
            .unwrap_or(interval.saturating_mul(2) + DISCOVERY_DELAY)
    }
}

/// When the load ran: first request sent to last request finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSpan {
    /// First request sent.
    pub start: DateTime<Utc>,
    /// Last request finished.
    pub end: DateTime<Utc>,
}

impl LoadSpan {
    /// `end - start` in seconds (0 if `end` precedes `start`).
    pub fn duration_s(&self) -> f64 {
        let d = self.end - self.start;
        (d.num_nanoseconds()
            .map_or(d.num_milliseconds() as f64 / 1e3, |n| n as f64 / 1e9))
        .max(0.0)
    }
}

/// The seed window of a run: whole seconds, as the seed computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    /// Rule that produced it.
    pub mode: WindowMode,
    /// Range `W` of every windowed query, whole seconds.
    pub range_s: u64,
    /// Evaluation time `T`, whole unix seconds.
    pub eval_time_unix: i64,
    /// Do not query before this instant (= `T`), so the scrape after the load is in.
    pub wait_until: DateTime<Utc>,
}

impl WindowPlan {
    /// The record of this window for `ServerMetrics.window`.
    pub fn query_window(&self) -> QueryWindow {
        QueryWindow {
            mode: self.mode,
            range_s: self.range_s as f64,
            eval_time_unix: self.eval_time_unix as f64,
            eval_time: self
                .wait_until
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            scrape_interval_s: None,
            scrape_interval_source: None,
            waited_before_load_s: None,
            waited_after_load_s: None,
            samples: Vec::new(),
        }
    }
}

const NS: i128 = 1_000_000_000;

fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * NS + i128::from(t.timestamp_subsec_nanos())
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

fn seconds_to_time(secs: i128) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The seed's window: `W` = the load's duration rounded up to the minute (at least 60 s),
/// `T` = load end + `--scrape-wait` (default 20 s), rounded up to a whole second.
pub fn plan_seed_window(settings: &PromSettings, span: &LoadSpan) -> WindowPlan {
    let start = nanos(span.start);
    let end = nanos(span.end).max(start);
    let wait = settings.scrape_wait.unwrap_or(DEFAULT_SCRAPE_WAIT);
    let t = ceil_div(end + wait.as_nanos() as i128, NS);
    let w = (ceil_div(end - start, 60 * NS) * 60).max(60);
    WindowPlan {
        mode: WindowMode::Seed,
        range_s: u64::try_from(w).unwrap_or(u64::MAX),
        eval_time_unix: i64::try_from(t).unwrap_or(i64::MAX),
        wait_until: seconds_to_time(t),
    }
}

/// Caveats about a seed window, for `ServerMetrics.warnings`.
pub(crate) fn window_warnings(
    interval: Duration,
    plan: &WindowPlan,
    span: &LoadSpan,
) -> Vec<String> {
    let mut out = Vec::new();
    let interval = interval.as_secs_f64();
    if interval > 0.0 && (plan.range_s as f64) < 4.0 * interval {
        out.push(format!(
            "window {}s is shorter than 4 scrape intervals ({}s): rate() rests on few samples",
            plan.range_s,
            4.0 * interval
        ));
    }
    let window_start = plan.eval_time_unix as f64 - plan.range_s as f64;
    let load_start = nanos(span.start) as f64 / 1e9;
    if window_start > load_start {
        out.push(format!(
            "the {} window starts {:.1}s after the load began: the start of the load is not counted",
            plan.mode.as_str(),
            window_start - load_start
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, millis * 1_000_000).unwrap()
    }

    fn settings(mode: WindowMode) -> PromSettings {
        PromSettings {
            window_mode: mode,
            ..PromSettings::default()
        }
    }

    #[test]
    fn seed_rounds_the_duration_up_to_the_minute_with_a_minimum() {
        let s = settings(WindowMode::Seed);
        // 25 s load -> W = 60 (minimum); T = 1025 + 20 = 1045.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1025, 0),
        };
        let p = plan_seed_window(&s, &span);
        assert_eq!((p.eval_time_unix, p.range_s), (1045, 60));
        // Exactly 60 s stays 60; 60.001 s becomes 120; T rounds up at .001 s.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 0),
        };
        assert_eq!(plan_seed_window(&s, &span).range_s, 60);
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 1),
        };
        let p = plan_seed_window(&s, &span);
        assert_eq!((p.eval_time_unix, p.range_s), (1081, 120));
        assert_eq!(p.mode, WindowMode::Seed);
        // Zero-length load still gets the 1-minute minimum.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1000, 0),
        };
        assert_eq!(plan_seed_window(&s, &span).range_s, 60);
    }

    #[test]
    fn seed_window_that_misses_the_load_start_is_flagged() {
        let s = settings(WindowMode::Seed);
        // 60 s load: W = 60, T = 1080, window starts at 1020, 20 s after the load began.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 0),
        };
        let p = plan_seed_window(&s, &span);
        let w = window_warnings(DEFAULT_SCRAPE_INTERVAL, &p, &span);
        assert!(
            w.iter()
                .any(|m| m.contains("starts 20.0s after the load began")),
            "{w:?}"
        );
        // Default 30 s scrape: a 60 s window is shorter than 4 intervals.
        assert!(
            w.iter()
                .any(|m| m.contains("shorter than 4 scrape intervals")),
            "{w:?}"
        );
    }
}
