//! [`Seconds`]: a duration flag whose default is a library constant, shown in `--help`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use perf_gate::duration::{format_duration, parse_duration};

/// A duration flag value: bare seconds (`8.0`) or humantime (`90s`); displays as humantime,
/// so `#[arg(default_value_t = Seconds(LIBRARY_DEFAULT))]` keeps one source for each default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Seconds)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A [`Seconds`] flag value that must be more than zero.
pub fn positive_seconds(s: &str) -> Result<Seconds, String> {
    perf_gate::duration::parse_positive_duration(s).map(Seconds)
}

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_display() {
        for d in [
            Duration::from_secs(300),
            Duration::from_millis(1500),
            Duration::ZERO,
        ] {
            assert_eq!(Seconds(d).to_string().parse::<Seconds>(), Ok(Seconds(d)));
        }
        assert_eq!(Seconds(Duration::from_secs(300)).to_string(), "5m");
        assert_eq!(
            "8.0".parse::<Seconds>(),
            Ok(Seconds(Duration::from_secs(8)))
        );
    }
}
