//! `load-test merge`: the command line of the shards' merge (see
//! [`perf_gate::loadtest::merge`]).

use std::path::PathBuf;

use clap::Parser;
use clap::builder::BoolishValueParser;
use perf_gate::loadtest::merge::MergeConfig;
use perf_gate::prom::{DEFAULT_GPU_SELECTOR, DEFAULT_JOB, DEFAULT_QUERY_TIMEOUT, PromSettings};
use perf_gate::results::WindowMode;
use perf_gate::transport::{self, TlsSettings};
use perf_gate_cli::logging::LogFormat;
use perf_gate_cli::seconds::{AutoSeconds, Seconds, positive_seconds};

use crate::cli::WindowArg;

/// Combines the shards of a scaled-out load (`load-test --shard-index I --shard-count N`, each
/// in its own output directory) into one `load_test_results.json`: client figures from every
/// request's exact sample and the merged histograms (as one process sending every request
/// would report them), server figures from Prometheus over the union window, queried once.
#[derive(Debug, Parser)]
#[command(name = "load-test merge", version, args_override_self = true, after_help = perf_gate::step::EXIT_CODES_HELP)]
pub struct MergeCli {
    /// The shards' output directories (every shard of the load, in any order).
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub shard_dirs: Vec<PathBuf>,

    /// Where the merged files go (created if missing).
    #[arg(long, env = "OUTPUT_DIR", default_value = ".")]
    pub output_dir: PathBuf,

    /// Prometheus base URL for the server's figures over the union window; without it there
    /// are none.
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// `job` label of vLLM's series in Prometheus.
    #[arg(long, env = "PROMETHEUS_JOB", default_value = DEFAULT_JOB)]
    pub prometheus_job: String,

    /// Prometheus's scrape interval of the vLLM job (`auto`: read from Prometheus).
    #[arg(long, env = "SCRAPE_INTERVAL", default_value_t = AutoSeconds(None))]
    pub scrape_interval: AutoSeconds,

    /// end-anchored: the longest wait for the confirmed sample after the union window (`auto`:
    /// two scrape intervals + 5 s). seed: the fixed wait after it (`auto`: 20s, the seed's).
    #[arg(long, env = "SCRAPE_WAIT", default_value_t = AutoSeconds(None))]
    pub scrape_wait: AutoSeconds,

    /// How the PromQL window is chosen. end-anchored: on confirmed scrape samples, each
    /// target's last quiet sample before the union's start (newer than every shard's start
    /// and warm-up: give --start-at at least one scrape interval after the shards start, two
    /// after their warm-up) and the first scrape after its end that has counted every request.
    /// seed: the seed's rule, duration rounded up to the minute, after --scrape-wait.
    #[arg(long, env = "WINDOW_MODE", value_enum, default_value_t = WindowArg::EndAnchored)]
    pub window_mode: WindowArg,

    /// Label selector of the DCGM GPU series.
    #[arg(long, env = "GPU_SELECTOR", default_value = DEFAULT_GPU_SELECTOR)]
    pub gpu_selector: String,

    /// Timeout of each Prometheus query (more than 0).
    #[arg(long, env = "PROMETHEUS_TIMEOUT", default_value_t = Seconds(DEFAULT_QUERY_TIMEOUT), value_parser = positive_seconds)]
    pub prometheus_timeout: Seconds,

    /// PEM file of the CA to trust for an https Prometheus, besides the system's roots.
    #[arg(long, env = "PROMETHEUS_CA_CERT", value_name = "PEM")]
    pub prometheus_ca_cert: Option<PathBuf>,

    /// Accept any TLS certificate from Prometheus (test setups only; logged as a warning).
    #[arg(long, env = "PROMETHEUS_INSECURE_TLS", value_parser = BoolishValueParser::new())]
    pub prometheus_insecure_tls: bool,

    /// Log format: text for people, json for Kubernetes.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl TryFrom<MergeCli> for MergeConfig {
    type Error = anyhow::Error;

    fn try_from(cli: MergeCli) -> anyhow::Result<Self> {
        let prometheus_tls = TlsSettings::load(
            &transport::PROMETHEUS,
            cli.prometheus_ca_cert.as_deref(),
            cli.prometheus_insecure_tls,
        )?;
        Ok(MergeConfig {
            shard_dirs: cli.shard_dirs,
            output_dir: cli.output_dir,
            prometheus_url: cli.prometheus_url,
            prom: PromSettings {
                job: cli.prometheus_job,
                scrape_interval: cli.scrape_interval.into(),
                scrape_wait: cli.scrape_wait.into(),
                window_mode: match cli.window_mode {
                    WindowArg::EndAnchored => WindowMode::EndAnchored,
                    WindowArg::Seed => WindowMode::Seed,
                },
                gpu_selector: cli.gpu_selector,
                query_timeout: cli.prometheus_timeout.into(),
            },
            prometheus_tls,
        })
    }
}
