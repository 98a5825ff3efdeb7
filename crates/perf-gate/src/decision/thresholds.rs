//! The gate's limits: four absolute floors (the seed's flags) and four tolerances relative to
//! the baseline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every limit of the four checks. [`Thresholds::default`] is the seed's gate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Thresholds {
    /// Check 1: P95 E2E latency must be strictly below this, seconds (`--max-p95-latency`, 8.0).
    pub max_p95_latency_s: f64,
    /// Check 2: P95 TTFT must be strictly below this, seconds (`--max-p95-ttft`, 2.0).
    pub max_p95_ttft_s: f64,
    /// Check 3: throughput must be strictly above this, req/s (`--min-throughput`, 2.0).
    pub min_throughput_rps: f64,
    /// Check 4: client success rate must be at least this, fraction (`--min-success-rate`, 0.99).
    pub min_success_rate: f64,
    /// Check 1, comparative: latency may be at most `baseline * (1 + this)` (0.15).
    pub max_latency_regression: f64,
    /// Check 2, comparative: TTFT may be at most `baseline * (1 + this)` (0.15).
    pub max_ttft_regression: f64,
    /// Check 3, comparative: throughput must be at least `baseline * (1 - this)` (0.15).
    pub max_throughput_drop: f64,
    /// Check 4, comparative: success rate must be at least `baseline - this` (0: the seed's
    /// `>= baseline`).
    pub max_success_rate_drop: f64,
}

impl Thresholds {
    /// The seed's gate (its flags' defaults): also the flags' defaults here.
    pub const SEED: Thresholds = Thresholds {
        max_p95_latency_s: 8.0,
        max_p95_ttft_s: 2.0,
        min_throughput_rps: 2.0,
        min_success_rate: 0.99,
        max_latency_regression: 0.15,
        max_ttft_regression: 0.15,
        max_throughput_drop: 0.15,
        max_success_rate_drop: 0.0,
    };
}

impl Default for Thresholds {
    /// [`Thresholds::SEED`].
    fn default() -> Self {
        Thresholds::SEED
    }
}

/// A threshold outside its valid range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid threshold {name} = {value}: {rule}")]
pub struct ThresholdError {
    /// Field (flag) name.
    pub name: &'static str,
    /// Value given.
    pub value: f64,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl Thresholds {
    /// `(field name, MLflow param name, value)` of every threshold, in a fixed order. The param
    /// names are the flag names without dashes (`max_p95_latency`, as the seed's flags).
    pub fn entries(&self) -> [(&'static str, &'static str, f64); 8] {
        [
            (
                "max_p95_latency_s",
                "max_p95_latency",
                self.max_p95_latency_s,
            ),
            ("max_p95_ttft_s", "max_p95_ttft", self.max_p95_ttft_s),
            (
                "min_throughput_rps",
                "min_throughput",
                self.min_throughput_rps,
            ),
            (
                "min_success_rate",
                "min_success_rate",
                self.min_success_rate,
            ),
            (
                "max_latency_regression",
                "max_latency_regression",
                self.max_latency_regression,
            ),
            (
                "max_ttft_regression",
                "max_ttft_regression",
                self.max_ttft_regression,
            ),
            (
                "max_throughput_drop",
                "max_throughput_drop",
                self.max_throughput_drop,
            ),
            (
                "max_success_rate_drop",
                "max_success_rate_drop",
                self.max_success_rate_drop,
            ),
        ]
    }

    /// Checks every value is finite and in range: limits and tolerances non-negative, the
    /// success rate floor and drops within `[0, 1]`, the throughput drop below 1.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        for (name, _, value) in self.entries() {
            if !value.is_finite() || value < 0.0 {
                return Err(ThresholdError {
                    name,
                    value,
                    rule: "must be a finite number >= 0",
                });
            }
        }
        let unit = |name, value: f64| {
            if value > 1.0 {
                Err(ThresholdError {
                    name,
                    value,
                    rule: "is a fraction and must be <= 1",
                })
            } else {
                Ok(())
            }
        };
        unit("min_success_rate", self.min_success_rate)?;
        unit("max_success_rate_drop", self.max_success_rate_drop)?;
        if self.max_throughput_drop >= 1.0 {
            return Err(ThresholdError {
                name: "max_throughput_drop",
                value: self.max_throughput_drop,
                rule: "must be < 1 (1 would accept zero throughput)",
            });
        }
        Ok(())
    }

    /// One line per threshold laxer than the seed's gate (anything laxer is opt-in and recorded).
    pub fn laxer_than_seed(&self) -> Vec<String> {
        let seed = Thresholds::default();
        let mut out = Vec::new();
        for ((name, _, v), (_, _, s)) in self.entries().into_iter().zip(seed.entries()) {
            // Upper limits and tolerances are laxer when larger; floors when smaller.
            let laxer = if name.starts_with("min_") {
                v < s
            } else {
                v > s
            };
            if laxer {
                out.push(format!(
                    "threshold {name} = {v} is laxer than the seed's {s}"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_defaults_are_valid_and_not_lax() {
        let t = Thresholds::default();
        t.validate().unwrap();
        assert!(t.laxer_than_seed().is_empty());
    }

    #[test]
    fn laxer_values_are_named() {
        let t = Thresholds {
            max_p95_latency_s: 9.0,
            min_success_rate: 0.95,
            max_success_rate_drop: 0.01,
            min_throughput_rps: 3.0, // stricter: not reported
            ..Thresholds::default()
        };
        let lax = t.laxer_than_seed();
        assert_eq!(lax.len(), 3, "{lax:?}");
        assert!(lax[0].starts_with("threshold max_p95_latency_s = 9"));
        assert!(lax.iter().any(|l| l.contains("min_success_rate = 0.95")));
        assert!(
            lax.iter()
                .any(|l| l.contains("max_success_rate_drop = 0.01"))
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let bad = [
            Thresholds {
                max_p95_latency_s: f64::NAN,
                ..Thresholds::default()
            },
            Thresholds {
                max_ttft_regression: -0.1,
                ..Thresholds::default()
            },
            Thresholds {
                min_success_rate: 1.5,
                ..Thresholds::default()
            },
            Thresholds {
                max_throughput_drop: 1.0,
                ..Thresholds::default()
            },
        ];
        for t in bad {
            assert!(t.validate().is_err(), "{t:?}");
        }
    }
}
