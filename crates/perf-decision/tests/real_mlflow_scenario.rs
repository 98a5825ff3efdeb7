//! The scenario against a REAL `mlflow server` (sqlite store, proxied artifacts),
//! started once for the whole file; everything is read back through the REST API.
//!
//! 1. v1 (found through the alias `eval-passed`, the seed's command line unchanged) passes in
//!    absolute mode: perf-passed on v1, a FINISHED run with params, metrics, dataset, artifacts.
//! 2. Another model's run passes too, in absolute mode: v1's run is not *its* baseline.
//! 3. v2, 30 % slower, fails in comparative mode against v1's run (not the other model's newer
//!    one): perf-failed on v2, perf-passed gone. A dry run before it writes nothing.
//! 4. v3, as good as v1, passes against v1's run (not v2's failed one): perf-passed on v3.
//!    It ran the same load as v1 (read back from v1's params): no warning. The same adapter at
//!    concurrency 20 (a dry run) warns, and fails with `--require-comparable-baseline`.

use std::path::{Path, PathBuf};

use perf_gate::fixtures::{Figures, GOOD, results_with as results};
use perf_gate::mlflow::types::{KeyValue, Metric, MetricValue, Run, RunStatus, SearchRuns};
use perf_gate::mlflow::{Batch, MlflowClient, MlflowConfig};
use serde_json::Value;
use test_support::mlflow::MlflowServer;
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd, write_results,
};

const MODEL: &str = "mistral-7b-lora";
const OTHER: &str = "other-model";
const EXPERIMENT: &str = "vllm-lora-performance";

struct Step {
    code: i32,
    stdout: String,
    stderr: String,
    out: PathBuf,
}

/// Runs the binary (off the async runtime) with `args` against `url`.
async fn perf_decision(url: &str, results: &Path, out: PathBuf, args: &[&str]) -> Step {
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", url)
        .arg(format!("--load-test-results={}", results.display()))
        .args(args)
        .arg(format!("--output-dir={}", out.display()));
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let step = Step {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
        out,
    };
    println!(
        "--- perf-decision {args:?} -> exit {}\n{}",
        step.code, step.stdout
    );
    step
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn param<'a>(run: &'a Run, key: &str) -> &'a str {
    run.data
        .param(key)
        .unwrap_or_else(|| panic!("param {key} missing"))
}

fn metric(run: &Run, key: &str) -> f64 {
    run.data
        .metric(key)
        .unwrap_or_else(|| panic!("metric {key} missing"))
}

async fn run_count(client: &MlflowClient, exp_id: &str) -> usize {
    let page = client
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp_id.into()],
            filter: String::new(),
            order_by: vec![],
            max_results: 100,
            page_token: None,
        })
        .await
        .unwrap();
    page.runs.len()
}

async fn aliases(client: &MlflowClient, model: &str) -> Vec<(String, String)> {
    let mut a: Vec<_> = client
        .get_registered_model(model)
        .await
        .unwrap()
        .aliases
        .into_iter()
        .map(|a| (a.alias, a.version))
        .collect();
    a.sort();
    a
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_versions_1_2_3_against_a_real_mlflow() {
    let server = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let url = server.url().to_string();
    let client = MlflowClient::new(&MlflowConfig::new(&url).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    for model in [MODEL, OTHER] {
        client.create_registered_model(model).await.unwrap();
    }
    for v in 1..=4 {
        let mv = client
            .create_model_version(MODEL, &format!("s3://bucket/adapters/v{v}"), None)
            .await
            .unwrap();
        assert_eq!(mv.version, v.to_string());
        // the name each version is served as: the decision checks it is what was measured
        client
            .set_model_version_tag(
                MODEL,
                &mv.version,
                "served_adapter",
                &format!("adapter-v{v}"),
            )
            .await
            .unwrap();
    }
    client
        .create_model_version(OTHER, "s3://bucket/other/v1", None)
        .await
        .unwrap();
    client
        .set_model_version_tag(OTHER, "1", "served_adapter", "other-v1")
        .await
        .unwrap();
    client.set_alias(MODEL, "eval-passed", "1").await.unwrap();

    // 0. The pipeline resolves the candidate once, before the load.
    let resolved = perf_decision(
        &url,
        Path::new("/unused"),
        d.join("resolve"),
        &["--resolve-candidate", "--model-name=mistral-7b-lora"],
    )
    .await;
    assert_eq!(resolved.code, 0, "{}", resolved.stderr);
    assert_eq!(
        std::fs::read_to_string(resolved.out.join("candidate_version.txt")).unwrap(),
        "1\n"
    );
    assert!(!resolved.out.join("perf_status.txt").exists());

    // 1. v1 through `eval-passed`, with the seed's command line exactly.
    let r1_path = write_results(d, "v1.json", &results(GOOD, "adapter-v1"));
    let s1 = perf_decision(
        &url,
        &r1_path,
        d.join("out1"),
        &[
            "--model-name=mistral-7b-lora",
            "--max-p95-latency=8.0",
            "--max-p95-ttft=2.0",
            "--min-throughput=2.0",
            "--min-success-rate=0.99",
        ],
    )
    .await;
    assert_eq!(s1.code, 0, "{}", s1.stderr);
    assert!(
        s1.stdout.contains("decision: passed (absolute mode)"),
        "{}",
        s1.stdout
    );
    assert_eq!(status(&s1.out), "passed");
    let d1 = decision(&s1.out);
    assert_eq!(d1["candidate_version"], "1");
    assert_eq!(d1["candidate_alias"], "eval-passed");
    let run1_id = d1["mlflow"]["run_id"].as_str().unwrap().to_string();
    let exp_id = d1["mlflow"]["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(d1["mlflow"]["experiment_name"], EXPERIMENT);
    assert_eq!(
        d1["mlflow"]["run_url"],
        format!("{url}/#/experiments/{exp_id}/runs/{run1_id}")
    );

    // a first run in a new experiment: absolute mode, said out loud
    assert!(
        d1["warnings"].to_string().contains(
            "absolute mode: no baseline in experiment `vllm-lora-performance` for model `mistral-7b-lora` (the experiment did not exist and was just created)"
        ),
        "{}",
        d1["warnings"]
    );
    let run1 = client.get_run(&run1_id).await.unwrap();
    assert_eq!(run1.info.status, "FINISHED");
    assert!(run1.info.end_time.is_some());
    assert_eq!(run1.info.run_name, "perf-mistral-7b-lora-v1");
    assert_eq!(run1.data.tag("perf_decision"), Some("passed"));
    assert_eq!(run1.data.tag("model_name"), Some(MODEL));
    for (k, v) in [
        ("model_name", MODEL),
        ("candidate_adapter", "adapter-v1"),
        ("candidate_version", "1"),
        ("candidate_alias", "eval-passed"),
        ("concurrency", "10"),
        ("total_requests", "100"),
        ("mode", "absolute"),
        ("metrics_source", "server"),
        ("max_p95_latency", "8"),
        ("max_p95_ttft", "2"),
        ("min_throughput", "2"),
        ("min_success_rate", "0.99"),
        ("max_latency_regression", "0.15"),
        ("max_ttft_regression", "0.15"),
        ("max_throughput_drop", "0.15"),
        ("max_success_rate_drop", "0"),
        ("baseline_run_id", "none"),
        ("adapter_root", "/adapters/adapter-v1"),
        ("model_version_source", "s3://bucket/adapters/v1"),
        ("eval_dataset_name", "eval-d9a73a27"),
        ("eval_data_digest", "d9a73a27"),
    ] {
        assert_eq!(param(&run1, k), v, "param {k}");
    }
    assert_eq!(metric(&run1, "p95_latency_s"), 4.0);
    assert_eq!(metric(&run1, "p95_ttft_s"), 0.5);
    assert_eq!(metric(&run1, "throughput_rps"), 5.0);
    assert_eq!(metric(&run1, "client_success_rate"), 1.0);
    assert_eq!(metric(&run1, "kv_cache_usage"), 0.25);
    assert_eq!(metric(&run1, "wall_clock_duration_s"), 52.5);
    assert!((metric(&run1, "client_p95_latency_s") - 4.2).abs() < 1e-9);
    for k in [
        "p50_latency_s",
        "p99_latency_s",
        "p50_ttft_s",
        "p99_ttft_s",
        "client_throughput_rps",
    ] {
        metric(&run1, k);
    }
    // a missing figure is logged as NaN (sent as the string "NaN") and does not drop the batch
    assert!(metric(&run1, "gpu_utilization").is_nan());
    assert_eq!(run1.data.metric("baseline_p95_latency_s"), None);

    let inputs = &run1.inputs.dataset_inputs;
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].dataset.name, "eval-d9a73a27");
    assert_eq!(inputs[0].dataset.digest, "d9a73a27");
    assert_eq!(inputs[0].dataset.source_type, "local");
    assert!(inputs[0].dataset.source.contains("/data/eval.jsonl"));
    assert_eq!(inputs[0].tags[0].key, "mlflow.data.context");
    assert_eq!(inputs[0].tags[0].value, "performance-test");

    let listed = client.list_artifacts(&run1_id, None).await.unwrap();
    let mut files: Vec<_> = listed.files.iter().map(|f| f.path.as_str()).collect();
    files.sort();
    assert_eq!(
        files,
        [
            "load_test_results.json",
            "perf_decision.json",
            "perf_decision_report.html",
            "perf_decision_summary.md"
        ]
    );
    let uploaded = client
        .download_artifact(&run1.info, "load_test_results.json")
        .await
        .unwrap();
    assert_eq!(uploaded, std::fs::read(&r1_path).unwrap());
    let uploaded: Value = serde_json::from_slice(
        &client
            .download_artifact(&run1.info, "perf_decision.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        uploaded, d1,
        "the uploaded decision is the one written locally"
    );

    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "1"), ("perf-passed", "1")])
    );
    let v1 = client.get_model_version(MODEL, "1").await.unwrap();
    assert_eq!(v1.tag("perf_decision"), Some("passed"));
    assert_eq!(v1.tag("perf_run_id"), Some(run1_id.as_str()));

    // 2. another model, far better figures: absolute mode (v1's run is not its baseline).
    let fast = Figures {
        p95_latency: 1.0,
        p95_ttft: 0.1,
        throughput: 20.0,
        success_rate: 1.0,
    };
    let ro_path = write_results(d, "other.json", &results(fast, "other-v1"));
    let so = perf_decision(
        &url,
        &ro_path,
        d.join("out-other"),
        &["--model-name=other-model", "--candidate-version=1"],
    )
    .await;
    assert_eq!(so.code, 0, "{}", so.stderr);
    let dother = decision(&so.out);
    assert_eq!(dother["mode"], "absolute");
    assert!(
        dother["warnings"]
            .to_string()
            .contains("for model `other-model` (no FINISHED run tagged perf_decision=passed)"),
        "{}",
        dother["warnings"]
    );
    assert_eq!(dother["decision"], "passed");
    let other_run_id = dother["mlflow"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        aliases(&client, OTHER).await,
        pairs(&[("perf-passed", "1")])
    );

    // 3. v2, 30 % slower. A dry run first: exit 1 with --fail-on-reject, nothing written.
    client.set_alias(MODEL, "eval-passed", "2").await.unwrap();
    let slower = Figures {
        p95_latency: GOOD.p95_latency * 1.3,
        ..GOOD
    };
    let r2_path = write_results(d, "v2.json", &results(slower, "adapter-v2"));
    let runs_before = run_count(&client, &exp_id).await;
    let dry = perf_decision(
        &url,
        &r2_path,
        d.join("out2-dry"),
        &[
            "--model-name=mistral-7b-lora",
            "--dry-run",
            "--fail-on-reject",
        ],
    )
    .await;
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    assert!(dry.stdout.contains("mlflow: dry run, nothing written"));
    assert_eq!(decision(&dry.out)["baseline"]["run_id"], run1_id.as_str());
    assert_eq!(run_count(&client, &exp_id).await, runs_before);
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-passed", "1")])
    );

    // --baseline-any-model restores the seed's rule: the newest passed run of any model.
    let any = perf_decision(
        &url,
        &r2_path,
        d.join("out2-any"),
        &[
            "--model-name=mistral-7b-lora",
            "--dry-run",
            "--baseline-any-model",
        ],
    )
    .await;
    assert_eq!(any.code, 0, "{}", any.stderr);
    assert_eq!(
        decision(&any.out)["baseline"]["run_id"],
        other_run_id.as_str()
    );

    let s2 = perf_decision(
        &url,
        &r2_path,
        d.join("out2"),
        &["--model-name=mistral-7b-lora", "--eval-data-version=2"],
    )
    .await;
    assert_eq!(s2.code, 0, "a failed decision is a result: {}", s2.stderr);
    assert!(
        s2.stdout.contains(&format!(
            "decision: failed (comparative mode; baseline run {run1_id})"
        )),
        "{}",
        s2.stdout
    );
    assert!(
        s2.stdout
            .contains("[FAIL] p95_latency_s = 5.2 s is not <= 4.6 s (baseline 4 s x 1.15)")
    );
    assert_eq!(status(&s2.out), "failed");
    let d2 = decision(&s2.out);
    assert_eq!(d2["candidate_version"], "2");
    assert_eq!(d2["baseline"]["run_id"], run1_id.as_str());
    assert_eq!(d2["baseline"]["model_name"], MODEL);
    let run2 = client
        .get_run(d2["mlflow"]["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(run2.info.status, "FINISHED");
    assert_eq!(run2.data.tag("perf_decision"), Some("failed"));
    assert_eq!(param(&run2, "mode"), "comparative");
    assert_eq!(param(&run2, "baseline_run_id"), run1_id);
    assert_eq!(metric(&run2, "baseline_p95_latency_s"), 4.0);
    assert_eq!(metric(&run2, "baseline_client_success_rate"), 1.0);
    assert_eq!(run2.inputs.dataset_inputs[0].dataset.name, "eval-v2");
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-failed", "2")])
    );
    let v2 = client.get_model_version(MODEL, "2").await.unwrap();
    assert_eq!(v2.tag("perf_decision"), Some("failed"));

    // Newer runs tagged passed that are not FINISHED (one still RUNNING, one FAILED, as a step
    // that died after tagging would leave them), with figures v3 could never match: never a
    // baseline.
    for status in [None, Some(RunStatus::Failed)] {
        let run = client
            .create_run(
                &exp_id,
                "unfinished",
                now_ms(),
                &[KeyValue::new("perf_decision", "passed")],
            )
            .await
            .unwrap();
        let batch = Batch {
            params: vec![KeyValue::new("model_name", MODEL)],
            metrics: vec![Metric {
                key: "p95_latency_s".into(),
                value: MetricValue(1.0),
                timestamp: now_ms(),
                step: 0,
            }],
            tags: vec![],
        };
        client.log_batch(&run.info.run_id, batch).await.unwrap();
        if let Some(s) = status {
            client
                .update_run(&run.info.run_id, s, Some(now_ms()))
                .await
                .unwrap();
        }
    }

    // 4. v3 as good as v1: compares against v1's run, not v2's failed one (nor the unfinished).
    let r3_path = write_results(d, "v3.json", &results(GOOD, "adapter-v3"));
    let s3 = perf_decision(
        &url,
        &r3_path,
        d.join("out3"),
        &["--model-name=mistral-7b-lora", "--candidate-version=3"],
    )
    .await;
    assert_eq!(s3.code, 0, "{}", s3.stderr);
    let d3 = decision(&s3.out);
    assert_eq!(d3["decision"], "passed");
    assert_eq!(d3["mode"], "comparative");
    assert_eq!(d3["baseline"]["run_id"], run1_id.as_str());
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-passed", "3")])
    );
    // v1's run recorded its load as params: v3 ran the same load, so no warning at all
    assert_eq!(d3["baseline"]["comparable"], true, "{}", d3["baseline"]);
    assert_eq!(d3["warnings"], serde_json::json!([]));
    let run3 = client
        .get_run(d3["mlflow"]["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(param(&run3, "max_tokens"), "256");
    assert_eq!(run3.data.tag("perf_warnings"), Some("0"));
    assert_eq!(run3.data.tag("perf_baseline_comparable"), Some("true"));
    // the lease was released: no lock model stays in the registry
    let lock = client
        .get_registered_model(&format!("{MODEL}.perf-gate-lock"))
        .await
        .unwrap_err();
    assert!(lock.is_not_found(), "{lock}");

    // an Argo retry of the same step (same results, same flags): the decision already
    // recorded is reported, and nothing new is recorded or claimed
    let runs_before_rerun = run_count(&client, &exp_id).await;
    let s3_again = perf_decision(
        &url,
        &r3_path,
        d.join("out3-again"),
        &["--model-name=mistral-7b-lora", "--candidate-version=3"],
    )
    .await;
    assert_eq!(s3_again.code, 0, "{}", s3_again.stderr);
    assert!(
        s3_again
            .stderr
            .contains("this decision was already recorded"),
        "{}",
        s3_again.stderr
    );
    let d3_again = decision(&s3_again.out);
    assert_eq!(d3_again["mlflow"]["run_id"], d3["mlflow"]["run_id"]);
    assert_eq!(d3_again["decision"], "passed");
    assert_eq!(status(&s3_again.out), "passed");
    assert_eq!(run_count(&client, &exp_id).await, runs_before_rerun);
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-passed", "3")])
    );

    // the same adapter at another concurrency: a warning naming both values; with
    // --require-comparable-baseline a failed fifth check (a dry run: nothing written)
    let mut busier = results(GOOD, "adapter-v3");
    busier.config.concurrency = 20;
    let r4_path = write_results(d, "v3-c20.json", &busier);
    let s4 = perf_decision(
        &url,
        &r4_path,
        d.join("out3-c20"),
        &[
            "--model-name=mistral-7b-lora",
            "--candidate-version=3",
            "--dry-run",
            "--require-comparable-baseline",
        ],
    )
    .await;
    assert_eq!(s4.code, 0, "{}", s4.stderr);
    let d4 = decision(&s4.out);
    let concurrency = "baseline used concurrency 10, candidate 20: latency and throughput depend on the requests in flight";
    // no passed run ran this load: the newest (not v3's own) is used, with a warning
    assert!(
        d4["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("none of the 2 newest passed runs ran a comparable load"),
        "{}",
        d4["warnings"]
    );
    assert_eq!(d4["warnings"][1], concurrency);
    assert_eq!(d4["warnings"].as_array().unwrap().len(), 2);
    assert_eq!(d4["baseline"]["comparable"], false);
    // v3's own passed run is never its baseline: v1's is, and the skip is recorded
    assert_eq!(d4["baseline"]["run_id"], run1_id.as_str());
    assert!(
        d4["baseline"]["skipped"][0]
            .as_str()
            .unwrap()
            .contains("the candidate itself"),
        "{}",
        d4["baseline"]
    );
    assert_eq!(d4["decision"], "failed");
    assert_eq!(d4["checks"][4]["name"], "comparable_baseline");
    let v3 = client.get_model_version(MODEL, "3").await.unwrap();
    assert_eq!(v3.tag("perf_decision"), Some("passed"));
    assert_eq!(v3.tag("perf_run_id"), d3["mlflow"]["run_id"].as_str());
    // history stays on the versions even though the aliases moved
    let v2 = client.get_model_version(MODEL, "2").await.unwrap();
    assert_eq!(v2.tag("perf_decision"), Some("failed"));
    assert_eq!(
        aliases(&client, OTHER).await,
        pairs(&[("perf-passed", "1")])
    );

    // the measurement is not of the candidate: v4 is served as adapter-v4, the results measured
    // adapter-v3. Invalid, not failed: exit 5, no alias moves, the version and run say so
    let s5 = perf_decision(
        &url,
        &r3_path,
        d.join("out4"),
        &["--model-name=mistral-7b-lora", "--candidate-version=4"],
    )
    .await;
    assert_eq!(s5.code, 5, "{}", s5.stderr);
    assert_eq!(status(&s5.out), "invalid");
    let d5 = decision(&s5.out);
    assert_eq!(d5["decision"], "invalid");
    assert!(
        d5["invalid_reasons"][0].as_str().unwrap().contains(
            "load-test measured adapter `adapter-v3`, but version 4 is served as `adapter-v4`"
        ),
        "{}",
        d5["invalid_reasons"]
    );
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-passed", "3")]),
        "an invalid measurement claims no alias"
    );
    let v4 = client.get_model_version(MODEL, "4").await.unwrap();
    assert_eq!(v4.tag("perf_decision"), Some("invalid"));
    let run5 = client
        .get_run(d5["mlflow"]["run_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(run5.data.tag("perf_decision"), Some("invalid"));
    assert_eq!(run5.data.tag("perf_measurement_valid"), Some("false"));
    // the seed's behaviour on request: the candidate fails, perf-failed moves onto it
    let s6 = perf_decision(
        &url,
        &r3_path,
        d.join("out4-fail"),
        &[
            "--model-name=mistral-7b-lora",
            "--candidate-version=4",
            "--on-invalid=fail",
        ],
    )
    .await;
    assert_eq!(s6.code, 0, "{}", s6.stderr);
    let d6 = decision(&s6.out);
    assert_eq!(d6["decision"], "failed");
    assert_eq!(
        d6["checks"].as_array().unwrap().last().unwrap()["name"],
        "valid_measurement"
    );
    assert_eq!(
        aliases(&client, MODEL).await,
        pairs(&[("eval-passed", "2"), ("perf-failed", "4")])
    );

    // unknown version and unknown alias: exit 3 with one clear line, no decision
    let bad = perf_decision(
        &url,
        &r3_path,
        d.join("out-bad"),
        &["--model-name=mistral-7b-lora", "--candidate-version=99"],
    )
    .await;
    assert_eq!(bad.code, 3);
    assert!(
        bad.stderr
            .contains("version 99 of registered model `mistral-7b-lora` not found"),
        "{}",
        bad.stderr
    );
    assert_no_decision(&bad.out);
    let bad = perf_decision(
        &url,
        &r3_path,
        d.join("out-bad-alias"),
        &["--model-name=mistral-7b-lora", "--candidate-alias=nope"],
    )
    .await;
    assert_eq!(bad.code, 3);
    assert!(
        bad.stderr
            .contains("alias `nope` not found on registered model `mistral-7b-lora`"),
        "{}",
        bad.stderr
    );
    assert_no_decision(&bad.out);
    let bad = perf_decision(
        &url,
        &r3_path,
        d.join("out-bad-model"),
        &["--model-name=no-such-model"],
    )
    .await;
    assert_eq!(bad.code, 3);
    assert!(
        bad.stderr
            .contains("registered model `no-such-model` not found in MLflow"),
        "{}",
        bad.stderr
    );
    drop(server);
}
