//! The fault matrix of issue 9 for `perf-decision`, the rows no other test file covers (the doc
//! `docs/failure-behaviour.md` lists every row and the test that guards it). After every
//! failure the output directory says `error` and holds no `perf_decision.json`, and MLflow holds
//! no claim (alias, version tag) of this run.
//!
//! A real MLflow behind the fault proxy where MLflow can show the fault (an answer refused at
//! any one call); wiremock only for a call that hangs (to place a signal inside it); a FIFO for
//! a results file that is still being read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use perf_gate::mlflow::{MlflowClient, MlflowConfig};
use serde_json::json;
use test_support::fault_proxy::{Action, FaultProxy, Rule};
use test_support::mlflow::MlflowServer;
use test_support::steps::{
    assert_no_decision, bin, decision, decision_status as status, write_results,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last stderr line: the binary's one error line.
fn last_line(o: &Output) -> String {
    stderr(o).lines().last().unwrap_or_default().to_string()
}

/// `perf-decision` with a clean env for model `m`, version 1, judging `results`.
fn step(uri: Option<&str>, results: &Path, out: &Path) -> Command {
    step_for("m", uri, results, out)
}

/// `perf-decision` with a clean env for `model`, version 1, judging `results`.
fn step_for(model: &str, uri: Option<&str>, results: &Path, out: &Path) -> Command {
    let mut c = Command::new(bin("perf-decision"));
    c.env_clear()
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .arg(format!("--load-test-results={}", results.display()))
        .arg(format!("--model-name={model}"))
        .arg("--candidate-version=1")
        .arg(format!("--output-dir={}", out.display()));
    if let Some(uri) = uri {
        c.env("MLFLOW_TRACKING_URI", uri);
    }
    c
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `sig` (`TERM`, `INT`) to `child`.
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig}");
}

fn good_results(dir: &Path) -> PathBuf {
    write_results(dir, "r.json", &results(GOOD, "a"))
}

// ---------------------------------------------------------------------------------------------
// MLflow
// ---------------------------------------------------------------------------------------------

/// MLflow down (nothing listening): retried on connect errors, then exit 3 with a line naming
/// the call and the server; no decision.
#[test]
fn mlflow_down_is_a_dependency_error_and_no_decision() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let url = format!("http://127.0.0.1:{}", test_support::free_port());
    let started = Instant::now();
    let o = step(Some(&url), &good_results(dir.path()), &out)
        .arg("--mlflow-retries=1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(20));
    let line = last_line(&o);
    assert!(
        line.starts_with(
            "perf-decision: error: cannot read registered model `m`: GET registered-models/get: "
        ),
        "{line}"
    );
    assert!(
        line.contains(&format!("cannot reach mlflow at {url} after 2 attempt(s)")),
        "{line}"
    );
    assert_no_decision(&out);
}

/// A model `name` with versions 1 and 2 in a fresh registry.
async fn model_with_versions(client: &MlflowClient, name: &str) {
    client.create_registered_model(name).await.unwrap();
    for v in 1..=2 {
        client
            .create_model_version(name, &format!("s3://bucket/{name}/v{v}"), None)
            .await
            .unwrap();
    }
}

/// The model's `perf-*` aliases.
async fn perf_aliases(client: &MlflowClient, name: &str) -> Vec<String> {
    let m = client.get_registered_model(name).await.unwrap();
    m.aliases
        .iter()
        .filter(|a| a.alias.starts_with("perf-"))
        .map(|a| format!("{}->{}", a.alias, a.version))
        .collect()
}

/// Each call a recording decision makes (found by recording one through the proxy), answered
/// 401 and then 403 by the proxy every time it is made, against a real MLflow: whichever call
/// it is, exit 3 with the call named, status `error`, no `perf_decision.json`, no `perf-*`
/// alias and no `perf_decision` tag on the candidate, and never a retry of a refused call.
/// The exception is the lease's release, after everything is recorded: the decision stands and
/// the lease stays behind until it expires (see the doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_401_and_403_at_each_mlflow_call_leave_no_decision_and_no_claim() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = good_results(dir.path());

    // a healthy decision through the proxy: the calls a recording makes, in order
    model_with_versions(&direct, "healthy").await;
    let proxy = FaultProxy::start(mlflow.url(), Vec::new());
    let out = dir.path().join("healthy");
    let mut c = step_for("healthy", Some(proxy.url()), &good, &out);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // artifact uploads carry the run's id in their path: one call for all of them
    const ARTIFACTS: &str = "/mlflow-artifacts/artifacts/";
    let mut calls: Vec<(String, String)> = Vec::new();
    for e in proxy.requests() {
        let mut path = e.path.split('?').next().unwrap_or_default().to_string();
        if let Some(at) = path.find(ARTIFACTS) {
            path.truncate(at + ARTIFACTS.len());
        }
        let call = (e.method.clone(), path);
        if !calls.contains(&call) {
            calls.push(call);
        }
    }
    assert!(calls.len() >= 10, "{calls:?}");

    let mut problems = Vec::new();
    for (i, (m, p)) in calls.iter().enumerate() {
        for code in [401u16, 403] {
            let model = format!("m{i}-{code}");
            model_with_versions(&direct, &model).await;
            let rule = Rule::new(Action::Respond {
                status: code,
                body: r#"{"error_code":"PERMISSION_DENIED","message":"not allowed"}"#.into(),
            })
            .method(m);
            proxy.set_rules(vec![if p.ends_with(ARTIFACTS) {
                rule.path_contains(ARTIFACTS)
            } else {
                rule.path(p)
            }]);
            let before = proxy.requests().len();
            let out = dir.path().join(&model);
            let mut c = step_for(&model, Some(proxy.url()), &good, &out);
            // an experiment of its own, so every run creates one (as the first run does)
            c.arg(format!("--experiment-name=exp-{model}"));
            let o = tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap();
            let refused: Vec<String> = proxy.requests()[before..]
                .iter()
                .filter(|e| e.rule == Some(0))
                .map(|e| e.body.clone())
                .collect();
            let what = format!("{code} on {m} {p}");
            let lease_release = m == "DELETE" && p.ends_with("registered-models/delete");
            if lease_release {
                if o.status.code() != Some(0) || status(&out) != "passed" {
                    problems.push(format!(
                        "{what}: exit {:?}\n{}",
                        o.status.code(),
                        stderr(&o)
                    ));
                }
                continue;
            }
            let short = p
                .trim_start_matches("/api/2.0/")
                .trim_start_matches("mlflow/");
            let line = last_line(&o);
            println!("{what}: exit {:?}: {line}", o.status.code());
            if o.status.code() != Some(3) {
                problems.push(format!(
                    "{what}: exit {:?}\n{}",
                    o.status.code(),
                    stderr(&o)
                ));
                continue;
            }
            if !(line.starts_with("perf-decision: error: ")
                && line.contains(&format!("{m} {short}"))
                && line.contains(&format!("(http {code})")))
            {
                problems.push(format!("{what}: the line does not name the call: {line}"));
            }
            if status(&out) != "error" || out.join("perf_decision.json").exists() {
                problems.push(format!("{what}: a decision was left: {}", status(&out)));
            }
            // a refused call is never sent again (a second call with another body, e.g. the
            // run marked FAILED after FINISHED was refused, is not a retry)
            let mut distinct = refused.clone();
            distinct.dedup();
            if refused.is_empty() || distinct.len() != refused.len() {
                problems.push(format!("{what}: refused calls {refused:?}"));
            }
            let aliases = perf_aliases(&direct, &model).await;
            if !aliases.is_empty() {
                problems.push(format!("{what}: aliases left {aliases:?}"));
            }
            let v = direct.get_model_version(&model, "1").await.unwrap();
            if v.tag("perf_decision").is_some() {
                problems.push(format!(
                    "{what}: version tagged {:?}",
                    v.tag("perf_decision")
                ));
            }
        }
    }
    println!("calls refused one at a time: {calls:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n---\n"));
}

// ---------------------------------------------------------------------------------------------
// Process: signals
// ---------------------------------------------------------------------------------------------

fn ok(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A mock MLflow whose every call hangs 60 s: the step is inside its first MLflow call.
async fn hanging_mlflow() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    server
}

async fn wait_for_a_call(server: &MockServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no MLflow call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// SIGINT inside an MLflow call (before any write): exit 4 at once, the line says so, no
/// decision (SIGTERM: `mlflow_faults.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_an_mlflow_call_exits_4_with_no_decision() {
    let server = hanging_mlflow().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = spawn(&mut step(
        Some(&server.uri()),
        &good_results(dir.path()),
        &out,
    ));
    wait_for_a_call(&server).await;
    let started = Instant::now();
    signal(&child, "INT");
    let o = wait(child).await;
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        last_line(&o).contains("aborted by a signal before the decision was recorded"),
        "{}",
        stderr(&o)
    );
    assert_no_decision(&out);
}

/// A mock MLflow where the run gets created, then every write hangs 60 s: logging the
/// evidence, and the clean-up that marks the run KILLED after a signal.
async fn mlflow_hanging_after_the_run_exists() -> MockServer {
    let api = "/api/2.0/mlflow";
    let server = MockServer::start().await;
    let get = |p: &str, body: serde_json::Value| {
        Mock::given(method("GET"))
            .and(path(format!("{api}/{p}")))
            .respond_with(ok(body))
    };
    get(
        "registered-models/get",
        json!({"registered_model": {"name": "m"}}),
    )
    .mount(&server)
    .await;
    get(
        "model-versions/get",
        json!({"model_version": {"name": "m", "version": "1", "source": "s3://b/v1", "status": "READY"}}),
    )
    .mount(&server)
    .await;
    get(
        "experiments/get-by-name",
        json!({"experiment": {"experiment_id": "7", "name": "vllm-lora-performance", "lifecycle_stage": "active"}}),
    )
    .mount(&server)
    .await;
    Mock::given(method("POST"))
        .and(path(format!("{api}/runs/search")))
        .respond_with(ok(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{api}/runs/create")))
        .respond_with(ok(
            json!({"run": {"info": {"run_id": "abc", "experiment_id": "7",
            "status": "RUNNING", "artifact_uri": "mlflow-artifacts:/7/abc/artifacts"}}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(json!({})).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    server
}

async fn calls_to(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with(p))
        .count()
}

async fn wait_for_call(server: &MockServer, p: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls_to(server, p).await == 0 {
        assert!(Instant::now() < deadline, "{p} never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A first signal while the evidence is being logged starts the clean-up (the run marked
/// KILLED), which hangs; a second signal exits at once with 4: no decision, status `error`
/// (the run stays RUNNING in MLflow: never FINISHED, so never a baseline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_a_hanging_clean_up_exits_4_at_once() {
    for (first, second) in [("TERM", "TERM"), ("INT", "INT")] {
        let server = mlflow_hanging_after_the_run_exists().await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let child = spawn(&mut step(
            Some(&server.uri()),
            &good_results(dir.path()),
            &out,
        ));
        wait_for_call(&server, "runs/log-batch").await;
        signal(&child, first);
        wait_for_call(&server, "runs/update").await;
        let started = Instant::now();
        signal(&child, second);
        let o = wait(child).await;
        assert_eq!(o.status.code(), Some(4), "SIG{first} x2: {}", stderr(&o));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIG{second} took {:?}",
            started.elapsed()
        );
        assert_no_decision(&out);
    }
}

/// A signal while the results file is still being read (a FIFO whose writer is slow): once
/// the read completes the step stops (exit 4) before calling MLflow at all, with no decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_the_results_are_read_stops_before_mlflow() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("results.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let bytes = serde_json::to_vec(&results(GOOD, "a")).unwrap();
    let out = dir.path().join("out");
    let child = spawn(&mut step(Some(&server.uri()), &fifo, &out));
    // the step blocks opening the FIFO until a writer comes
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            f.write_all(&bytes[..10]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            // the reader may be gone: that is what the test looks at
            let _ = f.write_all(&bytes[10..]);
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM");
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let o = wait(child).await;
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "MLflow was called after the signal"
    );
    assert_no_decision(&out);
}

/// A signal after the claims, while the lease is being released (the release is held 3 s by
/// the proxy), against a real MLflow: the claims and files are complete, so one signal (SIGINT
/// here) is not acted on: exit 0, status `passed`, the alias on the candidate. A second one
/// (SIGTERM twice) exits at once with 4, leaving the same complete decision: files and MLflow
/// still agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_signals_after_the_claims_leave_the_decision_standing() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    let proxy = FaultProxy::start(
        mlflow.url(),
        vec![
            Rule::new(Action::delay_request(Duration::from_secs(3)))
                .method("DELETE")
                .path("/api/2.0/mlflow/registered-models/delete"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = good_results(dir.path());
    for (model, signals, code) in [
        ("once", &["INT"][..], 0),
        ("twice", &["TERM", "TERM"][..], 4),
    ] {
        model_with_versions(&direct, model).await;
        let out = dir.path().join(model);
        let before = proxy.requests().len();
        let child = spawn(&mut step_for(model, Some(proxy.url()), &good, &out));
        proxy
            .wait_for_async(Duration::from_secs(30), "the lease release", |log| {
                log[before..].iter().any(|e| e.rule == Some(0))
            })
            .await;
        for sig in signals {
            signal(&child, sig);
        }
        let o = wait(child).await;
        assert_eq!(o.status.code(), Some(code), "{model}: {}", stderr(&o));
        assert_eq!(status(&out), "passed", "{model}");
        assert_eq!(decision(&out)["decision"], "passed", "{model}");
        assert_eq!(
            perf_aliases(&direct, model).await,
            ["perf-passed->1"],
            "{model}"
        );
        let v = direct.get_model_version(model, "1").await.unwrap();
        assert_eq!(v.tag("perf_decision"), Some("passed"), "{model}");
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// An output directory that does not exist (nested) is created.
#[test]
fn a_missing_output_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a").join("b");
    let o = step(None, &good_results(dir.path()), &out)
        .arg("--no-mlflow")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status(&out), "passed");
    assert_eq!(decision(&out)["decision"], "passed");
}

/// Disk full, simulated with a file-size limit (`ulimit -f`, SIGXFSZ ignored so the write
/// fails with EFBIG instead of killing the process): the status word fits, the decision
/// documents do not (the report, written first). Exit 3, the line names the file, status
/// `error`, no decision, report or temp file.
#[test]
fn a_decision_file_that_cannot_be_written_in_full_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let c = step(None, &good_results(dir.path()), &out);
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        // 4 blocks of 512 bytes: perf_decision.json (several KB) cannot fit
        .arg("trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\"")
        .arg(c.get_program())
        .args(c.get_args())
        .arg("--no-mlflow")
        .env_clear()
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0");
    let o = limited.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let line = last_line(&o);
    assert!(
        line.starts_with("perf-decision: error: cannot write ")
            && line.contains("perf_decision_report.html"),
        "{line}"
    );
    assert_no_decision(&out);
    let tmp: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert!(!out.join("perf_decision_report.html").exists());
}

// ---------------------------------------------------------------------------------------------
// Inputs: the results file
// ---------------------------------------------------------------------------------------------

/// A NaN token (not JSON), a document of another shape, and a figure of the wrong type are
/// refused as not a valid results document (exit 2, the file named); no decision.
#[test]
fn nan_and_wrong_schema_results_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_value(results(GOOD, "a")).unwrap();
    let mut wrong_type = good.clone();
    wrong_type["client"]["successful_requests"] = json!("ninety-nine");
    let nan = serde_json::to_string(&good).unwrap().replacen(
        "\"total_requests\":100",
        "\"total_requests\":NaN",
        1,
    );
    assert!(nan.contains("NaN"), "the fixture changed: {nan}");
    let cases = [
        ("nan.json", nan),
        ("other.json", json!({"decision": "passed"}).to_string()),
        ("wrong-type.json", wrong_type.to_string()),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let o = step(None, &path, &out).arg("--no-mlflow").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        let line = last_line(&o);
        assert!(line.contains(&path.display().to_string()), "{name}: {line}");
        assert!(
            line.contains("is not a valid results document"),
            "{name}: {line}"
        );
        assert_no_decision(&out);
    }
}
