//! `--pushgateway-url` (seed 002) end to end: `load-test` against `vllm-sim` pushes its live
//! figures to a REAL Pushgateway (Debian's `prometheus-pushgateway`, started here), which a REAL
//! Prometheus scrapes (`honor_labels`); the final values are the results' client figures. A
//! gateway that refuses connections only warns; HTTP Basic auth (a wiremock gateway, which
//! can record the header) sends the credentials and never writes the password.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::prometheus::{PrometheusServer, config_yaml_honor_labels};
use test_support::pushgateway::PushgatewayServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(5),
        max_num_seqs: 64,
        ..Default::default()
    })
}

/// `load-test` against `sim` writing to `dir/out`, with `args`.
fn load_test_cmd(sim: &Sim, dir: &Path, args: &[&str]) -> std::process::Command {
    let eval = eval_file(dir, 10);
    let mut c = load_test();
    c.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(dir.join("out"))
        .args(["--progress-interval", "0", "--max-tokens", "4"])
        .args(args);
    c
}

/// The value of the sample `name{...}` of the group (job vllm_perf_gate, adapter candidate)
/// in an exposition text, if there is one.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(r#"job="vllm_perf_gate""#) && l.contains(r#"adapter="candidate""#))
        .map(|l| {
            let v = l.rsplit(' ').next().unwrap_or_default();
            v.parse::<f64>().unwrap_or_else(|e| panic!("{l:?}: {e}"))
        })
        .next()
}

fn same(got: Option<f64>, want: &Value, what: &str) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no value in the results"));
    let got = got.unwrap_or_else(|| panic!("{what}: not pushed"));
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what}: pushed {got}, results {want}"
    );
}

#[test]
fn live_and_final_figures_reach_the_pushgateway_and_prometheus() {
    let gateway = PushgatewayServer::start();
    let prom = PrometheusServer::try_start_in(
        tempfile::tempdir().unwrap(),
        &config_yaml_honor_labels("pushgateway", &[&gateway.target()], Duration::from_secs(1)),
    )
    .unwrap();
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let mut child = load_test_cmd(
        &sim,
        dir.path(),
        &[
            "--concurrency",
            "4",
            "--duration",
            "3s",
            "--push-interval",
            "1s",
            "--pushgateway-instance",
            "ci-run",
            "--pushgateway-url",
            &gateway.url(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // while the load runs, a live push shows up: figures with `llm_run_finished 0`
    let mut live = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let (_, text) = gateway.get("/metrics");
        if sample(&text, "llm_run_finished") == Some(0.0) {
            live = Some(text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let live = live.expect("a live push while the load ran");
    assert!(
        sample(&live, "llm_requests_total").is_some_and(|n| n > 0.0),
        "{live}"
    );
    assert!(
        live.contains(r#"instance="ci-run""#),
        "the grouping key's instance: {live}"
    );

    // the final push: the results' client figures, the run finished and completed
    let r = results(&dir.path().join("out"));
    assert_eq!(r["status"], "completed");
    assert!(
        !r["warnings"].to_string().contains("Pushgateway"),
        "{}",
        r["warnings"]
    );
    let c = &r["client"];
    let (_, text) = gateway.get("/metrics");
    for (name, want) in [
        ("llm_ttft_p50_seconds", &c["ttft_s"]["p50"]),
        ("llm_ttft_p90_seconds", &c["ttft_s"]["p90"]),
        ("llm_ttft_p99_seconds", &c["ttft_s"]["p99"]),
        ("llm_itl_p50_seconds", &c["itl_s"]["p50"]),
        ("llm_itl_p99_seconds", &c["itl_s"]["p99"]),
        ("llm_client_lag_p50_seconds", &c["e2e_s"]["p50"]),
        ("llm_client_lag_p99_seconds", &c["e2e_s"]["p99"]),
        ("llm_request_rate_per_second", &c["requests_per_s"]),
        ("llm_tokens_per_second", &c["output_tokens_per_s"]),
        ("llm_requests_total", &c["total_requests"]),
        ("llm_requests_failed_total", &c["failed_requests"]),
        ("llm_output_tokens_total", &c["output_tokens"]),
    ] {
        same(sample(&text, name), want, name);
    }
    assert_eq!(sample(&text, "llm_error_rate"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "llm_active_users"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "llm_run_finished"), Some(1.0), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("llm_run_status{")
            && l.contains(r#"status="completed""#)
            && l.ends_with(" 1")),
        "{text}"
    );

    // Prometheus scraped the group, with its own labels (honor_labels)
    let total = c["total_requests"].as_u64().unwrap();
    let q = r#"llm_requests_total{job="vllm_perf_gate",adapter="candidate",instance="ci-run"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = prom.instant_value(q);
        if v.as_deref() == Some(total.to_string().as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{q} = {v:?}, want {total}\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let finished = prom.wait_for_series(
        r#"llm_run_finished{job="vllm_perf_gate"} == 1"#,
        Duration::from_secs(30),
    );
    assert_eq!(finished, "1");
}

#[test]
fn a_gateway_that_refuses_connections_only_warns() {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let port = test_support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&mut load_test_cmd(
        &sim,
        dir.path(),
        &[
            "--num-requests",
            "20",
            "--concurrency",
            "2",
            "--pushgateway-url",
            &url,
            "--push-interval",
            "0.2",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = results(&dir.path().join("out"));
    assert_eq!(r["status"], "completed");
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|w| w.starts_with("Pushgateway: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r["warnings"]);
    assert!(
        warnings[0].contains("failed") && warnings[0].contains("no answer from the Pushgateway"),
        "{}",
        warnings[0]
    );
    // logged once, not once a push
    let log = stderr(&out);
    assert_eq!(
        log.matches("Pushgateway push").count() + log.matches("Pushgateway final push").count(),
        1,
        "{log}"
    );
}

#[test]
fn basic_auth_is_sent_and_the_password_never_written() {
    use base64::Engine as _;
    use wiremock::matchers::{any, header};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const PASSWORD: &str = "Pgw-Pass-7q";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gateway = rt.block_on(async {
        let server = MockServer::start().await;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("pusher:{PASSWORD}"))
        );
        Mock::given(header("authorization", basic.as_str()))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401).set_body_string("unauthorized"))
            .mount(&server)
            .await;
        server
    });
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let out = run(load_test_cmd(
        &sim,
        dir.path(),
        &[
            "--num-requests",
            "10",
            "--pushgateway-url",
            &gateway.uri(),
            "--pushgateway-username",
            "pusher",
            "--pushgateway-delete",
            "--pushgateway-job",
            "gate/ci",
        ],
    )
    .env("PUSHGATEWAY_PASSWORD", PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    let requests = rt.block_on(gateway.received_requests()).unwrap();
    let calls: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_string()))
        .collect();
    // the final push, then the delete; a job with `/` goes base64
    let group = "/metrics/job@base64/Z2F0ZS9jaQ==/instance/";
    assert!(calls.len() >= 2, "{calls:?}");
    let (last_put, delete) = (&calls[calls.len() - 2], &calls[calls.len() - 1]);
    assert_eq!(last_put.0, "PUT", "{calls:?}");
    assert_eq!(delete.0, "DELETE", "{calls:?}");
    for (_, p) in &calls {
        assert!(
            p.starts_with(group) && p.ends_with("/adapter/candidate"),
            "{p}"
        );
    }
    let body = String::from_utf8_lossy(&requests[requests.len() - 2].body).into_owned();
    assert!(body.contains("llm_run_finished 1\n"), "{body}");
    let r = results(&dir.path().join("out"));
    assert_eq!(r["status"], "completed");
    assert!(
        !r["warnings"].to_string().contains("Pushgateway"),
        "{}",
        r["warnings"]
    );
    // the password is nowhere: output files, stdout, stderr
    let mut texts = vec![
        stderr(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ];
    for e in std::fs::read_dir(dir.path().join("out")).unwrap() {
        texts.push(std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    for t in texts {
        assert!(!t.contains(PASSWORD), "the password leaked: {t}");
    }
}

#[test]
fn a_gateway_that_refuses_the_push_only_warns_with_its_answer() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gateway = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
            .mount(&server)
            .await;
        server
    });
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut load_test_cmd(
        &sim,
        dir.path(),
        &["--num-requests", "10", "--pushgateway-url", &gateway.uri()],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = results(&dir.path().join("out"));
    assert_eq!(r["status"], "completed");
    let w = r["warnings"].to_string();
    assert!(
        w.contains("Pushgateway: 1 of 1 requests to http://127.0.0.1:")
            && w.contains("the Pushgateway answered 401: Unauthorized"),
        "{w}"
    );
}
