//! The drift check against a REAL `mlflow server`: six passed runs, one a week, each 10 %
//! slower than the one before (every step within the 15 % bound), then a candidate another
//! 10 % slower. It passes the seed's checks against the newest run, but sits 1.61x the runs of
//! a month ago: a warning by default, a failed check `drift` with `--fail-on-drift`. The
//! report plots the history. With `--baseline-runs 3` the baseline is the median of the three
//! newest runs, and the same candidate fails check 1.

use perf_gate::decision::Thresholds;
use perf_gate::decision::load_settings::candidate_settings;
use perf_gate::decision::metrics::MetricsSource;
use perf_gate::fixtures::{ADAPTER, results};
use perf_gate::mlflow::Batch;
use perf_gate::mlflow::types::{KeyValue, Metric, MetricValue, RunStatus};
use test_support::steps::{decision, perf_decision as cmd, write_results};

const MODEL: &str = "drift-lora";
const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_creep_that_passes_each_step_is_caught_by_the_drift_check() {
    let (server, client) = test_support::mlflow::start_with_client().await;
    let url = server.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    test_support::mlflow::register_versions(&client, MODEL, 7, |_| ADAPTER.into()).await;
    let exp = client
        .get_or_create_experiment("vllm-lora-performance")
        .await
        .unwrap();

    // the candidate (fixture) has a server P95 E2E of 4.0 s; the history creeps up to it
    let candidate = results();
    let settings = candidate_settings(&candidate, MetricsSource::Server);
    let now = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::new();
    for i in 0..6i32 {
        let started = now - i64::from(42 - 7 * i) * DAY_MS;
        let run = client
            .create_run(
                &exp.experiment_id,
                &format!("week-{i}"),
                started,
                &[KeyValue::new("perf_decision", "passed")],
            )
            .await
            .unwrap();
        let mut params: Vec<KeyValue> = settings.iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        params.push(KeyValue::new("model_name", MODEL));
        params.push(KeyValue::new("candidate_version", (i + 1).to_string()));
        for (_, p, v) in Thresholds::SEED.entries() {
            params.push(KeyValue::new(p, v.to_string()));
        }
        let metric = |key: &str, value: f64| Metric {
            key: key.into(),
            value: MetricValue(value),
            timestamp: started,
            step: 0,
        };
        let p95 = 4.0 / 1.1f64.powi(6 - i);
        let batch = Batch {
            metrics: vec![
                metric("p95_latency_s", p95),
                metric("p95_ttft_s", 0.5),
                metric("throughput_rps", 5.0),
                metric("client_success_rate", 1.0),
            ],
            params,
            tags: vec![KeyValue::new("perf_verdict", "passed")],
        };
        client.log_batch(&run.info.run_id, batch).await.unwrap();
        client
            .update_run(
                &run.info.run_id,
                RunStatus::Finished,
                Some(started + 60_000),
            )
            .await
            .unwrap();
        ids.push(run.info.run_id);
    }
    let path = write_results(d, "v7.json", &candidate);
    let decide = |out: std::path::PathBuf, extra: Vec<&'static str>| {
        let mut c = cmd();
        c.env("MLFLOW_TRACKING_URI", &url)
            .arg(format!("--load-test-results={}", path.display()))
            .args([
                format!("--model-name={MODEL}"),
                "--candidate-version=7".into(),
            ])
            .args(extra)
            .arg(format!("--output-dir={}", out.display()));
        async move {
            let o = tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap();
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            decision(&out)
        }
    };

    // by default: the seed's checks pass against the newest run, the drift is a warning
    let doc = decide(d.join("warn"), vec![]).await;
    assert_eq!(doc["decision"], "passed", "{:#}", doc["checks"]);
    assert_eq!(doc["baseline"]["run_id"], ids[5].as_str());
    let latency = &doc["drift"][0];
    assert_eq!(latency["metric"], "p95_latency_s");
    assert_eq!(latency["flagged"], true, "{latency}");
    // reference: the runs at least 28 days old (42, 35, 28 days), median the middle one
    assert_eq!(latency["reference_runs"], serde_json::json!(ids[..3]));
    let ratio = latency["ratio"].as_f64().unwrap();
    assert!((ratio - 1.1f64.powi(5)).abs() < 1e-9, "{ratio}");
    assert!(
        doc["warnings"].to_string().contains("drift: p95_latency_s"),
        "{}",
        doc["warnings"]
    );
    let html = std::fs::read_to_string(d.join("warn/perf_decision_report.html")).unwrap();
    assert!(html.contains("Drift"), "the report plots the history");

    // --fail-on-drift: a failed check
    let doc = decide(d.join("fail"), vec!["--fail-on-drift"]).await;
    assert_eq!(doc["decision"], "failed");
    let drift: Vec<&serde_json::Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "drift")
        .collect();
    assert_eq!(drift.len(), 3, "one per metric checks 1-3 read");
    assert_eq!(drift[0]["passed"], false);
    assert_eq!(drift[1]["passed"], true, "flat TTFT does not drift");

    // --baseline-runs 3: the median of the three newest runs (4.0 / 1.21 s), against which
    // the candidate is 21 % slower: check 1 fails where the newest run alone let it pass
    let doc = decide(d.join("median"), vec!["--baseline-runs=3"]).await;
    assert_eq!(
        doc["baseline"]["median_of"],
        serde_json::json!([ids[5], ids[4], ids[3]])
    );
    let median = doc["baseline"]["metrics"]["p95_latency_s"]["value"]
        .as_f64()
        .unwrap();
    assert!((median - 4.0 / 1.21).abs() < 1e-9, "{median}");
    assert_eq!(doc["decision"], "failed");
    let check1 = &doc["checks"][0];
    assert_eq!(check1["name"], "p95_latency");
    assert_eq!(check1["passed"], false, "{check1}");
}
