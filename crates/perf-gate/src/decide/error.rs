//! Why `perf-decision` could not make or record a decision, and the exit code of each reason.

use crate::decision::ThresholdError;
use crate::mlflow::MlflowError;
use crate::results::ResultsError;
use crate::step::{Exit, OutputError, StepFailure};

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
    /// An output file could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
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
            DecideError::Mlflow { .. } | DecideError::Output(_) | DecideError::Document(_) => {
                Exit::Dependency
            }
            DecideError::Aborted => Exit::Aborted,
            DecideError::Results(_)
            | DecideError::NotCompleted { .. }
            | DecideError::Thresholds(_)
            | DecideError::BaselineFile(_)
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
