//! Command line of `perf-decision`: the seed's flag names, each with an env var, converted once
//! into the library's [`DecideConfig`] (`TryFrom`).

use std::path::PathBuf;

use anyhow::bail;
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use perf_gate::decide::{
    CandidateRef, DEFAULT_CANDIDATE_ALIAS, DEFAULT_EXPERIMENT, DEFAULT_LOCK_TIMEOUT, DecideConfig,
    MlflowMode,
};
use perf_gate::decision::statistics::verdict::{DecisionMethod, OnInconclusive};
use perf_gate::decision::{MetricsSource, OnInvalid, Thresholds};
use perf_gate::mlflow::{Auth, DEFAULT_REQUEST_TIMEOUT, MlflowConfig, RetryPolicy};
use perf_gate::transport::{self, CaCertificates};
use perf_gate_cli::logging::LogFormat;
use perf_gate_cli::parse::{fraction, non_negative, positive_seconds_f64};
use perf_gate_cli::seconds::{Seconds, positive_seconds};

/// The seed's thresholds: the flags' defaults.
const SEED: Thresholds = Thresholds::SEED;

mod override_args;

pub use override_args::{DecisionArg, OverrideArgs};

/// `--on-invalid` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnInvalidArg {
    /// The decision is `invalid`: no alias, never a baseline, exit 5 (rerun the gate).
    Invalid,
    /// The seed's behaviour: the candidate is `failed` (a failed `valid_measurement` check).
    Fail,
}

/// `--decision` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DecisionMethodArg {
    /// The seed's four checks decide; the statistics can only add a failure (a metric whose
    /// whole interval lies beyond its tolerance) and report `inconclusive`.
    Seed,
    /// The confidence intervals decide the comparison instead of the point bounds (the
    /// absolute floors still apply). Recorded as a departure.
    Statistical,
}

/// `--on-inconclusive` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnInconclusiveArg {
    /// An inconclusive metric fails the candidate (fail closed).
    Fail,
    /// Only a metric shown beyond its tolerance fails.
    Pass,
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
    "perf_status.txt (passed | failed | invalid | error).\n\n",
    "Invalid is not failed: a measurement that cannot be trusted (window edges not confirmed\n",
    "samples, the server's count outside [client successes, requests that reached it], a\n",
    "restart, a server figure missing, the measured adapter not this version) makes the\n",
    "decision `invalid`: no alias, version and run tagged perf_decision=invalid, exit 5 (rerun\n",
    "the whole gate). --on-invalid fail makes it a failed candidate instead, as the seed did.\n\n",
    "Warnings (logged at WARN, listed in perf_decision.json `warnings`, counted in the MLflow tag\n",
    "perf_warnings) never change the verdict: a baseline that ran another load (eval digest,\n",
    "concurrency, max_tokens, ...), a saturated load generator (server figures judged),\n",
    "load-test's own warnings, client and server request counts >10 % apart, client and server\n",
    "P95 E2E in different histogram\n",
    "buckets, fewer than 20 successful requests. --require-comparable-baseline makes the first a\n",
    "failing fifth check.\n\n",
    "MLflow: MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_TOKEN (bearer) or\n",
    "MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD (basic); an https server's CA in\n",
    "MLFLOW_TRACKING_SERVER_CERT_PATH. Without a tracking URI the step refuses to run unless\n",
    "--no-mlflow, --baseline-file or --baseline-results is given.\n\n",
    "Statistics (when both runs carry per-request samples: results of schema version 3, a\n",
    "stored baseline's results artifact, --baseline-results, or a same-run baseline from\n",
    "load-test --baseline-adapter): block-bootstrap intervals of the candidate/baseline ratio\n",
    "of P95 TTFT, P95 E2E and throughput, and Newcombe's interval of the success-rate\n",
    "difference, 95 % over the four (Bonferroni). Each metric is passed (interval within the\n",
    "tolerance), failed (wholly beyond) or inconclusive (straddles). By default a failed one\n",
    "adds a failing check and an inconclusive one is reported (perf_decision.json `verdict`,\n",
    "MLflow tag perf_verdict) without failing; --decision statistical lets the intervals\n",
    "decide. A run whose verdict is inconclusive is never a baseline.\n\n",
);

/// Judge a load test against MLflow's baseline and record the decision.
#[derive(Debug, Parser)]
#[command(
    name = "perf-decision",
    version,
    about = ABOUT,
    after_help = format!("{AFTER_HELP}{}", perf_gate::step::EXIT_CODES_HELP),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Without a command: judge a load test (the flags below).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// YAML file of flags (keys: long flag names, e.g. `max-p95-latency: 8.0`): command line >
    /// env var > file > default. Secrets (tokens, passwords) are refused there; not for
    /// `override`. The effective values go to `<output-dir>/config.json`.
    #[arg(long, env = "PERF_DECISION_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The load-test step's results file (load_test_results.json).
    #[arg(
        long,
        env = "LOAD_TEST_RESULTS",
        value_name = "PATH",
        required_unless_present = "resolve_candidate"
    )]
    pub load_test_results: Option<PathBuf>,

    /// Registered model name in MLflow.
    #[arg(long, env = "MODEL_NAME", required = true)]
    pub model_name: Option<String>,

    /// Candidate model version; default: the version the --candidate-alias points at.
    #[arg(long, env = "CANDIDATE_VERSION")]
    pub candidate_version: Option<String>,

    /// A file holding the candidate version (as --resolve-candidate writes it), for pipelines
    /// that resolved it before the load; --candidate-version wins over it.
    #[arg(long, env = "CANDIDATE_VERSION_FILE", value_name = "PATH")]
    pub candidate_version_file: Option<PathBuf>,

    /// Alias naming the candidate when --candidate-version is not given (set by the eval gate).
    #[arg(long, env = "CANDIDATE_ALIAS", default_value = DEFAULT_CANDIDATE_ALIAS)]
    pub candidate_alias: String,

    /// MLflow experiment holding the performance runs (created if missing; a run without a
    /// baseline there is decided in absolute mode, with a warning). Deliberately not read from
    /// MLFLOW_EXPERIMENT_NAME, which pipelines often set for other steps.
    #[arg(
        long,
        env = "PERF_EXPERIMENT_NAME",
        default_value = DEFAULT_EXPERIMENT
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
    #[arg(long, env = "METRICS_SOURCE", value_enum, default_value_t = SourceArg::Server)]
    pub metrics_source: SourceArg,

    /// Check 1: P95 E2E latency must be below this (seconds, or 500ms / 2m; more than 0).
    #[arg(long, env = "MAX_P95_LATENCY", default_value_t = SEED.max_p95_latency_s, value_parser = positive_seconds_f64)]
    pub max_p95_latency: f64,

    /// Check 2: P95 time to first token must be below this (seconds; more than 0).
    #[arg(long, env = "MAX_P95_TTFT", default_value_t = SEED.max_p95_ttft_s, value_parser = positive_seconds_f64)]
    pub max_p95_ttft: f64,

    /// Check 3: throughput must be above this (requests per second).
    #[arg(long, env = "MIN_THROUGHPUT", default_value_t = SEED.min_throughput_rps, value_parser = non_negative)]
    pub min_throughput: f64,

    /// Check 4: client success rate must be at least this (fraction).
    #[arg(long, env = "MIN_SUCCESS_RATE", default_value_t = SEED.min_success_rate, value_parser = fraction)]
    pub min_success_rate: f64,

    /// Check 1, comparative: allowed P95 latency increase over the baseline (fraction).
    #[arg(long, env = "MAX_LATENCY_REGRESSION", default_value_t = SEED.max_latency_regression, value_parser = non_negative)]
    pub max_latency_regression: f64,

    /// Check 2, comparative: allowed P95 TTFT increase over the baseline (fraction).
    #[arg(long, env = "MAX_TTFT_REGRESSION", default_value_t = SEED.max_ttft_regression, value_parser = non_negative)]
    pub max_ttft_regression: f64,

    /// Check 3, comparative: allowed throughput drop below the baseline (fraction < 1).
    #[arg(long, env = "MAX_THROUGHPUT_DROP", default_value_t = SEED.max_throughput_drop, value_parser = fraction)]
    pub max_throughput_drop: f64,

    /// Check 4, comparative: allowed success-rate drop below the baseline (0 = the seed's >= baseline).
    #[arg(long, env = "MAX_SUCCESS_RATE_DROP", default_value_t = SEED.max_success_rate_drop, value_parser = fraction)]
    pub max_success_rate_drop: f64,

    /// Directory for perf_decision.json and perf_status.txt (created if missing).
    #[arg(long, env = "OUTPUT_DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// A previous perf_decision.json (a passed one) to compare with instead of searching MLflow.
    #[arg(long, env = "BASELINE_FILE", value_name = "PATH")]
    pub baseline_file: Option<PathBuf>,

    /// An earlier load_test_results.json to compare with instead of searching MLflow: its
    /// figures and per-request samples are the baseline (a measurement, not a passed
    /// decision; recorded as a departure).
    #[arg(
        long,
        env = "BASELINE_RESULTS",
        value_name = "PATH",
        conflicts_with = "baseline_file"
    )]
    pub baseline_results: Option<PathBuf>,

    /// Compare with the passed run of the version holding this alias (e.g. `live`: what serves
    /// production) instead of the newest passed run. Fails when the alias is missing or its
    /// version has no passed performance run.
    #[arg(long, env = "BASELINE_ALIAS", value_name = "ALIAS", conflicts_with_all = ["baseline_file", "baseline_results"])]
    pub baseline_alias: Option<String>,

    /// In a same-server A/B run (load-test --baseline-adapter), compare the candidate with the
    /// stored baseline as well (--baseline-results, --baseline-file, or MLflow's newest passed
    /// run): checks `stored_baseline`, besides the comparison with the same-run arm.
    #[arg(long, env = "ALSO_STORED_BASELINE", value_parser = BoolishValueParser::new())]
    pub also_stored_baseline: bool,

    /// Compare with the per-metric median of the N newest comparable passed runs instead of
    /// the newest alone (1, the seed's): one noisy baseline run no longer decides.
    #[arg(long, env = "BASELINE_RUNS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20), value_name = "N")]
    pub baseline_runs: u32,

    /// Fail the decision (a check `drift`) when a metric checks 1-3 read sits beyond its
    /// relative tolerance from the passed runs of a month ago (the median of the 3 newest runs
    /// at least --drift-lookback-days old), though each step passed. Off: a warning.
    #[arg(long, env = "FAIL_ON_DRIFT", value_parser = BoolishValueParser::new())]
    pub fail_on_drift: bool,

    /// How old the drift check's reference runs are, in days.
    #[arg(long, env = "DRIFT_LOOKBACK_DAYS", default_value_t = 28, value_parser = clap::value_parser!(u32).range(1..=3650), value_name = "DAYS")]
    pub drift_lookback_days: u32,

    /// How the comparison with the baseline is decided: `seed` (the four checks; a metric
    /// whose whole confidence interval lies beyond its tolerance adds a failure, and
    /// `inconclusive` is reported, not failed) or `statistical` (the intervals decide instead
    /// of the point bounds; see --on-inconclusive).
    #[arg(long = "decision", env = "PERF_DECISION_METHOD", value_enum, default_value_t = DecisionMethodArg::Seed)]
    pub decision_method: DecisionMethodArg,

    /// With --decision statistical: what a metric whose interval straddles its tolerance
    /// counts as.
    #[arg(long, env = "ON_INCONCLUSIVE", value_enum, default_value_t = OnInconclusiveArg::Fail)]
    pub on_inconclusive: OnInconclusiveArg,

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

    /// Add a check `slo_attainment`: the share of requests meeting every objective of
    /// `load-test --slo` (goodput) must be at least this fraction (0 < F <= 1). Results measured
    /// without `--slo` fail it.
    #[arg(long, env = "MIN_SLO_ATTAINMENT", value_parser = fraction, value_name = "F")]
    pub min_slo_attainment: Option<f64>,

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

    /// MLflow server and credentials.
    #[command(flatten)]
    pub mlflow: MlflowArgs,

    /// What a measurement that cannot be trusted (unconfirmed scrapes, other traffic on the
    /// server, a restart, missing server figures, the measured adapter not this version, ...)
    /// makes of the decision: `invalid` (no alias, never a baseline, exit 5: rerun the gate) or
    /// `fail` (the candidate fails, as the seed would).
    #[arg(long, env = "ON_INVALID", value_enum, default_value_t = OnInvalidArg::Invalid)]
    pub on_invalid: OnInvalidArg,

    /// Only resolve the candidate version (--candidate-version, else the one --candidate-alias
    /// points at now), check it is READY, write it to `<output-dir>/candidate_version.txt` and
    /// exit. Run it before load-test and pass the version to the decision, so both steps judge
    /// the same version whatever moves the alias during the load.
    #[arg(long, env = "PERF_RESOLVE_CANDIDATE", value_parser = BoolishValueParser::new())]
    pub resolve_candidate: bool,

    /// Exit with the code a decision with this status has (passed 0, failed 1, invalid 5,
    /// anything else 3), printing it; the status is a word (`invalid`) or a perf_status.txt to
    /// read. For pipelines that continue past a step and must still end with its verdict.
    /// Takes no other flag.
    #[arg(long, value_name = "STATUS|PATH", exclusive = true)]
    pub exit_for_status: Option<String>,

    /// How long to wait while another perf-decision for the same model holds the model's lease
    /// (the registered model `<model>.perf-gate-lock`, held only while the aliases are moved; a
    /// lease whose holder died expires after 5 minutes and is taken over). Exit 3 when it runs out.
    #[arg(long, env = "PERF_LOCK_TIMEOUT", default_value_t = Seconds(DEFAULT_LOCK_TIMEOUT), value_parser = positive_seconds)]
    pub lock_timeout: Seconds,

    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
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

    /// What names the candidate: the model, the version or the alias.
    pub fn candidate_ref(&self) -> CandidateRef {
        CandidateRef {
            model_name: self.model_name.clone().unwrap_or_default(),
            version: self.candidate_version.clone(),
            alias: self.candidate_alias.clone(),
        }
    }

    /// Chooses the MLflow mode. Without a tracking URI the step refuses to run unless
    /// `--no-mlflow` or `--baseline-file` says so, so a missing secret never becomes a pass.
    pub fn mlflow_mode(&self) -> anyhow::Result<MlflowMode> {
        if self.no_mlflow {
            if self.mlflow.uri().is_some() {
                tracing::info!("--no-mlflow: MLFLOW_TRACKING_URI is ignored");
            }
            return Ok(MlflowMode::Off);
        }
        let Some(config) = self.mlflow.config()? else {
            if self.baseline_file.is_some() || self.baseline_results.is_some() {
                tracing::info!(
                    "no MLFLOW_TRACKING_URI: deciding against the baseline file; nothing is recorded in MLflow"
                );
                return Ok(MlflowMode::Off);
            }
            bail!(
                "MLFLOW_TRACKING_URI is not set: set it (or --tracking-uri), or pass --no-mlflow, --baseline-file or --baseline-results to decide from files only"
            );
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
}

/// The subcommands (without one, the step judges a load test).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set a version's decision by hand (audited): move the alias, record who, why and when.
    #[command(
        long_about = override_args::LONG_ABOUT,
        after_help = override_args::AFTER_HELP
    )]
    Override(OverrideArgs),
}

/// The MLflow server and its credentials (the step and `override` take the same flags).
#[derive(Debug, Args)]
pub struct MlflowArgs {
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

    /// Accept any TLS certificate from the tracking server (test setups only; logged as a
    /// warning).
    #[arg(
        long,
        visible_alias = "mlflow-insecure-tls",
        env = "MLFLOW_TRACKING_INSECURE_TLS",
        value_parser = BoolishValueParser::new()
    )]
    pub insecure_tls: bool,

    /// PEM file of the CA (or bundle, or self-signed certificate) to trust for an https
    /// tracking server, besides the system's roots (MLflow's own variable).
    #[arg(long, env = "MLFLOW_TRACKING_SERVER_CERT_PATH", value_name = "PEM")]
    pub mlflow_ca_cert: Option<PathBuf>,

    /// Timeout of one MLflow HTTP attempt (seconds, or 30s / 2m).
    #[arg(long, env = "MLFLOW_HTTP_REQUEST_TIMEOUT", default_value_t = Seconds(DEFAULT_REQUEST_TIMEOUT), value_parser = positive_seconds)]
    pub mlflow_timeout: Seconds,

    /// Retries of an MLflow call after a connection error, 408, 429 or 5xx (backoff 0.5 s doubling to 8 s).
    #[arg(long, env = "MLFLOW_HTTP_REQUEST_MAX_RETRIES", default_value_t = RetryPolicy::default().max_retries)]
    pub mlflow_retries: u32,
}

impl MlflowArgs {
    /// The tracking URI, when set and not blank.
    pub fn uri(&self) -> Option<&str> {
        self.tracking_uri
            .as_deref()
            .filter(|u| !u.trim().is_empty())
    }

    /// The client's configuration; `None` without a tracking URI.
    pub fn config(&self) -> anyhow::Result<Option<MlflowConfig>> {
        let Some(uri) = self.uri() else {
            return Ok(None);
        };
        // the flag's own name in the messages (the library names the env var)
        let url = perf_gate::urls::parse_base_url("--tracking-uri", uri)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(perf_gate::urls::UrlError {
                flag: "--tracking-uri",
                shown: perf_gate::urls::redact_url(uri),
                reason: "credentials do not go in the URL: use MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN".into(),
            }
            .into());
        }
        let mut config = MlflowConfig::new(uri)?;
        config.auth = Auth::from_parts(
            self.tracking_token.clone(),
            self.tracking_username.clone(),
            self.tracking_password.clone(),
        )?;
        config.insecure_tls = self.insecure_tls;
        config.ca_certs = self
            .mlflow_ca_cert
            .as_deref()
            .map(|p| CaCertificates::load(transport::MLFLOW.ca_flag, p))
            .transpose()?;
        config.request_timeout = self.mlflow_timeout.into();
        config.retry = RetryPolicy {
            max_retries: self.mlflow_retries,
            ..RetryPolicy::default()
        };
        Ok(Some(config))
    }
}

impl TryFrom<Cli> for DecideConfig {
    type Error = anyhow::Error;

    /// Validates the cross-field rules (model name, version number, thresholds, MLflow mode)
    /// and builds the step's configuration.
    fn try_from(cli: Cli) -> anyhow::Result<Self> {
        let mut cli = cli;
        let model_name = cli.model_name.take().unwrap_or_default();
        if model_name.trim().is_empty() {
            bail!("--model-name must not be empty");
        }
        if cli.candidate_version.is_none()
            && let Some(path) = &cli.candidate_version_file
        {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read --candidate-version-file {}: {e}",
                    path.display()
                )
            })?;
            cli.candidate_version = Some(text.trim().to_string());
        }
        if let Some(v) = &cli.candidate_version
            && (v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()))
        {
            bail!("--candidate-version {v:?} is not a model version number");
        }
        // flag combinations that would silently drop what was asked for
        if cli.no_mlflow
            && cli
                .baseline_alias
                .as_deref()
                .is_some_and(|a| !a.trim().is_empty())
        {
            bail!("--baseline-alias needs MLflow: it cannot be used with --no-mlflow");
        }
        if cli.no_mlflow && cli.fail_on_drift {
            bail!("--fail-on-drift needs the MLflow history: it cannot be used with --no-mlflow");
        }
        if cli.baseline_runs > 1 {
            let other = [
                (cli.baseline_file.is_some(), "--baseline-file"),
                (cli.baseline_results.is_some(), "--baseline-results"),
                (cli.baseline_alias.is_some(), "--baseline-alias"),
            ];
            if let Some((_, flag)) = other.iter().find(|(set, _)| *set) {
                bail!(
                    "--baseline-runs {} takes the newest passed runs from MLflow: it cannot be used with {flag}",
                    cli.baseline_runs
                );
            }
        }
        let thresholds = cli.thresholds();
        thresholds.validate()?;
        let mlflow = cli.mlflow_mode()?;
        let warnings = cli.env_warnings(std::env::var("MLFLOW_EXPERIMENT_NAME").ok().as_deref());
        Ok(DecideConfig {
            results_path: cli
                .load_test_results
                .ok_or_else(|| anyhow::anyhow!("--load-test-results is required"))?,
            output_dir: cli.output_dir,
            model_name,
            candidate_version: cli.candidate_version,
            candidate_alias: cli.candidate_alias,
            experiment_name: cli.experiment_name,
            eval_dataset_name: cli.eval_dataset_name,
            eval_data_version: cli.eval_data_version,
            eval_data_source: cli.eval_data_source,
            metrics_source: match cli.metrics_source {
                SourceArg::Server => MetricsSource::Server,
                SourceArg::Client => MetricsSource::Client,
            },
            thresholds,
            mlflow,
            baseline_file: cli.baseline_file,
            baseline_results: cli.baseline_results,
            baseline_alias: cli.baseline_alias.filter(|a| !a.trim().is_empty()),
            fail_on_drift: cli.fail_on_drift,
            baseline_runs: cli.baseline_runs as usize,
            also_stored_baseline: cli.also_stored_baseline,
            drift_lookback: std::time::Duration::from_secs(
                u64::from(cli.drift_lookback_days) * 86_400,
            ),
            decision_method: match cli.decision_method {
                DecisionMethodArg::Seed => DecisionMethod::Seed,
                DecisionMethodArg::Statistical => DecisionMethod::Statistical,
            },
            on_inconclusive: match cli.on_inconclusive {
                OnInconclusiveArg::Fail => OnInconclusive::Fail,
                OnInconclusiveArg::Pass => OnInconclusive::Pass,
            },
            baseline_any_model: cli.baseline_any_model,
            require_comparable_baseline: cli.require_comparable_baseline,
            min_slo_attainment: cli.min_slo_attainment,
            on_invalid: match cli.on_invalid {
                OnInvalidArg::Invalid => OnInvalid::Invalid,
                OnInvalidArg::Fail => OnInvalid::Fail,
            },
            lock_wait: cli.lock_timeout.into(),
            run_name: cli.run_name,
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
        let cfg = DecideConfig::try_from(cli).unwrap();
        assert_eq!(cfg.candidate_alias, "eval-passed");
        assert_eq!(cfg.experiment_name, "vllm-lora-performance");
        assert_eq!(cfg.metrics_source, MetricsSource::Server);
        assert!(matches!(cfg.mlflow, MlflowMode::Record(_)));
    }

    #[test]
    fn thresholds_take_seconds_or_humantime_and_default_to_the_seed() {
        let base = ["--load-test-results=r.json", "--model-name=m"];
        assert_eq!(parse(&base).thresholds(), Thresholds::SEED);
        let mut v = base.to_vec();
        v.extend(["--max-p95-latency=2m", "--max-p95-ttft=500ms"]);
        let t = parse(&v).thresholds();
        assert_eq!((t.max_p95_latency_s, t.max_p95_ttft_s), (120.0, 0.5));
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("[default: 0.99]"), "{help}");
        assert!(help.contains("[default: 30s]"), "{help}");
    }

    #[test]
    fn without_tracking_uri_only_explicit_flags_allow_running() {
        let base = ["--load-test-results=r.json", "--model-name=m"];
        let err = DecideConfig::try_from(parse(&base))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MLFLOW_TRACKING_URI is not set"), "{err}");
        let mut dry = base.to_vec();
        dry.push("--dry-run");
        assert!(DecideConfig::try_from(parse(&dry)).is_err());
        let mut off = base.to_vec();
        off.push("--no-mlflow");
        assert!(matches!(
            DecideConfig::try_from(parse(&off)).unwrap().mlflow,
            MlflowMode::Off
        ));
        let mut file = base.to_vec();
        file.push("--baseline-file=prev.json");
        assert!(matches!(
            DecideConfig::try_from(parse(&file)).unwrap().mlflow,
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
            DecideConfig::try_from(parse(&v))
                .unwrap_err()
                .to_string()
                .contains("not a model version")
        );
        let mut v = base.to_vec();
        v.push("--max-throughput-drop=1");
        assert!(
            DecideConfig::try_from(parse(&v))
                .unwrap_err()
                .to_string()
                .contains("max_throughput_drop")
        );
        let mut v = vec!["--load-test-results=r.json", "--model-name=m"];
        v.push("--tracking-uri=file:///tmp/mlruns");
        assert!(
            DecideConfig::try_from(parse(&v))
                .unwrap_err()
                .to_string()
                .contains("not http or https")
        );
    }
}
