use std::path::PathBuf;

use super::*;
use crate::decide::document::{BaselineFileError, read_baseline_file};
use crate::decision::checks::{Verdict, decide};
use crate::decision::load_settings::LoadSettings;
use crate::decision::metrics::{CheckKeys, candidate_metrics};
use crate::decision::thresholds::Thresholds;
use crate::fixtures;
use crate::results::Measured;

fn cfg() -> DecideConfig {
    DecideConfig {
        results_path: PathBuf::from("/input/load_test_results.json"),
        output_dir: PathBuf::from("/output"),
        model_name: "mistral-7b-lora".into(),
        candidate_version: Some("3".into()),
        candidate_alias: "eval-passed".into(),
        experiment_name: "vllm-lora-performance".into(),
        eval_dataset_name: None,
        eval_data_version: None,
        eval_data_source: None,
        metrics_source: MetricsSource::Server,
        thresholds: Thresholds::default(),
        mlflow: MlflowMode::Off,
        baseline_file: None,
        baseline_results: None,
        baseline_alias: None,
        baseline_runs: 1,
        also_stored_baseline: false,
        fail_on_drift: false,
        drift_lookback: std::time::Duration::from_secs(28 * 86_400),
        decision_method: Default::default(),
        on_inconclusive: Default::default(),
        baseline_any_model: false,
        require_comparable_baseline: false,
        min_slo_attainment: None,
        on_invalid: crate::decision::OnInvalid::Invalid,
        lock_wait: std::time::Duration::from_secs(600),
        run_name: None,
        warnings: vec![],
    }
}

fn doc(cfg: &DecideConfig, baseline: Option<BaselineRecord>) -> PerfDecision {
    let results = fixtures::results();
    let mut draft = Draft::new(cfg, &results, candidate_metrics(&results));
    draft.baseline = baseline;
    let eval = decide(
        &draft.metrics,
        draft.baseline_metrics(),
        &cfg.thresholds,
        &CheckKeys::for_source(cfg.metrics_source),
    );
    draft.finish(eval, None)
}

#[test]
fn baseline_filter_is_per_model_unless_any_model() {
    assert_eq!(
        baseline_filter(Some("mistral-7b-lora")).unwrap(),
        "tags.perf_decision = 'passed' and attributes.status = 'FINISHED' and params.model_name = 'mistral-7b-lora'"
    );
    assert_eq!(
        baseline_filter(None).unwrap(),
        "tags.perf_decision = 'passed' and attributes.status = 'FINISHED'"
    );
    assert!(
        baseline_filter(Some("it's"))
            .unwrap()
            .ends_with("= \"it's\"")
    );
    assert!(matches!(
        baseline_filter(Some("a'b\"c")),
        Err(DecideError::Input(_))
    ));
}

#[test]
fn dataset_names_follow_version_then_digest() {
    let results = fixtures::results();
    let mut c = cfg();
    let (d, w) = dataset_record(&c, &results);
    let d = d.unwrap();
    assert_eq!(w, None);
    assert_eq!(
        (
            d.name.as_str(),
            d.digest.as_str(),
            d.source.as_str(),
            d.context.as_str()
        ),
        (
            "eval-d9a73a27",
            "d9a73a27",
            "/data/eval.jsonl",
            "performance-test"
        )
    );
    c.eval_data_version = Some("v7".into());
    c.eval_data_source = Some("s3://bucket/eval/v7/eval.jsonl".into());
    let d = dataset_record(&c, &results).0.unwrap();
    assert_eq!(d.name, "eval-v7");
    assert_eq!(d.source, "s3://bucket/eval/v7/eval.jsonl");
    assert_eq!(source_type(&d.source), "s3");
    assert_eq!(source_type("/data/eval.jsonl"), "local");
    assert_eq!(source_type("https://x/e.jsonl"), "http");
    c.eval_dataset_name = Some("prompts-2026".into());
    assert_eq!(dataset_record(&c, &results).0.unwrap().name, "prompts-2026");

    let mut long = fixtures::results();
    long.eval_data.as_mut().unwrap().digest = "a".repeat(64);
    assert_eq!(dataset_record(&cfg(), &long).0.unwrap().digest.len(), 36);
    let mut none = fixtures::results();
    none.eval_data = None;
    let (d, w) = dataset_record(&cfg(), &none);
    assert!(d.is_none());
    assert!(w.unwrap().contains("no dataset input"));
}

#[test]
fn batch_holds_string_params_nan_for_missing_and_baseline_metrics() {
    let c = cfg();
    let absolute = doc(&c, None);
    let results = fixtures::results();
    let b = build_batch(&absolute, &results, 42);
    let p = |k: &str| {
        b.params
            .iter()
            .find(|p| p.key == k)
            .map(|p| p.value.clone())
            .unwrap_or_else(|| panic!("param {k} missing"))
    };
    assert_eq!(p("model_name"), "mistral-7b-lora");
    assert_eq!(p("candidate_adapter"), "aws-rag-qa-candidate");
    assert_eq!(p("candidate_version"), "3");
    assert_eq!(p("concurrency"), "10");
    assert_eq!(p("total_requests"), "100");
    assert_eq!(p("mode"), "absolute");
    assert_eq!(p("max_p95_latency"), "8");
    assert_eq!(p("min_success_rate"), "0.99");
    assert_eq!(p("max_throughput_drop"), "0.15");
    assert_eq!(p("baseline_run_id"), "none");
    assert_eq!(p("adapter_root"), "/adapters/aws-rag-qa-candidate");
    assert_eq!(p("eval_dataset_name"), "eval-d9a73a27");
    let keys: std::collections::HashSet<_> = b.params.iter().map(|p| &p.key).collect();
    assert_eq!(keys.len(), b.params.len(), "duplicate param keys");
    let m = |k: &str| b.metrics.iter().find(|m| m.key == k).map(|m| m.value.0);
    assert_eq!(m("p95_latency_s"), Some(4.0));
    assert_eq!(m("client_p95_latency_s"), Some(4.2));
    assert_eq!(m("throughput_rps"), Some(5.0));
    assert_eq!(m("client_throughput_rps"), Some(5.0));
    assert_eq!(m("client_success_rate"), Some(1.0));
    assert_eq!(m("kv_cache_usage"), Some(0.25));
    assert!(m("gpu_utilization").unwrap().is_nan());
    assert_eq!(m("wall_clock_duration_s"), Some(52.5));
    assert_eq!(m("baseline_p95_latency_s"), None);
    assert!(b.metrics.iter().all(|m| m.timestamp == 42));
    assert!(b.tags.iter().all(|t| t.key != "perf_decision"));

    let mut base = absolute.metrics.clone();
    base.insert("p95_latency_s".into(), Measured::value(3.9));
    let comparative = doc(
        &c,
        Some(BaselineRecord {
            source: BaselineSource::Mlflow,
            run_id: Some("abc".into()),
            file: None,
            adapter: None,
            samples: None,
            median_of: Vec::new(),
            run_to_run_sd_log: Default::default(),
            model_name: Some("mistral-7b-lora".into()),
            version: Some("2".into()),
            metrics: base,
            load_settings: LoadSettings::new(),
            comparable: None,
            comparability: vec![],
            skipped: vec![],
        }),
    );
    let b = build_batch(&comparative, &results, 42);
    let m = |k: &str| b.metrics.iter().find(|m| m.key == k).map(|m| m.value.0);
    assert_eq!(m("baseline_p95_latency_s"), Some(3.9));
    assert_eq!(m("baseline_client_success_rate"), Some(1.0));
    assert!(b.params.contains(&KeyValue::new("baseline_run_id", "abc")));
    assert!(b.params.contains(&KeyValue::new("mode", "comparative")));
}

#[test]
fn a_decision_file_reloads_as_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("perf_decision.json");
    let c = cfg();
    let passed = doc(&c, None);
    assert_eq!(passed.decision, Verdict::Passed);
    assert!(
        passed
            .departures
            .iter()
            .any(|d| d.contains("not recorded in MLflow"))
    );
    assert!(
        passed
            .departures
            .iter()
            .any(|d| d == "load-test: end-anchored windows")
    );
    crate::fsio::write_json_atomic(&path, &passed).unwrap();
    let b = read_baseline_file(&path, "mistral-7b-lora", false).unwrap();
    assert_eq!(b.source, BaselineSource::File);
    assert_eq!(b.metrics, passed.metrics);
    assert_eq!(b.version.as_deref(), Some("3"));

    // the reloaded baseline drives a comparative decision
    let again = doc(&c, Some(b));
    assert_eq!(again.mode, crate::decision::Mode::Comparative);
    assert_eq!(again.checks[0].baseline_value, Some(4.0));

    assert!(matches!(
        read_baseline_file(&path, "other-model", false),
        Err(BaselineFileError::OtherModel { .. })
    ));
    read_baseline_file(&path, "other-model", true).unwrap();

    let mut failed = passed.clone();
    failed.decision = Verdict::Failed;
    crate::fsio::write_json_atomic(&path, &failed).unwrap();
    let e = read_baseline_file(&path, "mistral-7b-lora", false).unwrap_err();
    assert!(e.to_string().contains("records a `failed` decision"), "{e}");

    let mut v = serde_json::to_value(&passed).unwrap();
    v["schema_version"] = 99.into();
    crate::fsio::write_json_atomic(&path, &v).unwrap();
    let e = read_baseline_file(&path, "mistral-7b-lora", false).unwrap_err();
    assert!(matches!(
        e,
        BaselineFileError::SchemaVersion { found: 99, .. }
    ));
    assert!(e.to_string().contains(&path.display().to_string()));
    std::fs::write(&path, "").unwrap();
    assert!(matches!(
        read_baseline_file(&path, "m", false),
        Err(BaselineFileError::Empty { .. })
    ));
}

#[test]
fn departures_name_every_deviation_from_the_seed() {
    let mut c = cfg();
    c.metrics_source = MetricsSource::Client;
    c.thresholds.max_p95_latency_s = 10.0;
    c.mlflow = MlflowMode::DryRun(crate::mlflow::MlflowConfig::new("http://127.0.0.1:1").unwrap());
    let d = doc(&c, None);
    let all = d.departures.join("\n");
    assert!(all.contains("same model"), "{all}");
    assert!(all.contains("FINISHED"), "{all}");
    assert!(all.contains("dry run"), "{all}");
    assert!(all.contains("client's figures"), "{all}");
    assert!(all.contains("max_p95_latency_s = 10"), "{all}");
    assert!(d.dry_run);
    c.baseline_any_model = true;
    let d = doc(&c, None);
    assert!(!d.departures.join("\n").contains("same model"));
}

#[test]
fn client_source_baseline_figures_carry_client_names() {
    let mut c = cfg();
    c.metrics_source = MetricsSource::Client;
    let results = fixtures::results();
    let base = candidate_metrics(&results);
    let d = doc(
        &c,
        Some(BaselineRecord {
            source: BaselineSource::Mlflow,
            run_id: Some("abc".into()),
            file: None,
            adapter: None,
            samples: None,
            median_of: Vec::new(),
            run_to_run_sd_log: Default::default(),
            model_name: Some("mistral-7b-lora".into()),
            version: Some("2".into()),
            metrics: base,
            load_settings: LoadSettings::new(),
            comparable: None,
            comparability: vec![],
            skipped: vec![],
        }),
    );
    let b = build_batch(&d, &results, 42);
    let m = |k: &str| b.metrics.iter().find(|m| m.key == k).map(|m| m.value.0);
    // the client's figures, under client names; nothing under the server names
    assert_eq!(m("baseline_client_p95_latency_s"), Some(4.2));
    assert_eq!(m("baseline_client_p95_ttft_s"), Some(0.525));
    assert_eq!(m("baseline_client_throughput_rps"), Some(5.0));
    assert_eq!(m("baseline_client_success_rate"), Some(1.0));
    for server_name in [
        "baseline_p95_latency_s",
        "baseline_p95_ttft_s",
        "baseline_throughput_rps",
    ] {
        assert_eq!(m(server_name), None, "{server_name}");
    }
}

#[test]
fn configuration_warnings_reach_the_document() {
    let mut c = cfg();
    c.warnings = vec!["MLFLOW_EXPERIMENT_NAME is ignored".into()];
    let results = fixtures::results();
    let mut draft = Draft::new(&c, &results, candidate_metrics(&results));
    draft.warn("absolute mode: no baseline".into());
    let eval = decide(
        &draft.metrics,
        None,
        &c.thresholds,
        &CheckKeys::for_source(c.metrics_source),
    );
    let d = draft.finish(eval, None);
    assert_eq!(
        d.warnings,
        [
            "MLFLOW_EXPERIMENT_NAME is ignored",
            "absolute mode: no baseline"
        ]
    );
}

/// A draft of the fixture results against `baseline`, assessed and evaluated.
fn judged(
    cfg: &DecideConfig,
    results: &LoadTestResults,
    baseline: Option<BaselineRecord>,
) -> PerfDecision {
    let mut draft = Draft::new(cfg, results, candidate_metrics(results));
    draft.baseline = baseline;
    draft.assess_baseline();
    let eval = draft.evaluate(&CheckKeys::for_source(cfg.metrics_source));
    draft.finish(eval, None)
}

/// A baseline with the fixture's figures and the given load settings.
fn baseline_with(load_settings: LoadSettings) -> BaselineRecord {
    let results = fixtures::results();
    BaselineRecord {
        source: BaselineSource::Mlflow,
        run_id: Some("base".into()),
        file: None,
        adapter: None,
        samples: None,
        median_of: Vec::new(),
        run_to_run_sd_log: Default::default(),
        model_name: Some("mistral-7b-lora".into()),
        version: Some("2".into()),
        metrics: candidate_metrics(&results),
        load_settings,
        comparable: None,
        comparability: vec![],
        skipped: vec![],
    }
}

fn same_load() -> LoadSettings {
    crate::decision::load_settings::candidate_settings(&fixtures::results(), MetricsSource::Server)
}

#[test]
fn a_comparable_baseline_gives_no_warning_and_four_checks() {
    let results = fixtures::results();
    let d = judged(&cfg(), &results, Some(baseline_with(same_load())));
    assert_eq!(d.decision, Verdict::Passed);
    assert_eq!(d.checks.len(), 4);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let b = d.baseline.as_ref().unwrap();
    assert_eq!(b.comparable, Some(true));
    assert!(b.comparability.is_empty());
    assert_eq!(d.load_settings, same_load());
    let batch = build_batch(&d, &results, 1);
    assert!(batch.tags.contains(&KeyValue::new("perf_warnings", "0")));
    assert!(
        batch
            .tags
            .contains(&KeyValue::new("perf_baseline_comparable", "true"))
    );
}

#[test]
fn an_incomparable_baseline_warns_without_changing_the_verdict() {
    let results = fixtures::results();
    let mut load = same_load();
    load.insert("concurrency".into(), "20".into());
    load.insert("eval_data_digest".into(), "1f00aa12".into());
    let d = judged(&cfg(), &results, Some(baseline_with(load.clone())));
    assert_eq!(
        d.decision,
        Verdict::Passed,
        "warnings never fail by default"
    );
    assert_eq!(d.checks.len(), 4);
    let expected = [
        "baseline used eval digest 1f00aa12, candidate d9a73a27: the relative checks compare different prompts",
        "baseline used concurrency 20, candidate 10: latency and throughput depend on the requests in flight",
    ];
    assert_eq!(d.warnings, expected);
    let b = d.baseline.as_ref().unwrap();
    assert_eq!(b.comparable, Some(false));
    assert_eq!(b.comparability, expected);
    let batch = build_batch(&d, &results, 1);
    assert!(batch.tags.contains(&KeyValue::new("perf_warnings", "2")));
    assert!(
        batch
            .tags
            .contains(&KeyValue::new("perf_baseline_comparable", "false"))
    );
    assert!(
        batch
            .params
            .contains(&KeyValue::new("require_comparable_baseline", "false"))
    );

    // --require-comparable-baseline: a fifth check fails the decision, the four are unchanged
    let mut strict = cfg();
    strict.require_comparable_baseline = true;
    let s = judged(&strict, &results, Some(baseline_with(load)));
    assert_eq!(s.decision, Verdict::Failed);
    assert_eq!(s.checks.len(), 5);
    assert!(s.checks[..4].iter().all(|c| c.passed));
    assert_eq!(
        s.checks[4].name,
        crate::decision::CheckName::ComparableBaseline
    );
    assert!(!s.checks[4].passed);
    assert!(
        s.checks[4].reason.contains("candidate d9a73a27: the relative checks compare different prompts; baseline used concurrency 20"),
        "{}",
        s.checks[4].reason
    );
    let batch = build_batch(&s, &results, 1);
    assert!(
        batch
            .params
            .contains(&KeyValue::new("require_comparable_baseline", "true"))
    );
    // the fifth check is no figure: no `baseline_baseline_comparable` metric
    assert!(batch.metrics.iter().all(|m| !m.key.contains("comparable")));
    // strict and comparable, or strict in absolute mode: passes
    let s = judged(&strict, &results, Some(baseline_with(same_load())));
    assert_eq!((s.decision, s.checks.len()), (Verdict::Passed, 5));
    let s = judged(&strict, &results, None);
    assert_eq!((s.decision, s.checks.len()), (Verdict::Passed, 5));
}

#[test]
fn result_cross_checks_warn_and_contamination_is_invalid() {
    let mut results = fixtures::results();
    results.warnings = vec!["late scrape".into()];
    results.server.as_mut().unwrap().requests_finished = Measured::value(300.0);
    results.server.as_mut().unwrap().throughput_rps = Measured::value(15.0);
    let d = judged(&cfg(), &results, None);
    // 300 finished on a server this run sent 100 requests to: other traffic
    assert_eq!(d.decision, Verdict::Invalid);
    assert_eq!(d.invalid_reasons.len(), 1, "{:?}", d.invalid_reasons);
    assert!(d.invalid_reasons[0].contains("other traffic on the server"));
    // and 15 req/s over 20 s is 300 requests, more than the client sent: no throughput
    assert!(!d.checks[2].passed, "{}", d.checks[2].reason);
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    assert_eq!(d.warnings[0], "load-test: late scrape");
    assert!(
        d.warnings[1].starts_with("the client counted 100 successful requests, the server 300")
    );
    let batch = build_batch(&d, &results, 1);
    assert!(batch.tags.contains(&KeyValue::new("perf_warnings", "2")));
    assert!(
        batch
            .tags
            .contains(&KeyValue::new("perf_measurement_valid", "false"))
    );
    assert!(batch.tags.iter().any(|t| t.key == "perf_invalid_reasons"));
    assert!(
        batch
            .params
            .contains(&KeyValue::new("on_invalid", "invalid"))
    );
    assert!(
        batch
            .tags
            .iter()
            .all(|t| t.key != "perf_baseline_comparable")
    );
    // --on-invalid fail: the seed's behaviour, a failed fifth check
    let mut fail = cfg();
    fail.on_invalid = crate::decision::OnInvalid::Fail;
    let d = judged(&fail, &results, None);
    assert_eq!(d.decision, Verdict::Failed);
    let last = d.checks.last().unwrap();
    assert_eq!(last.name, crate::decision::CheckName::ValidMeasurement);
    assert!(
        !last.passed && last.reason.contains("other traffic"),
        "{}",
        last.reason
    );
}

#[test]
fn the_load_settings_are_params_and_survive_a_baseline_file() {
    let results = fixtures::results();
    let d = judged(&cfg(), &results, None);
    let batch = build_batch(&d, &results, 1);
    for (k, v) in [
        ("eval_data_digest", "d9a73a27"),
        ("concurrency", "10"),
        ("max_tokens", "256"),
        ("endpoint", "completions"),
        ("temperature", "0"),
        ("rate", "none"),
        ("num_requests", "none"),
        ("window_mode", "end_anchored"),
        ("server_source", "prometheus"),
        ("metrics_source", "server"),
    ] {
        assert!(batch.params.contains(&KeyValue::new(k, v)), "param {k}");
    }
    let keys: std::collections::HashSet<_> = batch.params.iter().map(|p| &p.key).collect();
    assert_eq!(keys.len(), batch.params.len(), "duplicate param keys");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("perf_decision.json");
    crate::fsio::write_json_atomic(&path, &d).unwrap();
    let b = read_baseline_file(&path, "mistral-7b-lora", false).unwrap();
    assert_eq!(b.load_settings, same_load());
    assert_eq!(b.comparable, None);
    let again = judged(&cfg(), &results, Some(b));
    assert_eq!(again.baseline.unwrap().comparable, Some(true));
    assert!(again.warnings.iter().all(|w| !w.contains("baseline")));

    // a file written before `load_settings` existed: digest and metrics source still known
    let mut v = serde_json::to_value(&d).unwrap();
    v.as_object_mut().unwrap().remove("load_settings");
    crate::fsio::write_json_atomic(&path, &v).unwrap();
    let b = read_baseline_file(&path, "mistral-7b-lora", false).unwrap();
    assert_eq!(
        b.load_settings.keys().collect::<Vec<_>>(),
        ["eval_data_digest", "metrics_source"]
    );
    let again = judged(&cfg(), &results, Some(b));
    assert_eq!(again.decision, Verdict::Passed);
    assert_eq!(again.warnings.len(), 1, "{:?}", again.warnings);
    assert!(
        again.warnings[0].starts_with("the baseline does not record its concurrency, max_tokens")
    );
}

#[test]
fn a_pass_on_too_few_requests_is_inconclusive_and_a_p95_in_its_limits_bucket_is_named() {
    use crate::decision::statistics::verdict::RichVerdict;
    let c = cfg();
    let mut results = fixtures::results_with(
        fixtures::Figures {
            p95_ttft: 1.8,
            ..fixtures::GOOD
        },
        fixtures::ADAPTER,
    );
    let judge = |results: &crate::results::LoadTestResults| {
        let draft = Draft::new(&c, results, candidate_metrics(results));
        let eval = draft.evaluate(&CheckKeys::for_source(c.metrics_source));
        draft.finish(eval, None)
    };
    let d = judge(&results);
    assert_eq!(d.decision, Verdict::Passed);
    assert_eq!(d.verdict, Some(RichVerdict::Passed));
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("P95 TTFT 1.8 s and the limit 2 s") && w.contains("(1, 2.5]")),
        "{:?}",
        d.warnings
    );
    // 19 requests, all successful: a P95 of 19 is the slowest, so a pass is inconclusive
    let client = results.client.as_mut().unwrap();
    (client.total_requests, client.successful_requests) = (19, 19);
    assert_eq!(
        super::too_little_evidence(RichVerdict::Passed, &results),
        RichVerdict::Inconclusive
    );
    assert_eq!(
        super::too_little_evidence(RichVerdict::Failed, &results),
        RichVerdict::Failed
    );
    results.client.as_mut().unwrap().successful_requests = 20;
    assert_eq!(
        super::too_little_evidence(RichVerdict::Passed, &results),
        RichVerdict::Passed
    );
}

#[test]
fn an_inconclusive_decision_file_is_no_baseline() {
    use crate::decision::statistics::verdict::RichVerdict;
    let c = cfg();
    let mut d = doc(&c, None);
    assert_eq!(d.decision, Verdict::Passed);
    d.verdict = Some(RichVerdict::Inconclusive);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("perf_decision.json");
    crate::fsio::write_json_atomic(&p, &d).unwrap();
    let e = crate::decide::read_baseline_file(&p, &d.model_name, false).unwrap_err();
    assert!(
        e.to_string()
            .contains("records a `passed but inconclusive` decision"),
        "{e}"
    );
    d.verdict = Some(RichVerdict::Passed);
    crate::fsio::write_json_atomic(&p, &d).unwrap();
    assert!(crate::decide::read_baseline_file(&p, &d.model_name, false).is_ok());
}

#[test]
fn fail_on_drift_fails_closed_when_the_history_cannot_be_read() {
    let mut c = cfg();
    c.fail_on_drift = true;
    let results = fixtures::results();
    let mut draft = Draft::new(&c, &results, candidate_metrics(&results));
    draft.drift_unavailable("no drift history: cannot search MLflow".into());
    let eval = draft.evaluate(&CheckKeys::for_source(c.metrics_source));
    let drift = eval
        .checks
        .iter()
        .find(|x| x.name == crate::decision::CheckName::Drift)
        .unwrap();
    assert!(!drift.passed && drift.reason.contains("fails closed"));
    assert_eq!(eval.verdict, Verdict::Failed);
    // without --fail-on-drift it is only a warning
    let c = cfg();
    let mut draft = Draft::new(&c, &results, candidate_metrics(&results));
    draft.drift_unavailable("no drift history: cannot search MLflow".into());
    let eval = draft.evaluate(&CheckKeys::for_source(c.metrics_source));
    assert_eq!(eval.verdict, Verdict::Passed);
    assert!(
        draft
            .warnings()
            .iter()
            .any(|w| w.contains("no drift history"))
    );
}

#[test]
fn no_statistics_against_a_baseline_that_ran_another_load() {
    use crate::decision::statistics::apply::ArmSamples;
    let c = cfg();
    let mut results = fixtures::results();
    let mut store = crate::stats::SampleStore::default();
    for i in 0..100u32 {
        store.push(f64::from(i) * 0.2, Some(0.1), Some(0.4));
    }
    results.client.as_mut().unwrap().samples = Some(store.pack());
    let judge = |concurrency: &str| {
        let mut draft = Draft::new(&c, &results, candidate_metrics(&results));
        let mut settings = candidate_settings(&results, MetricsSource::Server);
        settings.insert("concurrency".into(), concurrency.into());
        draft.baseline = Some(baseline_with(settings));
        draft.assess_baseline();
        draft.set_baseline_samples(ArmSamples::candidate(&results), "a test");
        draft.assess_statistics();
        (draft.statistics().is_some(), draft.warnings().to_vec())
    };
    let (stats, _) = judge("10");
    assert!(stats, "the same load is compared");
    let (stats, warnings) = judge("32");
    assert!(!stats);
    assert!(
        warnings.iter().any(|w| w.contains("no statistical comparison, as the intervals would measure the difference between the loads")),
        "{warnings:?}"
    );
}
