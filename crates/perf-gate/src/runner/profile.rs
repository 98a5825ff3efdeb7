//! A load level that changes over time: k6's stages (`--stages 30s:10,1m:10,30s:0`) and
//! `--ramp-up`. The level is piecewise linear: it starts at [`Profile::start`], moves linearly
//! to each stage's target over the stage's duration, and holds the last target afterwards.
//!
//! The same profile drives both loops: in a closed loop the level is the number of requests
//! allowed in flight ([`Profile::at`], rounded); in an open loop it is the request rate, and a
//! unit-rate arrival process is mapped through the inverse of the cumulative rate
//! ([`Profile::time_of`]), so Poisson and gamma arrivals keep their shape while the rate ramps.

use std::time::Duration;

/// One stage: reach `target` linearly over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the move to `target` takes.
    pub duration: Duration,
    /// The level at the end of the stage (requests in flight, or requests per second).
    pub target: f64,
}

/// Why a stage list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A stage is not `DURATION:TARGET`.
    #[error("stage {index} ({text:?}): {why}")]
    Stage {
        /// 1-based position in the list.
        index: usize,
        /// The stage as given.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// No stage at all.
    #[error("no stages: give DURATION:TARGET[,DURATION:TARGET...], e.g. 30s:10,1m:10,30s:0")]
    Empty,
    /// The level never rises above zero.
    #[error("every stage's target is 0: nothing would be sent")]
    AllZero,
}

/// A piecewise-linear load level over time (seconds from the load's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The level at time 0.
    pub start: f64,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

impl Profile {
    /// A level that never changes.
    pub fn constant(level: f64) -> Self {
        Profile {
            start: level,
            stages: Vec::new(),
        }
    }

    /// From `from` to `to` linearly over `over`, then `to` for ever (`--ramp-up`).
    pub fn ramp(from: f64, to: f64, over: Duration) -> Self {
        Profile {
            start: from,
            stages: vec![Stage {
                duration: over,
                target: to,
            }],
        }
    }

    /// Parses k6-style stages, `DURATION:TARGET[,DURATION:TARGET...]` (`30s:10,1m:10,30s:0`);
    /// a target is a non-negative number. Every target 0 is refused (nothing would be sent).
    pub fn parse_stages(s: &str) -> Result<Vec<Stage>, ProfileError> {
        let mut stages = Vec::new();
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            if part.is_empty() && s.trim().is_empty() {
                break;
            }
            let err = |why: String| ProfileError::Stage {
                index: i + 1,
                text: part.to_string(),
                why,
            };
            let (d, t) = part
                .split_once(':')
                .ok_or_else(|| err("not DURATION:TARGET (e.g. 30s:10)".into()))?;
            let duration = crate::duration::parse_positive_duration(d.trim())
                .map_err(|e| err(format!("duration: {e}")))?;
            let target = match t.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => return Err(err(format!("target {:?} is not a number >= 0", t.trim()))),
            };
            stages.push(Stage { duration, target });
        }
        if stages.is_empty() {
            return Err(ProfileError::Empty);
        }
        if stages.iter().all(|s| s.target == 0.0) {
            return Err(ProfileError::AllZero);
        }
        Ok(stages)
    }

    /// The stages' total duration: how long a staged run lasts.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest level the profile reaches.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The segments: (start time, length, level at start, level at end), seconds.
    fn segments(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let mut t0 = 0.0;
        let mut from = self.start;
        self.stages.iter().map(move |s| {
            let seg = (t0, s.duration.as_secs_f64(), from, s.target);
            t0 += seg.1;
            from = s.target;
            seg
        })
    }

    /// The level at `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        let mut last = self.start;
        for (t0, len, a, b) in self.segments() {
            if t < t0 + len {
                let f = if len > 0.0 {
                    (t - t0).max(0.0) / len
                } else {
                    1.0
                };
                return a + (b - a) * f;
            }
            last = b;
        }
        last
    }

    /// When, in seconds, the level's integral from 0 reaches `u` (the time of the `u`-th
    /// request of a unit-rate process, when the level is a rate); `None` when it never does
    /// (the level ends at 0 first).
    pub fn time_of(&self, u: f64) -> Option<f64> {
        let mut left = u.max(0.0);
        let mut last = self.start;
        for (t0, len, a, b) in self.segments() {
            let area = (a + b) / 2.0 * len;
            if left <= area {
                return Some(t0 + within(a, b, len, left));
            }
            left -= area;
            last = b;
        }
        let end = self.total().as_secs_f64();
        (last > 0.0).then(|| end + left / last)
    }

    /// The next time after `t` at which a closed loop's rounded level may change: `t` plus a
    /// short tick inside a moving segment, the next segment's start inside a flat one, `None`
    /// after the last stage.
    pub fn next_change(&self, t: f64) -> Option<f64> {
        for (t0, len, a, b) in self.segments() {
            if t < t0 + len {
                return Some(if a == b {
                    t0 + len
                } else {
                    (t + 0.01).min(t0 + len)
                });
            }
        }
        None
    }
}

/// The `s` in `[0, len]` at which `∫0^s (a + (b-a)·x/len) dx = r`, for `r` at most the
/// segment's area: the root of `k s² + a s - r = 0` with `k = (b-a) / 2len`, in the form
/// `2r / (a + sqrt(a² + 4kr))`, stable for rising, falling and flat segments.
fn within(a: f64, b: f64, len: f64, r: f64) -> f64 {
    if r <= 0.0 {
        return 0.0;
    }
    let k = if len > 0.0 {
        (b - a) / (2.0 * len)
    } else {
        0.0
    };
    let disc = (a * a + 4.0 * k * r).max(0.0);
    let denom = a + disc.sqrt();
    if denom <= 0.0 {
        return len;
    }
    (2.0 * r / denom).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn stages_parse_like_k6() {
        let s = Profile::parse_stages("30s:10, 1m:10,30s:0").unwrap();
        assert_eq!(
            s,
            vec![
                Stage {
                    duration: secs(30.0),
                    target: 10.0
                },
                Stage {
                    duration: secs(60.0),
                    target: 10.0
                },
                Stage {
                    duration: secs(30.0),
                    target: 0.0
                },
            ]
        );
        for bad in ["", "30s", "30s:-1", "x:3", "30s:nan", "10s:0,5s:0"] {
            let e = Profile::parse_stages(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(
            Profile::parse_stages("30s:10,x")
                .unwrap_err()
                .to_string()
                .starts_with("stage 2 (\"x\")")
        );
    }

    #[test]
    fn the_level_moves_linearly_and_holds_the_last_target() {
        let p = Profile {
            start: 0.0,
            stages: Profile::parse_stages("10s:10,10s:10,5s:0").unwrap(),
        };
        assert_eq!(p.total(), secs(25.0));
        assert_eq!(p.peak(), 10.0);
        assert_eq!(p.at(0.0), 0.0);
        assert_eq!(p.at(5.0), 5.0);
        assert_eq!(p.at(15.0), 10.0);
        assert_eq!(p.at(22.5), 5.0);
        assert_eq!(p.at(100.0), 0.0);
        let r = Profile::ramp(1.0, 8.0, secs(7.0));
        assert_eq!(r.at(0.0), 1.0);
        assert_eq!(r.at(3.5), 4.5);
        assert_eq!(r.at(7.0), 8.0);
        assert_eq!(r.at(1e6), 8.0);
        assert_eq!(Profile::constant(3.0).at(42.0), 3.0);
    }

    #[test]
    fn time_of_inverts_the_cumulative_level() {
        // rate 0 -> 10/s over 10 s (50 requests), 10/s for 10 s (100), 10 -> 0 over 5 s (25)
        let p = Profile {
            start: 0.0,
            stages: Profile::parse_stages("10s:10,10s:10,5s:0").unwrap(),
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(p.time_of(0.0).unwrap(), 0.0));
        // ∫0^t t'/1 dt' = t²/2 = 12.5 at t = 5
        assert!(close(p.time_of(12.5).unwrap(), 5.0));
        assert!(close(p.time_of(50.0).unwrap(), 10.0));
        assert!(close(p.time_of(100.0).unwrap(), 15.0));
        assert!(close(p.time_of(150.0).unwrap(), 20.0));
        // the falling ramp: 25 requests in 5 s, 18.75 of them in its first 2.5 s
        // ((10 + 5) / 2 × 2.5)
        assert!(close(p.time_of(150.0 + 18.75).unwrap(), 22.5));
        // past the end at level 0: never
        assert_eq!(p.time_of(175.1), None);
        // constant: u / rate exactly
        let c = Profile::constant(4.0);
        assert!(close(c.time_of(10.0).unwrap(), 2.5));
        // the inverse agrees with a numeric integral of at() everywhere
        let r = Profile::ramp(2.0, 9.0, secs(3.0));
        for i in 0..50 {
            let t = i as f64 * 0.1;
            let n = 10_000;
            let area: f64 = (0..n)
                .map(|j| r.at((j as f64 + 0.5) * t / n as f64) * t / n as f64)
                .sum();
            assert!((r.time_of(area).unwrap() - t).abs() < 1e-6, "t {t}");
        }
    }

    #[test]
    fn next_change_ticks_in_ramps_and_jumps_over_flats() {
        let p = Profile {
            start: 1.0,
            stages: Profile::parse_stages("1s:5,2s:5").unwrap(),
        };
        assert!((p.next_change(0.5).unwrap() - 0.51).abs() < 1e-12);
        assert_eq!(p.next_change(1.5), Some(3.0));
        assert_eq!(p.next_change(3.5), None);
    }
}
