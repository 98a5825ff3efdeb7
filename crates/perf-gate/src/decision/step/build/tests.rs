use std::path::PathBuf;

use super::*;
use crate::decision::checks::{Verdict, decide};
use crate::decision::document::{BaselineFileError, read_baseline_file};
use crate::decision::fixtures;
use crate::decision::metrics::{CheckKeys, candidate_metrics};
use crate::decision::thresholds::Thresholds;
use crate::results::Measured;

fn cfg() -> StepConfig {
    StepConfig {
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
        baseline_any_model: false,
        run_name: None,
        warnings: vec![],
    }
}

fn doc(cfg: &StepConfig, baseline: Option<BaselineRecord>) -> PerfDecision {
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
        Err(StepError::Input(_))
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
    assert_eq!(p("adapter_root"), "/adapters/v3");
    assert_eq!(p("eval_dataset_name"), "eval-d9a73a27");
    let keys: std::collections::HashSet<_> = b.params.iter().map(|p| &p.key).collect();
    assert_eq!(keys.len(), b.params.len(), "duplicate param keys");
    let m = |k: &str| b.metrics.iter().find(|m| m.key == k).map(|m| m.value.0);
    assert_eq!(m("p95_latency_s"), Some(4.0));
    assert_eq!(m("client_p95_latency_s"), Some(4.2));
    assert_eq!(m("throughput_rps"), Some(5.0));
    assert_eq!(m("client_throughput_rps"), Some(4.9));
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
            model_name: Some("mistral-7b-lora".into()),
            version: Some("2".into()),
            metrics: base,
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
            model_name: Some("mistral-7b-lora".into()),
            version: Some("2".into()),
            metrics: base,
        }),
    );
    let b = build_batch(&d, &results, 42);
    let m = |k: &str| b.metrics.iter().find(|m| m.key == k).map(|m| m.value.0);
    // the client's figures, under client names; nothing under the server names
    assert_eq!(m("baseline_client_p95_latency_s"), Some(4.2));
    assert_eq!(m("baseline_client_p95_ttft_s"), Some(0.6));
    assert_eq!(m("baseline_client_throughput_rps"), Some(4.9));
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
