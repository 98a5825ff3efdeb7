//! The fault matrix of issue 9 for `load-test`, the rows no other test file covers (the doc
//! `docs/failure-behaviour.md` lists every row and the test that guards it). Each test asserts
//! what the step leaves behind: exit code, `load_test_status.txt`, the results' fields, the one
//! error line naming what failed.
//!
//! Real servers wherever they can show the fault (`vllm-sim` stopped mid-run or cutting its
//! streams with a reset, Prometheus killed or scraping a dead target); wiremock for answers a
//! real server gives only when broken (503, 429, a 500 on `/v1/models`, wrong-shape JSON,
//! NaN answers, a matrix for an instant query), and a raw TCP server for silence after the
//! headers ([`test_support::faults::HangingVllm`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::faults::{HangingVllm, USAGE_CHUNK, completion_chunk as chunk};
use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_results as results, load_test_status as status, run, stderr,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DONE: &str = "data: [DONE]\n\n";

fn quick_sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
}

/// A temp dir with an eval file of `n` prompts; the output dir is `<dir>/out`.
fn workdir(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), n);
    let out = dir.path().join("out");
    (dir, eval, out)
}

/// `load-test` at `url` for adapter `candidate`, no progress lines.
fn cmd(url: &str, eval: &Path, out: &Path) -> Command {
    let mut c = load_test();
    c.args(["--vllm-url", url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(eval)
        .arg("--output-dir")
        .arg(out)
        .args(["--progress-interval", "0"]);
    c
}

/// The step's one error line: logged at ERROR (its text after the level) and repeated as the
/// results' `error`.
fn error_line(o: &Output, r: &Value) -> String {
    let text = stderr(o);
    let logged: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" ERROR ").map(|(_, m)| m))
        .collect();
    let error = r["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(logged, [error.as_str()], "{text}");
    error
}

/// A current-thread runtime for the wiremock servers (they serve from its worker thread).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A mock vLLM: pre-flight answered as vLLM does, generation requests answered by `generate`.
async fn mock_vllm(models: ResponseTemplate, generate: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(models)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(test_support::faults::METRICS, "text/plain"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(generate)
        .mount(&server)
        .await;
    server
}

fn models_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(test_support::faults::MODELS, "application/json")
}

fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream; charset=utf-8")
}

async fn generation_hits(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

fn errors(r: &Value) -> &Value {
    &r["client"]["errors_by_kind"]
}

/// Sends `sig` (`TERM`, `INT`) to `child`.
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig}");
}

/// Waits (at most 30 s) until `ready()` holds, polling.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// vLLM
// ---------------------------------------------------------------------------------------------

/// vLLM goes away mid-run (the simulator shut down: in-flight streams finish, new connections
/// are refused): the refused requests are `connect` failures, and the step then fails (exit 3)
/// because `/metrics` cannot be scraped after the load; the client figures are kept.
#[test]
fn vllm_refusing_connections_mid_run_fails_requests_as_connect_then_the_step() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(50),
        itl: Duration::from_millis(10),
        ..Default::default()
    });
    let url = sim.url.clone();
    let (_d, eval, out) = workdir(100);
    let child = spawn(cmd(&url, &eval, &out).args(["--concurrency", "2", "--max-tokens", "5"]));
    wait_until("4 requests accepted", || sim.stats().accepted >= 4);
    drop(sim); // stops accepting, lets the requests in flight finish
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let r = results(&out);
    assert_eq!(r["status"], "failed");
    let line = error_line(&o, &r);
    assert!(
        line.starts_with("cannot scrape vLLM /metrics after the load"),
        "{line}"
    );
    let c = &r["client"];
    assert_eq!(c["total_requests"], 100);
    assert!(c["successful_requests"].as_u64().unwrap() >= 4, "{c}");
    let refused = errors(&r)["connect"].as_u64().unwrap_or(0);
    assert!(refused > 0, "{c}");
    assert_eq!(
        c["successful_requests"].as_u64().unwrap() + c["failed_requests"].as_u64().unwrap(),
        100
    );
}

/// 503 (overloaded, or a gateway with no backend) and 429 (rate limited) on a generation
/// request are failures counted by status, sent once (a load test never retries a request: a
/// retry would hide the failure and skew the timings).
#[test]
fn http_503_and_429_are_failures_counted_by_status_and_never_retried() {
    for (code, extra) in [(503u16, None), (429, Some("1"))] {
        let rt = runtime();
        let mut answer = ResponseTemplate::new(code).set_body_string("try later");
        if let Some(after) = extra {
            answer = answer.insert_header("retry-after", after);
        }
        let server = rt.block_on(mock_vllm(models_ok(), answer));
        let (_d, eval, out) = workdir(3);
        let o = run(&mut cmd(&server.uri(), &eval, &out));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(status(&out), "completed");
        let r = results(&out);
        assert_eq!(errors(&r)[format!("http_{code}")], 3, "{r}");
        assert_eq!(r["client"]["successful_requests"], 0);
        assert_eq!(r["client"]["success_rate"], 0.0);
        assert_eq!(r["client"]["e2e_adjusted_s"]["p95"], "+Inf");
        assert_eq!(rt.block_on(generation_hits(&server)), 3, "sent once each");
        let line = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
        let first: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        assert_eq!(first["http_status"], code);
        assert!(
            first["error"].as_str().unwrap().contains("try later"),
            "{first}"
        );
    }
}

/// A stream cut by a connection reset after some tokens (`--cut-mode reset`: no terminating
/// chunk) is `stream_incomplete`, never a success with the tokens it got.
#[test]
fn a_stream_reset_after_tokens_is_incomplete() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        cut_rate: 1.0,
        cut_mode: vllm_sim::CutMode::Reset,
        ..Default::default()
    });
    let (_d, eval, out) = workdir(4);
    let o = run(cmd(&sim.url, &eval, &out).args(["--max-tokens", "16"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(errors(&r)["stream_incomplete"], 4, "{r}");
    assert_eq!(r["client"]["successful_requests"], 0);
    assert_eq!(r["client"]["e2e_s"]["p95"], Value::Null);
}

/// The answer's headers arrive, then nothing: the request deadline ends it as `timeout`, with
/// no TTFT (no token came).
#[test]
fn headers_then_silence_is_a_timeout_at_the_request_deadline() {
    let vllm = HangingVllm::start(Vec::new());
    let (_d, eval, out) = workdir(2);
    let started = Instant::now();
    let o = run(cmd(vllm.url(), &eval, &out).args(["--request-timeout", "1s"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&out), "completed");
    let r = results(&out);
    assert_eq!(errors(&r)["timeout"], 2, "{r}");
    assert_eq!(r["client"]["ttft_s"]["count"], 0);
    assert_eq!(vllm.generations(), 2);
}

/// Every token, the finish reason and the usage arrive, then the server never sends
/// `data: [DONE]` nor ends the body: a `timeout` failure at the deadline (the stream is not
/// known to be complete), never a success; the request's line keeps what did arrive.
#[test]
fn silence_after_the_last_token_without_done_is_a_timeout_not_a_success() {
    let vllm = HangingVllm::start(vec![
        chunk("a", None),
        chunk("b", Some("length")),
        USAGE_CHUNK.to_string(),
    ]);
    let (_d, eval, out) = workdir(2);
    let o = run(cmd(vllm.url(), &eval, &out).args(["--request-timeout", "1s"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(errors(&r)["timeout"], 2, "{r}");
    assert_eq!(r["client"]["successful_requests"], 0);
    let text = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    for l in text.lines() {
        let rec: Value = serde_json::from_str(l).unwrap();
        assert_eq!(rec["ok"], false, "{l}");
        assert_eq!(rec["error_kind"], "timeout", "{l}");
        assert_eq!(rec["content_chunks"], 2, "{l}");
    }
}

/// Chunks that are JSON but not a completions chunk: a wrong type where vLLM has an array is
/// `malformed`; an object with none of the expected fields carries no token, so a stream of
/// them is an `empty_response`.
#[test]
fn wrong_shape_json_chunks_are_failures() {
    let rt = runtime();
    for (body, kind) in [
        (
            format!("data: {{\"choices\": \"nope\"}}\n\n{DONE}"),
            "malformed",
        ),
        (format!("data: [1, 2, 3]\n\n{DONE}"), "malformed"),
        (
            format!("data: {{\"unexpected\": true}}\n\n{USAGE_CHUNK}{DONE}"),
            "empty_response",
        ),
    ] {
        let server = rt.block_on(mock_vllm(models_ok(), sse(body.clone())));
        let (_d, eval, out) = workdir(2);
        let o = run(&mut cmd(&server.uri(), &eval, &out));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r = results(&out);
        assert_eq!(errors(&r)[kind], 2, "{body}: {r}");
        assert_eq!(r["client"]["successful_requests"], 0, "{body}");
    }
}

/// `/health` answers 200 but `/v1/models` 500 (or a body of the wrong shape): the step stops
/// before the load (exit 3), the error line names `/v1/models`, and no request is sent.
#[test]
fn health_ok_but_models_failing_stops_before_the_load() {
    let rt = runtime();
    for (models, needle) in [
        (
            ResponseTemplate::new(500).set_body_string("engine dead"),
            "500",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"data": "not a list"})),
            "/v1/models",
        ),
    ] {
        let server = rt.block_on(mock_vllm(models, sse(DONE.to_string())));
        let (_d, eval, out) = workdir(2);
        let o = run(&mut cmd(&server.uri(), &eval, &out));
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert_eq!(status(&out), "failed");
        let r = results(&out);
        let line = error_line(&o, &r);
        assert!(line.contains("/v1/models"), "{line}");
        assert!(line.contains(needle), "{line}");
        assert!(r["client"].is_null(), "{r}");
        assert_eq!(rt.block_on(generation_hits(&server)), 0, "no load was sent");
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

/// A mock Prometheus: ready, and every instant query answered by `answer`.
async fn mock_prometheus(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/-/ready"))
        .respond_with(ResponseTemplate::new(200).set_body_string("Prometheus Server is Ready."))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/query"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// `load-test` against the simulator with the seed's window (evaluated at once after the
/// load: `--scrape-wait 0s`), figures from the Prometheus at `prom`.
fn seed_window(sim: &Sim, prom: &str, eval: &Path, out: &Path, extra: &[&str]) -> Output {
    run(cmd(&sim.url, eval, out)
        .args(["--prometheus-url", prom, "--window-mode", "seed"])
        .args(["--scrape-interval", "1s", "--scrape-wait", "100ms"])
        .args(extra))
}

fn vector(value: &str) -> Value {
    json!({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {}, "value": [1.7e9, value]}]}})
}

/// NaN, +Inf, -Inf and empty answers are never a number in the results: each server figure is
/// `null` with a reason, and the run completes (the decision then fails closed on them).
#[test]
fn nan_inf_and_empty_answers_are_null_figures_with_reasons() {
    let rt = runtime();
    let sim = quick_sim();
    for (answer, why) in [
        (vector("NaN"), "Prometheus returned NaN"),
        (
            vector("+Inf"),
            "+Inf: the quantile lies above the highest finite bucket",
        ),
        (vector("-Inf"), "Prometheus returned -Inf"),
        (
            json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
            "no series matched",
        ),
    ] {
        let prom = rt.block_on(mock_prometheus(
            ResponseTemplate::new(200).set_body_json(&answer),
        ));
        let (_d, eval, out) = workdir(3);
        let o = seed_window(&sim, &prom.uri(), &eval, &out, &[]);
        assert_eq!(o.status.code(), Some(0), "{answer}: {}", stderr(&o));
        assert_eq!(status(&out), "completed");
        let r = results(&out);
        let s = &r["server"];
        for figure in [
            &s["e2e_latency_s"]["p95"],
            &s["ttft_s"]["p95"],
            &s["throughput_rps"],
        ] {
            assert_eq!(figure["value"], Value::Null, "{answer}: {figure}");
            assert!(
                !figure["reason"].as_str().unwrap_or_default().is_empty(),
                "{answer}: a null without a reason: {figure}"
            );
        }
        let reason = s["e2e_latency_s"]["p95"]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{answer}: {reason}");
    }
}

/// Prometheus answering 5xx to every query, after its retries (3 attempts): exit 3, the line
/// names Prometheus's URL and the status; the client figures measured are kept.
#[test]
fn prometheus_5xx_after_retries_fails_the_step_keeping_the_client_figures() {
    let rt = runtime();
    let sim = quick_sim();
    let prom = rt.block_on(mock_prometheus(
        ResponseTemplate::new(503).set_body_string("service unavailable"),
    ));
    let (_d, eval, out) = workdir(3);
    let o = seed_window(&sim, &prom.uri(), &eval, &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let line = error_line(&o, &results(&out));
    assert!(line.contains(&prom.uri()), "{line}");
    assert!(line.contains("HTTP 503"), "{line}");
    let r = results(&out);
    assert_eq!(r["client"]["successful_requests"], 3, "{r}");
    assert!(r["server"].is_null());
    let queries = rt.block_on(prom.received_requests()).unwrap();
    assert_eq!(
        queries
            .iter()
            .filter(|q| q.url.path() == "/api/v1/query")
            .count(),
        3,
        "one query, three attempts"
    );
}

/// A Prometheus slower than `--prometheus-timeout` (+5 s of transport slack) on every attempt:
/// exit 3 naming Prometheus, in bounded time (3 attempts).
#[test]
fn serial_prometheus_slower_than_the_timeout_fails_the_step_in_bounded_time() {
    let rt = runtime();
    let sim = quick_sim();
    let prom = rt.block_on(mock_prometheus(
        ResponseTemplate::new(200)
            .set_body_json(vector("1"))
            .set_delay(Duration::from_secs(60)),
    ));
    let (_d, eval, out) = workdir(2);
    let started = Instant::now();
    let o = seed_window(
        &sim,
        &prom.uri(),
        &eval,
        &out,
        &["--prometheus-timeout", "100ms"],
    );
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(took < Duration::from_secs(30), "{took:?}");
    let line = error_line(&o, &results(&out));
    assert!(
        line.contains(&format!(
            "Prometheus at {} is unreachable after 3 attempt(s)",
            prom.uri()
        )),
        "{line}"
    );
    assert_eq!(status(&out), "failed");
}

/// A matrix where an instant query must give a vector: the step fails (exit 3) naming
/// Prometheus and what it sent, never reading a figure from it.
#[test]
fn a_matrix_instead_of_a_vector_is_an_error_naming_prometheus() {
    let rt = runtime();
    let sim = quick_sim();
    let matrix = json!({"status": "success", "data": {"resultType": "matrix",
        "result": [{"metric": {}, "values": [[1.7e9, "1"], [1.7e9 + 1.0, "2"]]}]}});
    let prom = rt.block_on(mock_prometheus(
        ResponseTemplate::new(200).set_body_json(matrix),
    ));
    let (_d, eval, out) = workdir(2);
    let o = seed_window(&sim, &prom.uri(), &eval, &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let line = error_line(&o, &results(&out));
    assert!(
        line.contains(&format!(
            "Prometheus at {} sent an unexpected answer",
            prom.uri()
        )),
        "{line}"
    );
    assert_eq!(status(&out), "failed");
}

/// A real Prometheus, scraping the simulator every second, killed while the load runs: the
/// figures after the load cannot be read (exit 3, the line names Prometheus's URL), the
/// client's figures are kept, the status says `failed`.
#[test]
fn serial_prometheus_down_at_the_end_fails_the_step_naming_it() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(50),
        itl: Duration::from_millis(20),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    let url = prom.url();
    let (_d, eval, out) = workdir(100);
    let child = spawn(
        cmd(&sim.url, &eval, &out)
            .args(["--prometheus-url", &url, "--scrape-interval", "1s"])
            .args(["--concurrency", "2", "--max-tokens", "5"]),
    );
    wait_until("the load to start", || sim.stats().accepted >= 1);
    drop(prom);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let line = error_line(&o, &results(&out));
    assert!(line.contains(&url), "{line}");
    let r = results(&out);
    assert_eq!(r["client"]["total_requests"], 100, "{r}");
    assert!(r["server"].is_null());
}

/// A real Prometheus restarted (stopped, then started again on the same port and TSDB) while
/// the load runs: its WAL keeps the samples from before, scraping resumes, and the figures
/// after the load are exact and the measurement valid.
#[test]
fn serial_prometheus_restarted_during_the_load_still_counts_exactly() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(50),
        itl: Duration::from_millis(20),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom_dir = tempfile::tempdir().unwrap();
    let config =
        test_support::prometheus::config_yaml("vllm-service", &[&target], Duration::from_secs(1));
    let launch = test_support::prometheus::Launch {
        dir: prom_dir.path(),
        port: test_support::free_port(),
        config_yaml: &config,
    };
    let start = || {
        let mut child = launch.spawn().unwrap();
        launch
            .wait_ready(&mut child)
            .unwrap_or_else(|e| panic!("{e}"));
        child
    };
    let mut prom = start();
    std::thread::sleep(Duration::from_secs(3)); // discovery and a first scrape
    let url = format!("http://127.0.0.1:{}", launch.port);
    let (_d, eval, out) = workdir(100);
    let child = spawn(
        cmd(&sim.url, &eval, &out)
            .args(["--prometheus-url", &url, "--scrape-interval", "1s"])
            .args(["--concurrency", "2", "--max-tokens", "5"]),
    );
    wait_until("the load to start", || sim.stats().accepted >= 5);
    test_support::process::stop_group(&mut prom);
    let at_stop = sim.stats().accepted;
    let mut prom = start();
    let o = child.wait_with_output().unwrap();
    test_support::process::stop_group(&mut prom);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        at_stop < 100,
        "Prometheus was stopped after the load: {at_stop}"
    );
    let r = results(&out);
    assert_eq!(r["status"], "completed");
    let s = &r["server"];
    assert_eq!(
        s["requests_finished"]["value"].as_f64(),
        r["client"]["successful_requests"].as_f64(),
        "{s}"
    );
    assert_eq!(r["validity"]["valid"], true, "{}", r["validity"]);
}

/// A real Prometheus that scrapes vLLM under another job than `--prometheus-job`: after
/// `--scrape-wait` the step fails before the load (exit 3), naming the job asked for and the
/// jobs Prometheus does scrape.
#[test]
fn serial_a_job_prometheus_does_not_scrape_fails_naming_the_jobs_it_does() {
    let sim = quick_sim();
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    let (_d, eval, out) = workdir(2);
    let o = run(cmd(&sim.url, &eval, &out).args([
        "--prometheus-url",
        &prom.url(),
        "--prometheus-job",
        "vllm-typo",
        "--scrape-interval",
        "1s",
        "--scrape-wait",
        "2s",
    ]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(status(&out), "failed");
    let line = error_line(&o, &results(&out));
    assert!(
        line.starts_with("Prometheus has no sample of job \"vllm-typo\" after waiting"),
        "{line}"
    );
    assert!(
        line.ends_with("(check --prometheus-job; the jobs it scrapes: vllm-service)"),
        "{line}"
    );
    assert_eq!(sim.stats().accepted, 0, "no load was sent");
}

// ---------------------------------------------------------------------------------------------
// Process: SIGTERM / SIGINT once at each phase (twice: see docs/failure-behaviour.md)
// ---------------------------------------------------------------------------------------------

/// Asserts an aborted step: exit 4, status `aborted`, the error naming the phase.
fn assert_aborted(o: &Output, out: &Path, phase: &str) -> Value {
    assert_eq!(o.status.code(), Some(4), "{}", stderr(o));
    assert_eq!(status(out), "aborted");
    let r = results(out);
    assert_eq!(r["status"], "aborted");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(error.contains(phase), "{error}");
    r
}

/// SIGINT during the pre-flight (`--wait-ready` on a vLLM that never answers).
#[test]
fn serial_sigint_during_the_preflight_aborts_at_once() {
    let (_d, eval, out) = workdir(1);
    let dead = format!("http://127.0.0.1:{}", test_support::free_port());
    let started = Instant::now();
    let child = spawn(cmd(&dead, &eval, &out).args(["--wait-ready", "60s"]));
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let r = assert_aborted(&o, &out, "before the load started");
    assert!(r["client"].is_null());
}

/// SIGTERM and SIGINT while the warm-up requests hang: the step stops without starting the load.
#[test]
fn serial_a_signal_during_the_warm_up_aborts_before_the_load() {
    for sig in ["TERM", "INT"] {
        let vllm = HangingVllm::start(Vec::new());
        let (_d, eval, out) = workdir(3);
        let child = spawn(cmd(vllm.url(), &eval, &out).args([
            "--warmup-requests",
            "2",
            "--drain-grace",
            "1s",
        ]));
        wait_until("the warm-up requests", || vllm.generations() >= 2);
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        let r = assert_aborted(&o, &out, "before the load started");
        assert!(r["client"].is_null(), "SIG{sig}: {r}");
        assert_eq!(vllm.generations(), 2, "SIG{sig}: the load never started");
        assert!(!out.join("requests.jsonl").exists());
    }
}

/// SIGINT during the load: as SIGTERM (`against_sim.rs`), no new request, the figures cover the
/// requests that finished.
#[test]
fn serial_sigint_during_the_load_keeps_what_finished() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(100),
        itl: Duration::from_millis(20),
        ..Default::default()
    });
    let (_d, eval, out) = workdir(400);
    let child = spawn(cmd(&sim.url, &eval, &out).args([
        "--concurrency",
        "4",
        "--max-tokens",
        "5",
        "--drain-grace",
        "2s",
    ]));
    wait_until("8 requests", || sim.stats().accepted >= 8);
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    let r = assert_aborted(&o, &out, "stopped by a signal");
    let total = r["client"]["total_requests"].as_u64().unwrap();
    assert!((8..400).contains(&total), "{total}");
    let lines = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let abandoned = errors(&r)["abandoned"].as_u64().unwrap_or(0);
    assert_eq!(lines.lines().count() as u64 + abandoned, total);
}

/// A signal while waiting for Prometheus's confirmed sample before the load (its only target
/// is down, so no edge can be confirmed): aborted before any request is sent.
#[test]
fn serial_a_signal_while_waiting_for_prometheus_before_the_load_aborts() {
    let sim = quick_sim();
    let dead = format!("127.0.0.1:{}", test_support::free_port());
    let prom = PrometheusServer::start("vllm-service", &[&dead], Duration::from_secs(1));
    let (_d, eval, out) = workdir(2);
    let child = spawn(cmd(&sim.url, &eval, &out).args([
        "--prometheus-url",
        &prom.url(),
        "--scrape-interval",
        "1s",
        "--scrape-wait",
        "60s",
    ]));
    // the pre-flight against local servers takes milliseconds; the wait takes up to 60 s
    std::thread::sleep(Duration::from_secs(5));
    signal(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    assert_aborted(
        &o,
        &out,
        "while waiting for Prometheus's samples before the load",
    );
    assert_eq!(sim.stats().accepted, 0, "no load was sent");
}

/// A signal during the wait for the scrape after the load (seed window, a real Prometheus): the
/// client's figures are kept, there are no server figures.
#[test]
fn serial_a_signal_during_the_scrape_wait_keeps_the_client_figures() {
    let sim = quick_sim();
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    let (_d, eval, out) = workdir(3);
    let child = spawn(cmd(&sim.url, &eval, &out).args([
        "--prometheus-url",
        &prom.url(),
        "--window-mode",
        "seed",
        "--scrape-interval",
        "1s",
        "--scrape-wait",
        "60s",
    ]));
    wait_until("the load", || sim.stats().accepted >= 3);
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, "INT");
    let o = child.wait_with_output().unwrap();
    let r = assert_aborted(&o, &out, "stopped by a signal");
    assert_eq!(r["client"]["successful_requests"], 3, "{r}");
    assert!(r["server"].is_null(), "{r}");
}

/// A signal while a Prometheus query hangs (seed window): aborted, client figures kept.
#[test]
fn serial_a_signal_during_a_hanging_prometheus_query_aborts() {
    let rt = runtime();
    let sim = quick_sim();
    let prom = rt.block_on(mock_prometheus(
        ResponseTemplate::new(200)
            .set_body_json(vector("1"))
            .set_delay(Duration::from_secs(60)),
    ));
    let (_d, eval, out) = workdir(3);
    let child = spawn(cmd(&sim.url, &eval, &out).args([
        "--prometheus-url",
        &prom.uri(),
        "--window-mode",
        "seed",
        "--scrape-interval",
        "1s",
        "--scrape-wait",
        "100ms",
    ]));
    let queried = || {
        rt.block_on(prom.received_requests())
            .unwrap()
            .iter()
            .any(|r| r.url.path() == "/api/v1/query")
    };
    wait_until("a query", queried);
    signal(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    let r = assert_aborted(&o, &out, "stopped by a signal");
    assert_eq!(r["client"]["successful_requests"], 3, "{r}");
}

/// A signal while vLLM's `/metrics` is scraped after the load (no Prometheus; the scrape hangs):
/// the wait ends at once, as every other wait of the step: aborted, client figures kept.
#[test]
fn serial_a_signal_during_the_metrics_scrape_after_the_load_aborts() {
    let rt = runtime();
    let body = format!(
        "{}{}{}data: [DONE]\n\n",
        test_support::faults::completion_chunk("a", None),
        test_support::faults::completion_chunk("b", Some("length")),
        test_support::faults::USAGE_CHUNK
    );
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/health"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(models_ok())
            .mount(&server)
            .await;
        // the scrape before the load answers; the one after hangs
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(test_support::faults::METRICS, "text/plain"),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/metrics"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(test_support::faults::METRICS, "text/plain")
                    .set_delay(Duration::from_secs(60)),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .respond_with(sse(body))
            .mount(&server)
            .await;
        server
    });
    let (_d, eval, out) = workdir(3);
    let started = Instant::now();
    let child = spawn(&mut cmd(&server.uri(), &eval, &out));
    let scraped_twice = || {
        rt.block_on(server.received_requests())
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/metrics")
            .count()
            >= 2
    };
    wait_until("the scrape after the load", scraped_twice);
    signal(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the hanging scrape was waited out"
    );
    let r = assert_aborted(&o, &out, "stopped by a signal");
    assert_eq!(r["client"]["successful_requests"], 3, "{r}");
    assert!(r["server"].is_null(), "{r}");
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// An output directory that does not exist (nested) is created.
#[test]
fn a_missing_output_dir_is_created() {
    let sim = quick_sim();
    let (_d, eval, out) = workdir(2);
    let nested = out.join("a").join("b");
    let o = run(&mut cmd(&sim.url, &eval, &nested));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status(&nested), "completed");
    assert_eq!(results(&nested)["client"]["successful_requests"], 2);
}

/// Disk full, simulated with a file-size limit (`ulimit -f`, SIGXFSZ ignored so the write
/// fails with EFBIG instead of killing the process): the status word and the one-request
/// `requests.jsonl` fit, the results document does not. Exit 3, the line names the file, the
/// status says `failed`, and no half-written results or temp file stay behind.
#[test]
fn a_results_file_that_cannot_be_written_in_full_fails_the_step() {
    let sim = quick_sim();
    let (_d, eval, out) = workdir(1);
    let c = cmd(&sim.url, &eval, &out);
    let program = c.get_program().to_owned();
    let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        // 4 blocks of 512 bytes: the results document (several KB) cannot fit
        .arg("trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\"")
        .arg(program)
        .args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => limited.env(k, v),
            None => limited.env_remove(k),
        };
    }
    let o = run(&mut limited);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let text = stderr(&o);
    let logged: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" ERROR ").map(|(_, m)| m))
        .collect();
    let want = format!(
        "cannot write {}: File too large",
        out.join("load_test_results.json").display()
    );
    assert!(logged.len() == 1 && logged[0].starts_with(&want), "{text}");
    assert_eq!(status(&out), "failed");
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("load_test_results"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// Blank and whitespace-only lines are skipped (not prompts, not errors); a file of nothing
/// else has no prompts (exit 2).
#[test]
fn blank_lines_are_skipped_and_a_file_of_them_has_no_prompts() {
    let sim = quick_sim();
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("eval.jsonl");
    std::fs::write(
        &eval,
        "\n{\"prompt\": \"one\"}\n   \n\n{\"prompt\": \"two\"}\r\n\t\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["eval_data"]["rows"], 2, "{r}");
    assert_eq!(r["client"]["total_requests"], 2);

    std::fs::write(&eval, "\n  \n\t\n").unwrap();
    let o = run(&mut cmd(&sim.url, &eval, &out));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let line = error_line(&o, &results(&out));
    assert!(line.contains("no prompts"), "{line}");
    assert_eq!(status(&out), "failed");
    assert_eq!(sim.stats().accepted, 2, "the second run sent nothing");
}
