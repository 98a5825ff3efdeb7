//! Retries of control-plane calls (Prometheus, vLLM `/metrics`, MLflow), never of load
//! requests: which failures are retried, how long to wait, and the loop, in one place.
//!
//! Idempotent calls (reads, queries, log-batch, set-tag, aliases, artifact PUTs) are retried on
//! connection failures, timeouts, broken connections, 408, 429 and 5xx. Calls that create
//! something (`runs/create`, `experiments/create`, ...) are retried only when the connection
//! could not be made, i.e. the request never left: a 5xx, a timeout or a reset may come after
//! the server acted (a proxy's 502/504 after MLflow created the run), and a second attempt
//! would make a second run. Never retried: any other 4xx (401, 403, 404, 400 `bad_data` are
//! answers, not accidents), and a success whose body does not parse. Waits double from
//! [`RetryPolicy::initial_backoff`] up to [`RetryPolicy::max_backoff`]; a `Retry-After` header
//! (seconds or an HTTP date) replaces the computed wait, capped at
//! [`RetryPolicy::max_retry_after`].

use std::fmt::Display;
use std::time::Duration;

/// Bounds of the retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = try once).
    pub max_retries: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest computed wait between attempts.
    pub max_backoff: Duration,
    /// Longest wait a `Retry-After` header may impose.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries (5 attempts), waits 0.5 s, 1 s, 2 s, 4 s (at most 8 s), `Retry-After` up to 60 s:
    /// MLflow's own client defaults.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// For Prometheus queries and vLLM `/metrics` scrapes: 2 retries, 0.5 s then 1 s, any wait
    /// (`Retry-After` included) at most 5 s. Queries run after the load: a long wait only delays
    /// the result, a short one lets a Prometheus restart fail the step.
    pub const QUERIES: RetryPolicy = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(5),
    };

    /// Try once, never wait (tests of error paths).
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_retry_after: Duration::ZERO,
    };
}

/// What one attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// The connection could not be made (refused, DNS, TLS handshake): nothing reached the server.
    Connect,
    /// The attempt timed out.
    Timeout,
    /// The connection broke after the request may have been sent (reset, truncated body).
    Io,
    /// A failure that another attempt cannot fix (request building, redirect loop, bad body).
    Fatal,
}

/// Whether an attempt that ended with `outcome` should be retried. `idempotent` says whether
/// repeating the request is harmless if the first one did reach the server; a call that is not
/// is retried only when nothing reached the server ([`AttemptOutcome::Connect`]).
pub fn should_retry(outcome: AttemptOutcome, idempotent: bool) -> bool {
    match outcome {
        AttemptOutcome::Connect => true,
        AttemptOutcome::Status(s) => {
            idempotent && (s == 408 || s == 429 || (500..=599).contains(&s))
        }
        AttemptOutcome::Timeout | AttemptOutcome::Io => idempotent,
        AttemptOutcome::Fatal => false,
    }
}

/// The wait before retry number `retry` (1-based): `Retry-After` if the server sent one (capped),
/// else `initial_backoff * 2^(retry-1)` capped at `max_backoff`.
pub fn backoff(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(policy.max_retry_after);
    }
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    policy
        .initial_backoff
        .checked_mul(factor)
        .unwrap_or(policy.max_backoff)
        .min(policy.max_backoff)
}

/// Parses a `Retry-After` value: delay seconds (`"3"`) or an HTTP date, relative to `now`.
/// A date in the past means no wait; garbage means "no header".
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response's headers, if any ([`parse_retry_after`] from now).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, chrono::Utc::now())
}

/// How a transport error (no HTTP answer) counts for retrying. A TLS certificate the client
/// refuses is [`AttemptOutcome::Fatal`]: every attempt meets the same certificate.
pub fn classify(e: &reqwest::Error) -> AttemptOutcome {
    if crate::transport::is_certificate_error(e) {
        AttemptOutcome::Fatal
    } else if e.is_timeout() {
        AttemptOutcome::Timeout
    } else if e.is_connect() {
        AttemptOutcome::Connect
    } else if e.is_request() || e.is_body() || e.is_decode() {
        AttemptOutcome::Io
    } else {
        AttemptOutcome::Fatal
    }
}

/// A failed attempt: how it counts for retrying, and the error to report if it is the last.
#[derive(Debug)]
pub struct Failed<E> {
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// The error reported when no attempt is left.
    pub error: E,
}

/// The last failure, once retrying is over, and how many attempts were made.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made (at least 1).
    pub attempts: u32,
}

/// Runs `op` until it succeeds, fails in a way not worth retrying ([`should_retry`] with
/// `idempotent`), or runs out of retries; each retry waits [`backoff`] and is logged at WARN
/// with `what`.
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    idempotent: bool,
    what: &str,
    mut op: F,
) -> Result<T, GaveUp<E>>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failed<E>>>,
{
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(f) if attempt > policy.max_retries || !should_retry(f.outcome, idempotent) => {
                return Err(GaveUp {
                    error: f.error,
                    attempts: attempt,
                });
            }
            Err(f) => {
                let wait = backoff(policy, attempt, f.retry_after);
                tracing::warn!(
                    %what,
                    attempt,
                    max_attempts = policy.max_retries + 1,
                    wait_ms = wait.as_millis() as u64,
                    error = %f.error,
                    "call failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(AttemptOutcome::Status(500), true, true)]
    #[case(AttemptOutcome::Status(502), true, true)]
    #[case(AttemptOutcome::Status(503), true, true)]
    #[case(AttemptOutcome::Status(599), true, true)]
    #[case(AttemptOutcome::Status(408), true, true)]
    #[case(AttemptOutcome::Status(429), true, true)]
    // a call that creates something: the server may have acted before the error answer
    #[case(AttemptOutcome::Status(500), false, false)]
    #[case(AttemptOutcome::Status(502), false, false)]
    #[case(AttemptOutcome::Status(503), false, false)]
    #[case(AttemptOutcome::Status(504), false, false)]
    #[case(AttemptOutcome::Status(408), false, false)]
    #[case(AttemptOutcome::Status(429), false, false)]
    #[case(AttemptOutcome::Status(400), true, false)]
    #[case(AttemptOutcome::Status(401), true, false)]
    #[case(AttemptOutcome::Status(403), true, false)]
    #[case(AttemptOutcome::Status(404), true, false)]
    #[case(AttemptOutcome::Status(409), true, false)]
    #[case(AttemptOutcome::Status(422), true, false)]
    #[case(AttemptOutcome::Status(200), true, false)]
    #[case(AttemptOutcome::Connect, false, true)]
    #[case(AttemptOutcome::Connect, true, true)]
    #[case(AttemptOutcome::Timeout, true, true)]
    #[case(AttemptOutcome::Timeout, false, false)]
    #[case(AttemptOutcome::Io, true, true)]
    #[case(AttemptOutcome::Io, false, false)]
    #[case(AttemptOutcome::Fatal, true, false)]
    fn retry_classification(
        #[case] outcome: AttemptOutcome,
        #[case] idempotent: bool,
        #[case] expected: bool,
    ) {
        assert_eq!(should_retry(outcome, idempotent), expected);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=6).map(|r| backoff(&p, r, None).as_millis()).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(backoff(&p, 40, None), p.max_backoff);
        let q = RetryPolicy::QUERIES;
        let waits: Vec<_> = (1..=5).map(|r| backoff(&q, r, None).as_millis()).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 4000, 5000]);
    }

    #[test]
    fn retry_after_replaces_backoff_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff(&p, 1, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
        assert_eq!(backoff(&p, 3, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(
            backoff(&RetryPolicy::QUERIES, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:50Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    fn fail(outcome: AttemptOutcome) -> Failed<String> {
        Failed {
            outcome,
            retry_after: Some(Duration::ZERO),
            error: format!("{outcome:?}"),
        }
    }

    #[tokio::test]
    async fn the_loop_stops_at_the_first_answer_not_worth_retrying() {
        let mut seen = Vec::new();
        let mut script = vec![
            fail(AttemptOutcome::Status(503)),
            fail(AttemptOutcome::Io),
            fail(AttemptOutcome::Status(400)),
        ]
        .into_iter();
        let r: Result<(), _> = run(&RetryPolicy::default(), true, "test", || {
            let f = script.next().unwrap();
            seen.push(f.outcome);
            async move { Err(f) }
        })
        .await;
        let gave_up = r.unwrap_err();
        assert_eq!(gave_up.attempts, 3);
        assert_eq!(gave_up.error, "Status(400)");
    }

    #[tokio::test]
    async fn a_call_that_creates_is_not_repeated_after_a_5xx() {
        let mut calls = 0;
        let r: Result<(), _> = run(&RetryPolicy::default(), false, "create", || {
            calls += 1;
            async { Err(fail(AttemptOutcome::Status(502))) }
        })
        .await;
        assert_eq!((calls, r.unwrap_err().attempts), (1, 1));
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let mut calls = 0;
        let policy = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::NONE
        };
        let r: Result<(), _> = run(&policy, true, "read", || {
            calls += 1;
            async { Err(fail(AttemptOutcome::Connect)) }
        })
        .await;
        assert_eq!((calls, r.unwrap_err().attempts), (3, 3));
    }
}
