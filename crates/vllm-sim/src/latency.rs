//! The latency model: first-token delay, per-token delay growing with load, jitter.
//!
//! - first token: `ttft * j` after the request got a running slot (so the TTFT a client
//!   sees is queue time + `ttft * j`);
//! - every further token: `itl * (1 + decode_slowdown * running / max_num_seqs) * j` after
//!   the previous token's scheduled time, where `running` is read when the token is
//!   scheduled;
//! - `j` is drawn per delay, uniformly in `[1 - jitter, 1 + jitter]`.
//!
//! Tokens are emitted with `tokio::time::sleep_until` on an absolute schedule, so delays
//! do not accumulate drift (a late wake-up shortens the next gap instead).

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

/// Delays of the simulated engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LatencyModel {
    pub(crate) ttft: Duration,
    pub(crate) itl: Duration,
    pub(crate) jitter: f64,
    pub(crate) decode_slowdown: f64,
    pub(crate) max_num_seqs: usize,
}

impl LatencyModel {
    /// Delay from getting a slot to the first token.
    pub(crate) fn first_token(&self, rng: &mut SmallRng) -> Duration {
        self.ttft.mul_f64(self.jitter_factor(rng))
    }

    /// Delay between two tokens while `running` sequences share the engine.
    pub(crate) fn next_token(&self, rng: &mut SmallRng, running: usize) -> Duration {
        let load = running as f64 / self.max_num_seqs.max(1) as f64;
        let factor = (1.0 + self.decode_slowdown * load) * self.jitter_factor(rng);
        self.itl.mul_f64(factor)
    }

    fn jitter_factor(&self, rng: &mut SmallRng) -> f64 {
        // Always draw, so the random sequence does not depend on --jitter.
        let u: f64 = rng.random();
        1.0 + self.jitter * (2.0 * u - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::request_rng;

    fn model(jitter: f64, slowdown: f64) -> LatencyModel {
        LatencyModel {
            ttft: Duration::from_millis(100),
            itl: Duration::from_millis(10),
            jitter,
            decode_slowdown: slowdown,
            max_num_seqs: 10,
        }
    }

    #[test]
    fn without_jitter_delays_are_exact() {
        let m = model(0.0, 0.0);
        let mut rng = request_rng(0, 0);
        assert_eq!(m.first_token(&mut rng), Duration::from_millis(100));
        assert_eq!(m.next_token(&mut rng, 9), Duration::from_millis(10));
    }

    #[test]
    fn jitter_stays_in_band_and_varies() {
        let m = model(0.2, 0.0);
        let mut rng = request_rng(0, 0);
        let d: Vec<Duration> = (0..200).map(|_| m.first_token(&mut rng)).collect();
        assert!(d.iter().all(|d| (80..=120).contains(&d.as_millis())));
        assert!(d.iter().any(|x| *x != d[0]));
    }

    #[test]
    fn slowdown_grows_with_running() {
        let m = model(0.0, 1.0);
        let mut rng = request_rng(0, 0);
        assert_eq!(m.next_token(&mut rng, 0), Duration::from_millis(10));
        assert_eq!(m.next_token(&mut rng, 5), Duration::from_millis(15));
        assert_eq!(m.next_token(&mut rng, 10), Duration::from_millis(20));
    }
}
