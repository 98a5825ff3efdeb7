//! `perf-decision override`: a platform team's audited escape hatch. It sets a version's
//! decision to `passed` or `failed` by hand, moves the alias as a decision would, and records
//! who, why and when, so the override is never silent.
//!
//! Order of MLflow calls: the version (it must be READY), the experiment (get or create), then
//! under the model's lease ([`super::lease`]) and after repairing what earlier runs left
//! (module `reconcile`): the aliases as they stand (for the summary), an **override run** in
//! the experiment (params `model_name`, `candidate_version`; tags `perf_override=true`,
//! `perf_override_reason`, `perf_override_actor`, `perf_override_at` (RFC 3339),
//! `perf_override_previous` (the version's `perf_decision` before, or `none`)) marked FINISHED;
//! the version's tags (`perf_decision`, `perf_run_id` naming the override run, as a decision
//! sets them, and `perf_override=true`, `perf_override_run_id`, `perf_override_reason`,
//! `perf_override_actor`, `perf_override_at`); the other alias deleted, the alias set; last the
//! run's `perf_decision` tag. The alias then agrees with its run (a FINISHED run tagged with the
//! alias's verdict), so the next decision's reconciliation keeps it.
//!
//! An override measures nothing, so its run is **never a baseline**: the baseline choice skips
//! runs tagged `perf_override=true` (module `baseline`), even as a fallback.
//!
//! It shows afterwards: in the run and version tags (the report reads them), and in the next
//! decisions' logs: [`override_warning`] says when the version an alias points at holds its
//! decision by an override (its `perf_override_run_id` is its `perf_run_id`: a later measured
//! decision of the same version overwrites `perf_run_id`, and the warning stops).
//!
//! If a write fails (or a signal arrives) the override run is marked FAILED (KILLED) and the
//! error says so; an alias that landed then disagrees with its run, and the next decision's
//! reconciliation deletes it. Rerunning the override repairs the rest.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::error::DecideError;
use super::lease::Lease;
use super::record::{aliases, fail_run};
use super::resolve::{self, CandidateRef};
use crate::decision::Verdict;
use crate::mlflow::Batch;
use crate::mlflow::types::{KeyValue, ModelVersion, RunStatus};
use crate::mlflow::{MlflowClient, MlflowConfig};

/// Run and version tag marking an override (`true`).
pub const OVERRIDE_TAG: &str = "perf_override";
/// Version tag: the override run that set the version's decision.
pub const OVERRIDE_RUN_TAG: &str = "perf_override_run_id";
/// Run and version tag: why.
pub const OVERRIDE_REASON_TAG: &str = "perf_override_reason";
/// Run and version tag: who.
pub const OVERRIDE_ACTOR_TAG: &str = "perf_override_actor";
/// Run and version tag: when (RFC 3339, UTC).
pub const OVERRIDE_AT_TAG: &str = "perf_override_at";
/// Run tag: the version's `perf_decision` before the override (`none` when it had none).
pub const OVERRIDE_PREVIOUS_TAG: &str = "perf_override_previous";
/// Longest reason kept (MLflow truncates long tag values silently; a reason is a sentence).
pub const MAX_REASON_LEN: usize = 2000;

/// What to override.
#[derive(Debug, Clone)]
pub struct OverrideConfig {
    /// The MLflow server.
    pub mlflow: MlflowConfig,
    /// Registered model name.
    pub model_name: String,
    /// The version whose decision is set.
    pub version: String,
    /// `Passed` or `Failed` (an override never says `invalid`).
    pub decision: Verdict,
    /// Why (required, recorded as tags).
    pub reason: String,
    /// Who.
    pub actor: String,
    /// The experiment holding the performance runs.
    pub experiment_name: String,
    /// How long to wait for the model's lease.
    pub lock_wait: Duration,
}

impl OverrideConfig {
    /// Checks what needs no server: a model name, a version number, a passed or failed
    /// decision, a reason (not blank, at most [`MAX_REASON_LEN`] characters), an actor.
    pub fn validate(&self) -> Result<(), DecideError> {
        let refuse = |m: String| Err(DecideError::Input(m));
        if self.model_name.trim().is_empty() {
            return refuse("--model-name must not be empty".into());
        }
        let v = &self.version;
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_digit()) {
            return refuse(format!("--version {v:?} is not a model version number"));
        }
        if self.decision == Verdict::Invalid {
            return refuse("--decision must be passed or failed".into());
        }
        if self.reason.trim().is_empty() {
            return refuse(
                "--reason must not be empty: say why the decision is overridden (it is recorded)"
                    .into(),
            );
        }
        if self.reason.chars().count() > MAX_REASON_LEN {
            return refuse(format!(
                "--reason is longer than {MAX_REASON_LEN} characters: keep it to a sentence and link to the details"
            ));
        }
        if self.actor.trim().is_empty() {
            return refuse("--actor must not be empty".into());
        }
        Ok(())
    }
}

/// What an override changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideOutcome {
    /// Registered model name.
    pub model_name: String,
    /// The version overridden.
    pub version: String,
    /// The decision it now holds.
    pub decision: Verdict,
    /// The version's `perf_decision` tag before (`None`: it had none).
    pub previous_decision: Option<String>,
    /// The alias set on the version.
    pub alias_set: String,
    /// The version that alias pointed at before (`None`: it did not exist).
    pub alias_set_was_on: Option<String>,
    /// The alias deleted from the model.
    pub alias_removed: String,
    /// The version it pointed at (`None`: it did not exist).
    pub alias_removed_was_on: Option<String>,
    /// The override run.
    pub run_id: String,
    /// Who.
    pub actor: String,
    /// When (RFC 3339).
    pub at: String,
}

impl OverrideOutcome {
    /// One line: what moved from where to where, and the run recording it.
    pub fn summary(&self) -> String {
        let set_was = match &self.alias_set_was_on {
            Some(v) if *v == self.version => "already there".to_string(),
            Some(v) => format!("was on version {v}"),
            None => "was unset".to_string(),
        };
        let removed = match &self.alias_removed_was_on {
            Some(v) => format!("{} removed from version {v}", self.alias_removed),
            None => format!("{} was unset", self.alias_removed),
        };
        format!(
            "override: `{}` version {} {} -> {} (by {} at {}); alias {} -> version {} ({set_was}); {removed}; run {}",
            self.model_name,
            self.version,
            self.previous_decision.as_deref().unwrap_or("undecided"),
            self.decision.as_str(),
            self.actor,
            self.at,
            self.alias_set,
            self.version,
            self.run_id,
        )
    }
}

/// The warning a decision logs when `version` (the one a perf alias points at) holds its
/// decision by an override rather than by a measurement; `None` otherwise (also when a later
/// measured decision of the same version replaced the override's `perf_run_id`).
pub fn override_warning(version: &ModelVersion) -> Option<String> {
    if version.tag(OVERRIDE_TAG) != Some("true") {
        return None;
    }
    let run = version.tag(OVERRIDE_RUN_TAG)?;
    if version.tag("perf_run_id") != Some(run) {
        return None;
    }
    let or_unknown = |k: &str| version.tag(k).unwrap_or("unknown").to_string();
    Some(format!(
        "version {} of `{}` holds perf_decision={} by an override, not a measurement (by {} at {}: {}; run {run})",
        version.version,
        version.name,
        or_unknown("perf_decision"),
        or_unknown(OVERRIDE_ACTOR_TAG),
        or_unknown(OVERRIDE_AT_TAG),
        or_unknown(OVERRIDE_REASON_TAG),
    ))
}

/// [`override_warning`] for the versions the model's `perf-passed` and `perf-failed` aliases
/// point at now. Best effort: a version that cannot be read gives no warning.
pub async fn standing_overrides(client: &MlflowClient, model: &str) -> Vec<String> {
    let Ok(m) = client.get_registered_model(model).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for alias in [super::ALIAS_PASSED, super::ALIAS_FAILED] {
        let Some(v) = m.alias(alias) else { continue };
        if let Ok(mv) = client.get_model_version(model, v).await
            && let Some(w) = override_warning(&mv)
        {
            out.push(format!("alias `{alias}`: {w}"));
        }
    }
    out
}

/// Overrides the decision of `cfg.version` (see the module docs).
pub async fn override_decision(
    cfg: &OverrideConfig,
    cancel: &CancellationToken,
) -> Result<OverrideOutcome, DecideError> {
    cfg.validate()?;
    let client = MlflowClient::new(&cfg.mlflow)
        .map_err(DecideError::mlflow("cannot set up the MLflow client"))?;
    let model = cfg.model_name.as_str();
    let candidate = CandidateRef {
        model_name: cfg.model_name.clone(),
        version: Some(cfg.version.clone()),
        alias: String::new(),
    };
    let (version, _) = super::cancellable(cancel, resolve::candidate(&client, &candidate)).await?;
    let (experiment, _) = super::cancellable(cancel, async {
        client
            .ensure_experiment(&cfg.experiment_name)
            .await
            .map_err(DecideError::mlflow(format!(
                "cannot get experiment `{}`",
                cfg.experiment_name
            )))
    })
    .await?;
    let about = format!("override of version {} by {}", cfg.version, cfg.actor);
    let lease = Lease::acquire(&client, model, &about, cfg.lock_wait, cancel).await?;
    let mut run_id = None;
    let done = tokio::select! {
        r = claim(&client, cfg, &version, &experiment.experiment_id, &mut run_id) => r,
        () = cancel.cancelled() => Err(DecideError::Aborted),
    };
    lease.release(&client).await;
    match done {
        Ok(outcome) => {
            info!(model, version = %cfg.version, run_id = %outcome.run_id, "override recorded");
            Ok(outcome)
        }
        Err(e) => {
            if let Some(run_id) = run_id {
                fail_run(&client, &run_id, matches!(e, DecideError::Aborted)).await;
            }
            Err(e)
        }
    }
}

/// The writes, under the lease: reconcile, the run, the version's tags, the aliases, the run's
/// verdict tag. `run_id` is set as soon as the run exists (to mark it FAILED on error).
async fn claim(
    client: &MlflowClient,
    cfg: &OverrideConfig,
    version: &ModelVersion,
    experiment_id: &str,
    run_id: &mut Option<String>,
) -> Result<OverrideOutcome, DecideError> {
    let model = cfg.model_name.as_str();
    let v = version.version.as_str();
    let (set, removed) =
        aliases(cfg.decision).expect("invariant: an override is passed or failed (validated)");
    let decision = cfg.decision.as_str();
    super::reconcile::reconcile(client, model).await?;
    let current = client
        .get_registered_model(model)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot read the aliases of `{model}`"
        )))?;
    let previous = version.tag("perf_decision").map(str::to_string);
    let now = chrono::Utc::now();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let reason = cfg.reason.trim();
    let audit = [
        (OVERRIDE_REASON_TAG, reason),
        (OVERRIDE_ACTOR_TAG, cfg.actor.as_str()),
        (OVERRIDE_AT_TAG, at.as_str()),
    ];
    let mut tags = vec![
        KeyValue::new("mlflow.source.name", "perf-decision override"),
        KeyValue::new(OVERRIDE_TAG, "true"),
        KeyValue::new(OVERRIDE_PREVIOUS_TAG, previous.as_deref().unwrap_or("none")),
    ];
    tags.extend(audit.iter().map(|(k, v)| KeyValue::new(*k, *v)));
    let name = format!("override-{model}-v{v}");
    let run = client
        .create_run(experiment_id, &name, now.timestamp_millis(), &tags)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot create the override run in experiment `{}`",
            cfg.experiment_name
        )))?;
    let id = run.info.run_id.clone();
    *run_id = Some(id.clone());
    let params = Batch {
        params: vec![
            KeyValue::new("model_name", model),
            KeyValue::new("candidate_version", v),
        ],
        ..Batch::default()
    };
    client
        .log_batch(&id, params)
        .await
        .map_err(DecideError::mlflow("cannot log the override run's params"))?;
    client
        .update_run(
            &id,
            RunStatus::Finished,
            Some(chrono::Utc::now().timestamp_millis()),
        )
        .await
        .map_err(DecideError::mlflow("cannot mark the override run FINISHED"))?;
    let version_tags = [
        ("perf_decision", decision),
        ("perf_run_id", id.as_str()),
        (OVERRIDE_TAG, "true"),
        (OVERRIDE_RUN_TAG, id.as_str()),
    ];
    for (key, value) in version_tags.iter().chain(&audit) {
        client
            .set_model_version_tag(model, v, key, value)
            .await
            .map_err(DecideError::mlflow(format!(
                "cannot tag version {v} of `{model}` with {key}"
            )))?;
    }
    // the other alias first, as a decision does: a reader may see neither, never both
    client
        .delete_alias(model, removed)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot delete alias `{removed}` of `{model}`"
        )))?;
    client
        .set_alias(model, set, v)
        .await
        .map_err(DecideError::mlflow(format!(
            "cannot set alias `{set}` on version {v} of `{model}`"
        )))?;
    // last, as a decision does: the run's verdict tag, which makes the alias agree with it
    client
        .set_tag(&id, "perf_decision", decision)
        .await
        .map_err(DecideError::mlflow(
            "cannot tag the override run with its decision",
        ))?;
    Ok(OverrideOutcome {
        model_name: model.to_string(),
        version: v.to_string(),
        decision: cfg.decision,
        previous_decision: previous,
        alias_set: set.to_string(),
        alias_set_was_on: current.alias(set).map(str::to_string),
        alias_removed: removed.to_string(),
        alias_removed_was_on: current.alias(removed).map(str::to_string),
        run_id: id,
        actor: cfg.actor.clone(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(tags: &[(&str, &str)]) -> ModelVersion {
        let tags: Vec<_> = tags
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        serde_json::from_value(serde_json::json!({"name": "m", "version": "7", "tags": tags}))
            .expect("a model version")
    }

    fn config() -> OverrideConfig {
        OverrideConfig {
            mlflow: MlflowConfig::new("http://127.0.0.1:1").expect("a config"),
            model_name: "m".into(),
            version: "7".into(),
            decision: Verdict::Passed,
            reason: "known noisy node".into(),
            actor: "alice".into(),
            experiment_name: "e".into(),
            lock_wait: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_standing_override_is_warned_about() {
        let mv = version(&[
            ("perf_decision", "passed"),
            ("perf_run_id", "r9"),
            (OVERRIDE_TAG, "true"),
            (OVERRIDE_RUN_TAG, "r9"),
            (OVERRIDE_ACTOR_TAG, "alice"),
            (OVERRIDE_AT_TAG, "2026-12-05T12:00:00Z"),
            (OVERRIDE_REASON_TAG, "known noisy node"),
        ]);
        assert_eq!(
            override_warning(&mv).as_deref(),
            Some(
                "version 7 of `m` holds perf_decision=passed by an override, not a measurement (by alice at 2026-12-05T12:00:00Z: known noisy node; run r9)"
            )
        );
    }

    #[test]
    fn a_measured_decision_after_the_override_ends_the_warning() {
        // a later decision of the same version rewrote perf_run_id; the override tags remain
        let mv = version(&[
            ("perf_decision", "passed"),
            ("perf_run_id", "r10"),
            (OVERRIDE_TAG, "true"),
            (OVERRIDE_RUN_TAG, "r9"),
        ]);
        assert_eq!(override_warning(&mv), None);
        assert_eq!(
            override_warning(&version(&[("perf_decision", "passed")])),
            None
        );
    }

    #[test]
    fn blank_reasons_and_other_bad_input_are_refused() {
        assert!(config().validate().is_ok());
        let refused = |c: OverrideConfig| c.validate().unwrap_err().to_string();
        let mut c = config();
        c.reason = "  ".into();
        assert_eq!(
            refused(c),
            "--reason must not be empty: say why the decision is overridden (it is recorded)"
        );
        let mut c = config();
        c.reason = "x".repeat(MAX_REASON_LEN + 1);
        assert!(refused(c).contains("longer than 2000"));
        let mut c = config();
        c.decision = Verdict::Invalid;
        assert_eq!(refused(c), "--decision must be passed or failed");
        let mut c = config();
        c.version = "latest".into();
        assert!(refused(c).contains("not a model version number"));
    }

    #[test]
    fn the_summary_says_what_moved() {
        let o = OverrideOutcome {
            model_name: "m".into(),
            version: "7".into(),
            decision: Verdict::Passed,
            previous_decision: Some("failed".into()),
            alias_set: "perf-passed".into(),
            alias_set_was_on: Some("6".into()),
            alias_removed: "perf-failed".into(),
            alias_removed_was_on: Some("7".into()),
            run_id: "r9".into(),
            actor: "alice".into(),
            at: "2026-12-05T12:00:00Z".into(),
        };
        assert_eq!(
            o.summary(),
            "override: `m` version 7 failed -> passed (by alice at 2026-12-05T12:00:00Z); alias perf-passed -> version 7 (was on version 6); perf-failed removed from version 7; run r9"
        );
    }
}
