//! The fault proxy between perf-gate's MLflow client and a REAL `mlflow server`: a claim of
//! `perf-passed` (`POST registered-models/alias`) that arrives late still sets the alias, and
//! one held past the client's timeout fails at the client yet lands afterwards, which is the
//! case the alias-claim protocol has to survive.

use std::time::{Duration, Instant};

use perf_gate::mlflow::{MlflowClient, MlflowConfig, MlflowError, RetryPolicy};
use test_support::fault_proxy::{Action, FaultProxy, Outcome, Rule};
use test_support::mlflow::MlflowServer;

const MODEL: &str = "m";
const ALIAS: &str = "perf-passed";

fn client(url: &str, timeout: Duration) -> MlflowClient {
    let mut cfg = MlflowConfig::new(url).unwrap();
    cfg.request_timeout = timeout;
    // one attempt: what the proxy did to it is what the client saw
    cfg.retry = RetryPolicy::NONE;
    MlflowClient::new(&cfg).unwrap()
}

fn claim(action: Action) -> Rule {
    Rule::new(action)
        .method("POST")
        .path("/api/2.0/mlflow/registered-models/alias")
        .body_contains(&format!(r#""alias":"{ALIAS}""#))
        .first(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_alias_claim_still_sets_the_alias_and_a_held_one_lands_after_the_timeout() {
    let mlflow = tokio::task::spawn_blocking(MlflowServer::start)
        .await
        .unwrap();
    let direct = client(mlflow.url(), Duration::from_secs(30));
    direct.create_registered_model(MODEL).await.unwrap();
    for v in 1..=2 {
        direct
            .create_model_version(MODEL, &format!("s3://bucket/adapters/v{v}"), None)
            .await
            .unwrap();
    }
    let alias_now = async || {
        direct
            .get_model_version_by_alias(MODEL, ALIAS)
            .await
            .map(|v| v.version)
    };

    // late: the claim reaches MLflow 2 s after it was sent, and is answered
    let late = Duration::from_secs(2);
    let proxy = FaultProxy::start(mlflow.url(), vec![claim(Action::delay_request(late))]);
    let via = client(proxy.url(), Duration::from_secs(30));
    let sent = Instant::now();
    via.set_alias(MODEL, ALIAS, "1").await.unwrap();
    assert!(sent.elapsed() >= late);
    assert_eq!(alias_now().await.unwrap(), "1", "{}", mlflow.log_tail());
    let e = &proxy.requests()[0];
    assert_eq!(e.rule, Some(0));
    assert!(e.forwarded.unwrap() - e.received >= late);
    assert_eq!(
        (e.upstream_status, &e.outcome),
        (Some(200), &Outcome::Answered { status: 200 })
    );
    assert!(e.body.contains(r#""version":"1""#), "{}", e.body);

    // held past the client's 1 s timeout: the client fails, the alias has not moved yet,
    // then the claim lands and moves it
    let hold = Duration::from_secs(3);
    proxy.set_rules(vec![claim(Action::HoldThenForward { hold })]);
    let impatient = client(proxy.url(), Duration::from_secs(1));
    let err = impatient
        .set_alias(MODEL, ALIAS, "2")
        .await
        .expect_err("times out");
    assert!(matches!(err, MlflowError::Timeout { .. }), "{err:?}");
    let gave_up = Instant::now();
    assert_eq!(alias_now().await.unwrap(), "1", "the claim is still held");
    let log = proxy
        .wait_for_async(Duration::from_secs(30), "the held claim lands", |log| {
            log.get(1).is_some_and(|e| e.outcome != Outcome::InFlight)
        })
        .await;
    let held = &log[1];
    assert!(held.forwarded.unwrap() > gave_up, "{held:#?}");
    assert_eq!(held.upstream_status, Some(200), "{held:#?}");
    assert_eq!(held.outcome, Outcome::ClientGone);
    assert_eq!(alias_now().await.unwrap(), "2", "{}", mlflow.log_tail());
}
