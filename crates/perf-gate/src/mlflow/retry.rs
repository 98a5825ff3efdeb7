//! Which failures are retried, and how long to wait: pure functions, tested in isolation.
//!
//! Idempotent calls (reads, log-batch, set-tag, aliases, artifact PUTs) are retried on
//! connection failures, timeouts, broken connections, 408, 429 and 5xx. Calls that create
//! something (`runs/create`, `experiments/create`, `registered-models/create`,
//! `model-versions/create`) are retried only when the connection could not be made, i.e. the
//! request never left: a 5xx, a timeout or a reset may come after the server acted (a proxy's
//! 502/504 after MLflow created the run), and a second attempt would make a second run. Never
//! retried: any other 4xx (401, 403, 404, 400 are answers, not accidents), and a success whose
//! body does not parse. Waits double from
//! [`RetryPolicy::initial_backoff`] up to [`RetryPolicy::max_backoff`]; a `Retry-After` header
//! (seconds or an HTTP date) replaces the computed wait, capped at
//! [`RetryPolicy::max_retry_after`].

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
    /// 4 retries (5 attempts), waits 0.5 s, 1 s, 2 s, 4 s (at most 8 s), `Retry-After` up to 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
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
}
