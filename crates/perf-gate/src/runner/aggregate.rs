//! The aggregator: the one place records go. It runs on its own OS thread, off the async runtime,
//! receives records over a channel, appends them to `requests.jsonl`, keeps compact samples for
//! exact percentiles, and logs live progress from an HDR histogram (or hands it to a
//! [`ProgressView`] at a fixed tick), and queues each request's OpenTelemetry span
//! ([`SpanFeed`]) when spans are exported. In a same-server A/B run
//! each arm has its own [`Tally`] (a record's `arm` says which), both timed from the same load
//! start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::progress::{LoadShape, ProgressView, Snapshot, VIEW_TICK};
use crate::client::{Phase, RequestRecord};
use crate::results::{ClientMetrics, Slo, SloAttainment};
use crate::stats::{LatencyHistogram, SampleStore};
use crate::telemetry::otlp::SpanFeed;
use crate::telemetry::pushgateway::{Figures, LiveFigures, contention_errors};
use crate::workload::{Arm, Probe};

/// Running totals over finished requests. Mergeable, so sharded runs can combine.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    total: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    without_usage: u64,
    zero_usage_with_content: u64,
    output_tokens: u64,
    prompt_tokens: u64,
    /// Per request, exact: finish time, TTFT, E2E (12 bytes a request).
    requests: SampleStore,
    /// Pooled over every token: constant memory, within the histogram's stated error.
    itl: LatencyHistogram,
    tpot: LatencyHistogram,
    queue: LatencyHistogram,
    /// Objectives whose attainment is counted, and the requests that met them all.
    slo: Option<Slo>,
    slo_met: u64,
}

/// Whether `rec` (a success) met every objective of `slo`.
fn meets(slo: &Slo, rec: &RequestRecord) -> bool {
    let within =
        |limit: Option<f64>, v: Option<f64>| limit.is_none_or(|l| v.is_some_and(|v| v <= l));
    let tpot_ok = match (slo.tpot_s, rec.tpot_s()) {
        (None, _) => true,
        (Some(l), Some(t)) => t <= l,
        // one output token has no TPOT; unknown tokens cannot be judged
        (Some(_), None) => rec.output_tokens.is_some_and(|n| n <= 1),
    };
    within(slo.ttft_s, rec.ttft_s) && within(slo.e2e_s, rec.e2e_s) && tpot_ok
}

impl Tally {
    /// An empty tally that also counts the attainment of `slo`.
    pub fn with_slo(slo: Option<Slo>) -> Self {
        Tally {
            slo,
            ..Tally::default()
        }
    }

    /// Adds one finished request.
    pub fn add(&mut self, rec: &RequestRecord) {
        self.total += 1;
        self.queue.push(rec.queue_s());
        let finished_s = rec.start_s + rec.total_s;
        if !rec.ok {
            self.requests.push(finished_s, None, None);
            let key = rec
                .error_kind
                .map(|k| k.key(rec.http_status, rec.finish_reason.as_deref()))
                .unwrap_or_else(|| "unknown".into());
            *self.errors.entry(key).or_default() += 1;
            return;
        }
        self.ok += 1;
        if self.slo.as_ref().is_some_and(|s| meets(s, rec)) {
            self.slo_met += 1;
        }
        self.requests.push(finished_s, rec.ttft_s, rec.e2e_s);
        self.itl.extend_from_slice(&rec.itl_gaps);
        if let Some(t) = rec.tpot_s() {
            self.tpot.push(t);
        }
        match rec.output_tokens {
            Some(0) if rec.content_chunks > 0 => {
                // the server's usage contradicts the stream: counted, flagged, not guessed
                self.zero_usage_with_content += 1;
                self.prompt_tokens += u64::from(rec.prompt_tokens.unwrap_or(0));
            }
            Some(n) => {
                self.output_tokens += u64::from(n);
                self.prompt_tokens += u64::from(rec.prompt_tokens.unwrap_or(0));
            }
            None => self.without_usage += 1,
        }
    }

    /// Counts `n` requests that produced no record (`lost`: the task panicked; `abandoned`: cut
    /// off after the drain grace) as failures of that kind.
    pub fn add_failures(&mut self, kind: &str, n: u64) {
        self.total += n;
        *self.errors.entry(kind.into()).or_default() += n;
    }

    /// Adds another tally (from another shard).
    pub fn merge(&mut self, other: &Tally) {
        self.total += other.total;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.without_usage += other.without_usage;
        self.zero_usage_with_content += other.zero_usage_with_content;
        self.output_tokens += other.output_tokens;
        self.prompt_tokens += other.prompt_tokens;
        self.requests.merge(&other.requests);
        self.slo_met += other.slo_met;
        // a merge into an empty tally (a shard's, a step's) keeps the objectives judged
        self.slo = self.slo.or(other.slo);
        self.itl.merge(&other.itl);
        self.tpot.merge(&other.tpot);
        self.queue.merge(&other.queue);
    }

    /// Requests finished so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Requests that succeeded so far.
    pub fn successful(&self) -> u64 {
        self.ok
    }

    /// Every finished request's exact sample (finish time, TTFT, E2E).
    pub fn requests(&self) -> &SampleStore {
        &self.requests
    }

    /// The client figures, with rates over `duration_s` of load.
    pub fn metrics(&self, duration_s: f64) -> ClientMetrics {
        let failed = self.total - self.ok;
        let per_s = |n: u64| (duration_s > 0.0).then(|| n as f64 / duration_s);
        ClientMetrics {
            total_requests: self.total,
            successful_requests: self.ok,
            failed_requests: failed,
            success_rate: (self.total > 0).then(|| self.ok as f64 / self.total as f64),
            errors_by_kind: self.errors.clone(),
            responses_without_usage: self.without_usage,
            zero_usage_with_content: self.zero_usage_with_content,
            output_tokens: self.output_tokens,
            prompt_tokens: self.prompt_tokens,
            requests_per_s: per_s(self.ok),
            output_tokens_per_s: if self.without_usage > 0 || self.zero_usage_with_content > 0 {
                None
            } else {
                per_s(self.output_tokens)
            },
            ttft_s: self.requests.ttft(),
            itl_s: self.itl.distribution(),
            e2e_s: self.requests.e2e(),
            tpot_s: self.tpot.distribution(),
            client_queue_s: self.queue.distribution(),
            e2e_adjusted_s: self.requests.e2e_adjusted(failed),
            ttft_adjusted_s: self.requests.ttft_adjusted(failed),
            slo_attainment: self.slo.map(|slo| SloAttainment {
                slo,
                met: self.slo_met,
                requests: self.total,
                fraction: (self.total > 0).then(|| self.slo_met as f64 / self.total as f64),
            }),
            samples: Some(self.requests.pack()),
        }
    }
}

/// A [`Tally`] as a shard writes it (`load-test --shard-count`) for `load-test merge`: the
/// counts, every request's exact sample, and the pooled histograms, all mergeable.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TallyWire {
    total: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    without_usage: u64,
    zero_usage_with_content: u64,
    output_tokens: u64,
    prompt_tokens: u64,
    requests: crate::results::PackedSamples,
    /// HDR V2, base64, and the exact sum: (histogram, sum).
    itl: (String, f64),
    tpot: (String, f64),
    queue: (String, f64),
    slo: Option<Slo>,
    slo_met: u64,
}

impl Tally {
    /// The tally as a shard writes it.
    pub fn to_wire(&self) -> TallyWire {
        TallyWire {
            total: self.total,
            ok: self.ok,
            errors: self.errors.clone(),
            without_usage: self.without_usage,
            zero_usage_with_content: self.zero_usage_with_content,
            output_tokens: self.output_tokens,
            prompt_tokens: self.prompt_tokens,
            requests: self.requests.pack(),
            itl: self.itl.to_wire(),
            tpot: self.tpot.to_wire(),
            queue: self.queue.to_wire(),
            slo: self.slo,
            slo_met: self.slo_met,
        }
    }

    /// The tally a shard wrote, its finish times moved by `shift_s`; an error says what part
    /// is unreadable or inconsistent.
    pub fn from_wire(w: &TallyWire, shift_s: f64) -> Result<Tally, String> {
        let mut requests =
            SampleStore::unpack(&w.requests).map_err(|e| format!("requests: {e}"))?;
        requests.shift(shift_s);
        let failures: u64 = w.errors.values().sum();
        if w.ok > w.total || w.total - w.ok != failures || requests.len() as u64 > w.total {
            return Err(format!(
                "counts do not add up: {} requests, {} ok, {failures} failures, {} samples",
                w.total,
                w.ok,
                requests.len()
            ));
        }
        let hist = |name: &str, (text, sum): &(String, f64)| {
            LatencyHistogram::from_wire(text, *sum).map_err(|e| format!("{name}: {e}"))
        };
        Ok(Tally {
            total: w.total,
            ok: w.ok,
            errors: w.errors.clone(),
            without_usage: w.without_usage,
            zero_usage_with_content: w.zero_usage_with_content,
            output_tokens: w.output_tokens,
            prompt_tokens: w.prompt_tokens,
            requests,
            itl: hist("itl", &w.itl)?,
            tpot: hist("tpot", &w.tpot)?,
            queue: hist("queue", &w.queue)?,
            slo: w.slo,
            slo_met: w.slo_met,
        })
    }
}

/// The GET tasks of a `--task-mix` (health, model list), counted apart from the generations.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    by_task: BTreeMap<Probe, ProbeTally>,
}

#[derive(Debug, Clone, Default)]
struct ProbeTally {
    total: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: LatencyHistogram,
}

impl Probes {
    /// Adds one finished GET task (a record with its `probe`).
    pub fn add(&mut self, rec: &RequestRecord) {
        let Some(p) = rec.probe else { return };
        let t = self.by_task.entry(p).or_default();
        t.total += 1;
        if rec.ok {
            t.ok += 1;
            t.latency.push(rec.total_s);
        } else {
            let key = rec
                .error_kind
                .map(|k| k.key(rec.http_status, None))
                .unwrap_or_else(|| "unknown".into());
            *t.errors.entry(key).or_default() += 1;
        }
    }

    /// Counts `n` tasks of `probe` that left no record as failures of `kind`.
    pub fn add_failures(&mut self, probe: Probe, kind: &str, n: u64) {
        let t = self.by_task.entry(probe).or_default();
        t.total += n;
        *t.errors.entry(kind.into()).or_default() += n;
    }

    /// Tasks finished so far, of every kind.
    pub fn count(&self) -> u64 {
        self.by_task.values().map(|t| t.total).sum()
    }

    /// Tasks that succeeded so far, of every kind.
    pub fn successful(&self) -> u64 {
        self.by_task.values().map(|t| t.ok).sum()
    }

    /// Tasks of `probe` finished so far.
    pub fn total(&self, probe: Probe) -> u64 {
        self.by_task.get(&probe).map_or(0, |t| t.total)
    }

    /// Adds another run's (a sweep's other step).
    pub fn merge(&mut self, other: &Probes) {
        for (p, o) in &other.by_task {
            let t = self.by_task.entry(*p).or_default();
            t.total += o.total;
            t.ok += o.ok;
            for (k, v) in &o.errors {
                *t.errors.entry(k.clone()).or_default() += v;
            }
            t.latency.merge(&o.latency);
        }
    }

    /// One summary per task sent, for the results.
    pub fn summaries(&self) -> Vec<crate::results::ProbeSummary> {
        self.by_task
            .iter()
            .map(|(p, t)| crate::results::ProbeSummary {
                task: p.as_str().to_string(),
                path: p.path().to_string(),
                requests: t.total,
                successful_requests: t.ok,
                errors_by_kind: t.errors.clone(),
                latency_s: t.latency.distribution(),
            })
            .collect()
    }
}

/// Live counters shared between the dispatcher and the aggregator.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests handed to the network so far.
    pub dispatched: AtomicU64,
}

/// What the aggregator thread returns.
pub struct AggregateOutput {
    /// Totals (of the candidate's requests in an A/B run).
    pub tally: Tally,
    /// Totals of the baseline's requests in an A/B run ([`AggregatorConfig::ab`]).
    pub baseline: Option<Tally>,
    /// Totals of the requests issued outside the measured window (time-based warm-up and
    /// cool-down), both arms together: not in the figures, but the server counted them.
    pub unmeasured: Tally,
    /// The GET tasks of a task mix.
    pub probes: Probes,
    /// Error writing `requests.jsonl`, if any (the run itself is still valid).
    pub write_error: Option<String>,
    /// A mix's measured requests per member ([`AggregatorConfig::members`] of them).
    pub members: Vec<Tally>,
}

/// Aggregator settings.
pub struct AggregatorConfig {
    /// Where to append request records (a `.partial` file renamed by the caller), if anywhere.
    pub requests_path: Option<PathBuf>,
    /// How often to log a progress line (`None`: never).
    pub progress_every: Option<Duration>,
    /// Append to `requests_path` rather than start it afresh (a sweep's later steps).
    pub append: bool,
    /// Requests planned, for the progress line (0 when the load runs for a duration).
    pub planned: u64,
    /// Objectives whose attainment is counted.
    pub slo: Option<Slo>,
    /// A same-server A/B run: records of [`Arm::Baseline`] go to their own tally.
    pub ab: bool,
    /// Where to publish live figures (`--pushgateway-url`), at most every
    /// [`LiveFigures::every`]; `None`: nowhere.
    pub figures: Option<Arc<LiveFigures>>,
    /// Members of a mix: each measured record with a `member` also goes to that member's
    /// tally; 0 without a mix.
    pub members: usize,
    /// Where to show live progress every [`VIEW_TICK`] (`--progress bar`), and what the load
    /// is; `None`: nowhere.
    pub view: Option<(Arc<dyn ProgressView>, LoadShape)>,
    /// Where each record's span goes (`--otlp-endpoint`); `None`: no spans.
    pub spans: Option<SpanFeed>,
}

/// The live figures' own histograms (HDR: constant memory, cheap percentiles) and when they
/// are next published.
struct Board {
    next: Instant,
    ttft: LatencyHistogram,
    e2e: LatencyHistogram,
}

impl Board {
    fn add(&mut self, rec: &RequestRecord) {
        if let (true, Some(t)) = (rec.ok, rec.ttft_s) {
            self.ttft.push(t);
        }
        if let (true, Some(t)) = (rec.ok, rec.e2e_s) {
            self.e2e.push(t);
        }
    }

    /// The figures of `tally` so far, `elapsed_s` into the load.
    fn figures(&self, tally: &Tally, in_flight: u64, elapsed_s: f64) -> Figures {
        let pct = |h: &LatencyHistogram| crate::telemetry::pushgateway::Percentiles {
            p50: h.percentile(0.5),
            p90: h.percentile(0.9),
            p99: h.percentile(0.99),
        };
        let per_s = |n: u64| (elapsed_s > 0.0).then(|| n as f64 / elapsed_s);
        Figures {
            requests: tally.total,
            failed: tally.total - tally.ok,
            contention_errors: contention_errors(&tally.errors),
            output_tokens: tally.output_tokens,
            in_flight,
            requests_per_s: per_s(tally.ok),
            output_tokens_per_s: per_s(tally.output_tokens),
            ttft: pct(&self.ttft),
            itl: pct(&tally.itl),
            e2e: pct(&self.e2e),
        }
    }
}

/// Runs the aggregator loop until every sender is dropped. Call on a dedicated thread.
pub fn aggregate(
    rx: Receiver<RequestRecord>,
    live: Arc<Live>,
    cfg: AggregatorConfig,
) -> AggregateOutput {
    // a load of known length: each arm's samples in one allocation (bounded: 16 M requests,
    // 192 MB of address space, touched only as requests finish)
    let per_arm = (cfg.planned / if cfg.ab { 2 } else { 1 }).min(1 << 24) as usize;
    let reserved = |slo| Tally {
        requests: SampleStore::with_capacity(per_arm),
        ..Tally::with_slo(slo)
    };
    let mut tally = reserved(cfg.slo);
    let mut baseline = cfg.ab.then(|| reserved(cfg.slo));
    let mut unmeasured = Tally::default();
    let mut probes = Probes::default();
    let mut members: Vec<Tally> = (0..cfg.members).map(|_| Tally::with_slo(cfg.slo)).collect();
    let mut write_error = None;
    let mut out = match &cfg.requests_path {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(cfg.append)
            .truncate(!cfg.append)
            .open(p)
        {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                write_error = Some(format!("cannot create {}: {e}", p.display()));
                None
            }
        },
        None => None,
    };
    // the live progress line's figures (the results' come from the tally)
    let mut ttft_hist = LatencyHistogram::default();
    let mut e2e_hist = LatencyHistogram::default();
    let started = Instant::now();
    let tick = cfg.progress_every.unwrap_or(Duration::from_secs(3600));
    let mut next_progress = started + tick;
    let mut line = Vec::with_capacity(512);
    // the published live figures' percentiles (the Pushgateway's and the progress view's):
    // the candidate's measured requests only
    let mut board = (cfg.figures.is_some() || cfg.view.is_some()).then(|| Board {
        next: started + cfg.figures.as_ref().map_or(Duration::ZERO, |f| f.every()),
        ttft: LatencyHistogram::default(),
        e2e: LatencyHistogram::default(),
    });
    let mut next_view = started + VIEW_TICK;
    if let Some((view, shape)) = &cfg.view {
        view.start(shape);
    }
    loop {
        let mut due = next_progress;
        if let (Some(b), Some(_)) = (board.as_ref(), cfg.figures.as_ref()) {
            due = due.min(b.next);
        }
        if cfg.view.is_some() {
            due = due.min(next_view);
        }
        let wait = due.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(rec) => {
                match (rec.phase, rec.arm, baseline.as_mut()) {
                    _ if rec.probe.is_some() => probes.add(&rec),
                    (Phase::Warmup | Phase::Cooldown, _, _) => unmeasured.add(&rec),
                    (Phase::Measured, Some(Arm::Baseline), Some(b)) => b.add(&rec),
                    _ => {
                        if let Some(t) = rec.member.and_then(|m| members.get_mut(usize::from(m))) {
                            t.add(&rec);
                        }
                        tally.add(&rec);
                        if let Some(b) = board.as_mut() {
                            b.add(&rec);
                        }
                    }
                }
                if let Some(feed) = &cfg.spans {
                    feed.offer(&rec);
                }
                if let Some(t) = rec.ttft_s {
                    ttft_hist.push(t);
                }
                if let Some(t) = rec.e2e_s {
                    e2e_hist.push(t);
                }
                if let Some(w) = out.as_mut() {
                    line.clear();
                    let res = serde_json::to_writer(&mut line, &rec)
                        .map_err(std::io::Error::other)
                        .and_then(|()| {
                            line.push(b'\n');
                            w.write_all(&line)
                        });
                    if let Err(e) = res {
                        write_error = Some(format!("writing request records: {e}"));
                        out = None;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let (Some(b), Some(f)) = (board.as_mut(), cfg.figures.as_ref())
            && Instant::now() >= b.next
        {
            b.next += f.every();
            let done = tally.total()
                + baseline.as_ref().map_or(0, Tally::total)
                + unmeasured.total()
                + probes.count();
            let in_flight = live.dispatched.load(Ordering::Relaxed).saturating_sub(done);
            f.publish(b.figures(&tally, in_flight, started.elapsed().as_secs_f64()));
        }
        if let (Some(b), Some((view, _))) = (board.as_ref(), cfg.view.as_ref())
            && Instant::now() >= next_view
        {
            // a fixed tick, not one per record: a slow terminal never holds the records up
            next_view = Instant::now() + VIEW_TICK;
            let done = tally.total()
                + baseline.as_ref().map_or(0, Tally::total)
                + unmeasured.total()
                + probes.count();
            let in_flight = live.dispatched.load(Ordering::Relaxed).saturating_sub(done);
            let elapsed_s = started.elapsed().as_secs_f64();
            view.update(&Snapshot {
                done,
                elapsed_s,
                figures: b.figures(&tally, in_flight, elapsed_s),
            });
        }
        if cfg.progress_every.is_some() && Instant::now() >= next_progress {
            next_progress += tick;
            let done = tally.total()
                + baseline.as_ref().map_or(0, Tally::total)
                + unmeasured.total()
                + probes.count();
            let ok = tally.ok
                + baseline.as_ref().map_or(0, |b| b.ok)
                + unmeasured.ok
                + probes.successful();
            let elapsed = started.elapsed().as_secs_f64();
            tracing::info!(
                done,
                planned = cfg.planned,
                failed = done - ok,
                in_flight = live.dispatched.load(Ordering::Relaxed).saturating_sub(done),
                rps = format!("{:.1}", ok as f64 / elapsed.max(1e-9)),
                ttft_p50_ms = format!("{:.1}", ttft_hist.percentile(0.5).unwrap_or(0.0) * 1e3),
                e2e_p95_ms = format!("{:.1}", e2e_hist.percentile(0.95).unwrap_or(0.0) * 1e3),
                "progress"
            );
        }
    }
    if let (Some(b), Some((view, _))) = (board.as_ref(), cfg.view.as_ref()) {
        let done = tally.total()
            + baseline.as_ref().map_or(0, Tally::total)
            + unmeasured.total()
            + probes.count();
        let elapsed_s = started.elapsed().as_secs_f64();
        view.finish(&Snapshot {
            done,
            elapsed_s,
            figures: b.figures(&tally, 0, elapsed_s),
        });
    }
    if let Some(mut w) = out
        && let Err(e) = w.flush().and_then(|()| w.get_ref().sync_all())
    {
        write_error = Some(format!("writing request records: {e}"));
    }
    AggregateOutput {
        tally,
        baseline,
        unmeasured,
        probes,
        write_error,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ErrorKind;

    fn rec(ok: bool, ttft: f64, e2e: f64, tokens: Option<u32>) -> RequestRecord {
        RequestRecord {
            seq: 0,
            prompt_index: 0,
            arm: None,
            probe: None,
            step: None,
            phase: Default::default(),
            scheduled_s: 1.0,
            start_s: 1.5,
            http_status: Some(if ok { 200 } else { 503 }),
            ok,
            error_kind: (!ok).then_some(ErrorKind::Http),
            error: None,
            ttft_s: ok.then_some(ttft),
            e2e_s: ok.then_some(e2e),
            total_s: e2e,
            content_chunks: 3,
            output_tokens: tokens,
            prompt_tokens: tokens.map(|_| 5),
            finish_reason: None,
            itl_mean_s: None,
            itl_max_s: None,
            itl_gaps: vec![0.1, 0.2],
            traceparent: None,
            target: None,
            member: None,
        }
    }

    #[test]
    fn slo_attainment_counts_requests_meeting_every_objective() {
        let slo = Slo {
            ttft_s: Some(0.15),
            tpot_s: Some(0.05),
            e2e_s: None,
        };
        let mut t = Tally::with_slo(Some(slo));
        // ttft 0.1, tpot (1.0 - 0.1) / 19 = 0.047: met
        t.add(&rec(true, 0.1, 1.0, Some(20)));
        // ttft 0.2: missed
        t.add(&rec(true, 0.2, 1.0, Some(20)));
        // tpot 0.9 / 9 = 0.1: missed
        t.add(&rec(true, 0.1, 1.0, Some(10)));
        // one token: no TPOT, met; unknown tokens: cannot be judged, missed
        t.add(&rec(true, 0.1, 0.1, Some(1)));
        t.add(&rec(true, 0.1, 1.0, None));
        // a failure meets nothing
        t.add(&rec(false, 0.0, 0.5, None));
        let a = t.metrics(1.0).slo_attainment.unwrap();
        assert_eq!((a.met, a.requests), (2, 6));
        assert!((a.fraction.unwrap() - 2.0 / 6.0).abs() < 1e-12);
        assert_eq!(a.slo, slo);
        assert_eq!(Tally::default().metrics(1.0).slo_attainment, None);
    }

    #[test]
    fn zero_tokens_after_content_are_counted_apart() {
        let mut t = Tally::default();
        t.add(&rec(true, 0.1, 1.0, Some(0)));
        t.add(&rec(true, 0.1, 1.0, Some(4)));
        let mut empty = rec(true, 0.1, 1.0, Some(0));
        empty.content_chunks = 0;
        t.add(&empty);
        let m = t.metrics(1.0);
        assert_eq!(m.zero_usage_with_content, 1);
        assert_eq!(m.output_tokens, 4);
        assert_eq!(m.responses_without_usage, 0);
    }

    #[test]
    fn tally_counts_errors_tokens_and_rates() {
        let mut t = Tally::default();
        t.add(&rec(true, 0.1, 1.0, Some(11)));
        t.add(&rec(true, 0.2, 2.0, Some(21)));
        t.add(&rec(false, 0.0, 0.5, None));
        let m = t.metrics(2.0);
        assert_eq!(m.total_requests, 3);
        assert_eq!(m.successful_requests, 2);
        assert_eq!(m.errors_by_kind.get("http_503"), Some(&1));
        assert!((m.success_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.output_tokens, 32);
        assert_eq!(m.requests_per_s, Some(1.0));
        assert_eq!(m.output_tokens_per_s, Some(16.0));
        assert_eq!(m.itl_s.count, 4);
        // tpot = (e2e - ttft) / (tokens - 1): 0.9/10 and 1.8/20; histogram figures are within
        // their stated error, never below the sample
        let within = |got: f64, want: f64| got >= want && got <= want * (1.0 + 1e-3);
        assert!(within(m.tpot_s.max.unwrap(), 0.09), "{:?}", m.tpot_s);
        assert!(
            within(m.client_queue_s.p50.unwrap(), 0.5),
            "{:?}",
            m.client_queue_s
        );
        assert_eq!(m.tpot_s.relative_error, Some(1e-3));
        // the judged figures are exact
        assert_eq!(m.e2e_s.relative_error, None);
        assert_eq!(m.e2e_s.p50, Some(1.0));
        assert_eq!(m.e2e_adjusted_s.count, 3);
    }

    #[test]
    fn missing_usage_is_flagged_not_filled_in() {
        let mut t = Tally::default();
        t.add(&rec(true, 0.1, 1.0, None));
        let m = t.metrics(1.0);
        assert_eq!(m.responses_without_usage, 1);
        assert_eq!(m.output_tokens, 0);
        assert_eq!(m.output_tokens_per_s, None);
    }

    #[test]
    fn merge_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (Tally::default(), Tally::default(), Tally::default());
        for (i, r) in [
            rec(true, 0.1, 1.0, Some(3)),
            rec(false, 0.0, 0.1, None),
            rec(true, 0.3, 3.0, Some(5)),
        ]
        .iter()
        .enumerate()
        {
            if i % 2 == 0 {
                a.add(r)
            } else {
                b.add(r)
            }
            all.add(r);
        }
        a.merge(&b);
        assert_eq!(a.metrics(1.0), all.metrics(1.0));
    }

    #[test]
    fn a_tally_written_by_a_shard_reads_back_the_same_and_merges_exactly() {
        let mut a = Tally::with_slo(None);
        let mut b = Tally::with_slo(None);
        for i in 0..50 {
            let mut r = rec(
                i % 7 != 0,
                0.01 * f64::from(i),
                0.5 + 0.01 * f64::from(i),
                Some(9),
            );
            r.total_s = r.e2e_s.unwrap_or(0.1);
            if i % 2 == 0 { a.add(&r) } else { b.add(&r) }
        }
        a.add_failures("abandoned", 2);
        // through the JSON a shard writes: the samples as base64 text, not the live store
        let json = serde_json::to_string(&a.to_wire()).unwrap();
        let back = Tally::from_wire(&serde_json::from_str(&json).unwrap(), 0.0).unwrap();
        assert_eq!(back.metrics(10.0), a.metrics(10.0));
        // merging what two shards wrote equals merging the tallies themselves
        let mut wired = Tally::from_wire(&a.to_wire(), 0.0).unwrap();
        wired.merge(&Tally::from_wire(&b.to_wire(), 0.0).unwrap());
        let mut direct = a.clone();
        direct.merge(&b);
        assert_eq!(wired.metrics(10.0), direct.metrics(10.0));
        // inconsistent counts are refused
        let mut bad = a.to_wire();
        bad.ok += 1;
        assert!(
            Tally::from_wire(&bad, 0.0)
                .unwrap_err()
                .contains("do not add up")
        );
        let mut bad = a.to_wire();
        bad.itl.0 = "%%%".into();
        assert!(
            Tally::from_wire(&bad, 0.0)
                .unwrap_err()
                .starts_with("itl: not base64")
        );
    }

    #[test]
    fn a_mix_member_s_measured_records_also_go_to_its_tally() {
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = AggregatorConfig {
            requests_path: None,
            progress_every: None,
            append: false,
            planned: 4,
            slo: None,
            ab: false,
            figures: None,
            members: 2,
            view: None,
            spans: None,
        };
        let h = std::thread::spawn(move || aggregate(rx, Arc::new(Live::default()), cfg));
        for (member, ok, phase) in [
            (0u16, true, Phase::Measured),
            (1, true, Phase::Measured),
            (1, false, Phase::Measured),
            // not measured: in neither the pooled nor the member's figures
            (0, true, Phase::Warmup),
        ] {
            let mut r = rec(ok, 0.1, 1.0, Some(2));
            r.member = Some(member);
            r.phase = phase;
            tx.send(r).unwrap();
        }
        drop(tx);
        let out = h.join().unwrap();
        assert_eq!(out.tally.total(), 3);
        assert_eq!(out.members.len(), 2);
        assert_eq!(
            (out.members[0].total(), out.members[0].successful()),
            (1, 1)
        );
        assert_eq!(
            (out.members[1].total(), out.members[1].successful()),
            (2, 1)
        );
        assert_eq!(out.unmeasured.total(), 1);
    }

    #[test]
    fn aggregator_writes_one_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl.partial");
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = AggregatorConfig {
            requests_path: Some(path.clone()),
            progress_every: None,
            append: false,
            planned: 2,
            slo: None,
            ab: false,
            figures: None,
            members: 0,
            view: None,
            spans: None,
        };
        let h = std::thread::spawn(move || aggregate(rx, Arc::new(Live::default()), cfg));
        tx.send(rec(true, 0.1, 1.0, Some(2))).unwrap();
        tx.send(rec(false, 0.0, 0.1, None)).unwrap();
        drop(tx);
        let out = h.join().unwrap();
        assert_eq!(out.tally.total(), 2);
        assert!(out.write_error.is_none());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["error_kind"], "http");
        assert_eq!(lines[1]["http_status"], 503);
        assert!(lines[0].get("itl_gaps").is_none());
        // outside an A/B run the record format is unchanged: no `arm`
        assert!(lines[0].get("arm").is_none());
    }

    #[test]
    fn ab_records_go_to_their_arm_s_tally_and_say_their_arm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl.partial");
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = AggregatorConfig {
            requests_path: Some(path.clone()),
            progress_every: None,
            append: false,
            planned: 3,
            slo: None,
            ab: true,
            figures: None,
            members: 0,
            view: None,
            spans: None,
        };
        let h = std::thread::spawn(move || aggregate(rx, Arc::new(Live::default()), cfg));
        for (arm, e2e) in [
            (Arm::Candidate, 1.0),
            (Arm::Baseline, 2.0),
            (Arm::Baseline, 3.0),
        ] {
            let mut r = rec(true, 0.1, e2e, Some(2));
            r.arm = Some(arm);
            tx.send(r).unwrap();
        }
        drop(tx);
        let out = h.join().unwrap();
        assert_eq!(out.tally.total(), 1);
        let b = out.baseline.expect("a baseline tally in an A/B run");
        assert_eq!(b.total(), 2);
        assert_eq!(b.metrics(1.0).e2e_s.p50, Some(2.0));
        let text = std::fs::read_to_string(&path).unwrap();
        let arms: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["arm"].to_string())
            .collect();
        assert_eq!(arms, [r#""candidate""#, r#""baseline""#, r#""baseline""#]);
    }

    /// Records what the aggregator shows it.
    #[derive(Default)]
    struct Recorder {
        seen: std::sync::Mutex<Vec<(&'static str, Option<LoadShape>, Snapshot)>>,
    }

    impl ProgressView for Recorder {
        fn start(&self, shape: &LoadShape) {
            let mut seen = self.seen.lock().unwrap();
            seen.push(("start", Some(shape.clone()), Snapshot::default()));
        }
        fn update(&self, now: &Snapshot) {
            self.seen.lock().unwrap().push(("update", None, *now));
        }
        fn finish(&self, last: &Snapshot) {
            self.seen.lock().unwrap().push(("finish", None, *last));
        }
    }

    #[test]
    fn the_view_is_started_fed_on_its_tick_and_finished_with_every_request() {
        let view = Arc::new(Recorder::default());
        let shape = LoadShape {
            planned: 4,
            end_s: None,
            step: Some("step 1/2 at 1 in flight".into()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = AggregatorConfig {
            requests_path: None,
            progress_every: None,
            append: false,
            planned: 4,
            slo: None,
            ab: false,
            figures: None,
            view: Some((view.clone(), shape.clone())),
            spans: None,
            members: 0,
        };
        let h = std::thread::spawn(move || aggregate(rx, Arc::new(Live::default()), cfg));
        tx.send(rec(true, 0.1, 1.0, Some(2))).unwrap();
        tx.send(rec(false, 0.0, 0.1, None)).unwrap();
        // past a tick: at least one update with both records
        std::thread::sleep(VIEW_TICK * 2);
        let mut warm = rec(true, 0.1, 3.0, Some(2));
        warm.phase = Phase::Warmup;
        tx.send(warm).unwrap();
        tx.send(rec(true, 0.1, 2.0, Some(2))).unwrap();
        drop(tx);
        h.join().unwrap();
        let seen = view.seen.lock().unwrap();
        assert_eq!(seen[0].0, "start");
        assert_eq!(seen[0].1.as_ref(), Some(&shape));
        let updates: Vec<&Snapshot> = seen
            .iter()
            .filter(|s| s.0 == "update")
            .map(|s| &s.2)
            .collect();
        assert!(updates.iter().any(|u| u.done == 2), "{updates:?}");
        let (kind, _, last) = seen.last().unwrap();
        assert_eq!(*kind, "finish");
        // every record is done; the figures are the measured ones (the warm-up's left out)
        assert_eq!(last.done, 4);
        assert_eq!((last.figures.requests, last.figures.failed), (3, 1));
        assert_eq!(last.figures.output_tokens, 4);
        let p90 = last.figures.e2e.p90.unwrap();
        assert!((2.0..2.01).contains(&p90), "{p90}");
    }

    /// A full disk (Linux's `/dev/full` answers every write with ENOSPC): the records are
    /// lost, the tally is not, and the error says so.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_a_write_error_not_a_lost_tally() {
        let (tx, rx) = std::sync::mpsc::channel();
        let cfg = AggregatorConfig {
            requests_path: Some(std::path::PathBuf::from("/dev/full")),
            progress_every: None,
            append: false,
            planned: 1,
            slo: None,
            ab: false,
            figures: None,
            members: 0,
            view: None,
            spans: None,
        };
        let h = std::thread::spawn(move || aggregate(rx, Arc::new(Live::default()), cfg));
        tx.send(rec(true, 0.1, 1.0, Some(2))).unwrap();
        drop(tx);
        let out = h.join().unwrap();
        assert_eq!(out.tally.total(), 1);
        let e = out.write_error.expect("a write error");
        assert!(e.starts_with("writing request records: "), "{e}");
    }
}
