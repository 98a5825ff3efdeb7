//! `perf-decision` against a REAL `mlflow server` whose artifact root is an S3 bucket on a REAL
//! S3-compatible server (moto, from PyPI): `--default-artifact-root s3://<bucket>/mlartifacts
//! --no-serve-artifacts`, the usual production setup. The step uploads the two artifacts
//! straight to the bucket (`MLFLOW_S3_ENDPOINT_URL` and the AWS variables in its environment);
//! MLflow lists them through boto3, and the bytes are read back from moto directly.
//!
//! Failures: an unreachable endpoint (retried, bounded) and wrong credentials (a 403, not
//! retried) end with exit 3 and one clear line, `perf_status.txt` = `error`, no decision file,
//! the run marked FAILED, no alias moved, and no secret in the output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use perf_gate::mlflow::types::{Run, SearchRuns};
use perf_gate::mlflow::{MlflowClient, MlflowConfig};
use test_support::mlflow::moto::{ACCESS_KEY, BUCKET};
use test_support::mlflow::{MlflowServer, MotoServer};
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd, write_results,
};

const MODEL: &str = "mistral-7b-lora";
/// A secret that must never show in perf-decision's output (moto accepts any in default mode).
const SECRET: &str = "perf-gate-secret-must-not-be-logged";

struct Step {
    code: i32,
    stdout: String,
    stderr: String,
    out: PathBuf,
    took: Duration,
}

/// Runs the binary (off the async runtime) against MLflow at `url`, with `MLFLOW_S3_ENDPOINT_URL`
/// = `s3_endpoint` and the dummy AWS credentials (`secret` as the secret key).
async fn perf_decision(
    url: &str,
    s3_endpoint: &str,
    extra_env: &[(&str, &str)],
    results: &Path,
    out: PathBuf,
    args: &[&str],
) -> Step {
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_S3_ENDPOINT_URL", s3_endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.arg(format!("--load-test-results={}", results.display()))
        .args(args)
        .arg(format!("--output-dir={}", out.display()));
    let start = Instant::now();
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let step = Step {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
        out,
        took: start.elapsed(),
    };
    println!(
        "--- perf-decision {args:?} (S3 endpoint {s3_endpoint}) -> exit {} in {:.1?}\n{}\n{}",
        step.code,
        step.took,
        step.stdout,
        step.stderr.lines().last().unwrap_or_default()
    );
    assert!(
        !step.stdout.contains(SECRET) && !step.stderr.contains(SECRET),
        "the AWS secret leaked into the output:\n{}\n{}",
        step.stdout,
        step.stderr
    );
    step
}

/// The runs of experiment `name`, newest first.
async fn runs(client: &MlflowClient, name: &str) -> Vec<Run> {
    let exp = client
        .get_experiment_by_name(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("experiment {name} missing"));
    client
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp.experiment_id],
            filter: String::new(),
            order_by: vec!["attributes.start_time DESC".into()],
            max_results: 100,
            page_token: None,
        })
        .await
        .unwrap()
        .runs
}

async fn alias_names(client: &MlflowClient) -> Vec<String> {
    let mut a: Vec<String> = client
        .get_registered_model(MODEL)
        .await
        .unwrap()
        .aliases
        .into_iter()
        .map(|a| a.alias)
        .collect();
    a.sort();
    a
}

/// Registers [`MODEL`] with version 1 (source in the bucket, as production would have it).
async fn register(client: &MlflowClient) {
    client.create_registered_model(MODEL).await.unwrap();
    let v = client
        .create_model_version(MODEL, &format!("s3://{BUCKET}/adapters/v1"), None)
        .await
        .unwrap();
    assert_eq!(v.version, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_go_straight_to_the_s3_root_and_mlflow_lists_them() {
    let t0 = Instant::now();
    let (moto, server) = tokio::task::spawn_blocking(|| {
        let moto = MotoServer::start();
        let server = MlflowServer::start_s3(&moto);
        (moto, server)
    })
    .await
    .unwrap();
    println!(
        "moto + mlflow (s3 artifact root) up in {:.1?}",
        t0.elapsed()
    );
    assert_eq!(
        server.artifact_root(),
        Some(format!("s3://{BUCKET}/mlartifacts").as_str())
    );
    let url = server.url().to_string();
    let client = MlflowClient::new(&MlflowConfig::new(&url).unwrap()).unwrap();
    register(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let results_path = write_results(dir.path(), "v1.json", &results(GOOD, "adapter-v1"));

    let s = perf_decision(
        &url,
        moto.url(),
        &[],
        &results_path,
        dir.path().join("out"),
        &["--model-name=mistral-7b-lora", "--candidate-version=1"],
    )
    .await;
    assert_eq!(
        s.code,
        0,
        "{}\n--- mlflow log\n{}\n--- moto log\n{}",
        s.stderr,
        server.log_tail(),
        moto.log_tail()
    );
    assert!(
        s.stdout.contains("decision: passed (absolute mode)"),
        "{}",
        s.stdout
    );
    assert_eq!(status(&s.out), "passed");
    let d = decision(&s.out);
    let run_id = d["mlflow"]["run_id"].as_str().unwrap().to_string();

    let run = client.get_run(&run_id).await.unwrap();
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.data.tag("perf_decision"), Some("passed"));
    let uri = &run.info.artifact_uri;
    assert!(
        uri.starts_with(&format!("s3://{BUCKET}/mlartifacts/"))
            && uri.ends_with(&format!("/{run_id}/artifacts")),
        "{uri}"
    );
    assert_eq!(
        run.data.param("model_version_source"),
        Some(format!("s3://{BUCKET}/adapters/v1").as_str())
    );

    // MLflow itself (boto3 against moto) sees the files under the run
    let listed = client.list_artifacts(&run_id, None).await.unwrap();
    assert_eq!(listed.root_uri.as_deref(), Some(uri.as_str()));
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

    // the bytes, read from moto directly: the results file as load-test wrote it, and the
    // decision as written locally (the local file ends with a newline)
    let prefix = uri.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    let uploaded_results = moto
        .get_object(&format!("{prefix}/load_test_results.json"))
        .expect("load_test_results.json is in the bucket");
    assert_eq!(uploaded_results, std::fs::read(&results_path).unwrap());
    let uploaded_decision = moto
        .get_object(&format!("{prefix}/perf_decision.json"))
        .expect("perf_decision.json is in the bucket");
    let local_decision = std::fs::read(s.out.join("perf_decision.json")).unwrap();
    assert_eq!(
        [uploaded_decision.as_slice(), b"\n"].concat(),
        local_decision
    );
    assert_eq!(
        moto.get_object(&format!("{prefix}/nothing-else.json")),
        None,
        "get_object tells a missing key from a present one"
    );

    assert_eq!(alias_names(&client).await, ["perf-passed"]);
    let v1 = client.get_model_version(MODEL, "1").await.unwrap();
    assert_eq!(v1.tag("perf_run_id"), Some(run_id.as_str()));
    drop(server);
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failures_exit_3_with_one_line_and_mark_the_run_failed() {
    let t0 = Instant::now();
    let (moto, locked, server) = tokio::task::spawn_blocking(|| {
        let moto = MotoServer::start();
        let locked = MotoServer::start_requiring_auth();
        let server = MlflowServer::start_s3(&moto);
        (moto, locked, server)
    })
    .await
    .unwrap();
    println!(
        "moto x2 + mlflow (s3 artifact root) up in {:.1?}",
        t0.elapsed()
    );
    let url = server.url().to_string();
    let client = MlflowClient::new(&MlflowConfig::new(&url).unwrap()).unwrap();
    register(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let results_path = write_results(dir.path(), "v1.json", &results(GOOD, "adapter-v1"));
    let exp = "s3-failures";
    let args = [
        "--model-name=mistral-7b-lora",
        "--candidate-version=1",
        "--experiment-name=s3-failures",
    ];

    // 1. nothing listens on the endpoint: retried with the client's bounds, then exit 3
    let closed = format!("http://127.0.0.1:{}", test_support::free_port());
    let s = perf_decision(
        &url,
        &closed,
        &[("RUST_LOG", "debug")],
        &results_path,
        dir.path().join("out-unreachable"),
        &args,
    )
    .await;
    assert_eq!(s.code, 3, "{}", s.stderr);
    let line = s.stderr.lines().last().unwrap();
    assert!(
        line.starts_with("perf-decision: error: cannot upload load_test_results.json: PUT s3://perf-gate-artifacts/mlartifacts/")
            && line.contains("/artifacts/load_test_results.json: no answer after 4 retries: ")
            && line.ends_with(&format!("(is the store at {closed} reachable? MLFLOW_S3_ENDPOINT_URL names an S3-compatible store)")),
        "{line}"
    );
    assert!(
        s.stderr.contains("backing off"),
        "object_store retried (and said so):\n{}",
        s.stderr
    );
    assert!(s.took < Duration::from_secs(90), "bounded: {:?}", s.took);
    assert_no_decision(&s.out);
    let r = runs(&client, exp).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].info.status, "FAILED", "the run must not stay RUNNING");
    assert_eq!(r[0].data.tag("perf_decision"), None);
    assert!(
        alias_names(&client).await.is_empty(),
        "no alias moves when the artifacts cannot be written"
    );

    // 2. a store that does not know the access key: 403, not retried, exit 3 with a hint
    let s = perf_decision(
        &url,
        locked.url(),
        &[],
        &results_path,
        dir.path().join("out-forbidden"),
        &args,
    )
    .await;
    assert_eq!(s.code, 3, "{}", s.stderr);
    let line = s.stderr.lines().last().unwrap();
    assert!(
        line.starts_with("perf-decision: error: cannot upload load_test_results.json: PUT s3://perf-gate-artifacts/mlartifacts/")
            && line.contains("/artifacts/load_test_results.json: http 403 Forbidden InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records. (check AWS_ACCESS_KEY_ID"),
        "{line}\n--- moto log\n{}",
        locked.log_tail()
    );
    assert!(
        !s.stderr.contains("retrying") && !s.stderr.contains("backing off"),
        "a 403 is an answer, not retried:\n{}",
        s.stderr
    );
    assert_no_decision(&s.out);
    let r = runs(&client, exp).await;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].info.status, "FAILED");
    assert!(alias_names(&client).await.is_empty());
    for run in &r {
        let prefix = run
            .info
            .artifact_uri
            .strip_prefix(&format!("s3://{BUCKET}/"))
            .unwrap();
        assert_eq!(
            moto.get_object(&format!("{prefix}/load_test_results.json")),
            None,
            "nothing landed in the bucket MLflow reads either"
        );
    }
    drop(server);
    drop(locked);
    drop(moto);
}
