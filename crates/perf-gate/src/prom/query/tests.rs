//! Result handling against wiremock as a fake Prometheus (unit level: empty, NaN, +Inf, warnings,
//! aliases, retries, errors). The happy path against a real Prometheus is in
//! `tests/real_prometheus.rs`.

use std::time::Duration;

use chrono::DateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(5),
    }
}

fn span() -> LoadSpan {
    LoadSpan {
        start: DateTime::from_timestamp(1_000, 0).unwrap(),
        end: DateTime::from_timestamp(1_010, 0).unwrap(),
    }
}

fn settings() -> PromSettings {
    PromSettings {
        scrape_interval: Duration::from_secs(1),
        ..PromSettings::default()
    }
}

fn form(req: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

fn param(req: &Request, key: &str) -> Option<String> {
    form(req)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn vector(value: Option<&str>) -> serde_json::Value {
    let result = match value {
        Some(v) => serde_json::json!([{"metric": {}, "value": [1013.0, v]}]),
        None => serde_json::json!([]),
    };
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

/// The value a fake Prometheus gives each query (by a distinctive fragment of its PromQL).
fn fake_answer(q: &str) -> serde_json::Value {
    let pick = |frag: &str| q.contains(frag);
    let v = if pick("histogram_quantile(0.5, sum by (le) (rate(vllm:e2e") {
        Some("1.5")
    } else if pick("histogram_quantile(0.95, sum by (le) (rate(vllm:e2e") {
        Some("NaN")
    } else if pick("histogram_quantile(0.99, sum by (le) (rate(vllm:e2e") {
        Some("+Inf")
    } else if pick("vllm:time_to_first_token_seconds") || pick("vllm:inter_token_latency") {
        None
    } else if pick("vllm:time_per_output_token_seconds") {
        Some("0.05")
    } else if pick("resets(") {
        Some("0")
    } else if pick("vllm:request_success_total") {
        Some("30")
    } else if pick("vllm:generation_tokens_total") {
        Some("600")
    } else if pick("max(max_over_time(vllm:kv_cache_usage_perc") {
        Some("0.4")
    } else if pick("avg(avg_over_time(vllm:kv_cache_usage_perc") {
        Some("0.2")
    } else {
        None // DCGM, old KV name
    };
    let mut body = vector(v);
    if pick("max(max_over_time(vllm:kv_cache_usage_perc") {
        body["warnings"] = serde_json::json!(["PromQL warning: something odd"]);
    }
    body
}

#[tokio::test]
async fn result_handling_against_a_fake_prometheus() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(|req: &Request| {
            let q = param(req, "query").unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(fake_answer(&q))
        })
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    let plan = c.plan(&span());
    // T = 1010 + 1 + 2 = 1013; W = 13.
    assert_eq!((plan.eval_time_unix, plan.range_s), (1013, 13));
    let m = c.query_at(&plan, &span()).await.unwrap();

    assert_eq!(m.source, ServerSource::Prometheus);
    assert_eq!(m.window.as_ref().unwrap().range_s, 13);
    assert_eq!(m.e2e_latency_s.p50, crate::results::Measured::value(1.5));
    assert_eq!(m.e2e_latency_s.p95.value, None);
    assert!(
        m.e2e_latency_s
            .p95
            .reason
            .as_deref()
            .unwrap()
            .contains("no observations")
    );
    assert_eq!(m.e2e_latency_s.p99.value, None);
    assert!(
        m.e2e_latency_s
            .p99
            .reason
            .as_deref()
            .unwrap()
            .contains("above the highest finite bucket")
    );
    assert_eq!(m.ttft_s.p95.value, None);
    assert_eq!(
        m.ttft_s.p95.reason.as_deref(),
        Some(
            r#"no series matched vllm:time_to_first_token_seconds_bucket{job="vllm-service"} in the 13s window (check --prometheus-job and metric names)"#
        )
    );
    // ITL resolved through the old name.
    assert_eq!(m.itl_s.p95.value, Some(0.05));
    assert_eq!(
        m.resolved_names.get("itl").map(String::as_str),
        Some("vllm:time_per_output_token_seconds")
    );
    assert_eq!(
        m.resolved_names.get("kv_cache_usage").map(String::as_str),
        Some("vllm:kv_cache_usage_perc")
    );
    assert_eq!(m.requests_finished.value, Some(30.0));
    assert_eq!(m.throughput_rps.value, Some(3.0)); // 30 / 10 s
    assert_eq!(m.generation_tokens_per_s.value, Some(60.0));
    assert_eq!(m.kv_cache_usage_max.value, Some(0.4));
    assert_eq!(m.kv_cache_usage_avg.value, Some(0.2));
    assert_eq!(m.gpu_utilization_avg.value, None);
    assert!(
        m.gpu_utilization_avg
            .reason
            .as_deref()
            .unwrap()
            .contains("--gpu-selector")
    );
    assert_eq!(
        m.warnings,
        vec!["Prometheus warning on kv_cache_usage_max: PromQL warning: something odd".to_string()]
    );
    // 17 queries + 3 ITL alias attempts; every one recorded.
    assert_eq!(m.queries.len(), 20);
    assert!(m.queries.iter().any(|q| q.name == "itl_p95 (alias)"));

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 20);
    for r in &reqs {
        assert_eq!(param(r, "time").as_deref(), Some("1013"));
        assert_eq!(param(r, "timeout").as_deref(), Some("30000ms"));
    }
    crate::prom::answer::assert_every_null_has_a_reason(&serde_json::to_value(&m).unwrap());
}

#[tokio::test]
async fn transient_5xx_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(503).set_body_json(serde_json::json!(
            {"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(vector(Some("42"))))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    let a = c.instant_query("up", 1013).await.unwrap();
    assert_eq!(a.value, Some(42.0));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn bad_data_is_an_error_naming_the_query_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!(
            {"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:37: parse error: not a valid duration string: \"1.5s\""})))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    let e = c.query_at(&c.plan(&span()), &span()).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PromError::Http { status: 400, .. }), "{e:?}");
    assert!(msg.contains(&server.uri()), "{msg}");
    assert!(msg.contains("bad_data"), "{msg}");
    assert!(
        msg.contains("vllm:e2e_request_latency_seconds_bucket"),
        "{msg}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn non_json_answers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    let e = c.instant_query("up", 1).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("HTTP 502 http: <html>Bad Gateway</html>"),
        "{e}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    let e = c.instant_query("up", 1).await.unwrap_err();
    assert!(matches!(e, PromError::Parse { .. }), "{e:?}");
}

#[tokio::test]
async fn unreachable_prometheus_names_the_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let c = PrometheusCollector::new(&url, settings())
        .unwrap()
        .with_retry_policy(fast());
    let e = c.check_ready().await.unwrap_err();
    assert!(
        matches!(e, PromError::Unreachable { attempts: 3, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("Prometheus at {url} is unreachable after 3 attempt(s)")
    );
    assert!(!e.is_bad_input());
    let e = c.query_at(&c.plan(&span()), &span()).await.unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test]
async fn readiness_retries_503_then_reports_the_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/-/ready"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/-/ready"))
        .respond_with(ResponseTemplate::new(200).set_body_string("Prometheus Server is Ready."))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&server.uri(), settings())
        .unwrap()
        .with_retry_policy(fast());
    c.check_ready().await.unwrap();

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/prom/-/ready"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let c = PrometheusCollector::new(&format!("{}/prom/", server.uri()), settings())
        .unwrap()
        .with_retry_policy(fast());
    let e = c.check_ready().await.unwrap_err();
    assert!(
        matches!(
            e,
            PromError::NotReady {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!("{}/prom", server.uri())),
        "{e}"
    );
}

#[test]
fn settings_are_validated() {
    let e = PrometheusCollector::new("not a url", PromSettings::default()).unwrap_err();
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("\"not a url\""), "{e}");
    let s = PromSettings {
        job: " ".into(),
        ..PromSettings::default()
    };
    assert!(
        PrometheusCollector::new("http://127.0.0.1:9090", s)
            .unwrap_err()
            .to_string()
            .contains("--prometheus-job")
    );
    let s = PromSettings {
        gpu_selector: "{gpu=\"0\"".into(),
        ..PromSettings::default()
    };
    assert!(
        PrometheusCollector::new("http://127.0.0.1:9090", s)
            .unwrap_err()
            .to_string()
            .contains("--gpu-selector")
    );
    let s = PromSettings {
        gpu_selector: "gpu=\"1\"".into(),
        ..PromSettings::default()
    };
    let c = PrometheusCollector::new("http://user:pw@127.0.0.1:9090", s).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:9090");
    assert!(!format!("{c:?}").contains("pw"));
}
