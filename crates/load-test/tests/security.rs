//! Credentials and refused values (issue 9): a malformed URL is reported without its userinfo
//! or query, also when clap itself refuses the command line; a server that echoes the API key
//! (or the URL's password) cannot put it in `requests.jsonl`, the results, stdout or stderr,
//! even at `RUST_LOG=trace`; a request carries exactly one `Authorization` header; vLLM's
//! redirects are not followed and Prometheus's never carry credentials to another server; a
//! zero timeout is refused at parse time.
//!
//! The echoing, redirecting and header-recording servers are mocks (wiremock): a real vLLM or
//! Prometheus cannot be made to do that on demand. The simulator stands in for vLLM where a
//! real server's behaviour is the point (the 401 on two headers).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The API key the echoing server sends back.
const KEY: &str = "sk-SENTINEL-0123456789abcdef";
/// The password of a `user:password@` vLLM URL, and the base64 of `bob:<it>` (the Basic header).
const URL_PW: &str = "URL-PW-Sentinel-42";
const URL_BASIC: &str = "Ym9iOlVSTC1QVy1TZW50aW5lbC00Mg==";

const MODELS: &str = r#"{"object":"list","data":[{"id":"candidate","object":"model","root":"/m/lora","parent":"base"}]}"#;
const METRICS: &str = "# TYPE vllm:request_success_total counter\nvllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"base\"} 0.0\n";

/// `/health`, `/v1/models` (unless `models` is false) and `/metrics` answered as vLLM would.
async fn mount_vllm_basics(server: &MockServer, models: bool) {
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(METRICS, "text/plain"))
        .mount(server)
        .await;
    if models {
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(MODELS, "application/json"))
            .mount(server)
            .await;
    }
}

/// A runtime of its own for the mocks: the test thread blocks on the binary meanwhile.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Every `Authorization` header a request carried.
fn auth_headers(req: &Request) -> Vec<String> {
    req.headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect()
}

/// Answers with the request's credentials in the body, three ways in turn: a 401 quoting the
/// `Authorization` header, a 200 stream whose `error` event quotes it, and a 400 whose long
/// body puts the key where the record's 240-character detail is cut.
struct Echo(AtomicUsize);

impl Respond for Echo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = auth_headers(req).join(" | ");
        match self.0.fetch_add(1, Ordering::SeqCst) % 3 {
            0 => ResponseTemplate::new(401).set_body_string(format!(
                r#"{{"error":{{"message":"invalid credentials: {auth}"}}}}"#
            )),
            1 => ResponseTemplate::new(200).set_body_raw(
                format!(
                    "data: {{\"error\":{{\"message\":\"refused {auth}\",\"code\":401}}}}\n\ndata: [DONE]\n\n"
                ),
                "text/event-stream",
            ),
            _ => ResponseTemplate::new(400).set_body_string(format!(
                "{}{}",
                "y".repeat(222),
                auth.split_whitespace().last().unwrap_or("")
            )),
        }
    }
}

/// A mock vLLM: `/health` and `/v1/models` answer, completions (and `models_echo`: the models
/// list too) echo the credentials.
async fn echo_vllm(models_echo: bool) -> MockServer {
    let server = MockServer::start().await;
    mount_vllm_basics(&server, !models_echo).await;
    if models_echo {
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(Echo(AtomicUsize::new(0)))
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(Echo(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    server
}

/// `load-test` at `vllm_url` with 6 requests, logging at trace; returns its output and dir.
fn run_load(
    vllm_url: &str,
    envs: &[(&str, &str)],
    extra: &[&str],
) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 6);
    let out = dir.path().join("out");
    let o = run(load_test()
        .env("RUST_LOG", "trace")
        .envs(envs.iter().copied())
        .args(["--vllm-url", vllm_url, "--adapter-name", "candidate"])
        .args(["--concurrency", "2", "--progress-interval", "0"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(extra));
    (o, out, dir)
}

/// No `needle` (nor its first 7 characters) in stdout, stderr or any file of `out`.
fn assert_nowhere(needle: &str, o: &Output, out: &Path) {
    let head = &needle[..7];
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        ),
        ("stderr".to_string(), stderr(o)),
    ];
    if let Ok(entries) = std::fs::read_dir(out) {
        for e in entries {
            let p = e.unwrap().path();
            texts.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    for (what, text) in texts {
        assert!(!text.contains(head), "{what} leaks {head}: {text}");
    }
}

fn request_errors(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["error"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn an_echoed_api_key_reaches_no_file_and_no_log() {
    let rt = runtime();
    let server = rt.block_on(echo_vllm(false));
    let (o, out, _dir) = run_load(&server.uri(), &[("VLLM_API_KEY", KEY)], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["client"]["failed_requests"], 6, "{r}");
    let errors = &r["client"]["errors_by_kind"];
    assert_eq!(
        (
            errors["http_401"].as_u64(),
            errors["stream_error"].as_u64(),
            errors["http_400"].as_u64()
        ),
        (Some(2), Some(2), Some(2)),
        "{errors}"
    );
    // the server did echo it: each record says where it was taken out
    let details = request_errors(&out);
    assert_eq!(details.len(), 6);
    for d in &details {
        assert!(d.contains("<redacted>"), "{d}");
    }
    assert!(stderr(&o).contains("TRACE"), "logged at trace");
    assert_nowhere(KEY, &o, &out);
}

#[test]
fn a_key_echoed_before_the_load_is_scrubbed_from_the_error_line() {
    let rt = runtime();
    let server = rt.block_on(echo_vllm(true));
    let (o, out, _dir) = run_load(
        &server.uri(),
        &[("VLLM_API_KEY", KEY)],
        &["--log-format", "json"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r = results(&out);
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("GET /v1/models failed: HTTP 401") && error.contains("Bearer <redacted>"),
        "{error}"
    );
    assert!(stderr(&o).contains("Bearer <redacted>"), "{}", stderr(&o));
    // JSON logs stay JSON after scrubbing
    for line in stderr(&o).lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert_nowhere(KEY, &o, &out);
}

#[test]
fn an_echoed_url_password_is_scrubbed_in_both_forms() {
    let rt = runtime();
    let server = rt.block_on(echo_vllm(false));
    let url = server
        .uri()
        .replace("http://", &format!("http://bob:{URL_PW}@"));
    let (o, out, _dir) = run_load(&url, &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // the URL's userinfo went as one Basic header
    let received = rt.block_on(server.received_requests()).unwrap();
    let completions: Vec<_> = received
        .iter()
        .filter(|r| r.url.path() == "/v1/completions")
        .collect();
    assert_eq!(completions.len(), 6);
    for req in completions {
        assert_eq!(auth_headers(req), vec![format!("Basic {URL_BASIC}")]);
    }
    for d in request_errors(&out) {
        assert!(d.contains("<redacted>"), "{d}");
    }
    assert_nowhere(URL_PW, &o, &out);
    assert_nowhere(URL_BASIC, &o, &out);
}

#[test]
fn an_api_key_and_url_credentials_make_one_bearer_header() {
    let rt = runtime();
    let server = rt.block_on(echo_vllm(false));
    let url = server
        .uri()
        .replace("http://", &format!("http://bob:{URL_PW}@"));
    let (o, out, _dir) = run_load(&url, &[("VLLM_API_KEY", KEY)], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let received = rt.block_on(server.received_requests()).unwrap();
    assert!(received.len() >= 8, "{}", received.len());
    for req in &received {
        assert_eq!(
            auth_headers(req),
            vec![format!("Bearer {KEY}")],
            "{} {}",
            req.method,
            req.url.path()
        );
    }
    assert!(
        stderr(&o).contains("only the API key is sent"),
        "the dropped credentials are said: {}",
        stderr(&o)
    );
    assert_nowhere(URL_PW, &o, &out);

    // and a server that checks the key (as vLLM --api-key) takes it
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(1),
        itl: Duration::from_millis(1),
        api_key: Some(KEY.into()),
        ..Default::default()
    });
    let url = sim.url.replace("http://", &format!("http://bob:{URL_PW}@"));
    let (o, out, _dir) = run_load(
        &url,
        &[("VLLM_API_KEY", KEY), ("RUST_LOG", "info")],
        &["--max-tokens", "4"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        results(&out)["client"]["successful_requests"],
        6,
        "{}",
        stderr(&o)
    );
}

/// A server that redirects every request to `to` (same path), with a 307.
async fn redirecting_to(to: &str, only: Option<&str>) -> MockServer {
    struct Redirect(String);
    impl Respond for Redirect {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}{}", self.0, req.url.path()))
        }
    }
    let server = MockServer::start().await;
    match only {
        Some(p) => {
            mount_vllm_basics(&server, true).await;
            Mock::given(path(p))
                .respond_with(Redirect(to.to_string()))
                .mount(&server)
                .await;
        }
        None => {
            Mock::given(wiremock::matchers::any())
                .respond_with(Redirect(to.to_string()))
                .mount(&server)
                .await;
        }
    }
    server
}

#[test]
fn vllm_redirects_are_not_followed() {
    let rt = runtime();
    let other = rt.block_on(MockServer::start());
    // everything redirected: the health check fails on the 307 itself
    let first = rt.block_on(redirecting_to(&other.uri(), None));
    let (o, out, _dir) = run_load(
        &first.uri(),
        &[("VLLM_API_KEY", KEY), ("RUST_LOG", "info")],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let error = results(&out)["error"].as_str().unwrap().to_string();
    assert!(error.contains("GET /health returned HTTP 307"), "{error}");
    // the load's requests redirected: each a failed request with its status
    let load = rt.block_on(redirecting_to(&other.uri(), Some("/v1/completions")));
    let (o, out, _dir) = run_load(
        &load.uri(),
        &[("VLLM_API_KEY", KEY), ("RUST_LOG", "info")],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(results(&out)["client"]["errors_by_kind"]["http_307"], 6);
    let reached = rt.block_on(other.received_requests()).unwrap();
    assert!(
        reached.is_empty(),
        "the other server was reached: {:?}",
        reached
            .iter()
            .map(|r| r.url.path().to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_prometheus_redirect_to_another_server_carries_no_credentials() {
    let rt = runtime();
    let other = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(503))
            .mount(&other),
    );
    let prom = rt.block_on(redirecting_to(&other.uri(), None));
    let sim = Sim::start(vllm_sim::SimConfig::default());
    let prom_url = prom
        .uri()
        .replace("http://", "http://prom:PROM-PW-Sentinel@");
    let (o, out, _dir) = run_load(&sim.url, &[], &["--prometheus-url", &prom_url]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let first = rt.block_on(prom.received_requests()).unwrap();
    assert!(!first.is_empty());
    for req in &first {
        assert_eq!(
            auth_headers(req).len(),
            1,
            "the URL's credentials went to Prometheus itself"
        );
    }
    let reached = rt.block_on(other.received_requests()).unwrap();
    assert!(!reached.is_empty(), "reqwest follows a Prometheus redirect");
    for req in &reached {
        assert!(
            auth_headers(req).is_empty(),
            "credentials sent to another server: {:?}",
            auth_headers(req)
        );
    }
    assert_nowhere("PROM-PW-Sentinel", &o, &out);
}

/// A malformed URL given to `flag` (or its env var) is refused with exit 2, naming the flag,
/// without its userinfo or query, on stderr, stdout or in any file.
#[test]
fn a_malformed_url_is_refused_without_its_credentials() {
    let cases = [
        "http://user:PW-Secret@127.0.0.1:notaport",
        "http://user:PW-Secret@[::1",
        "user:PW-Secret@127.0.0.1:8000",
        "ftp://user:PW-Secret@127.0.0.1/",
        "http://127.0.0.1:8000/?token=PW-Secret",
        "http://127.0.0.1:8000/#PW-Secret",
    ];
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 1);
    let out = dir.path().join("out");
    for bad in cases {
        for (flag, env) in [
            ("--vllm-url", "VLLM_URL"),
            ("--prometheus-url", "PROMETHEUS_URL"),
        ] {
            for by_env in [false, true] {
                let mut cmd = load_test();
                cmd.args(["--adapter-name", "a", "--output-dir"])
                    .arg(&out)
                    .arg("--eval-data-path")
                    .arg(&eval);
                if flag != "--vllm-url" {
                    cmd.args(["--vllm-url", "http://127.0.0.1:1"]);
                }
                if by_env {
                    cmd.env(env, bad);
                } else {
                    cmd.args([flag, bad]);
                }
                let o = run(&mut cmd);
                let err = stderr(&o);
                assert_eq!(o.status.code(), Some(2), "{flag} {bad}: {err}");
                assert!(
                    err.starts_with(&format!("load-test: invalid {flag} ")),
                    "{flag} {bad}: {err}"
                );
                assert_eq!(err.lines().count(), 1, "{err}");
                assert_nowhere("PW-Secret", &o, &out);
            }
        }
    }
}

#[test]
fn a_command_line_clap_refuses_echoes_no_credential() {
    let cases: [&[&str]; 3] = [
        // a stray value: clap echoes it as an unexpected argument
        &["--vllm-url", "http://h:1", "http://user:PW-Secret@h:2"],
        // a URL where a duration goes: clap echoes the invalid value
        &[
            "--vllm-url",
            "http://h:1",
            "--request-timeout",
            "http://user:PW-Secret@h:2/?token=PW-Secret",
        ],
        // an API key clap cannot take as a value: the key itself is known to the scrubber
        &[
            "--vllm-url",
            "http://h:1",
            "--api-key",
            "sk-PW-Secret",
            "sk-PW-Secret",
        ],
    ];
    let dir = tempfile::tempdir().unwrap();
    for args in cases {
        let o = run(load_test()
            .args([
                "--adapter-name",
                "a",
                "--eval-data-path",
                "e.jsonl",
                "--output-dir",
            ])
            .arg(dir.path())
            .args(args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert_nowhere("PW-Secret", &o, dir.path());
    }
}

#[test]
fn zero_timeouts_are_refused_at_parse_time() {
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 1);
    for (flag, env) in [
        ("--request-timeout", "REQUEST_TIMEOUT"),
        ("--prometheus-timeout", "PROMETHEUS_TIMEOUT"),
        ("--scrape-interval", "SCRAPE_INTERVAL"),
        ("--scrape-wait", "SCRAPE_WAIT"),
    ] {
        for value in ["0", "0s", "-1"] {
            for by_env in [false, true] {
                let mut cmd = load_test();
                cmd.args(["--vllm-url", "http://127.0.0.1:1", "--adapter-name", "a"])
                    .arg("--eval-data-path")
                    .arg(&eval)
                    .arg("--output-dir")
                    .arg(dir.path().join("out"));
                if by_env {
                    cmd.env(env, value);
                } else {
                    cmd.arg(format!("{flag}={value}"));
                }
                let o = run(&mut cmd);
                let err = stderr(&o);
                assert_eq!(o.status.code(), Some(2), "{flag}={value}: {err}");
                let first = err.lines().next().unwrap_or_default();
                assert!(
                    first.starts_with(&format!("error: invalid value '{value}' for '{flag} ")),
                    "{flag}={value}: {err}"
                );
                assert!(
                    !dir.path().join("out").exists(),
                    "nothing written for a refused command line"
                );
            }
        }
    }
}

#[test]
fn help_shows_no_credential_of_an_env_url_or_key() {
    let o = run(load_test()
        .env("VLLM_URL", "http://user:PW-Secret@h:1/?token=PW-Secret")
        .env("PROMETHEUS_URL", "http://prom:PW-Secret@[::1]:9090")
        .env("VLLM_API_KEY", "sk-PW-Secret")
        .arg("--help"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        help.contains("[env: VLLM_URL=http://h:1/?<redacted>]")
            && help.contains("[env: PROMETHEUS_URL=http://[::1]:9090]"),
        "{help}"
    );
    let dir = tempfile::tempdir().unwrap();
    assert_nowhere("PW-Secret", &o, dir.path());
}

/// `/v1/models` answering 200 with the request's `Authorization` header as the adapter's
/// `root` (a field the results copy): any field of the document, not only the error line.
struct EchoModels;

impl Respond for EchoModels {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = auth_headers(req).join(" | ");
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "object": "list",
            "data": [{"id": "candidate", "object": "model", "root": format!("/m/{auth}"), "parent": "base"}],
        }))
    }
}

#[test]
fn a_key_echoed_in_any_field_of_the_results_is_scrubbed() {
    let rt = runtime();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        mount_vllm_basics(&server, false).await;
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(EchoModels)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .respond_with(Echo(AtomicUsize::new(0)))
            .mount(&server)
            .await;
        server
    });
    let (o, out, _dir) = run_load(
        &server.uri(),
        &[("VLLM_API_KEY", KEY), ("RUST_LOG", "info")],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    let text = r.to_string();
    assert!(
        text.contains("/m/Bearer <redacted>"),
        "the root was echoed: {text}"
    );
    assert_nowhere(KEY, &o, &out);
}
