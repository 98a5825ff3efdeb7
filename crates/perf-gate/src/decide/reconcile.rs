//! Before claiming anything (under the lease), a run repairs what an earlier one left behind: a
//! run killed between its claims, a claim that landed after its run had undone the others, a
//! partition. An alias stands only if the version it points at says the alias's verdict in its
//! `perf_decision` tag and names, in `perf_run_id`, a FINISHED run tagged with that verdict; an
//! alias that does not agree with its run is deleted. If both `perf-passed` and `perf-failed`
//! stand (a claim interrupted between setting one and deleting the other), the one whose run
//! is older is deleted. So whatever state a run died in, the next one leaves the model with at
//! most one of the two aliases, agreeing with its run and tags.

use tracing::warn;

use super::error::DecideError;
use super::{ALIAS_FAILED, ALIAS_PASSED};
use crate::mlflow::MlflowClient;

/// An alias that agrees with its version and run, with that run's start time.
struct Standing {
    alias: &'static str,
    version: String,
    started_ms: i64,
}

/// Checks `alias` on `version`: `Ok(Some)` when it agrees, `Ok(None)` when it does not (with
/// why in `why`).
async fn check(
    client: &MlflowClient,
    model: &str,
    alias: &'static str,
    verdict: &str,
    version: &str,
    why: &mut String,
) -> Result<Option<Standing>, DecideError> {
    let read = |what: String| DecideError::mlflow(what);
    let mv = match client.get_model_version(model, version).await {
        Ok(mv) => mv,
        Err(e) if e.is_not_found() => {
            *why = format!("version {version} does not exist");
            return Ok(None);
        }
        Err(e) => {
            return Err(read(format!("cannot read version {version} of `{model}`"))(
                e,
            ));
        }
    };
    if mv.tag("perf_decision") != Some(verdict) {
        *why = format!(
            "version {version}'s perf_decision tag says {:?}",
            mv.tag("perf_decision")
        );
        return Ok(None);
    }
    let Some(run_id) = mv.tag("perf_run_id") else {
        *why = format!("version {version} names no perf_run_id");
        return Ok(None);
    };
    let run = match client.get_run(run_id).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => {
            *why = format!("its run {run_id} does not exist");
            return Ok(None);
        }
        Err(e) => return Err(read(format!("cannot read run {run_id}"))(e)),
    };
    if run.info.status != "FINISHED" || run.data.tag("perf_decision") != Some(verdict) {
        *why = format!(
            "its run {run_id} is {} and tagged {:?}",
            run.info.status,
            run.data.tag("perf_decision")
        );
        return Ok(None);
    }
    Ok(Some(Standing {
        alias,
        version: version.to_string(),
        started_ms: run.info.start_time.unwrap_or_default(),
    }))
}

/// Repairs the model's `perf-passed` / `perf-failed` aliases (see the module docs); returns one
/// line per repair.
pub(crate) async fn reconcile(
    client: &MlflowClient,
    model: &str,
) -> Result<Vec<String>, DecideError> {
    let m = client
        .get_registered_model(model)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot read the aliases of `{model}`"
        )))?;
    let mut repairs = Vec::new();
    let mut standing = Vec::new();
    for (alias, verdict) in [(ALIAS_PASSED, "passed"), (ALIAS_FAILED, "failed")] {
        let Some(version) = m.alias(alias) else {
            continue;
        };
        let mut why = String::new();
        match check(client, model, alias, verdict, version, &mut why).await? {
            Some(s) => standing.push(s),
            None => {
                delete(client, model, alias).await?;
                repairs.push(format!(
                    "alias `{alias}` on version {version} did not agree with its decision ({why}): deleted"
                ));
            }
        }
    }
    if let [a, b] = standing.as_slice() {
        let older = if a.started_ms <= b.started_ms { a } else { b };
        delete(client, model, older.alias).await?;
        repairs.push(format!(
            "both aliases stood: `{}` on version {}, from the older run, deleted",
            older.alias, older.version
        ));
    }
    for r in &repairs {
        warn!(model, "repaired: {r}");
    }
    Ok(repairs)
}

async fn delete(client: &MlflowClient, model: &str, alias: &str) -> Result<(), DecideError> {
    client
        .delete_alias(model, alias)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot delete alias `{alias}` of `{model}`"
        )))
}
