//! Baselines that are measurements rather than passed decisions: the baseline adapter measured
//! in the same run (`load-test --baseline-adapter`), and an earlier results file
//! (`--baseline-results`). Each comes with its per-request samples, so the statistics can
//! compare it. Also: a stored baseline's samples, read back from its run's results artifact.

use std::path::Path;

use super::document::{BaselineRecord, BaselineSource};
use super::error::DecideError;
use crate::decision::load_settings::candidate_settings;
use crate::decision::statistics::apply::ArmSamples;
use crate::decision::{MetricsSource, candidate_metrics};
use crate::mlflow::MlflowClient;
use crate::results::{LoadTestResults, RESULTS_FILE};

/// The same-run baseline arm of `results`, when `load-test --baseline-adapter` measured one:
/// its client figures under the decision's metric names (it has no server figures of its
/// own: vLLM labels them by base model), the candidate's load settings (the same load), and
/// its samples.
pub(crate) fn same_run(
    results: &LoadTestResults,
    model_name: &str,
) -> Option<(BaselineRecord, Result<ArmSamples, String>)> {
    let arm = results.baseline_arm.as_ref()?;
    let as_results = LoadTestResults {
        client: Some(arm.client.clone()),
        server: None,
        baseline_arm: None,
        ..results.clone()
    };
    let mut metrics = candidate_metrics(&as_results);
    if let Some(rate) = combined_throughput(results) {
        metrics.insert(
            crate::decision::metrics::names::CLIENT_PREFIX.to_string()
                + crate::decision::metrics::names::THROUGHPUT,
            crate::results::Measured::value(rate),
        );
    }
    let record = BaselineRecord {
        source: BaselineSource::SameRun,
        run_id: None,
        file: None,
        adapter: Some(arm.adapter.name.clone()),
        samples: None,
        median_of: Vec::new(),
        run_to_run_sd_log: Default::default(),
        model_name: Some(model_name.to_string()),
        version: None,
        metrics,
        load_settings: candidate_settings(results, MetricsSource::Client),
        comparable: None,
        comparability: Vec::new(),
        skipped: Vec::new(),
    };
    Some((record, ArmSamples::same_run_baseline(results)?))
}

/// In a same-server A/B run, the two arms' combined rate of successful requests: each arm
/// carries half the requests, so one arm's rate is no deployment's throughput (the floor of
/// check 3 would fail a healthy candidate), and the arms' rates differ only by their
/// successes. Checks 3 reads this for both sides. `None` outside A/B or without a duration.
pub(crate) fn combined_throughput(results: &LoadTestResults) -> Option<f64> {
    let arm = results.baseline_arm.as_ref()?;
    let c = results.client.as_ref()?;
    let d = results.timing.as_ref()?.load_duration_s;
    (d > 0.0).then(|| (c.successful_requests + arm.client.successful_requests) as f64 / d)
}

/// An earlier `load_test_results.json` as the baseline (`--baseline-results`): it must have
/// completed; its figures, load settings and samples are the baseline's.
pub(crate) fn from_results_file(
    path: &Path,
    source: MetricsSource,
) -> Result<(BaselineRecord, Result<ArmSamples, String>, LoadTestResults), DecideError> {
    let shown = path.display().to_string();
    let results = LoadTestResults::read(path)
        .map_err(|e| DecideError::Input(format!("--baseline-results: {e}")))?;
    if results.status != crate::results::RunStatus::Completed {
        return Err(DecideError::Input(format!(
            "--baseline-results: {shown} records a load test that did not complete (status `{}`): it cannot be a baseline",
            results.status.as_str()
        )));
    }
    if let Some(v) = results.validity.as_ref().filter(|v| !v.valid) {
        return Err(DecideError::Input(format!(
            "--baseline-results: {shown} records a measurement that cannot be trusted ({}): it cannot be a baseline",
            v.reasons.join("; ")
        )));
    }
    let record = BaselineRecord {
        source: BaselineSource::Results,
        run_id: None,
        file: Some(shown),
        adapter: Some(results.config.adapter_name.clone()),
        samples: None,
        median_of: Vec::new(),
        run_to_run_sd_log: Default::default(),
        model_name: None,
        version: None,
        metrics: candidate_metrics(&results),
        load_settings: candidate_settings(&results, source),
        comparable: None,
        comparability: Vec::new(),
        skipped: Vec::new(),
    };
    let samples = ArmSamples::candidate(&results);
    Ok((record, samples, results))
}

/// A stored baseline run's `load_test_results.json` artifact, read back (its samples feed the
/// statistics, its figures the report). Every failure is a reason (the seed's checks then
/// compare alone), never an error.
pub(crate) async fn stored_results(
    client: &MlflowClient,
    run_id: &str,
) -> Result<LoadTestResults, String> {
    let run = client
        .get_run(run_id)
        .await
        .map_err(|e| format!("cannot read run {run_id}: {e}"))?;
    let bytes = client
        .download_artifact(&run.info, RESULTS_FILE)
        .await
        .map_err(|e| format!("cannot read {RESULTS_FILE} of run {run_id}: {e}"))?;
    let shown = format!("{RESULTS_FILE} of run {run_id}");
    LoadTestResults::from_slice(&bytes, &shown).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::results::{BaselineArm, Validity};

    #[test]
    fn an_untrustworthy_results_file_is_no_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = fixtures::results();
        r.validity = Some(Validity {
            valid: false,
            reasons: vec!["other traffic on the server".into()],
        });
        let p = dir.path().join("base.json");
        crate::fsio::write_json_atomic(&p, &r).unwrap();
        let e = from_results_file(&p, MetricsSource::Server).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be trusted (other traffic on the server)"),
            "{e}"
        );
    }

    #[test]
    fn an_ab_run_judges_the_arms_combined_throughput_on_both_sides() {
        let mut r = fixtures::results();
        assert_eq!(combined_throughput(&r), None, "not an A/B run");
        let arm = BaselineArm {
            adapter: r.adapter.clone().unwrap(),
            client: r.client.clone().unwrap(),
        };
        r.baseline_arm = Some(arm);
        // 100 successes per arm over the fixture's 20 s load
        let rate = combined_throughput(&r).unwrap();
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
        let (record, _) = same_run(&r, "m").unwrap();
        assert_eq!(record.metrics["client_throughput_rps"].get(), Some(rate));
        assert_eq!(record.source, BaselineSource::SameRun);
    }
}
