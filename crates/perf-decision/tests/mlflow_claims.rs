//! The claims (aliases, version tags) against a mock MLflow, for the faults a real server can't
//! be made to show: a claim is made only once the run holding its evidence is FINISHED, and a
//! failure or signal while claims are written undoes them. Also the early refusals that must
//! write nothing (an empty search reply, a version not READY, a deleted experiment in a dry
//! run) and the absolute-mode warning.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
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

/// A model registry and run store that remembers what it is told, so a test sees where the
/// aliases, tags and runs stand after the step, whatever order the step reads and writes in.
/// Runs created by the step are `abc`; runs named in the history exist from the start.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<State>>);

/// Name → value, sorted (aliases, tags).
type Names = BTreeMap<String, String>;

#[derive(Default)]
struct State {
    /// Registered models (the model `m` and any lease) with their aliases and tags.
    models: BTreeMap<String, (Names, Names)>,
    /// Version tags of model `m`, by version.
    versions: BTreeMap<String, BTreeMap<String, String>>,
    /// Runs: status, tags, start time.
    runs: BTreeMap<String, (String, BTreeMap<String, String>, i64)>,
}

fn kv(map: &BTreeMap<String, String>) -> Value {
    map.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn not_found(what: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "error_code": "RESOURCE_DOES_NOT_EXIST", "message": format!("{what} not found")}))
}

impl State {
    fn model(&self, name: &str) -> ResponseTemplate {
        let Some((aliases, tags)) = self.models.get(name) else {
            return not_found(name);
        };
        let aliases: Vec<Value> = aliases
            .iter()
            .map(|(a, v)| json!({"alias": a, "version": v}))
            .collect();
        ok(json!({"registered_model": {"name": name, "aliases": aliases, "tags": kv(tags)}}))
    }

    fn run(&self, id: &str) -> Value {
        let (status, tags, start) = &self.runs[id];
        json!({"info": {"run_id": id, "experiment_id": "7", "status": status,
            "start_time": start, "artifact_uri": format!("mlflow-artifacts:/7/{id}/artifacts")},
            "data": {"tags": kv(tags)}})
    }
}

impl Respond for Registry {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let q = |k: &str| {
            req.url
                .query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let b = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        let p = req
            .url
            .path()
            .trim_start_matches(API)
            .trim_start_matches('/');
        match (req.method.as_str(), p) {
            ("GET", "registered-models/get") => st.model(&q("name")),
            ("POST", "registered-models/create") => {
                let name = b("name");
                if st.models.contains_key(&name) {
                    return ResponseTemplate::new(400).set_body_json(json!({
                        "error_code": "RESOURCE_ALREADY_EXISTS",
                        "message": format!("Registered Model (name={name}) already exists.")}));
                }
                let tags = body["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        (
                            t["key"].as_str().unwrap().into(),
                            t["value"].as_str().unwrap().into(),
                        )
                    })
                    .collect();
                st.models.insert(name.clone(), (BTreeMap::new(), tags));
                st.model(&name)
            }
            ("DELETE", "registered-models/delete") => match st.models.remove(&b("name")) {
                Some(_) => ok(json!({})),
                None => not_found(&b("name")),
            },
            ("POST", "registered-models/alias") => {
                let (aliases, _) = st.models.get_mut(&b("name")).unwrap();
                aliases.insert(b("alias"), b("version"));
                ok(json!({}))
            }
            ("DELETE", "registered-models/alias") => {
                let (aliases, _) = st.models.get_mut(&b("name")).unwrap();
                aliases.remove(&b("alias"));
                ok(json!({}))
            }
            ("GET", "model-versions/get") => {
                let v = q("version");
                match st.versions.get(&v) {
                    Some(tags) => ok(json!({"model_version": {"name": "m", "version": v,
                        "source": format!("s3://bucket/adapters/v{v}"), "status": "READY",
                        "tags": kv(tags)}})),
                    None => not_found(&format!("version {v}")),
                }
            }
            ("POST", "model-versions/set-tag") => {
                let tags = st.versions.get_mut(&b("version")).unwrap();
                tags.insert(b("key"), b("value"));
                ok(json!({}))
            }
            ("DELETE", "model-versions/delete-tag") => {
                let tags = st.versions.get_mut(&b("version")).unwrap();
                tags.remove(&b("key"));
                ok(json!({}))
            }
            ("POST", "runs/create") => {
                let start = body["start_time"].as_i64().unwrap_or(2_000_000_000_000);
                st.runs
                    .insert("abc".into(), ("RUNNING".into(), BTreeMap::new(), start));
                ok(json!({"run": st.run("abc")}))
            }
            ("GET", "runs/get") => {
                let id = q("run_id");
                if st.runs.contains_key(&id) {
                    ok(json!({"run": st.run(&id)}))
                } else {
                    not_found(&format!("run {id}"))
                }
            }
            ("POST", "runs/update") => {
                let id = b("run_id");
                st.runs.get_mut(&id).unwrap().0 = b("status");
                ok(json!({"run_info": st.run(&id)["info"]}))
            }
            ("POST", "runs/set-tag") => {
                let id = b("run_id");
                st.runs.get_mut(&id).unwrap().1.insert(b("key"), b("value"));
                ok(json!({}))
            }
            (m, p) => panic!("the registry mock does not serve {m} {p}"),
        }
    }
}

impl Registry {
    /// Where `m`'s aliases stand: `alias=version`, sorted.
    fn aliases(&self) -> Vec<String> {
        let st = self.0.lock().unwrap();
        st.models["m"]
            .0
            .iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect()
    }

    /// A version's tags: `key=value`, sorted.
    fn tags(&self, version: &str) -> Vec<String> {
        let st = self.0.lock().unwrap();
        st.versions[version]
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The step's run: status and its `perf_decision` tag.
    fn our_run(&self) -> (String, Option<String>) {
        let st = self.0.lock().unwrap();
        let (status, tags, _) = &st.runs["abc"];
        (status.clone(), tags.get("perf_decision").cloned())
    }

    /// Registered models other than `m` (leases left behind).
    fn leases(&self) -> Vec<String> {
        let st = self.0.lock().unwrap();
        st.models.keys().filter(|k| *k != "m").cloned().collect()
    }
}

fn map<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// perf-failed on version 2 (its run `run2` FINISHED and failed); version 1 (the candidate)
/// tagged by an older run that failed it; version 3 passed long ago, its alias since moved.
fn history() -> Registry {
    let r = Registry::default();
    {
        let mut st = r.0.lock().unwrap();
        st.models
            .insert("m".into(), (map([("perf-failed", "2")]), BTreeMap::new()));
        st.versions.insert(
            "1".into(),
            map([("perf_decision", "failed"), ("perf_run_id", "old-run")]),
        );
        st.versions.insert(
            "2".into(),
            map([("perf_decision", "failed"), ("perf_run_id", "run2")]),
        );
        st.versions.insert(
            "3".into(),
            map([("perf_decision", "passed"), ("perf_run_id", "run3")]),
        );
        for (id, verdict, start) in [
            ("old-run", "failed", 1_000),
            ("run3", "passed", 2_000),
            ("run2", "failed", 3_000),
        ] {
            st.runs.insert(
                id.into(),
                ("FINISHED".into(), map([("perf_decision", verdict)]), start),
            );
        }
    }
    r
}

/// A first run: no alias, no tag.
fn blank() -> Registry {
    let r = Registry::default();
    {
        let mut st = r.0.lock().unwrap();
        st.models.insert("m".into(), Default::default());
        st.versions.insert("1".into(), BTreeMap::new());
    }
    r
}

/// Every call of a recording step answered as a healthy MLflow would, the registry and runs by
/// `registry`; mount faults before this (with a higher priority) to override one call.
async fn mount_healthy(server: &MockServer, registry: &Registry) {
    let get = |p: &str| Mock::given(method("GET")).and(path(format!("{API}/{p}")));
    let post = |p: &str| Mock::given(method("POST")).and(path(format!("{API}/{p}")));
    let delete = |p: &str| Mock::given(method("DELETE")).and(path(format!("{API}/{p}")));
    for p in ["registered-models/get", "model-versions/get", "runs/get"] {
        get(p).respond_with(registry.clone()).mount(server).await;
    }
    for p in [
        "registered-models/create",
        "registered-models/alias",
        "model-versions/set-tag",
        "runs/create",
        "runs/update",
        "runs/set-tag",
    ] {
        post(p).respond_with(registry.clone()).mount(server).await;
    }
    for p in [
        "registered-models/delete",
        "registered-models/alias",
        "model-versions/delete-tag",
    ] {
        delete(p).respond_with(registry.clone()).mount(server).await;
    }
    get("experiments/get-by-name")
        .respond_with(ok(json!({"experiment": {"experiment_id": "7",
            "name": "vllm-lora-performance", "lifecycle_stage": "active"}})))
        .mount(server)
        .await;
    post("runs/search")
        .respond_with(ok(json!({})))
        .mount(server)
        .await;
    for p in ["runs/log-batch", "runs/log-inputs"] {
        post(p).respond_with(ok(json!({}))).mount(server).await;
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
    let registry = history();
    mount_healthy(&server, &registry).await;
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
            // the other alias first: never both at once
            alias_delete("perf-failed"),
            alias_post("perf-passed", "1"),
        ]
    );
    // the claims inside the lease: taken before the first, released after the last
    let lease_taken = all
        .iter()
        .position(|w| w.contains("registered-models/create") && w.contains("m.perf-gate-lock"))
        .expect("lease taken");
    let lease_released = all
        .iter()
        .rposition(|w| w.contains("registered-models/delete") && w.contains("m.perf-gate-lock"))
        .expect("lease released");
    assert!(
        lease_taken < first_claim && verdict_tag < lease_released,
        "{all:#?}"
    );
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
    assert_eq!(
        registry.tags("1"),
        ["perf_decision=passed", "perf_run_id=abc"]
    );
    assert_eq!(
        registry.our_run(),
        ("FINISHED".into(), Some("passed".into()))
    );
    assert_eq!(registry.leases(), Vec::<String>::new());
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
    // the last claim (the run's verdict tag) is refused: every earlier claim is undone
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/set-tag")))
        .and(body_partial_json(json!({"key": "perf_decision"})))
        .respond_with(forbidden())
        .with_priority(1)
        .mount(&server)
        .await;
    let registry = history();
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot tag the run with the decision"),
        "{stderr}"
    );
    assert_eq!(
        claims(&server).await,
        [
            tag_post("perf_decision", "passed"),
            tag_post("perf_run_id", "abc"),
            alias_delete("perf-failed"),
            alias_post("perf-passed", "1"),
            // undone, newest first
            alias_delete("perf-passed"),
            alias_post("perf-failed", "2"),
            tag_post("perf_run_id", "old-run"),
            tag_post("perf_decision", "failed"),
        ]
    );
    assert!(
        stderr.contains("undone: alias `perf-failed` back on version 2"),
        "{stderr}"
    );
    // MLflow is as it was, and the run, FINISHED then marked FAILED, can never be a baseline
    assert_eq!(registry.aliases(), ["perf-failed=2"]);
    assert_eq!(
        registry.tags("1"),
        ["perf_decision=failed", "perf_run_id=old-run"]
    );
    assert_eq!(registry.our_run(), ("FAILED".into(), None));
    assert_eq!(registry.leases(), Vec::<String>::new());
    assert_no_decision(&dir.path().join("out"));
}

/// Answers as `registry` would after another writer moved `perf-failed` onto version 3, then
/// refuses the call.
struct AnotherWriterFirst(Registry);

impl Respond for AnotherWriterFirst {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut st = self.0.0.lock().unwrap();
        st.models
            .get_mut("m")
            .unwrap()
            .0
            .insert("perf-failed".into(), "3".into());
        forbidden()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_undo_leaves_alone_what_another_writer_changed() {
    // while the step claimed, someone (an operator, by hand) put perf-failed on version 3: the
    // undo puts back only what is still as this run left it
    let server = MockServer::start().await;
    let registry = history();
    Mock::given(method("POST"))
        .and(path(format!("{API}/runs/set-tag")))
        .and(body_partial_json(json!({"key": "perf_decision"})))
        .respond_with(AnotherWriterFirst(registry.clone()))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(registry.aliases(), ["perf-failed=3"], "{stderr}");
    assert_eq!(
        registry.tags("1"),
        ["perf_decision=failed", "perf_run_id=old-run"]
    );
    assert!(
        stderr.contains(
            "alias `perf-failed` is now Some(\"3\"), not as this run left it (None): left alone"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_left_by_a_killed_run_is_repaired_before_claiming() {
    // perf-passed on version 3, whose run was marked FAILED after its claims (a run killed
    // before its undo finished): the next decision deletes it before claiming anything
    let server = MockServer::start().await;
    let registry = history();
    {
        let mut st = registry.0.lock().unwrap();
        st.models
            .get_mut("m")
            .unwrap()
            .0
            .insert("perf-passed".into(), "3".into());
        st.runs.get_mut("run3").unwrap().0 = "FAILED".into();
    }
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(claims(&server).await[0], alias_delete("perf-passed"));
    assert!(
        stderr.contains("repaired: alias `perf-passed` on version 3 did not agree with its decision (its run run3 is FAILED"),
        "{stderr}"
    );
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_both_aliases_stand_the_older_decision_loses_its_alias() {
    // both agree with their runs (a claim that landed late): the older run's alias goes
    let server = MockServer::start().await;
    let registry = history();
    registry
        .0
        .lock()
        .unwrap()
        .models
        .get_mut("m")
        .unwrap()
        .0
        .insert("perf-passed".into(), "3".into());
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "both aliases stood: `perf-passed` on version 3, from the older run, deleted"
        ),
        "{stderr}"
    );
    assert_eq!(claims(&server).await[0], alias_delete("perf-passed"));
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
}

/// A decision whose first claim (the delete of `perf-failed`) lands in `registry` but whose
/// answer is held for a minute: the step is caught mid-claims.
struct Held {
    server: MockServer,
    dir: tempfile::TempDir,
    out: std::path::PathBuf,
    child: std::process::Child,
}

async fn held_at_the_first_claim(registry: &Registry) -> Held {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{API}/registered-models/alias")))
        .and(body_partial_json(json!({"alias": "perf-failed"})))
        .respond_with(ActedThen(registry.clone(), 200, Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, registry).await;
    let dir = tempfile::tempdir().unwrap();
    let judged = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let out = dir.path().join("out");
    let child = spawn_decision(&server.uri(), &judged, &out);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !claims(&server).await.contains(&alias_delete("perf-failed")) {
        assert!(Instant::now() < deadline, "the alias delete never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Held {
        server,
        dir,
        out,
        child,
    }
}

fn sigterm(child: &std::process::Child) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_while_claiming_exits_at_once_and_the_next_decision_repairs() {
    // the alias delete lands but its answer is held: two SIGTERMs, the second exits at once
    // (no undo), leaving the model without `perf-failed` and the lease held by a dead run
    let registry = history();
    let Held {
        server,
        dir,
        out,
        mut child,
    } = held_at_the_first_claim(&registry).await;
    let started = Instant::now();
    for _ in 0..2 {
        sigterm(&child);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(4));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the held answer was waited out"
    );
    assert_no_decision(&out);
    // what the killed run left: no alias at all, its lease
    assert_eq!(registry.aliases(), Vec::<String>::new());
    assert_eq!(registry.leases(), ["m.perf-gate-lock"]);
    // once that lease has expired, the next decision takes it over and leaves the model as a
    // clean decision would
    let holder = {
        let st = registry.0.lock().unwrap();
        st.models["m.perf-gate-lock"].1["perf_gate_lock_holder"].clone()
    };
    lease_held_by(&registry, &holder, 1_000);
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("taking over an expired lease"), "{stderr}");
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
    assert_eq!(registry.leases(), Vec::<String>::new());
}

fn lease_held_by(registry: &Registry, holder: &str, expires_ms: i64) {
    registry.0.lock().unwrap().models.insert(
        "m.perf-gate-lock".into(),
        (
            BTreeMap::new(),
            map([
                ("perf_gate_lock_holder", holder),
                ("perf_gate_lock_expires_ms", &expires_ms.to_string()),
            ]),
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_another_decision_is_waited_for_then_refused() {
    let server = MockServer::start().await;
    let registry = history();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let in_ten_minutes = now_ms + 600_000;
    lease_held_by(&registry, "other-run", in_ten_minutes);
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &["--lock-timeout=2s"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("another perf-decision for this model held the lease `m.perf-gate-lock` (other-run) for longer than 2s (--lock-timeout)"),
        "{stderr}"
    );
    assert_eq!(
        claims(&server).await,
        Vec::<String>::new(),
        "claimed without the lease"
    );
    assert_eq!(registry.our_run().0, "FAILED");
    // the other decision's lease is untouched
    assert_eq!(registry.leases(), ["m.perf-gate-lock"]);
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_released_while_mlflow_refused_its_create_is_tried_again() {
    // a real MLflow, on a duplicate insert, reads the model back to word its error: if the
    // holder released it meanwhile, the create is answered 404, which is not a refusal
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/registered-models/create")))
        .respond_with(not_found("Registered Model with name=m.perf-gate-lock"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let registry = history();
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
    assert_eq!(registry.leases(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_of_a_dead_holder_is_taken_over() {
    let server = MockServer::start().await;
    let registry = history();
    lease_held_by(&registry, "dead-run", 1_000);
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("taking over an expired lease"), "{stderr}");
    let all = writes(&server).await;
    assert!(
        all.iter().any(|w| w.contains("registered-models/create")
            && w.contains("m.perf-gate-lock.takeover.dead-run")),
        "{all:#?}"
    );
    assert_eq!(registry.aliases(), ["perf-passed=1"]);
    assert_eq!(
        registry.leases(),
        Vec::<String>::new(),
        "leases left behind"
    );
}

/// Does what `registry` would, then answers `status` (the server acted; the answer was lost),
/// after `delay`.
struct ActedThen(Registry, u16, Duration);

impl Respond for ActedThen {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let _ = self.0.respond(req);
        ResponseTemplate::new(self.1)
            .set_body_string("upstream reset")
            .set_delay(self.2)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_set_that_errors_is_undone_as_if_it_had_happened() {
    // a 5xx may come after the server acted: the set is undone (deleted: there was none before)
    let server = MockServer::start().await;
    let registry = blank();
    Mock::given(method("POST"))
        .and(path(format!("{API}/registered-models/alias")))
        .respond_with(ActedThen(registry.clone(), 500, Duration::ZERO))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&server, dir.path(), &[]).await;
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        claims(&server).await,
        [
            tag_post("perf_decision", "passed"),
            tag_post("perf_run_id", "abc"),
            alias_delete("perf-failed"),
            alias_post("perf-passed", "1"),
            // the delete of an absent alias changed nothing: only the rest is undone
            alias_delete("perf-passed"),
            tag_delete("perf_run_id"),
            tag_delete("perf_decision"),
        ]
    );
    assert_eq!(registry.aliases(), Vec::<String>::new());
    assert_eq!(registry.tags("1"), Vec::<String>::new());
    assert_no_decision(&dir.path().join("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_claiming_undoes_the_claims_and_kills_the_run() {
    // the alias delete lands at once but its answer is held: SIGTERM meanwhile
    let registry = history();
    let Held {
        server,
        dir: _dir,
        out,
        mut child,
    } = held_at_the_first_claim(&registry).await;
    sigterm(&child);
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
    // the pending delete happened: perf-failed goes back on version 2, then the tags
    assert_eq!(
        c[3..],
        [
            alias_post("perf-failed", "2"),
            tag_post("perf_run_id", "old-run"),
            tag_post("perf_decision", "failed"),
        ],
        "{c:#?}"
    );
    assert_eq!(registry.aliases(), ["perf-failed=2"]);
    assert_eq!(
        registry.tags("1"),
        ["perf_decision=failed", "perf_run_id=old-run"]
    );
    assert_eq!(registry.our_run(), ("KILLED".into(), None));
    assert_eq!(registry.leases(), Vec::<String>::new());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_file_that_cannot_be_written_after_the_claims_undoes_them() {
    // the files and MLflow never disagree: the claims landed, then perf_status.txt cannot be
    // written (here a directory took its place while the alias claim was answered)
    let server = MockServer::start().await;
    let registry = history();
    Mock::given(method("POST"))
        .and(path(format!("{API}/registered-models/alias")))
        .respond_with(ActedThen(registry.clone(), 200, Duration::from_secs(2)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_healthy(&server, &registry).await;
    let dir = tempfile::tempdir().unwrap();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let out = dir.path().join("out");
    let child = spawn_decision(&server.uri(), &results, &out);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !claims(&server)
        .await
        .contains(&alias_post("perf-passed", "1"))
    {
        assert!(Instant::now() < deadline, "the alias claim never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status_path = out.join("perf_status.txt");
    std::fs::remove_file(&status_path).unwrap();
    std::fs::create_dir(&status_path).unwrap();
    std::fs::write(status_path.join("keep"), "").unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("perf_status.txt"), "{stderr}");
    // MLflow is as before the step; the run can never be a baseline; no decision file says otherwise
    assert_eq!(registry.aliases(), ["perf-failed=2"]);
    assert_eq!(
        registry.tags("1"),
        ["perf_decision=failed", "perf_run_id=old-run"]
    );
    // (its verdict tag had landed, but a FAILED run is never a baseline nor a recorded decision)
    assert_eq!(registry.our_run().0, "FAILED");
    assert!(!out.join("perf_decision.json").exists());
}
