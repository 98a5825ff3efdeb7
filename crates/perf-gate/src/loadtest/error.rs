//! Why `load-test` stopped before completing, and the exit code of each reason.

use crate::client::ClientError;
use crate::prom::PromError;
use crate::runner::RunError;
use crate::step::{Exit, OutputError, StepFailure, UnusableOutputDir};
use crate::workload::WorkloadError;

/// A failure that stops `load-test`. Whatever it is, the results file records it (status
/// `failed` or `aborted`, a one-line `error`).
#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    /// The eval file is missing, empty or malformed.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// vLLM: a bad URL or API key, or unreachable, unhealthy, adapter not served.
    #[error(transparent)]
    Vllm(#[from] ClientError),
    /// The baseline adapter (`--baseline-adapter`) cannot be used: not served, or vLLM failed
    /// while it was checked.
    #[error("the baseline adapter (--baseline-adapter)")]
    BaselineAdapter(#[source] ClientError),
    /// A member of a mix (`--target`, `--lora-mix`) cannot be used: its server is unreachable
    /// or unhealthy, or its model is not served.
    #[error("mix member {member:?} ({flag})")]
    MixMember {
        /// The member's name.
        member: String,
        /// The flag that named it.
        flag: &'static str,
        /// What failed.
        #[source]
        source: ClientError,
    },
    /// Prometheus or vLLM's `/metrics`: a bad setting, or unreachable, erroring.
    #[error(transparent)]
    Metrics(Box<PromError>),
    /// vLLM's `/metrics` could not be scraped before or after the load.
    #[error("cannot scrape vLLM /metrics {when} the load{hint}")]
    Scrape {
        /// `before` or `after`.
        when: &'static str,
        /// What to do about it.
        hint: &'static str,
        /// The scraper's error.
        #[source]
        source: Box<PromError>,
    },
    /// The load runner itself failed (not a request: those are records).
    #[error(transparent)]
    Runner(#[from] RunError),
    /// SIGINT/SIGTERM before the load completed.
    #[error("stopped by a signal {phase}")]
    Aborted {
        /// When: `before the load started`, `during the warm-up`, ...
        phase: &'static str,
    },
    /// The output directory cannot be used (found before the work began).
    #[error(transparent)]
    OutputDir(#[from] UnusableOutputDir),
    /// The request records (`requests.jsonl`) could not be written in full: the figures are
    /// in the results, but the evidence behind them is not (a full disk).
    #[error("cannot write {file}: {why}")]
    Records {
        /// The file.
        file: String,
        /// What failed.
        why: String,
    },
    /// `load-test merge`: the shards cannot be merged (one missing, of another load, not
    /// completed, unreadable).
    #[error("cannot merge the shards: {0}")]
    Shards(String),
    /// A mix that cannot be run as given (a member whose API cannot send the prompts).
    #[error("{0}")]
    Mix(String),
    /// An output file could not be written after the work (a full disk).
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl From<PromError> for LoadTestError {
    fn from(e: PromError) -> Self {
        LoadTestError::Metrics(Box::new(e))
    }
}

impl StepFailure for LoadTestError {
    fn exit(&self) -> Exit {
        match self {
            LoadTestError::Workload(_)
            | LoadTestError::OutputDir(_)
            | LoadTestError::Shards(_)
            | LoadTestError::Mix(_) => Exit::BadInput,
            LoadTestError::Vllm(ClientError::BadUrl(_) | ClientError::BadApiKey)
            | LoadTestError::BaselineAdapter(ClientError::BadUrl(_) | ClientError::BadApiKey)
            | LoadTestError::MixMember {
                source: ClientError::BadUrl(_) | ClientError::BadApiKey,
                ..
            } => Exit::BadInput,
            LoadTestError::Vllm(_)
            | LoadTestError::BaselineAdapter(_)
            | LoadTestError::MixMember { .. } => Exit::Dependency,
            LoadTestError::Metrics(e) if e.is_bad_input() => Exit::BadInput,
            LoadTestError::Metrics(_) | LoadTestError::Scrape { .. } => Exit::Dependency,
            LoadTestError::Runner(RunError::Schedule(_)) => Exit::BadInput,
            LoadTestError::Runner(_) => Exit::Dependency,
            LoadTestError::Aborted { .. } => Exit::Aborted,
            LoadTestError::Output(_) | LoadTestError::Records { .. } => Exit::Dependency,
        }
    }
}
