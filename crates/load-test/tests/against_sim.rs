//! `load-test` end to end against `vllm-sim` (no Prometheus: server figures from /metrics deltas).

use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_results as results, load_test_status as status, run, stderr,
};

fn base_args<'a>(
    cmd: &'a mut std::process::Command,
    sim: &Sim,
    eval: &std::path::Path,
    out: &std::path::Path,
) -> &'a mut std::process::Command {
    cmd.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(eval)
        .arg("--output-dir")
        .arg(out)
        .args(["--progress-interval", "0"])
}

/// A simulator with these per-token times and no faults.
fn paced_sim(ttft_ms: u64, itl_ms: u64) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        ..Default::default()
    })
}

/// A work directory with an eval file of `prompts` prompts: (the directory, eval, output dir).
fn workdir(prompts: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), prompts);
    let out = dir.path().join("out");
    (dir, eval, out)
}

/// Starts `cmd` with stdout and stderr piped.
fn spawn(cmd: &mut std::process::Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to `child`.
fn sigterm(child: &std::process::Child) {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

#[test]
fn runs_every_prompt_once_and_counts_injected_errors() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        error_rate: 0.2,
        seed: 11,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 200);
    let out = dir.path().join("out");
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "16",
        "--max-tokens",
        "8",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(status(&out), "completed");
    let r = results(&out);
    assert_eq!(r["status"], "completed");
    // What a consumer validates the file with accepts it.
    test_support::schema::assert_valid(&r, "load_test_results.schema.json");
    // The file reloads through the typed reader perf-decision uses.
    let typed =
        perf_gate::results::LoadTestResults::read(&out.join("load_test_results.json")).unwrap();
    assert_eq!(typed.status, perf_gate::results::RunStatus::Completed);
    let c = &r["client"];
    assert_eq!(c["total_requests"], 200);
    let ok = c["successful_requests"].as_u64().unwrap();
    let failed = c["failed_requests"].as_u64().unwrap();
    assert_eq!(ok + failed, 200);
    assert_eq!(c["errors_by_kind"]["http_500"].as_u64().unwrap(), failed);
    // 20 % error rate over 200 requests: binomial sd ~5.7, so 40 +- 20 is > 3 sd.
    assert!((20..=60).contains(&failed), "failed = {failed}");
    let rate = c["success_rate"].as_f64().unwrap();
    assert!((rate - ok as f64 / 200.0).abs() < 1e-12);
    // Usage chunks give exact output tokens: 8 per successful request.
    assert_eq!(c["output_tokens"].as_u64().unwrap(), ok * 8);
    assert_eq!(c["responses_without_usage"], 0);
    // One requests.jsonl line per request, written as they finished.
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let recs: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 200);
    assert_eq!(recs.iter().filter(|r| r["ok"] == true).count() as u64, ok);
    assert!(!out.join("requests.jsonl.partial").exists());
    // the report for people, beside the results
    let report = std::fs::read_to_string(out.join("load_test_report.html")).unwrap();
    assert!(report.contains("Content-Security-Policy") && report.contains("<svg"));
    // Server figures from /metrics deltas agree with the client on the count.
    let s = &r["server"];
    assert_eq!(s["source"], "vllm_metrics");
    assert_eq!(s["requests_finished"]["value"].as_f64().unwrap(), ok as f64);
    assert!(s["e2e_latency_s"]["p95"]["value"].as_f64().unwrap() > 0.0);
    // Adapter identity and eval digest recorded.
    assert_eq!(r["adapter"]["root"], "/models/lora");
    assert_eq!(r["adapter"]["parent"], "tiny-base");
    assert_eq!(r["eval_data"]["rows"], 200);
    assert_eq!(r["eval_data"]["digest"].as_str().unwrap().len(), 8);
    // The generator reports whether it kept up.
    let g = &r["load_generator"];
    assert!(g["cpu_seconds"].as_f64().is_some(), "{g}");
    assert!(g["event_loop_lag_p99_s"].as_f64().is_some(), "{g}");
}

#[test]
fn cut_streams_are_failures_not_successes() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        cut_rate: 1.0,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 10);
    let out = dir.path().join("out");
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args(["--max-tokens", "16"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["client"]["successful_requests"], 0);
    assert_eq!(r["client"]["success_rate"], 0.0);
    assert_eq!(r["client"]["errors_by_kind"]["stream_incomplete"], 10);
    // Error-adjusted percentiles say +Inf, never a fast "good" number.
    assert_eq!(r["client"]["e2e_adjusted_s"]["p95"], "+Inf");
    assert_eq!(r["client"]["e2e_s"]["p95"], Value::Null);
}

#[test]
fn api_key_is_sent_but_never_written() {
    let secret = "sk-very-secret-token-123";
    // The sim, like vLLM with --api-key, answers 401 on /v1/* without the right bearer token.
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        api_key: Some(secret.into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 5);
    let out = dir.path().join("out");
    let o = run(base_args(&mut load_test(), &sim, &eval, &out)
        .env("VLLM_API_KEY", secret)
        .args(["--log-format", "json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["config"]["api_key_set"], true);
    assert_eq!(
        r["client"]["successful_requests"], 5,
        "the key reached the server"
    );
    for f in [
        "load_test_results.json",
        "requests.jsonl",
        "load_test_status.txt",
    ] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!text.contains(secret), "{f} leaks the key");
    }
    assert!(!stderr(&o).contains(secret));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    // JSON logs: every stderr line is a JSON object.
    for line in stderr(&o).lines().filter(|l| !l.is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    // Without the key: a clear dependency error, and still no secret anywhere.
    let out2 = dir.path().join("out2");
    let o =
        run(base_args(&mut load_test(), &sim, &eval, &out2).env("VLLM_API_KEY", "wrong-key-456"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong-key-456"));
}

#[test]
fn num_requests_cycles_prompts_and_chat_endpoint_works() {
    let sim = paced_sim(2, 1);
    let (_dir, eval, out) = workdir(3);
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--num-requests",
        "10",
        "--endpoint",
        "chat",
        "--max-tokens",
        "4",
        "--rate",
        "200",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["client"]["total_requests"], 10);
    assert_eq!(r["client"]["successful_requests"], 10);
    assert_eq!(r["config"]["endpoint"], "chat");
    // Chat: the role-only first chunk is not a token, so 4 content chunks per request.
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    for l in lines.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["content_chunks"], 4, "{l}");
        assert_eq!(v["output_tokens"], 4);
    }
}

/// With no jitter and concurrency within the sim's capacity, the client's median TTFT matches
/// the configured TTFT within max(20 ms, 10 %).
#[test]
fn serial_client_ttft_matches_sim_ttft() {
    let ttft = Duration::from_millis(250);
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft,
        itl: Duration::from_millis(5),
        max_num_seqs: 64,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 40);
    let out = dir.path().join("out");
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "8",
        "--max-tokens",
        "8",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    let p50 = r["client"]["ttft_s"]["p50"].as_f64().unwrap();
    let want = ttft.as_secs_f64();
    let tol = (want * 0.10).max(0.020);
    assert!(
        (p50 - want).abs() <= tol,
        "client TTFT p50 {p50:.4}s vs sim {want}s (tolerance {tol}s)"
    );
    // e2e = ttft + 7 gaps of 5 ms.
    let e2e = r["client"]["e2e_s"]["p50"].as_f64().unwrap();
    assert!(
        e2e >= want + 0.030 && e2e <= want + 0.035 + 0.05,
        "e2e p50 {e2e}"
    );
}

/// SIGTERM mid-run: no new requests, in-flight ones get the grace period, results say `aborted`,
/// exit code 4, and the files are whole.
#[test]
fn serial_sigterm_marks_results_aborted() {
    let sim = paced_sim(100, 100);
    let (_dir, eval, out) = workdir(400);
    let child = spawn(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "4",
        "--max-tokens",
        "20",
        "--drain-grace",
        "1s",
    ]));
    std::thread::sleep(Duration::from_millis(2500));
    sigterm(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(status(&out), "aborted");
    let r = results(&out);
    assert_eq!(r["status"], "aborted");
    assert!(
        r["error"].as_str().unwrap().contains("stopped by a signal"),
        "{}",
        r["error"]
    );
    let total = r["client"]["total_requests"].as_u64().unwrap();
    assert!(total > 0 && total < 400, "total {total}");
    // Requests cut off after the 1 s grace (each takes ~2 s) count as `abandoned` failures, so
    // the totals add up: every request sent is either in requests.jsonl or abandoned.
    let abandoned = r["client"]["errors_by_kind"]["abandoned"]
        .as_u64()
        .unwrap_or(0);
    assert!(abandoned > 0, "{}", r["client"]);
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64 + abandoned, total);
}

#[test]
fn warmup_requests_are_sent_but_left_out_of_every_figure() {
    let sim = paced_sim(2, 1);
    let (_dir, eval, out) = workdir(5);
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--warmup-requests",
        "3",
        "--max-tokens",
        "2",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["warmup"]["requests"], 3);
    assert_eq!(r["warmup"]["successful_requests"], 3);
    assert_eq!(r["client"]["total_requests"], 5);
    assert_eq!(
        sim.stats().accepted,
        8,
        "the warm-up really reached the server"
    );
    // The /metrics baseline is taken after the warm-up: the server counts only the 5.
    assert_eq!(r["server"]["requests_finished"]["value"], 5.0);
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 5);
}

/// A second SIGTERM exits at once, but still leaves `aborted` behind (the first one alone
/// would drain for `--drain-grace`), and no results file claiming more.
#[test]
fn serial_a_second_sigterm_still_leaves_aborted() {
    let sim = paced_sim(100, 100);
    let (_dir, eval, out) = workdir(400);
    let child = spawn(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "4",
        "--max-tokens",
        "200",
        "--drain-grace",
        "60s",
    ]));
    wait_for(&out.join("requests.jsonl.partial"));
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        sigterm(&child);
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    // not the drain (each request streams 200 tokens at 100 ms: ~20 s): the second signal
    // ended it
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&out), "aborted");
    assert!(!out.join("load_test_results.json").exists());
}

/// The results cannot be written after the load (something now stands at their path): exit 3,
/// and stdout says what the status file says (`failed`, why, no results path claimed).
#[test]
fn results_that_cannot_be_written_after_the_load_are_failed_on_stdout_too() {
    let sim = paced_sim(20, 20);
    let (_dir, eval, out) = workdir(40);
    let child = spawn(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "2",
        "--max-tokens",
        "20",
    ]));
    // once the load runs (the directory was claimed), a non-empty directory takes the
    // results' place: the rename onto it fails
    wait_for(&out.join("requests.jsonl.partial"));
    let blocker = out.join("load_test_results.json");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), "x").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("status: failed\n"), "{stdout}");
    assert!(
        stdout.contains("error: cannot write ") && stdout.contains("load_test_results.json"),
        "{stdout}"
    );
    assert!(stdout.contains("results: not written"), "{stdout}");
    assert!(!stdout.contains("completed"), "{stdout}");
}

fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The request records cannot be written during the load (a full disk: the `.partial` file
/// turns out to be Linux's `/dev/full`): the step fails (exit 3, status `failed`, the error
/// names `requests.jsonl`) and keeps the client figures in the results for inspection.
#[cfg(target_os = "linux")]
#[test]
fn request_records_lost_to_a_full_disk_fail_the_step() {
    let sim = paced_sim(400, 20);
    let (_dir, eval, out) = workdir(8);
    let child = spawn(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        "2",
        "--max-tokens",
        "4",
        "--warmup-requests",
        "4",
    ]));
    // once the warm-up reaches the sim, the directory was claimed (its old files removed) and
    // the load is at least one 0.4 s TTFT away: time to put the full "disk" where the records
    // will go
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sim.stats().accepted == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the warm-up never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::os::unix::fs::symlink("/dev/full", out.join("requests.jsonl.partial")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let r = results(&out);
    assert_eq!(r["status"], "failed");
    let e = r["error"].as_str().unwrap();
    assert!(e.starts_with("cannot write requests.jsonl: "), "{e}");
    assert_eq!(r["client"]["total_requests"], 8);
}

/// With the pool opened before the load (the default), the first wave (every slot at once)
/// pays no handshake inside its TTFT: its median TTFT matches the rest's. The handshakes are
/// reported apart.
#[test]
fn serial_preopened_connections_keep_handshakes_out_of_the_first_wave() {
    let sim = paced_sim(30, 5);
    let (_dir, eval, out) = workdir(512);
    let concurrency = 128u64;
    let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
        "--concurrency",
        &concurrency.to_string(),
        "--max-tokens",
        "4",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["config"]["preconnect"], true);
    assert_eq!(
        r["preconnect"]["connections"], concurrency,
        "{}",
        r["preconnect"]
    );
    assert_eq!(r["preconnect"]["failed"], 0);
    assert_eq!(r["preconnect"]["connect_s"]["count"], concurrency);
    let text = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let (mut first, mut rest): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let ttft = v["ttft_s"].as_f64().unwrap();
        if v["seq"].as_u64().unwrap() < concurrency {
            first.push(ttft);
        } else {
            rest.push(ttft);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, r) = (median(&mut first), median(&mut rest));
    let stats = sim.stats();
    println!(
        "first wave TTFT p50 {:.1} ms, the rest {:.1} ms; connections {} ({:?} before the first generation)",
        f * 1e3,
        r * 1e3,
        stats.connections,
        stats.connections_before_first_generation
    );
    // the slots' connections were open before the first request (without --preconnect only
    // the pre-flight's one is), and the load kept them: a body read to its end after [DONE]
    // goes back to the pool (dropped before its last chunk, 71 of 512 requests opened a new
    // connection). A few may still race the pool's return of a connection. The server counts
    // a connection when its accept loop takes it, which on a busy machine can come after the
    // first generation on an earlier one although the client's handshake was done (seen: 123
    // of 128 while a build ran beside the test): most, not all, must be counted before.
    let before = stats
        .connections_before_first_generation
        .expect("a generation came");
    assert!(before >= concurrency * 3 / 4, "{stats:?}");
    // every connection: the pre-flight's, the slots' and at most a few more
    assert!(
        stats.connections <= concurrency + 1 + concurrency / 16,
        "the load opened {} connections beyond the slots': {stats:?}",
        stats.connections.saturating_sub(concurrency + 1)
    );
    assert!(f <= r + 0.015, "first wave {f:.4} s vs rest {r:.4} s");
}

/// `--slo`: the share of requests meeting every objective, a failure meeting none.
#[test]
fn slo_attainment_is_reported_with_failures_as_misses() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(2),
        error_rate: 0.25,
        seed: 3,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 40);
    for (objectives, all_met) in [("ttft=5s,tpot=1s,e2e=10s", true), ("ttft=1ms", false)] {
        let out = dir.path().join(objectives.replace([',', '='], "_"));
        let o = run(base_args(&mut load_test(), &sim, &eval, &out).args([
            "--concurrency",
            "4",
            "--max-tokens",
            "8",
            "--slo",
            objectives,
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        let r = results(&out);
        let a = &r["client"]["slo_attainment"];
        let ok = r["client"]["successful_requests"].as_u64().unwrap();
        assert_eq!(a["requests"], 40, "{a}");
        // generous objectives: exactly the successes; an impossible TTFT: none
        assert_eq!(a["met"], if all_met { ok } else { 0 }, "{a}");
        assert!(ok < 40, "the sim injected failures");
        assert!(r["config"]["slo"].is_object(), "{}", r["config"]);
    }
    // a malformed objective is one clear line naming the flag, exit 2
    let o = run(
        base_args(&mut load_test(), &sim, &eval, &dir.path().join("bad"))
            .args(["--slo", "ttft=2s,latency=1s"]),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--slo") && err.contains("unknown objective \"latency\""),
        "{err}"
    );
}
