//! The binary without MLflow: input validation, exit codes, files, env fallbacks, and a
//! decision file reloaded as a baseline.

use perf_gate::fixtures::{Figures, GOOD, results_with as results};
use predicates::prelude::*;
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd, write_results,
};

#[test]
fn help_lists_seed_flags_checks_and_exit_codes() {
    let out = cmd().arg("--help").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for needle in [
        "--load-test-results",
        "--model-name",
        "--max-p95-latency",
        "--max-p95-ttft",
        "--min-throughput",
        "--min-success-rate",
        "--output-dir",
        "--candidate-alias",
        "MLFLOW_TRACKING_URI",
        "Exit codes:",
        "4  aborted by a signal",
        "<= baseline x (1 + --max-latency-regression)",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn bad_results_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&results(GOOD, "a")).unwrap();
    let mut other_version = serde_json::to_value(results(GOOD, "a")).unwrap();
    other_version["schema_version"] = 99.into();
    // a second `status` after the real one: serde_json alone would judge the last one
    let pretty = serde_json::to_string_pretty(&results(GOOD, "a")).unwrap();
    assert!(pretty.contains("\n  \"status\": \"completed\","));
    let twice = pretty.replacen(
        "\n  \"status\": \"completed\",",
        "\n  \"status\": \"failed\",\n  \"status\": \"completed\",",
        1,
    );
    let cases: [(&str, Option<String>, &str); 6] = [
        ("missing.json", None, "cannot read"),
        ("empty.json", Some(String::new()), "is empty"),
        (
            "truncated.json",
            Some(good[..good.len() / 2].to_string()),
            "is not a valid results document",
        ),
        (
            "v99.json",
            Some(other_version.to_string()),
            "has schema_version 99; this build reads versions 2 to 5",
        ),
        (
            "notjson.json",
            Some("<html>oops</html>".into()),
            "is not a valid results document",
        ),
        (
            "twice.json",
            Some(twice),
            "duplicate key `status` (a document must say each field once) at line 4",
        ),
    ];
    for (name, content, message) in cases {
        let path = dir.path().join(name);
        if let Some(c) = &content {
            std::fs::write(&path, c).unwrap();
        }
        let out = dir.path().join(format!("out-{name}"));
        cmd()
            .arg(format!("--load-test-results={}", path.display()))
            .args(["--model-name=m", "--no-mlflow"])
            .arg(format!("--output-dir={}", out.display()))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(path.display().to_string()))
            .stderr(predicate::str::contains(message));
        assert_no_decision(&out);
    }
}

#[test]
fn results_that_are_not_completed_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = results(GOOD, "a");
    r.status = perf_gate::results::RunStatus::Aborted;
    r.error = Some("SIGTERM during the load".into());
    let path = write_results(dir.path(), "r.json", &r);
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "has status `aborted` (SIGTERM during the load); only `completed` results can be judged",
        ));
    assert_no_decision(dir.path());
}

#[test]
fn without_a_tracking_uri_the_step_refuses_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    // a stale decision from an earlier run must not survive an error
    std::fs::write(
        dir.path().join("perf_decision.json"),
        "{\"decision\":\"passed\"}",
    )
    .unwrap();
    let out = cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m"])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "MLFLOW_TRACKING_URI is not set: set it (or --tracking-uri), or pass --no-mlflow, --baseline-file or --baseline-results",
        ));
    assert!(out.get_output().stdout.is_empty());
    assert_no_decision(dir.path());
}

#[test]
fn no_mlflow_decides_from_files_in_absolute_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "adapter-a"));
    let out = dir.path().join("out");
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow", "--candidate-version=4"])
        .arg(format!("--output-dir={}", out.display()))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("decision: passed (absolute mode)"))
        .stdout(predicate::str::contains(
            "[pass] p95_latency_s = 4 s is < 8 s (absolute)",
        ))
        .stderr(predicate::str::contains("MLflow disabled"));
    assert_eq!(status(&out), "passed");
    let d = decision(&out);
    test_support::schema::assert_valid(&d, "perf_decision.schema.json");
    assert_eq!(d["schema_version"], 3);
    assert_eq!(d["decision"], "passed");
    assert_eq!(d["mode"], "absolute");
    assert_eq!(d["candidate_version"], "4");
    assert_eq!(d["candidate_adapter"], "adapter-a");
    assert_eq!(d["adapter_root"], "/adapters/adapter-a");
    assert_eq!(d["mlflow"], serde_json::Value::Null);
    assert_eq!(d["baseline"], serde_json::Value::Null);
    assert_eq!(d["metrics"]["p95_latency_s"]["value"], 4.0);
    assert_eq!(
        d["metrics"]["gpu_utilization"]["value"],
        serde_json::Value::Null
    );
    assert_eq!(d["thresholds"]["max_p95_latency_s"], 8.0);
    assert_eq!(d["dataset"]["name"], "eval-d9a73a27");
    let checks = d["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4);
    for c in checks {
        for field in [
            "name",
            "value",
            "absolute_limit",
            "relative_limit",
            "baseline_value",
            "passed",
            "reason",
        ] {
            assert!(c.get(field).is_some(), "check lacks {field}: {c}");
        }
    }
    assert!(
        d["departures"]
            .to_string()
            .contains("not recorded in MLflow")
    );
}

#[test]
fn a_failed_decision_is_exit_0_unless_fail_on_reject() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Figures {
        p95_latency: 9.0,
        ..GOOD
    };
    let path = write_results(dir.path(), "r.json", &results(slow, "a"));
    let run = |extra: &[&str], code: i32| {
        cmd()
            .arg(format!("--load-test-results={}", path.display()))
            .args(["--model-name=m", "--no-mlflow"])
            .args(extra)
            .arg(format!("--output-dir={}", dir.path().display()))
            .assert()
            .code(code)
            .stdout(predicate::str::contains(
                "[FAIL] p95_latency_s = 9 s is not < 8 s (absolute)",
            ));
        assert_eq!(status(dir.path()), "failed");
        assert_eq!(decision(dir.path())["decision"], "failed");
    };
    run(&[], 0);
    run(&["--fail-on-reject"], 1);
}

#[test]
fn env_vars_stand_in_for_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    cmd()
        .env("LOAD_TEST_RESULTS", &path)
        .env("MODEL_NAME", "m")
        .env("PERF_NO_MLFLOW", "1")
        .env("MAX_P95_LATENCY", "3s")
        .env("METRICS_SOURCE", "client")
        .env("FAIL_ON_REJECT", "true")
        .env("OUTPUT_DIR", dir.path())
        // the Python client's variable, set pipeline-wide for other steps: named, not followed
        .env("MLFLOW_EXPERIMENT_NAME", "training-runs")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "MLFLOW_EXPERIMENT_NAME=training-runs is ignored",
        ));
    let d = decision(dir.path());
    assert_eq!(d["thresholds"]["max_p95_latency_s"], 3.0);
    assert_eq!(d["metrics_source"], "client");
    assert_eq!(d["checks"][0]["metric"], "client_p95_latency_s");
    assert!(d["departures"].to_string().contains("client's figures"));
    assert!(
        d["warnings"]
            .to_string()
            .contains("MLFLOW_EXPERIMENT_NAME=training-runs is ignored: perf-decision uses experiment `vllm-lora-performance`"),
        "{}",
        d["warnings"]
    );
}

#[test]
fn generic_env_names_do_not_switch_mlflow_off() {
    // NO_MLFLOW and DRY_RUN are too generic to trust: only PERF_NO_MLFLOW / PERF_DRY_RUN count
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    cmd()
        .env("NO_MLFLOW", "1")
        .env("DRY_RUN", "1")
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m"])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("MLFLOW_TRACKING_URI is not set"));
    assert_no_decision(dir.path());
}

/// An older "passed" in the output directory.
fn stale_pass(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("perf_status.txt"), "passed\n").unwrap();
    std::fs::write(dir.join("perf_decision.json"), "{\"decision\":\"passed\"}").unwrap();
}

#[test]
fn a_refused_command_line_leaves_no_older_decision() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    // the reviewer's case: a value clap refuses, from the environment, output dir from env too
    let out = dir.path().join("env-out");
    stale_pass(&out);
    cmd()
        .env("MIN_SUCCESS_RATE", "99")
        .env("OUTPUT_DIR", &out)
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a fraction between 0 and 1",
        ));
    assert_no_decision(&out);
    // an unknown flag, the output dir on the command line
    let out = dir.path().join("flag-out");
    stale_pass(&out);
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .arg("--model-name=m")
        .arg("--output-dir")
        .arg(&out)
        .arg("--no-such-flag")
        .assert()
        .code(2);
    assert_no_decision(&out);
    // --help is not a failure: nothing is touched
    let out = dir.path().join("help-out");
    stale_pass(&out);
    cmd()
        .env("OUTPUT_DIR", &out)
        .arg("--help")
        .assert()
        .success();
    assert_eq!(status(&out), "passed");
    assert!(out.join("perf_decision.json").exists());
}

#[test]
fn a_previous_decision_file_is_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_results(dir.path(), "v1.json", &results(GOOD, "v1"));
    let out1 = dir.path().join("run1");
    cmd()
        .arg(format!("--load-test-results={}", first.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", out1.display()))
        .assert()
        .code(0);

    // 30 % slower: within the 8 s floor, beyond baseline x 1.15
    let slower = Figures {
        p95_latency: GOOD.p95_latency * 1.3,
        ..GOOD
    };
    let second = write_results(dir.path(), "v2.json", &results(slower, "v2"));
    let baseline = out1.join("perf_decision.json");
    // no tracking URI: --baseline-file alone is enough (files only)
    cmd()
        .arg(format!("--load-test-results={}", second.display()))
        .args(["--model-name=m"])
        .arg(format!("--baseline-file={}", baseline.display()))
        .arg(format!(
            "--output-dir={}",
            dir.path().join("run2").display()
        ))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "decision: failed (comparative mode; baseline",
        ))
        .stdout(predicate::str::contains(
            "is not <= 4.6 s (baseline 4 s x 1.15)",
        ))
        .stderr(predicate::str::contains(
            "no MLFLOW_TRACKING_URI: deciding against the baseline file",
        ));
    let d = decision(&dir.path().join("run2"));
    test_support::schema::assert_valid(&d, "perf_decision.schema.json");
    assert_eq!(d["mode"], "comparative");
    assert_eq!(d["baseline"]["source"], "file");
    assert_eq!(d["baseline"]["metrics"]["p95_latency_s"]["value"], 4.0);
    assert_eq!(d["checks"][0]["baseline_value"], 4.0);

    // a failed decision is never a baseline; another model's only with --baseline-any-model
    let failed = dir.path().join("run2/perf_decision.json");
    cmd()
        .arg(format!("--load-test-results={}", first.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--baseline-file={}", failed.display()))
        .arg(format!(
            "--output-dir={}",
            dir.path().join("run3").display()
        ))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("records a `failed` decision"));
    let other = dir.path().join("run4");
    cmd()
        .arg(format!("--load-test-results={}", first.display()))
        .args(["--model-name=other", "--no-mlflow"])
        .arg(format!("--baseline-file={}", baseline.display()))
        .arg(format!("--output-dir={}", other.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is for model `m`, not `other`"));
    cmd()
        .arg(format!("--load-test-results={}", first.display()))
        .args(["--model-name=other", "--no-mlflow", "--baseline-any-model"])
        .arg(format!("--baseline-file={}", baseline.display()))
        .arg(format!("--output-dir={}", other.display()))
        .assert()
        .code(0);
    assert_eq!(decision(&other)["mode"], "comparative");
}

#[test]
fn the_seed_command_line_parses_and_reaches_mlflow() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "load_test_results.json", &results(GOOD, "a"));
    let closed = test_support::free_port();
    cmd()
        .env("MLFLOW_TRACKING_URI", format!("http://127.0.0.1:{closed}"))
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        .arg(format!("--load-test-results={}", path.display()))
        .args([
            "--model-name=mistral-7b-lora",
            "--max-p95-latency=8.0",
            "--max-p95-ttft=2.0",
            "--min-throughput=2.0",
            "--min-success-rate=0.99",
        ])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "cannot read registered model `mistral-7b-lora`",
        ))
        .stderr(predicate::str::contains(
            "cannot reach mlflow at http://127.0.0.1:",
        ))
        .stderr(predicate::str::contains("after 2 attempt(s)"));
    assert_no_decision(dir.path());
}

#[test]
fn impossible_figures_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    // the reviewer's cases: p95 = -1 s, throughput 1e300, success rate 1.0 with no success
    let mut r = results(GOOD, "a");
    let server = r.server.as_mut().unwrap();
    server.e2e_latency_s.p95 = perf_gate::results::Measured::value(-1.0);
    server.throughput_rps = perf_gate::results::Measured::value(1e300);
    let client = r.client.as_mut().unwrap();
    client.successful_requests = 0;
    client.failed_requests = client.total_requests;
    client.requests_per_s = Some(0.0);
    let path = write_results(dir.path(), "r.json", &r);
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("decision: failed (absolute mode)"))
        .stdout(predicate::str::contains(
            "[FAIL] p95_latency_s is missing (p95_latency_s = -1 is impossible (a request takes time: a quantile of 0 s or less is an empty or broken histogram): the figure cannot be trusted): fails closed",
        ))
        .stdout(predicate::str::contains(
            "[FAIL] throughput_rps is missing (server throughput_rps 1e300 over the 20s load is 2e301 requests, more than the 100 the client sent",
        ))
        .stdout(predicate::str::contains(
            "[FAIL] client_success_rate is missing (client success_rate 1 disagrees with successful_requests / total_requests = 0/100 = 0",
        ));
    let d = decision(dir.path());
    let passed: Vec<_> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [false, true, false, false], "only TTFT is sound");
}

#[test]
fn an_incomparable_baseline_file_warns_and_fails_only_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_results(dir.path(), "v1.json", &results(GOOD, "v1"));
    let out1 = dir.path().join("run1");
    cmd()
        .arg(format!("--load-test-results={}", first.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", out1.display()))
        .assert()
        .code(0);
    let baseline = out1.join("perf_decision.json");
    assert_eq!(decision(&out1)["load_settings"]["max_tokens"], "256");

    let run = |results_path: &std::path::Path, name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let assert = cmd()
            .arg(format!("--load-test-results={}", results_path.display()))
            .args(["--model-name=m", "--no-mlflow"])
            .arg(format!("--baseline-file={}", baseline.display()))
            .args(extra)
            .arg(format!("--output-dir={}", out.display()))
            .assert()
            .code(0);
        let o = assert.get_output();
        (
            decision(&out),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };

    // the same load: comparable, no warning, four checks even with the strict flag
    let (d, stdout, _) = run(&first, "same", &["--require-comparable-baseline"]);
    assert_eq!(d["decision"], "passed");
    assert_eq!(d["baseline"]["comparable"], true);
    assert_eq!(d["warnings"], serde_json::json!([]));
    assert_eq!(d["checks"].as_array().unwrap().len(), 5);
    assert!(!stdout.contains("warnings"), "{stdout}");

    // another eval set at another concurrency and max_tokens
    let mut other = results(GOOD, "v2");
    other.config.concurrency = 20;
    other.config.max_tokens = 128;
    other.eval_data.as_mut().unwrap().digest = "1f00aa12".into();
    let second = write_results(dir.path(), "v2.json", &other);
    let digest = "baseline used eval digest d9a73a27, candidate 1f00aa12: the relative checks compare different prompts";
    let concurrency = "baseline used concurrency 10, candidate 20: latency and throughput depend on the requests in flight";
    let max_tokens = "baseline used max_tokens 256, candidate 128: the output length bound changes E2E latency and throughput directly";

    // default: warnings (log, file, summary), the verdict of the four checks unchanged
    let (d, stdout, stderr) = run(&second, "lax", &[]);
    assert_eq!(d["decision"], "passed");
    assert_eq!(d["mode"], "comparative");
    assert_eq!(d["checks"].as_array().unwrap().len(), 4);
    assert_eq!(d["baseline"]["comparable"], false);
    assert_eq!(
        d["baseline"]["comparability"],
        serde_json::json!([digest, concurrency, max_tokens])
    );
    assert_eq!(
        d["warnings"],
        serde_json::json!([digest, concurrency, max_tokens])
    );
    assert!(stdout.contains("warnings (3):"), "{stdout}");
    assert!(stdout.contains(&format!("  - {concurrency}")), "{stdout}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains(digest), "{stderr}");

    // strict, by flag and by env var: a failed fifth check
    for (name, extra, env) in [
        ("strict-flag", vec!["--require-comparable-baseline"], None),
        ("strict-env", vec![], Some("true")),
    ] {
        let out = dir.path().join(name);
        let mut c = cmd();
        if let Some(v) = env {
            c.env("PERF_REQUIRE_COMPARABLE_BASELINE", v);
        }
        c.arg(format!("--load-test-results={}", second.display()))
            .args(["--model-name=m", "--no-mlflow", "--fail-on-reject"])
            .arg(format!("--baseline-file={}", baseline.display()))
            .args(&extra)
            .arg(format!("--output-dir={}", out.display()))
            .assert()
            .code(1)
            .stdout(predicate::str::contains(
                "decision: failed (comparative mode",
            ))
            .stdout(predicate::str::contains(format!(
                "[FAIL] the baseline is not comparable and --require-comparable-baseline is set: {digest}; {concurrency}; {max_tokens}"
            )));
        assert_eq!(status(&out), "failed");
        let d = decision(&out);
        let checks = d["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 5, "{name}");
        assert!(checks[..4].iter().all(|c| c["passed"] == true), "{name}");
        assert_eq!(checks[4]["name"], "comparable_baseline");
        assert_eq!(checks[4]["passed"], false);
        assert_eq!(checks[4]["value"], 0.0);
    }
}

#[test]
fn help_explains_the_strict_baseline_flag() {
    let out = cmd().arg("--help").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    // the wrapping depends on the terminal width
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--require-comparable-baseline",
        "PERF_REQUIRE_COMPARABLE_BASELINE",
        "updating the eval set (or concurrency, max_tokens, ...) fails every candidate",
        "perf_warnings",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn untrustworthy_inputs_are_warnings_in_the_log_the_file_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = results(GOOD, "a");
    r.load_generator = Some(perf_gate::results::GeneratorHealth {
        cores: 2,
        cpu_seconds: Some(38.0),
        cpu_percent_of_one_core: Some(190.0),
        event_loop_lag_p99_s: Some(0.05),
        event_loop_lag_max_s: Some(0.1),
        saturated: true,
    });
    r.warnings = vec!["the eval file has 3 empty lines".into()];
    let path = write_results(dir.path(), "r.json", &r);
    let saturated = "the load generator was saturated (CPU 190% of one core on 2 core(s), event-loop lag P99 50 ms): the client's timings (client_*) may be inflated; checks 1-3 read the server's figures";
    let copied = "load-test: the eval file has 3 empty lines";
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", dir.path().display()))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("decision: passed (absolute mode)"))
        .stdout(predicate::str::contains("warnings (2):"))
        .stdout(predicate::str::contains(format!("  - {saturated}")))
        .stderr(predicate::str::contains("WARN"))
        .stderr(predicate::str::contains(saturated))
        .stderr(predicate::str::contains(copied));
    assert_eq!(
        decision(dir.path())["warnings"],
        serde_json::json!([saturated, copied])
    );
}

#[test]
fn an_output_dir_that_cannot_be_written_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file").unwrap();
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", blocker.join("out").display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "perf-decision: error: --output-dir ",
        ))
        .stderr(predicate::str::contains("cannot be used: cannot write "))
        .stderr(predicate::str::contains("not-a-dir"));
}

#[test]
fn exit_for_status_ends_a_pipeline_with_the_verdict_of_a_status_file() {
    let dir = tempfile::tempdir().unwrap();
    for (word, code) in [("passed", 0), ("failed", 1), ("invalid", 5), ("error", 3)] {
        let path = dir.path().join(format!("{word}.txt"));
        std::fs::write(&path, format!("{word}\n")).unwrap();
        cmd()
            .arg(format!("--exit-for-status={}", path.display()))
            .assert()
            .code(code)
            .stdout(predicate::str::contains(format!("perf-status: {word}")));
    }
    // the word itself, as a pipeline passes an output parameter
    cmd().arg("--exit-for-status=invalid").assert().code(5);
    cmd()
        .arg("--exit-for-status=/nonexistent/perf_status.txt")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "cannot read /nonexistent/perf_status.txt",
        ));
    // it takes no other flag, and touches no output directory when refused
    let cwd = tempfile::tempdir().unwrap();
    cmd()
        .current_dir(cwd.path())
        .args(["--exit-for-status=x", "--model-name=m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--exit-for-status takes no other argument (got --model-name=m)",
        ));
    cmd()
        .current_dir(cwd.path())
        .arg("--exit-for-status")
        .assert()
        .code(2);
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    // the step's env vars, as a shell or pod sets them, are no other flag
    cmd()
        .env("MLFLOW_TRACKING_URI", "http://mlflow:5000")
        .env("MODEL_NAME", "m")
        .env("LOG_FORMAT", "json")
        .args(["--exit-for-status", "failed"])
        .assert()
        .code(1);
}

#[test]
fn the_candidate_version_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let version = dir.path().join("candidate_version.txt");
    std::fs::write(&version, "7\n").unwrap();
    let out = dir.path().join("out");
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .env("CANDIDATE_VERSION_FILE", &version)
        .arg(format!("--output-dir={}", out.display()))
        .assert()
        .code(0);
    assert_eq!(decision(&out)["candidate_version"], "7");
    std::fs::write(&version, "latest\n").unwrap();
    cmd()
        .arg(format!("--load-test-results={}", path.display()))
        .args(["--model-name=m", "--no-mlflow"])
        .arg(format!("--candidate-version-file={}", version.display()))
        .arg(format!("--output-dir={}", out.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "\"latest\" is not a model version number",
        ));
}

#[test]
fn resolve_candidate_needs_mlflow_and_writes_no_decision() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    cmd()
        .args(["--resolve-candidate", "--model-name=m", "--no-mlflow"])
        .arg(format!("--output-dir={}", out.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--resolve-candidate needs MLflow"));
    assert!(!out.join("perf_status.txt").exists());
}

#[test]
fn min_slo_attainment_adds_a_check_that_fails_closed_without_an_attainment() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = results(GOOD, "a");
    r.client.as_mut().unwrap().slo_attainment = Some(perf_gate::results::SloAttainment {
        slo: perf_gate::results::Slo {
            ttft_s: Some(2.0),
            tpot_s: Some(0.05),
            e2e_s: None,
        },
        met: 80,
        requests: 100,
        fraction: Some(0.8),
    });
    let with = write_results(dir.path(), "with.json", &r);
    let without = write_results(dir.path(), "without.json", &results(GOOD, "a"));
    for (path, floor, passes) in [
        (&with, "0.8", true),
        (&with, "0.9", false),
        (&without, "0.5", false),
    ] {
        let out = dir
            .path()
            .join(format!("out-{floor}-{}", path.display().to_string().len()));
        cmd()
            .arg(format!("--load-test-results={}", path.display()))
            .args(["--model-name=m", "--no-mlflow", "--fail-on-reject"])
            .arg(format!("--min-slo-attainment={floor}"))
            .arg(format!("--output-dir={}", out.display()))
            .assert()
            .code(if passes { 0 } else { 1 });
        let d = decision(&out);
        let check = d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "slo_attainment")
            .unwrap_or_else(|| panic!("no slo_attainment check: {d}"));
        assert_eq!(check["passed"], passes, "{check}");
    }
    // out of range: refused naming the flag
    cmd()
        .arg(format!("--load-test-results={}", with.display()))
        .args(["--model-name=m", "--no-mlflow", "--min-slo-attainment=1.5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--min-slo-attainment"));
}
