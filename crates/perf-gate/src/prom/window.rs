//! Settings and the query window: which range `[W]` every query covers and at which time `T` it
//! is evaluated (DESIGN.md, "Windows").
//!
//! - End-anchored (default): `T` = load end + scrape interval + 2 s, rounded up to a whole second
//!   (the API's `time` takes whole seconds here); `W` = `T` − load start, rounded up, so the range
//!   covers the whole load. The answer then does not depend on when the query runs.
//! - Seed (`--window-mode seed`): `W` = load duration rounded up to the minute, at least 60 s;
//!   `T` = load end + `--scrape-wait`, rounded up. The same queries are used; only `W` and `T`
//!   change. For loads longer than `W − scrape_wait` this window misses the start of the load
//!   (the seed's behaviour, kept for comparison; a warning says so).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::results::{QueryWindow, WindowMode};

/// Default `job` label of the vLLM scrape job (the seed's).
pub const DEFAULT_JOB: &str = "vllm-service";
/// Default Prometheus scrape interval assumed (the seed's Prometheus).
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(30);
/// Default wait after the load in seed window mode.
pub const DEFAULT_SCRAPE_WAIT: Duration = Duration::from_secs(20);
/// Default selector of the DCGM GPU series (the seed's).
pub const DEFAULT_GPU_SELECTOR: &str = r#"{gpu="0"}"#;
/// Default per-query timeout.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds added after the last expected scrape before evaluating (inference-perf uses 2 s too).
pub const SCRAPE_BUFFER: Duration = Duration::from_secs(2);

/// Which series to read from Prometheus and how to window them (the URL is given to
/// [`super::PrometheusCollector::new`] beside these).
#[derive(Debug, Clone, PartialEq)]
pub struct PromSettings {
    /// `job` label of the vLLM scrape job; every vLLM query carries `job="<job>"`.
    pub job: String,
    /// Prometheus's scrape interval for the vLLM job.
    pub scrape_interval: Duration,
    /// Wait after the load in seed window mode.
    pub scrape_wait: Duration,
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
    /// The seed's job label, scrape interval and wait; end-anchored windows; GPU 0.
    fn default() -> Self {
        PromSettings {
            job: DEFAULT_JOB.to_string(),
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_wait: DEFAULT_SCRAPE_WAIT,
            window_mode: WindowMode::EndAnchored,
            gpu_selector: DEFAULT_GPU_SELECTOR.to_string(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
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

/// The window every query of a run uses.
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
            range_s: self.range_s,
            eval_time_unix: self.eval_time_unix,
            eval_time: self
                .wait_until
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
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

/// Chooses `W` and `T` for a load (see the module docs for the rules).
pub fn plan_window(settings: &PromSettings, span: &LoadSpan) -> WindowPlan {
    let start = nanos(span.start);
    let end = nanos(span.end).max(start);
    let (t, w) = match settings.window_mode {
        WindowMode::EndAnchored => {
            let t = ceil_div(
                end + settings.scrape_interval.as_nanos() as i128
                    + SCRAPE_BUFFER.as_nanos() as i128,
                NS,
            );
            let w = ceil_div(t * NS - start, NS).max(1);
            (t, w)
        }
        WindowMode::Seed => {
            let t = ceil_div(end + settings.scrape_wait.as_nanos() as i128, NS);
            let w = (ceil_div(end - start, 60 * NS) * 60).max(60);
            (t, w)
        }
    };
    WindowPlan {
        mode: settings.window_mode,
        range_s: u64::try_from(w).unwrap_or(u64::MAX),
        eval_time_unix: i64::try_from(t).unwrap_or(i64::MAX),
        wait_until: seconds_to_time(t),
    }
}

/// Caveats about a window, for `ServerMetrics.warnings`.
pub(crate) fn window_warnings(
    settings: &PromSettings,
    plan: &WindowPlan,
    span: &LoadSpan,
) -> Vec<String> {
    let mut out = Vec::new();
    let interval = settings.scrape_interval.as_secs_f64();
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
            mode_name(plan.mode),
            window_start - load_start
        ));
    }
    out
}

/// The mode's name as written in the results (`end_anchored`, `seed`).
pub(crate) fn mode_name(mode: WindowMode) -> &'static str {
    match mode {
        WindowMode::EndAnchored => "end_anchored",
        WindowMode::Seed => "seed",
    }
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
    fn end_anchored_rounds_up_and_covers_the_whole_load() {
        // Load 1000.500 .. 1060.001; T = 1060.001 + 30 + 2 = 1092.001 -> 1093;
        // W = 1093 - 1000.5 = 92.5 -> 93, so the range starts at 1000 <= 1000.5.
        let span = LoadSpan {
            start: at(1000, 500),
            end: at(1060, 1),
        };
        let p = plan_window(&settings(WindowMode::EndAnchored), &span);
        assert_eq!(p.eval_time_unix, 1093);
        assert_eq!(p.range_s, 93);
        assert_eq!(p.wait_until, at(1093, 0));
        assert_eq!(p.mode, WindowMode::EndAnchored);
        // Whole-second end: no rounding. T = 1060 + 32 = 1092, W = 1092 - 1000 = 92.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 0),
        };
        let p = plan_window(&settings(WindowMode::EndAnchored), &span);
        assert_eq!((p.eval_time_unix, p.range_s), (1092, 92));
    }

    #[test]
    fn end_anchored_uses_the_scrape_interval() {
        let s = PromSettings {
            scrape_interval: Duration::from_secs(1),
            ..settings(WindowMode::EndAnchored)
        };
        // T = 10.2 + 1 + 2 = 13.2 -> 14; W = 14 - 5.9 = 8.1 -> 9.
        let span = LoadSpan {
            start: at(5, 900),
            end: at(10, 200),
        };
        let p = plan_window(&s, &span);
        assert_eq!((p.eval_time_unix, p.range_s), (14, 9));
        assert!(window_warnings(&s, &p, &span).is_empty());
    }

    #[test]
    fn seed_rounds_the_duration_up_to_the_minute_with_a_minimum() {
        let s = settings(WindowMode::Seed);
        // 25 s load -> W = 60 (minimum); T = 1025 + 20 = 1045.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1025, 0),
        };
        let p = plan_window(&s, &span);
        assert_eq!((p.eval_time_unix, p.range_s), (1045, 60));
        // Exactly 60 s stays 60; 60.001 s becomes 120; T rounds up at .001 s.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 0),
        };
        assert_eq!(plan_window(&s, &span).range_s, 60);
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 1),
        };
        let p = plan_window(&s, &span);
        assert_eq!((p.eval_time_unix, p.range_s), (1081, 120));
        assert_eq!(p.mode, WindowMode::Seed);
        // Zero-length load still gets the 1-minute minimum.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1000, 0),
        };
        assert_eq!(plan_window(&s, &span).range_s, 60);
    }

    #[test]
    fn seed_window_that_misses_the_load_start_is_flagged() {
        let s = settings(WindowMode::Seed);
        // 60 s load: W = 60, T = 1080, window starts at 1020, 20 s after the load began.
        let span = LoadSpan {
            start: at(1000, 0),
            end: at(1060, 0),
        };
        let p = plan_window(&s, &span);
        let w = window_warnings(&s, &p, &span);
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

    #[test]
    fn query_window_record() {
        let span = LoadSpan {
            start: at(1_795_445_400, 0),
            end: at(1_795_445_430, 0),
        };
        let p = plan_window(&settings(WindowMode::EndAnchored), &span);
        let w = p.query_window();
        assert_eq!(w.eval_time_unix, 1_795_445_462);
        assert_eq!(w.range_s, 62);
        assert_eq!(w.eval_time, "2026-11-23T14:51:02Z");
        assert!((span.duration_s() - 30.0).abs() < 1e-9);
    }
}
