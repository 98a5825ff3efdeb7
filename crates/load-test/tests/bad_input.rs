//! Bad input and unreachable dependencies: one clear error line, the documented exit code, a
//! `failed` status file, and no half-written results.

use std::time::Duration;

use test_support::sim::Sim;
use test_support::steps::{
    load_test, load_test_results as results, load_test_status as status, run, stderr,
};

fn quick_sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(1),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
}

/// A loopback port with nothing listening.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

fn assert_failed(out_dir: &std::path::Path, o: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "stderr lacks {needle:?}: {}",
        stderr(o)
    );
    assert_eq!(status(out_dir), "failed");
    let r = results(out_dir);
    assert_eq!(r["status"], "failed");
    test_support::schema::assert_valid(&r, "load_test_results.schema.json");
    assert!(
        r["error"].as_str().unwrap().contains(needle),
        "{}",
        r["error"]
    );
    assert!(
        r["client"].is_null(),
        "no client figures for a run that never started"
    );
    let leftovers: Vec<_> = std::fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn with_eval(eval_text: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("eval.jsonl");
    std::fs::write(&eval, eval_text).unwrap();
    let out = dir.path().join("out");
    (dir, eval, out)
}

fn cmd(url: &str, eval: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut c = load_test();
    c.args(["--vllm-url", url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(eval)
        .arg("--output-dir")
        .arg(out);
    c
}

#[test]
fn eval_file_problems_name_file_and_line() {
    let sim = quick_sim();
    let (_d, eval, out) = with_eval("{\"prompt_inference\": \"ok\"}\n{oops\n");
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_failed(&out, &o, 2, "line 2: not valid JSON");
    assert!(stderr(&o).contains("eval.jsonl"));

    let (_d, eval, out) = with_eval("{\"question\": \"no prompt here\"}\n");
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_failed(&out, &o, 2, "line 1: no prompt field");

    let (_d, eval, out) = with_eval("");
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_failed(&out, &o, 2, "no prompts");

    let (_d, eval, out) = with_eval("x");
    let missing = eval.with_file_name("missing.jsonl");
    let o = run(&mut cmd(&sim.url, &missing, &out));
    assert_failed(&out, &o, 2, "missing.jsonl: cannot read it");
}

#[test]
fn adapter_not_served_names_what_is() {
    let sim = quick_sim();
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let mut c = cmd(&sim.url, &eval, &out);
    c.args(["--adapter-name", "aws-rag-qa-candidate"]);
    let o = run(&mut c);
    assert_failed(
        &out,
        &o,
        3,
        "adapter \"aws-rag-qa-candidate\" is not served",
    );
    assert!(
        stderr(&o).contains("it serves: tiny-base, candidate"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sim.stats().accepted, 0, "no load was sent");
}

#[test]
fn unreachable_vllm_and_prometheus_are_dependency_errors() {
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let url = dead_url();
    let o = run(&mut cmd(&url, &eval, &out));
    assert_failed(&out, &o, 3, &format!("vLLM at {url} is unreachable"));

    let sim = quick_sim();
    let prom = dead_url();
    let mut c = cmd(&sim.url, &eval, &out);
    c.args(["--prometheus-url", &prom]);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&prom),
        "error must name the Prometheus URL: {}",
        stderr(&o)
    );
    assert_eq!(status(&out), "failed");
}

#[test]
fn wait_ready_gives_up_with_a_clear_line() {
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let url = dead_url();
    let mut c = cmd(&url, &eval, &out);
    c.args(["--wait-ready", "2s"]);
    let o = run(&mut c);
    assert_failed(&out, &o, 3, "was not ready after waiting");
}

#[test]
fn invalid_flags_exit_2_with_the_flag_named() {
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    for (args, needle) in [
        (vec!["--concurrency", "0"], "--concurrency"),
        (vec!["--vllm-url", "localhost:8000"], "--vllm-url"),
        (vec!["--max-tokens", "-5"], "--max-tokens"),
        (vec!["--request-timeout", "soon"], "--request-timeout"),
    ] {
        let mut c = cmd("http://127.0.0.1:9", &eval, &out);
        c.args(&args);
        let o = run(&mut c);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // Missing required flag, env fallback names.
    let o = run(load_test().args(["--adapter-name", "x"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--vllm-url"));
}

#[test]
fn env_vars_stand_in_for_flags() {
    let sim = quick_sim();
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n{\"prompt\": \"there\"}\n");
    let o = run(load_test()
        .env("VLLM_URL", &sim.url)
        .env("ADAPTER_NAME", "candidate")
        .env("EVAL_DATA_PATH", &eval)
        .env("OUTPUT_DIR", &out)
        .env("CONCURRENCY", "2")
        .env("MAX_TOKENS", "3"));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["config"]["concurrency"], 2);
    assert_eq!(r["config"]["max_tokens"], 3);
    assert_eq!(r["client"]["output_tokens"], 6);
}

#[test]
fn help_documents_env_vars_and_exit_codes() {
    let o = run(load_test().arg("--help"));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "[env: VLLM_URL=]",
        "[env: PROMETHEUS_URL=]",
        "Exit codes:",
        "4  aborted by a signal",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
}

/// Kubernetes and Argo pass optional settings as empty strings: an empty env var is unset.
#[test]
fn empty_env_vars_count_as_unset() {
    let sim = quick_sim();
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let o = run(load_test()
        .env("VLLM_URL", &sim.url)
        .env("ADAPTER_NAME", "candidate")
        .env("EVAL_DATA_PATH", &eval)
        .env("OUTPUT_DIR", &out)
        .env("PROMETHEUS_URL", "")
        .env("VLLM_API_KEY", "")
        .env("CONCURRENCY", "")
        .env("MAX_TOKENS", "2"));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(
        r["config"]["concurrency"], 10,
        "empty CONCURRENCY falls back to the default"
    );
    assert_eq!(r["config"]["prometheus_url"], serde_json::Value::Null);
    assert_eq!(r["config"]["api_key_set"], false);
    // An empty required value is still "missing", named with its env var.
    let o =
        run(load_test()
            .env("VLLM_URL", "")
            .args(["--adapter-name", "a", "--eval-data-path", "e"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--vllm-url"), "{}", stderr(&o));
}

/// A signal while waiting for vLLM ends the step at once: exit 4, status `aborted`.
#[test]
fn serial_sigterm_during_wait_ready_aborts_promptly() {
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let url = dead_url();
    let started = std::time::Instant::now();
    let child = cmd(&url, &eval, &out)
        .args(["--wait-ready", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status(&out), "aborted");
}

/// A failed run never leaves an earlier run's files beside its own.
#[test]
fn stale_outputs_of_an_earlier_run_are_removed() {
    let sim = quick_sim();
    let (_d, eval, out) = with_eval("{\"prompt\": \"hi\"}\n");
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("requests.jsonl").exists());
    std::fs::write(&eval, "{broken\n").unwrap();
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(status(&out), "failed");
    assert!(
        !out.join("requests.jsonl").exists(),
        "the earlier run's request log must go"
    );
}

#[test]
fn an_output_dir_that_cannot_be_written_is_exit_2_naming_it_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "a file").unwrap();
    let out = blocker.join("out");
    let o = run(load_test().args([
        "--vllm-url=http://127.0.0.1:9",
        "--adapter-name=a",
        "--eval-data-path=/nonexistent.jsonl",
        &format!("--output-dir={}", out.display()),
    ]));
    // found before the eval file is read or vLLM is called: bad input, like a bad flag
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("load-test: --output-dir ")
            && last.contains("cannot be used: cannot write ")
            && last.contains("not-a-dir"),
        "{err}"
    );
    // and no summary on stdout claims a status or a results path
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
