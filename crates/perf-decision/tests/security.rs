//! Credentials and refused values of `perf-decision` (issue 9): a malformed tracking URI is
//! reported under its flag's name without its userinfo or query; a token or password that an
//! MLflow (or a proxy before it) echoes in an error body reaches no log line, even at
//! `RUST_LOG=trace`; a redirect to another server carries no credentials; a zero duration is
//! refused at parse time. The echoing and redirecting servers are mocks (wiremock): a real
//! MLflow does neither on demand.

use std::path::Path;
use std::process::Output;

use perf_gate::fixtures::{GOOD, results_with as results};
use test_support::steps::{
    assert_no_decision, decision_status, perf_decision as cmd, write_results,
};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "tok-SENTINEL-mlflow-0123456789";
const PASSWORD: &str = "pw-SENTINEL-mlflow-42";
/// base64 of `admin:<PASSWORD>`.
const BASIC: &str = "YWRtaW46cHctU0VOVElORUwtbWxmbG93LTQy";

/// Runs the binary (off the async runtime, so the mocks keep serving).
async fn run(mut c: assert_cmd::Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// `perf-decision` judging a good results file in `dir`, decision in `dir/out`.
fn decide(dir: &Path) -> assert_cmd::Command {
    let results = write_results(dir, "r.json", &results(GOOD, "a"));
    let mut c = cmd();
    c.arg(format!("--load-test-results={}", results.display()))
        .args(["--model-name=m", "--candidate-version=1"])
        .arg(format!("--output-dir={}", dir.join("out").display()));
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every `Authorization` header a request carried.
fn auth_headers(req: &Request) -> Vec<String> {
    req.headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn a_malformed_tracking_uri_is_refused_under_its_flag_without_credentials() {
    let cases = [
        "http://user:PW-Secret@127.0.0.1:notaport",
        "http://user:PW-Secret@[::1",
        "user:PW-Secret@127.0.0.1:5000",
        "ftp://user:PW-Secret@127.0.0.1/",
        "http://127.0.0.1:5000/?token=PW-Secret",
        "http://user:PW-Secret@127.0.0.1:5000",
    ];
    let dir = tempfile::tempdir().unwrap();
    for bad in cases {
        for by_env in [false, true] {
            for resolve in [false, true] {
                let mut c = decide(dir.path());
                if by_env {
                    c.env("MLFLOW_TRACKING_URI", bad);
                } else {
                    c.arg(format!("--tracking-uri={bad}"));
                }
                if resolve {
                    c.arg("--resolve-candidate");
                }
                let o = c.output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr).to_string();
                assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
                assert_eq!(err.lines().count(), 1, "{err}");
                assert!(
                    err.starts_with("perf-decision: error: invalid --tracking-uri "),
                    "{bad}: {err}"
                );
                // the last case is well formed: refused for its credentials
                if bad == "http://user:PW-Secret@127.0.0.1:5000" {
                    assert!(
                        err.contains("\"http://127.0.0.1:5000\": credentials do not go in the URL"),
                        "{err}"
                    );
                }
                assert!(!text(&o).contains("PW-Secret"), "{bad}: {}", text(&o));
            }
        }
    }
}

/// Answers 401 quoting the request's `Authorization` header: as MLflow's JSON error
/// (`json`), or as a proxy's plain text.
struct Echo {
    json: bool,
}

impl Respond for Echo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = auth_headers(req).join(" | ");
        if self.json {
            ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error_code": "UNAUTHENTICATED",
                "message": format!("credentials {auth} are not valid"),
            }))
        } else {
            ResponseTemplate::new(401).set_body_string(format!("<html>denied: {auth}</html>"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_reach_no_log() {
    for json in [true, false] {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Echo { json })
            .mount(&server)
            .await;
        let cases: [(&[(&str, &str)], &str); 2] = [
            (&[("MLFLOW_TRACKING_TOKEN", TOKEN)], "Bearer <redacted>"),
            (
                &[
                    ("MLFLOW_TRACKING_USERNAME", "admin"),
                    ("MLFLOW_TRACKING_PASSWORD", PASSWORD),
                ],
                "Basic <redacted>",
            ),
        ];
        for (envs, shown) in cases {
            let dir = tempfile::tempdir().unwrap();
            for format in ["text", "json"] {
                let mut c = decide(dir.path());
                c.env("MLFLOW_TRACKING_URI", server.uri())
                    .env("RUST_LOG", "trace")
                    .envs(envs.iter().copied())
                    .args(["--log-format", format]);
                let o = run(c).await;
                let all = text(&o);
                assert_eq!(o.status.code(), Some(3), "{all}");
                assert!(all.contains(shown), "json={json} {format}: {all}");
                for secret in [TOKEN, PASSWORD, BASIC] {
                    assert!(!all.contains(&secret[..10]), "{secret} leaked: {all}");
                }
                assert_eq!(decision_status(&dir.path().join("out")), "error");
                assert_no_decision(&dir.path().join("out"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_server_carries_no_credentials() {
    struct Redirect(String);
    impl Respond for Redirect {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let query = req.url.query().map(|q| format!("?{q}")).unwrap_or_default();
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}{}{query}", self.0, req.url.path()))
        }
    }
    let other = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&other)
        .await;
    let first = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Redirect(other.uri()))
        .mount(&first)
        .await;
    for envs in [
        vec![("MLFLOW_TRACKING_TOKEN", TOKEN)],
        vec![
            ("MLFLOW_TRACKING_USERNAME", "admin"),
            ("MLFLOW_TRACKING_PASSWORD", PASSWORD),
        ],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = decide(dir.path());
        c.env("MLFLOW_TRACKING_URI", first.uri())
            .envs(envs)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0");
        let o = run(c).await;
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    }
    let sent = first.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter().all(|r| auth_headers(r).len() == 1),
        "MLflow itself gets them"
    );
    let reached = other.received_requests().await.unwrap();
    assert_eq!(reached.len(), 2, "reqwest follows MLflow's redirects");
    for r in &reached {
        assert!(
            auth_headers(r).is_empty(),
            "credentials went to another server: {:?}",
            auth_headers(r)
        );
    }
}

#[test]
fn zero_durations_are_refused_at_parse_time() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, env) in [
        ("--mlflow-timeout", "MLFLOW_HTTP_REQUEST_TIMEOUT"),
        ("--lock-timeout", "PERF_LOCK_TIMEOUT"),
        ("--max-p95-latency", "MAX_P95_LATENCY"),
        ("--max-p95-ttft", "MAX_P95_TTFT"),
    ] {
        for value in ["0", "0s", "0.0"] {
            for by_env in [false, true] {
                let mut c = decide(dir.path());
                c.arg("--no-mlflow");
                if by_env {
                    c.env(env, value);
                } else {
                    c.arg(format!("{flag}={value}"));
                }
                let o = c.output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr).to_string();
                assert_eq!(o.status.code(), Some(2), "{flag}={value}: {err}");
                assert!(
                    err.starts_with(&format!("error: invalid value '{value}' for '{flag} ")),
                    "{flag}={value}: {err}"
                );
                assert_eq!(decision_status(&dir.path().join("out")), "error");
            }
        }
    }
}

#[test]
fn a_command_line_clap_refuses_echoes_no_credential() {
    let cases: [&[&str]; 4] = [
        // a stray value: clap echoes it as an unexpected argument
        &["--no-mlflow", "http://user:PW-Secret@h:2"],
        // a URL where a duration goes: clap echoes the invalid value
        &[
            "--no-mlflow",
            "--max-p95-latency",
            "http://user:PW-Secret@h:2/?token=PW-Secret",
        ],
        // a token or password clap cannot take: the values themselves are known secrets
        &["--tracking-token", "tok-PW-Secret", "tok-PW-Secret"],
        &["--tracking-password=pw-PW-Secret", "pw-PW-Secret"],
    ];
    for args in cases {
        let dir = tempfile::tempdir().unwrap();
        let o = decide(dir.path()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!text(&o).contains("PW-Secret"), "{args:?}: {}", text(&o));
        assert_eq!(decision_status(&dir.path().join("out")), "error");
    }
}

#[test]
fn help_shows_no_credential_of_the_tracking_uri() {
    let o = cmd()
        .env(
            "MLFLOW_TRACKING_URI",
            "https://user:PW-Secret@mlflow:5000/?token=PW-Secret",
        )
        .env("MLFLOW_TRACKING_TOKEN", "tok-PW-Secret")
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        help.contains("[env: MLFLOW_TRACKING_URI=https://mlflow:5000/?<redacted>]"),
        "{help}"
    );
    assert!(!text(&o).contains("PW-Secret"), "{}", text(&o));
}
