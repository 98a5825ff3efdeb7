//! The simulated engine: FIFO admission into `max_num_seqs` running slots, the token
//! schedule, and the gauges and observations that go with them.
//!
//! A request first waits for a slot (`vllm:num_requests_waiting`; tokio's semaphore is
//! fair, so the queue is FIFO), then runs (`vllm:num_requests_running`, and its prompt
//! plus generated tokens held in the KV cache) until it finishes or is dropped. Slots,
//! gauges and the LoRA state are released by guards, so a client that goes away frees
//! everything at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::SimConfig;
use crate::faults::{FaultRates, Plan};
use crate::latency::LatencyModel;
use crate::metrics::{FinishReason, FinishedRequest, LoraEvent, Metrics, MetricsSettings};
use crate::models::Models;
use crate::openai::GenRequest;
use crate::tokens;

/// Counts of what the simulator did, for tests (see [`crate::SimHandle::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Generation requests that passed validation (injected errors included).
    pub accepted: u64,
    /// Requests answered with HTTP 500 by `--error-rate`.
    pub injected_errors: u64,
    /// Streams cut by `--cut-rate`.
    pub cut_streams: u64,
    /// Requests that finished in the engine (any finish reason, cut streams included).
    pub finished: u64,
    /// Requests whose client went away before they finished (not counted as finished).
    pub disconnected: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// TCP connections accepted by the time the first generation request arrived (`None`
    /// before it): a client that opens its pool before its load has them all open by then.
    pub connections_before_first_generation: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) injected_errors: AtomicU64,
    pub(crate) cut_streams: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) disconnected: AtomicU64,
    pub(crate) connections: AtomicU64,
    /// `u64::MAX` until the first generation request.
    pub(crate) connections_at_first: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
            cut_streams: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connections_at_first: AtomicU64::new(u64::MAX),
        }
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SimStats {
        SimStats {
            accepted: self.accepted.load(Relaxed),
            injected_errors: self.injected_errors.load(Relaxed),
            cut_streams: self.cut_streams.load(Relaxed),
            finished: self.finished.load(Relaxed),
            disconnected: self.disconnected.load(Relaxed),
            connections: self.connections.load(Relaxed),
            connections_before_first_generation: Some(self.connections_at_first.load(Relaxed))
                .filter(|n| *n != u64::MAX),
        }
    }
}

/// State shared by all requests of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) models: Models,
    pub(crate) metrics: Metrics,
    pub(crate) counters: Counters,
    /// The `traceparent` of each generation request received.
    pub(crate) traces: crate::traces::TraceLog,
    latency: LatencyModel,
    /// Delay multipliers (`--adapter-latency-scale`): the base model's, then one per adapter
    /// in `--lora-modules` order.
    scales: Vec<f64>,
    /// Per adapter (in `--lora-modules` order): how long its first request's loading takes
    /// (`--lora-load-time`), and when it is loaded, set by that first request.
    load_times: Vec<(Duration, std::sync::OnceLock<Instant>)>,
    rates: FaultRates,
    slots: Arc<Semaphore>,
    next_request: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, created: u64) -> Self {
        let metrics = Metrics::new(MetricsSettings {
            model_name: config.served_model_name.clone(),
            adapters: config.lora_modules.iter().map(|m| m.name.clone()).collect(),
            max_model_len: config.max_model_len,
            max_num_seqs: config.max_num_seqs,
            kv_capacity: config.kv_cache_tokens,
            max_loras: config.max_loras,
            gpu_util: config.gpu_util,
        });
        let scale_of = |name: &str| {
            config
                .adapter_latency_scale
                .iter()
                .find(|s| s.name == name)
                .map_or(1.0, |s| s.factor)
        };
        let scales = std::iter::once(scale_of(&config.served_model_name))
            .chain(config.lora_modules.iter().map(|m| scale_of(&m.name)))
            .collect();
        let load_times = config
            .lora_modules
            .iter()
            .map(|m| {
                let t = config
                    .lora_load_time
                    .iter()
                    .find(|l| l.name == m.name)
                    .map_or(Duration::ZERO, |l| l.time);
                (t, std::sync::OnceLock::new())
            })
            .collect();
        Self {
            load_times,
            models: Models::new(&config, created),
            metrics,
            counters: Counters::default(),
            traces: Default::default(),
            latency: LatencyModel {
                ttft: config.ttft,
                itl: config.itl,
                jitter: config.jitter,
                decode_slowdown: config.decode_slowdown,
                max_num_seqs: config.max_num_seqs,
            },
            scales,
            rates: FaultRates {
                error_rate: config.error_rate,
                cut_rate: config.cut_rate,
                stop_probability: config.stop_probability,
            },
            slots: Arc::new(Semaphore::new(config.max_num_seqs)),
            next_request: AtomicU64::new(0),
            config,
        }
    }

    /// Numbers an accepted request and draws its random generator and plan.
    pub(crate) fn accept(&self, req: &GenRequest) -> (SmallRng, Plan) {
        let n = self.next_request.fetch_add(1, Relaxed);
        if n == 0 {
            let open = self.counters.connections.load(Relaxed);
            self.counters.connections_at_first.store(open, Relaxed);
        }
        self.counters.accepted.fetch_add(1, Relaxed);
        let mut rng = crate::faults::request_rng(self.config.seed, n);
        let plan = crate::faults::plan(
            self.rates,
            req.max_tokens,
            req.ignore_eos,
            req.stream,
            &mut rng,
        );
        if plan.inject_error {
            self.counters.injected_errors.fetch_add(1, Relaxed);
        }
        (rng, plan)
    }
}

/// An accepted request not yet admitted.
pub(crate) struct Job {
    pub(crate) shared: Arc<Shared>,
    pub(crate) req: GenRequest,
    pub(crate) plan: Plan,
    pub(crate) rng: SmallRng,
    pub(crate) arrival: Instant,
}

/// Counts a queued request in the waiting gauges until dropped.
struct Waiting<'a> {
    shared: &'a Shared,
    lora: Option<usize>,
    admitted: bool,
}

impl<'a> Waiting<'a> {
    fn enter(shared: &'a Shared, lora: Option<usize>) -> Self {
        shared.metrics.waiting.fetch_add(1, Relaxed);
        if let Some(i) = lora {
            shared.metrics.lora.record(i, LoraEvent::Enqueued);
        }
        Self {
            shared,
            lora,
            admitted: false,
        }
    }

    /// Leaves the queue for a running slot.
    fn admit(mut self) {
        self.admitted = true;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.metrics.waiting.fetch_sub(1, Relaxed);
        if let Some(i) = self.lora {
            let event = if self.admitted {
                LoraEvent::Admitted
            } else {
                LoraEvent::LeftQueue
            };
            self.shared.metrics.lora.record(i, event);
        }
    }
}

impl Job {
    /// Waits (FIFO) for a running slot.
    pub(crate) async fn admit(self) -> Running {
        let permit = {
            let waiting = Waiting::enter(&self.shared, self.req.model.lora);
            let permit = Arc::clone(&self.shared.slots)
                .acquire_owned()
                .await
                .expect("invariant: the slot semaphore is never closed");
            waiting.admit();
            permit
        };
        let admitted = Instant::now();
        let m = &self.shared.metrics;
        m.running.fetch_add(1, Relaxed);
        let held = i64::from(self.req.prompt_tokens);
        m.kv_tokens.fetch_add(held, Relaxed);
        Running {
            job: self,
            _permit: permit,
            admitted,
            deadline: admitted,
            first: None,
            last: admitted,
            emitted: 0,
            kv_held: held,
            finished: false,
        }
    }
}

/// A request holding a running slot.
pub(crate) struct Running {
    pub(crate) job: Job,
    _permit: OwnedSemaphorePermit,
    admitted: Instant,
    /// Scheduled time of the last token (or admission).
    deadline: Instant,
    first: Option<Instant>,
    last: Instant,
    emitted: u32,
    kv_held: i64,
    finished: bool,
}

impl Running {
    /// Content tokens emitted so far.
    pub(crate) fn emitted(&self) -> u32 {
        self.emitted
    }

    /// Whether all planned tokens were emitted.
    pub(crate) fn is_complete(&self) -> bool {
        self.emitted >= self.job.plan.tokens
    }

    /// Whether a planned cut is due (the stream must end now, without `[DONE]`).
    pub(crate) fn cut_due(&self) -> bool {
        self.job.plan.cut_after.is_some_and(|k| self.emitted >= k)
    }

    /// Sleeps until the next token is due and returns its text, or `None` when complete.
    pub(crate) async fn next_token(&mut self) -> Option<&'static str> {
        if self.is_complete() {
            return None;
        }
        let shared = Arc::clone(&self.job.shared);
        let delay = if self.emitted == 0 {
            shared.latency.first_token(&mut self.job.rng)
        } else {
            let running = usize::try_from(shared.metrics.running.load(Relaxed)).unwrap_or(0);
            shared.latency.next_token(&mut self.job.rng, running)
        }
        .mul_f64(self.scale());
        if self.emitted == 0
            && let Some((time, loaded)) = self
                .job
                .req
                .model
                .lora
                .and_then(|i| shared.load_times.get(i))
            && !time.is_zero()
        {
            // the adapter's first request loads it; requests meanwhile wait for the load too
            let ready = *loaded.get_or_init(|| self.deadline + *time);
            self.deadline = self.deadline.max(ready);
        }
        self.deadline += delay;
        tokio::time::sleep_until(self.deadline.into()).await;
        let now = Instant::now();
        let m = &shared.metrics;
        if self.first.is_none() {
            self.first = Some(now);
            m.first_token(secs(now - self.job.arrival), self.job.req.prompt_tokens);
        } else {
            m.next_token(secs(now - self.last));
        }
        m.kv_tokens.fetch_add(1, Relaxed);
        self.kv_held += 1;
        self.last = now;
        self.emitted += 1;
        Some(tokens::next_piece(&mut self.job.rng))
    }

    /// This request's delay multiplier (`--adapter-latency-scale`; 1 when none is given).
    fn scale(&self) -> f64 {
        let i = self.job.req.model.lora.map_or(0, |i| i + 1);
        self.job.shared.scales.get(i).copied().unwrap_or(1.0)
    }

    /// Records the end of the request in the engine metrics.
    pub(crate) fn finish(&mut self, reason: FinishReason) {
        if self.finished {
            return;
        }
        self.finished = true;
        let now = Instant::now();
        let first = self.first.unwrap_or(now);
        let end = if self.emitted > 0 { self.last } else { now };
        let req = &self.job.req;
        self.job.shared.metrics.finished(&FinishedRequest {
            reason,
            e2e: secs(now - self.job.arrival),
            queue: secs(self.admitted - self.job.arrival),
            prefill: secs(first - self.admitted),
            decode: secs(end.saturating_duration_since(first)),
            prompt_tokens: req.prompt_tokens,
            generation_tokens: self.emitted,
            max_tokens: req.max_tokens,
        });
        let c = &self.job.shared.counters;
        c.finished.fetch_add(1, Relaxed);
        if reason == FinishReason::Abort {
            c.cut_streams.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let shared = &self.job.shared;
        shared.metrics.running.fetch_sub(1, Relaxed);
        shared.metrics.kv_tokens.fetch_sub(self.kv_held, Relaxed);
        if let Some(i) = self.job.req.model.lora {
            shared.metrics.lora.record(i, LoraEvent::Finished);
        }
        if !self.finished {
            shared.counters.disconnected.fetch_add(1, Relaxed);
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
