//! Command line of `perf-decision`: the seed's flag names, each with an env var, converted once
//! into the library's [`StepConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};
use perf_gate::decision::{MetricsSource, MlflowMode, StepConfig, Thresholds};
use perf_gate::mlflow::{Auth, MlflowConfig, RetryPolicy};

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for Kubernetes log collectors).
    Json,
}

/// `--metrics-source` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SourceArg {
    /// vLLM's histograms (Prometheus or /metrics), as the seed.
    Server,
    /// The load tester's exact per-request figures.
    Client,
}

const ABOUT: &str = "Step 2 of the vLLM LoRA performance gate: judge load_test_results.json \
against absolute floors and the newest passed MLflow run of the same model, record the run in \
MLflow, and move the perf-passed / perf-failed alias.";

const AFTER_HELP: &str = concat!(
    "Checks (absolute mode without a baseline; comparative mode adds the relative bound):\n",
    "  1  P95 E2E latency  < --max-p95-latency      and <= baseline x (1 + --max-latency-regression)\n",
    "  2  P95 TTFT         < --max-p95-ttft         and <= baseline x (1 + --max-ttft-regression)\n",
    "  3  throughput       > --min-throughput       and >= baseline x (1 - --max-throughput-drop)\n",
    "  4  success rate    >= --min-success-rate     and >= baseline - --max-success-rate-drop\n",
    "A missing metric fails its check. Outputs: <output-dir>/perf_decision.json and\n",
    "perf_status.txt (passed | failed | error).\n\n",
    "Warnings (logged at WARN, listed in perf_decision.json `warnings`, counted in the MLflow tag\n",
    "perf_warnings) never change the verdict: a baseline that ran another load (eval digest,\n",
    "concurrency, max_tokens, ...), a saturated load generator, load-test's own warnings, client\n",
    "and server request counts >10 % apart, client and server P95 E2E in different histogram\n",
    "buckets, fewer than 20 successful requests. --require-comparable-baseline makes the first a\n",
    "failing fifth check.\n\n",
    "MLflow: MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_TOKEN (bearer) or\n",
    "MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (basic). Without a tracking URI the step\n",
    "refuses to run unless --no-mlflow or --baseline-file is given.\n\n",
);

/// Parses seconds: a bare number (`8.0`, as the seed passes them) or humantime (`500ms`, `2m`).
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{s:?} is not a non-negative number of seconds"))
        };
    }
    humantime::parse_duration(t)
        .map(|d| d.as_secs_f64())
        .map_err(|e| format!("{s:?} is not a duration ({e}); use seconds (8.0) or 500ms, 2m"))
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a non-negative number")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_seconds(s).and_then(|v| match v > 0.0 {
        true => Ok(Duration::from_secs_f64(v)),
        false => Err("must be more than 0".into()),
    })
}

/// Judge a load test against MLflow's baseline and record the decision.
#[derive(Debug, Parser)]
#[command(
    name = "perf-decision",
    version,
    about = ABOUT,
    after_help = format!("{AFTER_HELP}{}", perf_gate::exit::HELP_TABLE)
)]
pub struct Cli {
    /// The load-test step's results file (load_test_results.json).
    #[arg(long, env = "LOAD_TEST_RESULTS", value_name = "PATH")]
    pub load_test_results: PathBuf,

    /// Registered model name in MLflow.
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: String,

    /// Candidate model version; default: the version the --candidate-alias points at.
    #[arg(long, env = "CANDIDATE_VERSION")]
    pub candidate_version: Option<String>,

    /// Alias naming the candidate when --candidate-version is not given (set by the eval gate).
    #[arg(long, env = "CANDIDATE_ALIAS", default_value = "eval-passed")]
    pub candidate_alias: String,

    /// MLflow experiment holding the performance runs (created if missing; a run without a
    /// baseline there is decided in absolute mode, with a warning). Deliberately not read from
    /// MLFLOW_EXPERIMENT_NAME, which pipelines often set for other steps.
    #[arg(
        long,
        env = "PERF_EXPERIMENT_NAME",
        default_value = "vllm-lora-performance"
    )]
    pub experiment_name: String,

    /// Dataset name logged with the run; default `eval-v{N}` from --eval-data-version, else `eval-<digest>`.
    #[arg(long, env = "EVAL_DATASET_NAME")]
    pub eval_dataset_name: Option<String>,

    /// Eval data version N, for the dataset name eval-v{N}.
    #[arg(long, env = "EVAL_DATA_VERSION")]
    pub eval_data_version: Option<String>,

    /// Where the eval data lives (e.g. s3://bucket/eval.jsonl); default: the path in the results.
    #[arg(long, env = "EVAL_DATA_SOURCE")]
    pub eval_data_source: Option<String>,

    /// Which figures feed checks 1-3 (check 4 always uses the client's success rate).
    #[arg(long, env = "METRICS_SOURCE", value_enum, default_value = "server")]
    pub metrics_source: SourceArg,

    /// Check 1: P95 E2E latency must be below this (seconds, or 500ms / 2m).
    #[arg(long, env = "MAX_P95_LATENCY", default_value = "8.0", value_parser = parse_seconds)]
    pub max_p95_latency: f64,

    /// Check 2: P95 time to first token must be below this (seconds).
    #[arg(long, env = "MAX_P95_TTFT", default_value = "2.0", value_parser = parse_seconds)]
    pub max_p95_ttft: f64,

    /// Check 3: throughput must be above this (requests per second).
    #[arg(long, env = "MIN_THROUGHPUT", default_value = "2.0", value_parser = non_negative)]
    pub min_throughput: f64,

    /// Check 4: client success rate must be at least this (fraction).
    #[arg(long, env = "MIN_SUCCESS_RATE", default_value = "0.99", value_parser = fraction)]
    pub min_success_rate: f64,

    /// Check 1, comparative: allowed P95 latency increase over the baseline (fraction).
    #[arg(long, env = "MAX_LATENCY_REGRESSION", default_value = "0.15", value_parser = non_negative)]
    pub max_latency_regression: f64,

    /// Check 2, comparative: allowed P95 TTFT increase over the baseline (fraction).
    #[arg(long, env = "MAX_TTFT_REGRESSION", default_value = "0.15", value_parser = non_negative)]
    pub max_ttft_regression: f64,

    /// Check 3, comparative: allowed throughput drop below the baseline (fraction < 1).
    #[arg(long, env = "MAX_THROUGHPUT_DROP", default_value = "0.15", value_parser = fraction)]
    pub max_throughput_drop: f64,

    /// Check 4, comparative: allowed success-rate drop below the baseline (0 = the seed's >= baseline).
    #[arg(long, env = "MAX_SUCCESS_RATE_DROP", default_value = "0", value_parser = fraction)]
    pub max_success_rate_drop: f64,

    /// Directory for perf_decision.json and perf_status.txt (created if missing).
    #[arg(long, env = "OUTPUT_DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// A previous perf_decision.json (a passed one) to compare with instead of searching MLflow.
    #[arg(long, env = "BASELINE_FILE", value_name = "PATH")]
    pub baseline_file: Option<PathBuf>,

    /// Take any model's newest passed run as the baseline (the seed's rule).
    #[arg(long, env = "BASELINE_ANY_MODEL", value_parser = BoolishValueParser::new())]
    pub baseline_any_model: bool,

    /// Fail the decision when the baseline did not run the same load as the candidate.
    ///
    /// Adds a fifth check, "comparable baseline": it fails when the baseline's eval data digest,
    /// concurrency, max_tokens, endpoint, temperature, rate, num_requests, PromQL window mode or
    /// server metrics source differs from the candidate's, or is not recorded (runs logged by an
    /// older perf-decision). Without this flag such a baseline only gives warnings (in the log,
    /// perf_decision.json `warnings` and `baseline.comparable`). Off by default: when on, updating
    /// the eval set (or concurrency, max_tokens, ...) fails every candidate until a passed run
    /// measured the new way exists, and only a run without this flag can make one.
    #[arg(long, env = "PERF_REQUIRE_COMPARABLE_BASELINE", value_parser = BoolishValueParser::new())]
    pub require_comparable_baseline: bool,

    /// Decide and write the files without MLflow (even if MLFLOW_TRACKING_URI is set).
    #[arg(long, env = "PERF_NO_MLFLOW", value_parser = BoolishValueParser::new())]
    pub no_mlflow: bool,

    /// Read the baseline from MLflow but write nothing to it (no run, no alias).
    #[arg(long, env = "PERF_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,

    /// Exit 1 when the decision is "failed" (default: a failed decision is a result, exit 0).
    #[arg(long, env = "FAIL_ON_REJECT", value_parser = BoolishValueParser::new())]
    pub fail_on_reject: bool,

    /// MLflow run name; default `perf-<model>-v<version>`.
    #[arg(long, env = "MLFLOW_RUN_NAME")]
    pub run_name: Option<String>,

    /// MLflow tracking server, http(s)://host:port.
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL")]
    pub tracking_uri: Option<String>,

    /// Bearer token (prefer the env var: flags show in `ps`).
    #[arg(
        long,
        env = "MLFLOW_TRACKING_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub tracking_token: Option<String>,

    /// Basic-auth user.
    #[arg(long, env = "MLFLOW_TRACKING_USERNAME", value_name = "USER")]
    pub tracking_username: Option<String>,

    /// Basic-auth password (prefer the env var: flags show in `ps`).
    #[arg(
        long,
        env = "MLFLOW_TRACKING_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub tracking_password: Option<String>,

    /// Accept any TLS certificate from the tracking server (test setups only).
    #[arg(long, env = "MLFLOW_TRACKING_INSECURE_TLS", value_parser = BoolishValueParser::new())]
    pub insecure_tls: bool,

    /// Timeout of one MLflow HTTP attempt (seconds, or 30s / 2m).
    #[arg(long, env = "MLFLOW_HTTP_REQUEST_TIMEOUT", default_value = "30", value_parser = duration)]
    pub mlflow_timeout: Duration,

    /// Retries of an MLflow call after a connection error, 408, 429 or 5xx (backoff 0.5 s doubling to 8 s).
    #[arg(long, env = "MLFLOW_HTTP_REQUEST_MAX_RETRIES", default_value = "4")]
    pub mlflow_retries: u32,

    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Cli {
    /// The thresholds given.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_p95_latency_s: self.max_p95_latency,
            max_p95_ttft_s: self.max_p95_ttft,
            min_throughput_rps: self.min_throughput,
            min_success_rate: self.min_success_rate,
            max_latency_regression: self.max_latency_regression,
            max_ttft_regression: self.max_ttft_regression,
            max_throughput_drop: self.max_throughput_drop,
            max_success_rate_drop: self.max_success_rate_drop,
        }
    }

    /// Chooses the MLflow mode. Without a tracking URI the step refuses to run unless
    /// `--no-mlflow` or `--baseline-file` says so, so a missing secret never becomes a pass.
    fn mlflow_mode(&self) -> Result<MlflowMode, String> {
        let uri = self
            .tracking_uri
            .as_deref()
            .filter(|u| !u.trim().is_empty());
        if self.no_mlflow {
            if uri.is_some() {
                tracing::info!("--no-mlflow: MLFLOW_TRACKING_URI is ignored");
            }
            return Ok(MlflowMode::Off);
        }
        let Some(uri) = uri else {
            if self.baseline_file.is_some() {
                tracing::info!(
                    "no MLFLOW_TRACKING_URI: deciding against --baseline-file; nothing is recorded in MLflow"
                );
                return Ok(MlflowMode::Off);
            }
            return Err("MLFLOW_TRACKING_URI is not set: set it (or --tracking-uri), or pass --no-mlflow or --baseline-file to decide from files only".into());
        };
        let mut config = MlflowConfig::new(uri).map_err(|e| e.to_string())?;
        config.auth = Auth::from_parts(
            self.tracking_token.clone(),
            self.tracking_username.clone(),
            self.tracking_password.clone(),
        )
        .map_err(|e| e.to_string())?;
        config.insecure_tls = self.insecure_tls;
        config.request_timeout = self.mlflow_timeout;
        config.retry = RetryPolicy {
            max_retries: self.mlflow_retries,
            ..RetryPolicy::default()
        };
        Ok(if self.dry_run {
            MlflowMode::DryRun(config)
        } else {
            MlflowMode::Record(config)
        })
    }

    /// Warnings about the environment: `MLFLOW_EXPERIMENT_NAME` (the Python client's variable)
    /// set to another experiment than the one used, i.e. ignored.
    fn env_warnings(&self, mlflow_experiment_name: Option<&str>) -> Vec<String> {
        match mlflow_experiment_name.filter(|v| !v.is_empty()) {
            Some(v) if v != self.experiment_name => vec![format!(
                "MLFLOW_EXPERIMENT_NAME={v} is ignored: perf-decision uses experiment `{}` (set --experiment-name or PERF_EXPERIMENT_NAME to change it)",
                self.experiment_name
            )],
            _ => Vec::new(),
        }
    }

    /// Validates cross-field rules and builds the step's configuration.
    pub fn into_config(self) -> Result<StepConfig, String> {
        if self.model_name.trim().is_empty() {
            return Err("--model-name must not be empty".into());
        }
        if let Some(v) = &self.candidate_version
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!(
                "--candidate-version {v:?} is not a model version number"
            ));
        }
        let thresholds = self.thresholds();
        thresholds.validate().map_err(|e| e.to_string())?;
        let mlflow = self.mlflow_mode()?;
        let warnings = self.env_warnings(std::env::var("MLFLOW_EXPERIMENT_NAME").ok().as_deref());
        Ok(StepConfig {
            results_path: self.load_test_results,
            output_dir: self.output_dir,
            model_name: self.model_name,
            candidate_version: self.candidate_version,
            candidate_alias: self.candidate_alias,
            experiment_name: self.experiment_name,
            eval_dataset_name: self.eval_dataset_name,
            eval_data_version: self.eval_data_version,
            eval_data_source: self.eval_data_source,
            metrics_source: match self.metrics_source {
                SourceArg::Server => MetricsSource::Server,
                SourceArg::Client => MetricsSource::Client,
            },
            thresholds,
            mlflow,
            baseline_file: self.baseline_file,
            baseline_any_model: self.baseline_any_model,
            require_comparable_baseline: self.require_comparable_baseline,
            run_name: self.run_name,
            warnings,
        })
    }
}

/// The output directory, read leniently from the raw arguments (`--output-dir X`,
/// `--output-dir=X`), else `OUTPUT_DIR`, else `.`: where to mark "no decision" when the command
/// line itself is refused and clap's parse gives nothing.
pub fn lenient_output_dir(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    env_output_dir: Option<std::ffi::OsString>,
) -> PathBuf {
    let mut args = args.into_iter().skip(1);
    let mut found = None;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--output-dir" {
            found = args.next().map(PathBuf::from);
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--output-dir=")) {
            found = Some(PathBuf::from(v));
        }
    }
    found
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| env_output_dir.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["perf-decision"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seed_command_line_parses_with_seed_values() {
        let cli = parse(&[
            "--load-test-results=/input/load_test_results.json",
            "--model-name=mistral-7b-lora",
            "--max-p95-latency=8.0",
            "--max-p95-ttft=2.0",
            "--min-throughput=2.0",
            "--min-success-rate=0.99",
            "--output-dir=/output",
            "--tracking-uri=http://mlflow.ai-platform:80",
        ]);
        assert_eq!(cli.thresholds(), Thresholds::default());
        let cfg = cli.into_config().unwrap();
        assert_eq!(cfg.candidate_alias, "eval-passed");
        assert_eq!(cfg.experiment_name, "vllm-lora-performance");
        assert_eq!(cfg.metrics_source, MetricsSource::Server);
        assert!(matches!(cfg.mlflow, MlflowMode::Record(_)));
    }

    #[test]
    fn seconds_accept_bare_numbers_and_humantime() {
        assert_eq!(parse_seconds("8.0"), Ok(8.0));
        assert_eq!(parse_seconds("500ms"), Ok(0.5));
        assert_eq!(parse_seconds("2m"), Ok(120.0));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
        assert!(fraction("1.5").is_err());
    }

    #[test]
    fn without_tracking_uri_only_explicit_flags_allow_running() {
        let base = ["--load-test-results=r.json", "--model-name=m"];
        let err = parse(&base).into_config().unwrap_err();
        assert!(err.contains("MLFLOW_TRACKING_URI is not set"), "{err}");
        let mut dry = base.to_vec();
        dry.push("--dry-run");
        assert!(parse(&dry).into_config().is_err());
        let mut off = base.to_vec();
        off.push("--no-mlflow");
        assert!(matches!(
            parse(&off).into_config().unwrap().mlflow,
            MlflowMode::Off
        ));
        let mut file = base.to_vec();
        file.push("--baseline-file=prev.json");
        assert!(matches!(
            parse(&file).into_config().unwrap().mlflow,
            MlflowMode::Off
        ));
    }

    #[test]
    fn the_output_dir_is_found_without_a_full_parse() {
        let args = |v: &[&str]| {
            std::iter::once("perf-decision")
                .chain(v.iter().copied())
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        let env = Some(std::ffi::OsString::from("/env-out"));
        assert_eq!(
            lenient_output_dir(
                args(&["--min-success-rate=99", "--output-dir=/a"]),
                env.clone()
            ),
            PathBuf::from("/a")
        );
        assert_eq!(
            lenient_output_dir(args(&["--output-dir", "/b", "--bogus"]), env.clone()),
            PathBuf::from("/b")
        );
        assert_eq!(
            lenient_output_dir(args(&["--bogus"]), env.clone()),
            PathBuf::from("/env-out")
        );
        assert_eq!(
            lenient_output_dir(args(&["--", "--output-dir=/c"]), Some("".into())),
            PathBuf::from(".")
        );
    }

    #[test]
    fn a_foreign_experiment_variable_is_named_not_followed() {
        let cli = parse(&[
            "--load-test-results=r.json",
            "--model-name=m",
            "--no-mlflow",
        ]);
        assert_eq!(cli.experiment_name, "vllm-lora-performance");
        let w = cli.env_warnings(Some("training-runs"));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("MLFLOW_EXPERIMENT_NAME=training-runs is ignored: perf-decision uses experiment `vllm-lora-performance`"),
            "{w:?}"
        );
        assert!(cli.env_warnings(Some("vllm-lora-performance")).is_empty());
        assert!(cli.env_warnings(Some("")).is_empty());
        assert!(cli.env_warnings(None).is_empty());
    }

    #[test]
    fn bad_values_are_refused() {
        let base = [
            "--load-test-results=r.json",
            "--model-name=m",
            "--no-mlflow",
        ];
        let mut v = base.to_vec();
        v.push("--candidate-version=latest");
        assert!(
            parse(&v)
                .into_config()
                .unwrap_err()
                .contains("not a model version")
        );
        let mut v = base.to_vec();
        v.push("--max-throughput-drop=1");
        assert!(
            parse(&v)
                .into_config()
                .unwrap_err()
                .contains("max_throughput_drop")
        );
        let mut v = vec!["--load-test-results=r.json", "--model-name=m"];
        v.push("--tracking-uri=file:///tmp/mlruns");
        assert!(
            parse(&v)
                .into_config()
                .unwrap_err()
                .contains("not supported")
        );
    }
}
