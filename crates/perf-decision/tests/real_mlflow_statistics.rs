//! The statistical verdict against a REAL `mlflow server`: a baseline's per-request samples are
//! read back from its run's `load_test_results.json` artifact, the intervals and the richer
//! verdict are recorded (metrics `stat_*`, tag `perf_verdict`), and a run whose verdict was
//! `inconclusive` passes but is never a baseline.
//!
//! 1. v1 (the simulator, 400 requests) passes in absolute mode: no statistics (no baseline).
//! 2. v2, the same configuration (another random seed), passes against v1: the intervals come
//!    from v1's artifact, every metric within its tolerance, `perf_verdict=passed`.
//! 3. v3 is v2's measurement with every latency 15 % longer (the tolerance exactly): the seed's
//!    checks pass (its server figures are v2's), both P95 ratios straddle 1.15: it passes,
//!    `perf_verdict=inconclusive`.
//! 4. v4 (v2's measurement again) is compared with v2's run, not v3's newer inconclusive one.
//! 5. `--baseline-alias live`: v5 is compared with the run of v1, which holds `live`, not with
//!    the newest passed run; an alias on v3 (inconclusive) or on no version is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use perf_gate::mlflow::MlflowClient;
use perf_gate::mlflow::types::Run;
use perf_gate::results::LoadTestResults;
use perf_gate::stats::SampleStore;
use serde_json::Value;
use test_support::steps::{decision, measure_sim, perf_decision as cmd, write_results};

const MODEL: &str = "stats-lora";

/// Runs the decision for `version` with `extra` flags (off the async runtime): (exit code,
/// stderr).
async fn step(
    url: &str,
    results: &Path,
    out: &Path,
    version: u32,
    extra: &[&str],
) -> (i32, String) {
    let mut c = cmd();
    c.env("MLFLOW_TRACKING_URI", url)
        .arg(format!("--load-test-results={}", results.display()))
        .args([
            format!("--model-name={MODEL}"),
            format!("--candidate-version={version}"),
        ])
        .args(extra)
        .arg(format!("--output-dir={}", out.display()));
    let o = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Runs the decision for `version`; it must decide. Returns its document.
async fn decide(url: &str, results: &Path, out: PathBuf, version: u32) -> Value {
    let (code, stderr) = step(url, results, &out, version, &[]).await;
    assert_eq!(code, 0, "v{version}: {stderr}");
    decision(&out)
}

fn outcome(doc: &Value, name: &str) -> String {
    doc["statistics"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| {
            eprintln!("{}", m["reason"].as_str().unwrap());
            m["outcome"].as_str().unwrap().to_string()
        })
        .unwrap()
}

async fn run_of(client: &MlflowClient, doc: &Value) -> Run {
    client
        .get_run(doc["mlflow"]["run_id"].as_str().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baselines_samples_come_back_from_mlflow_and_an_inconclusive_pass_is_never_a_baseline() {
    let (server, client) = test_support::mlflow::start_with_client().await;
    let url = server.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();

    test_support::mlflow::register_versions(&client, MODEL, 5, |_| "candidate".into()).await;
    let sim = |seed| vllm_sim::SimConfig {
        ttft: Duration::from_millis(40),
        itl: Duration::from_millis(8),
        jitter: 0.3,
        seed,
        ..Default::default()
    };
    let d2 = d.clone();
    let (r1, r2) = tokio::task::spawn_blocking(move || {
        (
            measure_sim(&d2, "v1", sim(1), 400, 8),
            measure_sim(&d2, "v2", sim(2), 400, 8),
        )
    })
    .await
    .unwrap();

    // 1. absolute mode: nothing to compare with
    let doc1 = decide(&url, &r1, d.join("out1"), 1).await;
    assert_eq!(doc1["decision"], "passed");
    assert_eq!(doc1["verdict"], "passed");
    assert!(doc1.get("statistics").is_none());
    let run1 = run_of(&client, &doc1).await;
    assert_eq!(run1.data.tag("perf_verdict"), Some("passed"));

    // 2. the baseline's samples read back from its artifact
    let doc2 = decide(&url, &r2, d.join("out2"), 2).await;
    assert_eq!(doc2["baseline"]["run_id"], run1.info.run_id.as_str());
    let from = doc2["baseline"]["samples"].as_str().unwrap();
    assert!(
        from.contains("400 requests") && from.contains(&run1.info.run_id),
        "{from}"
    );
    for m in ["p95_ttft_ratio", "p95_e2e_ratio", "throughput_ratio"] {
        assert_eq!(outcome(&doc2, m), "passed", "{m}");
    }
    assert_eq!(doc2["verdict"], "passed");
    let run2 = run_of(&client, &doc2).await;
    // the report people look at: in the output directory and, byte for byte, in MLflow
    for name in ["perf_decision_report.html", "perf_decision_summary.md"] {
        let local = std::fs::read(d.join("out2").join(name)).unwrap();
        let stored = client.download_artifact(&run2.info, name).await.unwrap();
        assert!(local == stored, "{name} differs from its MLflow artifact");
    }
    let html = String::from_utf8(std::fs::read(d.join("out2/perf_decision_report.html")).unwrap())
        .unwrap();
    assert!(html.contains("Content-Security-Policy") && html.contains("<svg"));
    assert!(
        html.contains(&run1.info.run_id),
        "the report names its baseline run"
    );
    let summary = std::fs::read_to_string(d.join("out2/perf_decision_summary.md")).unwrap();
    assert!(summary.contains("p95\\_ttft\\_ratio"), "{summary}");
    assert_eq!(run2.data.tag("perf_verdict"), Some("passed"));
    assert_eq!(run2.data.param("decision_method"), Some("seed"));
    let lo = run2.data.metric("stat_p95_ttft_ratio_lo").unwrap();
    let hi = run2.data.metric("stat_p95_ttft_ratio_hi").unwrap();
    assert_eq!(lo, doc2["statistics"]["metrics"][0]["lo"].as_f64().unwrap());
    assert!(lo < 1.0 && 1.0 < hi && hi < 1.15, "[{lo}, {hi}]");

    // 3. v2's measurement, every latency 15 % longer: exactly at the tolerance
    let mut slower = LoadTestResults::read(&r2).unwrap();
    let client_metrics = slower.client.as_mut().unwrap();
    let store = SampleStore::unpack(client_metrics.samples.as_ref().unwrap()).unwrap();
    let mut scaled = SampleStore::default();
    for r in store.requests() {
        let stretch = |v: f32| (!v.is_nan()).then_some(f64::from(v) * 1.15);
        scaled.push(f64::from(r.finished_s), stretch(r.ttft_s), stretch(r.e2e_s));
    }
    client_metrics.samples = Some(scaled.pack());
    let r3 = write_results(&d, "v3.json", &slower);
    let doc3 = decide(&url, &r3, d.join("out3"), 3).await;
    assert_eq!(doc3["baseline"]["run_id"], run2.info.run_id.as_str());
    assert_eq!(outcome(&doc3, "p95_ttft_ratio"), "inconclusive");
    assert_eq!(outcome(&doc3, "p95_e2e_ratio"), "inconclusive");
    assert_eq!(
        doc3["decision"], "passed",
        "inconclusive does not fail by default"
    );
    assert_eq!(doc3["verdict"], "inconclusive");
    let run3 = run_of(&client, &doc3).await;
    assert_eq!(run3.data.tag("perf_verdict"), Some("inconclusive"));
    assert_eq!(run3.data.tag("perf_decision"), Some("passed"));
    let alias = client
        .get_model_version_by_alias(MODEL, "perf-passed")
        .await
        .unwrap();
    assert_eq!(alias.version, "3");

    // 4. the inconclusive pass is passed over
    let doc4 = decide(&url, &r2, d.join("out4"), 4).await;
    assert_eq!(doc4["baseline"]["run_id"], run2.info.run_id.as_str());
    let skipped = doc4["baseline"]["skipped"].to_string();
    assert!(
        skipped.contains(&run3.info.run_id) && skipped.contains("inconclusive"),
        "{skipped}"
    );

    // 5. the baseline is what serves production
    client.set_alias(MODEL, "live", "1").await.unwrap();
    let out5 = d.join("out5");
    let (code, stderr) = step(&url, &r2, &out5, 5, &["--baseline-alias=live"]).await;
    assert_eq!(code, 0, "{stderr}");
    let doc5 = decision(&out5);
    assert_eq!(doc5["baseline"]["run_id"], run1.info.run_id.as_str());
    assert!(
        doc5["baseline"]["samples"]
            .as_str()
            .unwrap()
            .contains("400 requests")
    );
    let (code, stderr) = step(&url, &r2, &d.join("out5b"), 5, &["--baseline-alias=canary"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--baseline-alias canary: model `stats-lora` has no alias `canary`"),
        "{stderr}"
    );
    client.set_alias(MODEL, "live", "3").await.unwrap();
    let (code, stderr) = step(&url, &r2, &d.join("out5c"), 5, &["--baseline-alias=live"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("inconclusive verdict: it is never a baseline"),
        "{stderr}"
    );
}
