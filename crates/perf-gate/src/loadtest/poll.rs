//! Polling during the load (seed 001): vLLM's `/metrics` every `--poll-interval` into
//! `vllm_metrics.csv`, and `nvidia-smi` every `--gpu-poll-interval` into `gpu_metrics.csv`
//! ([`super::gpu_poll`]).
//!
//! The pollers start just before the load (a sweep: before its first step) and stop just after
//! it (a sweep: after its last step); `elapsed_s` counts from their start. A row is written and
//! flushed as soon as it is read, so a run cut short keeps every row taken. A failed poll is a
//! row with empty values and the reason in `error`: it never fails the step (the count of
//! failed polls is a warning of the results).
//!
//! `vllm_metrics.csv` columns ([`VLLM_HEADER`]): the time (RFC 3339 and Unix seconds), the
//! seconds since polling started, the sweep's 0-based step (empty outside a sweep), then the
//! server's gauges and counters summed over their series (the largest series for the KV cache):
//! `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (or its
//! old name `vllm:gpu_cache_usage_perc`, a fraction 0–1), `vllm:prompt_tokens_total`,
//! `vllm:generation_tokens_total`, `vllm:request_success_total` (every finish reason; each
//! counter also under its name without `_total`), and the token counters' rates since the
//! previous successful row (empty on the first, or when a counter went down: a restart).

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::LoadTestConfig;
use crate::client::VllmClient;
use crate::prom::{KV_CACHE, KV_CACHE_OLD, MetricsScraper, MetricsSnapshot, RetryPolicy};
use crate::results::LoadTestResults;

/// The vLLM poll's file in the output directory.
pub const VLLM_METRICS_FILE: &str = "vllm_metrics.csv";
/// The GPU poll's file in the output directory.
pub const GPU_METRICS_FILE: &str = "gpu_metrics.csv";
/// `vllm_metrics.csv`'s header.
pub const VLLM_HEADER: &str = "timestamp,unix_s,elapsed_s,step,num_requests_running,num_requests_waiting,kv_cache_usage_perc,prompt_tokens_total,generation_tokens_total,request_success_total,prompt_tokens_per_s,generation_tokens_per_s,error";

/// No step (outside a sweep).
const NO_STEP: u32 = u32::MAX;

/// The running pollers; [`Poller::stop`] ends them.
pub(super) struct Poller {
    cancel: CancellationToken,
    step: Arc<AtomicU32>,
    tasks: Vec<JoinHandle<Option<String>>>,
    /// Said at the start (a poll skipped or a file not opened), for the results.
    departures: Vec<String>,
    warnings: Vec<String>,
}

/// What a poll task needs to stamp its rows.
#[derive(Clone)]
pub(super) struct Clock {
    started: Instant,
    step: Arc<AtomicU32>,
}

impl Clock {
    /// `timestamp,unix_s,elapsed_s,step,` for a row read at `at`.
    pub(super) fn stamp(&self, at: DateTime<Utc>) -> String {
        let step = match self.step.load(Ordering::Relaxed) {
            NO_STEP => String::new(),
            s => s.to_string(),
        };
        format!(
            "{},{:.3},{:.3},{step},",
            at.to_rfc3339_opts(SecondsFormat::Millis, true),
            at.timestamp_millis() as f64 / 1000.0,
            self.started.elapsed().as_secs_f64()
        )
    }
}

impl Poller {
    /// Starts the pollers `cfg` asks for (none when both intervals are `None`).
    pub(super) fn start(cfg: &LoadTestConfig, client: &VllmClient) -> Poller {
        let cancel = CancellationToken::new();
        let step = Arc::new(AtomicU32::new(NO_STEP));
        let clock = Clock {
            started: Instant::now(),
            step: step.clone(),
        };
        let mut p = Poller {
            cancel,
            step,
            tasks: Vec::new(),
            departures: Vec::new(),
            warnings: Vec::new(),
        };
        if cfg.poll_interval.is_some() && !cfg.api.has_vllm_metrics() {
            p.departures.push(format!(
                "--api {}: {VLLM_METRICS_FILE} is not written (its columns are vLLM's /metrics series)",
                cfg.api
            ));
        }
        if let Some(every) = cfg.poll_interval.filter(|_| cfg.api.has_vllm_metrics()) {
            match MetricsScraper::new(client.http().clone(), &cfg.vllm_url, cfg.api_key.clone()) {
                Ok(s) => match open(&cfg.output_dir, VLLM_METRICS_FILE, VLLM_HEADER) {
                    Ok(out) => {
                        let scraper = s.with_retry_policy(RetryPolicy::NONE);
                        let task = poll_vllm(scraper, every, out, clock.clone(), p.cancel.clone());
                        p.tasks.push(tokio::spawn(task));
                    }
                    Err(line) => p.warnings.push(line),
                },
                Err(e) => p.warnings.push(format!(
                    "vLLM polling skipped: {}",
                    crate::step::error_line(&e)
                )),
            }
        }
        if let Some(every) = cfg.gpu_poll_interval {
            match super::gpu_poll::start(&cfg.output_dir, every, clock, p.cancel.clone()) {
                Ok(task) => p.tasks.push(task),
                Err(line) => {
                    tracing::warn!("{line}");
                    p.departures.push(line);
                }
            }
        }
        p
    }

    /// Marks the rows taken from now on as the sweep's step `index`.
    pub(super) fn set_step(&self, index: u32) {
        self.step.store(index, Ordering::Relaxed);
    }

    /// Stops the pollers, waits for their last row, and records what they had to say.
    pub(super) async fn stop(self, results: &mut LoadTestResults) {
        self.cancel.cancel();
        results.departures.extend(self.departures);
        results.warnings.extend(self.warnings);
        for t in self.tasks {
            match t.await {
                Ok(Some(line)) => results.warnings.push(line),
                Ok(None) => {}
                Err(e) => results.warnings.push(format!("a poller stopped: {e}")),
            }
        }
    }
}

/// The CSV writer of a poll.
pub(super) type CsvOut = std::io::BufWriter<std::fs::File>;

/// Creates `dir/name` with `header`; `Err` is the warning line.
pub(super) fn open(dir: &Path, name: &str, header: &str) -> Result<CsvOut, String> {
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path)
        .map(std::io::BufWriter::new)
        .map_err(|e| format!("{name} not written: cannot create {}: {e}", path.display()))?;
    writeln!(out, "{header}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("{name} not written: {e}"))?;
    Ok(out)
}

/// Appends one line and flushes it; `Err` is the warning line.
pub(super) fn append(out: &mut CsvOut, name: &str, line: &str) -> Result<(), String> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("{name}: polling stopped: cannot write: {e}"))
}

/// An error cell: scrubbed of every known secret (it may quote a server), then [`field`].
pub(super) fn error_cell(text: &str) -> String {
    let mut text = text.to_string();
    crate::secrets::scrub_string(&mut text);
    field(&text.replace(['\n', '\r'], " "))
}

/// One CSV field: quoted (with `"` doubled) when it holds a comma, a quote or a line break.
pub(super) fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// How long one poll may take: the interval, but at least 2 s.
pub(super) fn poll_timeout(every: Duration) -> Duration {
    every.max(Duration::from_secs(2))
}

/// Counters of the previous successful row, for the rates.
struct Previous {
    at: DateTime<Utc>,
    prompt: Option<f64>,
    generation: Option<f64>,
}

async fn poll_vllm(
    scraper: MetricsScraper,
    every: Duration,
    mut out: CsvOut,
    clock: Clock,
    cancel: CancellationToken,
) -> Option<String> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut polls, mut failed) = (0u64, 0u64);
    let mut prev: Option<Previous> = None;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let stamp = clock.stamp(Utc::now());
        let read = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            r = tokio::time::timeout(poll_timeout(every), scraper.snapshot()) => r,
        };
        polls += 1;
        let values = match read {
            Ok(Ok(snap)) => row(&snap, &mut prev),
            Ok(Err(e)) => {
                failed += 1;
                format!(",,,,,,,,{}", error_cell(&crate::step::error_line(&e)))
            }
            Err(_) => {
                failed += 1;
                format!(
                    ",,,,,,,,{}",
                    error_cell(&format!(
                        "GET /metrics timed out after {:?}",
                        poll_timeout(every)
                    ))
                )
            }
        };
        if let Err(line) = append(&mut out, VLLM_METRICS_FILE, &format!("{stamp}{values}")) {
            tracing::warn!("{line}");
            return Some(line);
        }
    }
    (failed > 0).then(|| {
        format!(
            "{failed} of {polls} polls of vLLM /metrics failed (see the error column of {VLLM_METRICS_FILE})"
        )
    })
}

/// The values of one row (after the stamp), from `snap`.
fn row(snap: &MetricsSnapshot, prev: &mut Option<Previous>) -> String {
    let sum = |names: &[&str]| -> Option<f64> {
        names.iter().find_map(|n| {
            let mut it = snap.samples(n).peekable();
            it.peek()?;
            Some(it.map(|s| s.value).sum())
        })
    };
    let max = |names: &[&str]| -> Option<f64> {
        names
            .iter()
            .find_map(|n| snap.samples(n).map(|s| s.value).reduce(f64::max))
    };
    let running = sum(&["vllm:num_requests_running"]);
    let waiting = sum(&["vllm:num_requests_waiting"]);
    let kv = max(&[KV_CACHE, KV_CACHE_OLD]);
    let prompt = sum(&["vllm:prompt_tokens_total", "vllm:prompt_tokens"]);
    let generation = sum(&["vllm:generation_tokens_total", "vllm:generation_tokens"]);
    let success = sum(&["vllm:request_success_total", "vllm:request_success"]);
    let rate = |now: Option<f64>, before: Option<f64>, secs: f64| match (now, before) {
        (Some(a), Some(b)) if a >= b && secs > 0.0 => Some((a - b) / secs),
        _ => None,
    };
    let (prompt_rate, generation_rate) = match prev {
        Some(p) => {
            let secs = (snap.taken_at - p.at).as_seconds_f64();
            (
                rate(prompt, p.prompt, secs),
                rate(generation, p.generation, secs),
            )
        }
        None => (None, None),
    };
    *prev = Some(Previous {
        at: snap.taken_at,
        prompt,
        generation,
    });
    let v = |x: Option<f64>| x.map_or_else(String::new, |x| x.to_string());
    let r = |x: Option<f64>| x.map_or_else(String::new, |x| format!("{x:.3}"));
    format!(
        "{},{},{},{},{},{},{},{},",
        v(running),
        v(waiting),
        v(kv),
        v(prompt),
        v(generation),
        v(success),
        r(prompt_rate),
        r(generation_rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOKE: &str = include_str!("../prom/fixtures/metrics_after_smoke.txt");
    const AFTER: &str = include_str!("../prom/fixtures/metrics_after_load.txt");

    fn cells(line: &str) -> Vec<String> {
        line.split(',').map(str::to_string).collect()
    }

    #[test]
    fn real_vllm_expositions_give_every_column_and_rates_from_the_second_row() {
        let t0 = Utc::now();
        let smoke = MetricsSnapshot::parse(SMOKE, t0).unwrap();
        let after = MetricsSnapshot::parse(AFTER, t0 + chrono::Duration::seconds(10)).unwrap();
        let mut prev = None;
        let first = cells(&row(&smoke, &mut prev));
        // 8 values and the empty error
        assert_eq!(first.len(), 9, "{first:?}");
        for (i, c) in first[..6].iter().enumerate() {
            assert!(c.parse::<f64>().is_ok(), "column {i} of {first:?}");
        }
        assert_eq!(&first[6..], ["", "", ""]);
        let second = cells(&row(&after, &mut prev));
        let n = |row: &[String], i: usize| row[i].parse::<f64>().unwrap();
        assert!(n(&second, 4) >= n(&first, 4), "{first:?} {second:?}");
        let want = (n(&second, 4) - n(&first, 4)) / 10.0;
        assert!((n(&second, 7) - want).abs() < 1e-3, "{second:?}");
        let kv = n(&second, 2);
        assert!((0.0..=1.0).contains(&kv), "{second:?}");
    }

    #[test]
    fn the_old_kv_cache_name_and_counters_without_total_are_read() {
        let text = "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{engine=\"0\"} 0.25\n# TYPE vllm:generation_tokens counter\nvllm:generation_tokens{engine=\"0\"} 7\n";
        let snap = MetricsSnapshot::parse(text, Utc::now()).unwrap();
        let r = cells(&row(&snap, &mut None));
        assert_eq!(r[2], "0.25");
        assert_eq!(r[4], "7");
        assert_eq!(r[0], "");
    }

    #[tokio::test]
    async fn a_failed_scrape_is_a_row_with_empty_values_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        // nothing listens on a port just freed
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let scraper = MetricsScraper::new(
            reqwest::Client::new(),
            &format!("http://127.0.0.1:{port}"),
            None,
        )
        .unwrap()
        .with_retry_policy(RetryPolicy::NONE);
        let out = open(dir.path(), VLLM_METRICS_FILE, VLLM_HEADER).unwrap();
        let clock = Clock {
            started: Instant::now(),
            step: Arc::new(AtomicU32::new(NO_STEP)),
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(poll_vllm(
            scraper,
            Duration::from_millis(100),
            out,
            clock,
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(350)).await;
        cancel.cancel();
        let warning = task.await.unwrap().expect("a warning");
        assert!(
            warning.contains("polls of vLLM /metrics failed"),
            "{warning}"
        );
        let text = std::fs::read_to_string(dir.path().join(VLLM_METRICS_FILE)).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert!(rows.len() >= 2, "{text}");
        for r in rows {
            let cells = cells(r);
            assert!(cells[4..12].iter().all(String::is_empty), "{r}");
            assert!(!cells[12].is_empty(), "{r}");
        }
    }

    #[test]
    fn the_header_has_the_row_width() {
        assert_eq!(VLLM_HEADER.split(',').count(), 4 + 9);
        assert_eq!(field("a,b"), "\"a,b\"");
    }
}
