//! Open-loop arrival processes: when the requests of a `--rate` run are *scheduled*.
//!
//! A pure, seeded generator: the offsets (seconds from the load start) depend only on the
//! process, the rate and the seed, so a run is reproducible and two runs with the same seed
//! issue the same schedule.
//!
//! - `constant`: request i at `i / R` (the gaps never vary; CV 0).
//! - `poisson`: gaps exponential with mean `1 / R` (CV 1): independent users arriving.
//! - `gamma:K`: gaps Gamma(shape K, scale `1 / (K R)`), mean `1 / R`, CV `1 / sqrt(K)`:
//!   K < 1 burstier than Poisson, K > 1 more regular.
//!
//! Samplers are `rand_distr`'s (exact exponential and Marsaglia–Tsang gamma) over ChaCha8,
//! whose output is fixed by its seed on every platform.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

use crate::results::{GeneratorHealth, ScheduleLag};

/// How an open loop spaces its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced, `1 / R` apart.
    Constant,
    /// A Poisson process: exponential gaps.
    Poisson,
    /// Gamma-distributed gaps with this shape (> 0).
    Gamma {
        /// Shape K: the gaps' CV is `1 / sqrt(K)`.
        shape: f64,
    },
}

/// Why an `--arrival` value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArrivalError {
    /// Not one of the known processes.
    #[error("expected constant, poisson or gamma:SHAPE")]
    Unknown,
    /// `gamma:` with a shape that is not a positive finite number.
    #[error("the shape must be a positive number")]
    Shape,
    /// The rate cannot drive a schedule.
    #[error("the rate must be a positive number")]
    Rate,
}

impl std::str::FromStr for Arrival {
    type Err = ArrivalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "constant" => Ok(Arrival::Constant),
            "poisson" => Ok(Arrival::Poisson),
            other => {
                let shape = other.strip_prefix("gamma:").ok_or(ArrivalError::Unknown)?;
                match shape.trim().parse::<f64>() {
                    Ok(k) if k.is_finite() && k > 0.0 => Ok(Arrival::Gamma { shape: k }),
                    _ => Err(ArrivalError::Shape),
                }
            }
        }
    }
}

impl std::fmt::Display for Arrival {
    /// The form `--arrival` takes (and the results record): `constant`, `poisson`, `gamma:K`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrival::Constant => f.write_str("constant"),
            Arrival::Poisson => f.write_str("poisson"),
            Arrival::Gamma { shape } => write!(f, "gamma:{shape}"),
        }
    }
}

impl Arrival {
    /// The scheduled offsets, seconds from the load start, of an endless run at `per_second`
    /// requests per second; the first request is at 0. Same inputs, same offsets.
    pub fn offsets(
        self,
        per_second: f64,
        seed: u64,
    ) -> Result<impl Iterator<Item = f64>, ArrivalError> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(ArrivalError::Rate);
        }
        let gaps = match self {
            Arrival::Constant => Gaps::Constant,
            Arrival::Poisson => Gaps::Exp(Exp::new(per_second).map_err(|_| ArrivalError::Rate)?),
            Arrival::Gamma { shape } => Gaps::Gamma(
                Gamma::new(shape, 1.0 / (shape * per_second)).map_err(|_| ArrivalError::Shape)?,
            ),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut at = 0.0f64;
        Ok((0u64..).map(move |i| match &gaps {
            // i / R, not a running sum: no drift from rounding over a long run
            Gaps::Constant => i as f64 / per_second,
            Gaps::Exp(d) => {
                let now = at;
                at += d.sample(&mut rng);
                now
            }
            Gaps::Gamma(d) => {
                let now = at;
                at += d.sample(&mut rng);
                now
            }
        }))
    }
}

/// Below this share of the drawn schedule's rate, the open loop is reported as behind.
const BEHIND: f64 = 0.9;

impl ScheduleLag {
    /// Figures of a run: `sent` dispatches, the first to last `last_offset_s` apart on the
    /// schedule and `span_s` apart in fact (the queue P99 is filled in later).
    pub(crate) fn new(
        requested_rate: f64,
        sent: u64,
        last_offset_s: f64,
        span_s: f64,
        waited_for_slot: u64,
        max_inflight: u32,
    ) -> Self {
        let rate = |span: f64| (sent >= 2 && span > 0.0).then(|| (sent - 1) as f64 / span);
        ScheduleLag {
            requested_rate,
            scheduled_rate: rate(last_offset_s),
            achieved_rate: rate(span_s),
            dispatched: sent,
            max_inflight,
            waited_for_slot,
            client_queue_p99_s: None,
        }
    }

    /// A warning when the achieved rate is more than 10 % below the drawn schedule's (not the
    /// requested one: a Poisson schedule's own rate differs from it by chance), naming the
    /// likely cause: the in-flight cap when requests waited for a slot, else the generator.
    pub(crate) fn warning(&self, health: &GeneratorHealth) -> Option<String> {
        let (Some(scheduled), Some(achieved)) = (self.scheduled_rate, self.achieved_rate) else {
            return None;
        };
        if achieved >= BEHIND * scheduled {
            return None;
        }
        let head = format!(
            "the open loop fell behind its schedule: {achieved:.1} requests/s dispatched against {scheduled:.1}/s scheduled (--rate {}; client queue p99 {:.3} s)",
            self.requested_rate,
            self.client_queue_p99_s.unwrap_or(0.0)
        );
        let cause = if self.waited_for_slot > 0 {
            format!(
                "{} request(s) found all --max-inflight {} slots taken: the server is slower than this rate needs at this cap; raise --max-inflight or lower --rate",
                self.waited_for_slot, self.max_inflight
            )
        } else if health.saturated {
            "the load generator was saturated; give load-test more CPU or lower --rate".into()
        } else {
            "the dispatcher could not keep up with the schedule (load-test short of CPU?); lower --rate".into()
        };
        Some(format!("{head}; {cause}"))
    }
}

enum Gaps {
    Constant,
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(a: Arrival, rate: f64, seed: u64, n: usize) -> Vec<f64> {
        let o: Vec<f64> = a.offsets(rate, seed).unwrap().take(n + 1).collect();
        o.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn mean_cv(g: &[f64]) -> (f64, f64) {
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn same_seed_same_offsets_other_seed_other_offsets() {
        for a in [Arrival::Poisson, Arrival::Gamma { shape: 0.5 }] {
            let x: Vec<f64> = a.offsets(50.0, 7).unwrap().take(100).collect();
            let y: Vec<f64> = a.offsets(50.0, 7).unwrap().take(100).collect();
            let z: Vec<f64> = a.offsets(50.0, 8).unwrap().take(100).collect();
            assert_eq!(x, y);
            assert_ne!(x, z);
            assert_eq!(x[0], 0.0);
            assert!(x.windows(2).all(|w| w[1] >= w[0]));
        }
        let c: Vec<f64> = Arrival::Constant.offsets(4.0, 1).unwrap().take(3).collect();
        assert_eq!(c, [0.0, 0.25, 0.5]);
    }

    #[test]
    fn gaps_have_mean_one_over_rate_and_the_process_cv() {
        let rate = 200.0;
        for (a, cv_want, tol) in [
            (Arrival::Constant, 0.0, 1e-6),
            (Arrival::Poisson, 1.0, 0.03),
            (Arrival::Gamma { shape: 0.5 }, 2f64.sqrt(), 0.06),
            (Arrival::Gamma { shape: 4.0 }, 0.5, 0.02),
        ] {
            let (mean, cv) = mean_cv(&gaps(a, rate, 3, 20_000));
            assert!(
                (mean * rate - 1.0).abs() < 0.03,
                "{a}: mean gap {mean} vs {}",
                1.0 / rate
            );
            assert!((cv - cv_want).abs() < tol, "{a}: CV {cv} vs {cv_want}");
            eprintln!(
                "{a}: mean gap x rate {:.4}, CV {cv:.4} (want {cv_want:.4})",
                mean * rate
            );
        }
    }

    #[test]
    fn arrival_parses_and_prints() {
        for s in ["constant", "poisson", "gamma:4", "gamma:0.5"] {
            assert_eq!(s.parse::<Arrival>().unwrap().to_string(), s);
        }
        assert_eq!("uniform".parse::<Arrival>(), Err(ArrivalError::Unknown));
        for s in [
            "gamma:0",
            "gamma:-1",
            "gamma:x",
            "gamma:",
            "gamma:inf",
            "gamma:NaN",
        ] {
            assert_eq!(s.parse::<Arrival>(), Err(ArrivalError::Shape), "{s}");
        }
        assert!(Arrival::Poisson.offsets(0.0, 0).is_err());
    }
}
