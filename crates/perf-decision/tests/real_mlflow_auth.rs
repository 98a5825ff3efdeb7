//! Basic auth against a REAL `mlflow server --app-name basic-auth`, started once for the file:
//! the right credentials record a decision; wrong or missing ones (and a bearer token, which
//! this app does not take) fail at once with the 401 in one clear line, with no retry and no
//! decision on disk.

use std::time::{Duration, Instant};

use perf_gate::fixtures::{GOOD, results_with as results};
use perf_gate::mlflow::{Auth, MlflowClient, MlflowConfig, Secret};
use test_support::mlflow::MlflowServer;
use test_support::steps::{
    assert_no_decision, decision, decision_status as status, perf_decision as cmd, write_results,
};

/// With the default retry policy a retried 401 would wait 0.5 + 1 + 2 + 4 s; failing well
/// under that shows there was no retry.
const NO_RETRY_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_right_and_wrong_credentials() {
    let server = tokio::task::spawn_blocking(MlflowServer::start_basic_auth)
        .await
        .unwrap();
    let url = server.url().to_string();
    let (user, password) = server.admin().unwrap();
    let mut cfg = MlflowConfig::new(&url).unwrap();
    cfg.auth = Auth::Basic {
        username: user.into(),
        password: Secret::new(password),
    };
    let admin = MlflowClient::new(&cfg).unwrap();
    admin.create_registered_model("m").await.unwrap();
    admin
        .create_model_version("m", "s3://bucket/adapters/v1", None)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let results = write_results(dir.path(), "r.json", &results(GOOD, "a"));
    let run = |envs: Vec<(&'static str, String)>, out: std::path::PathBuf| {
        let mut c = cmd();
        c.env("MLFLOW_TRACKING_URI", &url)
            .envs(envs)
            .arg(format!("--load-test-results={}", results.display()))
            .args(["--model-name=m", "--candidate-version=1"])
            .arg(format!("--output-dir={}", out.display()));
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

    // right credentials: the decision is recorded
    let (code, stderr, _, out) = run(
        vec![
            ("MLFLOW_TRACKING_USERNAME", user.to_string()),
            ("MLFLOW_TRACKING_PASSWORD", password.to_string()),
        ],
        dir.path().join("ok"),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("auth=\"basic\""), "{stderr}");
    assert!(!stderr.contains(password), "password leaked in logs");
    assert_eq!(status(&out), "passed");
    let model = admin.get_registered_model("m").await.unwrap();
    assert_eq!(model.alias("perf-passed"), Some("1"));
    let run_id = decision(&out)["mlflow"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let recorded = admin.get_run(&run_id).await.unwrap();
    assert_eq!(recorded.info.status, "FINISHED");
    let files = admin.list_artifacts(&run_id, None).await.unwrap().files;
    assert_eq!(
        files.len(),
        4,
        "the results, the decision and its two reports: {files:?}"
    );

    // wrong password, no credentials, a bearer token: 401, at once, no decision
    let cases = vec![
        (
            "wrong password",
            vec![
                ("MLFLOW_TRACKING_USERNAME", user.to_string()),
                ("MLFLOW_TRACKING_PASSWORD", "Wrong-password-123".to_string()),
            ],
        ),
        ("no credentials", vec![]),
        (
            "bearer token",
            vec![("MLFLOW_TRACKING_TOKEN", "tok-Secret-123".to_string())],
        ),
    ];
    for (i, (what, envs)) in cases.into_iter().enumerate() {
        let (code, stderr, took, out) = run(envs, dir.path().join(format!("bad{i}"))).await;
        assert_eq!(code, Some(3), "{what}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("perf-decision: error:"))
            .unwrap_or_else(|| panic!("{what}: no error line in {stderr}"));
        assert!(
            line.contains("cannot read registered model `m`: GET registered-models/get: http 401 (check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN): You are not authenticated."),
            "{what}: {line}"
        );
        assert!(
            !stderr.contains("retrying"),
            "{what}: a 401 was retried: {stderr}"
        );
        assert!(took < NO_RETRY_BOUND, "{what}: took {took:?}");
        assert!(!stderr.contains("Wrong-password-123") && !stderr.contains("tok-Secret-123"));
        assert_no_decision(&out);
    }
    drop(server);
}
