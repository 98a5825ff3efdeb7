//! `perf-decision` against a REAL MLflow over TLS: the server behind a TLS front whose
//! certificate a CA made here signed (as an ingress would serve it). Without the CA the step
//! fails at once (no retry: every attempt meets the same certificate) with one line naming
//! MLflow and the certificate problem, and leaves no decision; with `--mlflow-ca-cert` or
//! MLflow's own `MLFLOW_TRACKING_SERVER_CERT_PATH` the decision is recorded; with
//! `--insecure-tls` too, and a warning says the certificate was not checked.

use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use perf_gate::mlflow::{MlflowClient, MlflowConfig};
use test_support::mlflow::MlflowServer;
use test_support::steps::{
    assert_no_decision, decision_status, perf_decision as cmd, write_results,
};
use test_support::tls::{TestCa, TlsFront};

/// Under the first retry's wait plus the default ones (0.5 + 1 + 2 + 4 s): no retry was made.
const NO_RETRY_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_over_tls_needs_its_ca_or_the_insecure_flag() {
    let server = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let admin = MlflowClient::new(&MlflowConfig::new(server.url()).unwrap()).unwrap();
    admin.create_registered_model("m").await.unwrap();
    for _ in 0..3 {
        admin
            .create_model_version("m", "s3://bucket/adapters/v", None)
            .await
            .unwrap();
    }
    let ca = TestCa::new();
    let front = TlsFront::start(server.url(), &ca);
    let dir = tempfile::tempdir().unwrap();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let run = |version: u32, envs: Vec<(&'static str, String)>, args: Vec<String>| {
        let out = dir
            .path()
            .join(format!("out-{version}-{}", envs.len() + args.len()));
        let mut c = cmd();
        c.env("MLFLOW_TRACKING_URI", front.url())
            .envs(envs)
            .arg(format!("--load-test-results={}", results.display()))
            .args([
                "--model-name=m".to_string(),
                format!("--candidate-version={version}"),
            ])
            .arg(format!("--output-dir={}", out.display()))
            .args(args);
        async move {
            let started = Instant::now();
            let o = tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr).to_string();
            println!(
                "--- exit {:?} in {:?}\n{stderr}",
                o.status.code(),
                started.elapsed()
            );
            (o.status.code(), stderr, started.elapsed(), out)
        }
    };
    let ca_path = ca.ca_path().display().to_string();

    // the system's roots only
    let (code, stderr, took, out) = run(1, vec![], vec![]).await;
    assert_eq!(code, Some(3), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("perf-decision: error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(&format!(
            "cannot reach mlflow at {} after 1 attempt(s)",
            front.url()
        )) && line.contains("invalid peer certificate: UnknownIssuer")
            && line.ends_with(
                "(the MLflow server's TLS certificate is not trusted: give --mlflow-ca-cert with its CA (PEM), or --insecure-tls on a test setup)"
            ),
        "{line}"
    );
    assert!(
        took < NO_RETRY_BOUND,
        "took {took:?}: a refused certificate was retried"
    );
    assert_no_decision(&out);

    // the CA, by flag and by MLflow's own variable
    let (code, stderr, _, out) = run(1, vec![], vec![format!("--mlflow-ca-cert={ca_path}")]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(decision_status(&out), "passed");
    let (code, stderr, _, out) = run(
        2,
        vec![("MLFLOW_TRACKING_SERVER_CERT_PATH", ca_path.clone())],
        vec![],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(decision_status(&out), "passed");
    assert!(!stderr.contains("not checked"), "{stderr}");

    // insecure: recorded, with a warning
    let (code, stderr, _, out) = run(
        3,
        vec![("MLFLOW_TRACKING_INSECURE_TLS", "true".into())],
        vec![],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(decision_status(&out), "passed");
    assert!(
        stderr.contains("MLflow: TLS certificates are not checked (--insecure-tls)"),
        "{stderr}"
    );
    let model = admin.get_registered_model("m").await.unwrap();
    assert_eq!(model.alias("perf-passed"), Some("3"));

    // a CA file that is not one: bad input
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(
        &bogus,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (code, stderr, _, _) = run(
        3,
        vec![],
        vec![format!("--mlflow-ca-cert={}", bogus.display())],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("perf-decision: error: --mlflow-ca-cert "),
        "{stderr}"
    );
    println!(
        "TLS handshakes: {}, refused: {}",
        front.handshakes(),
        front.refused()
    );
}
