//! Decision tables: every check at, just under and just over each limit, in both modes.

use rstest::rstest;

use super::*;
use crate::decision::metrics::{MetricsSource, names};

/// A candidate that passes everything comfortably.
fn good() -> MetricMap {
    let mut m = MetricMap::new();
    m.insert(names::P95_LATENCY.into(), Measured::value(4.0));
    m.insert(names::P95_TTFT.into(), Measured::value(1.0));
    m.insert(names::THROUGHPUT.into(), Measured::value(10.0));
    m.insert(names::CLIENT_SUCCESS_RATE.into(), Measured::value(1.0));
    m
}

fn with(key: &str, v: f64) -> MetricMap {
    let mut m = good();
    m.insert(key.into(), Measured::value(v));
    m
}

fn keys() -> CheckKeys {
    CheckKeys::for_source(MetricsSource::Server)
}

fn check(eval: &Evaluation, name: CheckName) -> &CheckResult {
    eval.checks.iter().find(|c| c.name == name).unwrap()
}

#[rstest]
// check 1: P95 latency < 8.0 (strict)
#[case(names::P95_LATENCY, CheckName::P95Latency, 8.0, false)]
#[case(names::P95_LATENCY, CheckName::P95Latency, 7.999, true)]
#[case(names::P95_LATENCY, CheckName::P95Latency, 8.001, false)]
// check 2: P95 TTFT < 2.0 (strict)
#[case(names::P95_TTFT, CheckName::P95Ttft, 2.0, false)]
#[case(names::P95_TTFT, CheckName::P95Ttft, 1.999, true)]
#[case(names::P95_TTFT, CheckName::P95Ttft, 2.001, false)]
// check 3: throughput > 2.0 (strict)
#[case(names::THROUGHPUT, CheckName::Throughput, 2.0, false)]
#[case(names::THROUGHPUT, CheckName::Throughput, 1.999, false)]
#[case(names::THROUGHPUT, CheckName::Throughput, 2.001, true)]
// check 4: success rate >= 0.99 (inclusive)
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate, 0.99, true)]
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate, 0.9899, false)]
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate, 0.9901, true)]
fn absolute_limits(
    #[case] key: &str,
    #[case] name: CheckName,
    #[case] value: f64,
    #[case] passes: bool,
) {
    let eval = decide(&with(key, value), None, &Thresholds::default(), &keys());
    assert_eq!(eval.mode, Mode::Absolute);
    let c = check(&eval, name);
    assert_eq!(c.passed, passes, "{}", c.reason);
    assert_eq!(c.value, Some(value));
    assert_eq!(c.relative_limit, None);
    assert_eq!(c.baseline_value, None);
    assert_eq!(
        eval.verdict,
        if passes {
            Verdict::Passed
        } else {
            Verdict::Failed
        }
    );
    // the other three checks are unaffected
    assert_eq!(
        eval.checks.iter().filter(|c| !c.passed).count(),
        usize::from(!passes)
    );
}

#[rstest]
// check 1: <= baseline 4.0 x 1.15 = 4.6 (inclusive; 4.6 written in decimal must pass)
#[case(names::P95_LATENCY, CheckName::P95Latency, 4.0, 4.6, true)]
#[case(names::P95_LATENCY, CheckName::P95Latency, 4.0, 4.599, true)]
#[case(names::P95_LATENCY, CheckName::P95Latency, 4.0, 4.601, false)]
// check 2: <= baseline 1.0 x 1.15 = 1.15
#[case(names::P95_TTFT, CheckName::P95Ttft, 1.0, 1.15, true)]
#[case(names::P95_TTFT, CheckName::P95Ttft, 1.0, 1.149, true)]
#[case(names::P95_TTFT, CheckName::P95Ttft, 1.0, 1.151, false)]
// check 3: >= baseline 10 x 0.85 = 8.5
#[case(names::THROUGHPUT, CheckName::Throughput, 10.0, 8.5, true)]
#[case(names::THROUGHPUT, CheckName::Throughput, 10.0, 8.499, false)]
#[case(names::THROUGHPUT, CheckName::Throughput, 10.0, 8.501, true)]
// check 4: >= baseline 0.995
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate, 0.995, 0.995, true)]
#[case(
    names::CLIENT_SUCCESS_RATE,
    CheckName::SuccessRate,
    0.995,
    0.9949,
    false
)]
#[case(
    names::CLIENT_SUCCESS_RATE,
    CheckName::SuccessRate,
    0.995,
    0.9951,
    true
)]
fn relative_limits(
    #[case] key: &str,
    #[case] name: CheckName,
    #[case] baseline: f64,
    #[case] value: f64,
    #[case] passes: bool,
) {
    let base = with(key, baseline);
    let eval = decide(
        &with(key, value),
        Some(&base),
        &Thresholds::default(),
        &keys(),
    );
    assert_eq!(eval.mode, Mode::Comparative);
    let c = check(&eval, name);
    assert_eq!(c.passed, passes, "{}", c.reason);
    assert_eq!(c.baseline_value, Some(baseline));
    assert!(c.relative_limit.is_some());
    if !passes {
        assert!(c.reason.contains("baseline"), "{}", c.reason);
    }
}

#[test]
fn relative_limits_are_reported() {
    let base = good();
    let eval = decide(&good(), Some(&base), &Thresholds::default(), &keys());
    assert_eq!(eval.verdict, Verdict::Passed);
    let lat = check(&eval, CheckName::P95Latency);
    assert!((lat.relative_limit.unwrap() - 4.6).abs() < 1e-9);
    assert_eq!(lat.absolute_op, Op::Lt);
    assert_eq!(lat.relative_op, Op::Le);
    assert_eq!(
        lat.reason,
        "p95_latency_s = 4 s is < 8 s (absolute) and <= 4.6 s (baseline 4 s x 1.15)"
    );
    let thr = check(&eval, CheckName::Throughput);
    assert!((thr.relative_limit.unwrap() - 8.5).abs() < 1e-9);
    let sr = check(&eval, CheckName::SuccessRate);
    assert_eq!(sr.relative_limit, Some(1.0));
    assert_eq!(
        sr.reason,
        "client_success_rate = 1 is >= 0.99 (absolute) and >= 1 (baseline 1)"
    );
}

#[test]
fn a_value_within_the_floor_but_30_percent_worse_than_the_baseline_fails() {
    let base = good(); // latency 4.0
    let eval = decide(
        &with(names::P95_LATENCY, 5.2),
        Some(&base),
        &Thresholds::default(),
        &keys(),
    );
    assert_eq!(eval.verdict, Verdict::Failed);
    let c = check(&eval, CheckName::P95Latency);
    assert!(!c.passed);
    assert_eq!(
        c.reason,
        "p95_latency_s = 5.2 s is not <= 4.6 s (baseline 4 s x 1.15)"
    );
    // the same figures pass in absolute mode
    let abs = decide(
        &with(names::P95_LATENCY, 5.2),
        None,
        &Thresholds::default(),
        &keys(),
    );
    assert_eq!(abs.verdict, Verdict::Passed);
}

#[test]
fn success_rate_at_full_baseline_fails_on_any_error_unless_a_drop_is_allowed() {
    let base = good(); // success 1.0
    let cand = with(names::CLIENT_SUCCESS_RATE, 0.995);
    let strict = decide(&cand, Some(&base), &Thresholds::default(), &keys());
    assert!(!check(&strict, CheckName::SuccessRate).passed);
    let lax = Thresholds {
        max_success_rate_drop: 0.01,
        ..Thresholds::default()
    };
    let eval = decide(&cand, Some(&base), &lax, &keys());
    let c = check(&eval, CheckName::SuccessRate);
    assert!(c.passed, "{}", c.reason);
    assert!(c.reason.contains("baseline 1 - 0.01"), "{}", c.reason);
}

#[rstest]
#[case(names::P95_LATENCY, CheckName::P95Latency)]
#[case(names::P95_TTFT, CheckName::P95Ttft)]
#[case(names::THROUGHPUT, CheckName::Throughput)]
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate)]
fn null_or_absent_metrics_fail_closed(#[case] key: &str, #[case] name: CheckName) {
    let mut null = good();
    null.insert(key.into(), Measured::missing("no series in window"));
    let mut absent = good();
    absent.remove(key);
    for (cand, why) in [
        (null, "no series in window"),
        (absent, "not in the results"),
    ] {
        for base in [None, Some(good())] {
            let eval = decide(&cand, base.as_ref(), &Thresholds::default(), &keys());
            assert_eq!(eval.verdict, Verdict::Failed);
            let c = check(&eval, name);
            assert!(!c.passed);
            assert_eq!(c.value, None);
            assert!(
                c.reason.contains("missing") && c.reason.contains(why),
                "{}",
                c.reason
            );
            assert!(c.reason.contains("fails closed"));
        }
    }
}

#[rstest]
#[case(names::P95_LATENCY, CheckName::P95Latency)]
#[case(names::P95_TTFT, CheckName::P95Ttft)]
#[case(names::THROUGHPUT, CheckName::Throughput)]
#[case(names::CLIENT_SUCCESS_RATE, CheckName::SuccessRate)]
fn baseline_missing_a_metric_fails_that_check_only(#[case] key: &str, #[case] name: CheckName) {
    let mut base = good();
    base.remove(key);
    let eval = decide(&good(), Some(&base), &Thresholds::default(), &keys());
    assert_eq!(eval.mode, Mode::Comparative);
    assert_eq!(eval.verdict, Verdict::Failed);
    for c in &eval.checks {
        assert_eq!(c.passed, c.name != name, "{}", c.reason);
    }
    let c = check(&eval, name);
    assert_eq!(c.baseline_value, None);
    assert_eq!(c.relative_limit, None);
    assert!(c.reason.contains("the baseline has no"), "{}", c.reason);
    // a NaN read back from MLflow is no better than an absent one
    let mut nan = good();
    nan.insert(key.into(), Measured::value(f64::NAN));
    let eval = decide(&good(), Some(&nan), &Thresholds::default(), &keys());
    assert!(!check(&eval, name).passed);
}

#[test]
fn client_source_reads_the_client_figures() {
    let keys = CheckKeys::for_source(MetricsSource::Client);
    let mut m = good(); // server figures good ...
    m.insert("client_p95_latency_s".into(), Measured::value(9.0)); // ... client latency bad
    m.insert("client_p95_ttft_s".into(), Measured::value(0.5));
    m.insert("client_throughput_rps".into(), Measured::value(5.0));
    let eval = decide(&m, None, &Thresholds::default(), &keys);
    let c = check(&eval, CheckName::P95Latency);
    assert_eq!(c.metric, "client_p95_latency_s");
    assert!(!c.passed);
    assert_eq!(
        check(&eval, CheckName::SuccessRate).metric,
        "client_success_rate"
    );
    assert_eq!(eval.verdict, Verdict::Failed);
}

#[test]
fn numbers_in_reasons_are_short() {
    assert_eq!(num(4.0), "4");
    assert_eq!(num(4.5999999999), "4.6");
    assert_eq!(num(0.1234564), "0.123456");
    assert_eq!(num(-0.0000001), "0");
}

#[test]
fn the_inclusive_allowance_keeps_a_decimal_bound_inclusive() {
    // 3.0 x 1.15 is 3.4499999999999997 in binary: without the 1e-12 allowance 3.45 would fail
    let limit = 3.0 * 1.15;
    assert!(3.45 > limit, "the case must exercise the allowance");
    assert!(Op::Le.holds(3.45, limit));
    assert!(!Op::Le.holds(3.4500001, limit));
    let base = with(names::P95_LATENCY, 3.0);
    let eval = decide(
        &with(names::P95_LATENCY, 3.45),
        Some(&base),
        &Thresholds::default(),
        &keys(),
    );
    let c = check(&eval, CheckName::P95Latency);
    assert!(c.passed, "{}", c.reason);
    assert_eq!(
        c.reason,
        "p95_latency_s = 3.45 s is < 8 s (absolute) and <= 3.4499999999999997 s (baseline 3 s x 1.15)"
    );
    // the same slack on a lower bound: 5.9 x 0.85 is 5.015000000000001 in binary
    let limit = 5.9 * (1.0 - 0.15);
    assert!(5.015 < limit, "the case must exercise the allowance");
    let base = with(names::THROUGHPUT, 5.9);
    let eval = decide(
        &with(names::THROUGHPUT, 5.015),
        Some(&base),
        &Thresholds::default(),
        &keys(),
    );
    let c = check(&eval, CheckName::Throughput);
    assert!(c.passed, "{}", c.reason);
}

#[test]
fn a_failing_value_is_never_rounded_onto_its_limit() {
    let eval = decide(
        &with(names::P95_LATENCY, 8.0000001),
        None,
        &Thresholds::default(),
        &keys(),
    );
    let c = check(&eval, CheckName::P95Latency);
    assert!(!c.passed);
    assert_eq!(
        c.reason,
        "p95_latency_s = 8.0000001 s is not < 8 s (absolute)"
    );
    let base = with(names::P95_LATENCY, 4.0);
    let eval = decide(
        &with(names::P95_LATENCY, 4.6000001),
        Some(&base),
        &Thresholds::default(),
        &keys(),
    );
    let c = check(&eval, CheckName::P95Latency);
    assert!(!c.passed);
    assert_eq!(
        c.reason,
        "p95_latency_s = 4.6000001 s is not <= 4.6 s (baseline 4 s x 1.15)"
    );
    let eval = decide(
        &with(names::CLIENT_SUCCESS_RATE, 0.98999),
        None,
        &Thresholds::default(),
        &keys(),
    );
    let c = check(&eval, CheckName::SuccessRate);
    assert_eq!(
        c.reason,
        "client_success_rate = 0.98999 is not >= 0.99 (absolute)"
    );
}
