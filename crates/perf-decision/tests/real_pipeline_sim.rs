//! The whole gate end to end against real servers, with the two steps run exactly as the
//! deployment manifests run them (rendered by `test_support::manifest`, the renderer the scripts
//! use): `vllm-sim` (the binary) on a loopback port, a real Prometheus scraping it as job
//! `vllm-service` every second, a real MLflow server; model `tiny-lora` with v1 (source
//! `runs:/<run>/adapter`) and v2 (`s3://...`).
//!
//! 1. v1, as the Argo WorkflowTemplate runs it (`workflows/vllm-perf-gate.yaml`, its entrypoint
//!    walked step by step with every container a local process): resolve-candidate fixes v1 from
//!    the alias, then attempt 1's load-test and perf-decision (given `--candidate-version=1`)
//!    pass in absolute mode, its verdict step and the rerun are skipped; alias `perf-passed` on
//!    v1; the run's params, metrics, tags, dataset and artifacts in MLflow; server figures from
//!    PromQL on vLLM's metric names. (The rerun after an invalid measurement is walked with
//!    scripted pods in crates/test-support/tests/gate_workflow.rs.)
//! 2. The server slowed down 4x; v2, as the Kubernetes Jobs run it (`deploy/kustomize/base`, env
//!    from the ConfigMaps): the load-test Job's init container resolves v2 into
//!    `candidate_version.txt`, the alias then moves back to v1 during the load, and the decision
//!    (CANDIDATE_VERSION_FILE) still judges v2: it fails in comparative mode against v1's run;
//!    alias `perf-failed` on v2, `perf-passed` gone; v1 keeps its version tag.
//!
//! `real_mlflow_scenario.rs` covers the decision's own cases (other models, dry runs, unfinished
//! runs, comparability) with exact figures; this test covers the pipeline. `scripts/e2e.sh
//! --backend vllm` runs the same flow against a real vLLM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_gate::mlflow::types::{KeyValue, Run, RunStatus};
use perf_gate::mlflow::{MlflowClient, MlflowConfig};
use serde_json::Value;
use test_support::manifest::argo::Phase;
use test_support::manifest::{RenderedStep, argo, kustomize};
use test_support::mlflow::MlflowServer;
use test_support::prometheus::{PrometheusServer, unix_now};
use test_support::run::{LocalPods, run_step, sibling_bin};
use test_support::sim::SimProcess;

const MODEL: &str = "tiny-lora";
const ADAPTER: &str = "candidate";
const SERVED: &str = "tiny-base";
const JOB: &str = "vllm-service";
const PROMPTS: usize = 40;
const CONCURRENCY: &str = "4";
const MAX_TOKENS: &str = "32";
/// Absolute floors that suit the simulator (8 s / 2 s / 1 req/s / 0.99).
const FLOORS: [(&str, &str); 4] = [
    ("max-p95-latency", "8.0"),
    ("max-p95-ttft", "2.0"),
    ("min-throughput", "1.0"),
    ("min-success-rate", "0.99"),
];
/// vLLM's metric names the server figures must come from.
const REQUIRED_METRICS: [&str; 3] = [
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:request_success_total",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(v: &str) -> String {
    v.to_string()
}

fn sim_args(seed: u32, slow: u32) -> Vec<String> {
    let ms = |base: u32| format!("{}ms", base * slow);
    [
        "--served-model-name",
        SERVED,
        "--lora-modules",
        &format!("{ADAPTER}=/models/{MODEL}/lora"),
        "--ttft",
        &ms(50),
        "--itl",
        &ms(10),
        "--jitter",
        "0.1",
        "--seed",
        &seed.to_string(),
        "--shutdown-grace",
        "2s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn write_eval(path: &Path) {
    let topics = [
        "the licence terms",
        "copying the software",
        "warranty",
        "patents",
        "source code",
        "distribution",
        "modifications",
        "trademarks",
        "liability",
        "attribution",
    ];
    let text: String = (0..PROMPTS)
        .map(|i| {
            let prompt = format!(
                "Question {i}: explain what the text says about {}{} in plain words{}.",
                topics[i % topics.len()],
                ",".repeat(i % 3),
                " in plain words".repeat(i % 4)
            );
            format!(
                "{}\n",
                serde_json::json!({"id": i, "prompt_inference": prompt})
            )
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A `Measured` (`{value, reason}`) or bare number.
fn num(v: &Value) -> Option<f64> {
    v.get("value")
        .unwrap_or(v)
        .as_f64()
        .filter(|x| x.is_finite())
}

/// Runs a rendered step and asserts it exits 0.
fn run_ok(step: &RenderedStep, log: &Path) {
    let r = run_step(step, log);
    assert_eq!(
        r.code,
        0,
        "{} exited {}; log {}\n{}",
        step.argv[0],
        r.code,
        log.display(),
        r.stderr
    );
}

/// Before a load: a Prometheus scrape of the idle server taken after everything sent so far, and
/// one more second (load-test's window starts up to a second before its load, whole seconds).
fn settle(prom: &PrometheusServer) {
    prom.wait_scraped_after(JOB, unix_now(), Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
}

struct Expect<'a> {
    version: &'a str,
    decision: &'a str,
    mode: &'a str,
    concurrency: &'a str,
    dataset_name: String,
    dataset_source: String,
    baseline_run: Option<&'a str>,
}

/// The files both steps wrote, and what MLflow says afterwards; returns the run id.
async fn check_run(
    client: &MlflowClient,
    load_dir: &Path,
    decision_dir: &Path,
    want: &Expect<'_>,
) -> String {
    let results_path = load_dir.join("load_test_results.json");
    let results = read_json(&results_path);
    assert_eq!(
        read_text(&load_dir.join("load_test_status.txt")),
        "completed"
    );
    assert_eq!(results["status"], "completed");
    assert_eq!(results["client"]["total_requests"], PROMPTS);
    assert_eq!(results["client"]["success_rate"], 1.0);
    assert_eq!(results["adapter"]["name"], ADAPTER);
    assert_eq!(
        results["adapter"]["parent"], SERVED,
        "the adapter's parent: the served base"
    );
    let server = &results["server"];
    assert_eq!(server["source"], "prometheus");
    let queries: Vec<&str> = server["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|q| q["query"].as_str())
        .collect();
    for metric in REQUIRED_METRICS {
        let hits: Vec<_> = queries.iter().filter(|q| q.contains(metric)).collect();
        assert!(
            !hits.is_empty(),
            "no PromQL query reads {metric}: {queries:?}"
        );
        assert!(
            hits.iter().all(|q| q.contains(&format!("job=\"{JOB}\""))),
            "{hits:?}"
        );
    }
    for key in ["e2e_latency_s", "ttft_s"] {
        let p95 = num(&server[key]["p95"]);
        assert!(
            p95.is_some_and(|v| v > 0.0),
            "server P95 {key}: {}",
            server[key]
        );
    }
    assert!(
        num(&server["throughput_rps"]).is_some_and(|v| v > 0.0),
        "{}",
        server["throughput_rps"]
    );
    let finished = num(&server["requests_finished"]).unwrap_or(-1.0);
    assert_eq!(
        finished.round(),
        PROMPTS as f64,
        "Prometheus's count of finished requests"
    );

    let decision = read_json(&decision_dir.join("perf_decision.json"));
    assert_eq!(
        read_text(&decision_dir.join("perf_status.txt")),
        want.decision
    );
    assert_eq!(decision["decision"], want.decision);
    assert_eq!(decision["mode"], want.mode);
    assert_eq!(decision["candidate_version"], want.version);
    // the version came resolved before the load (--candidate-version), not through the alias
    assert!(
        decision["candidate_alias"].is_null(),
        "{}",
        decision["candidate_alias"]
    );
    assert_eq!(decision["candidate_adapter"], ADAPTER);
    assert_eq!(decision["metrics_source"], "server");
    // the measured adapter was checked against the version's served_adapter tag (no warning that
    // it could not be)
    let warnings = decision["warnings"].to_string();
    assert!(!warnings.contains("served_adapter"), "{warnings}");
    let checks = decision["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "{checks:?}");
    match want.baseline_run {
        Some(id) => assert_eq!(decision["baseline"]["run_id"], id),
        None => assert!(decision["baseline"].is_null(), "{}", decision["baseline"]),
    }
    if want.decision == "passed" {
        assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    } else {
        assert!(
            checks
                .iter()
                .any(|c| c["passed"] == false && !c["relative_limit"].is_null()),
            "a check must fail against the baseline's relative bound: {checks:?}"
        );
    }

    // MLflow: the alias, the version's tags, the run
    let other = if want.decision == "passed" {
        "perf-failed"
    } else {
        "perf-passed"
    };
    let aliases = client.get_registered_model(MODEL).await.unwrap().aliases;
    let alias = |name: &str| {
        aliases
            .iter()
            .find(|a| a.alias == name)
            .map(|a| a.version.clone())
    };
    assert_eq!(
        alias(&format!("perf-{}", want.decision)).as_deref(),
        Some(want.version)
    );
    assert_eq!(alias(other), None, "{other} must be removed from the model");
    let run_id = decision["mlflow"]["run_id"]
        .as_str()
        .expect("the decision names its run")
        .to_string();
    let mv = client.get_model_version(MODEL, want.version).await.unwrap();
    assert_eq!(mv.tag("perf_decision"), Some(want.decision));
    assert_eq!(mv.tag("perf_run_id"), Some(run_id.as_str()));
    assert_eq!(mv.tag("adapter_name"), Some(ADAPTER));

    let run: Run = client.get_run(&run_id).await.unwrap();
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.data.tag("perf_decision"), Some(want.decision));
    let total = PROMPTS.to_string();
    for (key, value) in [
        ("model_name", MODEL),
        ("candidate_version", want.version),
        ("candidate_adapter", ADAPTER),
        ("mode", want.mode),
        ("concurrency", want.concurrency),
        ("total_requests", total.as_str()),
        ("baseline_run_id", want.baseline_run.unwrap_or("none")),
    ] {
        assert_eq!(run.data.param(key), Some(value), "run param {key}");
    }
    for key in [
        "max_p95_latency",
        "max_p95_ttft",
        "min_throughput",
        "min_success_rate",
    ] {
        assert!(run.data.param(key).is_some(), "run param {key}");
    }
    for key in [
        "p95_latency_s",
        "p95_ttft_s",
        "throughput_rps",
        "client_success_rate",
    ] {
        let logged = run.data.metric(key);
        let decided = num(&decision["metrics"][key]);
        assert!(
            logged
                .zip(decided)
                .is_some_and(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(1.0)),
            "run metric {key} {logged:?} != the decision's {decided:?}"
        );
    }
    assert_eq!(run.data.tag("perf_verdict"), decision["verdict"].as_str());
    if want.mode == "comparative" {
        for key in [
            "baseline_p95_latency_s",
            "baseline_p95_ttft_s",
            "baseline_throughput_rps",
        ] {
            assert!(run.data.metric(key).is_some(), "run metric {key}");
        }
        // the baseline's samples came back from its run's results artifact: the statistics ran
        let from = decision["baseline"]["samples"].as_str().unwrap_or_default();
        assert!(
            from.contains("load_test_results.json artifact of run"),
            "{from}"
        );
        assert_eq!(
            decision["statistics"]["metrics"].as_array().map(Vec::len),
            Some(4)
        );
    }
    let inputs = &run.inputs.dataset_inputs;
    assert_eq!(inputs.len(), 1, "dataset inputs");
    assert_eq!(inputs[0].dataset.name, want.dataset_name);
    assert!(
        inputs[0]
            .tags
            .iter()
            .any(|t| t.key == "mlflow.data.context" && t.value == "performance-test")
    );
    let digest = results["eval_data"]["digest"].as_str().unwrap();
    assert_eq!(inputs[0].dataset.digest, digest);
    assert!(
        inputs[0].dataset.source.contains(&want.dataset_source),
        "dataset source {} does not name {}",
        inputs[0].dataset.source,
        want.dataset_source
    );

    let listed = client.list_artifacts(&run_id, None).await.unwrap();
    let files: Vec<&str> = listed.files.iter().map(|f| f.path.as_str()).collect();
    for name in ["load_test_results.json", "perf_decision.json"] {
        assert!(files.contains(&name), "artifact {name}: {files:?}");
    }
    let uploaded = client
        .download_artifact(&run.info, "load_test_results.json")
        .await
        .unwrap();
    assert_eq!(
        uploaded,
        std::fs::read(&results_path).unwrap(),
        "byte for byte"
    );
    let uploaded: Value = serde_json::from_slice(
        &client
            .download_artifact(&run.info, "perf_decision.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(uploaded["decision"], want.decision);
    run_id
}

/// `tiny-lora` v1 (logged by a "training" run: source `runs:/<run>/adapter`) and v2 (an s3://
/// source), each tagged with the adapter vLLM serves it as (`adapter_name`, and `served_adapter`,
/// which perf-decision checks the measured adapter against); `eval-passed` on v1.
async fn register(client: &MlflowClient) {
    client.create_registered_model(MODEL).await.unwrap();
    let exp = client
        .get_or_create_experiment(&format!("{MODEL}-training"))
        .await
        .unwrap();
    let now = unix_now() as i64 * 1000;
    let run = client
        .create_run(
            &exp.experiment_id,
            "train-v1",
            now,
            &[KeyValue::new("adapter_name", ADAPTER)],
        )
        .await
        .unwrap();
    let config = serde_json::json!({"peft_type": "LORA", "r": 8}).to_string();
    client
        .upload_artifact(
            &run.info,
            "adapter/adapter_config.json",
            config.into_bytes(),
        )
        .await
        .unwrap();
    client
        .update_run(&run.info.run_id, RunStatus::Finished, Some(now))
        .await
        .unwrap();
    let sources = [
        (
            format!("runs:/{}/adapter", run.info.run_id),
            Some(run.info.run_id.as_str()),
        ),
        (format!("s3://adapters/{MODEL}/v2"), None),
    ];
    for (i, (source, run_id)) in sources.iter().enumerate() {
        let mv = client
            .create_model_version(MODEL, source, *run_id)
            .await
            .unwrap();
        assert_eq!(mv.version, (i + 1).to_string());
        for tag in ["adapter_name", "served_adapter"] {
            client
                .set_model_version_tag(MODEL, &mv.version, tag, ADAPTER)
                .await
                .unwrap();
        }
        client
            .set_model_version_tag(MODEL, &mv.version, "adapter_uri", source)
            .await
            .unwrap();
    }
    client.set_alias(MODEL, "eval-passed", "1").await.unwrap();
}

#[test]
fn v1_passes_as_the_argo_workflow_runs_it_then_v2_on_a_slower_server_fails_as_the_jobs_run_it() {
    let perf_decision = PathBuf::from(env!("CARGO_BIN_EXE_perf-decision"));
    let bin_dir = perf_decision.parent().unwrap().to_path_buf();
    let sim_bin = sibling_bin(&perf_decision, "vllm-sim").unwrap_or_else(|e| panic!("{e}"));
    sibling_bin(&perf_decision, "load-test").unwrap_or_else(|e| panic!("{e}"));
    let root = repo_root();
    let work = tempfile::Builder::new()
        .prefix("vpg-e2e-sim-")
        .tempdir()
        .unwrap();
    let w = work.path();
    let eval = w.join("data/eval.jsonl");
    write_eval(&eval);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let port = test_support::free_port();
    let sim = SimProcess::start(&sim_bin, port, &sim_args(1, 1), &w.join("sim-1.log"));
    let (status, body) = test_support::http::get(port, "/v1/models").unwrap();
    assert_eq!(status, 200, "{body}");
    let models: Value = serde_json::from_str(&body).unwrap();
    let listed = models["data"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|m| m["id"] == ADAPTER && m["parent"] == SERVED),
        "/v1/models lists {ADAPTER} with parent {SERVED}: {body}"
    );
    let prom = PrometheusServer::start(JOB, &[&sim.target()], Duration::from_secs(1));
    let mlflow = MlflowServer::start();
    let client = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    rt.block_on(register(&client));
    settle(&prom);

    // ---- v1 as the Argo WorkflowTemplate runs it
    let wft = argo::load(&root.join("workflows/vllm-perf-gate.yaml"))
        .unwrap()
        .into_iter()
        .find(|f| f.doc.kind == "WorkflowTemplate")
        .expect("workflows/vllm-perf-gate.yaml has a WorkflowTemplate");
    let mut set = vec![
        ("vllm-url", sim.url()),
        ("adapter-name", s(ADAPTER)),
        ("eval-data-bucket", s("e2e-eval-data")),
        ("eval-data-key", s("tiny-lora/eval.jsonl")),
        ("eval-data-version", s("1")),
        ("concurrency", s(CONCURRENCY)),
        ("max-tokens", s(MAX_TOKENS)),
        ("wait-ready", s("60s")),
        ("prometheus-url", prom.url()),
        ("prometheus-job", s(JOB)),
        ("scrape-interval", s("auto")),
        ("mlflow-tracking-uri", s(mlflow.url())),
        ("model-name", s(MODEL)),
        ("candidate-version", s("")),
        ("candidate-alias", s("eval-passed")),
        ("log-format", s("text")),
    ];
    set.extend(FLOORS.iter().map(|(k, v)| (*k, s(v))));
    let set: Vec<(String, String)> = set.into_iter().map(|(k, v)| (s(k), v)).collect();
    let params = wft.parameters(&set).unwrap();
    let v1 = w.join("v1");
    let mut pods = LocalPods::new(
        &bin_dir,
        &v1,
        vec![(s("/data/eval.jsonl"), eval.display().to_string())],
    );
    let outcome = wft
        .run(&params, &mut pods)
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = v1.display();
    assert_eq!(
        outcome.trace(),
        [
            "resolve-candidate Succeeded",
            "attempt-1.load-test Succeeded",
            "attempt-1.perf-decision Succeeded",
            "attempt-1.verdict Skipped",
            "quiet-wait Skipped",
            "attempt-2 Skipped",
        ],
        "node logs under {logs}"
    );
    assert_eq!(outcome.phase, Phase::Succeeded);
    assert_eq!(outcome.outputs["candidate-version"], "1");
    assert_eq!(outcome.outputs["perf-status"], "passed");
    assert_eq!(outcome.outputs["load-test-status"], "completed");
    assert_eq!(
        read_text(
            &pods
                .volume("resolve-candidate", "output")
                .join("candidate_version.txt")
        ),
        "1"
    );
    let perf = outcome.node("attempt-1.perf-decision").unwrap();
    assert!(
        perf.detail.contains("--candidate-version=1"),
        "{}",
        perf.detail
    );
    let load_dir = pods.volume("attempt-1.load-test", "output");
    let decision_dir = pods.volume("attempt-1.perf-decision", "output");
    let run1 = rt.block_on(check_run(
        &client,
        &load_dir,
        &decision_dir,
        &Expect {
            version: "1",
            decision: "passed",
            mode: "absolute",
            concurrency: CONCURRENCY,
            dataset_name: s("eval-v1"),
            dataset_source: s("s3://e2e-eval-data/tiny-lora/eval.jsonl"),
            baseline_run: None,
        },
    ));

    // ---- a slower server (4x TTFT and ITL) on the same port; the candidate is now v2
    sim.stop();
    let sim = SimProcess::start(&sim_bin, port, &sim_args(2, 4), &w.join("sim-2.log"));
    rt.block_on(client.set_alias(MODEL, "eval-passed", "2"))
        .unwrap();
    settle(&prom);

    // ---- v2 as the Kubernetes Jobs run it (env from the base's ConfigMaps)
    let base = kustomize::build(&root.join("deploy/kustomize/base")).unwrap();
    let v2 = w.join("v2");
    let results = v2.join("results");
    std::fs::create_dir_all(&results).unwrap();
    let maps: Vec<(String, String)> = [("/data", w.join("data")), ("/results", results.clone())]
        .iter()
        .map(|(src, dst)| (s(src), dst.display().to_string()))
        .collect();
    let pairs = |p: &[(&str, String)]| -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (s(k), v.clone())).collect()
    };
    let mut env = vec![
        ("MLFLOW_TRACKING_URI", s(mlflow.url())),
        ("MODEL_NAME", s(MODEL)),
        ("CANDIDATE_ALIAS", s("eval-passed")),
        ("LOG_FORMAT", s("text")),
    ];
    env.extend(FLOORS.iter().map(|(k, v)| {
        let var: &str = match *k {
            "max-p95-latency" => "MAX_P95_LATENCY",
            "max-p95-ttft" => "MAX_P95_TTFT",
            "min-throughput" => "MIN_THROUGHPUT",
            _ => "MIN_SUCCESS_RATE",
        };
        (var, s(v))
    }));
    // the load-test Job's init container: the version the alias points at now, before the load
    let step = base
        .render("resolve-candidate", &pairs(&env))
        .unwrap()
        .map_paths(&maps)
        .and_then(|st| st.with_bin_dir(&bin_dir))
        .unwrap();
    run_ok(&step, &v2.join("resolve-candidate.log"));
    assert_eq!(read_text(&results.join("candidate_version.txt")), "2");
    // whatever moves the alias after that, the decision judges the version resolved (and loaded)
    rt.block_on(client.set_alias(MODEL, "eval-passed", "1"))
        .unwrap();
    let step = base
        .render(
            "load-test",
            &pairs(&[
                ("VLLM_URL", sim.url()),
                ("ADAPTER_NAME", s(ADAPTER)),
                ("CONCURRENCY", s(CONCURRENCY)),
                ("MAX_TOKENS", s(MAX_TOKENS)),
                ("PROMETHEUS_URL", prom.url()),
                ("PROMETHEUS_JOB", s(JOB)),
                ("SCRAPE_INTERVAL", s("auto")),
                ("WAIT_READY", s("60s")),
                ("LOG_FORMAT", s("text")),
            ]),
        )
        .unwrap()
        .map_paths(&maps)
        .and_then(|st| st.with_bin_dir(&bin_dir))
        .unwrap();
    run_ok(&step, &v2.join("load-test.log"));
    let step = base
        .render("perf-decision", &pairs(&env))
        .unwrap()
        .map_paths(&maps)
        .and_then(|st| st.with_bin_dir(&bin_dir))
        .unwrap();
    // a failed decision is a result: exit 0 (FAIL_ON_REJECT=false in the ConfigMap)
    run_ok(&step, &v2.join("perf-decision.log"));

    // The Jobs' ConfigMap sets no EVAL_DATA_VERSION / SOURCE: dataset eval-<digest>, the local path.
    let digest = read_json(&results.join("load_test_results.json"))["eval_data"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    rt.block_on(check_run(
        &client,
        &results,
        &results,
        &Expect {
            version: "2",
            decision: "failed",
            mode: "comparative",
            concurrency: CONCURRENCY,
            dataset_name: format!("eval-{digest}"),
            dataset_source: eval.display().to_string(),
            baseline_run: Some(&run1),
        },
    ));
    let p95 = |dir: &Path| {
        num(&read_json(&dir.join("load_test_results.json"))["server"]["e2e_latency_s"]["p95"])
    };
    let (slow, fast) = (p95(&results).unwrap(), p95(&load_dir).unwrap());
    assert!(
        slow > fast,
        "the slowed server's P95 E2E {slow} > the baseline's {fast}"
    );
    let v1_tag = rt.block_on(client.get_model_version(MODEL, "1")).unwrap();
    assert_eq!(
        v1_tag.tag("perf_decision"),
        Some("passed"),
        "v1 keeps its verdict"
    );
    drop(sim);
}
