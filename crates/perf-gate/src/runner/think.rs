//! Think time: the pause a closed loop's virtual user takes after a request finishes before it
//! sends the next (seed 003's Locust `wait_time`), and the user classes built from it.
//!
//! - `--think-time 2s`: a fixed pause; `1s..3s`: uniform between the two; `burst:N:PAUSE`:
//!   requests back to back in bursts of N on average, each followed by PAUSE (after each
//!   request, PAUSE with probability 1/N, else none: a stateless rule whose mean burst is N).
//! - `--user-class`: seed 003's classes, `standard` (LLMInferenceUser, 1 to 3 s), `high`
//!   (HighLoadUser, 0.1 to 0.5 s) and `burst` (BurstLoadUser, bursts of 5 then 10 s), or a
//!   weighted mix (`standard=3,high=1`): each request's pause follows a class drawn by weight.
//!
//! Every draw is seeded by `--seed` and the request's sequence number (its own ChaCha8
//! stream), so a run's pauses repeat with the seed whatever order requests finish in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One rule for the pause after a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// With probability 1 / `mean_burst`, `pause`; otherwise none.
    Burst {
        /// Mean number of requests in a burst.
        mean_burst: u32,
        /// The pause after a burst.
        pause: Duration,
    },
}

impl ThinkTime {
    /// The pause, for a uniform draw `u` in [0, 1).
    fn pause(self, u: f64) -> Duration {
        match self {
            ThinkTime::Fixed(d) => d,
            ThinkTime::Uniform(a, b) => a + (b - a).mul_f64(u),
            ThinkTime::Burst { mean_burst, pause } => {
                if u < 1.0 / f64::from(mean_burst) {
                    pause
                } else {
                    Duration::ZERO
                }
            }
        }
    }
}

impl FromStr for ThinkTime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use crate::duration::parse_duration;
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("burst:") {
            let (n, pause) = rest
                .split_once(':')
                .ok_or_else(|| format!("{s:?}: burst needs burst:N:PAUSE, e.g. burst:5:10s"))?;
            let mean_burst = match n.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "{s:?}: the burst size {n:?} is not a whole number >= 1"
                    ));
                }
            };
            let pause = parse_duration(pause.trim()).map_err(|e| format!("{s:?}: {e}"))?;
            return Ok(ThinkTime::Burst { mean_burst, pause });
        }
        if let Some((a, b)) = s.split_once("..") {
            let a = parse_duration(a.trim()).map_err(|e| format!("{s:?}: {e}"))?;
            let b = parse_duration(b.trim()).map_err(|e| format!("{s:?}: {e}"))?;
            if b < a {
                return Err(format!("{s:?}: the range's end is below its start"));
            }
            return Ok(ThinkTime::Uniform(a, b));
        }
        parse_duration(s)
            .map(ThinkTime::Fixed)
            .map_err(|e| format!("{s:?}: {e} (or MIN..MAX, or burst:N:PAUSE)"))
    }
}

impl fmt::Display for ThinkTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::duration::format_duration;
        match self {
            ThinkTime::Fixed(d) => f.write_str(&format_duration(*d)),
            ThinkTime::Uniform(a, b) => {
                write!(f, "{}..{}", format_duration(*a), format_duration(*b))
            }
            ThinkTime::Burst { mean_burst, pause } => {
                write!(f, "burst:{mean_burst}:{}", format_duration(*pause))
            }
        }
    }
}

/// Mixed into `--seed` for the think-time draws ("think" in ASCII).
const THINK_KEY: u64 = 0x7468_696e_6b00_0000;

/// seed 003's user classes: name, what it models, its think time.
pub const USER_CLASSES: [(&str, &str, ThinkTime); 3] = [
    (
        "standard",
        "LLMInferenceUser: realistic pauses of 1 to 3 s between requests",
        ThinkTime::Uniform(Duration::from_secs(1), Duration::from_secs(3)),
    ),
    (
        "high",
        "HighLoadUser: aggressive, 0.1 to 0.5 s between requests",
        ThinkTime::Uniform(Duration::from_millis(100), Duration::from_millis(500)),
    ),
    (
        "burst",
        "BurstLoadUser: bursts of 5 requests on average, then 10 s quiet",
        ThinkTime::Burst {
            mean_burst: 5,
            pause: Duration::from_secs(10),
        },
    ),
];

/// The pauses of a run: one rule, or user classes mixed by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Think {
    /// (weight, name, rule); weights are positive.
    pub classes: Vec<(f64, String, ThinkTime)>,
    /// Seed of the draws (`--seed`).
    pub seed: u64,
}

impl Think {
    /// One rule for every request.
    pub fn single(rule: ThinkTime, seed: u64) -> Think {
        Think {
            classes: vec![(1.0, rule.to_string(), rule)],
            seed,
        }
    }

    /// Parses `--user-class`: a class name, or `name=weight,...` of seed 003's classes.
    pub fn user_classes(spec: &str, seed: u64) -> Result<Think, String> {
        let mut classes = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => match w.trim().parse::<f64>() {
                    Ok(w) if w.is_finite() && w > 0.0 => (n.trim(), w),
                    _ => return Err(format!("{part:?}: the weight is not a number > 0")),
                },
                None => (part, 1.0),
            };
            let Some((_, _, rule)) = USER_CLASSES.iter().find(|c| c.0 == name) else {
                let known: Vec<&str> = USER_CLASSES.iter().map(|c| c.0).collect();
                return Err(format!(
                    "unknown user class {name:?}: use {}",
                    known.join(", ")
                ));
            };
            classes.push((weight, name.to_string(), *rule));
        }
        Ok(Think { classes, seed })
    }

    /// The pause after request `seq`: its class by weight, then the class's rule.
    pub fn pause(&self, seq: u64) -> Duration {
        // its own key, so the pauses share no stream with the seed's other draws (arrivals,
        // prompt sizes, synthetic words)
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ THINK_KEY);
        rng.set_stream(seq);
        let total: f64 = self.classes.iter().map(|c| c.0).sum();
        let mut pick = rng.random::<f64>() * total;
        let u = rng.random::<f64>();
        for (w, _, rule) in &self.classes {
            if pick < *w {
                return rule.pause(u);
            }
            pick -= w;
        }
        self.classes.last().map_or(Duration::ZERO, |c| c.2.pause(u))
    }
}

impl fmt::Display for Think {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .classes
            .iter()
            .map(|(w, name, _)| {
                if self.classes.len() == 1 {
                    name.clone()
                } else {
                    format!("{name}={w}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        for text in ["2s", "1s..3s", "burst:5:10s", "100ms..500ms"] {
            let t: ThinkTime = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        for bad in ["3s..1s", "burst:0:1s", "burst:5", "x", "1s..y"] {
            assert!(bad.parse::<ThinkTime>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pauses_follow_their_rule_and_repeat_with_the_seed() {
        let t = Think::single("1s..3s".parse().unwrap(), 7);
        let pauses: Vec<f64> = (0..4000).map(|i| t.pause(i).as_secs_f64()).collect();
        assert!(pauses.iter().all(|p| (1.0..=3.0).contains(p)));
        let mean = pauses.iter().sum::<f64>() / pauses.len() as f64;
        assert!((mean - 2.0).abs() < 0.05, "mean {mean}");
        assert_eq!(
            t.pause(11),
            Think::single("1s..3s".parse().unwrap(), 7).pause(11)
        );
        assert_ne!(
            t.pause(11),
            Think::single("1s..3s".parse().unwrap(), 8).pause(11)
        );
        // bursts: a pause after 1 in 5 requests
        let b = Think::single("burst:5:10s".parse().unwrap(), 1);
        let paused = (0..5000).filter(|&i| !b.pause(i).is_zero()).count();
        assert!((850..=1150).contains(&paused), "{paused} pauses");
    }

    #[test]
    fn user_classes_mix_by_weight() {
        let t = Think::user_classes("standard=3,high=1", 3).unwrap();
        assert_eq!(t.to_string(), "standard=3,high=1");
        let n = 8000;
        let high = (0..n)
            .filter(|&i| t.pause(i) < Duration::from_secs(1))
            .count();
        // a quarter of the requests are the high class's (< 0.5 s); the standard's are >= 1 s
        let share = high as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.03, "share {share}");
        assert!(
            Think::user_classes("nobody", 0)
                .unwrap_err()
                .contains("standard, high, burst")
        );
        assert!(Think::user_classes("high=0", 0).is_err());
        assert_eq!(
            Think::user_classes("burst", 0).unwrap().to_string(),
            "burst"
        );
    }
}
