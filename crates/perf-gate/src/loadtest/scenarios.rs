//! Named scenario presets (`load-test --scenario NAME`, listed by `--list-scenarios`): seed 003's
//! Locust scenarios as `load-test` flag values. Locust's `--users U --spawn-rate S` is
//! `--concurrency U --ramp-up U/S s`; its `--run-time` is `--duration`; its user classes are
//! `--user-class` (see [`crate::runner::think`]).
//!
//! A preset sits below everything the user says: command line > env var > config file >
//! scenario > default, so `--scenario stress --duration 1m` is the stress scenario for a minute.

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The name given to `--scenario`.
    pub name: &'static str,
    /// What it is for (seed 003's words).
    pub purpose: &'static str,
    /// The flag values it sets (long names without `--`, values as on the command line).
    pub flags: &'static [(&'static str, &'static str)],
}

/// seed 003's scenarios, in its recommended order. `ramp` and `endurance` give no user count in
/// the seed: `ramp` climbs from 1 to 100 users over its 20 minutes (the degradation curve it is
/// for), `endurance` holds the medium load's 25 users for 30 minutes.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "smoke",
        purpose: "fast sanity check (5 users, 2 min)",
        flags: &[
            ("concurrency", "5"),
            ("ramp-up", "1s"),
            ("duration", "2m"),
            ("user-class", "standard"),
        ],
    },
    Scenario {
        name: "baseline",
        purpose: "establish baseline metrics (10 users, 5 min)",
        flags: &[
            ("concurrency", "10"),
            ("ramp-up", "5s"),
            ("duration", "5m"),
            ("user-class", "standard"),
        ],
    },
    Scenario {
        name: "medium",
        purpose: "typical production load (25 users, 10 min)",
        flags: &[
            ("concurrency", "25"),
            ("ramp-up", "5s"),
            ("duration", "10m"),
            ("user-class", "standard"),
        ],
    },
    Scenario {
        name: "ramp",
        purpose: "observe the degradation curve (1 to 100 users over 20 min)",
        flags: &[("stages", "20m:100"), ("user-class", "standard")],
    },
    Scenario {
        name: "high",
        purpose: "identify performance degradation (50 users, 10 min)",
        flags: &[
            ("concurrency", "50"),
            ("ramp-up", "5s"),
            ("duration", "10m"),
            ("user-class", "standard"),
        ],
    },
    Scenario {
        name: "burst",
        purpose: "spike handling (30 users in bursts, 10 min)",
        flags: &[
            ("concurrency", "30"),
            ("ramp-up", "1s"),
            ("duration", "10m"),
            ("user-class", "burst"),
        ],
    },
    Scenario {
        name: "stress",
        purpose: "find the breaking point (100 aggressive users, 15 min)",
        flags: &[
            ("concurrency", "100"),
            ("ramp-up", "5s"),
            ("duration", "15m"),
            ("user-class", "high"),
        ],
    },
    Scenario {
        name: "endurance",
        purpose: "stability over time (25 users, 30 min)",
        flags: &[
            ("concurrency", "25"),
            ("ramp-up", "5s"),
            ("duration", "30m"),
            ("user-class", "standard"),
        ],
    },
];

/// The preset called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static Scenario, String> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        format!(
            "unknown scenario {name:?}: use one of {} (see --list-scenarios)",
            known.join(", ")
        )
    })
}

/// The `--list-scenarios` table: name, purpose, and the flags each sets.
pub fn listing() -> String {
    let width = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Scenarios (seed 003; flags given on the command line, by env var or in --config win):\n",
    );
    for s in SCENARIOS {
        let flags: Vec<String> = s.flags.iter().map(|(k, v)| format!("--{k} {v}")).collect();
        out.push_str(&format!(
            "  {:width$}  {}\n  {:width$}  {}\n",
            s.name,
            s.purpose,
            "",
            flags.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_scenario_is_there_with_its_users_and_duration() {
        let get = |name: &str, flag: &str| {
            find(name)
                .unwrap()
                .flags
                .iter()
                .find(|(k, _)| *k == flag)
                .map(|(_, v)| *v)
        };
        for (name, users, duration) in [
            ("smoke", "5", "2m"),
            ("baseline", "10", "5m"),
            ("medium", "25", "10m"),
            ("high", "50", "10m"),
            ("stress", "100", "15m"),
            ("burst", "30", "10m"),
        ] {
            assert_eq!(get(name, "concurrency"), Some(users), "{name}");
            assert_eq!(get(name, "duration"), Some(duration), "{name}");
        }
        assert_eq!(get("stress", "user-class"), Some("high"));
        assert_eq!(get("burst", "user-class"), Some("burst"));
        assert_eq!(get("ramp", "stages"), Some("20m:100"));
        assert_eq!(get("endurance", "duration"), Some("30m"));
        assert_eq!(SCENARIOS.len(), 8);
        assert!(find("nope").unwrap_err().contains("smoke, baseline"));
        let l = listing();
        assert!(
            l.contains("stress") && l.contains("--concurrency 100"),
            "{l}"
        );
    }
}
