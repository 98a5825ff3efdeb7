//! Faults a real vLLM cannot be made to show on demand, from a mock server (wiremock): a hang,
//! errors inside the stream (both vLLM spellings), malformed chunks, abnormal finish reasons,
//! an empty stream. Each must count as a failure of the right kind, never a success.

use std::time::Duration;

use test_support::sim::eval_file;
use test_support::steps::{load_test, load_test_results as results, run, stderr};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MODELS: &str = r#"{"object":"list","data":[{"id":"tiny-base","object":"model","root":"/m/base","parent":null},{"id":"candidate","object":"model","root":"/m/lora","parent":"tiny-base"}]}"#;
const METRICS: &str = "# TYPE vllm:request_success_total counter\nvllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"tiny-base\"} 0.0\n";

fn chunk(text: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"candidate\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"finish_reason\":{finish}}}]}}\n\n"
    )
}

const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// A mock vLLM whose completions endpoint answers `body` (SSE) after `delay`.
async fn mock_vllm(body: String, delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(MODELS, "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(METRICS, "text/plain"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(body, "text/event-stream; charset=utf-8")
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

/// Runs load-test (2 prompts) against a mock whose stream is `body`; returns the results JSON.
fn run_against(
    body: String,
    delay: Duration,
    extra: &[&str],
) -> (serde_json::Value, std::process::Output) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(mock_vllm(body, delay));
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 2);
    let out = dir.path().join("out");
    let o = run(load_test()
        .args([
            "--vllm-url",
            &server.uri(),
            "--adapter-name",
            "candidate",
            "--progress-interval",
            "0",
        ])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(extra));
    let r = results(&out);
    drop(server);
    (r, o)
}

fn errors(r: &serde_json::Value) -> &serde_json::Value {
    &r["client"]["errors_by_kind"]
}

#[test]
fn a_hang_is_a_timeout_failure() {
    let body = format!("{}{}{DONE}", chunk("a", None), chunk("b", Some("length")));
    let (r, o) = run_against(body, Duration::from_secs(30), &["--request-timeout", "1s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(r["client"]["successful_requests"], 0);
    assert_eq!(errors(&r)["timeout"], 2);
    assert_eq!(r["client"]["e2e_adjusted_s"]["p50"], "+Inf");
}

#[test]
fn errors_inside_the_stream_are_failures_in_both_spellings() {
    let nested = format!(
        "{}data: {{\"error\":{{\"message\":\"engine died\",\"type\":\"InternalServerError\",\"code\":500}}}}\n\n{DONE}",
        chunk("a", None)
    );
    let (r, _) = run_against(nested, Duration::ZERO, &[]);
    assert_eq!(errors(&r)["stream_error"], 2, "{r}");
    let flat = format!(
        "{}data: {{\"object\":\"error\",\"message\":\"engine died\",\"type\":\"InternalServerError\",\"code\":500}}\n\n{DONE}",
        chunk("a", None)
    );
    let (r, _) = run_against(flat, Duration::ZERO, &[]);
    assert_eq!(errors(&r)["stream_error"], 2, "{r}");
    assert_eq!(r["client"]["success_rate"], 0.0);
}

#[test]
fn malformed_chunks_are_failures() {
    let body = format!("{}data: {{\"choices\": [tru\n\n{DONE}", chunk("a", None));
    let (r, _) = run_against(body, Duration::ZERO, &[]);
    assert_eq!(errors(&r)["malformed"], 2, "{r}");
}

#[test]
fn abort_and_error_finish_reasons_are_failures() {
    for reason in ["abort", "error"] {
        let body = format!(
            "{}{}{USAGE}{DONE}",
            chunk("a", None),
            chunk("b", Some(reason))
        );
        let (r, _) = run_against(body, Duration::ZERO, &[]);
        assert_eq!(errors(&r)[format!("finish_{reason}")], 2, "{r}");
        assert_eq!(r["client"]["successful_requests"], 0);
    }
}

#[test]
fn a_stream_without_tokens_is_a_failure_and_eos_only_is_not() {
    let (r, _) = run_against(DONE.to_string(), Duration::ZERO, &[]);
    assert_eq!(errors(&r)["empty_response"], 2, "{r}");
    assert_eq!(
        r["client"]["e2e_adjusted_s"]["count"], 2,
        "every request is in the adjusted count"
    );
    // A sequence that ends on EOS: one chunk with empty text and finish_reason stop.
    let (r, _) = run_against(
        format!("{}{USAGE}{DONE}", chunk("", Some("stop"))),
        Duration::ZERO,
        &[],
    );
    assert_eq!(r["client"]["successful_requests"], 2, "{r}");
    assert_eq!(
        r["client"]["ttft_s"]["count"], 2,
        "the EOS chunk gives the TTFT"
    );
}

#[test]
fn a_stream_that_never_names_a_finish_reason_is_not_trusted() {
    let body = format!("{}{}{USAGE}{DONE}", chunk("a", None), chunk("b", None));
    let (r, _) = run_against(body, Duration::ZERO, &[]);
    assert_eq!(errors(&r)["finish_missing"], 2, "{r}");
}

#[test]
fn a_body_without_done_is_incomplete() {
    let body = format!("{}{}", chunk("a", None), chunk("b", Some("length")));
    let (r, _) = run_against(body, Duration::ZERO, &[]);
    assert_eq!(errors(&r)["stream_incomplete"], 2, "{r}");
}

#[test]
fn usage_of_zero_tokens_after_content_is_flagged_not_silently_counted() {
    let zero = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":0,\"total_tokens\":3}}\n\n";
    let body = format!(
        "{}{}{zero}{DONE}",
        chunk("a", None),
        chunk("b", Some("length"))
    );
    let (r, o) = run_against(body, Duration::ZERO, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // still successes (the stream was whole), but the contradiction is counted and said
    assert_eq!(r["client"]["successful_requests"], 2, "{r}");
    assert_eq!(r["client"]["zero_usage_with_content"], 2, "{r}");
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().starts_with(
            "2 successful responses streamed content but their usage chunk said 0 completion tokens"
        )),
        "{r}"
    );
}
