//! The claims (aliases, version tags) against a mock MLflow, for the faults a real server can't
//! be made to show: a claim is made only once the run holding its evidence is FINISHED, and a
//! failure or signal while claims are written undoes them. Also the early refusals that must
//! write nothing (an empty search reply, a version not READY, a deleted experiment in a dry
//! run) and the absolute-mode warning.

use std::path::Path;
use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use serde_json::{Value, json};
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd,
    spawn_perf_decision as spawn_decision, write_results,
};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const API: &str = "/api/2.0/mlflow";

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn forbidden() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_string("Permission denied")
}

/// `runs/update` answering with the status asked for.
struct EchoStatus;

impl Respond for EchoStatus {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        ok(json!({"run_info": {"run_id": "abc", "experiment_id": "7",
            "status": body["status"], "artifact_uri": "mlflow-artifacts:/7/abc/artifacts"}}))
    }
}

/// Where the aliases and version 1's tags stand before the step.
struct Before {
    aliases: Value,
    tags: Value,
}

/// perf-passed on version 3, perf-failed on version 2; version 1 tagged by an older run.
fn history() -> Before {
    Before {
        aliases: json!([{"alias": "perf-passed", "version": "3"},
                        {"alias": "perf-failed", "version": "2"}]),
        tags: json!([{"key": "perf_decision", "value": "failed"},
                     {"key": "perf_run_id", "value": "old-run"}]),
    }
}

/// A first run: no alias, no tag.
fn blank() -> Before {
    Before {
        aliases: json!([]),
        tags: json!([]),
    }
}

/// Every call of a recording step answered as a healthy MLflow would; mount faults before this
/// (with a higher priority) to override one call.
async fn mount_healthy(server: &MockServer, before: &Before) {
    let get = |p: &str| Mock::given(method("GET")).and(path(format!("{API}/{p}")));
    let post = |p: &str| Mock::given(method("POST")).and(path(format!("{API}/{p}")));
    get("registered-models/get")
        .respond_with(ok(
            json!({"registered_model": {"name": "m", "aliases": before.aliases}}),
        ))
        .mount(server)
        .await;
    get("model-versions/get")
        .respond_with(ok(json!({"model_version": {"name": "m", "version": "1",
            "source": "s3://bucket/adapters/v1", "status": "READY", "tags": before.tags}})))
        .mount(server)
        .await;
    get("experiments/get-by-name")
        .respond_with(ok(json!({"experiment": {"experiment_id": "7",
            "name": "vllm-lora-performance", "lifecycle_stage": "active"}})))
        .mount(server)
        .await;
    post("runs/search")
        .respond_with(ok(json!({})))
        .mount(server)
        .await;
    post("runs/create")
        .respond_with(ok(
            json!({"run": {"info": {"run_id": "abc", "experiment_id": "7",
            "status": "RUNNING", "artifact_uri": "mlflow-artifacts:/7/abc/artifacts"}}}),
        ))
        .mount(server)
        .await;
    post("runs/update")
        .respond_with(EchoStatus)
        .mount(server)
        .await;
    for p in [
        "runs/log-batch",
        "runs/log-inputs",
        "runs/set-tag",
        "registered-models/alias",
        "model-versions/set-tag",
    ] {
        post(p).respond_with(ok(json!({}))).mount(server).await;
    }
    for p in ["registered-models/alias", "model-versions/delete-tag"] {
        Mock::given(method("DELETE"))
            .and(path(format!("{API}/{p}")))
            .respond_with(ok(json!({})))
            .mount(server)
            .await;
    }
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

/// The writes the server received, in order: `METHOD path body`.
async fn writes(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| {
            let p = r.url.path().trim_start_matches(API).trim_start_matches('/');
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            format!("{} {p} {body}", r.method)
        })
        .collect()
}

/// The writes that claim something about a model version (aliases and version tags).
async fn claims(server: &MockServer) -> Vec<String> {
    writes(server)
        .await
        .into_iter()
        .filter(|w| w.contains("registered-models/alias") || w.contains("model-versions/"))
        .collect()
}

fn step(server: &MockServer, dir: &Path, extra: &[&str]) -> assert_cmd::Command {
    let results = write_results(dir, "r.json", &results(GOOD, "a"));
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", server.uri())
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m", "--candidate-version=1"])
        .arg(format!("--output-dir={}", dir.join("out").display()))
        .args(extra);
    if !extra.iter().any(|a| a.starts_with("--mlflow-retries")) {
        c.arg("--mlflow-retries=0");
    }
    c
}

/// Runs the step (off the async runtime, so the mock keeps serving): exit code and stderr.
async fn run(server: &MockServer, dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut c = step(server, dir, extra);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn alias_post(alias: &str, version: &str) -> String {
    format!(
        r#"POST registered-models/alias {{"alias":"{alias}","name":"m","version":"{version}"}}"#
    )
}

fn alias_delete(alias: &str) -> String {
    format!(r#"DELETE registered-models/alias {{"alias":"{alias}","name":"m"}}"#)
}

fn tag_post(key: &str, value: &str) -> String {
    format!(
        r#"POST model-versions/set-tag {{"key":"{key}","name":"m","value":"{value}","version":"1"}}"#
    )
}

fn tag_delete(key: &str) -> String {
    format!(r#"DELETE model-versions/delete-tag {{"key":"{key}","name":"m","version":"1"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_recording_claims_only_after_the_run_is_finished() {
    let server = MockServer::start().await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let all = writes(&server).await;
    let finished = all
        .iter()
        .position(|w| w.contains("runs/update") && w.contains("FINISHED"))
        .expect("run FINISHED");
    let first_claim = all
        .iter()
        .position(|w| w.contains("registered-models/alias") || w.contains("model-versions/"))
        .expect("claims made");
    assert!(finished < first_claim, "a claim before FINISHED: {all:#?}");
    // the evidence is complete before FINISHED
    for evidence in [
        "runs/log-batch",
        "runs/log-inputs",
        "load_test_results.json",
        "perf_decision.json",
    ] {
        let at = all.iter().position(|w| w.contains(evidence)).unwrap();
        assert!(at < finished, "{evidence} after FINISHED: {all:#?}");
    }
    // the run's verdict tag, which makes it a baseline, comes after every other claim
    let verdict_tag = all
        .iter()
        .position(|w| w.contains("runs/set-tag") && w.contains("perf_decision"))
        .expect("run tagged");
    let last_claim = all
        .iter()
        .rposition(|w| w.contains("registered-models/alias") || w.contains("model-versions/"))
        .unwrap();
    assert!(
        verdict_tag > last_claim,
        "the run was tagged before its claims landed: {all:#?}"
    );
    assert_eq!(
        claims(&server).await,
        [
            tag_post("perf_decision", "passed"),
            tag_post("perf_run_id", "abc"),
            alias_post("perf-passed", "1"),
            alias_delete("perf-failed"),
        ]
    );
    assert_eq!(status(&dir.path().join("out")), "passed");
    // the uploaded decision names the alias it was about to set
    let uploaded = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path().ends_with("perf_decision.json"))
        .unwrap();
    let doc: Value = serde_json::from_slice(&uploaded.body).unwrap();
    assert_eq!(doc["mlflow"]["alias_set"], "perf-passed");
    assert_eq!(doc["mlflow"]["alias_removed"], "perf-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_artifact_leaves_no_claim() {
    // the reviewer's case: the artifact PUT of perf_decision.json refused
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(
            "/api/2.0/mlflow-artifacts/artifacts/7/abc/artifacts/perf_decision.json",
        ))
        .respond_with(forbidden())
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot upload perf_decision.json"),
        "{stderr}"
    );
    assert_eq!(
        claims(&server).await,
        Vec::<String>::new(),
        "a claim was made"
    );
    let all = writes(&server).await;
    assert!(!all.iter().any(|w| w.contains("runs/set-tag")), "{all:#?}");
    assert!(
        all.last().unwrap().contains(r#""status":"FAILED""#),
        "{all:#?}"
    );
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_alias_moved_puts_everything_back() {
    // the last claim (deleting the other alias) is refused: every earlier claim is undone
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{API}/registered-models/alias")))
        .and(body_partial_json(json!({"alias": "perf-failed"})))
        .respond_with(forbidden())
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot delete alias `perf-failed` of `m`"),
        "{stderr}"
    );
    assert_eq!(
        claims(&server).await,
        [
            tag_post("perf_decision", "passed"),
            tag_post("perf_run_id", "abc"),
            alias_post("perf-passed", "1"),
            alias_delete("perf-failed"),
            // undone, newest first; the refused delete changed nothing
            alias_post("perf-passed", "3"),
            tag_post("perf_run_id", "old-run"),
            tag_post("perf_decision", "failed"),
        ]
    );
    // the run was FINISHED, then marked FAILED: it can never be a baseline
    let all = writes(&server).await;
    assert!(
        all.last().unwrap().contains(r#""status":"FAILED""#),
        "{all:#?}"
    );
    assert!(
        stderr.contains("undone: alias `perf-passed` back on version 3"),
        "{stderr}"
    );
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_set_that_errors_is_undone_as_if_it_had_happened() {
    // a 5xx may come after the server acted: the set is undone (deleted: there was none before)
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/registered-models/alias")))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream reset"))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &blank()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        claims(&server).await,
        [
            tag_post("perf_decision", "passed"),
            tag_post("perf_run_id", "abc"),
            alias_post("perf-passed", "1"),
            alias_delete("perf-passed"),
            tag_delete("perf_run_id"),
            tag_delete("perf_decision"),
        ]
    );
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_claiming_undoes_the_claims_and_kills_the_run() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{API}/registered-models/alias")))
        .and(body_partial_json(json!({"alias": "perf-failed"})))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let out = dir.path().join("out");
    let mut child = spawn_decision(&server.uri(), &results, &out);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !claims(&server).await.contains(&alias_delete("perf-failed")) {
        assert!(Instant::now() < deadline, "the alias delete never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status.code(), err)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(4), "{stderr}");
    let c = claims(&server).await;
    // the pending delete may have happened: perf-failed goes back on version 2 too
    assert_eq!(
        c[4..],
        [
            alias_post("perf-failed", "2"),
            alias_post("perf-passed", "3"),
            tag_post("perf_run_id", "old-run"),
            tag_post("perf_decision", "failed"),
        ],
        "{c:#?}"
    );
    let all = writes(&server).await;
    assert!(
        all.last().unwrap().contains(r#""status":"KILLED""#),
        "{all:#?}"
    );
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_mlflow_leaves_error_not_an_older_pass() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("perf_status.txt"), "passed\n").unwrap();
    std::fs::write(out.join("perf_decision.json"), r#"{"decision":"passed"}"#).unwrap();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perf-decision"))
        .env_clear()
        .env("MLFLOW_TRACKING_URI", server.uri())
        .arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m"])
        .arg(format!("--output-dir={}", out.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "MLflow never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_decision(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_search_reply_is_an_error_not_absolute_mode() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/search")))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot search MLflow for the baseline run: POST runs/search: malformed response (http 200): empty body"),
        "{stderr}"
    );
    assert_eq!(writes(&server).await.len(), 1, "only the search was sent");
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_create_answered_502_is_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/create")))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &["--mlflow-retries=3"]).await;
    assert_eq!(code, 3, "{stderr}");
    let creates = writes(&server)
        .await
        .iter()
        .filter(|w| w.contains("runs/create"))
        .count();
    assert_eq!(creates, 1, "a second runs/create could make a second run");
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_not_ready_is_refused_before_anything_is_written() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/model-versions/get")))
        .respond_with(ok(json!({"model_version": {"name": "m", "version": "1",
            "status": "PENDING_REGISTRATION"}})))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "version 1 of registered model `m` is not READY (status PENDING_REGISTRATION)"
        ),
        "{stderr}"
    );
    assert_eq!(writes(&server).await, Vec::<String>::new());
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_refuses_a_deleted_experiment_as_a_recording_run_does() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/experiments/get-by-name")))
        .respond_with(ok(json!({"experiment": {"experiment_id": "7",
            "name": "vllm-lora-performance", "lifecycle_stage": "deleted"}})))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &["--dry-run"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("experiment `vllm-lora-performance` (id 7) is deleted; restore it"),
        "{stderr}"
    );
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_mode_by_default_is_a_warning_and_env_names_are_the_projects() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/experiments/get-by-name")))
        .and(query_param("experiment_name", "perf-experiment-x"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment"})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &history()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = step(&server, dir.path(), &[]);
    c.env("PERF_EXPERIMENT_NAME", "perf-experiment-x")
        .env("PERF_DRY_RUN", "true");
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let warning = "absolute mode: no baseline in experiment `perf-experiment-x` for model `m` (the experiment does not exist; a recording run would create it)";
    assert!(
        stderr.contains("WARN") && stderr.contains(warning),
        "{stderr}"
    );
    let d = decision(&dir.path().join("out"));
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["mode"], "absolute");
    assert!(
        d["warnings"].to_string().contains(warning),
        "{}",
        d["warnings"]
    );
    assert_eq!(
        writes(&server).await,
        Vec::<String>::new(),
        "a dry run wrote"
    );
}
