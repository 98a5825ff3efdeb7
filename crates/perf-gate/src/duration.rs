//! Durations as the gate's flags, env vars and files write them: a bare number of seconds
//! (`8.0`, as the seed passes them) or a humantime string (`90s`, `2m`, `500ms`).

use std::time::Duration;

/// Parses a non-negative duration: bare seconds (`8.0`) or humantime (`90s`, `1m 30s`).
/// The error is a short sentence suitable for a flag's error line.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("{s:?} seconds is too long"));
        }
        return Err(format!("{s:?} is not a non-negative number of seconds"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}); use seconds (30) or 30s, 2m"))
}

/// [`parse_duration`] that refuses zero.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be more than 0")),
        d => Ok(d),
    }
}

/// A duration as its flags take it back: whole seconds as `30s`, otherwise humantime (`1.5s`
/// prints as `1s 500ms`). For `--help` defaults and messages.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_or_humantime() {
        assert_eq!(parse_duration("8.0").unwrap(), Duration::from_secs(8));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration(" 50ms ").unwrap(), Duration::from_millis(50));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("1e20").is_err(),
            "too long must be an error, not a panic"
        );
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(
            parse_positive_duration("1").unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn formatted_durations_parse_back() {
        for d in [
            Duration::from_secs(30),
            Duration::from_millis(1500),
            Duration::from_secs(300),
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }
}
