//! `--otlp-endpoint` against `vllm-sim`, with a recording OTLP/HTTP receiver (wiremock: no
//! OpenTelemetry Collector or Jaeger installs from the registries this project reaches): each
//! request record's `traceparent` has exactly one exported span with the same trace and span
//! ids and the record's figures, failed requests have status ERROR, the headers reach the
//! receiver and never the logs or files, and a receiver that is down or refuses only warns.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use test_support::sim::Sim;
use test_support::steps::{load_test_against, stderr};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "otlp-s3cr3t-token-value";

fn sim(error_rate: f64) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        error_rate,
        ..Default::default()
    })
}

/// A receiver answering every `POST /v1/traces` with `status`, on its own runtime.
fn receiver(status: u16) -> (tokio::runtime::Runtime, MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let s = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/traces"))
            .respond_with(ResponseTemplate::new(status).set_body_json(serde_json::json!({})))
            .mount(&s)
            .await;
        s
    });
    (rt, server)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn every_record_s_traceparent_has_one_exported_span_with_its_figures() {
    let sim = sim(0.25);
    let (rt, server) = receiver(200);
    let dir = tempfile::tempdir().unwrap();
    let header = format!("x-otlp-token={TOKEN}");
    let run = load_test_against(
        &sim.url,
        dir.path(),
        10,
        &[
            "--poll-interval",
            "0",
            "--max-tokens",
            "4",
            "--concurrency",
            "4",
            "--num-requests",
            "40",
            "--otlp-endpoint",
            &server.uri(),
            "--otlp-header",
            &header,
        ],
    );
    let err = stderr(&run.output);
    assert!(run.output.status.success(), "{err}");
    assert_eq!(run.records.len(), 40);
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert!(!requests.is_empty());
    let mut spans: Vec<Value> = vec![];
    for r in &requests {
        assert_eq!(
            r.headers.get("x-otlp-token").and_then(|v| v.to_str().ok()),
            Some(TOKEN)
        );
        assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        for rs in body["resourceSpans"].as_array().unwrap() {
            let res = &rs["resource"];
            assert_eq!(
                attr(res, "service.name").unwrap()["stringValue"],
                "load-test"
            );
            assert!(attr(res, "load_test.run_id").is_some(), "{res}");
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    // one span per record, no more
    assert_eq!(spans.len(), run.records.len(), "{spans:?}");
    let mut by_span_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in &spans {
        by_span_id
            .entry(s["spanId"].as_str().unwrap())
            .or_default()
            .push(s);
    }
    let mut failed = 0;
    for rec in &run.records {
        let tp = rec["traceparent"].as_str().unwrap();
        let (trace_id, span_id) = (&tp[3..35], &tp[36..52]);
        let found = by_span_id.get(span_id).map_or(&[][..], Vec::as_slice);
        assert_eq!(found.len(), 1, "exactly one span for {tp}");
        let s = found[0];
        assert_eq!(s["traceId"], trace_id);
        assert_eq!(s["name"], "llm.request");
        assert_eq!(s["kind"], 3);
        assert!(s.get("parentSpanId").is_none_or(|p| p == ""), "a root: {s}");
        let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let span_s = (end - start) as f64 / 1e9;
        let total_s = rec["total_s"].as_f64().unwrap();
        assert!((span_s - total_s).abs() < 1e-6, "{span_s} vs {total_s}");
        assert_eq!(
            attr(s, "gen_ai.request.model").unwrap()["stringValue"],
            "candidate"
        );
        assert_eq!(
            attr(s, "url.path").unwrap()["stringValue"],
            "/v1/completions"
        );
        assert_eq!(
            attr(s, "load_test.seq").unwrap()["intValue"],
            rec["seq"].to_string()
        );
        if rec["ok"] == true {
            assert!(s.get("status").is_none(), "{s}");
            assert_eq!(
                attr(s, "gen_ai.usage.output_tokens").unwrap()["intValue"],
                rec["output_tokens"].to_string()
            );
            assert_eq!(attr(s, "llm.ttft_s").unwrap()["doubleValue"], rec["ttft_s"]);
            assert_eq!(attr(s, "llm.e2e_s").unwrap()["doubleValue"], rec["e2e_s"]);
        } else {
            failed += 1;
            assert_eq!(s["status"]["code"], 2, "{s}");
            let kind = attr(s, "error.type").unwrap()["stringValue"]
                .as_str()
                .unwrap();
            assert_eq!(
                kind,
                format!("http_{}", rec["http_status"]),
                "the record's error kind: {rec}"
            );
            assert!(attr(s, "llm.ttft_s").is_none());
        }
    }
    assert!(
        failed > 0,
        "the simulator injected no error: raise its rate"
    );
    // the header's value is a secret: in no log line and no file
    assert!(!err.contains(TOKEN), "{err}");
    for f in std::fs::read_dir(&run.out).unwrap() {
        let text = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains(TOKEN));
    }
    let results: Value =
        serde_json::from_slice(&std::fs::read(run.out.join("load_test_results.json")).unwrap())
            .unwrap();
    let warnings = results["warnings"].to_string();
    assert!(!warnings.contains("OTLP"), "{warnings}");
}

#[test]
fn an_unreachable_or_refusing_receiver_only_warns() {
    let sim = sim(0.0);
    let (_rt, refusing) = receiver(503);
    let down = format!("http://127.0.0.1:{}", test_support::free_port());
    for endpoint in [down.as_str(), &refusing.uri()] {
        let dir = tempfile::tempdir().unwrap();
        let run = load_test_against(
            &sim.url,
            dir.path(),
            5,
            &[
                "--poll-interval",
                "0",
                "--max-tokens",
                "2",
                "--num-requests",
                "12",
                "--otlp-endpoint",
                endpoint,
            ],
        );
        let err = stderr(&run.output);
        assert!(run.output.status.success(), "{err}");
        assert!(
            err.contains("OTLP export failed (the run goes on)"),
            "{err}"
        );
        let results: Value =
            serde_json::from_slice(&std::fs::read(run.out.join("load_test_results.json")).unwrap())
                .unwrap();
        assert_eq!(results["status"], "completed");
        let w: Vec<&str> = results["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|w| w.starts_with("OTLP: "))
            .collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("OTLP: 12 span(s) not exported to ")
                && w[0].contains("(0 exported, 12 in failed exports, 0 dropped"),
            "{}",
            w[0]
        );
        if endpoint == down {
            assert!(w[0].contains("Connection refused"), "{}", w[0]);
        } else {
            assert!(w[0].contains("HTTP 503"), "{}", w[0]);
        }
    }
}

#[test]
fn a_bad_endpoint_or_header_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["--otlp-endpoint", "collector:4318"][..],
            "--otlp-endpoint collector:4318: ",
        ),
        (
            &[
                "--otlp-endpoint",
                "http://127.0.0.1:4318",
                "--otlp-header",
                "no-equals-sign",
            ][..],
            "--otlp-header: a header is not name=value (not shown",
        ),
        (
            &[
                "--otlp-endpoint",
                "http://127.0.0.1:4318",
                "--traceparent",
                "false",
            ][..],
            "--otlp-endpoint exports the span of each request's traceparent",
        ),
    ] {
        // nothing listens at the vLLM URL: the flags are refused before any request
        let run = load_test_against("http://127.0.0.1:9", dir.path(), 1, args);
        let err = stderr(&run.output);
        assert_eq!(run.output.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
