//! Deterministic per-request randomness and the fault plan of each request.
//!
//! Request number `i` (in arrival order, counted from 0 over all generation requests that
//! passed validation) gets its own `SmallRng` seeded with `splitmix64(seed ^ splitmix64(i))`:
//! no shared lock, and the same `--seed` gives the same draws to the same request number.
//! The draws are taken in a fixed order whatever the rates, so changing one rate does not
//! reshuffle the others:
//! 1. error: the request is answered with HTTP 500 if `u < --error-rate` (decided before it
//!    reaches the engine, so engine metrics don't move);
//! 2. early stop: the number of tokens before an EOS is geometric with parameter
//!    `--stop-probability`; when that is at most `max_tokens` the request ends there with
//!    `finish_reason: "stop"` (unless the request sets `ignore_eos`);
//! 3. cut (streaming only): if `u < --cut-rate` the body ends after `k` content chunks, `k`
//!    uniform in `[1, tokens - 1]` (0 when a single token was planned);
//! 4. then, during generation: jitter factors and the output text.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::metrics::FinishReason;

/// SplitMix64: a cheap, well-mixed 64-bit hash used to derive seeds.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random generator of request number `n`.
pub(crate) fn request_rng(seed: u64, n: u64) -> SmallRng {
    SmallRng::seed_from_u64(splitmix64(seed ^ splitmix64(n)))
}

/// Fault and length rates, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultRates {
    pub(crate) error_rate: f64,
    pub(crate) cut_rate: f64,
    pub(crate) stop_probability: f64,
}

/// What will happen to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Answer with HTTP 500 instead of generating.
    pub(crate) inject_error: bool,
    /// Tokens to generate (at least 1).
    pub(crate) tokens: u32,
    /// Reason reported when all `tokens` were generated.
    pub(crate) finish: FinishReason,
    /// End the stream after this many content chunks, without `[DONE]`.
    pub(crate) cut_after: Option<u32>,
}

/// Draws the plan of a request asking for `max_tokens` (>= 1).
pub(crate) fn plan(
    rates: FaultRates,
    max_tokens: u32,
    ignore_eos: bool,
    stream: bool,
    rng: &mut SmallRng,
) -> Plan {
    let u_error: f64 = rng.random();
    let u_stop: f64 = rng.random();
    let u_cut: f64 = rng.random();
    let u_cut_at: f64 = rng.random();

    let max_tokens = max_tokens.max(1);
    let stop_at = if ignore_eos {
        None
    } else {
        geometric(rates.stop_probability, u_stop).filter(|k| *k <= u64::from(max_tokens))
    };
    let (tokens, finish) = match stop_at {
        // `k <= max_tokens` so it fits in u32.
        Some(k) => (u32::try_from(k).unwrap_or(max_tokens), FinishReason::Stop),
        None => (max_tokens, FinishReason::Length),
    };
    let cut_after = (stream && u_cut < rates.cut_rate).then(|| {
        if tokens <= 1 {
            0
        } else {
            // Uniform in [1, tokens - 1].
            1 + ((u_cut_at * f64::from(tokens - 1)) as u32).min(tokens - 2)
        }
    });
    Plan {
        inject_error: u_error < rates.error_rate,
        tokens,
        finish,
        cut_after,
    }
}

/// Trials until the first success (>= 1) for success probability `p`, from one uniform
/// draw `u` in `[0, 1)`; `None` when `p` is 0.
fn geometric(p: f64, u: f64) -> Option<u64> {
    if p <= 0.0 {
        return None;
    }
    if p >= 1.0 {
        return Some(1);
    }
    // P(K > k) = (1 - p)^k  =>  K = ceil(ln(1 - u) / ln(1 - p)).
    let k = ((1.0 - u).ln() / (1.0 - p).ln()).ceil();
    Some(if k.is_finite() {
        (k as u64).max(1)
    } else {
        u64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: FaultRates = FaultRates {
        error_rate: 0.0,
        cut_rate: 0.0,
        stop_probability: 0.0,
    };

    #[test]
    fn same_seed_same_plan_and_different_requests_differ() {
        let rates = FaultRates {
            error_rate: 0.5,
            cut_rate: 0.5,
            stop_probability: 0.05,
        };
        let plans = |seed| {
            (0..64)
                .map(|n| plan(rates, 32, false, true, &mut request_rng(seed, n)))
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(7), plans(7));
        assert_ne!(plans(7), plans(8));
        let errors = plans(7).iter().filter(|p| p.inject_error).count();
        assert!(
            (16..=48).contains(&errors),
            "{errors} errors of 64 at rate 0.5"
        );
    }

    #[test]
    fn no_faults_by_default() {
        for n in 0..100 {
            let p = plan(NONE, 16, false, true, &mut request_rng(0, n));
            assert_eq!(
                p,
                Plan {
                    inject_error: false,
                    tokens: 16,
                    finish: FinishReason::Length,
                    cut_after: None
                }
            );
        }
    }

    #[test]
    fn full_rates_always_fire_and_cut_stays_inside_the_stream() {
        let rates = FaultRates {
            error_rate: 1.0,
            cut_rate: 1.0,
            stop_probability: 0.0,
        };
        for n in 0..200 {
            let p = plan(rates, 10, false, true, &mut request_rng(3, n));
            assert!(p.inject_error);
            let k = p.cut_after.expect("cut");
            assert!((1..=9).contains(&k), "cut after {k}");
            let single = plan(rates, 1, false, true, &mut request_rng(3, n));
            assert_eq!(single.cut_after, Some(0));
            let not_streamed = plan(rates, 10, false, false, &mut request_rng(3, n));
            assert_eq!(not_streamed.cut_after, None);
        }
    }

    #[test]
    fn stop_probability_one_stops_at_first_token_unless_ignore_eos() {
        let rates = FaultRates {
            stop_probability: 1.0,
            ..NONE
        };
        let p = plan(rates, 10, false, false, &mut request_rng(0, 0));
        assert_eq!((p.tokens, p.finish), (1, FinishReason::Stop));
        let p = plan(rates, 10, true, false, &mut request_rng(0, 0));
        assert_eq!((p.tokens, p.finish), (10, FinishReason::Length));
    }

    #[test]
    fn geometric_mean_is_about_one_over_p() {
        let mut rng = request_rng(1, 1);
        let n = 20_000;
        let total: u64 = (0..n)
            .map(|_| geometric(0.1, rng.random()).expect("p > 0"))
            .sum();
        let mean = total as f64 / f64::from(n);
        assert!((9.0..11.0).contains(&mean), "mean {mean}");
    }
}
