//! The `vllm-sim` command line: every flag also reads a `VLLM_SIM_*` environment variable.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;

use perf_gate_cli::logging::LogFormat;
use perf_gate_cli::parse::parse_duration;

use crate::{CutMode, LatencyScale, LoadTime, LoraModule, SimApi, SimConfig};

/// A vLLM 0.32-compatible simulator: OpenAI API with SSE streaming, Prometheus /metrics,
/// a latency model, a FIFO queue and fault injection. Durations take seconds (0.05) or
/// humantime (50ms).
#[derive(Debug, Parser)]
#[command(name = "vllm-sim", version)]
pub struct Cli {
    /// Which server to be: vLLM's OpenAI API, or llama.cpp's native llama-server API
    /// (/completion, /health, /v1/models, /props, /lora-adapters) on the same latency model.
    #[arg(long, env = "VLLM_SIM_API", value_enum, default_value_t = SimApi::Openai)]
    pub api: SimApi,

    /// Interface to listen on.
    #[arg(long, env = "VLLM_SIM_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "VLLM_SIM_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Base model name (also the model_name label of all engine metrics).
    #[arg(long, env = "VLLM_SIM_SERVED_MODEL_NAME", default_value = "tiny-base")]
    pub served_model_name: String,
    /// Base model path shown as `root` in /v1/models.
    #[arg(long, env = "VLLM_SIM_MODEL_ROOT", default_value = "/models/base")]
    pub model_root: String,
    /// LoRA adapters as name=path: repeat the flag, or separate with spaces or commas;
    /// `none` (or an empty value) serves none.
    #[arg(
        long,
        env = "VLLM_SIM_LORA_MODULES",
        value_delimiter = ',',
        num_args = 1..,
        default_value = "candidate=/models/lora"
    )]
    pub lora_modules: Vec<String>,
    /// Context length; max_tokens above it (or prompt + max_tokens) is rejected with 400.
    #[arg(long, env = "VLLM_SIM_MAX_MODEL_LEN", default_value_t = 1024)]
    pub max_model_len: u32,
    /// Value of the max_lora label of vllm:lora_requests_info.
    #[arg(long, env = "VLLM_SIM_MAX_LORAS", default_value_t = 1)]
    pub max_loras: u32,
    /// Delay from getting a running slot to the first token (TTFT = queue time + this).
    #[arg(long, env = "VLLM_SIM_TTFT", default_value = "50ms", value_parser = parse_duration)]
    pub ttft: Duration,
    /// Base delay between tokens.
    #[arg(long, env = "VLLM_SIM_ITL", default_value = "10ms", value_parser = parse_duration)]
    pub itl: Duration,
    /// Each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]; in [0, 1).
    #[arg(long, env = "VLLM_SIM_JITTER", default_value_t = 0.0)]
    pub jitter: f64,
    /// Seed of the per-request random draws (faults, jitter, text).
    #[arg(long, env = "VLLM_SIM_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Running sequences; further requests wait in a FIFO queue.
    #[arg(long, env = "VLLM_SIM_MAX_NUM_SEQS", default_value_t = 256)]
    pub max_num_seqs: usize,
    /// A model whose TTFT and inter-token delays are multiplied by FACTOR, as name=factor
    /// (e.g. baseline=1.3): repeat the flag, or separate with commas. Metrics stay labelled
    /// by the base model, as vLLM's.
    #[arg(
        long,
        env = "VLLM_SIM_ADAPTER_LATENCY_SCALE",
        value_delimiter = ',',
        value_name = "NAME=FACTOR"
    )]
    pub adapter_latency_scale: Vec<LatencyScale>,
    /// An adapter loaded on its first request, as name=duration (e.g. sql-lora=400ms): the
    /// first request to it (and any arriving while it loads) waits that much more for its
    /// first token. Repeat the flag, or separate with commas.
    #[arg(
        long,
        env = "VLLM_SIM_LORA_LOAD_TIME",
        value_delimiter = ',',
        value_name = "NAME=DURATION"
    )]
    pub lora_load_time: Vec<LoadTime>,
    /// k in itl * (1 + k * running / max-num-seqs): decode slows down with load.
    #[arg(long, env = "VLLM_SIM_DECODE_SLOWDOWN", default_value_t = 0.0)]
    pub decode_slowdown: f64,
    /// Per-token chance that a sequence ends there with finish_reason "stop".
    #[arg(long, env = "VLLM_SIM_STOP_PROBABILITY", default_value_t = 0.0)]
    pub stop_probability: f64,
    /// Fraction of generation requests answered with HTTP 500.
    #[arg(long, env = "VLLM_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of streaming requests cut mid-stream (no `[DONE]`).
    #[arg(long, env = "VLLM_SIM_CUT_RATE", default_value_t = 0.0)]
    pub cut_rate: f64,
    /// How a cut stream ends: eof (clean end of body) or reset (connection dropped).
    #[arg(long, env = "VLLM_SIM_CUT_MODE", default_value = "eof")]
    pub cut_mode: CutMode,
    /// KV cache capacity in tokens (vllm:kv_cache_usage_perc = held tokens / this).
    #[arg(long, env = "VLLM_SIM_KV_CACHE_TOKENS", default_value_t = 8192)]
    pub kv_cache_tokens: u64,
    /// Also expose a fake DCGM_FI_DEV_GPU_UTIL{gpu="0"} gauge that rises with load.
    #[arg(long, env = "VLLM_SIM_GPU_UTIL")]
    pub gpu_util: bool,
    /// Require `Authorization: Bearer <key>` on /v1/* (as vLLM's --api-key); 401 otherwise.
    #[arg(long, env = "VLLM_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Do not serve POST /tokenize (answer 404, as a server without the route).
    #[arg(long, env = "VLLM_SIM_NO_TOKENIZE")]
    pub no_tokenize: bool,
    /// Close a kept connection after this long without a request since its last answer, as
    /// vLLM's server (uvicorn) does after its keep-alive timeout (VLLM_HTTP_TIMEOUT_KEEP_ALIVE,
    /// 5 s); a new connection must send its first request within it too. 0 keeps idle
    /// connections open.
    #[arg(long, env = "VLLM_SIM_KEEP_ALIVE_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub keep_alive_timeout: Duration,
    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "VLLM_SIM_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// On SIGINT/SIGTERM, wait this long for requests in flight before exiting.
    #[arg(long, env = "VLLM_SIM_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "VLLM_SIM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl TryFrom<&Cli> for SimConfig {
    type Error = anyhow::Error;

    fn try_from(cli: &Cli) -> anyhow::Result<Self> {
        let addr: SocketAddr = (cli.host.as_str(), cli.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving --host {}", cli.host))?
            .next()
            .ok_or_else(|| anyhow!("--host {} resolves to no address", cli.host))?;
        let lora_modules = cli
            .lora_modules
            .iter()
            .flat_map(|v| v.split_whitespace())
            .filter(|v| !v.eq_ignore_ascii_case("none"))
            .map(str::parse::<LoraModule>)
            .collect::<Result<Vec<_>, _>>()?;
        let config = SimConfig {
            api: cli.api,
            addr,
            served_model_name: cli.served_model_name.clone(),
            model_root: cli.model_root.clone(),
            lora_modules,
            max_model_len: cli.max_model_len,
            max_loras: cli.max_loras,
            ttft: cli.ttft,
            itl: cli.itl,
            jitter: cli.jitter,
            seed: cli.seed,
            max_num_seqs: cli.max_num_seqs,
            adapter_latency_scale: cli.adapter_latency_scale.clone(),
            lora_load_time: cli.lora_load_time.clone(),
            decode_slowdown: cli.decode_slowdown,
            stop_probability: cli.stop_probability,
            error_rate: cli.error_rate,
            cut_rate: cli.cut_rate,
            cut_mode: cli.cut_mode,
            kv_cache_tokens: cli.kv_cache_tokens,
            gpu_util: cli.gpu_util,
            api_key: cli.api_key.clone().filter(|k| !k.is_empty()),
            tokenize: !cli.no_tokenize,
            keep_alive_timeout: (!cli.keep_alive_timeout.is_zero())
                .then_some(cli.keep_alive_timeout),
        };
        config.validate()?;
        Ok(config)
    }
}
