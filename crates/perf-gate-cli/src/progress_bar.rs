//! `--progress`: load-test's live progress as a terminal bar (indicatif) on stderr, or the
//! plain progress log lines where no terminal reads it (Kubernetes logs, CI, a pipe).
//!
//! The bar is a [`ProgressView`]: the library's aggregator hands it a snapshot every
//! [`perf_gate::runner::progress::VIEW_TICK`] (no work per request), and it shows requests
//! done of planned (or time elapsed of a timed load's), successful requests per second, output
//! tokens per second, the P90 end-to-end latency, the error percentage and the time left; a
//! sweep's step is its prefix. Log lines go through [`suspend`] (the log writer calls it), so
//! they print above the bar instead of through it.

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use perf_gate::runner::progress::{LoadShape, ProgressView, Snapshot};

use crate::logging::LogFormat;

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal and logs are text; progress lines otherwise.
    #[default]
    Auto,
    /// A bar whenever stderr is a terminal (JSON logs too); progress lines otherwise.
    Bar,
    /// Progress log lines every --progress-interval, never a bar.
    Lines,
    /// Neither bar nor progress lines.
    Off,
}

/// What `--progress` comes to on this process's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The terminal bar.
    Bar,
    /// Progress log lines.
    Lines,
    /// Nothing.
    Off,
}

impl ProgressMode {
    /// The choice for this process: a bar needs stderr to be a terminal (and, for `auto`,
    /// text logs).
    pub fn resolve(self, logs: LogFormat) -> Progress {
        self.resolve_for(std::io::stderr().is_terminal(), logs)
    }

    fn resolve_for(self, terminal: bool, logs: LogFormat) -> Progress {
        match self {
            ProgressMode::Auto if terminal && logs == LogFormat::Text => Progress::Bar,
            ProgressMode::Bar if terminal => Progress::Bar,
            ProgressMode::Off => Progress::Off,
            _ => Progress::Lines,
        }
    }
}

/// The bars' common parent, once one is installed: log lines are written under its suspend.
static ACTIVE: OnceLock<MultiProgress> = OnceLock::new();

/// Runs `f` (a write to stderr) with any bar cleared first and redrawn after it.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match ACTIVE.get() {
        Some(m) => m.suspend(f),
        None => f(),
    }
}

/// The terminal bar of `load-test`: one bar per load (a sweep's step each), its last line
/// kept when the load ends.
pub struct TerminalBar {
    multi: MultiProgress,
    current: Mutex<Option<(ProgressBar, LoadShape)>>,
}

impl TerminalBar {
    /// The bar on stderr, installed for the log writer ([`suspend`]).
    pub fn install() -> Arc<TerminalBar> {
        let multi = ACTIVE
            .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .clone();
        Arc::new(TerminalBar {
            multi,
            current: Mutex::new(None),
        })
    }

    fn with_current(&self, f: impl FnOnce(&ProgressBar, &LoadShape)) {
        let guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((bar, shape)) = guard.as_ref() {
            f(bar, shape);
        }
    }
}

impl ProgressView for TerminalBar {
    fn start(&self, shape: &LoadShape) {
        // the figures first, the bar in the width left: one line on an 80-column terminal
        let (bar, template) = match (shape.planned, shape.end_s) {
            (n, _) if n > 0 => (ProgressBar::new(n), "{prefix}{msg} [{wide_bar}]"),
            (_, Some(end)) => (
                ProgressBar::new(deciseconds(end).max(1)),
                "{prefix}{msg} [{wide_bar}]",
            ),
            _ => (ProgressBar::new_spinner(), "{prefix}{spinner} {msg}"),
        };
        let style = ProgressStyle::with_template(template)
            .expect("invariant: the templates are valid")
            .progress_chars("=> ");
        bar.set_style(style);
        if let Some(step) = &shape.step {
            bar.set_prefix(format!("{step} "));
        }
        bar.set_message(line(shape, &Snapshot::default()));
        let bar = self.multi.add(bar);
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((old, _)) = guard.take() {
            old.finish_and_clear();
            self.multi.remove(&old);
        }
        *guard = Some((bar, shape.clone()));
    }

    fn update(&self, now: &Snapshot) {
        self.with_current(|bar, shape| {
            bar.set_position(position(shape, now));
            bar.set_message(line(shape, now));
        });
    }

    fn finish(&self, last: &Snapshot) {
        let taken = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((bar, shape)) = taken {
            bar.finish_and_clear();
            self.multi.remove(&bar);
            // the last figures stay on screen, above what comes next
            let step = shape
                .step
                .as_deref()
                .map_or(String::new(), |s| format!("{s} "));
            let text = format!("{step}{}\n", line(&shape, last));
            self.multi.suspend(|| {
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
            });
        }
    }
}

fn deciseconds(s: f64) -> u64 {
    (s.max(0.0) * 10.0).ceil() as u64
}

/// The bar's position: requests done of a list, tenths of a second of a timed load.
fn position(shape: &LoadShape, now: &Snapshot) -> u64 {
    match (shape.planned, shape.end_s) {
        (n, _) if n > 0 => now.done.min(n),
        (_, Some(end)) => deciseconds(now.elapsed_s.min(end)),
        _ => now.done,
    }
}

/// The bar's text: `120/500 req, 35.2 req/s, 1234 tok/s, p90 1.23s, err 0.8%, ETA 12s`.
pub fn line(shape: &LoadShape, now: &Snapshot) -> String {
    let f = &now.figures;
    let progress = match (shape.planned, shape.end_s) {
        (n, _) if n > 0 => format!("{}/{n} req", now.done),
        (_, Some(end)) => format!(
            "{}/{} ({} req)",
            clock(now.elapsed_s.min(end)),
            clock(end),
            now.done
        ),
        _ => format!("{} req", now.done),
    };
    let rate = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let p90 = f.e2e.p90.map_or("-".into(), seconds);
    let err = if f.requests > 0 {
        format!("{:.1}%", 100.0 * f.failed as f64 / f.requests as f64)
    } else {
        "-".into()
    };
    format!(
        "{progress}, {} req/s, {} tok/s, p90 {p90}, err {err}, ETA {}",
        rate(f.requests_per_s, 1),
        rate(f.output_tokens_per_s, 0),
        eta(shape, now)
    )
}

/// Time left: a timed load's to its end; a list's at the rate so far (`-` before the first
/// request finishes); `draining` once a timed load issues no more.
fn eta(shape: &LoadShape, now: &Snapshot) -> String {
    match (shape.planned, shape.end_s) {
        (n, _) if n > 0 => {
            if now.done >= n {
                return clock(0.0);
            }
            if now.done == 0 || now.elapsed_s <= 0.0 {
                return "-".into();
            }
            let per_s = now.done as f64 / now.elapsed_s;
            clock((n - now.done) as f64 / per_s)
        }
        (_, Some(end)) if now.elapsed_s >= end => "draining".into(),
        (_, Some(end)) => clock(end - now.elapsed_s),
        _ => "-".into(),
    }
}

/// `45s`, `3m05s`, `1h02m`.
fn clock(s: f64) -> String {
    let s = Duration::from_secs_f64(s.max(0.0)).as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `850ms`, `1.23s`.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_gate::telemetry::pushgateway::{Figures, Percentiles};

    fn snap(done: u64, elapsed_s: f64) -> Snapshot {
        Snapshot {
            done,
            elapsed_s,
            figures: Figures {
                requests: done,
                failed: 1,
                requests_per_s: Some(done as f64 / elapsed_s),
                output_tokens_per_s: Some(1234.4),
                e2e: Percentiles {
                    p90: Some(1.234),
                    ..Default::default()
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_list_shows_done_of_planned_and_the_time_left_at_the_rate_so_far() {
        let shape = LoadShape {
            planned: 500,
            end_s: None,
            step: None,
        };
        // 100 done in 10 s: 400 left at 10/s
        assert_eq!(
            line(&shape, &snap(100, 10.0)),
            "100/500 req, 10.0 req/s, 1234 tok/s, p90 1.23s, err 1.0%, ETA 40s"
        );
        assert_eq!(position(&shape, &snap(100, 10.0)), 100);
        assert_eq!(eta(&shape, &Snapshot::default()), "-");
        assert_eq!(eta(&shape, &snap(500, 10.0)), "0s");
    }

    #[test]
    fn a_timed_load_shows_its_clock_and_the_time_to_its_end() {
        let shape = LoadShape {
            planned: 0,
            end_s: Some(200.0),
            step: Some("step 2/5 at 8 in flight".into()),
        };
        let l = line(&shape, &snap(30, 15.2));
        assert!(l.starts_with("15s/3m20s (30 req), "), "{l}");
        assert!(l.ends_with("ETA 3m04s"), "{l}");
        assert_eq!(position(&shape, &snap(30, 15.25)), 153);
        assert_eq!(eta(&shape, &snap(30, 201.0)), "draining");
        // nothing finished yet: no figure is made up
        let empty = line(&shape, &Snapshot::default());
        assert_eq!(
            empty,
            "0s/3m20s (0 req), - req/s, - tok/s, p90 -, err -, ETA 3m20s"
        );
    }

    #[test]
    fn auto_draws_a_bar_only_on_a_terminal_with_text_logs() {
        use LogFormat::{Json, Text};
        use ProgressMode::*;
        assert_eq!(Auto.resolve_for(true, Text), Progress::Bar);
        assert_eq!(Auto.resolve_for(true, Json), Progress::Lines);
        assert_eq!(Auto.resolve_for(false, Text), Progress::Lines);
        assert_eq!(Bar.resolve_for(true, Json), Progress::Bar);
        assert_eq!(Bar.resolve_for(false, Text), Progress::Lines);
        assert_eq!(Lines.resolve_for(true, Text), Progress::Lines);
        assert_eq!(Off.resolve_for(true, Text), Progress::Off);
        assert_eq!(seconds(0.8504), "850ms");
        assert_eq!(clock(3725.0), "1h02m");
    }
}
