//! An exact, deterministic model of vLLM servers scraped by Prometheus: which samples Prometheus
//! would have stored, at which millisecond, with which value. [`crate::backfill`] writes them
//! into a real Prometheus with `promtool`, so the gate's windowed PromQL can be tested at 15 s,
//! 30 s or 60 s scrape intervals without waiting in real time.
//!
//! # What it models
//! - **Targets** ([`Target`]) of a job, labelled `job` and `instance`, with vLLM's `model_name`
//!   and `engine="0"` on the engine metrics. Each has its own scrape interval and phase: scrapes
//!   happen at `phase + k * interval` (millisecond precision) inside the history's range.
//!   A scrape can be *missed* ([`Target::miss_scrape`]) or fall in a *down* period
//!   ([`Target::down`]), or happen before the process first started: then only `up` = 0 is
//!   written. A target can appear or disappear part-way ([`Target::scraped_from`],
//!   [`Target::scraped_until`]: no scrape at all outside, as when a pod is added or removed).
//! - **Processes**: `process_start_time_seconds` is the start of the process alive at the scrape
//!   ([`Target::started_at`], [`Target::restart_at`]). A restart resets every counter and
//!   histogram to 0 (what the old process recorded after its last scrape is lost).
//! - **Requests** ([`Request`]): queued, started (scheduled), first token, finished, finish
//!   reason, prompt and output tokens, and a recording lag: the server records each event
//!   `recording_lag` after the client saw it. At a scrape at `t` a request is *waiting* if
//!   `queued_at <= t < started_at` and *running* if `started_at <= t < finished_at + lag`.
//!   Recorded (an event at `e` is in every scrape at `t >= e`):
//!   - at `first_token_at + lag`: `vllm:time_to_first_token_seconds` observes
//!     `first_token_at - queued_at`, `vllm:prompt_tokens_total` += prompt tokens,
//!     `vllm:generation_tokens_total` += 1;
//!   - at each further token (the `output_tokens - 1` gaps split `finished_at - first_token_at`
//!     evenly, token times rounded to the millisecond) + lag: `vllm:generation_tokens_total`
//!     += 1 and `vllm:inter_token_latency_seconds` observes the gap;
//!   - at `finished_at + lag`: `vllm:request_success_total{finished_reason}` += 1 and
//!     `vllm:e2e_request_latency_seconds` observes `finished_at - queued_at` (for every finish
//!     reason, as vLLM does). A request with 0 output tokens records only this.
//! - **Series written at every successful scrape**: `up` (also at failed scrapes, as 0),
//!   `process_start_time_seconds`, the counters `vllm:request_success_total` (all five reasons,
//!   pre-initialised at 0 as a fresh vLLM shows), `vllm:generation_tokens_total`,
//!   `vllm:prompt_tokens_total`, the histograms (cumulative `_bucket{le}` with vLLM's default
//!   bounds and `+Inf`, `_sum`, `_count`) `vllm:e2e_request_latency_seconds`,
//!   `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`, and the gauges
//!   `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc`
//!   (prompt + output tokens of the running requests over [`Target::kv_capacity_tokens`],
//!   capped at 1). `le` is spelled as vLLM (Python) spells it: `"1.0"`, `"0.025"`, `"+Inf"`.
//! - Optionally a DCGM exporter ([`DcgmGpu`], its own job): `DCGM_FI_DEV_GPU_UTIL{gpu}`, and any
//!   extra gauge series given sample by sample ([`History::add_gauge`]).
//!
//! # What it does not model
//! - **Staleness markers.** A real Prometheus writes them when a scrape fails or a series
//!   disappears, so instant queries stop returning the series at once. They cannot be
//!   backfilled (the OpenMetrics parser turns any `NaN` into an ordinary NaN), so here an
//!   instant query keeps returning a target's last sample for the 5 min lookback, even during a
//!   down period or after a target is gone. Range queries (`[W]`) are unaffected.
//! - `_created` series, HELP text, the other vLLM metrics, per-step scheduling details: tokens
//!   are spread evenly, KV usage is a simple ratio.
//! - Requests that span a restart are rejected (their fate in a real crash is not modelled).
//!
//! # Use in a test
//! ```no_run
//! use test_support::backfill::BackfilledPrometheus;
//! use test_support::history::{History, Request, Target, TimeBase};
//!
//! let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 300.0);
//! let a = h.add_target(Target::new("x", "10.0.0.1:8000").interval(30.0).phase(2.5));
//! // Queued at 40 s, scheduled at 40.5 s, first token at 41 s, done at 44 s (5 output tokens).
//! h.add_request(Request::new(a, 40.0, 40.5, 41.0, 44.0).tokens(100, 5));
//! let prom = BackfilledPrometheus::start(&h).unwrap();
//! // Evaluated at base + 92.5 s (a scrape), over the two 30 s gaps before it.
//! let done = prom
//!     .value(r#"sum(vllm:request_success_total{job="x"}) - sum(vllm:request_success_total{job="x"} offset 60s)"#, 92.5)
//!     .unwrap();
//! assert_eq!(done, Some(1.0));
//! ```

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Utc};

/// vLLM's default `request_latency` bucket bounds (`+Inf` is implied), used by
/// `vllm:e2e_request_latency_seconds`.
pub const REQUEST_LATENCY_BUCKETS: [f64; 21] = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// vLLM's default `vllm:time_to_first_token_seconds` bucket bounds (`+Inf` implied).
pub const TIME_TO_FIRST_TOKEN_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's default `vllm:inter_token_latency_seconds` bucket bounds (`+Inf` implied).
pub const INTER_TOKEN_LATENCY_BUCKETS: [f64; 19] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// Histogram family of end-to-end latency.
pub const E2E_LATENCY: &str = "vllm:e2e_request_latency_seconds";
/// Histogram family of time to first token.
pub const TIME_TO_FIRST_TOKEN: &str = "vllm:time_to_first_token_seconds";
/// Histogram family of inter-token latency.
pub const INTER_TOKEN_LATENCY: &str = "vllm:inter_token_latency_seconds";
/// Counter of finished requests, by `finished_reason`.
pub const REQUEST_SUCCESS: &str = "vllm:request_success_total";
/// Counter of prompt tokens.
pub const PROMPT_TOKENS: &str = "vllm:prompt_tokens_total";
/// Counter of generated tokens.
pub const GENERATION_TOKENS: &str = "vllm:generation_tokens_total";
/// Gauge of running requests.
pub const NUM_RUNNING: &str = "vllm:num_requests_running";
/// Gauge of waiting requests.
pub const NUM_WAITING: &str = "vllm:num_requests_waiting";
/// Gauge of KV-cache usage (0 to 1).
pub const KV_CACHE_USAGE: &str = "vllm:kv_cache_usage_perc";
/// DCGM's GPU utilisation gauge (0 to 100).
pub const DCGM_GPU_UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";

/// Seconds (an offset from a [`TimeBase`], or a duration) to whole milliseconds, rounded.
pub fn secs_to_ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// The fixed origin of a history: every time in [`History`], [`Target`] and [`Request`] is an
/// offset in seconds from it (millisecond precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeBase {
    unix_ms: i64,
}

impl TimeBase {
    /// About three hours ago, floored to the minute: well inside a Prometheus's retention
    /// (`test_support::prometheus` uses 1 d), and leaves room for histories of up to 3 h.
    pub fn three_hours_ago() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("invariant: the clock is after 1970")
            .as_secs() as i64;
        Self::from_unix_secs((now - 3 * 3600).div_euclid(60) * 60)
    }

    /// A base at the given unix time in seconds.
    pub fn from_unix_secs(secs: i64) -> Self {
        TimeBase {
            unix_ms: secs * 1000,
        }
    }

    /// Unix milliseconds of `offset` seconds after the base.
    pub fn unix_ms(self, offset: f64) -> i64 {
        self.unix_ms + secs_to_ms(offset)
    }

    /// Unix seconds of `offset` seconds after the base (what the Prometheus API's `time` takes).
    pub fn unix_secs(self, offset: f64) -> f64 {
        self.unix_ms(offset) as f64 / 1000.0
    }

    /// The instant `offset` seconds after the base.
    pub fn datetime(self, offset: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.unix_ms(offset))
            .expect("invariant: test times are within chrono's range")
    }

    /// The offset in seconds of a unix time in milliseconds.
    pub fn offset_of_unix_ms(self, unix_ms: i64) -> f64 {
        (unix_ms - self.unix_ms) as f64 / 1000.0
    }
}

/// Why vLLM finished a request: the `finished_reason` label of `vllm:request_success_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FinishReason {
    /// Stop token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// Aborted (client went away).
    Abort,
    /// Failed in the engine.
    Error,
    /// Repetition detected (newer vLLM).
    Repetition,
}

impl FinishReason {
    /// Every reason, in the order vLLM exposes them; all are pre-initialised at 0.
    pub const ALL: [FinishReason; 5] = [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::Abort,
        FinishReason::Error,
        FinishReason::Repetition,
    ];

    /// The label value (`stop`, `length`, ...).
    pub fn label(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
            FinishReason::Repetition => "repetition",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A vLLM server scraped by Prometheus. Times are seconds from the history's [`TimeBase`].
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The `job` label.
    pub job: String,
    /// The `instance` label.
    pub instance: String,
    /// The `model_name` label of the engine metrics (default `m`).
    pub model_name: String,
    /// Scrape interval in seconds (default 15).
    pub interval: f64,
    /// Scrapes happen at `phase + k * interval` (default 0).
    pub phase: f64,
    /// When the first process started (default an hour before the base).
    pub started_at: f64,
    /// When a new process replaced the old one (counters and histograms start again at 0).
    pub restarts: Vec<f64>,
    /// Periods `[from, to)` when scrapes fail (`up` 0, no other sample).
    pub down: Vec<(f64, f64)>,
    /// Scrape times at which the scrape fails (`up` 0, no other sample); each must be a scrape
    /// time of this target.
    pub missed: Vec<f64>,
    /// The target exists (is scraped at all) from this time on; default: the history's start.
    pub scraped_from: Option<f64>,
    /// The target exists until this time (inclusive); default: the history's end.
    pub scraped_until: Option<f64>,
    /// KV-cache capacity in tokens, for `vllm:kv_cache_usage_perc` (default 65536).
    pub kv_capacity_tokens: u64,
}

impl Target {
    /// A target of `job` at `instance` with the defaults listed on the fields.
    pub fn new(job: &str, instance: &str) -> Self {
        Target {
            job: job.to_string(),
            instance: instance.to_string(),
            model_name: "m".to_string(),
            interval: 15.0,
            phase: 0.0,
            started_at: -3600.0,
            restarts: Vec::new(),
            down: Vec::new(),
            missed: Vec::new(),
            scraped_from: None,
            scraped_until: None,
            kv_capacity_tokens: 65536,
        }
    }

    /// Sets the `model_name` label.
    pub fn model_name(mut self, name: &str) -> Self {
        self.model_name = name.to_string();
        self
    }

    /// Sets the scrape interval in seconds.
    pub fn interval(mut self, secs: f64) -> Self {
        self.interval = secs;
        self
    }

    /// Sets the scrape phase in seconds.
    pub fn phase(mut self, secs: f64) -> Self {
        self.phase = secs;
        self
    }

    /// Sets when the first process started.
    pub fn started_at(mut self, at: f64) -> Self {
        self.started_at = at;
        self
    }

    /// Adds a restart: a new process started at `at`.
    pub fn restart_at(mut self, at: f64) -> Self {
        self.restarts.push(at);
        self
    }

    /// Adds a down period `[from, to)`.
    pub fn down(mut self, from: f64, to: f64) -> Self {
        self.down.push((from, to));
        self
    }

    /// Makes the scrape at `at` fail.
    pub fn miss_scrape(mut self, at: f64) -> Self {
        self.missed.push(at);
        self
    }

    /// The target is scraped only from `at` on (it appears part-way).
    pub fn scraped_from(mut self, at: f64) -> Self {
        self.scraped_from = Some(at);
        self
    }

    /// The target is scraped only until `at` (it disappears part-way).
    pub fn scraped_until(mut self, at: f64) -> Self {
        self.scraped_until = Some(at);
        self
    }

    /// Sets the KV-cache capacity in tokens.
    pub fn kv_capacity_tokens(mut self, tokens: u64) -> Self {
        self.kv_capacity_tokens = tokens;
        self
    }
}

/// A target's index in its [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetId(usize);

/// One request as the server saw it. Times are seconds from the history's [`TimeBase`], with
/// `queued_at <= started_at <= first_token_at <= finished_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The server that handled it.
    pub target: TargetId,
    /// Arrival (vLLM's `arrival_time`; the e2e and TTFT histograms measure from here).
    pub queued_at: f64,
    /// Scheduled: leaves `waiting`, joins `running`.
    pub started_at: f64,
    /// The client saw the first token.
    pub first_token_at: f64,
    /// The client saw the last chunk.
    pub finished_at: f64,
    /// The `finished_reason` counted (default `stop`).
    pub finish_reason: FinishReason,
    /// Prompt tokens (default 16).
    pub prompt_tokens: u64,
    /// Output tokens (default 8); 0 records no token, TTFT or ITL.
    pub output_tokens: u64,
    /// How long after the client saw an event the server records it (default 0.05 s).
    pub recording_lag: f64,
}

impl Request {
    /// A `stop` request with 16 prompt and 8 output tokens and a 50 ms recording lag.
    pub fn new(
        target: TargetId,
        queued_at: f64,
        started_at: f64,
        first_token_at: f64,
        finished_at: f64,
    ) -> Self {
        Request {
            target,
            queued_at,
            started_at,
            first_token_at,
            finished_at,
            finish_reason: FinishReason::Stop,
            prompt_tokens: 16,
            output_tokens: 8,
            recording_lag: 0.05,
        }
    }

    /// Sets the finish reason.
    pub fn finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = reason;
        self
    }

    /// Sets the prompt and output token counts.
    pub fn tokens(mut self, prompt: u64, output: u64) -> Self {
        self.prompt_tokens = prompt;
        self.output_tokens = output;
        self
    }

    /// Sets the recording lag in seconds.
    pub fn lag(mut self, secs: f64) -> Self {
        self.recording_lag = secs;
        self
    }
}

/// A DCGM exporter for the GPU of one vLLM target, scraped as its own job. Its
/// `DCGM_FI_DEV_GPU_UTIL{gpu}` is `min(100, util_per_running * running requests of the served
/// target)` at each scrape; the exporter is always up.
#[derive(Debug, Clone, PartialEq)]
pub struct DcgmGpu {
    /// The `job` label (default `dcgm`).
    pub job: String,
    /// The `instance` label.
    pub instance: String,
    /// The `gpu` label (default `0`).
    pub gpu: String,
    /// Scrape interval in seconds (default 15).
    pub interval: f64,
    /// Scrape phase in seconds (default 0).
    pub phase: f64,
    /// The vLLM target whose running requests drive the utilisation.
    pub serves: TargetId,
    /// Utilisation per running request, in percent (default 25).
    pub util_per_running: f64,
}

impl DcgmGpu {
    /// An exporter at `instance` for the GPU of `serves`, with the defaults on the fields.
    pub fn new(instance: &str, serves: TargetId) -> Self {
        DcgmGpu {
            job: "dcgm".to_string(),
            instance: instance.to_string(),
            gpu: "0".to_string(),
            interval: 15.0,
            phase: 0.0,
            serves,
            util_per_running: 25.0,
        }
    }

    /// Sets the scrape interval in seconds.
    pub fn interval(mut self, secs: f64) -> Self {
        self.interval = secs;
        self
    }

    /// Sets the scrape phase in seconds.
    pub fn phase(mut self, secs: f64) -> Self {
        self.phase = secs;
        self
    }
}

/// One series as Prometheus stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric name (`vllm:request_success_total`, `vllm:e2e_request_latency_seconds_bucket`).
    pub name: String,
    /// The labels other than `__name__`.
    pub labels: BTreeMap<String, String>,
    /// `(unix milliseconds, value)` in time order.
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// The value of label `name`, if set.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether the series is named `name` and carries every `(label, value)` of `labels`.
    pub fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// One scrape attempt of a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scrape {
    /// Seconds from the base.
    pub at: f64,
    /// Unix milliseconds.
    pub unix_ms: i64,
    /// Whether it succeeded (samples written, `up` 1) or failed (only `up` 0).
    pub up: bool,
}

/// The sample histories of a set of targets over `[from, to]` (seconds from the base).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    base: TimeBase,
    from: f64,
    to: f64,
    targets: Vec<Target>,
    requests: Vec<Request>,
    gpus: Vec<DcgmGpu>,
    gauges: Vec<Series>,
}

/// The OpenMetrics type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Histogram {
        bounds: &'static [f64],
        /// Cumulative counts per bound, then `+Inf`.
        cumulative: Vec<u64>,
        sum: f64,
    },
}

type Labels = BTreeMap<String, String>;

/// A metric family: its metrics (label sets) and their points in time order.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    kind: Kind,
    metrics: BTreeMap<Labels, Vec<(i64, Value)>>,
}

/// Families by name (counters without `_total`, histograms without suffix).
#[derive(Debug, Default)]
struct Families(BTreeMap<String, Family>);

impl Families {
    fn push(
        &mut self,
        family: &str,
        kind: Kind,
        labels: &Labels,
        ms: i64,
        value: Value,
    ) -> Result<()> {
        let f = self.0.entry(family.to_string()).or_insert_with(|| Family {
            kind,
            metrics: BTreeMap::new(),
        });
        ensure!(
            f.kind == kind,
            "family {family} is both a {} and a {}",
            f.kind.name(),
            kind.name()
        );
        let points = f.metrics.entry(labels.clone()).or_default();
        if let Some((last, _)) = points.last() {
            ensure!(
                *last < ms,
                "series {family}{labels:?} has two samples at or out of order around unix ms {ms} \
                 (two targets with the same job and instance, or gauge samples not in time order?)"
            );
        }
        points.push((ms, value));
        Ok(())
    }
}

/// A histogram being accumulated: non-cumulative counts per bucket (last is `+Inf`).
#[derive(Debug, Clone)]
struct Hist {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Self {
        Hist {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }

    fn value(&self) -> Value {
        let cumulative = self
            .counts
            .iter()
            .scan(0, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect();
        Value::Histogram {
            bounds: self.bounds,
            cumulative,
            sum: self.sum,
        }
    }
}

/// What one process of a target has recorded so far.
#[derive(Debug, Clone)]
struct Recorded {
    success: [u64; 5],
    prompt_tokens: u64,
    generation_tokens: u64,
    e2e: Hist,
    ttft: Hist,
    itl: Hist,
}

impl Recorded {
    fn new() -> Self {
        Recorded {
            success: [0; 5],
            prompt_tokens: 0,
            generation_tokens: 0,
            e2e: Hist::new(&REQUEST_LATENCY_BUCKETS),
            ttft: Hist::new(&TIME_TO_FIRST_TOKEN_BUCKETS),
            itl: Hist::new(&INTER_TOKEN_LATENCY_BUCKETS),
        }
    }

    fn apply(&mut self, event: &Event) {
        match *event {
            Event::FirstToken {
                ttft,
                prompt_tokens,
            } => {
                self.ttft.observe(ttft);
                self.prompt_tokens += prompt_tokens;
                self.generation_tokens += 1;
            }
            Event::Token { gap } => {
                self.itl.observe(gap);
                self.generation_tokens += 1;
            }
            Event::Finish { reason, e2e } => {
                self.success[reason.index()] += 1;
                self.e2e.observe(e2e);
            }
        }
    }
}

/// A recorded event of a request.
#[derive(Debug, Clone, Copy)]
enum Event {
    FirstToken { ttft: f64, prompt_tokens: u64 },
    Token { gap: f64 },
    Finish { reason: FinishReason, e2e: f64 },
}

/// A request's times in unix ms.
#[derive(Debug, Clone, Copy)]
struct RequestMs {
    queued: i64,
    started: i64,
    first_token: i64,
    finished: i64,
    lag: i64,
}

/// Scrape times `phase + k * interval` within `[from, to]` (all ms).
fn scrape_grid(from: i64, to: i64, phase: i64, interval: i64) -> Vec<i64> {
    let d = from - phase;
    let mut k = d.div_euclid(interval) + i64::from(d.rem_euclid(interval) != 0);
    let mut out = Vec::new();
    loop {
        let t = phase + k * interval;
        if t > to {
            return out;
        }
        out.push(t);
        k += 1;
    }
}

fn check_finite(what: &str, v: f64) -> Result<()> {
    ensure!(v.is_finite(), "{what} is not a finite number: {v}");
    Ok(())
}

impl History {
    /// An empty history: scrapes happen within `[from, to]` seconds from `base`.
    pub fn new(base: TimeBase, from: f64, to: f64) -> Self {
        History {
            base,
            from,
            to,
            targets: Vec::new(),
            requests: Vec::new(),
            gpus: Vec::new(),
            gauges: Vec::new(),
        }
    }

    /// The time base.
    pub fn base(&self) -> TimeBase {
        self.base
    }

    /// The scrape range `[from, to]` in seconds from the base.
    pub fn range(&self) -> (f64, f64) {
        (self.from, self.to)
    }

    /// Adds a vLLM target.
    pub fn add_target(&mut self, target: Target) -> TargetId {
        self.targets.push(target);
        TargetId(self.targets.len() - 1)
    }

    /// The target behind `id`.
    pub fn target(&self, id: TargetId) -> &Target {
        &self.targets[id.0]
    }

    /// Adds a request.
    pub fn add_request(&mut self, request: Request) {
        self.requests.push(request);
    }

    /// Adds a DCGM exporter.
    pub fn add_gpu(&mut self, gpu: DcgmGpu) {
        self.gpus.push(gpu);
    }

    /// Adds a gauge series given sample by sample (`(seconds from the base, value)`, in time
    /// order), e.g. an old metric name or a series of another exporter.
    pub fn add_gauge(&mut self, name: &str, labels: &[(&str, &str)], samples: &[(f64, f64)]) {
        self.gauges.push(Series {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: samples
                .iter()
                .map(|(t, v)| (self.base.unix_ms(*t), *v))
                .collect(),
        });
    }

    /// Every scrape attempt of a target, in time order.
    pub fn scrapes(&self, id: TargetId) -> Result<Vec<Scrape>> {
        let t = self
            .targets
            .get(id.0)
            .with_context(|| format!("no target {id:?}"))?;
        let what = format!("target {}/{}", t.job, t.instance);
        let ms = |v: f64| self.base.unix_ms(v);
        for (name, v) in [
            ("interval", t.interval),
            ("phase", t.phase),
            ("started_at", t.started_at),
        ] {
            check_finite(&format!("{what}: {name}"), v)?;
        }
        let interval = secs_to_ms(t.interval);
        ensure!(
            interval > 0,
            "{what}: interval {} is not positive",
            t.interval
        );
        let edges = t.scraped_from.iter().chain(&t.scraped_until);
        let down = t.down.iter().flat_map(|(a, b)| [a, b]);
        for v in edges.chain(down).chain(&t.missed) {
            check_finite(&format!("{what}: a time"), *v)?;
        }
        let from = ms(t.scraped_from.unwrap_or(self.from).max(self.from));
        let to = ms(t.scraped_until.unwrap_or(self.to).min(self.to));
        let grid = scrape_grid(from, to, ms(t.phase), interval);
        let starts = self.process_starts(id)?;
        for &(a, b) in &t.down {
            ensure!(a < b, "{what}: down period [{a}, {b}) is empty");
        }
        for &m in &t.missed {
            ensure!(
                grid.binary_search(&ms(m)).is_ok(),
                "{what}: miss_scrape({m}) is not a scrape time (scrapes are at {} + k * {} within \
                 the range)",
                t.phase,
                t.interval
            );
        }
        Ok(grid
            .into_iter()
            .map(|at| {
                let missed = t.missed.iter().any(|m| ms(*m) == at);
                let down = t.down.iter().any(|(a, b)| ms(*a) <= at && at < ms(*b));
                let born = starts.first().is_some_and(|s| *s <= at);
                Scrape {
                    at: self.base.offset_of_unix_ms(at),
                    unix_ms: at,
                    up: born && !missed && !down,
                }
            })
            .collect())
    }

    /// Process start times of a target in unix ms, increasing.
    fn process_starts(&self, id: TargetId) -> Result<Vec<i64>> {
        let t = &self.targets[id.0];
        let mut starts = vec![self.base.unix_ms(t.started_at)];
        for &r in &t.restarts {
            check_finite("restart", r)?;
            starts.push(self.base.unix_ms(r));
        }
        ensure!(
            starts.windows(2).all(|w| w[0] < w[1]),
            "target {}/{}: started_at and restarts must increase: {:?}",
            t.job,
            t.instance,
            std::iter::once(t.started_at)
                .chain(t.restarts.iter().copied())
                .collect::<Vec<_>>()
        );
        Ok(starts)
    }

    /// The requests of a target (with their index) in unix ms, validated.
    fn requests_ms(&self, id: TargetId, starts: &[i64]) -> Result<Vec<(&Request, RequestMs)>> {
        let mut out = Vec::new();
        for (i, r) in self.requests.iter().enumerate() {
            if r.target != id {
                continue;
            }
            let what = format!("request #{i} (target {})", self.targets[id.0].instance);
            for (name, v) in [
                ("queued_at", r.queued_at),
                ("started_at", r.started_at),
                ("first_token_at", r.first_token_at),
                ("finished_at", r.finished_at),
                ("recording_lag", r.recording_lag),
            ] {
                check_finite(&format!("{what}: {name}"), v)?;
            }
            let m = RequestMs {
                queued: self.base.unix_ms(r.queued_at),
                started: self.base.unix_ms(r.started_at),
                first_token: self.base.unix_ms(r.first_token_at),
                finished: self.base.unix_ms(r.finished_at),
                lag: secs_to_ms(r.recording_lag),
            };
            ensure!(
                m.queued <= m.started && m.started <= m.first_token && m.first_token <= m.finished,
                "{what}: needs queued_at <= started_at <= first_token_at <= finished_at"
            );
            ensure!(m.lag >= 0, "{what}: recording_lag is negative");
            let process = |t: i64| starts.partition_point(|s| *s <= t);
            ensure!(
                process(m.queued) > 0,
                "{what}: queued before the target's first process started"
            );
            ensure!(
                process(m.queued) == process(m.finished + m.lag),
                "{what}: spans a restart (queued_at to finished_at + recording_lag)"
            );
            out.push((r, m));
        }
        Ok(out)
    }

    /// Every series as Prometheus stores it after backfilling, sorted by name then labels.
    pub fn series(&self) -> Result<Vec<Series>> {
        Ok(flatten(&self.families()?))
    }

    /// The number of samples [`History::series`] holds.
    pub fn sample_count(&self) -> Result<usize> {
        Ok(self.series()?.iter().map(|s| s.samples.len()).sum())
    }

    /// The history as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: one
    /// `# TYPE` line per family (counter families named without `_total`, their samples with
    /// it), each family's lines contiguous, each series' samples in time order (a histogram's
    /// buckets, `_count` and `_sum` together per timestamp), timestamps in seconds with
    /// millisecond decimals, ending with `# EOF`.
    pub fn openmetrics(&self) -> Result<String> {
        Ok(render(&self.families()?))
    }

    fn families(&self) -> Result<Families> {
        check_finite("history from", self.from)?;
        check_finite("history to", self.to)?;
        ensure!(
            self.from <= self.to,
            "history range [{}, {}] is empty",
            self.from,
            self.to
        );
        for r in &self.requests {
            ensure!(
                r.target.0 < self.targets.len(),
                "a request names {:?}, which is not a target of this history",
                r.target
            );
        }
        let mut fam = Families::default();
        for id in (0..self.targets.len()).map(TargetId) {
            self.target_families(id, &mut fam)?;
        }
        for g in &self.gpus {
            self.gpu_families(g, &mut fam)?;
        }
        for s in &self.gauges {
            for &(ms, v) in &s.samples {
                fam.push(&s.name, Kind::Gauge, &s.labels, ms, Value::Number(v))
                    .with_context(|| format!("gauge {}", s.name))?;
            }
        }
        Ok(fam)
    }

    fn target_families(&self, id: TargetId, fam: &mut Families) -> Result<()> {
        let t = &self.targets[id.0];
        let scrapes = self.scrapes(id)?;
        let starts = self.process_starts(id)?;
        let requests = self.requests_ms(id, &starts)?;
        let mut events = Vec::new();
        for (r, m) in &requests {
            if r.output_tokens > 0 {
                events.push((
                    m.first_token + m.lag,
                    Event::FirstToken {
                        ttft: (m.first_token - m.queued) as f64 / 1000.0,
                        prompt_tokens: r.prompt_tokens,
                    },
                ));
                let gaps = r.output_tokens - 1;
                if gaps > 0 {
                    let span = m.finished - m.first_token;
                    let gap = span as f64 / 1000.0 / gaps as f64;
                    let gaps = i64::try_from(gaps).context("output_tokens too large")?;
                    for i in 1..=gaps {
                        let at = m.first_token + (i * span + gaps / 2) / gaps;
                        events.push((at + m.lag, Event::Token { gap }));
                    }
                }
            }
            events.push((
                m.finished + m.lag,
                Event::Finish {
                    reason: r.finish_reason,
                    e2e: (m.finished - m.queued) as f64 / 1000.0,
                },
            ));
        }
        events.sort_by_key(|(at, _)| *at);

        let target_labels: Labels = [("job", &t.job), ("instance", &t.instance)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut engine_labels = target_labels.clone();
        engine_labels.insert("model_name".into(), t.model_name.clone());
        engine_labels.insert("engine".into(), "0".into());
        let with = |k: &str, v: &str| {
            let mut l = engine_labels.clone();
            l.insert(k.to_string(), v.to_string());
            l
        };

        let mut process: Option<i64> = None;
        let mut rec = Recorded::new();
        let mut next = 0;
        for s in scrapes {
            let at = s.unix_ms;
            let num = |v: f64| Value::Number(v);
            fam.push(
                "up",
                Kind::Gauge,
                &target_labels,
                at,
                num(f64::from(u8::from(s.up))),
            )?;
            if !s.up {
                continue;
            }
            let start = starts[starts.partition_point(|st| *st <= at) - 1];
            if process != Some(start) {
                process = Some(start);
                rec = Recorded::new();
                while next < events.len() && events[next].0 < start {
                    next += 1;
                }
            }
            while next < events.len() && events[next].0 <= at {
                rec.apply(&events[next].1);
                next += 1;
            }
            fam.push(
                "process_start_time_seconds",
                Kind::Gauge,
                &target_labels,
                at,
                num(start as f64 / 1000.0),
            )?;
            for reason in FinishReason::ALL {
                fam.push(
                    "vllm:request_success",
                    Kind::Counter,
                    &with("finished_reason", reason.label()),
                    at,
                    num(rec.success[reason.index()] as f64),
                )?;
            }
            let counter = |v: u64| num(v as f64);
            fam.push(
                "vllm:prompt_tokens",
                Kind::Counter,
                &engine_labels,
                at,
                counter(rec.prompt_tokens),
            )?;
            fam.push(
                "vllm:generation_tokens",
                Kind::Counter,
                &engine_labels,
                at,
                counter(rec.generation_tokens),
            )?;
            fam.push(
                E2E_LATENCY,
                Kind::Histogram,
                &engine_labels,
                at,
                rec.e2e.value(),
            )?;
            fam.push(
                TIME_TO_FIRST_TOKEN,
                Kind::Histogram,
                &engine_labels,
                at,
                rec.ttft.value(),
            )?;
            fam.push(
                INTER_TOKEN_LATENCY,
                Kind::Histogram,
                &engine_labels,
                at,
                rec.itl.value(),
            )?;
            let running: Vec<_> = requests
                .iter()
                .filter(|(_, m)| m.started <= at && at < m.finished + m.lag)
                .collect();
            let waiting = requests
                .iter()
                .filter(|(_, m)| m.queued <= at && at < m.started)
                .count();
            let kv_tokens: u64 = running
                .iter()
                .map(|(r, _)| r.prompt_tokens + r.output_tokens)
                .sum();
            let kv = (kv_tokens as f64 / t.kv_capacity_tokens.max(1) as f64).min(1.0);
            fam.push(
                NUM_RUNNING,
                Kind::Gauge,
                &engine_labels,
                at,
                num(running.len() as f64),
            )?;
            fam.push(
                NUM_WAITING,
                Kind::Gauge,
                &engine_labels,
                at,
                num(waiting as f64),
            )?;
            fam.push(KV_CACHE_USAGE, Kind::Gauge, &engine_labels, at, num(kv))?;
        }
        Ok(())
    }

    fn gpu_families(&self, g: &DcgmGpu, fam: &mut Families) -> Result<()> {
        ensure!(
            g.serves.0 < self.targets.len(),
            "GPU {}/{} serves {:?}, which is not a target of this history",
            g.job,
            g.instance,
            g.serves
        );
        check_finite("GPU interval", g.interval)?;
        check_finite("GPU phase", g.phase)?;
        let interval = secs_to_ms(g.interval);
        ensure!(
            interval > 0,
            "GPU {}: interval {} is not positive",
            g.instance,
            g.interval
        );
        let starts = self.process_starts(g.serves)?;
        let requests = self.requests_ms(g.serves, &starts)?;
        let labels: Labels = [("job", &g.job), ("instance", &g.instance)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut gpu_labels = labels.clone();
        gpu_labels.insert("gpu".into(), g.gpu.clone());
        let from = self.base.unix_ms(self.from);
        let to = self.base.unix_ms(self.to);
        for at in scrape_grid(from, to, self.base.unix_ms(g.phase), interval) {
            let running = requests
                .iter()
                .filter(|(_, m)| m.started <= at && at < m.finished + m.lag)
                .count();
            let util = (g.util_per_running * running as f64).min(100.0);
            fam.push("up", Kind::Gauge, &labels, at, Value::Number(1.0))?;
            fam.push(
                DCGM_GPU_UTIL,
                Kind::Gauge,
                &gpu_labels,
                at,
                Value::Number(util),
            )?;
        }
        Ok(())
    }
}

/// A sample value as OpenMetrics spells it.
fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// An `le` label value as vLLM (Python's `repr`) spells it: `1.0`, `0.025`, `+Inf`.
pub fn fmt_le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{bound:?}")
    }
}

/// A timestamp in seconds with millisecond decimals, such that promtool (which computes
/// `int64(parsed * 1000)`, truncating) reads back exactly `ms`.
pub fn fmt_timestamp(ms: i64) -> String {
    let plain = format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    if reads_back(&plain, ms) {
        return plain;
    }
    // Half a millisecond more survives the truncation whatever the rounding of the parse.
    let padded = format!("{plain}5");
    debug_assert!(reads_back(&padded, ms), "timestamp {ms} cannot be written");
    padded
}

fn reads_back(text: &str, ms: i64) -> bool {
    text.parse::<f64>().map(|s| (s * 1000.0) as i64) == Ok(ms)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn render(fam: &Families) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (name, f) in &fam.0 {
        let _ = writeln!(out, "# TYPE {name} {}", f.kind.name());
        for (labels, points) in &f.metrics {
            for (ms, value) in points {
                let ts = fmt_timestamp(*ms);
                match value {
                    Value::Number(v) => {
                        let sample = if f.kind == Kind::Counter {
                            format!("{name}_total")
                        } else {
                            name.clone()
                        };
                        let _ = writeln!(
                            out,
                            "{sample}{} {} {ts}",
                            fmt_labels(labels, None),
                            fmt_value(*v)
                        );
                    }
                    Value::Histogram {
                        bounds,
                        cumulative,
                        sum,
                    } => {
                        let les = bounds.iter().copied().chain([f64::INFINITY]);
                        for (le, c) in les.zip(cumulative) {
                            let l = fmt_labels(labels, Some(&fmt_le(le)));
                            let _ = writeln!(out, "{name}_bucket{l} {c} {ts}");
                        }
                        let l = fmt_labels(labels, None);
                        let count = cumulative.last().copied().unwrap_or(0);
                        let _ = writeln!(out, "{name}_count{l} {count} {ts}");
                        let _ = writeln!(out, "{name}_sum{l} {} {ts}", fmt_value(*sum));
                    }
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn flatten(fam: &Families) -> Vec<Series> {
    let mut out: BTreeMap<(String, Labels), Vec<(i64, f64)>> = BTreeMap::new();
    for (name, f) in &fam.0 {
        for (labels, points) in &f.metrics {
            for (ms, value) in points {
                match value {
                    Value::Number(v) => {
                        let n = if f.kind == Kind::Counter {
                            format!("{name}_total")
                        } else {
                            name.clone()
                        };
                        out.entry((n, labels.clone())).or_default().push((*ms, *v));
                    }
                    Value::Histogram {
                        bounds,
                        cumulative,
                        sum,
                    } => {
                        let les = bounds.iter().copied().chain([f64::INFINITY]);
                        for (le, c) in les.zip(cumulative) {
                            let mut l = labels.clone();
                            l.insert("le".into(), fmt_le(le));
                            out.entry((format!("{name}_bucket"), l))
                                .or_default()
                                .push((*ms, *c as f64));
                        }
                        let count = cumulative.last().copied().unwrap_or(0);
                        out.entry((format!("{name}_count"), labels.clone()))
                            .or_default()
                            .push((*ms, count as f64));
                        out.entry((format!("{name}_sum"), labels.clone()))
                            .or_default()
                            .push((*ms, *sum));
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|((name, labels), samples)| Series {
            name,
            labels,
            samples,
        })
        .collect()
}

/// Fails if `base + [from, to]` is not within the last day (the retention of
/// `test_support::prometheus`), or lies in the future.
pub(crate) fn check_within_retention(history: &History) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("invariant: the clock is after 1970")
        .as_millis() as i64;
    let (from, to) = (
        history.base.unix_ms(history.from),
        history.base.unix_ms(history.to),
    );
    if to > now {
        bail!(
            "the history ends {} s in the future: backfilled samples must lie in the past",
            (to - now) / 1000
        );
    }
    if from < now - 23 * 3600 * 1000 {
        bail!(
            "the history starts {} s ago, outside the 1 d retention of the test Prometheus",
            (now - from) / 1000
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> TimeBase {
        TimeBase::from_unix_secs(1_796_436_900)
    }

    #[test]
    fn time_base_converts_offsets() {
        let b = base();
        assert_eq!(b.unix_ms(2.5), 1_796_436_902_500);
        assert_eq!(b.unix_ms(-0.0004), 1_796_436_900_000);
        assert_eq!(b.unix_secs(0.25), 1_796_436_900.25);
        assert_eq!(b.offset_of_unix_ms(1_796_436_960_001), 60.001);
        assert_eq!(b.datetime(60.0).to_rfc3339(), "2026-12-05T02:16:00+00:00");
        let now = TimeBase::three_hours_ago();
        assert_eq!(now.unix_ms % 60_000, 0, "aligned to the minute");
    }

    #[test]
    fn timestamps_read_back_exactly_through_promtools_truncation() {
        assert_eq!(fmt_timestamp(1_796_436_900_000), "1796436900.000");
        assert_eq!(fmt_timestamp(1_796_436_900_251), "1796436900.251");
        // A day's milliseconds around now read back (`int64(ts * 1000)` as in promtool), and so
        // does the fallback spelling with half a millisecond more.
        for ms in (1_796_436_900_000_i64..).step_by(61).take(86_400_000 / 61) {
            assert!(reads_back(&fmt_timestamp(ms), ms), "{ms}");
            let padded = format!("{}.{:03}5", ms / 1000, ms % 1000);
            assert!(reads_back(&padded, ms), "{padded}");
        }
        assert!(
            !reads_back("1796436900251", 1_796_436_900_251),
            "seconds, not ms"
        );
    }

    #[test]
    fn le_and_values_are_spelled_as_vllm_and_openmetrics_do() {
        assert_eq!(fmt_le(1.0), "1.0");
        assert_eq!(fmt_le(0.025), "0.025");
        assert_eq!(fmt_le(7680.0), "7680.0");
        assert_eq!(fmt_le(f64::INFINITY), "+Inf");
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.1), "0.1");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(fmt_value(f64::NAN), "NaN");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn scrape_grid_is_phase_plus_multiples_of_the_interval() {
        assert_eq!(
            scrape_grid(0, 60_000, 2_500, 15_000),
            [2_500, 17_500, 32_500, 47_500]
        );
        assert_eq!(
            scrape_grid(2_500, 32_500, 2_500, 15_000),
            [2_500, 17_500, 32_500]
        );
        assert_eq!(scrape_grid(-10_000, 0, 50_000, 30_000), [-10_000]);
        assert_eq!(scrape_grid(0, 1_000, 2_000, 30_000), Vec::<i64>::new());
    }

    #[test]
    fn histograms_are_cumulative_with_le_inclusive_upper_bounds() {
        let mut h = Hist::new(&REQUEST_LATENCY_BUCKETS);
        for v in [0.3, 0.31, 7680.0, 9000.0] {
            h.observe(v);
        }
        let Value::Histogram {
            cumulative, sum, ..
        } = h.value()
        else {
            panic!("not a histogram")
        };
        assert_eq!(cumulative[0], 1, "0.3 is in le=0.3");
        assert_eq!(cumulative[1], 2);
        assert_eq!(cumulative[20], 3, "7680 is in le=7680.0");
        assert_eq!(cumulative[21], 4, "+Inf holds everything");
        assert_eq!(sum, 0.3 + 0.31 + 7680.0 + 9000.0);
    }

    /// One target scraped at 0, 15, 30, 45, 60 s; one request recorded at 20.05 s.
    fn tiny() -> (History, TargetId) {
        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(Target::new("x", "a:1").miss_scrape(45.0));
        h.add_request(Request::new(a, 10.0, 11.0, 12.0, 20.0).tokens(100, 3));
        (h, a)
    }

    fn samples(h: &History, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let found: Vec<_> = h
            .series()
            .unwrap()
            .into_iter()
            .filter(|s| s.matches(name, labels))
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0]
            .samples
            .iter()
            .map(|(ms, v)| (h.base().offset_of_unix_ms(*ms), *v))
            .collect()
    }

    #[test]
    fn a_request_is_counted_from_the_first_scrape_after_it_was_recorded() {
        let (h, _) = tiny();
        let ok = samples(&h, REQUEST_SUCCESS, &[("finished_reason", "stop")]);
        assert_eq!(ok, [(0.0, 0.0), (15.0, 0.0), (30.0, 1.0), (60.0, 1.0)]);
        let abort = samples(&h, REQUEST_SUCCESS, &[("finished_reason", "abort")]);
        assert_eq!(abort, [(0.0, 0.0), (15.0, 0.0), (30.0, 0.0), (60.0, 0.0)]);
        let up = samples(&h, "up", &[]);
        assert_eq!(
            up,
            [
                (0.0, 1.0),
                (15.0, 1.0),
                (30.0, 1.0),
                (45.0, 0.0),
                (60.0, 1.0)
            ]
        );
        let running = samples(&h, NUM_RUNNING, &[]);
        assert_eq!(running, [(0.0, 0.0), (15.0, 1.0), (30.0, 0.0), (60.0, 0.0)]);
        // 3 tokens: first at 12 s (recorded 12.05), then 16 s and 20 s (gaps of 4 s).
        let generated = samples(&h, GENERATION_TOKENS, &[]);
        assert_eq!(
            generated,
            [(0.0, 0.0), (15.0, 1.0), (30.0, 3.0), (60.0, 3.0)]
        );
        let itl = samples(
            &h,
            "vllm:inter_token_latency_seconds_bucket",
            &[("le", "5.0")],
        );
        assert_eq!(itl[2], (30.0, 2.0));
        let itl = samples(
            &h,
            "vllm:inter_token_latency_seconds_bucket",
            &[("le", "2.5")],
        );
        assert_eq!(itl[2], (30.0, 0.0));
        let e2e_sum = samples(&h, "vllm:e2e_request_latency_seconds_sum", &[]);
        assert_eq!(e2e_sum[2], (30.0, 10.0));
        let ttft = samples(
            &h,
            "vllm:time_to_first_token_seconds_bucket",
            &[("le", "2.5")],
        );
        assert_eq!(ttft[1], (15.0, 1.0), "TTFT 2 s");
        let kv = samples(&h, KV_CACHE_USAGE, &[]);
        assert_eq!(kv[1], (15.0, 103.0 / 65536.0));
    }

    #[test]
    fn openmetrics_has_one_type_line_per_family_and_counter_samples_with_total() {
        let (h, _) = tiny();
        let text = h.openmetrics().unwrap();
        assert!(text.ends_with("\n# EOF\n"));
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(
            types,
            [
                "# TYPE process_start_time_seconds gauge",
                "# TYPE up gauge",
                "# TYPE vllm:e2e_request_latency_seconds histogram",
                "# TYPE vllm:generation_tokens counter",
                "# TYPE vllm:inter_token_latency_seconds histogram",
                "# TYPE vllm:kv_cache_usage_perc gauge",
                "# TYPE vllm:num_requests_running gauge",
                "# TYPE vllm:num_requests_waiting gauge",
                "# TYPE vllm:prompt_tokens counter",
                "# TYPE vllm:request_success counter",
                "# TYPE vllm:time_to_first_token_seconds histogram",
            ]
        );
        assert!(text.contains(
            "\nvllm:request_success_total{engine=\"0\",finished_reason=\"stop\",instance=\"a:1\",\
             job=\"x\",model_name=\"m\"} 1 1796436930.000\n"
        ));
        assert!(text.contains(
            "\nvllm:e2e_request_latency_seconds_bucket{engine=\"0\",instance=\"a:1\",job=\"x\",\
             model_name=\"m\",le=\"+Inf\"} 1 1796436930.000\n\
             vllm:e2e_request_latency_seconds_count{engine=\"0\",instance=\"a:1\",job=\"x\",\
             model_name=\"m\"} 1 1796436930.000\n\
             vllm:e2e_request_latency_seconds_sum{engine=\"0\",instance=\"a:1\",job=\"x\",\
             model_name=\"m\"} 10 1796436930.000\n"
        ));
        assert!(text.contains("\nup{instance=\"a:1\",job=\"x\"} 0 1796436945.000\n"));
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            h.sample_count().unwrap()
        );
    }

    #[test]
    fn restarts_reset_counters_and_change_the_process_start() {
        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(Target::new("x", "a:1").started_at(-100.0).restart_at(25.0));
        h.add_request(Request::new(a, 1.0, 1.0, 2.0, 3.0));
        h.add_request(Request::new(a, 16.0, 16.0, 17.0, 18.0));
        h.add_request(Request::new(a, 40.0, 40.0, 41.0, 42.0));
        let ok = samples(&h, REQUEST_SUCCESS, &[("finished_reason", "stop")]);
        // The request recorded at 18.05 s is lost with the old process (last scrape at 15 s).
        assert_eq!(
            ok,
            [
                (0.0, 0.0),
                (15.0, 1.0),
                (30.0, 0.0),
                (45.0, 1.0),
                (60.0, 1.0)
            ]
        );
        let start = samples(&h, "process_start_time_seconds", &[]);
        assert_eq!(start[1].1, base().unix_secs(-100.0));
        assert_eq!(start[2].1, base().unix_secs(25.0));
    }

    #[test]
    fn targets_born_late_and_down_periods_write_only_up() {
        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(
            Target::new("x", "a:1")
                .started_at(20.0)
                .scraped_from(10.0)
                .down(40.0, 50.0)
                .scraped_until(55.0),
        );
        assert_eq!(
            h.scrapes(a)
                .unwrap()
                .iter()
                .map(|s| (s.at, s.up))
                .collect::<Vec<_>>(),
            [(15.0, false), (30.0, true), (45.0, false)]
        );
        assert_eq!(samples(&h, NUM_RUNNING, &[]), [(30.0, 0.0)]);
    }

    #[test]
    fn invalid_histories_are_refused_with_what_is_wrong() {
        let err = |h: &History| format!("{:#}", h.series().unwrap_err());
        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(Target::new("x", "a:1").restart_at(30.0));
        h.add_request(Request::new(a, 28.0, 28.0, 29.0, 29.98));
        assert!(
            err(&h).contains("request #0 (target a:1): spans a restart"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        h.add_target(Target::new("x", "a:1").miss_scrape(20.0));
        assert!(
            err(&h).contains("miss_scrape(20) is not a scrape time"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        h.add_target(Target::new("x", "a:1"));
        h.add_target(Target::new("x", "a:1").phase(5.0));
        assert!(
            err(&h).contains("two targets with the same job and instance"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(Target::new("x", "a:1"));
        h.add_request(Request::new(a, 5.0, 4.0, 6.0, 7.0));
        assert!(
            err(&h).contains("needs queued_at <= started_at"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        let a = h.add_target(Target::new("x", "a:1").started_at(10.0));
        h.add_request(Request::new(a, 5.0, 12.0, 13.0, 14.0));
        assert!(
            err(&h).contains("queued before the target's first process"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        h.add_target(Target::new("x", "a:1").down(f64::NAN, 10.0));
        assert!(
            err(&h).contains("a:1: a time is not a finite number"),
            "{}",
            err(&h)
        );

        let mut h = History::new(base(), 0.0, 60.0);
        h.add_target(Target::new("x", "a:1").interval(0.0));
        assert!(
            err(&h).contains("interval 0 is not positive"),
            "{}",
            err(&h)
        );
    }
}
