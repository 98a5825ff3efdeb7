//! The `prom` module's use of [`crate::retry`]: every call here (queries, `/-/ready`, vLLM
//! `/metrics`) is a read, so idempotent; the policy defaults to [`RetryPolicy::QUERIES`].

use crate::retry::{self, AttemptOutcome, Failed, RetryPolicy};

use super::error::PromError;

/// A failed attempt of a `prom` call.
pub(crate) type Attempt = Failed<Box<PromError>>;

/// How a failed transport (no HTTP answer) counts: a reqwest error is classified, anything
/// else (a wrapped crate error) counts as a broken connection, which a read may retry. A TLS
/// certificate the client refuses stays fatal: every attempt meets the same certificate.
pub(crate) fn transport_outcome(e: &(dyn std::error::Error + 'static)) -> AttemptOutcome {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            return match retry::classify(r) {
                AttemptOutcome::Fatal if !crate::transport::is_certificate_error(r) => {
                    AttemptOutcome::Io
                }
                other => other,
            };
        }
        cur = err.source();
    }
    AttemptOutcome::Io
}

/// Runs `op` with [`retry::run`]; the error returned carries the number of attempts made.
pub(crate) async fn run<T, F, Fut>(policy: &RetryPolicy, what: &str, op: F) -> Result<T, PromError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    retry::run(policy, true, what, op)
        .await
        .map_err(|g| (*g.error).with_attempts(g.attempts))
}
