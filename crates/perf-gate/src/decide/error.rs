//! Why `perf-decision` could not make or record a decision, and the exit code of each reason.

use crate::decision::ThresholdError;
use crate::mlflow::MlflowError;
use crate::results::ResultsError;
use crate::step::{Exit, OutputError, StepFailure, UnusableOutputDir};

use super::document::BaselineFileError;

/// The step could not make or record a decision.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The results file is missing, empty, malformed or of another schema version.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The results are not `completed`.
    #[error("{path} has status `{status}`{}; only `completed` results can be judged", .error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NotCompleted {
        /// Results file.
        path: String,
        /// Status found.
        status: &'static str,
        /// The results' own error line.
        error: Option<String>,
    },
    /// A threshold is out of range.
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    /// The baseline file is unusable.
    #[error(transparent)]
    BaselineFile(#[from] BaselineFileError),
    /// Another input problem (names, flags).
    #[error("{0}")]
    Input(String),
    /// The decision document could not be serialised (an invariant: it always can).
    #[error("cannot serialise the decision document")]
    Document(#[source] serde_json::Error),
    /// An MLflow call failed, or MLflow does not know the model, version or alias.
    #[error("{context}")]
    Mlflow {
        /// What the step was doing.
        context: String,
        /// The client's error.
        #[source]
        source: MlflowError,
    },
    /// The output directory cannot be used (found before the work began).
    #[error(transparent)]
    OutputDir(#[from] UnusableOutputDir),
    /// An output file could not be written after the work.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Another decision for the same model held the lease for longer than `--lock-timeout`.
    #[error(
        "another perf-decision for this model held the lease `{name}` ({holder}) for longer than {waited:?} (--lock-timeout); rerun once it is done"
    )]
    Lease {
        /// The lease (a registered model).
        name: String,
        /// Its holder's token.
        holder: String,
        /// How long this run waited.
        waited: std::time::Duration,
    },
    /// The lease ran (nearly) out before the claims began: MLflow answered too slowly.
    #[error(
        "the lease `{name}` expires too soon to claim safely (MLflow answered too slowly); nothing was claimed, rerun"
    )]
    LeaseExpiring {
        /// The lease (a registered model).
        name: String,
    },
    /// SIGINT/SIGTERM arrived before the decision was recorded.
    #[error("aborted by a signal before the decision was recorded")]
    Aborted,
}

impl StepFailure for DecideError {
    fn exit(&self) -> Exit {
        match self {
            DecideError::Mlflow {
                source: MlflowError::Config(_),
                ..
            } => Exit::BadInput,
            DecideError::Mlflow { .. }
            | DecideError::Lease { .. }
            | DecideError::LeaseExpiring { .. }
            | DecideError::Output(_)
            | DecideError::Document(_) => Exit::Dependency,
            DecideError::Aborted => Exit::Aborted,
            DecideError::Results(_)
            | DecideError::NotCompleted { .. }
            | DecideError::Thresholds(_)
            | DecideError::BaselineFile(_)
            | DecideError::OutputDir(_)
            | DecideError::Input(_) => Exit::BadInput,
        }
    }
}

impl DecideError {
    /// A mapper for `map_err`: an MLflow error with what the step was doing.
    pub(crate) fn mlflow(context: impl Into<String>) -> impl FnOnce(MlflowError) -> DecideError {
        let context = context.into();
        move |source| DecideError::Mlflow { context, source }
    }
}
