//! Command line of `load-test`: the seed's flag names, each with an env var.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use perf_gate::loadtest::LoadTestConfig;
use perf_gate::prom::PromSettings;
use perf_gate::results::WindowMode;
use perf_gate::workload::EndpointChoice;

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for Kubernetes log collectors).
    Json,
}

/// `--window-mode` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum WindowArg {
    /// Evaluate at load end + scrape interval + 2 s over a range covering the whole load.
    EndAnchored,
    /// The seed's rule: duration rounded up to the minute (min 1m), after --scrape-wait.
    Seed,
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

/// Parses a duration: bare number = seconds (`8.0`, as the seed passes them), or humantime (`90s`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("{s:?} seconds is too long"));
        }
        return Err(format!("{s:?} is not a non-negative number of seconds"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}); use seconds (30) or 30s, 2m"))
}

fn positive_u32(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a positive integer ({e})")),
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.001 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a rate of at least 0.001 requests per second"
        )),
    }
}

fn temperature(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=2.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a temperature between 0 and 2")),
    }
}

fn http_url(s: &str) -> Result<String, String> {
    perf_gate::client::validate_base_url(s, "")
        .map(|_| s.trim_end_matches('/').to_string())
        .map_err(|e| {
            let msg = e.to_string();
            msg.replace(" (flag )", "")
        })
}

/// Fire concurrent streaming requests at a LoRA adapter served by vLLM, measure client-side
/// TTFT / inter-token latency / e2e, collect server-side P50/P95/P99 from Prometheus (or vLLM's
/// /metrics), and write load_test_results.json, load_test_status.txt and requests.jsonl.
#[derive(Debug, Parser)]
#[command(name = "load-test", version, args_override_self = true, allow_negative_numbers = true, after_help = perf_gate::exit::HELP_TABLE)]
pub struct Cli {
    /// Base URL of the vLLM OpenAI-compatible server.
    #[arg(long, env = "VLLM_URL", value_parser = http_url)]
    pub vllm_url: String,

    /// Model id requests are sent to (the candidate LoRA adapter); must be listed by /v1/models.
    #[arg(long, env = "ADAPTER_NAME")]
    pub adapter_name: String,

    /// Eval JSONL file; prompt in `prompt_inference` (also `prompt`, `text`, `messages`).
    #[arg(long, env = "EVAL_DATA_PATH")]
    pub eval_data_path: PathBuf,

    /// Requests in flight (closed loop); with --rate, the cap on requests in flight.
    #[arg(long, env = "CONCURRENCY", default_value = "10", value_parser = positive_u32)]
    pub concurrency: u32,

    /// Max output tokens per request.
    #[arg(long, env = "MAX_TOKENS", default_value = "256", value_parser = positive_u32)]
    pub max_tokens: u32,

    /// Prometheus base URL. Without it, server figures come from vLLM /metrics deltas.
    #[arg(long, env = "PROMETHEUS_URL", value_parser = http_url)]
    pub prometheus_url: Option<String>,

    /// Directory for the result files (created if missing).
    #[arg(long, env = "OUTPUT_DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// API key for vLLM, sent as a bearer token; never logged or written.
    #[arg(long, env = "VLLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Deadline of each request (seconds, or 90s / 5m). A request past it counts as a timeout failure.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "300", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// `job` label of vLLM's series in Prometheus.
    #[arg(long, env = "PROMETHEUS_JOB", default_value = "vllm-service")]
    pub prometheus_job: String,

    /// Prometheus scrape interval of the vLLM job (the query waits for one more scrape).
    #[arg(long, env = "SCRAPE_INTERVAL", default_value = "30", value_parser = parse_duration)]
    pub scrape_interval: Duration,

    /// Wait after the load before querying, in --window-mode seed.
    #[arg(long, env = "SCRAPE_WAIT", default_value = "20", value_parser = parse_duration)]
    pub scrape_wait: Duration,

    /// How the PromQL window is chosen.
    #[arg(long, env = "WINDOW_MODE", value_enum, default_value = "end-anchored")]
    pub window_mode: WindowArg,

    /// Label selector of the DCGM GPU series.
    #[arg(long, env = "GPU_SELECTOR", default_value = "{gpu=\"0\"}")]
    pub gpu_selector: String,

    /// Wait up to this long for vLLM's /health to answer 200 (for a server still starting). 0: check once.
    #[arg(long, env = "WAIT_READY", default_value = "0", value_parser = parse_duration)]
    pub wait_ready: Duration,

    /// JSONL field holding the prompt (default: the first of prompt_inference, prompt, text, messages).
    #[arg(long, env = "PROMPT_FIELD")]
    pub prompt_field: Option<String>,

    /// Which OpenAI endpoint to call.
    #[arg(long, env = "ENDPOINT", value_enum, default_value = "auto")]
    pub endpoint: EndpointArg,

    /// Sampling temperature.
    #[arg(long, env = "TEMPERATURE", default_value = "0", value_parser = temperature)]
    pub temperature: f64,

    /// Total requests; prompts are cycled to reach it (default: each prompt once, as the seed).
    #[arg(long, env = "NUM_REQUESTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub num_requests: Option<u64>,

    /// Open loop: send this many requests per second (at most --concurrency in flight);
    /// late starts are reported as client queue time.
    #[arg(long, env = "RATE", value_parser = rate)]
    pub rate: Option<f64>,

    /// Requests sent before the measurement and left out of it (the first request to a LoRA
    /// adapter loads it). With Prometheus, a quiet gap of one scrape interval + 2 s follows.
    #[arg(long, env = "WARMUP_REQUESTS", default_value = "0")]
    pub warmup_requests: u32,

    /// Interval between progress log lines; 0 turns them off.
    #[arg(long, env = "PROGRESS_INTERVAL", default_value = "5", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// On SIGINT/SIGTERM, time given to in-flight requests before the run is cut short.
    #[arg(long, env = "DRAIN_GRACE", default_value = "10", value_parser = parse_duration)]
    pub drain_grace: Duration,

    /// Timeout of each Prometheus query.
    #[arg(long, env = "PROMETHEUS_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub prometheus_timeout: Duration,

    /// Log format: text for people, json for Kubernetes.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Cli {
    /// Converts the flags into the library's config.
    pub fn into_config(self) -> LoadTestConfig {
        let window_mode = match self.window_mode {
            WindowArg::EndAnchored => WindowMode::EndAnchored,
            WindowArg::Seed => WindowMode::Seed,
        };
        let prometheus = self.prometheus_url.as_ref().map(|url| PromSettings {
            url: url.clone(),
            job: self.prometheus_job.clone(),
            scrape_interval: self.scrape_interval,
            scrape_wait: self.scrape_wait,
            window_mode,
            gpu_selector: self.gpu_selector.clone(),
            query_timeout: self.prometheus_timeout,
        });
        LoadTestConfig {
            vllm_url: self.vllm_url,
            adapter_name: self.adapter_name,
            eval_data_path: self.eval_data_path,
            concurrency: self.concurrency,
            rate: self.rate,
            num_requests: self.num_requests,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            endpoint: match self.endpoint {
                EndpointArg::Auto => EndpointChoice::Auto,
                EndpointArg::Completions => EndpointChoice::Completions,
                EndpointArg::Chat => EndpointChoice::Chat,
            },
            prompt_field: self.prompt_field,
            api_key: self.api_key,
            request_timeout: self.request_timeout,
            wait_ready: Some(self.wait_ready),
            output_dir: self.output_dir,
            prometheus,
            prometheus_job: self.prometheus_job,
            scrape_interval: self.scrape_interval,
            scrape_wait: self.scrape_wait,
            window_mode,
            gpu_selector: self.gpu_selector,
            progress_every: (!self.progress_interval.is_zero()).then_some(self.progress_interval),
            drain_grace: self.drain_grace,
            warmup_requests: self.warmup_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_humantime() {
        assert_eq!(parse_duration("8.0").unwrap(), Duration::from_secs(8));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("1e20").is_err(),
            "too long must be an error, not a panic"
        );
        assert!(rate("1e-300").is_err());
        assert_eq!(rate("2.5"), Ok(2.5));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
