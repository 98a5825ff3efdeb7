//! Command line of `load-test`: the seed's flag names, each with an env var, converted once
//! into the library's [`LoadTestConfig`] ([`TryFrom`]), where the cross-field rules and the
//! URLs are checked (a malformed URL is reported redacted, naming its flag).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};
use perf_gate::loadtest::Shard;
use perf_gate::loadtest::thresholds::Threshold;
use perf_gate::loadtest::{
    DEFAULT_CONCURRENCY, DEFAULT_DRAIN_GRACE, DEFAULT_MAX_TOKENS, DEFAULT_POLL_INTERVAL,
    DEFAULT_PROGRESS_INTERVAL, DEFAULT_REQUEST_TIMEOUT, LoadTestConfig,
};
use perf_gate::mix::{Mix, TargetSpec};
use perf_gate::prom::{DEFAULT_GPU_SELECTOR, DEFAULT_JOB, DEFAULT_QUERY_TIMEOUT, PromSettings};
use perf_gate::results::WindowMode;
use perf_gate::runner::progress::ProgressView;
use perf_gate::runner::{Arrival, DEFAULT_MAX_IN_FLIGHT};
use perf_gate::telemetry::otlp::{self, OtlpSettings};
use perf_gate::telemetry::pushgateway::{self, PushgatewaySettings};
use perf_gate::transport::{self, TlsSettings};
use perf_gate::urls::{UrlError, parse_base_url};
use perf_gate::workload::EndpointChoice;
use perf_gate::workload::distribution::SizeDist;
use perf_gate::workload::mix::TaskMix;
use perf_gate::workload::plan::InputSource;
use perf_gate_cli::logging::LogFormat;
use perf_gate_cli::parse::positive_u32;
use perf_gate_cli::progress_bar::{Progress, ProgressMode, TerminalBar};
use perf_gate_cli::seconds::{AutoSeconds, Seconds, positive_seconds};

/// `--window-mode` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WindowArg {
    /// The window rests on confirmed scrape samples: each target's last quiet sample before the
    /// load, and the first scrape after it at which every target is quiet and has counted it.
    EndAnchored,
    /// The seed's rule: duration rounded up to the minute (min 1m), after --scrape-wait.
    Seed,
}

/// `--http-client` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HttpClientArg {
    /// load-test's own HTTP/1.1 client where it applies (http or https, no proxy), else reqwest.
    Native,
    /// reqwest (hyper) for every request.
    Reqwest,
}

/// `--endpoint` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EndpointArg {
    /// /v1/completions for text prompts, /v1/chat/completions for rows with `messages`.
    Auto,
    /// /v1/completions (rows with `messages` still use chat).
    Completions,
    /// /v1/chat/completions for every row.
    Chat,
}

/// `--api` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ApiArg {
    /// vLLM's OpenAI-compatible API (/v1/completions, /v1/chat/completions).
    Openai,
    /// llama.cpp's native llama-server API (POST /completion with n_predict and stream); no
    /// server-side figures (they are vLLM's series), so not a vLLM gate measurement.
    Llamacpp,
}

/// `ttft=2s,tpot=50ms,e2e=8s`: any of the three, each a positive duration.
fn slo(s: &str) -> Result<perf_gate::results::Slo, String> {
    let mut slo = perf_gate::results::Slo::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=duration (ttft, tpot, e2e)"))?;
        let secs = perf_gate::duration::parse_positive_duration(value.trim())
            .map_err(|e| format!("{key}: {e}"))?
            .as_secs_f64();
        let slot = match key.trim() {
            "ttft" => &mut slo.ttft_s,
            "tpot" => &mut slo.tpot_s,
            "e2e" => &mut slo.e2e_s,
            other => {
                return Err(format!(
                    "unknown objective {other:?}: use ttft, tpot or e2e"
                ));
            }
        };
        if slot.replace(secs).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    if slo == perf_gate::results::Slo::default() {
        return Err("no objective: give e.g. ttft=2s,tpot=50ms,e2e=8s".into());
    }
    Ok(slo)
}

fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.001 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate of at least 0.001 requests per second"
        )),
    }
}

fn batch_window(s: &str) -> Result<Seconds, String> {
    let max = perf_gate::client::batch_window::MAX_WINDOW;
    match perf_gate::duration::parse_duration(s)? {
        d if d > max => Err(format!(
            "{s:?} is longer than the most a request may wait for it ({})",
            perf_gate::duration::format_duration(max)
        )),
        d => Ok(Seconds(d)),
    }
}

fn arrival(s: &str) -> Result<Arrival, String> {
    s.parse::<Arrival>().map_err(|e| e.to_string())
}

/// `--step-gap`'s default: a 15 s drain and two 30 s scrapes.
const DEFAULT_STEP_GAP: Duration = Duration::from_secs(75);

/// `--scenario`'s presets, layered under the config file (see
/// [`perf_gate_cli::config_file::Presets`]).
pub const SCENARIOS: perf_gate_cli::config_file::Presets = perf_gate_cli::config_file::Presets {
    arg: "scenario",
    lookup: |name| perf_gate::loadtest::scenarios::find(name).map(|s| s.flags),
    groups: &[
        // the load's length: yours replaces the preset's
        &["duration", "stages", "num-requests", "steps"],
        // the level's climb
        &["ramp-up", "stages", "steps", "rate"],
        // the users' pauses (an open loop has none)
        &["think-time", "user-class", "rate"],
        // the input: one source
        &[
            "eval-data-path",
            "prompt-file",
            "prompt-text",
            "input-size",
            "task-mix",
        ],
    ],
};

/// `--stages`, parsed, with the text as given (recorded in the results).
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// The stages.
    pub stages: Vec<perf_gate::runner::Stage>,
    /// As given.
    pub text: String,
}

/// Parses `--stages`; the text kept is canonical (`1m` and `60s` both `1m`, no spaces), so two
/// runs with the same stages record the same load shape.
fn stages(s: &str) -> Result<Stages, String> {
    let stages = perf_gate::runner::Profile::parse_stages(s).map_err(|e| e.to_string())?;
    let text = stages
        .iter()
        .map(|st| {
            format!(
                "{}:{}",
                perf_gate::duration::format_duration(st.duration),
                st.target
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(Stages { stages, text })
}

fn step_level(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.001 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a level: a positive number (requests in flight, or per second with --rate)"
        )),
    }
}

fn size_dist(s: &str) -> Result<SizeDist, String> {
    s.parse::<SizeDist>().map_err(|e| e.to_string())
}

fn task_mix(s: &str) -> Result<TaskMix, String> {
    s.parse::<TaskMix>().map_err(|e| e.to_string())
}

fn temperature(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=2.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a temperature between 0 and 2")),
    }
}

/// Fire concurrent streaming requests at a LoRA adapter served by vLLM, measure client-side
/// TTFT / inter-token latency / e2e, collect server-side P50/P95/P99 from Prometheus (or vLLM's
/// /metrics), and write load_test_results.json, load_test_status.txt and requests.jsonl.
///
/// `load-test merge SHARD_DIR...` combines the shards of a scaled-out load (--shard-count);
/// see `load-test merge --help`.
#[derive(Debug, Parser)]
#[command(name = "load-test", version, args_override_self = true, allow_negative_numbers = true, after_help = perf_gate::step::EXIT_CODES_HELP)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(false))]
// where requests go: one server, or the targets of a mix
#[command(group = clap::ArgGroup::new("server").required(true).multiple(true).args(["vllm_url", "targets"]))]
// what they name: the adapter under test, a LoRA mix, or the targets' models
#[command(group = clap::ArgGroup::new("model").required(true).multiple(true).args(["adapter_name", "targets", "lora_mix"]))]
pub struct Cli {
    /// YAML file of flags (keys: long flag names, e.g. `max-tokens: 64`; lists for repeatable
    /// flags): command line > env var > file > default. Secrets (--api-key) are refused there.
    /// The effective values go to `<output-dir>/config.json`.
    #[arg(long, env = "LOAD_TEST_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// A named preset of seed 003 (smoke, baseline, medium, ramp, high, burst, stress,
    /// endurance): its users (--concurrency), --duration, --ramp-up and --user-class, under
    /// everything else (command line > env var > --config file > scenario > default; a
    /// --num-requests, --duration, --stages or --steps of yours replaces its length).
    /// --list-scenarios shows them.
    #[arg(long, env = "SCENARIO", value_name = "NAME")]
    pub scenario: Option<String>,

    /// Print the scenario presets and the flags each sets, and exit.
    #[arg(long)]
    pub list_scenarios: bool,

    /// Base URL of the vLLM OpenAI-compatible server (not needed with --target).
    #[arg(long, env = "VLLM_URL")]
    pub vllm_url: Option<String>,

    /// Model id requests are sent to (the candidate LoRA adapter); must be listed by
    /// /v1/models. Not needed with --target; with --lora-mix it defaults to the mix's first
    /// adapter and must be one of them.
    #[arg(long, env = "ADAPTER_NAME")]
    pub adapter_name: Option<String>,

    /// A target of a mixed run (seed 002's "mixed warfare"): several servers loaded at once,
    /// sharing --concurrency / --rate by weight, each with its own figures (`mix` in the
    /// results). Repeat the flag (or separate targets with `;`): `--target
    /// name=Flash,url=http://h:8081,model=llama-7b,weight=0.7`. Keys: url and model
    /// (required), name (default: the URL's host:port), weight (default 1), api (openai or
    /// llamacpp; default --api), concurrency (the target's own closed loop of N in flight,
    /// given to every target or none; with shards, split among them). Every target gets
    /// --api-key and the --vllm-* TLS settings; no server-side figures are collected. Targets
    /// replace --vllm-url and --adapter-name (a VLLM_URL/ADAPTER_NAME in the environment is
    /// not used).
    #[arg(
        long = "target",
        env = "LOAD_TEST_TARGETS",
        value_delimiter = ';',
        value_name = "name=N,url=URL,model=M,weight=W,api=A,concurrency=C"
    )]
    pub targets: Vec<String>,

    /// Several LoRA adapters on the one vLLM of --vllm-url, sharing the load by weight:
    /// `sql-lora=3,chat-lora=1` (a bare name weighs 1). Each adapter's first request is sent
    /// alone before the load and any warm-up and reported as its cold load, kept out of the
    /// percentiles; each adapter gets its own client figures (`mix`). vLLM's server metrics
    /// are per base model, so the server figures pool the adapters.
    #[arg(long, env = "LORA_MIX", value_name = "ADAPTER=WEIGHT,...")]
    pub lora_mix: Option<String>,

    /// With --lora-mix: also send this weight of requests to the adapters' base model (the
    /// `parent` /v1/models lists), a control stream measured like an adapter (`base`).
    #[arg(
        long,
        env = "BASE_MODEL_WEIGHT",
        value_name = "WEIGHT",
        requires = "lora_mix"
    )]
    pub base_model_weight: Option<f64>,

    /// Also measure this adapter on the same vLLM in the same run (a same-server A/B test); must
    /// be listed by /v1/models and differ from --adapter-name. Each candidate request gets a
    /// baseline twin over the same prompt, dispatched interleaved in counterbalanced pairs
    /// (AB, BA, AB, ...); --concurrency and --rate apply to both together, --num-requests and
    /// --warmup-requests count per adapter. Its client figures go to `baseline_arm`.
    #[arg(long, env = "BASELINE_ADAPTER", value_name = "NAME")]
    pub baseline_adapter: Option<String>,

    /// Eval JSONL file; prompt in `prompt_inference` (also `prompt`, `text`, `messages`). The
    /// seed's input; exactly one of --eval-data-path, --prompt-file, --prompt-text,
    /// --input-size and --task-mix is given.
    #[arg(long, env = "EVAL_DATA_PATH", group = "input")]
    pub eval_data_path: Option<PathBuf>,

    /// Prompt file: one prompt per line, plain text, or a JSON row with `prompt`, `text` or
    /// `messages` (a line starting with `{` must be valid JSON). Prompts are sent in file
    /// order, cycled to --num-requests.
    #[arg(long, env = "PROMPT_FILE", value_name = "PATH", group = "input")]
    pub prompt_file: Option<PathBuf>,

    /// One fixed prompt for every request (--num-requests of them, default 100).
    #[arg(long, env = "PROMPT_TEXT", value_name = "TEXT", group = "input")]
    pub prompt_text: Option<String>,

    /// Synthetic prompts, one per request (--num-requests, default 100), whose token lengths
    /// are drawn from DIST: N, uniform:A:B, normal:MEAN:STD:MIN:MAX or
    /// lognormal:MU:SIGMA:MIN:MAX (MU, SIGMA of the underlying normal), clamped to
    /// [MIN, MAX]. Lengths are measured with vLLM's /tokenize when the server offers it, else
    /// with --tokenizer-file if given, else counted in words (one per token); the results say
    /// which (inputs.calibration).
    #[arg(long, env = "INPUT_SIZE", value_name = "DIST", value_parser = size_dist, group = "input")]
    pub input_size: Option<SizeDist>,

    /// Weighted tasks (seed 003), e.g. `short=10,medium=5,long=2,creative=1,health=1,models=1`:
    /// short/medium/long are synthetic prompts of 64/128/256 tokens, creative 128 tokens at
    /// temperature 1.2; each request's task is drawn by weight (--num-requests, default 100).
    /// health and models are GET /health and GET /v1/models in the load's stream, counted
    /// apart (`probes` in the results), never in the generation figures.
    #[arg(long, env = "TASK_MIX", value_name = "MIX", value_parser = task_mix, group = "input")]
    pub task_mix: Option<TaskMix>,

    /// A Hugging Face tokenizer.json to size --input-size / --task-mix prompts with when the
    /// server offers no /tokenize (which is preferred: it is the served model's own). Loaded
    /// before the network: a bad file stops the run (exit 2).
    #[arg(long, env = "TOKENIZER_FILE", value_name = "PATH")]
    pub tokenizer_file: Option<PathBuf>,

    /// Ask vLLM to ignore end-of-sequence (`"ignore_eos": true`, a vLLM sampling extension):
    /// every output runs to its max_tokens, for equal-length outputs. Output tokens are
    /// recorded from usage either way.
    #[arg(long, env = "IGNORE_EOS", value_parser = BoolishValueParser::new())]
    pub ignore_eos: bool,

    /// Requests in flight (closed loop). No effect with --rate, whose cap is --max-inflight
    /// (before issue 11 this capped the open loop; --max-inflight N restores that).
    #[arg(long, env = "CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = positive_u32)]
    pub concurrency: u32,

    /// Max output tokens per request: a number, or a distribution drawn per request from
    /// --seed (the same DIST syntax as --input-size; results: config.max_tokens is its upper
    /// bound, config.max_tokens_dist the spec).
    #[arg(long, env = "MAX_TOKENS", default_value_t = SizeDist::Fixed(DEFAULT_MAX_TOKENS), value_parser = size_dist, value_name = "N|DIST")]
    pub max_tokens: SizeDist,

    /// Prometheus base URL. Without it, server figures come from vLLM /metrics deltas.
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// Directory for the result files (created if missing).
    #[arg(long, env = "OUTPUT_DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// API key for vLLM, sent as a bearer token; never logged or written. With it, a
    /// `user:password@` in --vllm-url is not sent (one Authorization header); without it, that
    /// userinfo is sent as HTTP Basic.
    #[arg(long, env = "VLLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// PEM file of the CA (or bundle, or self-signed certificate) to trust for an https vLLM,
    /// besides the system's roots.
    #[arg(long, env = "VLLM_CA_CERT", value_name = "PEM")]
    pub vllm_ca_cert: Option<PathBuf>,

    /// Accept any TLS certificate from vLLM (test setups only; logged as a warning).
    #[arg(long, env = "VLLM_INSECURE_TLS", value_parser = BoolishValueParser::new())]
    pub vllm_insecure_tls: bool,

    /// PEM file of the CA to trust for an https Prometheus, besides the system's roots.
    #[arg(long, env = "PROMETHEUS_CA_CERT", value_name = "PEM")]
    pub prometheus_ca_cert: Option<PathBuf>,

    /// Accept any TLS certificate from Prometheus (test setups only; logged as a warning).
    #[arg(long, env = "PROMETHEUS_INSECURE_TLS", value_parser = BoolishValueParser::new())]
    pub prometheus_insecure_tls: bool,

    /// Deadline of each request (seconds, or 90s / 5m; more than 0). A request past it counts
    /// as a timeout failure.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value_t = Seconds(DEFAULT_REQUEST_TIMEOUT), value_parser = positive_seconds)]
    pub request_timeout: Seconds,

    /// `job` label of vLLM's series in Prometheus.
    #[arg(long, env = "PROMETHEUS_JOB", default_value = DEFAULT_JOB)]
    pub prometheus_job: String,

    /// Prometheus's scrape interval of the vLLM job, which bounds the waits for its samples:
    /// `auto` reads it from Prometheus's /api/v1/targets (30s if Prometheus does not say).
    #[arg(long, env = "SCRAPE_INTERVAL", default_value_t = AutoSeconds(None))]
    pub scrape_interval: AutoSeconds,

    /// end-anchored: the longest wait for confirmed samples before and after the load (`auto`:
    /// two scrape intervals + 5 s). seed: the fixed wait after the load (`auto`: 20s, the seed's).
    #[arg(long, env = "SCRAPE_WAIT", default_value_t = AutoSeconds(None))]
    pub scrape_wait: AutoSeconds,

    /// How the PromQL window is chosen.
    #[arg(long, env = "WINDOW_MODE", value_enum, default_value_t = WindowArg::EndAnchored)]
    pub window_mode: WindowArg,

    /// Label selector of the DCGM GPU series.
    #[arg(long, env = "GPU_SELECTOR", default_value = DEFAULT_GPU_SELECTOR)]
    pub gpu_selector: String,

    /// Wait up to this long for vLLM's /health to answer 200 (for a server still starting). 0: check once.
    #[arg(long, env = "WAIT_READY", default_value_t = Seconds(Duration::ZERO))]
    pub wait_ready: Seconds,

    /// JSONL field holding the prompt (default: the first of prompt_inference, prompt, text,
    /// messages). Only with --eval-data-path.
    #[arg(long, env = "PROMPT_FIELD")]
    pub prompt_field: Option<String>,

    /// Which OpenAI endpoint to call.
    #[arg(long, env = "ENDPOINT", value_enum, default_value_t = EndpointArg::Auto)]
    pub endpoint: EndpointArg,

    /// The server's API: openai (vLLM) or llamacpp (llama.cpp's llama-server, POST
    /// /completion; the adapter is its model alias or a LoRA of /lora-adapters; no server
    /// figures, so the run is marked invalid for the gate).
    #[arg(long, env = "LOAD_TEST_API", value_enum, default_value_t = ApiArg::Openai)]
    pub api: ApiArg,

    /// Sampling temperature.
    #[arg(long, env = "TEMPERATURE", default_value = "0", value_parser = temperature)]
    pub temperature: f64,

    /// Total requests; prompts are cycled to reach it (default: each prompt once, as the seed).
    /// With --baseline-adapter, the candidate's (the baseline gets as many).
    #[arg(long, env = "NUM_REQUESTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub num_requests: Option<u64>,

    /// Open loop: issue this many requests per second on average, on schedule whatever the
    /// number in flight (up to --max-inflight); late starts are reported as client queue time
    /// and the requested against the achieved rate as `schedule` in the results.
    #[arg(long, env = "RATE", value_parser = rate)]
    pub rate: Option<f64>,

    /// How --rate spaces the requests: constant (1/R apart), poisson (exponential gaps), or
    /// gamma:SHAPE (gamma gaps, CV 1/sqrt(SHAPE): below 1 burstier than poisson) [default:
    /// constant]. Only with --rate.
    #[arg(long, env = "ARRIVAL", value_parser = arrival, value_name = "PROCESS")]
    pub arrival: Option<Arrival>,

    /// With --rate, the cap on requests in flight; a request due while all are taken waits
    /// (client queue time) [default: 1024]. Only with --rate. --concurrency was this cap
    /// before; give --max-inflight equal to it for the old behaviour.
    #[arg(long, env = "MAX_INFLIGHT", value_parser = positive_u32, value_name = "N")]
    pub max_inflight: Option<u32>,

    /// Seed of the run's draws: the --rate arrival times, the --input-size / --task-mix
    /// prompts (sizes, tasks, words, order) and a --max-tokens distribution. The same seed
    /// gives the same requests in the same order.
    #[arg(long, env = "SEED", default_value_t = 0)]
    pub seed: u64,

    /// Run for this long (e.g. 60s, 10m), cycling the prompts, instead of sending a list:
    /// the measured window, between --warmup and --cooldown. Rates are over this window.
    /// Excludes --num-requests.
    #[arg(long, env = "DURATION", value_parser = positive_seconds, value_name = "DURATION")]
    pub duration: Option<Seconds>,

    /// With --duration: load the server this long first, requests not measured (the client
    /// figures leave them out; the server's window includes them). Unlike
    /// --warmup-requests (sent before the load, outside every window), this warms the
    /// server at the load's own level.
    #[arg(long, env = "WARMUP", default_value_t = Seconds(Duration::ZERO), value_name = "DURATION")]
    pub warmup: Seconds,

    /// With --duration: keep the load on this long after the measured window, requests not
    /// measured, so the window's last requests finish under the same load as the rest.
    #[arg(long, env = "COOLDOWN", default_value_t = Seconds(Duration::ZERO), value_name = "DURATION")]
    pub cooldown: Seconds,

    /// Reach the level linearly over this long: from 1 request in flight to --concurrency,
    /// or from 0 to --rate requests per second (arrivals keep their process's shape).
    #[arg(long, env = "RAMP_UP", value_parser = positive_seconds, value_name = "DURATION")]
    pub ramp_up: Option<Seconds>,

    /// k6-style stages, `DURATION:TARGET,...` (e.g. `30s:10,1m:10,30s:0`): the level moves
    /// linearly to each TARGET over its DURATION (requests in flight, starting from 1; with
    /// --rate, requests per second, starting from 0); the run lasts their total. Excludes
    /// --duration, --ramp-up and --num-requests.
    #[arg(long, env = "STAGES", value_parser = stages, value_name = "STAGES")]
    pub stages: Option<Stages>,

    /// A step sweep (seed 001): one timed load per level, e.g. `1,2,4,8` requests in flight
    /// (with --rate, requests per second, replacing --rate's value), each measured for
    /// --step-duration with its own --warmup, --ramp-up and --cooldown, its own client
    /// figures and the server's figures over its own window (`steps` in the results).
    /// Excludes --duration, --stages, --num-requests and --baseline-adapter.
    #[arg(long, env = "STEPS", value_delimiter = ',', value_parser = step_level, value_name = "LEVELS")]
    pub steps: Vec<f64>,

    /// Think time: after each request, its virtual user (a --concurrency slot) pauses this
    /// long before sending the next: `2s`, `1s..3s` (uniform), or `burst:N:PAUSE` (bursts of
    /// N requests on average, each followed by PAUSE). Closed loop only.
    #[arg(long, env = "THINK_TIME", value_name = "RULE")]
    pub think_time: Option<perf_gate::runner::ThinkTime>,

    /// seed 003's user classes as think time: `standard` (1 to 3 s), `high` (0.1 to 0.5 s),
    /// `burst` (bursts of 5, then 10 s), or a weighted mix such as `standard=3,high=1` (each
    /// request's pause follows a class drawn by weight). Closed loop only; excludes
    /// --think-time.
    #[arg(long, env = "USER_CLASS", value_name = "CLASSES")]
    pub user_class: Option<String>,

    /// How long each step of --steps is measured.
    #[arg(long, env = "STEP_DURATION", default_value_t = Seconds(Duration::from_secs(60)), value_parser = positive_seconds, value_name = "DURATION")]
    pub step_duration: Seconds,

    /// Shards of a sweep (--steps with --shard-count): the pause between a step's end (its
    /// cool-down) and the next step's start, in which its last requests finish and Prometheus
    /// takes the quiet samples `load-test merge` rests each step's window on. Every shard
    /// starts step i at --start-at + i x (--warmup + --step-duration + --cooldown + this).
    /// The default covers a 15 s drain and two 30 s scrapes. Unused (with a warning) without a
    /// sharded sweep. [default: 75s]
    #[arg(long, env = "STEP_GAP", value_parser = positive_seconds, value_name = "DURATION")]
    pub step_gap: Option<Seconds>,

    /// Requests sent before the measurement and left out of it (the first request to a LoRA
    /// adapter loads it). End-anchored windows start after a confirmed sample that already
    /// counts them; seed windows wait a quiet gap of one scrape interval + 2 s. With
    /// --baseline-adapter, this many to each adapter.
    #[arg(long, env = "WARMUP_REQUESTS", default_value = "0")]
    pub warmup_requests: u32,

    /// Open one connection per --concurrency slot (a `GET /health` each) just before the load,
    /// so no measured TTFT includes a TCP/TLS handshake; the handshakes are reported apart
    /// (`preconnect` in the results). `false` measures the first wave with its handshakes, as
    /// runs before this option did (a load setting: decisions warn when a baseline differs).
    #[arg(long, env = "PRECONNECT", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub preconnect: bool,

    /// The HTTP client of the load's requests. `native`: load-test's own HTTP/1.1 client,
    /// which reads each answer in its request's task (less client CPU a request, half the
    /// memory) and dates each chunk by the kernel's receive time, over `http` and `https`
    /// (rustls, trusting what reqwest trusts) that reqwest would not send through a proxy
    /// (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), and reqwest through a proxy.
    /// `reqwest`: reqwest (hyper) for everything. Recorded as `config.http_client`.
    #[arg(
        long,
        env = "HTTP_CLIENT",
        value_enum,
        default_value = "native",
        value_name = "CLIENT"
    )]
    pub http_client: HttpClientArg,

    /// How long the client lets network events gather before it sleeps waiting for more, while
    /// the load runs: fewer wake-ups, less client CPU a request. Used only where every chunk
    /// is dated by the kernel's receive time (the own client on Linux), so the timing does not
    /// change; a request due meanwhile goes out up to this late, and two tokens of one stream
    /// closer together than this share one time. At most 5ms; 0 turns it off.
    #[arg(long, env = "BATCH_WINDOW", default_value_t = Seconds(perf_gate::client::batch_window::DEFAULT_WINDOW), value_parser = batch_window, value_name = "DURATION")]
    pub batch_window: Seconds,

    /// Send a W3C `traceparent` header (a fresh sampled trace) with each generation request and
    /// record it in requests.jsonl, to find a request in vLLM's OpenTelemetry traces;
    /// `false` sends none.
    #[arg(long, env = "TRACEPARENT", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub traceparent: bool,

    /// Per-request objectives, e.g. `ttft=2s,tpot=50ms,e2e=8s` (any of the three): the share of
    /// requests meeting all of them (goodput; a failure meets none) is reported as
    /// `client.slo_attainment`. TPOT is per request: (E2E - TTFT) / (output tokens - 1).
    #[arg(long, env = "SLO", value_parser = slo, value_name = "OBJECTIVES")]
    pub slo: Option<perf_gate::results::Slo>,

    /// A pass/fail criterion on the client's figures, judged when the run completes
    /// (repeatable; the env var takes a comma-separated list): `METRIC OP VALUE`, OP one of
    /// <, <=, >, >=, e.g. `ttft_p95<2s`, `e2e_p99<=8s`, `error_rate<5%`, `rps>=10`. Metrics:
    /// ttft_pNN, e2e_pNN (alias latency_pNN), itl_pNN, tpot_pNN (NN: 50, 90, 95, 99; values in
    /// ms or s, bare = s), error_rate, success_rate, slo_attainment (5% or a fraction), rps,
    /// tokens_per_s. A crossed one (or one without a value) prints a WARNING line and makes
    /// the exit code 1; the status stays `completed`.
    #[arg(
        long = "threshold",
        env = "THRESHOLDS",
        value_delimiter = ',',
        value_name = "EXPR"
    )]
    pub thresholds: Vec<String>,

    /// Interval between progress log lines (`--progress lines`, or `auto` without a
    /// terminal); 0 turns them off.
    #[arg(long, env = "PROGRESS_INTERVAL", default_value_t = Seconds(DEFAULT_PROGRESS_INTERVAL))]
    pub progress_interval: Seconds,

    /// Poll vLLM `/metrics` this often during the load into `vllm_metrics.csv` (running and
    /// waiting requests, KV cache, token and request counters); 0 turns it off.
    #[arg(long, env = "POLL_INTERVAL", default_value_t = Seconds(DEFAULT_POLL_INTERVAL))]
    pub poll_interval: Seconds,

    /// Poll `nvidia-smi` this often during the load into `gpu_metrics.csv` (skipped, with a
    /// line saying so, when no `nvidia-smi` is on PATH); 0 turns it off. [default: --poll-interval]
    #[arg(long, env = "GPU_POLL_INTERVAL")]
    pub gpu_poll_interval: Option<Seconds>,

    /// On SIGINT/SIGTERM, time given to in-flight requests before the run is cut short.
    #[arg(long, env = "DRAIN_GRACE", default_value_t = Seconds(DEFAULT_DRAIN_GRACE))]
    pub drain_grace: Seconds,

    /// Scale-out: this process is shard I (0-based) of --shard-count, e.g. a Kubernetes
    /// Indexed Job's pod (default: JOB_COMPLETION_INDEX). It sends every Nth request from I
    /// at its share of --concurrency (or --rate, or each target's concurrency=), writes
    /// mergeable results, and does not query
    /// Prometheus: `load-test merge` combines the shards and queries the union window once.
    #[arg(long, env = "SHARD_INDEX", value_name = "I")]
    pub shard_index: Option<u32>,

    /// Scale-out: the number of shards (1: no sharding).
    #[arg(long, env = "SHARD_COUNT", default_value_t = 1, value_parser = positive_u32, value_name = "N")]
    pub shard_count: u32,

    /// Start the load at this instant (RFC 3339, e.g. 2026-12-05T10:00:00Z), after the
    /// preflight: shards given the same time start together. A sweep starts its first step
    /// then; shards of a sweep start every step on one clock from it (see --step-gap).
    #[arg(long, env = "START_AT", value_name = "TIME")]
    pub start_at: Option<String>,

    /// Timeout of each Prometheus query (more than 0).
    #[arg(long, env = "PROMETHEUS_TIMEOUT", default_value_t = Seconds(DEFAULT_QUERY_TIMEOUT), value_parser = positive_seconds)]
    pub prometheus_timeout: Seconds,

    /// Prometheus Pushgateway to push the client's live figures to (seed 002's `llm_*`
    /// metrics: TTFT/ITL/E2E percentiles, RPS, tokens/s, error rates, requests in flight),
    /// every --push-interval and once at the end (`llm_run_finished 1`), as the group
    /// job/<--pushgateway-job>/instance/<--pushgateway-instance>/adapter/<--adapter-name>. A
    /// failed push is a warning in the results, never a failed run. `host:port` means http.
    #[arg(long, env = "PUSHGATEWAY_URL", value_name = "URL")]
    pub pushgateway_url: Option<String>,

    /// How often the live figures are pushed (more than 0).
    #[arg(long, env = "PUSH_INTERVAL", default_value_t = Seconds(pushgateway::DEFAULT_PUSH_INTERVAL), value_parser = positive_seconds)]
    pub push_interval: Seconds,

    /// `job` of the Pushgateway group.
    #[arg(long, env = "PUSHGATEWAY_JOB", default_value = pushgateway::DEFAULT_JOB)]
    pub pushgateway_job: String,

    /// `instance` of the Pushgateway group (default: the host name, e.g. the pod's).
    #[arg(long, env = "PUSHGATEWAY_INSTANCE", value_name = "NAME")]
    pub pushgateway_instance: Option<String>,

    /// User name for the Pushgateway's HTTP Basic auth (the password: PUSHGATEWAY_PASSWORD).
    #[arg(long, env = "PUSHGATEWAY_USERNAME", value_name = "USER")]
    pub pushgateway_username: Option<String>,

    /// Password for the Pushgateway's HTTP Basic auth; never logged or written (prefer the env
    /// var; refused in a --config file).
    #[arg(long, env = "PUSHGATEWAY_PASSWORD", hide_env_values = true)]
    pub pushgateway_password: Option<String>,

    /// Delete the group from the Pushgateway at the end (after the final push) instead of
    /// keeping the final figures there for Prometheus to scrape (the default).
    #[arg(long, env = "PUSHGATEWAY_DELETE", value_parser = BoolishValueParser::new())]
    pub pushgateway_delete: bool,

    /// Log format: text for people, json for Kubernetes.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Live progress: `auto` draws a bar on stderr when it is a terminal and logs are text
    /// (requests done of planned or time elapsed, req/s, output tok/s, P90 end-to-end latency,
    /// error %, ETA; a sweep's step in front) and writes the plain progress lines every
    /// --progress-interval otherwise (Kubernetes logs); `bar` draws the bar on a terminal with
    /// JSON logs too; `lines` never draws it; `off` shows neither.
    #[arg(long, env = "PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// OTLP/HTTP endpoint to export one OpenTelemetry span per generation request to (JSON
    /// encoding; `http://collector:4318` posts to /v1/traces, a URL with a path is used as it
    /// is). The span's trace and span ids are those of the request's `traceparent`, so vLLM's
    /// server span is its child; attributes: model, endpoint, tokens, TTFT, E2E, status and
    /// error kind, phase, step. Needs --traceparent. A failed export is a warning in the
    /// results, never a failed run.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// A header sent with each OTLP export, `name=value` (repeatable; the env var takes a
    /// comma-separated list, values percent-encoded as the OpenTelemetry spec says). Values are
    /// secrets: never logged or written (prefer the env var; refused in a --config file).
    #[arg(
        long = "otlp-header",
        env = "OTEL_EXPORTER_OTLP_HEADERS",
        value_delimiter = ',',
        value_name = "NAME=VALUE",
        hide_env_values = true
    )]
    pub otlp_headers: Vec<String>,
}

impl TryFrom<Cli> for LoadTestConfig {
    type Error = anyhow::Error;

    /// Checks the URLs (each error names its flag and shows the URL redacted), reads the CA
    /// files, and builds the config. The API key is registered with the scrubber first.
    fn try_from(cli: Cli) -> anyhow::Result<Self> {
        if let Some(key) = &cli.api_key {
            perf_gate::secrets::register(key);
        }
        let (mix, vllm_url, adapter_name) = mix(&cli)?;
        let prometheus_url = cli
            .prometheus_url
            .as_deref()
            .map(|u| base_url("--prometheus-url", u))
            .transpose()?;
        let pushgateway = pushgateway_settings(&cli)?;
        let otlp = otlp_settings(&cli)?;
        let progress = cli.progress.resolve(cli.log_format);
        let vllm_tls = TlsSettings::load(
            &transport::VLLM,
            cli.vllm_ca_cert.as_deref(),
            cli.vllm_insecure_tls,
        )?;
        let prometheus_tls = TlsSettings::load(
            &transport::PROMETHEUS,
            cli.prometheus_ca_cert.as_deref(),
            cli.prometheus_insecure_tls,
        )?;
        let window_mode = match cli.window_mode {
            WindowArg::EndAnchored => WindowMode::EndAnchored,
            WindowArg::Seed => WindowMode::Seed,
        };
        let thresholds = cli
            .thresholds
            .iter()
            .map(|t| {
                t.parse::<Threshold>()
                    .with_context(|| format!("--threshold {t:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if cli.rate.is_none() {
            if let Some(a) = cli.arrival {
                anyhow::bail!("--arrival {a} needs --rate: it spaces an open loop's requests");
            }
            if let Some(n) = cli.max_inflight {
                anyhow::bail!(
                    "--max-inflight {n} needs --rate: a closed loop's in-flight count is --concurrency"
                );
            }
        }
        check_timing(&cli)?;
        let think = think(&cli)?;
        if cli.baseline_adapter.as_deref() == Some(adapter_name.as_str()) {
            anyhow::bail!(
                "--baseline-adapter must name another adapter than --adapter-name ({adapter_name:?})"
            );
        }
        // clap's `input` group: exactly one source is given
        let input = match (
            cli.prompt_file.clone(),
            cli.prompt_text.clone(),
            cli.input_size,
            cli.task_mix.clone(),
        ) {
            (Some(p), ..) => InputSource::PromptFile(p),
            (_, Some(t), ..) => InputSource::PromptText(t),
            (_, _, Some(d), _) => InputSource::Synthetic(d),
            (.., Some(m)) => InputSource::TaskMix(m),
            _ => InputSource::EvalFile,
        };
        if input != InputSource::EvalFile
            && let Some(f) = &cli.prompt_field
        {
            anyhow::bail!(
                "--prompt-field {f:?} applies to --eval-data-path only (a --prompt-file row uses prompt, text or messages)"
            );
        }
        if cli.tokenizer_file.is_some()
            && !matches!(input, InputSource::Synthetic(_) | InputSource::TaskMix(_))
        {
            anyhow::bail!(
                "--tokenizer-file sizes synthetic prompts: it needs --input-size or --task-mix"
            );
        }
        if matches!(&input, InputSource::PromptText(t) if t.trim().is_empty()) {
            anyhow::bail!("--prompt-text is empty");
        }
        let shard = shard(&cli)?;
        if cli.step_gap.is_some() && (shard.is_none() || cli.steps.is_empty()) {
            tracing::warn!(
                "--step-gap/STEP_GAP given but not used: it spaces the steps of a sweep in shards (--steps with --shard-count)"
            );
        }
        let start_at = cli
            .start_at
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .with_context(|| {
                        format!("--start-at {t:?}: expected RFC 3339, e.g. 2026-12-05T10:00:00Z")
                    })
            })
            .transpose()?;
        let api = match cli.api {
            ApiArg::Openai => perf_gate::api::Api::Openai,
            ApiArg::Llamacpp => perf_gate::api::Api::Llamacpp,
        };
        if api == perf_gate::api::Api::Llamacpp {
            if cli.endpoint == EndpointArg::Chat {
                anyhow::bail!(
                    "--endpoint chat needs --api openai: --api llamacpp sends text prompts to POST /completion"
                );
            }
            if let Some(b) = &cli.baseline_adapter {
                anyhow::bail!(
                    "--baseline-adapter {b:?} needs --api openai: llama-server applies its LoRA adapters to every request, so two adapters cannot share one run"
                );
            }
            if cli.prometheus_url.is_some() {
                anyhow::bail!(
                    "--prometheus-url needs --api openai: the server figures are read as vLLM's series, which llama-server does not export"
                );
            }
            if cli.lora_mix.is_some() {
                anyhow::bail!(
                    "--lora-mix needs --api openai: llama-server applies its LoRA adapters to every request"
                );
            }
        }
        let mut config = LoadTestConfig {
            vllm_url,
            adapter_name,
            baseline_adapter: cli.baseline_adapter,
            eval_data_path: cli.eval_data_path.clone().unwrap_or_default(),
            concurrency: cli.concurrency,
            rate: cli.rate,
            arrival: cli.arrival.unwrap_or(Arrival::Constant),
            max_inflight: cli
                .rate
                .map(|_| cli.max_inflight.unwrap_or(DEFAULT_MAX_IN_FLIGHT)),
            seed: cli.seed,
            num_requests: cli.num_requests,
            duration: cli
                .stages
                .as_ref()
                .map(|s| s.stages.iter().map(|s| s.duration).sum())
                .or(cli.duration.map(Duration::from)),
            warmup: cli.warmup.into(),
            cooldown: cli.cooldown.into(),
            ramp_up: cli.ramp_up.map(Duration::from),
            stages: cli.stages.as_ref().map(|s| s.stages.clone()),
            stages_text: cli.stages.map(|s| s.text),
            steps: (!cli.steps.is_empty()).then(|| cli.steps.clone()),
            think,
            scenario: cli.scenario.clone(),
            step_duration: cli.step_duration.into(),
            step_gap: cli.step_gap.map_or(DEFAULT_STEP_GAP, Duration::from),
            max_tokens: cli.max_tokens.max(),
            temperature: cli.temperature,
            endpoint: match cli.endpoint {
                EndpointArg::Auto => EndpointChoice::Auto,
                EndpointArg::Completions => EndpointChoice::Completions,
                EndpointArg::Chat => EndpointChoice::Chat,
            },
            prompt_field: cli.prompt_field,
            api,
            input,
            max_tokens_dist: Some(cli.max_tokens).filter(|d| !d.is_fixed()),
            ignore_eos: cli.ignore_eos,
            tokenizer_file: cli.tokenizer_file,
            api_key: cli.api_key,
            request_timeout: cli.request_timeout.into(),
            wait_ready: Some(cli.wait_ready.into()),
            output_dir: cli.output_dir,
            prometheus_url,
            prom: PromSettings {
                job: cli.prometheus_job,
                scrape_interval: cli.scrape_interval.into(),
                scrape_wait: cli.scrape_wait.into(),
                window_mode,
                gpu_selector: cli.gpu_selector,
                query_timeout: cli.prometheus_timeout.into(),
            },
            // the bar replaces the lines; `off` shows neither
            progress_every: Some(Duration::from(cli.progress_interval))
                .filter(|d| !d.is_zero() && progress == Progress::Lines),
            progress_view: (progress == Progress::Bar).then(|| {
                let bar: std::sync::Arc<dyn ProgressView> = TerminalBar::install();
                bar
            }),
            otlp,
            drain_grace: cli.drain_grace.into(),
            poll_interval: Some(Duration::from(cli.poll_interval)).filter(|d| !d.is_zero()),
            gpu_poll_interval: Some(Duration::from(
                cli.gpu_poll_interval.unwrap_or(cli.poll_interval),
            ))
            .filter(|d| !d.is_zero()),
            warmup_requests: cli.warmup_requests,
            // with llama.cpp no connection is kept between requests: nothing to open before
            preconnect: cli.preconnect && api == perf_gate::api::Api::Openai,
            traceparent: cli.traceparent,
            batch_window: cli.batch_window.0,
            http_client: match cli.http_client {
                HttpClientArg::Native => perf_gate::client::HttpClient::Native,
                HttpClientArg::Reqwest => perf_gate::client::HttpClient::Reqwest,
            },
            slo: cli.slo,
            thresholds,
            vllm_tls,
            prometheus_tls,
            pushgateway,
            effective_config: None,
            mix,
            shard,
            start_at,
        };
        // targets with their own concurrency: the run's level is their sum
        if let Some(caps) = config
            .mix
            .as_ref()
            .and_then(|m| m.members.iter().map(|m| m.concurrency).sum::<Option<u32>>())
        {
            config.concurrency = caps;
        }
        if let Some(s) = shard {
            // this shard's share of the load: the first shards take the remainder
            // (a staged closed loop: of each stage's level, in LoadTestConfig::profile)
            let mut share =
                config.concurrency / s.count + u32::from(s.index < config.concurrency % s.count);
            // targets with their own concurrency: each target's closed loop split among the
            // shards, this shard's level their parts' sum
            if let Some(m) = &config.mix
                && m.members.iter().all(|m| m.concurrency.is_some())
            {
                if let Some(t) = m
                    .members
                    .iter()
                    .find(|t| t.concurrency.is_some_and(|c| c < s.count))
                {
                    anyhow::bail!(
                        "--shard-count {}: more shards than target {:?}'s concurrency={} (each shard needs one of its requests in flight)",
                        s.count,
                        t.name,
                        t.concurrency.unwrap_or_default()
                    );
                }
                share = config.member_caps().unwrap_or_default().iter().sum();
            }
            match (&config.stages, config.rate) {
                (Some(stages), None) => {
                    let peak = stages.iter().map(|st| st.target).fold(0.0, f64::max);
                    if peak.round() < f64::from(s.count) {
                        anyhow::bail!(
                            "--shard-count {}: more shards than the --stages peak of {peak} requests in flight (each shard needs a request in flight)",
                            s.count
                        );
                    }
                }
                (None, None) if share == 0 && config.steps.is_none() => anyhow::bail!(
                    "--shard-count {}: more shards than --concurrency {} (each shard needs a request in flight)",
                    s.count,
                    config.concurrency
                ),
                _ => {}
            }
            if let Some(levels) = &config.steps {
                let low = levels.iter().copied().fold(f64::INFINITY, f64::min);
                if config.rate.is_none() && low.round() < f64::from(s.count) {
                    anyhow::bail!(
                        "--shard-count {}: more shards than the lowest --steps level, {low} requests in flight (each shard needs a request in flight at every step)",
                        s.count
                    );
                }
                if config.start_at.is_none() {
                    anyhow::bail!(
                        "--shard-count with --steps needs --start-at: every shard's steps follow one clock from it (step i starts at --start-at + i x (--warmup + --step-duration + --cooldown + --step-gap))"
                    );
                }
                let last = u32::try_from(levels.len().saturating_sub(1)).unwrap_or(u32::MAX);
                if config.step_start(last).is_none() {
                    anyhow::bail!(
                        "--steps: the last step would start past the calendar's end (--start-at + {last} x (--warmup + --step-duration + --cooldown + --step-gap)): shorten them"
                    );
                }
            }
            // a staged closed loop's level comes from its stages: its part of --concurrency is
            // only recorded, and may be 0, so the merge's sum is the flag's value
            config.concurrency = match (&config.stages, config.rate) {
                (Some(_), None) => share,
                _ => share.max(1),
            };
            config.rate = config.rate.map(|r| r / f64::from(s.count));
            // each shard's own arrival stream, reproducibly
            config.seed = config.seed.wrapping_add(u64::from(s.index));
        }
        Ok(config)
    }
}

/// `--shard-index` (default: the Indexed Job's JOB_COMPLETION_INDEX) of `--shard-count`.
fn shard(cli: &Cli) -> anyhow::Result<Option<Shard>> {
    if cli.shard_count <= 1 {
        return Ok(None);
    }
    let index = match cli.shard_index {
        Some(i) => i,
        None => match std::env::var("JOB_COMPLETION_INDEX") {
            Ok(v) => v.trim().parse().with_context(|| {
                format!("JOB_COMPLETION_INDEX {v:?} (the default of --shard-index) is not an index")
            })?,
            Err(_) => anyhow::bail!(
                "--shard-count {} needs --shard-index (or JOB_COMPLETION_INDEX, as an Indexed Job sets)",
                cli.shard_count
            ),
        },
    };
    if index >= cli.shard_count {
        anyhow::bail!(
            "--shard-index {index} is not below --shard-count {}",
            cli.shard_count
        );
    }
    Ok(Some(Shard {
        index,
        count: cli.shard_count,
    }))
}

/// `--target` / `--lora-mix`: the mix, and the URL and adapter the run's single-target parts
/// (health, polling, the results' `config`) use: the first target's in a target mix.
fn mix(cli: &Cli) -> anyhow::Result<(Option<Mix>, String, String)> {
    if !cli.targets.is_empty() {
        let specs = cli
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                // the spec may hold a URL with credentials: named by position, not echoed
                let spec: TargetSpec = t.parse().with_context(|| format!("--target #{}", i + 1))?;
                let url = base_url("--target", &spec.url)?;
                Ok(TargetSpec { url, ..spec })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mix = Mix::targets(specs).context("--target")?;
        if mix.members.iter().any(|m| m.concurrency.is_some()) && cli.rate.is_some() {
            anyhow::bail!(
                "--target concurrency= is each target's own closed loop: it cannot be used with --rate"
            );
        }
        if cli.lora_mix.is_some() {
            anyhow::bail!("--target cannot be used with --lora-mix: a target names its model");
        }
        if cli.vllm_url.is_some() || cli.adapter_name.is_some() {
            tracing::warn!(
                "--target given: --vllm-url/VLLM_URL and --adapter-name/ADAPTER_NAME are not used (the first target stands for the run)"
            );
        }
        let first = &mix.members[0];
        let (url, model) = (
            first.url.clone().unwrap_or_default(),
            first.model.clone().unwrap_or_default(),
        );
        let bad_with = [
            (cli.prometheus_url.is_some(), "--prometheus-url"),
            (cli.baseline_adapter.is_some(), "--baseline-adapter"),
            (!cli.steps.is_empty(), "--steps"),
        ];
        if let Some((_, flag)) = bad_with.iter().find(|(set, _)| *set) {
            anyhow::bail!(
                "--target cannot be used with {flag}: a target mix measures each target's client figures (server-side figures describe one server, a sweep or an A/B run one target)"
            );
        }
        return Ok((Some(mix), url, model));
    }
    let url = base_url("--vllm-url", cli.vllm_url.as_deref().unwrap_or_default())?;
    let Some(spec) = &cli.lora_mix else {
        return Ok((None, url, cli.adapter_name.clone().unwrap_or_default()));
    };
    let mix = Mix::adapters(spec, cli.base_model_weight)
        .with_context(|| format!("--lora-mix {spec:?}"))?;
    let adapter = match &cli.adapter_name {
        Some(a) if mix.members.iter().any(|m| m.model.as_deref() == Some(a)) => a.clone(),
        Some(a) => anyhow::bail!(
            "--adapter-name {a:?} is not in --lora-mix {spec:?}: the adapter under test must be one of the mix's"
        ),
        None => mix.members[0].name.clone(),
    };
    for (set, flag) in [
        (cli.baseline_adapter.is_some(), "--baseline-adapter"),
        (!cli.steps.is_empty(), "--steps"),
    ] {
        if set {
            anyhow::bail!(
                "--lora-mix cannot be used with {flag}: a LoRA mix splits one load among its adapters"
            );
        }
    }
    Ok((Some(mix), url, adapter))
}

/// `--pushgateway-*`: the URL checked (`host:port` taken as http), the password registered
/// with the scrubber.
fn pushgateway_settings(cli: &Cli) -> anyhow::Result<Option<PushgatewaySettings>> {
    let Some(raw) = cli.pushgateway_url.as_deref() else {
        return Ok(None);
    };
    if let Some(pw) = &cli.pushgateway_password {
        perf_gate::secrets::register_basic(
            cli.pushgateway_username.as_deref().unwrap_or_default(),
            pw,
        );
        if cli.pushgateway_username.is_none() {
            anyhow::bail!("PUSHGATEWAY_PASSWORD needs --pushgateway-username (HTTP Basic auth)");
        }
    }
    let raw = raw.trim();
    let url = if raw.contains("://") {
        base_url("--pushgateway-url", raw)?
    } else {
        base_url("--pushgateway-url", &format!("http://{raw}"))?
    };
    let interval = Duration::from(cli.push_interval);
    Ok(Some(PushgatewaySettings {
        url,
        job: cli.pushgateway_job.clone(),
        instance: cli
            .pushgateway_instance
            .clone()
            .unwrap_or_else(pushgateway::default_instance),
        interval,
        username: cli.pushgateway_username.clone(),
        password: cli.pushgateway_password.clone(),
        delete_at_end: cli.pushgateway_delete,
        // published at least every second: a push is never more than that behind the load
        figures: std::sync::Arc::new(pushgateway::LiveFigures::new(
            interval.min(Duration::from_secs(1)),
        )),
    }))
}

/// `--otlp-endpoint` and `--otlp-header`: the traces URL checked, the header values
/// registered with the scrubber.
fn otlp_settings(cli: &Cli) -> anyhow::Result<Option<OtlpSettings>> {
    // parsed first: a header's value is a secret even when no endpoint uses it
    let headers = otlp::parse_headers(&cli.otlp_headers)?;
    let Some(raw) = cli.otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    if !cli.traceparent {
        anyhow::bail!(
            "--otlp-endpoint exports the span of each request's traceparent: it needs --traceparent true"
        );
    }
    Ok(Some(OtlpSettings::new(otlp::traces_url(raw)?, headers)))
}

/// `--think-time` or `--user-class`, seeded by `--seed`.
fn think(cli: &Cli) -> anyhow::Result<Option<perf_gate::runner::Think>> {
    use perf_gate::runner::Think;
    let think = match (cli.think_time, &cli.user_class) {
        (Some(_), Some(_)) => {
            anyhow::bail!("--think-time and --user-class both set the pauses: give one")
        }
        (Some(t), None) => Think::single(t, cli.seed),
        (None, Some(c)) => {
            Think::user_classes(c, cli.seed).map_err(|e| anyhow::anyhow!("--user-class: {e}"))?
        }
        (None, None) => return Ok(None),
    };
    if cli.rate.is_some() {
        anyhow::bail!(
            "--think-time and --user-class pause a closed loop's users; an open loop (--rate) sends on its schedule"
        );
    }
    Ok(Some(think))
}

/// The rules between the flags that shape a load over time.
fn check_timing(cli: &Cli) -> anyhow::Result<()> {
    let timed = cli.duration.is_some() || cli.stages.is_some() || !cli.steps.is_empty();
    if !cli.steps.is_empty() {
        for (given, flag) in [
            (cli.duration.is_some(), "--duration"),
            (cli.stages.is_some(), "--stages"),
            (cli.num_requests.is_some(), "--num-requests"),
            (cli.baseline_adapter.is_some(), "--baseline-adapter"),
        ] {
            if given {
                anyhow::bail!(
                    "--steps and {flag} cannot be combined: each step is a timed load of --step-duration"
                );
            }
        }
        if cli.rate.is_none() && cli.steps.iter().any(|l| l.fract() != 0.0) {
            anyhow::bail!(
                "--steps: a closed loop's levels are whole numbers of requests in flight (give --rate for rates)"
            );
        }
    }
    if let (Some(_), Some(n)) = (cli.duration, cli.num_requests) {
        anyhow::bail!(
            "--duration and --num-requests {n} both say when to stop: give one (a duration cycles the prompts)"
        );
    }
    if cli.stages.is_some() {
        for (given, flag) in [
            (cli.duration.is_some(), "--duration"),
            (cli.ramp_up.is_some(), "--ramp-up"),
            (cli.num_requests.is_some(), "--num-requests"),
        ] {
            if given {
                anyhow::bail!(
                    "--stages and {flag} both shape the load: --stages sets the level and the run's length"
                );
            }
        }
    }
    if cli.stages.is_some() {
        for (d, flag) in [(cli.warmup, "--warmup"), (cli.cooldown, "--cooldown")] {
            if !d.0.is_zero() {
                anyhow::bail!(
                    "--stages and {flag} {d}: the stages shape the whole load over time; give the warm-up or cool-down as a stage of its own"
                );
            }
        }
    }
    for (d, flag) in [(cli.warmup, "--warmup"), (cli.cooldown, "--cooldown")] {
        if !d.0.is_zero() && !timed {
            anyhow::bail!(
                "{flag} {d} needs --duration (or --stages, --steps): it is a time at the edge of a timed load; for requests before the load use --warmup-requests"
            );
        }
    }
    Ok(())
}

/// A checked base URL, as given but without a trailing `/`.
fn base_url(flag: &'static str, raw: &str) -> Result<String, UrlError> {
    parse_base_url(flag, raw).map(|u| u.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["load-test", "--adapter-name=a", "--eval-data-path=e.jsonl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    /// The error `arg` gets beside a URL and the required flags: its first line, and all of it.
    fn refused(url: &str, arg: &str) -> (String, String) {
        let all = [
            "load-test",
            "--adapter-name=a",
            "--eval-data-path=e",
            url,
            arg,
        ];
        let e = Cli::try_parse_from(all).unwrap_err().to_string();
        (e.lines().next().unwrap_or_default().to_owned(), e)
    }

    #[test]
    fn a_target_with_its_own_concurrency_has_its_own_slots_split_among_shards() {
        let targets = [
            "--target=name=a,url=http://a:8000,model=m,concurrency=3",
            "--target=name=b,url=http://b:8000,model=m,concurrency=2",
        ];
        let cfg = LoadTestConfig::try_from(parse(&targets)).unwrap();
        assert_eq!(cfg.concurrency, 5, "the targets' sum");
        assert_eq!(cfg.member_caps(), Some(vec![3, 2]));
        // each target's pool and preconnect: its own cap, not the run's 5
        assert_eq!((cfg.member_slots(0), cfg.member_slots(1)), (3, 2));
        for (index, parts) in [(0, [2, 1]), (1, [1, 1])] {
            let shard = ["--shard-count=2", &format!("--shard-index={index}")];
            let cfg =
                LoadTestConfig::try_from(parse(&[&targets[..], &shard[..]].concat())).unwrap();
            assert_eq!(cfg.member_caps(), Some(parts.to_vec()), "shard {index}");
            assert_eq!(cfg.concurrency, parts[0] + parts[1], "shard {index}");
            assert_eq!(cfg.member_slots(0), parts[0], "shard {index}");
        }
        // targets sharing --concurrency by weight: every pool is the run's
        let shared = [
            "--target=url=http://a:8000,model=m",
            "--target=url=http://b:8000,model=m",
        ];
        let cfg =
            LoadTestConfig::try_from(parse(&[&shared[..], &["--concurrency=7"]].concat())).unwrap();
        assert_eq!((cfg.member_caps(), cfg.member_slots(1)), (None, 7));
    }

    #[test]
    fn the_step_gaps_default_in_its_help_is_the_one_used() {
        let cmd = Cli::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "step_gap")
            .expect("--step-gap");
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let want = format!("[default: {}s]", DEFAULT_STEP_GAP.as_secs());
        assert!(help.contains(&want), "{help}");
    }

    #[test]
    fn an_ab_run_is_no_sweep_and_no_mix_sharded_or_not() {
        let url = "--vllm-url=http://h:8000";
        let target = "--target=name=t,url=http://h:8000,model=m";
        for (args, want) in [
            (
                &["--steps=1,2", "--baseline-adapter=b"][..],
                "--steps and --baseline-adapter cannot be combined",
            ),
            (
                &["--lora-mix=a=1,y=1", "--baseline-adapter=b"],
                "--lora-mix cannot be used with --baseline-adapter",
            ),
            (
                &[target, "--baseline-adapter=b"],
                "--target cannot be used with --baseline-adapter",
            ),
        ] {
            for shards in [&[][..], &["--shard-count=2", "--shard-index=0"]] {
                let e = LoadTestConfig::try_from(parse(&[&[url][..], args, shards].concat()))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(want), "{args:?} {shards:?}: {e}");
            }
        }
    }

    #[test]
    fn arrival_flags_parse_and_need_rate() {
        let url = "--vllm-url=http://h:8000";
        let cfg = LoadTestConfig::try_from(parse(&[url, "--rate=5"])).unwrap();
        assert_eq!(
            (cfg.arrival, cfg.max_inflight, cfg.seed),
            (Arrival::Constant, Some(DEFAULT_MAX_IN_FLIGHT), 0)
        );
        let cfg = LoadTestConfig::try_from(parse(&[
            url,
            "--rate=5",
            "--arrival=gamma:0.5",
            "--max-inflight=4",
            "--seed=7",
        ]))
        .unwrap();
        assert_eq!(
            (cfg.arrival, cfg.max_inflight, cfg.seed),
            (Arrival::Gamma { shape: 0.5 }, Some(4), 7)
        );
        let closed = LoadTestConfig::try_from(parse(&[url])).unwrap();
        assert_eq!(closed.max_inflight, None);
        for (arg, want) in [
            ("--arrival=gamma:0", "the shape must be a positive number"),
            ("--arrival=gamma:x", "the shape must be a positive number"),
            (
                "--arrival=uniform",
                "expected constant, poisson or gamma:SHAPE",
            ),
            ("--max-inflight=0", "--max-inflight"),
        ] {
            let (line, e) = refused(url, arg);
            assert!(
                line.contains(want) && line.contains(arg.split('=').next().unwrap()),
                "{e}"
            );
        }
        for arg in ["--arrival=poisson", "--max-inflight=4"] {
            let e = LoadTestConfig::try_from(parse(&[url, arg])).unwrap_err();
            assert!(format!("{e:#}").contains("needs --rate"), "{e:#}");
        }
    }

    #[test]
    fn the_batch_window_defaults_to_200us_and_is_bounded() {
        let url = "--vllm-url=http://h:8000";
        let cfg = LoadTestConfig::try_from(parse(&[url])).unwrap();
        assert_eq!(cfg.batch_window, Duration::from_micros(200));
        for (arg, want) in [
            ("--batch-window=0", Duration::ZERO),
            ("--batch-window=1ms", Duration::from_millis(1)),
            ("--batch-window=0.005", Duration::from_millis(5)),
        ] {
            let cfg = LoadTestConfig::try_from(parse(&[url, arg])).unwrap();
            assert_eq!(cfg.batch_window, want, "{arg}");
        }
        for arg in [
            "--batch-window=6ms",
            "--batch-window=-1",
            "--batch-window=soon",
        ] {
            let (line, e) = refused(url, arg);
            assert!(line.contains("--batch-window"), "{e}");
        }
        let e = Cli::try_parse_from(["load-test", "--batch-window=6ms"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("longer than the most a request may wait for it (5ms)"),
            "{e}"
        );
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_library_s() {
        let cfg = LoadTestConfig::try_from(parse(&["--vllm-url=http://h:8000/"])).unwrap();
        assert_eq!(cfg.vllm_url, "http://h:8000");
        assert_eq!(cfg.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(cfg.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(cfg.prom, PromSettings::default());
        assert_eq!(cfg.progress_every, Some(DEFAULT_PROGRESS_INTERVAL));
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("[default: 5m]"), "{help}");
        assert!(help.contains("[default: auto]"), "{help}");
        assert_eq!(cfg.prom.scrape_interval, None);
    }

    #[test]
    fn a_bad_url_names_its_own_flag_and_no_secret() {
        let e = LoadTestConfig::try_from(parse(&[
            "--vllm-url=http://h:8000",
            "--prometheus-url=http://user:PW@127.0.0.1:notaport",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid --prometheus-url "), "{e}");
        assert!(!e.contains("PW"), "{e}");
        let e = LoadTestConfig::try_from(parse(&["--vllm-url=ftp://u:PW@h/?token=PW"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid --vllm-url "), "{e}");
        assert!(!e.contains("PW"), "{e}");
    }

    #[test]
    fn the_baseline_adapter_is_another_adapter() {
        let cfg = LoadTestConfig::try_from(parse(&["--vllm-url=http://h", "--baseline-adapter=b"]))
            .unwrap();
        assert_eq!(cfg.baseline_adapter.as_deref(), Some("b"));
        assert_eq!(
            LoadTestConfig::try_from(parse(&["--vllm-url=http://h"]))
                .unwrap()
                .baseline_adapter,
            None
        );
        let e = LoadTestConfig::try_from(parse(&["--vllm-url=http://h", "--baseline-adapter=a"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--baseline-adapter must name another adapter than --adapter-name (\"a\")"
        );
    }

    #[test]
    fn thresholds_repeat_and_a_bad_one_names_its_flag() {
        let cfg = LoadTestConfig::try_from(parse(&[
            "--vllm-url=http://h",
            "--threshold=ttft_p95<2s",
            "--threshold",
            "error_rate < 5%",
        ]))
        .unwrap();
        let given: Vec<_> = cfg
            .thresholds
            .iter()
            .map(|t| t.expression.as_str())
            .collect();
        assert_eq!(given, ["ttft_p95<2s", "error_rate < 5%"]);
        let e =
            LoadTestConfig::try_from(parse(&["--vllm-url=http://h", "--threshold=ttft_p95<<2s"]))
                .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "--threshold \"ttft_p95<<2s\": expected METRIC OP VALUE with OP one of <, <=, >, >="
        );
    }

    fn bare(args: &[&str]) -> Result<Cli, String> {
        let mut all = vec!["load-test", "--vllm-url=http://h", "--adapter-name=a"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map_err(|e| e.to_string())
    }

    #[test]
    fn exactly_one_input_source_and_the_eval_file_stays_the_default() {
        let cfg = LoadTestConfig::try_from(parse(&["--vllm-url=http://h"])).unwrap();
        assert_eq!(cfg.input, InputSource::EvalFile);
        assert_eq!(
            (cfg.max_tokens, cfg.max_tokens_dist),
            (DEFAULT_MAX_TOKENS, None)
        );
        assert!(!cfg.ignore_eos);
        let e = bare(&["--prompt-file=p.txt", "--prompt-text=hi"]).unwrap_err();
        let line = e.lines().next().unwrap();
        assert!(
            line.contains("--prompt-file <PATH>") && line.contains("--prompt-text <TEXT>"),
            "{e}"
        );
        let e = bare(&["--eval-data-path=e", "--input-size=64"]).unwrap_err();
        assert!(
            e.lines().next().unwrap().contains("cannot be used with"),
            "{e}"
        );
        let e = bare(&[]).unwrap_err();
        assert!(
            e.contains("--eval-data-path") && e.contains("--task-mix"),
            "{e}"
        );
        let e = LoadTestConfig::try_from(bare(&["--prompt-text=hi", "--prompt-field=q"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--prompt-field \"q\" applies to --eval-data-path only"),
            "{e}"
        );
        for (args, want) in [
            (
                ["--prompt-file=p.txt"],
                InputSource::PromptFile("p.txt".into()),
            ),
            (["--prompt-text=hi"], InputSource::PromptText("hi".into())),
            (
                ["--input-size=uniform:8:16"],
                InputSource::Synthetic("uniform:8:16".parse().unwrap()),
            ),
            (
                ["--task-mix=short=2,long=1"],
                InputSource::TaskMix("short=2,long=1".parse().unwrap()),
            ),
        ] {
            let cfg = LoadTestConfig::try_from(bare(&args).unwrap()).unwrap();
            assert_eq!(cfg.input, want);
            assert_eq!(cfg.eval_data_path, PathBuf::new());
        }
        let e = LoadTestConfig::try_from(bare(&["--prompt-text= "]).unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "--prompt-text is empty");
    }

    #[test]
    fn max_tokens_takes_a_number_or_a_distribution_and_bad_specs_name_the_flag() {
        let cfg =
            LoadTestConfig::try_from(parse(&["--vllm-url=http://h", "--max-tokens=64"])).unwrap();
        assert_eq!((cfg.max_tokens, cfg.max_tokens_dist), (64, None));
        let cfg = LoadTestConfig::try_from(parse(&[
            "--vllm-url=http://h",
            "--max-tokens=normal:256:64:32:512",
            "--ignore-eos",
        ]))
        .unwrap();
        assert_eq!(cfg.max_tokens, 512);
        assert_eq!(
            cfg.max_tokens_dist.unwrap().to_string(),
            "normal:256:64:32:512"
        );
        assert!(cfg.ignore_eos);
        for (arg, want) in [
            ("--max-tokens=0", "must be at least 1"),
            ("--max-tokens=normal:1:2", "normal needs mean:std:min:max"),
            (
                "--input-size=lognormal:6",
                "lognormal needs mu:sigma:min:max",
            ),
            ("--input-size=uniform:9:1", "min 9 is above max 1"),
            ("--task-mix=short=1,huge=2", "unknown task \"huge\""),
        ] {
            let e = bare(&[arg]).unwrap_err();
            let flag = arg.split('=').next().unwrap();
            let line = e.lines().next().unwrap();
            assert!(line.contains(flag) && line.contains(want), "{arg}: {e}");
        }
    }

    #[test]
    fn pushgateway_flags_build_the_settings() {
        let url = "--vllm-url=http://h";
        let cfg = LoadTestConfig::try_from(parse(&[url])).unwrap();
        assert!(cfg.pushgateway.is_none());
        let cfg = LoadTestConfig::try_from(parse(&[
            url,
            "--pushgateway-url=pgw:9091",
            "--push-interval=2s",
            "--pushgateway-instance=pod-1",
            "--pushgateway-username=u",
            "--pushgateway-password=Pgw-Secret-1",
        ]))
        .unwrap();
        let p = cfg.pushgateway.unwrap();
        assert_eq!(
            (p.url.as_str(), p.job.as_str(), p.instance.as_str()),
            ("http://pgw:9091", pushgateway::DEFAULT_JOB, "pod-1")
        );
        assert_eq!(p.interval, Duration::from_secs(2));
        assert!(!p.delete_at_end);
        assert!(!format!("{p:?}").contains("Pgw-Secret-1"));
        assert_eq!(perf_gate::secrets::scrub("x Pgw-Secret-1"), "x <redacted>");
        let e = LoadTestConfig::try_from(parse(&[
            url,
            "--pushgateway-url=http://pgw:9091",
            "--pushgateway-password=Pgw-Secret-2",
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("needs --pushgateway-username"),
            "{e}"
        );
        assert!(bare(&["--eval-data-path=e", "--push-interval=0"]).is_err());
    }

    #[test]
    fn rates_and_temperatures_are_bounded() {
        assert!(rate("1e-300").is_err());
        assert_eq!(rate("2.5"), Ok(2.5));
        assert!(temperature("3").is_err());
    }
}
