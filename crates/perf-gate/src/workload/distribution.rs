//! Integer sizes drawn from a distribution (`--input-size`, `--max-tokens`): the spec syntax,
//! its parser, and a sampler over a seeded generator.
//!
//! | spec | draws |
//! | --- | --- |
//! | `N` | always `N` |
//! | `uniform:A:B` | an integer in `[A, B]`, each equally likely |
//! | `normal:MEAN:STD:MIN:MAX` | `round(x)`, `x ~ Normal(MEAN, STD)`, clamped to `[MIN, MAX]` |
//! | `lognormal:MU:SIGMA:MIN:MAX` | `round(exp(y))`, `y ~ Normal(MU, SIGMA)`, clamped to `[MIN, MAX]` |
//!
//! `lognormal` takes the mean and standard deviation of the underlying normal (as seed 001's
//! `lognormal:6.0:0.5:128:4096`, whose median is `exp(6) ≈ 403`), not of the sizes. Every
//! bound is at least 1. Clamping (not redrawing) keeps the draw count per request fixed, so a
//! seed gives the same sequence whatever the bounds cut off; the clamped share shows as mass
//! at the bounds. Samplers are `rand_distr`'s over the caller's generator (ChaCha8 seeded from
//! `--seed` in the load test: the same on every platform and build).

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// A distribution of positive integer sizes (tokens).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeDist {
    /// Always this value.
    Fixed(u32),
    /// Uniform over `[lo, hi]`.
    Uniform {
        /// Smallest value.
        lo: u32,
        /// Largest value.
        hi: u32,
    },
    /// Rounded normal, clamped.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
        /// Lower clamp.
        min: u32,
        /// Upper clamp.
        max: u32,
    },
    /// Rounded log-normal (parameters of the underlying normal), clamped.
    LogNormal {
        /// Mean of `ln(size)`.
        mu: f64,
        /// Standard deviation of `ln(size)`.
        sigma: f64,
        /// Lower clamp.
        min: u32,
        /// Upper clamp.
        max: u32,
    },
}

/// Why a spec is refused (the caller names the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DistError(String);

impl SizeDist {
    /// The largest value a draw can take (the upper clamp; a fixed value itself).
    pub fn max(&self) -> u32 {
        match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform { hi, .. } => hi,
            SizeDist::Normal { max, .. } | SizeDist::LogNormal { max, .. } => max,
        }
    }

    /// Whether every draw is the same value.
    pub fn is_fixed(&self) -> bool {
        matches!(self, SizeDist::Fixed(_))
    }

    /// One draw. Fixed values draw nothing from `rng`; the others draw once per call.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let clamp = |x: f64, min: u32, max: u32| {
            // NaN cannot arise from finite parameters; `as` saturates, then the clamp bounds it
            (x.round() as u32).clamp(min, max)
        };
        match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform { lo, hi } => rng.random_range(lo..=hi),
            SizeDist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                let d = Normal::new(mean, std).expect("invariant: std checked finite and >= 0");
                clamp(d.sample(rng), min, max)
            }
            SizeDist::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => {
                let d =
                    LogNormal::new(mu, sigma).expect("invariant: sigma checked finite and >= 0");
                clamp(d.sample(rng), min, max)
            }
        }
    }
}

fn int(what: &str, s: &str) -> Result<u32, DistError> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err(DistError(format!("{what} must be at least 1"))),
        Ok(n) => Ok(n),
        Err(_) => Err(DistError(format!("{what} {s:?} is not a positive integer"))),
    }
}

fn real(what: &str, s: &str, non_negative: bool) -> Result<f64, DistError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (!non_negative || v >= 0.0) => Ok(v),
        _ => Err(DistError(format!(
            "{what} {s:?} is not a {}number",
            if non_negative { "non-negative " } else { "" }
        ))),
    }
}

fn bounds(min: &str, max: &str) -> Result<(u32, u32), DistError> {
    let (lo, hi) = (int("min", min)?, int("max", max)?);
    if lo > hi {
        return Err(DistError(format!("min {lo} is above max {hi}")));
    }
    Ok((lo, hi))
}

impl FromStr for SizeDist {
    type Err = DistError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [n] if !n.is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit()) => {
                Ok(SizeDist::Fixed(int("the size", n)?))
            }
            ["uniform", a, b] => {
                let (lo, hi) = bounds(a, b)?;
                Ok(SizeDist::Uniform { lo, hi })
            }
            ["uniform", ..] => Err(DistError("uniform needs A:B (uniform:A:B)".into())),
            ["normal", mean, std, min, max] => {
                let (min, max) = bounds(min, max)?;
                Ok(SizeDist::Normal {
                    mean: real("mean", mean, false)?,
                    std: real("std", std, true)?,
                    min,
                    max,
                })
            }
            ["normal", ..] => Err(DistError(
                "normal needs mean:std:min:max (normal:MEAN:STD:MIN:MAX)".into(),
            )),
            ["lognormal", mu, sigma, min, max] => {
                let (min, max) = bounds(min, max)?;
                Ok(SizeDist::LogNormal {
                    mu: real("mu", mu, false)?,
                    sigma: real("sigma", sigma, true)?,
                    min,
                    max,
                })
            }
            ["lognormal", ..] => Err(DistError(
                "lognormal needs mu:sigma:min:max, of the underlying normal (lognormal:MU:SIGMA:MIN:MAX)"
                    .into(),
            )),
            _ => Err(DistError(format!(
                "{s:?} is not a size: expected N, uniform:A:B, normal:MEAN:STD:MIN:MAX or lognormal:MU:SIGMA:MIN:MAX"
            ))),
        }
    }
}

impl fmt::Display for SizeDist {
    /// The spec, in the syntax the parser reads (round-trips).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeDist::Fixed(n) => write!(f, "{n}"),
            SizeDist::Uniform { lo, hi } => write!(f, "uniform:{lo}:{hi}"),
            SizeDist::Normal {
                mean,
                std,
                min,
                max,
            } => write!(f, "normal:{mean}:{std}:{min}:{max}"),
            SizeDist::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => write!(f, "lognormal:{mu}:{sigma}:{min}:{max}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn draws(spec: &str, n: usize, seed: u64) -> Vec<u32> {
        let d: SizeDist = spec.parse().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    fn mean(v: &[u32]) -> f64 {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "128",
            "uniform:10:20",
            "normal:256:64:32:512",
            "lognormal:6:0.5:128:4096",
        ] {
            let d: SizeDist = spec.parse().unwrap();
            assert_eq!(d.to_string(), spec);
            assert_eq!(d.to_string().parse::<SizeDist>().unwrap(), d);
        }
        assert_eq!(" 64 ".parse::<SizeDist>().unwrap(), SizeDist::Fixed(64));
        assert_eq!(
            "normal:256:64:32:512".parse::<SizeDist>().unwrap().max(),
            512
        );
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        for (spec, want) in [
            ("0", "the size must be at least 1"),
            ("-5", "is not a size: expected N, uniform:A:B"),
            ("normal:1:2", "normal needs mean:std:min:max"),
            ("lognormal:6:0.5", "lognormal needs mu:sigma:min:max"),
            ("uniform:5", "uniform needs A:B"),
            ("uniform:9:3", "min 9 is above max 3"),
            ("normal:x:1:1:2", "mean \"x\" is not a number"),
            ("normal:5:-1:1:9", "std \"-1\" is not a non-negative number"),
            ("normal:5:1:0:9", "min must be at least 1"),
            (
                "lognormal:5:nan:1:9",
                "sigma \"nan\" is not a non-negative number",
            ),
            ("gamma:1:2", "is not a size"),
            ("", "is not a size"),
        ] {
            let e = spec.parse::<SizeDist>().unwrap_err().to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_sequence() {
        for spec in [
            "uniform:1:1000",
            "normal:256:64:32:512",
            "lognormal:6:0.5:128:4096",
        ] {
            assert_eq!(draws(spec, 200, 7), draws(spec, 200, 7));
            assert_ne!(draws(spec, 200, 7), draws(spec, 200, 8), "{spec}");
        }
    }

    /// Means within a few standard errors of the analytic value, and clamps respected (with
    /// mass at the bounds where the tails are cut). Fixed seed: deterministic, the tolerance
    /// only guards against a wrong sampler, not bad luck.
    #[test]
    fn draws_follow_their_distribution_and_clamps() {
        let n = 20_000;
        let u = draws("uniform:10:20", n, 1);
        assert!(u.iter().all(|x| (10..=20).contains(x)));
        assert!((mean(&u) - 15.0).abs() < 0.1, "{}", mean(&u));
        assert!(u.contains(&10) && u.contains(&20));

        // wide bounds: the plain normal's mean and spread
        let v = draws("normal:256:64:1:100000", n, 2);
        let m = mean(&v);
        let sd = (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((m - 256.0).abs() < 2.0, "mean {m}");
        assert!((sd - 64.0).abs() < 2.0, "sd {sd}");

        // tight bounds: everything inside, about 16% piled on each bound (one sd away)
        let c = draws("normal:256:64:192:320", n, 3);
        assert!(c.iter().all(|x| (192..=320).contains(x)));
        for bound in [192, 320] {
            let share = c.iter().filter(|&&x| x == bound).count() as f64 / n as f64;
            assert!((0.14..0.18).contains(&share), "{bound}: {share}");
        }

        // lognormal: median exp(mu), mean exp(mu + sigma^2 / 2) with wide bounds
        let mut l = draws("lognormal:6:0.5:1:1000000", n, 4);
        let lm = mean(&l);
        let want = (6.0f64 + 0.125).exp();
        assert!((lm - want).abs() / want < 0.02, "mean {lm} vs {want}");
        l.sort_unstable();
        let median = f64::from(l[n / 2]);
        assert!(
            (median - 6.0f64.exp()).abs() / 6.0f64.exp() < 0.02,
            "median {median}"
        );
        let cut = draws("lognormal:6:0.5:128:600", n, 5);
        assert!(cut.iter().all(|x| (128..=600).contains(x)));
        assert!(cut.contains(&600), "the upper tail is clamped to 600");

        assert!(draws("42", 10, 0).iter().all(|&x| x == 42));
    }
}
