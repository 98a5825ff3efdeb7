//! The claims of a recorded decision, written only once its run is FINISHED with all its
//! evidence: the candidate version's tags (`perf_decision`, `perf_run_id`), the alias moved
//! onto it (`perf-passed` or `perf-failed`, the other one deleted from the model; an `invalid`
//! decision claims no alias), and last the run's own `perf_decision` tag. Until that tag lands
//! the run is no baseline (the search asks for it), so a run whose claims did not all land can
//! never become one, whatever fails when.
//!
//! Before each write the state it changes is remembered (where each alias pointed, each tag's
//! old value). If a write fails, or a signal arrives meanwhile, every write attempted so far is
//! undone in reverse order, best effort and bounded in time: an alias is put back on its old
//! version (or deleted if it had none), a tag restored (or deleted). A write that failed is
//! undone too, since a timeout or a 5xx may come after the server acted; only a 4xx answer
//! proves it changed nothing. What cannot be undone is logged with the state to restore by hand.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::document::PerfDecision;
use super::error::DecideError;
use super::record::aliases;
use crate::mlflow::types::ModelVersion;
use crate::mlflow::{MlflowClient, MlflowError};

/// Longest time spent undoing claims (the run must still be marked FAILED after, within a
/// Kubernetes grace period).
const UNDO_BUDGET: Duration = Duration::from_secs(10);

/// A write to undo: put a name back to its previous value (`None`: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// Alias `alias` pointed at `previous`.
    Alias {
        alias: &'static str,
        previous: Option<String>,
    },
    /// Version tag `key` held `previous`.
    VersionTag {
        key: &'static str,
        previous: Option<String>,
    },
}

/// The claims that landed, so they can still be undone when what follows them fails (the
/// output files: they and MLflow must never disagree).
#[derive(Debug)]
pub(crate) struct Claims {
    undo: Vec<Undo>,
}

impl Claims {
    /// Undoes every claim, newest first (best effort, bounded; see the module docs).
    pub(crate) async fn revert(self, client: &MlflowClient, model: &str, version: &str) {
        if !self.undo.is_empty() {
            revert(client, model, version, self.undo).await;
        }
    }
}

/// Tags the candidate version, moves the aliases onto it and tags the run, undoing every
/// claim made if any write fails or `cancel` fires (then [`DecideError::Aborted`]).
pub(crate) async fn publish(
    client: &MlflowClient,
    model: &str,
    version: &ModelVersion,
    run_id: &str,
    doc: &PerfDecision,
    cancel: &CancellationToken,
) -> Result<Claims, DecideError> {
    let mut undo = Vec::new();
    let applied = tokio::select! {
        r = apply(client, model, version, run_id, doc, &mut undo) => r,
        () = cancel.cancelled() => Err(DecideError::Aborted),
    };
    match applied {
        Ok(()) => Ok(Claims { undo }),
        Err(e) => {
            if !undo.is_empty() {
                revert(client, model, &version.version, undo).await;
            }
            Err(e)
        }
    }
}

async fn apply(
    client: &MlflowClient,
    model: &str,
    version: &ModelVersion,
    run_id: &str,
    doc: &PerfDecision,
    undo: &mut Vec<Undo>,
) -> Result<(), DecideError> {
    let v = &version.version;
    for (key, value) in [
        ("perf_decision", doc.decision.as_str()),
        ("perf_run_id", run_id),
    ] {
        let previous = version.tag(key).map(str::to_string);
        claim(
            undo,
            Undo::VersionTag { key, previous },
            client.set_model_version_tag(model, v, key, value),
            || format!("cannot tag version {v} of `{model}`"),
        )
        .await?;
    }
    if let Some((set, removed)) = aliases(doc.decision) {
        // where both aliases point now, to put them back if a later write fails
        let current = client
            .get_registered_model(model)
            .await
            .map_err(DecideError::mlflow(format!(
                "cannot read the aliases of `{model}`"
            )))?;
        let before = |alias: &str| current.alias(alias).map(str::to_string);
        let (set_before, removed_before) = (before(set), before(removed));
        claim(
            undo,
            Undo::Alias {
                alias: set,
                previous: set_before,
            },
            client.set_alias(model, set, v),
            || format!("cannot set alias `{set}` on version {v} of `{model}`"),
        )
        .await?;
        claim(
            undo,
            Undo::Alias {
                alias: removed,
                previous: removed_before,
            },
            client.delete_alias(model, removed),
            || format!("cannot delete alias `{removed}` of `{model}`"),
        )
        .await?;
        info!(model = %model, version = %v, alias = set, removed, "aliases moved");
    } else {
        info!(model = %model, version = %v, "invalid measurement: no alias claimed");
    }
    // last: the run's own verdict tag, which makes a passed run a baseline
    client
        .set_tag(run_id, "perf_decision", doc.decision.as_str())
        .await
        .map_err(DecideError::mlflow("cannot tag the run with the decision"))?;
    Ok(())
}

/// Runs one write, remembering first how to undo it. A write the server refused with a 4xx
/// changed nothing and is forgotten again; any other failure (5xx, timeout, broken connection,
/// a signal while waiting) may come after the server acted, so it stays to be undone.
async fn claim(
    undo: &mut Vec<Undo>,
    inverse: Undo,
    write: impl Future<Output = Result<(), MlflowError>>,
    context: impl FnOnce() -> String,
) -> Result<(), DecideError> {
    undo.push(inverse);
    write.await.map_err(|e| {
        if matches!(e.status(), Some(400..=499)) {
            undo.pop();
        }
        DecideError::Mlflow {
            context: context(),
            source: e,
        }
    })
}

/// Undoes `undo` in reverse order within [`UNDO_BUDGET`]; logs each outcome.
async fn revert(client: &MlflowClient, model: &str, version: &str, undo: Vec<Undo>) {
    let steps = undo.clone();
    let work = async {
        for step in undo.iter().rev() {
            let (what, result) = match step {
                Undo::Alias {
                    alias,
                    previous: Some(prev),
                } => (
                    format!("alias `{alias}` back on version {prev}"),
                    client.set_alias(model, alias, prev).await,
                ),
                Undo::Alias {
                    alias,
                    previous: None,
                } => (
                    format!("alias `{alias}` deleted (it did not exist)"),
                    client.delete_alias(model, alias).await,
                ),
                Undo::VersionTag {
                    key,
                    previous: Some(prev),
                } => (
                    format!("tag {key}={prev} back on version {version}"),
                    client
                        .set_model_version_tag(model, version, key, prev)
                        .await,
                ),
                Undo::VersionTag {
                    key,
                    previous: None,
                } => (
                    format!("tag {key} deleted from version {version} (it did not exist)"),
                    client.delete_model_version_tag(model, version, key).await,
                ),
            };
            match result {
                Ok(()) => warn!(model, "undone: {what}"),
                Err(e) => warn!(model, error = %e, "cannot undo: restore by hand: {what}"),
            }
        }
    };
    if tokio::time::timeout(UNDO_BUDGET, work).await.is_err() {
        warn!(
            model,
            ?steps,
            "timed out undoing the claims; check the aliases and version tags of `{model}` by hand"
        );
    }
}
