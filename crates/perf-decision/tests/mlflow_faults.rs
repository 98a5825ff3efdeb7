//! Faults a real MLflow cannot be made to show, against a mock server: a 503 that clears, a
//! hang, a malformed body, a failure after the run exists, a 401. After every failure the
//! output directory says `error` and holds no decision.

use std::path::Path;
use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use serde_json::json;
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd,
    spawn_perf_decision as spawn_decision, write_results,
};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API: &str = "/api/2.0/mlflow";

fn ok(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

async fn mount_model(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(format!("{API}/registered-models/get")))
        .respond_with(ok(json!({"registered_model": {"name": "m"}})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/model-versions/get")))
        .respond_with(ok(json!({"model_version": {
            "name": "m", "version": "1", "source": "s3://bucket/adapters/v1", "status": "READY"}})))
        .mount(server)
        .await;
}

/// Runs the binary against `server` (off the async runtime, so the mock keeps serving).
async fn run(server: &MockServer, out: &Path, extra: &[&str]) -> (i32, String, Duration) {
    let results = write_results(out.parent().unwrap(), "r.json", &results(GOOD, "a"));
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", server.uri())
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m", "--candidate-version=1"])
        .arg(format!("--output-dir={}", out.display()))
        .args(extra);
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (
        output.status.code().unwrap_or(-1),
        stderr,
        started.elapsed(),
    )
}

async fn hits(server: &MockServer, p: &str) -> usize {
    let full = format!("{API}/{p}");
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == full)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_that_clears_is_retried_and_the_decision_made() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/registered-models/get")))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream connect error"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_model(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/experiments/get-by-name")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment"})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stderr, _) = run(&server, &out, &["--dry-run"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    // the 503, its retry, then the read of the model's aliases for standing overrides
    assert_eq!(hits(&server, "registered-models/get").await, 3);
    assert_eq!(status(&out), "passed");
    let d = decision(&out);
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["mode"], "absolute");
    assert_eq!(d["mlflow"]["run_id"], serde_json::Value::Null);
    assert_eq!(d["model_version_source"], "s3://bucket/adapters/v1");
    // a dry run writes nothing
    let writes = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .count();
    assert_eq!(writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_times_out_with_a_clear_error_and_no_decision() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stderr, took) = run(
        &server,
        &out,
        &["--mlflow-timeout=500ms", "--mlflow-retries=1"],
    )
    .await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "GET registered-models/get: timed out after 500ms per attempt (2 attempt(s))"
        ),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_clear_error_and_no_decision() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"registered_model": {"name": "m""#),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stderr, _) = run(&server, &out, &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("GET registered-models/get: malformed response (http 200)"),
        "{stderr}"
    );
    assert_eq!(hits(&server, "registered-models/get").await, 1);
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_run_exists_marks_it_failed() {
    let server = MockServer::start().await;
    mount_model(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/experiments/get-by-name")))
        .respond_with(ok(json!({"experiment": {"experiment_id": "7",
            "name": "vllm-lora-performance", "artifact_location": "mlflow-artifacts:/7",
            "lifecycle_stage": "active"}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/search")))
        .respond_with(ok(json!({})))
        // the baseline, the drift history, then an earlier recording of this very decision (a rerun)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/create")))
        .respond_with(ok(
            json!({"run": {"info": {"run_id": "abc", "experiment_id": "7",
            "status": "RUNNING", "artifact_uri": "mlflow-artifacts:/7/abc/artifacts",
            "lifecycle_stage": "active"}, "data": {}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/log-batch")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error_code": "INTERNAL_ERROR", "message": "database is locked"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/update")))
        .and(body_partial_json(
            json!({"run_id": "abc", "status": "FAILED"}),
        ))
        .respond_with(ok(
            json!({"run_info": {"run_id": "abc", "experiment_id": "7",
            "status": "FAILED", "artifact_uri": "x"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stderr, _) = run(&server, &out, &["--mlflow-retries=1"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot log params and metrics: POST runs/log-batch: mlflow error INTERNAL_ERROR (http 500): database is locked"),
        "{stderr}"
    );
    assert_eq!(hits(&server, "runs/log-batch").await, 2);
    assert_eq!(hits(&server, "runs/set-tag").await, 0, "never tagged");
    assert_eq!(
        hits(&server, "registered-models/alias").await,
        0,
        "no alias moved"
    );
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_at_once_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"mlflow\"")
                .set_body_string("You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html"),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut c = cmd();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    c.env("MLFLOW_TRACKING_URI", server.uri())
        .env("MLFLOW_TRACKING_USERNAME", "admin")
        .env("MLFLOW_TRACKING_PASSWORD", "not-the-Password-99")
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m"])
        .arg(format!("--output-dir={}", out.display()));
    let output = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("GET registered-models/get: http 401 (check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN): You are not authenticated."),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-Password-99"),
        "password leaked: {stderr}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_recording_exits_4_and_marks_the_run_killed() {
    let server = MockServer::start().await;
    mount_model(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/experiments/get-by-name")))
        .respond_with(ok(json!({"experiment": {"experiment_id": "7",
            "name": "vllm-lora-performance", "lifecycle_stage": "active"}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/search")))
        .respond_with(ok(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/create")))
        .respond_with(ok(
            json!({"run": {"info": {"run_id": "abc", "experiment_id": "7",
            "status": "RUNNING", "artifact_uri": "mlflow-artifacts:/7/abc/artifacts"}}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/log-batch")))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/update")))
        .and(body_partial_json(
            json!({"run_id": "abc", "status": "KILLED"}),
        ))
        .respond_with(ok(
            json!({"run_info": {"run_id": "abc", "experiment_id": "7",
            "status": "KILLED"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let mut child = spawn_decision(&server.uri(), &results, &out);
    // wait until the step hangs in log-batch, i.e. the run exists
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits(&server, "runs/log-batch").await == 0 {
        assert!(Instant::now() < deadline, "log-batch never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    let (status_code, stderr) = output;
    assert_eq!(status_code.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("aborted by a signal before the decision was recorded"),
        "{stderr}"
    );
    assert_no_decision(&out);
}
