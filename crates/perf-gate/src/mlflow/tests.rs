//! Client behaviour against a mock server: only faults a real MLflow cannot be made to show
//! (503s, hangs, malformed bodies), plus the exact wire form of a few calls.

use std::time::{Duration, Instant};

use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::types::{KeyValue, Metric, MetricValue, RunInfo};
use super::*;

fn client(server: &MockServer, retries: u32, timeout: Duration) -> MlflowClient {
    let mut c = MlflowConfig::new(&server.uri()).unwrap();
    c.request_timeout = timeout;
    c.retry = RetryPolicy {
        max_retries: retries,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    };
    MlflowClient::new(&c).unwrap()
}

const MODEL_JSON: &str =
    r#"{"registered_model":{"name":"m","aliases":[{"alias":"eval-passed","version":"2"}]}}"#;

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/2.0/mlflow/registered-models/get"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream busy"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/2.0/mlflow/registered-models/get"))
        .and(query_param("name", "m"))
        .respond_with(ResponseTemplate::new(200).set_body_string(MODEL_JSON))
        .mount(&server)
        .await;
    let m = client(&server, 3, Duration::from_secs(5))
        .get_registered_model("m")
        .await
        .unwrap();
    assert_eq!(m.alias("eval-passed"), Some("2"));
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn gives_up_after_the_retry_budget_with_the_last_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    let e = client(&server, 2, Duration::from_secs(5))
        .get_registered_model("m")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(502));
    assert!(e.to_string().contains("bad gateway"), "{e}");
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(MODEL_JSON))
        .mount(&server)
        .await;
    let t = Instant::now();
    client(&server, 2, Duration::from_secs(5))
        .get_registered_model("m")
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn never_retries_401_or_404() {
    let server = MockServer::start().await;
    Mock::given(path("/api/2.0/mlflow/registered-models/get"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"mlflow\"")
                .set_body_string("You are not authenticated."),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/2.0/mlflow/model-versions/get"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            r#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Model Version (name=m, version=9) not found"}"#,
        ))
        .mount(&server)
        .await;
    let c = client(&server, 4, Duration::from_secs(5));
    let e = c.get_registered_model("m").await.unwrap_err();
    assert!(matches!(e, MlflowError::Http { status: 401, .. }), "{e:?}");
    assert_eq!(hits(&server).await, 1);
    let e = c.get_model_version("m", "9").await.unwrap_err();
    assert!(e.is_not_found());
    assert!(e.to_string().contains("version=9"));
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn a_hang_times_out_and_is_retried_only_when_idempotent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(MODEL_JSON)
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let c = client(&server, 1, Duration::from_millis(300));
    let t = Instant::now();
    let e = c.get_registered_model("m").await.unwrap_err();
    assert!(
        matches!(e, MlflowError::Timeout { attempts: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3));
    let e = c.create_run("1", "r", 1, &[]).await.unwrap_err();
    assert!(
        matches!(e, MlflowError::Timeout { attempts: 1, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"registered_model": {"na"#))
        .mount(&server)
        .await;
    let e = client(&server, 3, Duration::from_secs(5))
        .get_registered_model("m")
        .await
        .unwrap_err();
    assert!(
        matches!(e, MlflowError::Decode { status: 200, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("malformed response"), "{e}");
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = MlflowConfig::new(&format!("http://127.0.0.1:{port}")).unwrap();
    c.retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    };
    let e = MlflowClient::new(&c)
        .unwrap()
        .get_registered_model("m")
        .await
        .unwrap_err();
    assert!(
        matches!(e, MlflowError::Transport { attempts: 3, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot reach mlflow"), "{e}");
}

#[tokio::test]
async fn sends_auth_headers_and_exact_bodies() {
    let server = MockServer::start().await;
    // basic admin:pw-1234 -> YWRtaW46cHctMTIzNA==
    Mock::given(method("DELETE"))
        .and(path("/api/2.0/mlflow/registered-models/alias"))
        .and(header("authorization", "Basic YWRtaW46cHctMTIzNA=="))
        .and(header("content-type", "application/json"))
        .and(body_json(
            serde_json::json!({"name": "m", "alias": "perf-failed"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/log-batch"))
        .and(body_json(serde_json::json!({
            "run_id": "r1",
            "metrics": [{"key": "gpu_utilization", "value": "NaN", "timestamp": 5, "step": 0},
                        {"key": "p95_latency_s", "value": 4.5, "timestamp": 5, "step": 0}],
            "params": [{"key": "concurrency", "value": "8"}],
            "tags": []
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(
            "/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/perf_decision.json",
        ))
        .and(header("authorization", "Basic YWRtaW46cHctMTIzNA=="))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let mut cfg = MlflowConfig::new(&server.uri()).unwrap();
    cfg.auth = Auth::Basic {
        username: "admin".into(),
        password: Secret::new("pw-1234"),
    };
    let c = MlflowClient::new(&cfg).unwrap();
    assert!(!format!("{c:?}").contains("pw-1234"));
    c.delete_alias("m", "perf-failed").await.unwrap();
    let batch = Batch {
        metrics: vec![
            Metric {
                key: "gpu_utilization".into(),
                value: MetricValue(f64::NAN),
                timestamp: 5,
                step: 0,
            },
            Metric {
                key: "p95_latency_s".into(),
                value: MetricValue(4.5),
                timestamp: 5,
                step: 0,
            },
        ],
        params: vec![KeyValue::new("concurrency", "8")],
        tags: vec![],
    };
    c.log_batch("r1", batch).await.unwrap();
    let info = RunInfo {
        run_id: "r1".into(),
        experiment_id: "1".into(),
        run_name: String::new(),
        status: "RUNNING".into(),
        start_time: None,
        end_time: None,
        artifact_uri: "mlflow-artifacts:/1/r1/artifacts".into(),
        lifecycle_stage: "active".into(),
    };
    c.upload_artifact(&info, "perf_decision.json", b"{}".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn bearer_token_is_sent() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer tok-123"))
        .respond_with(ResponseTemplate::new(200).set_body_string(MODEL_JSON))
        .expect(1)
        .mount(&server)
        .await;
    let mut cfg = MlflowConfig::new(&server.uri()).unwrap();
    cfg.auth = Auth::Bearer(Secret::new("tok-123"));
    MlflowClient::new(&cfg)
        .unwrap()
        .get_registered_model("m")
        .await
        .unwrap();
}

#[tokio::test]
async fn update_run_checks_the_status_in_the_reply() {
    let server = MockServer::start().await;
    Mock::given(path("/api/2.0/mlflow/runs/update"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"run_info":{"run_id":"r1","experiment_id":"1","status":"RUNNING","artifact_uri":"x"}}"#,
        ))
        .mount(&server)
        .await;
    let e = client(&server, 0, Duration::from_secs(5))
        .update_run("r1", types::RunStatus::Finished, Some(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("status is RUNNING after asking for FINISHED"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_experiment_is_none_and_prefix_paths_are_kept() {
    let server = MockServer::start().await;
    Mock::given(path("/mlflow/api/2.0/mlflow/experiments/get-by-name"))
        .and(query_param("experiment_name", "vllm lora/perf"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Could not find experiment"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = MlflowConfig::new(&format!("{}/mlflow", server.uri())).unwrap();
    let c = MlflowClient::new(&cfg).unwrap();
    assert_eq!(
        c.get_experiment_by_name("vllm lora/perf").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn calls_that_create_are_not_retried_after_the_request_may_have_arrived() {
    let server = MockServer::start().await;
    // a proxy's 502/504 may come after MLflow created the run or experiment
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/create"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/experiments/create"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    // an idempotent call on the same server is retried
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/set-tag"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let c = client(&server, 3, Duration::from_secs(5));
    let e = c.create_run("1", "r", 1, &[]).await.unwrap_err();
    assert_eq!(e.status(), Some(502), "{e}");
    assert_eq!(hits(&server).await, 1, "runs/create sent twice");
    let e = c.create_experiment("x").await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(hits(&server).await, 2, "experiments/create sent twice");
    c.set_tag("r1", "k", "v").await.unwrap_err();
    assert_eq!(hits(&server).await, 6);
}

#[tokio::test]
async fn calls_that_create_are_retried_when_the_connection_was_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = MlflowConfig::new(&format!("http://127.0.0.1:{port}")).unwrap();
    c.retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(1),
    };
    let e = MlflowClient::new(&c)
        .unwrap()
        .create_run("1", "r", 1, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(e, MlflowError::Transport { attempts: 3, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_empty_body_is_an_answer_only_where_mlflow_sends_nothing_but_braces() {
    let server = MockServer::start().await;
    Mock::given(path("/api/2.0/mlflow/runs/search"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/api/2.0/mlflow/experiments/get-by-name"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(path("/api/2.0/mlflow/runs/log-batch"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/api/2.0/mlflow/runs/set-tag"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>login</html>"))
        .mount(&server)
        .await;
    let c = client(&server, 0, Duration::from_secs(5));
    let search = types::SearchRuns {
        experiment_ids: vec!["1".into()],
        filter: String::new(),
        order_by: vec![],
        max_results: 1,
        page_token: None,
    };
    let e = c.search_runs(&search).await.unwrap_err();
    assert!(
        matches!(e, MlflowError::Decode { status: 200, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("POST runs/search: malformed response (http 200): empty body"),
        "{e}"
    );
    let e = c.get_experiment_by_name("x").await.unwrap_err();
    assert!(
        matches!(e, MlflowError::Decode { status: 204, .. }),
        "{e:?}"
    );
    // log-batch's real reply is `{}`: an empty one carries the same nothing
    c.log_batch(
        "r1",
        Batch {
            params: vec![KeyValue::new("a", "1")],
            ..Batch::default()
        },
    )
    .await
    .unwrap();
    // but an HTML page is not an acknowledgement
    let e = c.set_tag("r1", "k", "v").await.unwrap_err();
    assert!(matches!(e, MlflowError::Decode { .. }), "{e:?}");
}

#[tokio::test]
async fn version_tags_are_deleted_with_a_json_body() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/api/2.0/mlflow/model-versions/delete-tag"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            serde_json::json!({"name": "m", "version": "3", "key": "perf_decision"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    client(&server, 0, Duration::from_secs(5))
        .delete_model_version_tag("m", "3", "perf_decision")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dataset_created_by_another_run_at_the_same_moment_is_logged_again() {
    // the body a real MLflow (SQLite store) answered when two runs logged one dataset at once
    let race = r#"{"error_code": "BAD_REQUEST", "message": "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest"}"#;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/log-inputs"))
        .respond_with(ResponseTemplate::new(400).set_body_string(race))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/log-inputs"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    // no retry budget at all: this is not the transport retry
    let c = client(&server, 0, Duration::from_secs(5));
    let input = super::types::DatasetInput {
        tags: vec![],
        dataset: super::types::Dataset {
            name: "eval-v1".into(),
            digest: "abc".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        },
    };
    c.log_inputs("r", std::slice::from_ref(&input))
        .await
        .unwrap();
    assert_eq!(hits(&server).await, 2);

    // any other 400 is not sent again
    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/api/2.0/mlflow/runs/log-inputs"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad dataset"}"#,
        ))
        .mount(&server)
        .await;
    let e = c.log_inputs("r", &[input]).await.unwrap_err();
    assert!(!e.is_unique_key_race(), "{e}");
    assert_eq!(hits(&server).await, 1);
}
