//! `perf-decision override` against a REAL `mlflow server`: a failed version overridden to
//! passed; what it records; and that the decisions after it neither take the override run as
//! their baseline nor undo its alias when they reconcile.

use std::path::{Path, PathBuf};

use perf_gate::decide::override_decision::standing_overrides;
use perf_gate::fixtures::{Figures, GOOD, results_with as results};
use perf_gate::mlflow::MlflowClient;
use test_support::steps::{decision, perf_decision as cmd, write_results};

const MODEL: &str = "llama-lora";
const REASON: &str = "P95 over budget on a node since drained (INC-1234)";

struct Step {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary (off the async runtime) against `url` with `args`.
async fn run(url: &str, args: Vec<String>) -> Step {
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", url).args(&args);
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let step = Step {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    };
    println!("--- {args:?} -> exit {}\n{}", step.code, step.stdout);
    step
}

/// A recording decision of `version` from `results`, files in `out`.
async fn decide(url: &str, results: &Path, version: u32, out: &Path) -> Step {
    run(
        url,
        vec![
            format!("--load-test-results={}", results.display()),
            format!("--model-name={MODEL}"),
            format!("--candidate-version={version}"),
            format!("--output-dir={}", out.display()),
        ],
    )
    .await
}

async fn overrule(url: &str, version: &str, decision: &str) -> Step {
    run(
        url,
        [
            "override",
            &format!("--model-name={MODEL}"),
            &format!("--version={version}"),
            &format!("--decision={decision}"),
            &format!("--reason={REASON}"),
            "--actor=alice",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await
}

async fn aliases(client: &MlflowClient) -> Vec<(String, String)> {
    let mut a: Vec<_> = client
        .get_registered_model(MODEL)
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
async fn override_of_a_failed_version_is_recorded_and_never_a_baseline() {
    let (server, client) = test_support::mlflow::start_with_client().await;
    let url = server.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = |name: &str| -> PathBuf { d.join(name) };

    test_support::mlflow::register_versions(&client, MODEL, 3, |v| format!("adapter-v{v}")).await;

    // v1 passes (the baseline to be), v2 fails its 8 s latency floor
    let r1 = write_results(d, "v1.json", &results(GOOD, "adapter-v1"));
    let s1 = decide(&url, &r1, 1, &out("out1")).await;
    assert_eq!(s1.code, 0, "{}", s1.stderr);
    let run1 = decision(&out("out1"))["mlflow"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow = Figures {
        p95_latency: 9.0,
        ..GOOD
    };
    let r2 = write_results(d, "v2.json", &results(slow, "adapter-v2"));
    let s2 = decide(&url, &r2, 2, &out("out2")).await;
    assert_eq!(s2.code, 0, "{}", s2.stderr);
    assert_eq!(decision(&out("out2"))["decision"], "failed");
    assert_eq!(aliases(&client).await, pairs(&[("perf-failed", "2")]));

    // the override: v2 passed after all
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let o = overrule(&url, "2", "passed").await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", o.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "override: `{MODEL}` version 2 failed -> passed (by alice at "
        )) && lines[0].contains(
            "alias perf-passed -> version 2 (was unset); perf-failed removed from version 2; run "
        ),
        "{}",
        lines[0]
    );
    assert_eq!(aliases(&client).await, pairs(&[("perf-passed", "2")]));

    // the version says who, why and when, and names the override run as its decision's run
    let v2 = client.get_model_version(MODEL, "2").await.unwrap();
    assert_eq!(v2.tag("perf_decision"), Some("passed"));
    assert_eq!(v2.tag("perf_override"), Some("true"));
    assert_eq!(v2.tag("perf_override_actor"), Some("alice"));
    assert_eq!(v2.tag("perf_override_reason"), Some(REASON));
    let at = chrono::DateTime::parse_from_rfc3339(v2.tag("perf_override_at").unwrap())
        .expect("perf_override_at is RFC 3339");
    assert!(at >= before && at <= chrono::Utc::now(), "{at}");
    let override_run = v2.tag("perf_run_id").unwrap().to_string();
    assert_eq!(v2.tag("perf_override_run_id"), Some(override_run.as_str()));
    assert!(lines[0].ends_with(&format!("run {override_run}")));

    // the override run: FINISHED, its tags and params, in the experiment
    let run = client.get_run(&override_run).await.unwrap();
    assert_eq!(run.info.status, "FINISHED");
    assert_eq!(run.info.run_name, "override-llama-lora-v2");
    for (k, v) in [
        ("perf_override", "true"),
        ("perf_decision", "passed"),
        ("perf_override_reason", REASON),
        ("perf_override_actor", "alice"),
        ("perf_override_previous", "failed"),
    ] {
        assert_eq!(run.data.tag(k), Some(v), "tag {k}");
    }
    assert_eq!(run.data.tag("perf_override_at"), v2.tag("perf_override_at"));
    assert_eq!(run.data.param("model_name"), Some(MODEL));
    assert_eq!(run.data.param("candidate_version"), Some("2"));
    assert!(run.data.metrics.is_empty(), "an override measures nothing");

    // what a later decision logs about it
    let standing = standing_overrides(&client, MODEL).await;
    assert_eq!(standing.len(), 1, "{standing:?}");
    assert!(
        standing[0].starts_with("alias `perf-passed`: version 2 of `llama-lora` holds perf_decision=passed by an override, not a measurement (by alice at "),
        "{standing:?}"
    );

    // a rerun of v1's decision (an Argo retry) reconciles under the lease and claims nothing:
    // the override's alias agrees with its run and stands
    let again = decide(&url, &r1, 1, &out("out1-again")).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("this decision was already recorded"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("repaired"), "{}", again.stderr);
    assert_eq!(aliases(&client).await, pairs(&[("perf-passed", "2")]));

    // v3: its baseline is v1's measured run, not the newer override run
    let r3 = write_results(d, "v3.json", &results(GOOD, "adapter-v3"));
    let s3 = decide(&url, &r3, 3, &out("out3")).await;
    assert_eq!(s3.code, 0, "{}", s3.stderr);
    assert!(!s3.stderr.contains("repaired"), "{}", s3.stderr);
    let d3 = decision(&out("out3"));
    assert_eq!(d3["decision"], "passed");
    assert_eq!(d3["mode"], "comparative");
    assert_eq!(d3["baseline"]["run_id"], run1.as_str());
    // the next decision of the model says that an override stood when it ran
    assert!(
        d3["warnings"]
            .to_string()
            .contains("alias `perf-passed`: version 2 of `")
            && d3["warnings"]
                .to_string()
                .contains("by an override, not a measurement"),
        "{}",
        d3["warnings"]
    );
    assert!(
        s3.stderr.contains("by an override, not a measurement"),
        "{}",
        s3.stderr
    );
    let skipped = d3["baseline"]["skipped"].to_string();
    assert!(
        skipped.contains(&format!(
            "run {override_run} (version 2): an override (perf-decision override), not a measurement"
        )),
        "{skipped}"
    );
    assert_eq!(aliases(&client).await, pairs(&[("perf-passed", "3")]));
    assert!(standing_overrides(&client, MODEL).await.is_empty());

    // an unknown version: one line, exit 3, nothing moved
    let bad = overrule(&url, "99", "failed").await;
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    let last = bad.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "perf-decision: error: version 99 of registered model `llama-lora` not found"
        ),
        "{}",
        bad.stderr
    );
    assert_eq!(aliases(&client).await, pairs(&[("perf-passed", "3")]));
}
