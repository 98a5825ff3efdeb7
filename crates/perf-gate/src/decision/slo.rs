//! The optional `slo_attainment` check (`--min-slo-attainment`): the share of requests that
//! met every per-request objective `load-test --slo` was given (goodput) must reach a floor.
//! Results without an attainment (load-test ran without `--slo`) fail it: missing data never
//! passes.

use super::checks::{CheckName, CheckResult, Op};
use crate::results::LoadTestResults;

/// Name of the check's metric.
pub const SLO_METRIC: &str = "client_slo_attainment";

/// The check: `client.slo_attainment.fraction >= min`.
pub fn slo_check(results: &LoadTestResults, min: f64) -> CheckResult {
    let attainment = results.client.as_ref().and_then(|c| c.slo_attainment);
    let value = attainment.and_then(|a| a.fraction);
    let (passed, reason) = match (attainment, value) {
        (None, _) => (
            false,
            "the results carry no SLO attainment: run load-test with --slo (fails closed, --min-slo-attainment)".to_string(),
        ),
        (Some(_), None) => (
            false,
            "no request was judged against the SLOs (fails closed)".to_string(),
        ),
        (Some(a), Some(v)) => {
            let passed = Op::Ge.holds(v, min);
            let objectives = [("ttft", a.slo.ttft_s), ("tpot", a.slo.tpot_s), ("e2e", a.slo.e2e_s)]
                .into_iter()
                .filter_map(|(k, l)| l.map(|l| format!("{k} <= {l}s")))
                .collect::<Vec<_>>()
                .join(", ");
            (
                passed,
                format!(
                    "{} of {} requests met {objectives}: {:.4} {} {min} (--min-slo-attainment)",
                    a.met,
                    a.requests,
                    v,
                    if passed { ">=" } else { "<" }
                ),
            )
        }
    };
    CheckResult {
        name: CheckName::SloAttainment,
        metric: SLO_METRIC.into(),
        value,
        absolute_limit: min,
        absolute_op: Op::Ge,
        relative_limit: None,
        relative_op: Op::Ge,
        baseline_value: None,
        passed,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::results::{Slo, SloAttainment};

    fn with(met: u64, requests: u64) -> LoadTestResults {
        let mut r = fixtures::results();
        r.client.as_mut().unwrap().slo_attainment = Some(SloAttainment {
            slo: Slo {
                ttft_s: Some(2.0),
                tpot_s: None,
                e2e_s: Some(8.0),
            },
            met,
            requests,
            fraction: (requests > 0).then(|| met as f64 / requests as f64),
        });
        r
    }

    #[test]
    fn the_floor_is_inclusive_and_the_reason_names_the_objectives() {
        let c = slo_check(&with(95, 100), 0.95);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.value, Some(0.95));
        assert!(
            c.reason
                .contains("95 of 100 requests met ttft <= 2s, e2e <= 8s"),
            "{}",
            c.reason
        );
        assert!(!slo_check(&with(94, 100), 0.95).passed);
    }

    #[test]
    fn no_attainment_fails_closed() {
        let c = slo_check(&fixtures::results(), 0.5);
        assert!(!c.passed && c.value.is_none());
        assert!(
            c.reason.contains("run load-test with --slo"),
            "{}",
            c.reason
        );
        assert!(!slo_check(&with(0, 0), 0.5).passed);
    }
}
