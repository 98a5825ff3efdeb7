//! The claims against a REAL `mlflow server`, with faults placed by a proxy. Concurrent
//! decisions: 50 models, each with two versions whose
//! `perf-decision` steps start together (v1 passes, v2 fails), a third of the pairs through a
//! proxy that delays every claim and lease call 3–6 s. Each pair must leave its model with
//! exactly one of `perf-passed` / `perf-failed`, on a version whose tags and run agree with
//! it, and no lease behind. A claim held past the client's timeout: it lands after the step
//! gave up and undid its claims, and the next decision for the model repairs it. MLflow gone
//! right after the run is FINISHED: the run can never be a baseline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use perf_gate::fixtures::{Figures, GOOD, results_with as results};
use perf_gate::mlflow::{MlflowClient, MlflowConfig};
use test_support::fault_proxy::{Action, FaultProxy, Rule};
use test_support::mlflow::MlflowServer;
use test_support::steps::{decision_status as status, perf_decision as cmd, write_results};

const PAIRS: usize = 50;
/// Pairs running at once (two processes each): enough to race, few enough for 2 cores.
const AT_ONCE: usize = 10;
/// Every third pair goes through the delaying proxy.
const DELAYED_EVERY: usize = 3;

/// Fails the seed's 8 s latency floor whatever the baseline.
const SLOW: Figures = Figures {
    p95_latency: 9.0,
    ..GOOD
};

struct Step {
    code: i32,
    stderr: String,
}

async fn step(url: String, results: &Path, out: &Path, model: &str, version: &str) -> Step {
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", url)
        .arg(format!("--load-test-results={}", results.display()))
        .arg(format!("--model-name={model}"))
        .arg(format!("--candidate-version={version}"))
        .arg(format!("--output-dir={}", out.display()));
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    Step {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// The model's `perf-passed` / `perf-failed` aliases, and whether the one that stands agrees
/// with its version's tags and its run: `Err` says what is wrong.
async fn agreeing_alias(client: &MlflowClient, model: &str) -> Result<(String, String), String> {
    let m = client.get_registered_model(model).await.unwrap();
    let perf: Vec<_> = m
        .aliases
        .iter()
        .filter(|a| a.alias == "perf-passed" || a.alias == "perf-failed")
        .collect();
    let [alias] = perf.as_slice() else {
        return Err(format!("{model}: not exactly one perf alias: {perf:?}"));
    };
    let verdict = alias.alias.trim_start_matches("perf-");
    let v = client
        .get_model_version(model, &alias.version)
        .await
        .unwrap();
    if v.tag("perf_decision") != Some(verdict) {
        return Err(format!(
            "{model}: {} on version {} tagged {:?}",
            alias.alias,
            alias.version,
            v.tag("perf_decision")
        ));
    }
    let run_id = v
        .tag("perf_run_id")
        .ok_or(format!("{model}: no perf_run_id"))?;
    let run = client.get_run(run_id).await.unwrap();
    if run.info.status != "FINISHED" || run.data.tag("perf_decision") != Some(verdict) {
        return Err(format!(
            "{model}: {}'s run {run_id} is {} tagged {:?}",
            alias.alias,
            run.info.status,
            run.data.tag("perf_decision")
        ));
    }
    match client
        .get_registered_model(&format!("{model}.perf-gate-lock"))
        .await
    {
        Err(e) if e.is_not_found() => {}
        other => return Err(format!("{model}: a lease stayed behind: {other:?}")),
    }
    Ok((alias.alias.clone(), alias.version.clone()))
}

fn delaying_proxy(upstream: &str) -> FaultProxy {
    let delay = || Action::DelayRange(Duration::from_secs(3)..Duration::from_secs(6));
    let api = "/api/2.0/mlflow";
    let calls = [
        ("POST", "registered-models/alias"),
        ("DELETE", "registered-models/alias"),
        ("POST", "model-versions/set-tag"),
        ("POST", "registered-models/create"),
        ("DELETE", "registered-models/delete"),
    ];
    FaultProxy::builder(upstream)
        .seed(7)
        .rules(
            calls
                .iter()
                .map(|(m, p)| Rule::new(delay()).method(m).path(&format!("{api}/{p}"))),
        )
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_pairs_leave_one_agreeing_alias_each() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    let proxy = Arc::new(delaying_proxy(mlflow.url()));
    let dir = tempfile::tempdir().unwrap();
    let good = write_results(dir.path(), "v1.json", &results(GOOD, "a1"));
    let slow = write_results(dir.path(), "v2.json", &results(SLOW, "a2"));
    // no experiment yet: the first decisions race to create it, and log the same dataset
    for i in 0..PAIRS {
        let model = format!("conc-{i:02}");
        direct.create_registered_model(&model).await.unwrap();
        for v in 1..=2 {
            direct
                .create_model_version(&model, &format!("s3://bucket/{model}/v{v}"), None)
                .await
                .unwrap();
        }
    }

    let gate = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut pairs = tokio::task::JoinSet::new();
    for i in 0..PAIRS {
        let model = format!("conc-{i:02}");
        let url = if i % DELAYED_EVERY == 0 {
            proxy.url().to_string()
        } else {
            mlflow.url().to_string()
        };
        let (good, slow, out) = (good.clone(), slow.clone(), dir.path().join(&model));
        let gate = gate.clone();
        pairs.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let (o1, o2) = (out.join("v1"), out.join("v2"));
            let (s1, s2) = tokio::join!(
                step(url.clone(), &good, &o1, &model, "1"),
                step(url, &slow, &o2, &model, "2"),
            );
            (model, s1, s2, status(&o1), status(&o2))
        });
    }
    let mut problems = Vec::new();
    let mut winners = [0usize; 2];
    while let Some(joined) = pairs.join_next().await {
        let (model, s1, s2, st1, st2) = joined.unwrap();
        if (s1.code, st1.as_str()) != (0, "passed") {
            problems.push(format!("{model} v1: exit {} {st1}\n{}", s1.code, s1.stderr));
        }
        if (s2.code, st2.as_str()) != (0, "failed") {
            problems.push(format!("{model} v2: exit {} {st2}\n{}", s2.code, s2.stderr));
        }
        match agreeing_alias(&direct, &model).await {
            Ok((alias, version)) => {
                // whichever claimed last holds the model's one alias
                let expected = if version == "1" {
                    "perf-passed"
                } else {
                    "perf-failed"
                };
                assert_eq!(alias, expected);
                winners[version.parse::<usize>().unwrap() - 1] += 1;
            }
            Err(why) => problems.push(why),
        }
    }
    let delayed = proxy.requests().iter().filter(|e| e.rule.is_some()).count();
    println!(
        "{PAIRS} pairs ({} through the proxy, {delayed} calls delayed 3-6 s): the last claim was v1's in {}, v2's in {}",
        PAIRS.div_ceil(DELAYED_EVERY),
        winners[0],
        winners[1]
    );
    assert!(problems.is_empty(), "{}", problems.join("\n---\n"));
    assert!(delayed > 0, "the proxy delayed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_landing_after_its_undo_is_repaired_by_the_next_decision() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    direct.create_registered_model("m").await.unwrap();
    for v in 1..=2 {
        direct
            .create_model_version("m", &format!("s3://bucket/m/v{v}"), None)
            .await
            .unwrap();
    }
    // the perf-passed claim is held 25 s: the step times out (2 s), waits for the state to
    // settle, undoes what it can, marks its run FAILED and exits 3, all before the claim lands
    let hold = Duration::from_secs(25);
    let proxy = FaultProxy::start(
        mlflow.url(),
        vec![
            Rule::new(Action::HoldThenForward { hold })
                .method("POST")
                .path("/api/2.0/mlflow/registered-models/alias")
                .body_contains(r#""alias":"perf-passed""#)
                .first(1),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = write_results(dir.path(), "v1.json", &results(GOOD, "a1"));
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", proxy.url())
        .arg(format!("--load-test-results={}", good.display()))
        .args([
            "--model-name=m",
            "--candidate-version=1",
            "--mlflow-timeout=2s",
            "--mlflow-retries=0",
        ])
        .arg(format!(
            "--output-dir={}",
            dir.path().join("out1").display()
        ));
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot set alias `perf-passed` on version 1 of `m`"),
        "{stderr}"
    );
    // then the held claim lands: perf-passed on a version whose run was marked FAILED
    proxy
        .wait_for_async(Duration::from_secs(40), "the held claim lands", |log| {
            log.iter().any(|e| e.rule == Some(0) && e.landed.is_some())
        })
        .await;
    let stale = direct
        .get_model_version_by_alias("m", "perf-passed")
        .await
        .unwrap();
    assert_eq!(stale.version, "1");
    assert!(agreeing_alias(&direct, "m").await.is_err());

    // the next decision for the model (v2, fails) deletes the stale alias before claiming
    let slow = write_results(dir.path(), "v2.json", &results(SLOW, "a2"));
    let s = step(
        mlflow.url().to_string(),
        &slow,
        &dir.path().join("out2"),
        "m",
        "2",
    )
    .await;
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(
        s.stderr
            .contains("repaired: alias `perf-passed` on version 1 did not agree with its decision"),
        "{}",
        s.stderr
    );
    assert_eq!(
        agreeing_alias(&direct, "m").await,
        Ok(("perf-failed".into(), "2".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_gone_right_after_the_run_finished_leaves_no_baseline() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = MlflowClient::new(&MlflowConfig::new(mlflow.url()).unwrap()).unwrap();
    direct.create_registered_model("m").await.unwrap();
    for v in 1..=2 {
        direct
            .create_model_version("m", &format!("s3://bucket/m/v{v}"), None)
            .await
            .unwrap();
    }
    // FINISHED lands but its answer never comes; every later call (the lease, marking the run
    // FAILED) finds MLflow down
    let api = "/api/2.0/mlflow";
    let down = || Action::Respond {
        status: 503,
        body: "upstream connect error".into(),
    };
    let proxy = FaultProxy::start(
        mlflow.url(),
        vec![
            Rule::new(Action::ForwardThenDrop)
                .method("POST")
                .path(&format!("{api}/runs/update"))
                .body_contains("FINISHED"),
            Rule::new(down()).path(&format!("{api}/runs/update")),
            Rule::new(down()).path(&format!("{api}/registered-models/create")),
            Rule::new(down()).path(&format!("{api}/runs/set-tag")),
            Rule::new(down()).path(&format!("{api}/model-versions/set-tag")),
            Rule::new(down()).path(&format!("{api}/registered-models/alias")),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = write_results(dir.path(), "v1.json", &results(GOOD, "a1"));
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", proxy.url())
        .arg(format!("--load-test-results={}", good.display()))
        .args([
            "--model-name=m",
            "--candidate-version=1",
            "--mlflow-retries=0",
        ])
        .arg(format!(
            "--output-dir={}",
            dir.path().join("out1").display()
        ));
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    // the run stayed FINISHED (marking it FAILED found MLflow down), without a verdict tag
    let exp = direct
        .get_experiment_by_name("vllm-lora-performance")
        .await
        .unwrap()
        .unwrap();
    let runs = direct
        .search_runs(&perf_gate::mlflow::types::SearchRuns {
            experiment_ids: vec![exp.experiment_id.clone()],
            filter: String::new(),
            order_by: vec![],
            max_results: 10,
            page_token: None,
        })
        .await
        .unwrap()
        .runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].info.status, "FINISHED", "{stderr}");
    assert_eq!(runs[0].data.tag("perf_decision"), None);

    // the next decision does not take that run as its baseline: there is none
    let s = step(
        mlflow.url().to_string(),
        &good,
        &dir.path().join("out2"),
        "m",
        "2",
    )
    .await;
    assert_eq!(s.code, 0, "{}", s.stderr);
    let d = test_support::steps::decision(&dir.path().join("out2"));
    assert_eq!(d["mode"], "absolute", "{}", d["baseline"]);
    assert!(d["baseline"].is_null(), "{}", d["baseline"]);
}
