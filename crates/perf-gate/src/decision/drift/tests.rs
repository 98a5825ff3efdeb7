use super::*;

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
const T0: i64 = 1_790_000_000_000;

/// Weekly runs `r0, r1, ...` with `values`.
fn weekly(values: &[f64]) -> Vec<PastRun> {
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| PastRun {
            run_id: format!("r{i}"),
            start_time_ms: T0 + i as i64 * WEEK_MS,
            value,
        })
        .collect()
}

/// Run `n` judged as the candidate against the runs before it.
fn judge_step(runs: &[PastRun], n: usize, direction: Direction) -> DriftResult {
    drift_check(
        "m",
        direction,
        &runs[..n],
        Some(runs[n].value),
        runs[n].start_time_ms,
        &DriftRule::default(),
    )
}

/// The rule written out independently of the implementation: the first step (with at least
/// one run 28 days older) whose value is beyond 1.15x (or below 0.85x) the median of the
/// newest three runs at least 28 days older.
fn first_beyond(runs: &[PastRun], direction: Direction) -> usize {
    (1..runs.len())
        .find(|&n| {
            let mut old: Vec<f64> = runs[..n]
                .iter()
                .filter(|r| r.start_time_ms <= runs[n].start_time_ms - 28 * 24 * 3600 * 1000)
                .map(|r| r.value)
                .collect();
            if old.is_empty() {
                return false;
            }
            let old = old.split_off(old.len().saturating_sub(3));
            let mut sorted = old;
            sorted.sort_by(f64::total_cmp);
            let mid = sorted.len() / 2;
            let reference = if sorted.len() % 2 == 1 {
                sorted[mid]
            } else {
                (sorted[mid - 1] + sorted[mid]) / 2.0
            };
            match direction {
                Direction::HigherIsWorse => runs[n].value > reference * 1.15,
                Direction::LowerIsWorse => runs[n].value < reference * 0.85,
            }
        })
        .expect("the creep crosses the limit")
}

/// Eight flat weeks at `start`, then `creep` steps each multiplying the value by `factor`.
fn flat_then_creep(start: f64, factor: f64, creep: usize) -> Vec<PastRun> {
    let mut values = vec![start; 8];
    for _ in 0..creep {
        let last = *values.last().expect("non-empty");
        values.push(last * factor);
    }
    weekly(&values)
}

#[test]
fn latency_creeping_ten_percent_a_week_is_flagged_at_the_first_step_beyond_the_month_ago_reference()
{
    let runs = flat_then_creep(1.0, 1.10, 6);
    // each step passes the step-to-step 15 % bound
    for w in runs.windows(2) {
        assert!(
            w[1].value <= w[0].value * 1.15,
            "{} -> {}",
            w[0].value,
            w[1].value
        );
    }
    let expected = first_beyond(&runs, Direction::HigherIsWorse);
    // by hand: the month-ago reference is still the flat 1.0; 1.1 is within, 1.21 beyond
    assert_eq!(expected, 9);

    let flagged = judge_step(&runs, expected, Direction::HigherIsWorse);
    assert!(flagged.flagged, "{}", flagged.reason);
    assert_eq!(flagged.basis, Some(ReferenceBasis::Lookback));
    assert_eq!(flagged.reference_value, Some(1.0));
    assert_eq!(flagged.reference_runs, ["r3", "r4", "r5"]);
    assert!((flagged.ratio.expect("ratio") - 1.21).abs() < 1e-9);
    assert_eq!(flagged.limit, 1.15);
    assert!(
        flagged.reason.contains("beyond the 1.15x drift limit"),
        "{}",
        flagged.reason
    );

    for n in 1..expected {
        let before = judge_step(&runs, n, Direction::HigherIsWorse);
        assert!(!before.flagged, "step {n}: {}", before.reason);
    }
    for n in expected..runs.len() {
        assert!(
            judge_step(&runs, n, Direction::HigherIsWorse).flagged,
            "step {n}"
        );
    }
}

#[test]
fn throughput_declining_ten_percent_a_week_is_flagged_symmetrically() {
    let runs = flat_then_creep(100.0, 0.90, 6);
    for w in runs.windows(2) {
        assert!(
            w[1].value >= w[0].value * 0.85,
            "{} -> {}",
            w[0].value,
            w[1].value
        );
    }
    let expected = first_beyond(&runs, Direction::LowerIsWorse);
    assert_eq!(expected, 9, "90 is within 0.85x of 100, 81 below");

    let flagged = judge_step(&runs, expected, Direction::LowerIsWorse);
    assert!(flagged.flagged, "{}", flagged.reason);
    assert_eq!(flagged.limit, 0.85);
    assert!(!judge_step(&runs, expected - 1, Direction::LowerIsWorse).flagged);
    // the same decline read as a latency (lower is better) is never drift
    assert!(!judge_step(&runs, expected, Direction::HigherIsWorse).flagged);
}

#[test]
fn flat_noisy_history_is_never_flagged() {
    // ±6 % of deterministic noise around 2.0 for 30 weeks
    let values: Vec<f64> = (0..30)
        .map(|i| 2.0 * (1.0 + 0.06 * (i as f64 * 2.3).sin()))
        .collect();
    let runs = weekly(&values);
    for direction in [Direction::HigherIsWorse, Direction::LowerIsWorse] {
        for n in 1..runs.len() {
            let r = judge_step(&runs, n, direction);
            assert!(!r.flagged, "step {n} {direction:?}: {}", r.reason);
            assert_eq!(r.change_point, None, "step {n}");
        }
    }
}

#[test]
fn fewer_than_two_runs_give_no_verdict() {
    let runs = weekly(&[1.0]);
    for history in [&runs[..0], &runs[..1]] {
        let r = drift_check(
            "p95_latency_s",
            Direction::HigherIsWorse,
            history,
            Some(100.0),
            T0 + 100 * WEEK_MS,
            &DriftRule::default(),
        );
        assert!(!r.flagged);
        assert_eq!(r.reference_value, None);
        assert_eq!(r.basis, None);
        assert!(r.reason.starts_with("no drift verdict:"), "{}", r.reason);
        assert!(r.reason.contains("at least 2 needed"), "{}", r.reason);
    }
}

#[test]
fn a_candidate_without_the_metric_gets_no_verdict() {
    let runs = weekly(&[1.0, 1.0, 1.0]);
    let r = drift_check(
        "p95_latency_s",
        Direction::HigherIsWorse,
        &runs,
        None,
        T0 + 10 * WEEK_MS,
        &DriftRule::default(),
    );
    assert!(!r.flagged);
    assert_eq!(
        r.reason,
        "no drift verdict: the candidate has no p95_latency_s"
    );
}

#[test]
fn a_short_history_uses_its_oldest_runs_and_says_so() {
    // four runs within the last three weeks, the history's order shuffled
    let mut runs = weekly(&[1.0, 1.02, 0.98, 1.1]);
    runs.swap(0, 3);
    let r = drift_check(
        "m",
        Direction::HigherIsWorse,
        &runs,
        Some(1.2),
        T0 + 3 * WEEK_MS + 1,
        &DriftRule::default(),
    );
    assert_eq!(r.basis, Some(ReferenceBasis::OldestRuns));
    assert_eq!(r.reference_runs, ["r0", "r1", "r2"]);
    assert_eq!(r.reference_value, Some(1.0));
    assert!(r.flagged, "{}", r.reason);
    assert!(
        r.reason.contains("does not reach 28 days back"),
        "{}",
        r.reason
    );
}

#[test]
fn one_outlier_among_the_old_runs_does_not_move_the_reference() {
    // a lucky old run (0.5) would flag 1.0 against itself; the median of three ignores it
    let runs = weekly(&[1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]);
    let r = judge_step(&runs, 6, Direction::HigherIsWorse);
    assert_eq!(r.reference_runs, ["r0", "r1", "r2"]);
    assert_eq!(r.reference_value, Some(1.0));
    assert!(!r.flagged, "{}", r.reason);
}

#[test]
fn the_limit_itself_is_within() {
    let runs = weekly(&[3.0, 3.0, 3.0, 3.0, 3.0]);
    // 3.0 * 1.15 is 3.4499999999999997 in binary; 3.45 must not be flagged
    let r = drift_check(
        "m",
        Direction::HigherIsWorse,
        &runs,
        Some(3.45),
        T0 + 5 * WEEK_MS,
        &DriftRule::default(),
    );
    assert!(!r.flagged, "{}", r.reason);
}

#[test]
fn a_step_change_is_located_for_information() {
    let mut values = vec![1.0; 6];
    values.extend([1.3; 3]);
    let runs = weekly(&values);
    let r = drift_check(
        "m",
        Direction::HigherIsWorse,
        &runs,
        Some(1.3),
        T0 + 9 * WEEK_MS,
        &DriftRule::default(),
    );
    let cp = r.change_point.expect("a change point");
    assert_eq!((cp.index, cp.first_after.as_str()), (6, "r6"));
    assert!((cp.mean_before - 1.0).abs() < 1e-12, "{cp:?}");
    assert!((cp.mean_after - 1.3).abs() < 1e-12, "{cp:?}");
}

#[test]
fn the_result_serialises_with_snake_case_names() {
    let runs = flat_then_creep(1.0, 1.1, 2);
    let json =
        serde_json::to_value(judge_step(&runs, 9, Direction::HigherIsWorse)).expect("serialisable");
    assert_eq!(json["basis"], "lookback");
    assert_eq!(json["direction"], "higher_is_worse");
    assert_eq!(json["flagged"], true);
}

#[test]
fn directions_follow_the_metric_names() {
    use Direction::*;
    for (name, d) in [
        ("p95_latency_s", HigherIsWorse),
        ("client_p95_ttft_s", HigherIsWorse),
        ("throughput_rps", LowerIsWorse),
        ("client_throughput_rps", LowerIsWorse),
        ("client_success_rate", LowerIsWorse),
    ] {
        assert_eq!(Direction::of_metric(name), d, "{name}");
    }
}

fn map(entries: &[(&str, Option<f64>)]) -> MetricMap {
    entries
        .iter()
        .map(|(k, v)| {
            let m = match v {
                Some(v) => Measured::value(*v),
                None => Measured::missing("no samples"),
            };
            (k.to_string(), m)
        })
        .collect()
}

#[test]
fn median_metrics_takes_each_metrics_median() {
    let runs = [
        map(&[("a", Some(3.0)), ("b", Some(10.0))]),
        map(&[("a", Some(1.0)), ("b", Some(40.0))]),
        map(&[("a", Some(2.0)), ("b", Some(20.0))]),
    ];
    let m = median_metrics(&runs);
    assert_eq!(m["a"], Measured::value(2.0));
    assert_eq!(m["b"], Measured::value(20.0));
    let even = median_metrics(&runs[..2]);
    assert_eq!(even["a"], Measured::value(2.0));
    assert_eq!(even["b"], Measured::value(25.0));
}

#[test]
fn median_metrics_fails_closed_on_a_metric_missing_in_any_run() {
    let runs = [
        map(&[("a", Some(1.0)), ("b", Some(1.0))]),
        map(&[("a", None), ("b", Some(1.0))]),
        map(&[("a", Some(1.0))]),
    ];
    let m = median_metrics(&runs);
    assert_eq!(m["a"].get(), None);
    assert_eq!(
        m["a"].reason.as_deref(),
        Some("a is missing in 1 of the 3 baseline runs (run 2: no samples)")
    );
    assert_eq!(m["b"].get(), None);
    assert_eq!(
        m["b"].reason.as_deref(),
        Some("b is missing in 1 of the 3 baseline runs (run 3: absent)")
    );
    assert!(median_metrics(&[]).is_empty());
}
