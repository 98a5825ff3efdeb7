//! The window's two edges, anchored on confirmed scrape samples (README "Windows").
//!
//! - **Before the load**, for every target: its last sample taken before the load started must
//!   be newer than the pre-flight and any warm-up (`ready`), show nothing running or waiting,
//!   and the same finished-request count as the sample before it. Then everything earlier
//!   (the warm-up, a previous run still being recorded) is in that sample's counters and
//!   nothing of the load is: the counters read at the load's start are its baseline.
//! - **After the load**, the evaluation time `T` is the first scrape time at which every
//!   target's last sample is newer than the load's end, shows nothing running or waiting, and
//!   the finished counts have grown by at least the requests the client saw succeed (vLLM
//!   records a request just after sending its last chunk). Reading the counters at `T` then
//!   sees every request of the load.
//!
//! A target with no sample at all before the load's start was born during it: its counters
//! start from 0 and it is counted exactly. These rules are pure functions of the scraped
//! samples ([`super::timeline::Timelines`]), so they are tested on backfilled data at any
//! scrape interval without waiting; [`super::PrometheusCollector::await_left_edges`] and
//! [`super::PrometheusCollector::collect_confirmed`] poll Prometheus until they hold.

use std::collections::BTreeMap;

use super::timeline::{Scrape, Timelines};

/// A target's last sample before the load: the left edge of its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Before {
    /// A confirmed sample.
    Sample(Scrape),
    /// No sample before the load at all: the target appeared during it (counted from 0).
    Born,
}

/// Why an edge is not confirmed (yet), one line per target.
pub type Unconfirmed = Vec<String>;

/// The problem of a target whose last sample before the load is not newer than `ready`
/// (the pre-flight and warm-up; in a merged sweep, the previous step's last request): the
/// line reads `{target}: {STALE_BEFORE} (last at ...)`.
pub const STALE_BEFORE: &str = "no sample taken after the pre-flight and warm-up";

/// The problem of a target with no sample after the load (yet, or before the bound of a merged
/// sweep's next step): the line reads `{target}: {NONE_AFTER}`, or is this alone when no
/// target has one.
pub const NONE_AFTER: &str = "no sample taken after the load yet";

fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// The left edge of every target for a load that starts at `start_ms`, the pre-flight and
/// warm-up having ended at `ready_ms` (see the module docs), and why an edge is not confirmed
/// (empty: every edge is). A target whose edge is not confirmed still gets its last sample
/// before the load, so the figures can be computed (and reported as untrusted).
pub fn before_edges(
    tl: &Timelines,
    ready_ms: i64,
    start_ms: i64,
) -> (BTreeMap<String, Before>, Unconfirmed) {
    let mut edges = BTreeMap::new();
    let mut problems = Vec::new();
    if tl.targets.is_empty() {
        problems.push("Prometheus has no sample of any target of the job yet".to_string());
    }
    for (target, scrapes) in &tl.targets {
        let mut earlier = scrapes.iter().rev().filter(|s| s.ts_ms <= start_ms);
        let Some(last) = earlier.next() else {
            edges.insert(target.clone(), Before::Born);
            continue;
        };
        let previous = earlier.find(|s| s.has_vllm);
        edges.insert(target.clone(), Before::Sample(*last));
        if last.ts_ms <= ready_ms {
            problems.push(format!(
                "{target}: {STALE_BEFORE} (last at {})",
                at(last.ts_ms)
            ));
        } else if last.up == Some(0.0) {
            problems.push(format!("{target}: down at {} (up = 0)", at(last.ts_ms)));
        } else if !last.has_vllm {
            problems.push(format!(
                "{target}: its sample at {} has no vLLM series",
                at(last.ts_ms)
            ));
        } else if !last.is_quiet() {
            problems.push(format!(
                "{target}: {} running and {} waiting at {}",
                last.running,
                last.waiting,
                at(last.ts_ms)
            ));
        } else if let Some(p) = previous.filter(|p| p.finished != last.finished) {
            problems.push(format!(
                "{target}: {} requests finished between its samples at {} and {} (the warm-up or other traffic was still being recorded)",
                last.finished - p.finished,
                at(p.ts_ms),
                at(last.ts_ms)
            ));
        } else if previous.is_none() && last.finished != 0.0 {
            problems.push(format!(
                "{target}: one sample only, already counting {} finished requests",
                last.finished
            ));
        }
    }
    (edges, problems)
}

/// The right edge: the evaluation time `T` (unix ms) and every target's last sample at `T`,
/// for a load that ended at `end_ms` with `client_successes` requests the client saw succeed.
pub fn after_edge(
    tl: &Timelines,
    before: &BTreeMap<String, Before>,
    end_ms: i64,
    client_successes: f64,
) -> Result<(i64, BTreeMap<String, Scrape>), Unconfirmed> {
    let baseline: f64 = before
        .values()
        .map(|b| match b {
            Before::Sample(s) => s.finished,
            Before::Born => 0.0,
        })
        .sum();
    let mut candidates: Vec<i64> = tl
        .targets
        .values()
        .flatten()
        .map(|s| s.ts_ms)
        .filter(|t| *t > end_ms)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut last_problems = vec![NONE_AFTER.to_string()];
    for t in candidates {
        let mut problems = Vec::new();
        let mut edge = BTreeMap::new();
        let mut finished = 0.0;
        for (target, scrapes) in &tl.targets {
            let latest = scrapes.iter().rev().find(|s| s.ts_ms <= t);
            match latest {
                Some(s) if s.ts_ms > end_ms && s.is_quiet() => {
                    finished += s.finished;
                    edge.insert(target.clone(), *s);
                }
                Some(s) if s.ts_ms > end_ms => problems.push(format!(
                    "{target}: {} running and {} waiting at {}",
                    s.running,
                    s.waiting,
                    at(s.ts_ms)
                )),
                _ if !before.contains_key(target) && !scrapes.iter().any(|s| s.has_vllm) => {
                    // a target that never exposed vLLM's series (and was not there before)
                }
                _ => problems.push(format!("{target}: {NONE_AFTER}")),
            }
        }
        let grown = finished - baseline;
        if problems.is_empty() && grown < client_successes {
            problems.push(format!(
                "the servers have counted {grown} finished requests since the load began, the client saw {client_successes} succeed: waiting for vLLM to record them"
            ));
        }
        if problems.is_empty() {
            return Ok((t, edge));
        }
        last_problems = problems;
    }
    Err(last_problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(ts_s: f64, running: f64, finished: f64) -> Scrape {
        Scrape {
            ts_ms: (ts_s * 1000.0) as i64,
            up: Some(1.0),
            running,
            waiting: 0.0,
            finished,
            has_vllm: true,
            has_running: true,
            has_waiting: true,
        }
    }

    fn one(target: &str, scrapes: Vec<Scrape>) -> Timelines {
        Timelines {
            targets: [(target.to_string(), scrapes)].into(),
        }
    }

    #[test]
    fn the_left_edge_is_the_last_quiet_unchanged_sample_after_ready() {
        // 15 s scrape; warm-up recorded at 30; ready at 32; load starts at 50
        let tl = one(
            "a",
            vec![
                scrape(15.0, 1.0, 0.0),
                scrape(30.0, 0.0, 3.0),
                scrape(45.0, 0.0, 3.0),
            ],
        );
        let (edges, problems) = before_edges(&tl, 32_000, 50_000);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(edges["a"], Before::Sample(scrape(45.0, 0.0, 3.0)));
        // starting at 44 s: the last sample (30) is older than ready
        let (edges, e) = before_edges(&tl, 32_000, 44_000);
        assert_eq!(edges["a"], Before::Sample(scrape(30.0, 0.0, 3.0)));
        assert!(
            e[0].contains("no sample taken after the pre-flight"),
            "{e:?}"
        );
    }

    #[test]
    fn a_warm_up_still_being_recorded_is_not_a_left_edge() {
        let tl = one("a", vec![scrape(30.0, 0.0, 2.0), scrape(45.0, 0.0, 3.0)]);
        let (_, e) = before_edges(&tl, 32_000, 50_000);
        assert!(e[0].contains("1 requests finished between"), "{e:?}");
        let busy = one("a", vec![scrape(30.0, 0.0, 2.0), scrape(45.0, 2.0, 2.0)]);
        let (_, e) = before_edges(&busy, 32_000, 50_000);
        assert!(e[0].contains("2 running"), "{e:?}");
    }

    #[test]
    fn a_target_with_no_sample_before_the_load_is_born_inside_it() {
        let tl = one("new", vec![scrape(60.0, 0.0, 4.0)]);
        let (edges, problems) = before_edges(&tl, 32_000, 50_000);
        assert!(problems.is_empty());
        assert_eq!(edges["new"], Before::Born);
        let (t, after) = after_edge(&tl, &edges, 55_000, 4.0).unwrap();
        assert_eq!((t, after["new"].finished), (60_000, 4.0));
    }

    #[test]
    fn t_waits_for_quiet_samples_and_for_the_counts_to_catch_up() {
        let before: BTreeMap<_, _> =
            [("a".to_string(), Before::Sample(scrape(45.0, 0.0, 3.0)))].into();
        // load 50..80; at 90 still running; at 105 quiet but one request not yet counted
        let tl = one(
            "a",
            vec![
                scrape(45.0, 0.0, 3.0),
                scrape(60.0, 4.0, 8.0),
                scrape(75.0, 4.0, 15.0),
                scrape(90.0, 1.0, 22.0),
                scrape(105.0, 0.0, 22.0),
                scrape(120.0, 0.0, 23.0),
            ],
        );
        let (t, edge) = after_edge(&tl, &before, 80_000, 20.0).unwrap();
        assert_eq!((t, edge["a"].finished), (120_000, 23.0));
        let (t, _) = after_edge(&tl, &before, 80_000, 19.0).unwrap();
        assert_eq!(t, 105_000);
        let e = after_edge(&tl, &before, 80_000, 21.0).unwrap_err();
        assert!(e[0].contains("counted 20 finished"), "{e:?}");
    }

    #[test]
    fn t_needs_every_target_past_the_load() {
        let before: BTreeMap<_, _> = [
            ("a".to_string(), Before::Sample(scrape(45.0, 0.0, 0.0))),
            ("b".to_string(), Before::Sample(scrape(40.0, 0.0, 0.0))),
        ]
        .into();
        let tl = Timelines {
            targets: [
                (
                    "a".to_string(),
                    vec![scrape(45.0, 0.0, 0.0), scrape(90.0, 0.0, 5.0)],
                ),
                (
                    "b".to_string(),
                    vec![scrape(40.0, 0.0, 0.0), scrape(70.0, 0.0, 5.0)],
                ),
            ]
            .into(),
        };
        // b's sample at 70 is before the load's end at 80
        let e = after_edge(&tl, &before, 80_000, 5.0).unwrap_err();
        assert!(
            e.iter()
                .any(|l| l.starts_with("b: no sample taken after the load")),
            "{e:?}"
        );
        let mut tl = tl;
        tl.targets
            .get_mut("b")
            .unwrap()
            .push(scrape(100.0, 0.0, 5.0));
        let (t, edge) = after_edge(&tl, &before, 80_000, 10.0).unwrap();
        assert_eq!((t, edge.len()), (100_000, 2));
    }
}
