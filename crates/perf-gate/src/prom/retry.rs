//! Bounded retries for control-plane calls (Prometheus queries, `/-/ready`, vLLM `/metrics`).
//!
//! Retried: connection errors and timeouts, HTTP 408, 429 and 5xx (Prometheus answers 503 for a
//! query timeout and during TSDB start-up). Not retried: any other 4xx, notably 400 `bad_data`
//! (a bad query stays bad) and 422 `execution`. Backoff doubles from `base_delay`, capped at
//! `max_delay`; a `Retry-After` in seconds is honoured up to the same cap.

use std::time::Duration;

use super::error::PromError;

/// How many times to try and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of any single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 0.5 s then 1 s, capped at 5 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next_attempt` (2 = the first retry), honouring `Retry-After`.
    pub fn delay(&self, next_attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(16);
        let backoff = self.base_delay.saturating_mul(1 << exp);
        retry_after.unwrap_or(backoff).min(self.max_delay)
    }
}

/// Why an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP answer: connection refused or reset, DNS, timeout, body cut short.
    Transport,
    /// An HTTP answer with this status.
    Status(u16),
}

/// Whether a failure is worth another attempt.
pub fn should_retry(failure: Failure) -> bool {
    match failure {
        Failure::Transport => true,
        Failure::Status(s) => s == 408 || s == 429 || (500..=599).contains(&s),
    }
}

/// `Retry-After` as whole seconds (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A failed attempt: how to classify it, and the error to report if it is the last one.
pub(crate) struct Attempt {
    pub failure: Failure,
    pub retry_after: Option<Duration>,
    pub error: Box<PromError>,
}

/// Runs `op` until it succeeds, fails in a way not worth retrying, or runs out of attempts.
/// The returned error carries the number of attempts made.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, PromError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let attempts = policy.attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(a) if n >= attempts || !should_retry(a.failure) => {
                return Err((*a.error).with_attempts(n));
            }
            Err(a) => {
                let delay = policy.delay(n + 1, a.retry_after);
                tracing::warn!(%what, attempt = n, ?delay, error = %a.error, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(should_retry(Failure::Transport));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(should_retry(Failure::Status(s)), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 422] {
            assert!(!should_retry(Failure::Status(s)), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(2, None), Duration::from_millis(500));
        assert_eq!(p.delay(3, None), Duration::from_secs(1));
        assert_eq!(p.delay(4, None), Duration::from_secs(2));
        assert_eq!(p.delay(10, None), Duration::from_secs(5));
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
