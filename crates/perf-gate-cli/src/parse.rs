//! clap value parsers for the gate's flags: bare numbers as the seed passes them (`8.0`,
//! `0.99`), humantime durations (`90s`), with one-line errors that name what is expected.

use std::time::Duration;

pub use perf_gate::duration::{format_duration, parse_duration, parse_positive_duration};

/// An integer of at least 1.
pub fn positive_u32(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a positive integer ({e})")),
    }
}

/// A finite number in `[0, 1]`.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

/// A finite number of at least 0.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a non-negative number")),
    }
}

/// Seconds as a number: a bare number (`8.0`) or a humantime duration (`500ms`, `2m`).
pub fn seconds(s: &str) -> Result<f64, String> {
    parse_duration(s).map(|d| d.as_secs_f64())
}

/// [`seconds`] that refuses zero (a latency bound of 0 can never be met).
pub fn positive_seconds_f64(s: &str) -> Result<f64, String> {
    parse_positive_duration(s).map(|d| d.as_secs_f64())
}

/// A duration as `--help` shows a default (`30s`).
pub fn shown(d: Duration) -> String {
    format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_their_ranges() {
        assert_eq!(positive_u32("10"), Ok(10));
        assert!(positive_u32("0").is_err());
        assert!(positive_u32("-1").is_err());
        assert_eq!(fraction("0.99"), Ok(0.99));
        assert!(fraction("1.5").is_err() && fraction("NaN").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(non_negative("-0.1").is_err() && non_negative("inf").is_err());
        assert_eq!(seconds("8.0"), Ok(8.0));
        assert_eq!(seconds("500ms"), Ok(0.5));
        assert!(seconds("-1").is_err());
        assert_eq!(positive_seconds_f64("2.5"), Ok(2.5));
        assert!(positive_seconds_f64("0").is_err() && positive_seconds_f64("0s").is_err());
    }
}
