use rstest::rstest;

use super::*;
use crate::results::{Slo, SloAttainment};

fn parse(s: &str) -> Threshold {
    s.parse()
        .unwrap_or_else(|e| panic!("threshold threshold {s:?}: {e}"))
}

fn err(s: &str) -> String {
    s.parse::<Threshold>()
        .expect_err("a bad threshold threshold is refused")
        .to_string()
}

#[rstest]
#[case("ttft_p95<2s", Metric::Ttft(Percentile::P95), Op::Lt, 2.0)]
#[case("ttft_p50 <= 850ms", Metric::Ttft(Percentile::P50), Op::Le, 0.85)]
#[case("e2e_p99>1.5", Metric::E2e(Percentile::P99), Op::Gt, 1.5)]
#[case("latency_p95 >= 3s", Metric::E2e(Percentile::P95), Op::Ge, 3.0)]
#[case("ITL_P90<50ms", Metric::Itl(Percentile::P90), Op::Lt, 0.05)]
#[case("tpot_p50<20 MS", Metric::Tpot(Percentile::P50), Op::Lt, 0.02)]
#[case("error_rate<5%", Metric::ErrorRate, Op::Lt, 0.05)]
#[case("error_rate<0.05", Metric::ErrorRate, Op::Lt, 0.05)]
#[case("Success_Rate>=99.5%", Metric::SuccessRate, Op::Ge, 0.995)]
#[case("rps>10", Metric::Rps, Op::Gt, 10.0)]
#[case("tokens_per_s >= 30", Metric::TokensPerS, Op::Ge, 30.0)]
#[case("slo_attainment>=0.9", Metric::SloAttainment, Op::Ge, 0.9)]
fn threshold_expressions_parse(
    #[case] text: &str,
    #[case] metric: Metric,
    #[case] op: Op,
    #[case] limit: f64,
) {
    let t = parse(text);
    assert_eq!((t.metric, t.op), (metric, op), "{text}");
    assert!((t.limit - limit).abs() < 1e-12, "{text}: {}", t.limit);
    assert_eq!(t.expression, text);
}

#[test]
fn threshold_aliases_have_canonical_names() {
    assert_eq!(parse("latency_p95<1").metric.name(), "e2e_p95");
    assert_eq!(parse("TTFT_P99<1").metric.name(), "ttft_p99");
    for p in ["p50", "p90", "p95", "p99"] {
        for f in ["ttft", "e2e", "itl", "tpot"] {
            let name = format!("{f}_{p}");
            assert_eq!(parse(&format!("{name}<1")).metric.name(), name);
        }
    }
}

#[rstest]
#[case("ttft_p95<<2s")]
#[case("ttft_p95=2s")]
#[case("ttft_p95 2s")]
#[case("<2s")]
#[case("ttft_p95<")]
#[case("ttft_p95<=>2s")]
#[case("ttft_p95=<2s")]
#[case("")]
fn threshold_syntax_errors_say_the_grammar(#[case] text: &str) {
    assert_eq!(
        err(text),
        "expected METRIC OP VALUE with OP one of <, <=, >, >="
    );
}

#[test]
fn threshold_value_errors_quote_the_text() {
    assert_eq!(
        err("ttfb_p95<2s"),
        "unknown metric \"ttfb_p95\" (known: ttft_pNN, e2e_pNN (alias latency_pNN), itl_pNN, tpot_pNN with NN one of 50, 90, 95, 99; error_rate, success_rate, rps, tokens_per_s, slo_attainment)"
    );
    assert!(err("ttft_p42<2s").starts_with("unknown metric \"ttft_p42\""));
    assert_eq!(
        err("ttft_p95<2 parsecs"),
        "\"2 parsecs\" is not a duration (use ms or s)"
    );
    assert_eq!(
        err("ttft_p95<2us"),
        "\"2us\" is not a duration (use ms or s)"
    );
    assert_eq!(
        err("ttft_p95<-1s"),
        "\"-1s\" is not a duration (use ms or s)"
    );
    assert_eq!(
        err("ttft_p95<inf"),
        "\"inf\" is not a duration (use ms or s)"
    );
    assert_eq!(
        err("error_rate<5"),
        "\"5\" is not a rate (use a percentage like 5% or a fraction from 0 to 1)"
    );
    assert_eq!(
        err("error_rate<5s"),
        "\"5s\" is not a rate (use a percentage like 5% or a fraction from 0 to 1)"
    );
    assert_eq!(err("rps>fast"), "\"fast\" is not a number (0 or more)");
}

fn client() -> ClientMetrics {
    ClientMetrics {
        total_requests: 100,
        successful_requests: 97,
        failed_requests: 3,
        success_rate: Some(0.97),
        requests_per_s: Some(12.5),
        output_tokens_per_s: Some(800.0),
        ttft_s: Distribution {
            count: 97,
            p50: Some(0.2),
            p90: Some(0.35),
            p95: Some(0.412),
            p99: Some(0.9),
            ..Distribution::default()
        },
        ..ClientMetrics::default()
    }
}

#[rstest]
#[case("ttft_p95<2s", true)]
#[case("ttft_p95<400ms", false)]
#[case("error_rate<5%", true)]
#[case("error_rate<3%", false)]
#[case("error_rate<=3%", true)]
#[case("success_rate>=97%", true)]
#[case("success_rate>97%", false)]
#[case("rps>10", true)]
#[case("rps>=12.5", true)]
#[case("rps>12.5", false)]
#[case("tokens_per_s<800", false)]
#[case("tokens_per_s<=800", true)]
fn threshold_evaluation(#[case] text: &str, #[case] passed: bool) {
    let o = parse(text).evaluate(Some(&client()));
    assert_eq!(o.passed, passed, "{text}: {o:?}");
    assert!(o.value.is_some(), "{o:?}");
    assert_eq!(o.expression, text);
}

#[test]
fn threshold_outcome_records_and_prints() {
    let o = parse("ttft_p95 < 2s").evaluate(Some(&client()));
    assert_eq!(o.metric, "ttft_p95");
    assert_eq!(o.op, "<");
    assert_eq!(o.limit, 2.0);
    assert_eq!(o.value, Some(0.412));
    assert_eq!(o.reason, "0.412 s < 2.000 s");
    assert_eq!(line(&o), "PASS ttft_p95 < 2s (0.412 s)");
    let o = parse("ttft_p95<400ms").evaluate(Some(&client()));
    assert_eq!(o.reason, "0.412 s is not < 0.400 s");
    assert_eq!(line(&o), "WARNING ttft_p95<400ms crossed: 0.412 s");
    let o = parse("error_rate<1%").evaluate(Some(&client()));
    assert_eq!(line(&o), "WARNING error_rate<1% crossed: 3.00%");
}

#[test]
fn threshold_on_a_missing_metric_fails_closed() {
    let none = ClientMetrics::default();
    for (text, reason) in [
        (
            "e2e_p95<100s",
            "no E2E latency p95 (no request measured it)",
        ),
        (
            "latency_p50>0",
            "no E2E latency p50 (no request measured it)",
        ),
        ("error_rate<100%", "no error rate (no request was sent)"),
        ("success_rate>=0", "no success rate (no request was sent)"),
        ("rps>=0", "no request rate (no load duration)"),
        ("slo_attainment>=0", "no SLO attainment (run without --slo)"),
    ] {
        let o = parse(text).evaluate(Some(&none));
        assert!(!o.passed, "{text}");
        assert_eq!(o.value, None);
        assert_eq!(o.reason, reason, "{text}");
        assert_eq!(line(&o), format!("WARNING {text} crossed: {reason}"));
    }
    let o = parse("ttft_p95<2s").evaluate(None);
    assert!(!o.passed);
    assert_eq!(o.reason, "no client figures");
}

#[test]
fn threshold_on_slo_attainment_reads_the_fraction() {
    let mut c = client();
    c.slo_attainment = Some(SloAttainment {
        slo: Slo::default(),
        met: 90,
        requests: 100,
        fraction: Some(0.9),
    });
    assert!(parse("slo_attainment>=90%").evaluate(Some(&c)).passed);
    assert!(!parse("slo_attainment>90%").evaluate(Some(&c)).passed);
}

#[test]
fn threshold_evaluate_covers_every_expression_in_order() {
    let results = LoadTestResults {
        client: Some(client()),
        ..crate::fixtures::results()
    };
    let ts = [parse("rps>100"), parse("ttft_p95<2s")];
    let out = evaluate(&ts, &results);
    assert_eq!(
        out.iter()
            .map(|o| (o.expression.as_str(), o.passed))
            .collect::<Vec<_>>(),
        [("rps>100", false), ("ttft_p95<2s", true)]
    );
}
