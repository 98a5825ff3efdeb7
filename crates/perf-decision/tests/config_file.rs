//! `perf-decision --config` (and `PERF_DECISION_CONFIG`) without MLflow: the file's flags
//! decide under the command line and env vars, `config.json` records them, and a refused file
//! still marks the output directory it names as undecided.

use perf_gate::fixtures::{GOOD, results_with as results};
use serde_json::json;
use test_support::steps::{decision_status as status, perf_decision as cmd, write_results};

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_file_decides_under_the_env_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let out = dir.path().join("out");
    let config = dir.path().join("decision.yaml");
    std::fs::write(
        &config,
        format!(
            "model_name: m\nno-mlflow: true\noutput-dir: {}\nmax-p95-latency: 1.0\nmax-p95-ttft: 0.1\n",
            out.display()
        ),
    )
    .unwrap();
    // the file's 1.0 s latency floor fails GOOD's 4 s P95; the command line lifts it again
    let o = cmd()
        .env("PERF_DECISION_CONFIG", &config)
        .env("MAX_P95_TTFT", "2s")
        .arg(format!("--load-test-results={}", r.display()))
        .arg("--max-p95-latency=8")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(status(&out), "passed");
    let v = &read_json(&out.join("config.json"))["values"];
    assert_eq!(v["model-name"], json!({"value": "m", "source": "file"}));
    assert_eq!(v["no-mlflow"], json!({"value": true, "source": "file"}));
    assert_eq!(v["max-p95-latency"], json!({"value": "8", "source": "cli"}));
    assert_eq!(v["max-p95-ttft"], json!({"value": "2s", "source": "env"}));
    assert_eq!(v["config"]["source"], "env");
    assert_eq!(v["min-success-rate"]["source"], "default");
    assert_eq!(
        v["tracking-token"],
        json!({"value": null, "source": "default"})
    );
    // without the command line's bound, the file's floor fails the candidate
    let o = cmd()
        .env("PERF_DECISION_CONFIG", &config)
        .arg(format!("--load-test-results={}", r.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(status(&out), "failed");
}

#[test]
fn a_refused_file_marks_its_output_dir_and_a_secret_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("perf_status.txt"), "passed\n").unwrap();
    let config = dir.path().join("decision.yaml");
    for (yaml, want) in [
        (
            "min-succes-rate: 0.9\n",
            "unknown key `min-succes-rate` (line 2); did you mean `min-success-rate`?",
        ),
        (
            "tracking-token: tok-In-File-1\n",
            "`tracking-token` (line 2) is a secret and is not read from a config file (a file gets committed): set MLFLOW_TRACKING_TOKEN instead",
        ),
    ] {
        std::fs::write(&config, format!("output_dir: {}\n{yaml}", out.display())).unwrap();
        let o = cmd()
            .arg(format!("--config={}", config.display()))
            .args(["--load-test-results=r.json", "--model-name=m"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("tok-In-File-1"), "{err}");
        // the older "passed" in the file's output directory cannot outlive the refusal
        assert_eq!(status(&out), "error");
        std::fs::write(out.join("perf_status.txt"), "passed\n").unwrap();
    }
}
