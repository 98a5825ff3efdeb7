//! The metric history of passed runs, for the drift check and the report (pure: tested without
//! MLflow). Only runs that measured the same load as the candidate and were judged on the same
//! figures count (a history across loads would drift by design); overrides (no measurement) and
//! inconclusive passes are left out, as they are as baselines.

use super::baseline::baseline_from_run;
use crate::decision::comparability::compare;
use crate::decision::drift::{Direction, DriftResult, DriftRule, PastRun, drift_check};
use crate::decision::load_settings::{LoadSettings, keys};
use crate::decision::metrics::{CheckKeys, MetricMap};
use crate::decision::thresholds::Thresholds;
use crate::mlflow::types::Run;
use crate::report::HistoryPoint;

/// The passed runs that make the history: same load, same figures, measured, conclusive.
/// `runs` in any order; the result oldest first.
pub(crate) fn comparable_history<'a>(
    runs: &'a [Run],
    candidate_settings: &LoadSettings,
    candidate_version: Option<&str>,
) -> Vec<&'a Run> {
    let mut out: Vec<&Run> = runs
        .iter()
        .filter(|r| r.data.tag(super::override_decision::OVERRIDE_TAG) != Some("true"))
        .filter(|r| r.data.tag(super::plan::PERF_VERDICT_TAG) != Some("inconclusive"))
        .filter(|r| {
            candidate_version.is_none() || r.data.param("candidate_version") != candidate_version
        })
        .filter(|r| {
            let b = baseline_from_run(r);
            compare(candidate_settings, &b.load_settings).comparable
                && b.load_settings.get(keys::METRICS_SOURCE)
                    == candidate_settings.get(keys::METRICS_SOURCE)
        })
        .collect();
    out.sort_by_key(|r| r.info.start_time.unwrap_or(0));
    out
}

/// The drift verdict of each metric checks 1–3 read, each with its own relative tolerance as
/// the drift limit.
pub(crate) fn drift(
    history: &[&Run],
    candidate: &MetricMap,
    keys: &CheckKeys,
    thresholds: &Thresholds,
    now_ms: i64,
    lookback_ms: i64,
) -> Vec<DriftResult> {
    let judged = [
        (&keys.p95_latency, thresholds.max_latency_regression),
        (&keys.p95_ttft, thresholds.max_ttft_regression),
        (&keys.throughput, thresholds.max_throughput_drop),
    ];
    judged
        .into_iter()
        .map(|(metric, tolerance)| {
            let past: Vec<PastRun> = history
                .iter()
                .filter_map(|r| {
                    Some(PastRun {
                        run_id: r.info.run_id.clone(),
                        start_time_ms: r.info.start_time?,
                        value: r.data.metric(metric)?,
                    })
                })
                .collect();
            let rule = DriftRule {
                tolerance,
                lookback_ms,
                ..DriftRule::default()
            };
            drift_check(
                metric,
                Direction::of_metric(metric),
                &past,
                candidate.get(metric.as_str()).and_then(|m| m.get()),
                now_ms,
                &rule,
            )
        })
        .collect()
}

/// The history as the report plots it: each run's version, start time and judged metrics.
pub(crate) fn report_points(history: &[&Run], keys: &CheckKeys) -> Vec<HistoryPoint> {
    history
        .iter()
        .map(|r| HistoryPoint {
            run_id: r.info.run_id.clone(),
            label: r.data.param("candidate_version").map_or_else(
                || r.info.run_id.chars().take(8).collect(),
                |v| format!("v{v}"),
            ),
            time: r.info.start_time.and_then(|ms| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
            values: [&keys.p95_latency, &keys.p95_ttft, &keys.throughput]
                .into_iter()
                .filter_map(|k| Some((k.clone(), r.data.metric(k)?)))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::load_settings::candidate_settings;
    use crate::decision::metrics::MetricsSource;
    use crate::fixtures;
    use crate::results::Measured;

    const DAY_MS: i64 = 86_400_000;

    /// A passed run of version `v`, `days` old at `now`, with P95 latency `p95` (s).
    fn run(
        id: &str,
        v: u32,
        days: i64,
        p95: f64,
        settings: &LoadSettings,
        tags: &[(&str, &str)],
    ) -> Run {
        let mut params: Vec<serde_json::Value> = settings
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        params.push(serde_json::json!({"key": "candidate_version", "value": v.to_string()}));
        let tags: Vec<serde_json::Value> = tags
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "info": {"run_id": id, "experiment_id": "1", "start_time": NOW - days * DAY_MS},
            "data": {
                "params": params,
                "tags": tags,
                "metrics": [
                    {"key": "p95_latency_s", "value": p95},
                    {"key": "p95_ttft_s", "value": 0.5},
                    {"key": "throughput_rps", "value": 5.0}
                ]
            }
        }))
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_weekly_creep_of_ten_percent_is_flagged_against_the_runs_of_a_month_ago() {
        let s = candidate_settings(&fixtures::results(), MetricsSource::Server);
        // weekly releases, each 10 % slower than the one before, all passed step to step
        let runs: Vec<Run> = (0..6)
            .map(|i| {
                let days = 7 * (6 - i64::from(i));
                run(
                    &format!("r{i}"),
                    i + 1,
                    days,
                    4.0 * 1.1f64.powi(i as i32),
                    &s,
                    &[],
                )
            })
            .collect();
        // noise the history must ignore: another load, an override, an inconclusive pass
        let mut other = s.clone();
        other.insert("concurrency".into(), "99".into());
        let mut all = runs.clone();
        all.push(run("other-load", 90, 3, 1.0, &other, &[]));
        all.push(run(
            "override",
            91,
            2,
            1.0,
            &s,
            &[("perf_override", "true")],
        ));
        all.push(run(
            "unsure",
            92,
            1,
            1.0,
            &s,
            &[("perf_verdict", "inconclusive")],
        ));
        let history = comparable_history(&all, &s, Some("7"));
        let ids: Vec<&str> = history.iter().map(|r| r.info.run_id.as_str()).collect();
        assert_eq!(
            ids,
            ["r0", "r1", "r2", "r3", "r4", "r5"],
            "oldest first, noise left out"
        );

        let keys = CheckKeys::for_source(MetricsSource::Server);
        // the candidate another 10 % slower: 1.1 x the newest, 4.0 x 1.1^6 = 7.09 s
        let mut candidate = MetricMap::new();
        candidate.insert(
            "p95_latency_s".into(),
            Measured::value(4.0 * 1.1f64.powi(6)),
        );
        candidate.insert("p95_ttft_s".into(), Measured::value(0.5));
        candidate.insert("throughput_rps".into(), Measured::value(5.0));
        let d = drift(
            &history,
            &candidate,
            &keys,
            &Thresholds::SEED,
            NOW,
            28 * DAY_MS,
        );
        let latency = &d[0];
        assert_eq!(latency.metric, "p95_latency_s");
        // the runs at least 28 days old: r0 (42 d), r1 (35 d), r2 (28 d); median r1 = 4.4 s
        assert_eq!(latency.reference_runs, ["r0", "r1", "r2"]);
        assert!((latency.reference_value.unwrap() - 4.4).abs() < 1e-9);
        assert!(latency.flagged, "{}", latency.reason);
        assert!(
            !d[1].flagged && !d[2].flagged,
            "flat TTFT and throughput do not drift"
        );
        let points = report_points(&history, &keys);
        assert_eq!(points.len(), 6);
        assert_eq!(points[0].label, "v1");
        assert_eq!(points[5].values["p95_latency_s"], 4.0 * 1.1f64.powi(5));
    }
}
