//! What `load-test` is asked to do, validated: [`LoadTestConfig`], and the defaults its flags
//! show (one place: the CLI reads them from here).

use std::path::PathBuf;
use std::time::Duration;

use crate::prom::PromSettings;
use crate::runner::Arrival;
use crate::transport::TlsSettings;
use crate::urls::redact_url;
use crate::workload::EndpointChoice;
use crate::workload::distribution::SizeDist;
use crate::workload::plan::InputSource;

/// Requests in flight by default (the seed's).
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Max output tokens per request by default (the seed's).
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// Per-request deadline by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Interval of the progress log lines by default.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// Interval of the `/metrics` and `nvidia-smi` polls during the load by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Grace for in-flight requests after SIGINT/SIGTERM by default.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Everything `load-test` needs, validated.
#[derive(Clone)]
pub struct LoadTestConfig {
    /// vLLM base URL (checked: absolute http(s), no query).
    pub vllm_url: String,
    /// Model id (adapter) requests go to.
    pub adapter_name: String,
    /// A second adapter measured on the same server in the same run (`--baseline-adapter`):
    /// each candidate request gets a twin to it over the same prompt, dispatched interleaved
    /// (pairs AB, BA, AB, ...). Differs from `adapter_name`.
    pub baseline_adapter: Option<String>,
    /// Eval JSONL (the `EvalFile` input; empty for another `input`).
    pub eval_data_path: PathBuf,
    /// Requests in flight (closed loop); no effect on an open loop (`rate`), whose cap is
    /// `max_inflight`.
    pub concurrency: u32,
    /// Open-loop rate, requests per second.
    pub rate: Option<f64>,
    /// How the open loop spaces its requests (no effect without `rate`).
    pub arrival: Arrival,
    /// The open loop's in-flight cap; `None` without `rate` (with it, `None` means
    /// [`crate::runner::DEFAULT_MAX_IN_FLIGHT`]).
    pub max_inflight: Option<u32>,
    /// Seed of the arrival process, the prompt sizes, tasks and `max_tokens` draws, and the
    /// synthetic prompts' words.
    pub seed: u64,
    /// Total requests; prompts are cycled to reach it. `None`: each prompt once (the seed).
    pub num_requests: Option<u64>,
    /// Run for this long instead of through a list (`--duration`; prompts cycled): the
    /// measured window, between `warmup` and `cooldown`. Excludes `num_requests`.
    pub duration: Option<Duration>,
    /// Time at the start of a timed load whose requests are not measured (`--warmup`).
    pub warmup: Duration,
    /// Time at the end of a timed load whose requests are not measured (`--cooldown`).
    pub cooldown: Duration,
    /// Reach the load's level linearly over this long from one request in flight (closed
    /// loop) or from 0 per second (open loop) (`--ramp-up`).
    pub ramp_up: Option<Duration>,
    /// k6-style stages for the level (`--stages`): the run lasts their total.
    pub stages: Option<Vec<crate::runner::Stage>>,
    /// `--stages` as given (recorded in the results).
    pub stages_text: Option<String>,
    /// A step sweep's levels (`--steps`): requests in flight, or with `rate` requests per
    /// second; each step is a timed load of `step_duration`.
    pub steps: Option<Vec<f64>>,
    /// How long each step of a sweep is measured (`--step-duration`).
    pub step_duration: Duration,
    /// The `--scenario` preset the flags came from, if any (recorded; its values are already
    /// in the other fields).
    pub scenario: Option<String>,
    /// A closed loop's think time or user classes (`--think-time`, `--user-class`).
    pub think: Option<crate::runner::Think>,
    /// Max output tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Endpoint choice (OpenAI API only: llama.cpp has one generation endpoint).
    pub endpoint: EndpointChoice,
    /// The serving API the server speaks (`--api`): vLLM's OpenAI-compatible one, or
    /// llama.cpp's native `/completion` (then no server-side figures: they are vLLM's).
    pub api: crate::api::Api,
    /// Forced prompt field.
    pub prompt_field: Option<String>,
    /// Where the prompts come from; `EvalFile` (the seed's) reads `eval_data_path`, which is
    /// empty for the other sources.
    pub input: InputSource,
    /// `--max-tokens` as a distribution, drawn per request from `seed` (`max_tokens` is then
    /// its upper bound); `None`: every request asks for `max_tokens`.
    pub max_tokens_dist: Option<SizeDist>,
    /// Ask vLLM to ignore end-of-sequence (`"ignore_eos": true`): every output runs to its
    /// `max_tokens`.
    pub ignore_eos: bool,
    /// A Hugging Face `tokenizer.json` to size synthetic prompts with when the server has no
    /// `/tokenize` (`--tokenizer-file`).
    pub tokenizer_file: Option<PathBuf>,
    /// Bearer token for vLLM (never written anywhere).
    pub api_key: Option<String>,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Wait up to this long for `/health` (`None`: one check).
    pub wait_ready: Option<Duration>,
    /// Output directory.
    pub output_dir: PathBuf,
    /// Prometheus base URL; `None`: server figures from vLLM `/metrics` deltas.
    pub prometheus_url: Option<String>,
    /// Which Prometheus series to read and how to window them (recorded in the results with
    /// or without Prometheus).
    pub prom: PromSettings,
    /// Progress line interval (`None`: no progress lines).
    pub progress_every: Option<Duration>,
    /// Grace for in-flight requests after SIGINT/SIGTERM.
    pub drain_grace: Duration,
    /// Poll vLLM `/metrics` this often during the load into `vllm_metrics.csv` (`None`: no poll).
    pub poll_interval: Option<Duration>,
    /// Poll `nvidia-smi` this often during the load into `gpu_metrics.csv` (`None`: no poll).
    pub gpu_poll_interval: Option<Duration>,
    /// Requests sent before the measurement and left out of it.
    pub warmup_requests: u32,
    /// Open one connection per slot before the load, so no measured request includes a
    /// handshake (a load setting: it changes client TTFT against a run without it).
    pub preconnect: bool,
    /// Send a W3C `traceparent` with each generation request (recorded per request).
    pub traceparent: bool,
    /// Which HTTP client sends the streaming requests (`--http-client`).
    pub http_client: crate::client::HttpClient,
    /// How long the runtime lets network events gather before sleeping, while the load runs
    /// (`--batch-window`; [`crate::client::batch_window`]).
    pub batch_window: std::time::Duration,
    /// Per-request objectives whose attainment (goodput) is reported.
    pub slo: Option<crate::results::Slo>,
    /// Criteria judged on the client's figures when the run completes (`--threshold`); a
    /// crossed one makes the step exit 1.
    pub thresholds: Vec<super::thresholds::Threshold>,
    /// Which certificates an `https` vLLM may present (`--vllm-ca-cert`, `--vllm-insecure-tls`).
    pub vllm_tls: TlsSettings,
    /// Which certificates an `https` Prometheus may present (`--prometheus-ca-cert`,
    /// `--prometheus-insecure-tls`).
    pub prometheus_tls: TlsSettings,
    /// Push the client's live figures to a Prometheus Pushgateway (`--pushgateway-url`, seed
    /// 002); `None`: no push.
    pub pushgateway: Option<crate::telemetry::pushgateway::PushgatewaySettings>,
    /// Where live progress is drawn (`--progress bar`: the binary's terminal bar); `None`:
    /// nowhere (progress lines, if `progress_every`).
    pub progress_view: Option<std::sync::Arc<dyn crate::runner::progress::ProgressView>>,
    /// Export one OpenTelemetry span per generation request (`--otlp-endpoint`); `None`: none.
    pub otlp: Option<crate::telemetry::otlp::OtlpSettings>,
    /// The flags' effective values and sources, written as `config.json` (built by the binary;
    /// holds no secret). `None`: no such file.
    pub effective_config: Option<serde_json::Value>,
    /// A mix of targets (`--target`) or adapters (`--lora-mix`); `None`: one target, one
    /// adapter. In a target mix `vllm_url` and `adapter_name` are the first target's.
    pub mix: Option<crate::mix::Mix>,
    /// This process is shard `index` of `count` (`--shard-index`/`--shard-count`): it sends
    /// every `count`-th request from `index`, at its share of the concurrency or rate (already
    /// divided in `concurrency`/`rate`), and leaves the server figures to `load-test merge`.
    pub shard: Option<Shard>,
    /// When the load starts (`--start-at`): every shard waits for the same instant after its
    /// preflight; `None`: at once.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A sharded sweep's pause between one step's end (its cool-down) and the next step's
    /// start (`--step-gap`): its requests drain and Prometheus takes the quiet samples the
    /// merge's step windows rest on. Every shard's steps follow one clock ([`Self::step_start`]).
    pub step_gap: Duration,
}

/// Which shard of how many this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index.
    pub index: u32,
    /// Shards in the load (more than 1).
    pub count: u32,
}

impl Shard {
    /// This shard's part of a level of the whole load: a rate divided evenly (`open`), or
    /// requests in flight split whole, the first shards taking the remainder, so the shards'
    /// parts add up to the level (rounded to a whole number of requests).
    pub fn share(self, level: f64, open: bool) -> f64 {
        if open {
            return level / f64::from(self.count);
        }
        let whole = level.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        f64::from(crate::runner::part_of_level(whole, self.index, self.count))
    }
}

impl LoadTestConfig {
    /// How the load's level moves over time (`--stages`, `--ramp-up`), `None` when constant.
    /// Closed loops start from 1 request in flight, open loops from 0 per second.
    pub fn profile(&self) -> Option<crate::runner::Profile> {
        use crate::runner::Profile;
        let (start, level) = match self.rate {
            Some(r) => (0.0, r),
            None => (1.0, f64::from(self.concurrency)),
        };
        if let Some(stages) = &self.stages {
            // a shard runs its part of every level (an open loop's rate divided here; a closed
            // loop's requests in flight split at each instant by the runner); the results keep
            // the whole load's stages
            let share = |level: f64| match (self.shard, self.rate) {
                (Some(s), Some(_)) => s.share(level, true),
                _ => level,
            };
            return Some(Profile {
                start: share(start),
                stages: stages
                    .iter()
                    .map(|st| crate::runner::Stage {
                        target: share(st.target),
                        ..*st
                    })
                    .collect(),
            });
        }
        self.ramp_up
            .map(|over| Profile::ramp(start.min(level), level, over))
    }

    /// A mix's members' own requests in flight (every target's `concurrency=`), a shard's
    /// part of each (split whole, as a closed loop's level); `None` when the members share the
    /// run's. A shard's `concurrency` must be these parts' sum (the command line sets it so):
    /// `load-test merge` adds the shards' up to the whole load's.
    pub fn member_caps(&self) -> Option<Vec<u32>> {
        let mix = self.mix.as_ref()?;
        mix.members
            .iter()
            .map(|m| {
                let c = m.concurrency?;
                Some(
                    self.shard
                        .map_or(c, |s| crate::runner::part_of_level(c, s.index, s.count)),
                )
            })
            .collect()
    }

    /// The connections member `i` of a mix needs (its pool's size, and how many are opened
    /// before the load): its own requests in flight when it has a cap, else the run's peak.
    pub fn member_slots(&self, i: usize) -> u32 {
        self.member_caps()
            .and_then(|caps| caps.get(i).copied())
            .unwrap_or_else(|| self.peak_concurrency())
            .max(1)
    }

    /// The most requests a closed loop keeps in flight (the connection pool's size): the
    /// highest step, the stages' peak, or `concurrency`.
    pub fn peak_concurrency(&self) -> u32 {
        if let (None, Some(levels)) = (&self.rate, &self.steps) {
            let peak = levels.iter().fold(1.0, |a: f64, &b| a.max(b));
            return self
                .shard
                .map_or(peak, |s| s.share(peak, false))
                .round()
                .max(1.0) as u32;
        }
        match (&self.rate, self.profile()) {
            (None, Some(p)) => {
                let peak = p.peak().round() as u32;
                // a shard's part of a staged load's peak (its --concurrency is already its part)
                let peak = match (self.shard, &self.stages) {
                    (Some(s), Some(_)) => crate::runner::part_of_level(peak, s.index, s.count),
                    _ => peak,
                };
                peak.max(1)
            }
            _ => self.concurrency,
        }
    }

    /// The configuration of one step of a sweep at `level` (requests in flight, or per second
    /// with `rate`): a timed load of `step_duration`; a shard's part of the level.
    pub fn for_step(&self, level: f64) -> LoadTestConfig {
        let mut c = self.clone();
        let level = self
            .shard
            .map_or(level, |s| s.share(level, self.rate.is_some()));
        match c.rate {
            Some(_) => c.rate = Some(level),
            None => c.concurrency = level.round().max(1.0) as u32,
        }
        c.duration = Some(self.step_duration);
        c.steps = None;
        c
    }
}

impl LoadTestConfig {
    /// When step `index` of a sharded sweep starts: `--start-at` plus, per step before it, its
    /// warm-up, measured time, cool-down and `--step-gap`, so every shard's steps run together.
    /// `None` outside a sharded sweep with `--start-at`, and past the calendar's end (the
    /// command line refuses a sweep whose last step would start there).
    pub fn step_start(&self, index: u32) -> Option<chrono::DateTime<chrono::Utc>> {
        let (Some(at), Some(_), Some(_)) = (self.start_at, self.shard, &self.steps) else {
            return None;
        };
        let period = self
            .warmup
            .checked_add(self.step_duration)?
            .checked_add(self.cooldown)?
            .checked_add(self.step_gap)?;
        let offset = chrono::Duration::from_std(period.checked_mul(index)?).ok()?;
        at.checked_add_signed(offset)
    }
}

impl std::fmt::Debug for LoadTestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadTestConfig")
            .field("vllm_url", &redact_url(&self.vllm_url))
            .field("adapter_name", &self.adapter_name)
            .field("baseline_adapter", &self.baseline_adapter)
            .field("eval_data_path", &self.eval_data_path)
            .field("input", &self.input)
            .field("concurrency", &self.concurrency)
            .field("api", &self.api)
            .field(
                "prometheus_url",
                &self.prometheus_url.as_deref().map(redact_url),
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("vllm_tls", &self.vllm_tls)
            .field("prometheus_tls", &self.prometheus_tls)
            .field("pushgateway", &self.pushgateway)
            .field("otlp", &self.otlp)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn the_shards_parts_of_a_level_add_up_to_it() {
        for count in 2..=5u32 {
            for level in 0..=23u32 {
                let parts: Vec<f64> = (0..count)
                    .map(|index| Shard { index, count }.share(f64::from(level), false))
                    .collect();
                assert_eq!(
                    parts.iter().sum::<f64>(),
                    f64::from(level),
                    "{level}/{count}"
                );
                // whole requests, the first shards taking the remainder
                assert!(parts.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1.0));
                assert!(parts.iter().all(|p| p.fract() == 0.0));
            }
        }
        let s = Shard { index: 1, count: 4 };
        assert_eq!(s.share(10.0, true), 2.5);
        assert_eq!(s.share(6.4, false), 2.0, "6 in flight: 2, 2, 1, 1");
    }
}
