//! Simulator configuration: every knob of the binary's command line, as a plain struct.
//!
//! [`SimConfig`] is what tests build in-process (start from [`SimConfig::default`] and
//! override fields); the `vllm-sim` binary maps its flags onto it one to one. The flag
//! name of each field is given in its rustdoc.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A LoRA adapter served next to the base model (`--lora-modules name=path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraModule {
    /// Name clients put in the `model` field (the `id` in `/v1/models`).
    pub name: String,
    /// Adapter path, shown as `root` in `/v1/models`.
    pub path: String,
}

impl LoraModule {
    /// An adapter called `name`, loaded from `path`.
    pub fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
        }
    }
}

impl FromStr for LoraModule {
    type Err = ConfigError;

    /// Parses vLLM's `name=path` form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, path)) if !name.trim().is_empty() && !path.trim().is_empty() => {
                Ok(Self::new(name.trim(), path.trim()))
            }
            _ => Err(ConfigError::LoraModule(s.to_owned())),
        }
    }
}

impl fmt::Display for LoraModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.path)
    }
}

/// A served model whose delays are scaled (`--adapter-latency-scale name=factor`): its
/// `ttft` and every inter-token delay are multiplied by `factor`, so two adapters on one
/// simulator can differ in speed (a same-server A/B test). Queue time is not scaled: it
/// follows from the load.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyScale {
    /// A served model's name: an adapter of `--lora-modules`, or the base model.
    pub name: String,
    /// Multiplier of its TTFT and inter-token delays (finite, greater than 0).
    pub factor: f64,
}

impl LatencyScale {
    /// `name`'s delays multiplied by `factor`.
    pub fn new(name: impl Into<String>, factor: f64) -> Self {
        Self {
            name: name.into(),
            factor,
        }
    }
}

impl FromStr for LatencyScale {
    type Err = ConfigError;

    /// Parses `name=factor`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::LatencyScale(s.to_owned());
        let (name, factor) = s.split_once('=').ok_or_else(bad)?;
        let factor: f64 = factor.trim().parse().map_err(|_| bad())?;
        if name.trim().is_empty() || !(factor.is_finite() && factor > 0.0) {
            return Err(bad());
        }
        Ok(Self::new(name.trim(), factor))
    }
}

/// An adapter that is not loaded until its first request (`--lora-load-time name=duration`):
/// the first request to it waits `time` more for its first token (vLLM loading the adapter's
/// weights), and so does every request that arrives while it loads; later ones do not.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadTime {
    /// An adapter of `--lora-modules`.
    pub name: String,
    /// How long loading it takes.
    pub time: std::time::Duration,
}

impl FromStr for LoadTime {
    type Err = ConfigError;

    /// Parses `name=duration` (`sql-lora=300ms`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::LoadTime(s.to_owned());
        let (name, time) = s.split_once('=').ok_or_else(bad)?;
        let time = perf_gate_cli::parse::parse_duration(time.trim()).map_err(|_| bad())?;
        if name.trim().is_empty() {
            return Err(bad());
        }
        Ok(Self {
            name: name.trim().to_owned(),
            time,
        })
    }
}

/// How a stream chosen by `--cut-rate` ends (`--cut-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CutMode {
    /// The chunked body ends cleanly (terminating chunk sent) but without `data: [DONE]`.
    #[default]
    Eof,
    /// The connection is dropped mid-body (no terminating chunk): the client sees a body error.
    Reset,
}

impl FromStr for CutMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eof" => Ok(Self::Eof),
            "reset" => Ok(Self::Reset),
            _ => Err(ConfigError::CutMode(s.to_owned())),
        }
    }
}

/// Everything the simulator needs to run; `Default` gives the documented flag defaults.
///
/// Latency model: a request waits in a FIFO queue for one of `max_num_seqs` running slots
/// (queue time), its first token comes `ttft` after it got a slot, and every further token
/// `itl * (1 + decode_slowdown * running / max_num_seqs)` after the previous one. Each of
/// those delays is multiplied by a factor drawn uniformly from `[1 - jitter, 1 + jitter]`,
/// and by the model's `adapter_latency_scale` factor (1 unless given).
/// TTFT as a client or `vllm:time_to_first_token_seconds` sees it is therefore
/// queue time + `ttft`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// `--api`: which server to be. [`SimApi::Openai`] (default) is vLLM's OpenAI API;
    /// [`SimApi::Llamacpp`] is llama.cpp's native `llama-server` API (`/completion`, `/health`,
    /// `/v1/models`, `/props`, `/lora-adapters`; no `/metrics`), on the same engine.
    pub api: SimApi,
    /// Address to bind (binary: `--host`/`--port`); default `127.0.0.1:0` (any free port).
    pub addr: SocketAddr,
    /// `--served-model-name`: the base model's name (default `tiny-base`); also the
    /// `model_name` label of every engine metric, LoRA requests included.
    pub served_model_name: String,
    /// `--model-root`: the base model's `root` in `/v1/models` (default `/models/base`).
    pub model_root: String,
    /// `--lora-modules name=path` (repeatable): adapters served next to the base
    /// (default one: `candidate=/models/lora`).
    pub lora_modules: Vec<LoraModule>,
    /// `--max-model-len`: context length (default 1024); `max_tokens` above it is a 400.
    pub max_model_len: u32,
    /// `--max-loras`: shown as the `max_lora` label of `vllm:lora_requests_info` (default 1).
    pub max_loras: u32,
    /// `--ttft`: delay from getting a running slot to the first token (default 50 ms).
    pub ttft: Duration,
    /// `--itl`: base delay between two tokens (default 10 ms).
    pub itl: Duration,
    /// `--jitter`: every delay is multiplied by a uniform factor in `[1 - jitter, 1 + jitter]`
    /// (default 0; must be in `[0, 1)`).
    pub jitter: f64,
    /// `--seed`: seeds the per-request random generators (faults, jitter, text; default 0).
    /// Request number `i` (in arrival order) always gets the same draws.
    pub seed: u64,
    /// `--max-num-seqs`: running sequences; more requests wait in a FIFO queue (default 256).
    pub max_num_seqs: usize,
    /// `--adapter-latency-scale name=factor` (repeatable): models whose `ttft` and
    /// inter-token delays are multiplied by `factor` (default none: every model at 1).
    /// Metrics stay labelled by the base model, as vLLM's.
    pub adapter_latency_scale: Vec<LatencyScale>,
    /// Adapters loaded on their first request, and how long that takes (`--lora-load-time`).
    pub lora_load_time: Vec<LoadTime>,
    /// `--decode-slowdown`: `k` in `itl * (1 + k * running / max_num_seqs)` (default 0).
    pub decode_slowdown: f64,
    /// `--stop-probability`: chance, per generated token, that the sequence ends there
    /// with `finish_reason: "stop"` (default 0; ignored for requests with `ignore_eos`).
    pub stop_probability: f64,
    /// `--error-rate`: fraction of generation requests answered with HTTP 500 (default 0).
    pub error_rate: f64,
    /// `--cut-rate`: fraction of streaming requests whose body ends mid-stream, without
    /// `[DONE]` (default 0).
    pub cut_rate: f64,
    /// `--cut-mode`: how a cut stream ends (default [`CutMode::Eof`]).
    pub cut_mode: CutMode,
    /// `--kv-cache-tokens`: KV cache capacity in tokens; `vllm:kv_cache_usage_perc` =
    /// tokens held by running sequences / this (default 8192).
    pub kv_cache_tokens: u64,
    /// `--gpu-util`: also expose a fake DCGM gauge `DCGM_FI_DEV_GPU_UTIL` (default off).
    pub gpu_util: bool,
    /// `--api-key`: as vLLM's, every `/v1/*` request must carry `Authorization: Bearer <key>`
    /// or gets 401 `{"error": "Unauthorized"}`; `/health` and `/metrics` stay open (default none).
    pub api_key: Option<String>,
    /// `POST /tokenize` served (default `true`; binary: `--no-tokenize` turns it off, for a
    /// server without the route: a 404).
    pub tokenize: bool,
    /// `--keep-alive-timeout`: a kept connection with no request for this long after its last
    /// answer is closed, as uvicorn closes it after its `timeout_keep_alive` (vLLM's
    /// `VLLM_HTTP_TIMEOUT_KEEP_ALIVE`, default 5 s). Unlike uvicorn's, the time also runs
    /// until the next request's head is complete (not just its first byte) and bounds the wait
    /// for a new connection's first request (hyper's header read timeout); no client here
    /// connects without sending at once. `None` keeps connections open however long they
    /// idle; zero is refused.
    pub keep_alive_timeout: Option<Duration>,
}

/// The API the simulator speaks (`--api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SimApi {
    /// vLLM's OpenAI-compatible API.
    #[default]
    Openai,
    /// llama.cpp's native `llama-server` API.
    Llamacpp,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api: SimApi::Openai,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            served_model_name: "tiny-base".to_owned(),
            model_root: "/models/base".to_owned(),
            lora_modules: vec![LoraModule::new("candidate", "/models/lora")],
            max_model_len: 1024,
            max_loras: 1,
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            jitter: 0.0,
            seed: 0,
            max_num_seqs: 256,
            adapter_latency_scale: Vec::new(),
            lora_load_time: Vec::new(),
            decode_slowdown: 0.0,
            stop_probability: 0.0,
            error_rate: 0.0,
            cut_rate: 0.0,
            cut_mode: CutMode::Eof,
            kv_cache_tokens: 8192,
            gpu_util: false,
            api_key: None,
            tokenize: true,
            keep_alive_timeout: Some(Duration::from_secs(5)),
        }
    }
}

impl SimConfig {
    /// Checks the cross-field rules: fractions in range, non-zero capacities, unique names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fraction = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Fraction { name, value: v })
            }
        };
        fraction("error-rate", self.error_rate)?;
        fraction("cut-rate", self.cut_rate)?;
        fraction("stop-probability", self.stop_probability)?;
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(ConfigError::Jitter(self.jitter));
        }
        if !(self.decode_slowdown >= 0.0 && self.decode_slowdown.is_finite()) {
            return Err(ConfigError::DecodeSlowdown(self.decode_slowdown));
        }
        if self.max_num_seqs == 0 {
            return Err(ConfigError::Zero("max-num-seqs"));
        }
        if self.max_model_len == 0 {
            return Err(ConfigError::Zero("max-model-len"));
        }
        if self.kv_cache_tokens == 0 {
            return Err(ConfigError::Zero("kv-cache-tokens"));
        }
        if self.keep_alive_timeout.is_some_and(|t| t.is_zero()) {
            // hyper would close every connection whose request is not in at its accept
            return Err(ConfigError::Zero("keep-alive-timeout"));
        }
        if self.served_model_name.is_empty() {
            return Err(ConfigError::EmptyModelName);
        }
        let mut names = vec![self.served_model_name.as_str()];
        for lora in &self.lora_modules {
            if names.contains(&lora.name.as_str()) {
                return Err(ConfigError::DuplicateModel(lora.name.clone()));
            }
            names.push(&lora.name);
        }
        for load in &self.lora_load_time {
            if !self.lora_modules.iter().any(|m| m.name == load.name) {
                return Err(ConfigError::LoadTime(format!(
                    "{}={:?}",
                    load.name, load.time
                )));
            }
        }
        for (i, scale) in self.adapter_latency_scale.iter().enumerate() {
            if !(scale.factor.is_finite() && scale.factor > 0.0) {
                return Err(ConfigError::LatencyScale(format!(
                    "{}={}",
                    scale.name, scale.factor
                )));
            }
            if !names.contains(&scale.name.as_str()) {
                return Err(ConfigError::UnknownScaledModel(scale.name.clone()));
            }
            if self.adapter_latency_scale[..i]
                .iter()
                .any(|s| s.name == scale.name)
            {
                return Err(ConfigError::DuplicateModel(scale.name.clone()));
            }
        }
        Ok(())
    }
}

/// A configuration value the simulator cannot run with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A `--lora-modules` entry not of the form `name=path`.
    #[error("invalid lora module `{0}`: expected name=path")]
    LoraModule(String),
    /// A `--adapter-latency-scale` entry not of the form `name=factor` with a factor > 0.
    #[error(
        "invalid adapter latency scale `{0}`: expected name=factor with a factor greater than 0"
    )]
    LatencyScale(String),
    /// A `--lora-load-time` entry not of the form `name=duration`, or naming no adapter.
    #[error(
        "invalid --lora-load-time `{0}`: expected ADAPTER=DURATION naming an adapter of --lora-modules"
    )]
    LoadTime(String),
    /// A `--adapter-latency-scale` naming a model that is not served.
    #[error(
        "--adapter-latency-scale names `{0}`, which is not served (not the base model nor in --lora-modules)"
    )]
    UnknownScaledModel(String),
    /// An unknown `--cut-mode`.
    #[error("invalid cut mode `{0}`: expected eof or reset")]
    CutMode(String),
    /// A rate or probability outside `[0, 1]`.
    #[error("--{name} must be in [0, 1], got {value}")]
    Fraction {
        /// Flag name.
        name: &'static str,
        /// Value given.
        value: f64,
    },
    /// `--jitter` outside `[0, 1)`.
    #[error("--jitter must be in [0, 1), got {0}")]
    Jitter(f64),
    /// `--decode-slowdown` negative or not finite.
    #[error("--decode-slowdown must be a finite number >= 0, got {0}")]
    DecodeSlowdown(f64),
    /// A capacity that must be positive.
    #[error("--{0} must be greater than 0")]
    Zero(&'static str),
    /// An empty `--served-model-name`.
    #[error("--served-model-name must not be empty")]
    EmptyModelName,
    /// Two models with the same name.
    #[error("model name `{0}` is used twice")]
    DuplicateModel(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_module_parses_name_and_path() {
        let m: LoraModule = "cand=/a/b=c".parse().expect("valid");
        assert_eq!(m, LoraModule::new("cand", "/a/b=c"));
        assert!("nopath".parse::<LoraModule>().is_err());
        assert!("=/x".parse::<LoraModule>().is_err());
        assert!("x=".parse::<LoraModule>().is_err());
    }

    #[test]
    fn default_is_valid_and_bad_values_are_rejected() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut SimConfig)| {
            let mut c = SimConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.error_rate = 1.5));
        assert!(bad(|c| c.cut_rate = -0.1));
        assert!(bad(|c| c.jitter = 1.0));
        assert!(bad(|c| c.max_num_seqs = 0));
        assert!(bad(|c| c.keep_alive_timeout = Some(Duration::ZERO)));
        assert!(bad(|c| c.decode_slowdown = f64::NAN));
        assert!(bad(|c| c
            .lora_modules
            .push(LoraModule::new("tiny-base", "/x"))));
    }

    #[test]
    fn latency_scales_parse_and_must_name_a_served_model() {
        let s: LatencyScale = "base-line=1.3".parse().expect("valid");
        assert_eq!(s, LatencyScale::new("base-line", 1.3));
        for bad in ["x", "x=0", "x=-1", "x=nan", "=2", "x=fast"] {
            assert!(bad.parse::<LatencyScale>().is_err(), "{bad}");
        }
        let with = |scales: Vec<LatencyScale>| SimConfig {
            adapter_latency_scale: scales,
            ..SimConfig::default()
        };
        assert_eq!(
            with(vec![LatencyScale::new("candidate", 2.0)]).validate(),
            Ok(())
        );
        assert_eq!(
            with(vec![LatencyScale::new("tiny-base", 0.5)]).validate(),
            Ok(())
        );
        assert_eq!(
            with(vec![LatencyScale::new("nope", 2.0)]).validate(),
            Err(ConfigError::UnknownScaledModel("nope".into()))
        );
        assert!(
            with(vec![
                LatencyScale::new("candidate", 2.0),
                LatencyScale::new("candidate", 3.0)
            ])
            .validate()
            .is_err()
        );
        assert!(
            with(vec![LatencyScale::new("candidate", 0.0)])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn cut_mode_parses() {
        assert_eq!("EOF".parse(), Ok(CutMode::Eof));
        assert_eq!("reset".parse(), Ok(CutMode::Reset));
        assert!("boom".parse::<CutMode>().is_err());
    }
}
