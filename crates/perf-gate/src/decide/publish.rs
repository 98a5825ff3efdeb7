//! The claims of a recorded decision, written only once its run is FINISHED with all its
//! evidence and while this run holds the model's lease ([`super::lease`]), after the aliases
//! were reconciled ([`super::reconcile`]): the candidate version's tags (`perf_decision`,
//! `perf_run_id`), the other alias deleted from the model then the alias set on the version
//! (`perf-passed` or `perf-failed`; in that order, so a reader may see neither for a moment but
//! never both; an `invalid` decision claims no alias), and last the run's own
//! `perf_decision` tag. Until that tag lands the run is no baseline (the search asks for it),
//! so a run whose claims did not all land can never become one, whatever fails when.
//!
//! Before each write the state it changes is remembered (where each alias pointed, each tag's
//! old value) with what the write puts there. If a write fails, or a signal arrives meanwhile,
//! the writes are undone in reverse order, best effort and bounded in time, but only where the
//! state is still as this run left it: an alias still on this version is put back on its old
//! one (or deleted), an alias this run deleted and still absent is restored, a tag still holding
//! this run's value is restored (or deleted). A write that failed without a 4xx answer (a
//! timeout, a reset, a signal) may still land: the state is first re-read until it holds still.
//! A write that lands even later is repaired by the next run's reconciliation. What cannot be
//! undone is logged with the state to restore by hand.

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
/// After an uncertain failure, how long the state must hold still before it is undone, and the
/// longest wait for that.
const SETTLE_STILL: Duration = Duration::from_secs(5);
const SETTLE_MAX: Duration = Duration::from_secs(15);

/// A write to undo: what the name held before, and what this run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// Alias `alias` pointed at `previous`; this run made it `ours` (`None`: deleted it).
    Alias {
        alias: &'static str,
        previous: Option<String>,
        ours: Option<String>,
    },
    /// Version tag `key` held `previous`; this run wrote `ours`.
    VersionTag {
        key: &'static str,
        previous: Option<String>,
        ours: String,
    },
}

/// The claims that landed, so they can still be undone when what follows them fails (the
/// output files: they and MLflow must never disagree).
#[derive(Debug)]
pub(crate) struct Claims {
    undo: Vec<Undo>,
}

impl Claims {
    /// Undoes every claim still as this run left it, newest first (see the module docs).
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
    let mut uncertain = false;
    let applied = tokio::select! {
        r = apply(client, model, version, run_id, doc, &mut undo, &mut uncertain) => r,
        () = cancel.cancelled() => {
            // the write in flight may still land
            uncertain = true;
            Err(DecideError::Aborted)
        }
    };
    match applied {
        Ok(()) => Ok(Claims { undo }),
        Err(e) => {
            if !undo.is_empty() {
                if uncertain {
                    settle(client, model, &version.version).await;
                }
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
    uncertain: &mut bool,
) -> Result<(), DecideError> {
    let v = &version.version;
    for (key, value) in [
        ("perf_decision", doc.decision.as_str()),
        ("perf_run_id", run_id),
    ] {
        let previous = version.tag(key).map(str::to_string);
        claim(
            undo,
            uncertain,
            Undo::VersionTag {
                key,
                previous,
                ours: value.to_string(),
            },
            client.set_model_version_tag(model, v, key, value),
            || format!("cannot tag version {v} of `{model}`"),
        )
        .await?;
    }
    if let Some((set, removed)) = aliases(doc.decision) {
        // where both aliases point now (after reconciliation), to put them back if need be
        let current = client
            .get_registered_model(model)
            .await
            .map_err(DecideError::mlflow(format!(
                "cannot read the aliases of `{model}`"
            )))?;
        let before = |alias: &str| current.alias(alias).map(str::to_string);
        let (set_before, removed_before) = (before(set), before(removed));
        // the other alias first: a reader may see neither for a moment, never both
        claim(
            undo,
            uncertain,
            Undo::Alias {
                alias: removed,
                previous: removed_before,
                ours: None,
            },
            client.delete_alias(model, removed),
            || format!("cannot delete alias `{removed}` of `{model}`"),
        )
        .await?;
        claim(
            undo,
            uncertain,
            Undo::Alias {
                alias: set,
                previous: set_before,
                ours: Some(v.clone()),
            },
            client.set_alias(model, set, v),
            || format!("cannot set alias `{set}` on version {v} of `{model}`"),
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
        .map_err(|e| {
            *uncertain |= !matches!(e.status(), Some(400..=499));
            DecideError::mlflow("cannot tag the run with the decision")(e)
        })?;
    Ok(())
}

/// Runs one write, remembering first how to undo it. A write the server refused with a 4xx
/// changed nothing and is forgotten again; any other failure (5xx, timeout, broken connection)
/// may come after the server acted, so it stays to be undone, and the state is uncertain.
async fn claim(
    undo: &mut Vec<Undo>,
    uncertain: &mut bool,
    inverse: Undo,
    write: impl Future<Output = Result<(), MlflowError>>,
    context: impl FnOnce() -> String,
) -> Result<(), DecideError> {
    undo.push(inverse);
    write.await.map_err(|e| {
        if matches!(e.status(), Some(400..=499)) {
            undo.pop();
        } else {
            *uncertain = true;
        }
        DecideError::Mlflow {
            context: context(),
            source: e,
        }
    })
}

/// What the claims can have changed: both aliases and the version's two tags.
async fn snapshot(
    client: &MlflowClient,
    model: &str,
    version: &str,
) -> Option<(Vec<(String, String)>, Vec<(String, String)>)> {
    let m = client.get_registered_model(model).await.ok()?;
    let v = client.get_model_version(model, version).await.ok()?;
    let mut aliases: Vec<_> = m
        .aliases
        .into_iter()
        .map(|a| (a.alias, a.version))
        .collect();
    aliases.sort();
    let mut tags: Vec<_> = v.tags.into_iter().map(|t| (t.key, t.value)).collect();
    tags.sort();
    Some((aliases, tags))
}

/// After an uncertain failure, waits until the state has held still for [`SETTLE_STILL`] (at
/// most [`SETTLE_MAX`]): a write in flight lands before the undo reads what to undo.
async fn settle(client: &MlflowClient, model: &str, version: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    let mut last = snapshot(client, model, version).await;
    let mut still_since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = snapshot(client, model, version).await;
        if now != last {
            last = now;
            still_since = tokio::time::Instant::now();
        } else if still_since.elapsed() >= SETTLE_STILL {
            return;
        }
    }
    warn!(
        model,
        "the claims' state kept changing: undoing what is ours now"
    );
}

/// Undoes `undo` in reverse order within [`UNDO_BUDGET`], each step only if the state is still
/// as this run left it; logs each outcome.
async fn revert(client: &MlflowClient, model: &str, version: &str, undo: Vec<Undo>) {
    let steps = undo.clone();
    let work = async {
        for step in undo.iter().rev() {
            let (what, result) = match step {
                // a write that changed nothing (deleting an absent alias) needs no undo
                Undo::Alias { previous, ours, .. } if previous == ours => continue,
                Undo::VersionTag { previous, ours, .. } if previous.as_deref() == Some(ours) => {
                    continue;
                }
                Undo::Alias {
                    alias,
                    previous,
                    ours,
                } => {
                    let now = match client.get_registered_model(model).await {
                        Ok(m) => m.alias(alias).map(str::to_string),
                        Err(e) => {
                            warn!(model, error = %e, "cannot read alias `{alias}`: not undone; restore by hand: {previous:?}");
                            continue;
                        }
                    };
                    if now != *ours {
                        info!(
                            model,
                            "alias `{alias}` is now {now:?}, not as this run left it ({ours:?}): left alone"
                        );
                        continue;
                    }
                    match previous {
                        Some(prev) => (
                            format!("alias `{alias}` back on version {prev}"),
                            client.set_alias(model, alias, prev).await,
                        ),
                        None => (
                            format!("alias `{alias}` deleted (it did not exist)"),
                            client.delete_alias(model, alias).await,
                        ),
                    }
                }
                Undo::VersionTag {
                    key,
                    previous,
                    ours,
                } => {
                    let now = match client.get_model_version(model, version).await {
                        Ok(v) => v.tag(key).map(str::to_string),
                        Err(e) => {
                            warn!(model, error = %e, "cannot read tag {key} of version {version}: not undone; restore by hand: {previous:?}");
                            continue;
                        }
                    };
                    if now.as_deref() != Some(ours.as_str()) {
                        info!(
                            model,
                            "tag {key} of version {version} is now {now:?}, not this run's {ours:?}: left alone"
                        );
                        continue;
                    }
                    match previous {
                        Some(prev) => (
                            format!("tag {key}={prev} back on version {version}"),
                            client
                                .set_model_version_tag(model, version, key, prev)
                                .await,
                        ),
                        None => (
                            format!("tag {key} deleted from version {version} (it did not exist)"),
                            client.delete_model_version_tag(model, version, key).await,
                        ),
                    }
                }
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
            "timed out undoing the claims; the next run repairs what is left, or check the aliases and version tags of `{model}` by hand"
        );
    }
}
