//! From documents to a statistical comparison, and from the comparison to the decision's
//! checks: the arms' samples out of a results file ([`ArmSamples`]), the generator's seed from
//! their digests ([`seed`]), the interval checks a method adds ([`interval_checks`]) and the
//! richer verdict ([`rich_verdict`]).

use sha2::{Digest, Sha256};

use super::Outcome;
use super::verdict::{ArmInput, DecisionMethod, OnInconclusive, RichVerdict, Statistics};
use crate::decision::checks::{CheckName, CheckResult, Evaluation, Op, Verdict};
use crate::results::{ClientMetrics, LoadTestResults};
use crate::stats::SampleStore;

/// One arm's per-request samples and counts, unpacked from a results document.
#[derive(Debug, Clone)]
pub struct ArmSamples {
    /// The requests.
    pub store: SampleStore,
    /// The load's duration, seconds.
    pub duration_s: f64,
    /// Requests sent.
    pub total: u64,
    /// Successful requests.
    pub successes: u64,
    /// SHA-256 of the packed samples (seeds the resampling).
    pub digest: [u8; 32],
}

impl ArmSamples {
    /// The candidate arm of `results` (its `client`); `Err` says why there is none.
    pub fn candidate(results: &LoadTestResults) -> Result<Self, String> {
        let client = results
            .client
            .as_ref()
            .ok_or("the results have no client section")?;
        Self::from_client(client, results)
    }

    /// The same-server baseline arm of `results` (`baseline_arm`), if it has one.
    pub fn same_run_baseline(results: &LoadTestResults) -> Option<Result<Self, String>> {
        let arm = results.baseline_arm.as_ref()?;
        Some(Self::from_client(&arm.client, results))
    }

    fn from_client(client: &ClientMetrics, results: &LoadTestResults) -> Result<Self, String> {
        let packed = client.samples.as_ref().ok_or(
            "the results carry no per-request samples (written by a load-test before schema version 3)",
        )?;
        let store = SampleStore::unpack(packed).map_err(|e| e.to_string())?;
        if store.len() as u64 != client.total_requests {
            return Err(format!(
                "the results pack {} requests but count {} sent",
                store.len(),
                client.total_requests
            ));
        }
        let duration_s = results
            .timing
            .as_ref()
            .map(|t| t.load_duration_s)
            .filter(|d| d.is_finite() && *d > 0.0)
            .ok_or("the results have no load duration")?;
        Ok(ArmSamples {
            store,
            duration_s,
            total: client.total_requests,
            successes: client.successful_requests,
            digest: Sha256::digest(packed.data.text().as_bytes()).into(),
        })
    }

    /// The arm as [`super::verdict::assess`] reads it.
    pub fn input(&self) -> ArmInput<'_> {
        ArmInput {
            samples: &self.store,
            duration_s: self.duration_s,
            total: self.total,
            successes: self.successes,
        }
    }
}

/// The resampling seed: SHA-256 of both arms' digests, so the same files always give the same
/// intervals and different files different draws.
pub fn seed(candidate: &ArmSamples, baseline: &ArmSamples) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(candidate.digest);
    h.update(baseline.digest);
    h.finalize().into()
}

/// The checks the statistics add under `method`: with [`DecisionMethod::Seed`], one failed
/// check per metric whose whole interval lies beyond its tolerance (nothing else: the seed's
/// checks decide); with [`DecisionMethod::Statistical`], one check per judged metric, passed
/// when its interval lies within the tolerance, and for an inconclusive one as `on_inconclusive`
/// says.
pub fn interval_checks(
    stats: &Statistics,
    method: DecisionMethod,
    on_inconclusive: OnInconclusive,
) -> Vec<CheckResult> {
    stats
        .metrics
        .iter()
        .filter(|m| method == DecisionMethod::Statistical || m.outcome == Outcome::Failed)
        .map(|m| {
            let passed = match m.outcome {
                Outcome::Passed => true,
                Outcome::Failed => false,
                Outcome::Inconclusive => on_inconclusive == OnInconclusive::Pass,
            };
            let op = if m.worse == "higher" { Op::Le } else { Op::Ge };
            let mapped = match (m.outcome, on_inconclusive) {
                (Outcome::Inconclusive, OnInconclusive::Fail) => {
                    " (counted as failed: --on-inconclusive fail)"
                }
                (Outcome::Inconclusive, OnInconclusive::Pass) => {
                    " (counted as passed: --on-inconclusive pass)"
                }
                _ => "",
            };
            CheckResult {
                name: CheckName::StatisticalComparison,
                metric: m.name.clone(),
                value: m.point,
                absolute_limit: m.limit,
                absolute_op: op,
                relative_limit: None,
                relative_op: op,
                baseline_value: None,
                passed,
                reason: format!("{}{mapped}", m.reason),
            }
        })
        .collect()
}

/// The richer verdict: `invalid` stays; a check failed for a reason other than an
/// inconclusive interval is `failed`; otherwise a judged metric whose interval straddles its
/// tolerance makes it `inconclusive` (a metric with no interval at all does not: under
/// `--decision statistical` it is counted as `--on-inconclusive` says); else `passed`.
pub fn rich_verdict(eval: &Evaluation, stats: Option<&Statistics>) -> RichVerdict {
    if eval.verdict == Verdict::Invalid {
        return RichVerdict::Invalid;
    }
    let inconclusive = |c: &CheckResult| {
        c.name == CheckName::StatisticalComparison
            && stats.is_some_and(|s| {
                s.metrics
                    .iter()
                    .any(|m| m.name == c.metric && m.outcome == Outcome::Inconclusive)
            })
    };
    if eval.checks.iter().any(|c| !c.passed && !inconclusive(c)) {
        return RichVerdict::Failed;
    }
    // an interval that straddles its tolerance; a metric without an interval (a load too short
    // for 20 blocks) says nothing either way and leaves the verdict to the checks
    if stats.is_some_and(|s| {
        s.metrics
            .iter()
            .any(|m| m.outcome == Outcome::Inconclusive && m.lo.is_some())
    }) {
        return RichVerdict::Inconclusive;
    }
    match eval.verdict {
        Verdict::Passed => RichVerdict::Passed,
        _ => RichVerdict::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Thresholds;
    use crate::decision::checks::Mode;
    use crate::decision::statistics::bootstrap::Pairing;
    use crate::decision::statistics::verdict::{Input, assess};

    /// `n` requests over `duration` s, latencies `scale * (1 + (i * 7) % 10 / 10)`.
    fn arm(n: u32, duration: f64, scale: f64) -> ArmSamples {
        let mut store = SampleStore::default();
        for i in 0..n {
            let v = scale * (1.0 + f64::from((i * 7) % 10) / 10.0);
            store.push(
                duration * f64::from(i) / f64::from(n),
                Some(v / 4.0),
                Some(v),
            );
        }
        ArmSamples {
            store,
            duration_s: duration,
            total: u64::from(n),
            successes: u64::from(n),
            digest: [n as u8; 32],
        }
    }

    fn stats(c: &ArmSamples, b: &ArmSamples) -> Statistics {
        assess(&Input {
            candidate: c.input(),
            baseline: b.input(),
            pairing: Pairing::Independent,
            thresholds: &Thresholds::SEED,
            seed: seed(c, b),
        })
    }

    fn passed_eval() -> Evaluation {
        Evaluation {
            verdict: Verdict::Passed,
            mode: Mode::Comparative,
            checks: vec![],
        }
    }

    #[test]
    fn the_seed_method_adds_only_failures_and_the_statistical_method_every_metric() {
        let (c, b) = (arm(2000, 400.0, 1.3), arm(2000, 400.0, 1.0));
        let s = stats(&c, &b);
        assert_eq!(s.outcome, Outcome::Failed);
        let seed_checks = interval_checks(&s, DecisionMethod::Seed, OnInconclusive::Fail);
        let failed: Vec<&str> = seed_checks.iter().map(|c| c.metric.as_str()).collect();
        // 30 % slower: both P95 ratios and the throughput ratio (1/1.3) lie beyond
        assert!(failed.contains(&"p95_ttft_ratio") && failed.contains(&"p95_e2e_ratio"));
        assert!(seed_checks.iter().all(|c| !c.passed));
        let all = interval_checks(&s, DecisionMethod::Statistical, OnInconclusive::Fail);
        assert_eq!(all.len(), 4);
        let mut eval = passed_eval();
        for c in seed_checks {
            eval.push(c);
        }
        assert_eq!(eval.verdict, Verdict::Failed);
        assert_eq!(rich_verdict(&eval, Some(&s)), RichVerdict::Failed);
    }

    #[test]
    fn identical_arms_pass_and_the_verdict_says_so() {
        let (c, b) = (arm(2000, 400.0, 1.0), arm(2000, 400.0, 1.0));
        let s = stats(&c, &b);
        assert!(
            s.metrics.iter().all(|m| m.outcome == Outcome::Passed),
            "{:?}",
            s.metrics
        );
        let mut eval = passed_eval();
        for c in interval_checks(&s, DecisionMethod::Statistical, OnInconclusive::Fail) {
            eval.push(c);
        }
        assert_eq!(eval.verdict, Verdict::Passed);
        assert_eq!(rich_verdict(&eval, Some(&s)), RichVerdict::Passed);
    }

    #[test]
    fn an_inconclusive_metric_is_mapped_by_on_inconclusive_and_named_in_the_verdict() {
        // 15 % slower, measured briefly: the interval straddles 1.15
        let (c, b) = (arm(60, 40.0, 1.15), arm(60, 40.0, 1.0));
        let mut s = stats(&c, &b);
        // make the point exactly at the limit so the straddle does not depend on the draw
        for m in s.metrics.iter_mut().filter(|m| m.name == "p95_ttft_ratio") {
            (m.lo, m.hi, m.outcome) = (Some(1.05), Some(1.25), Outcome::Inconclusive);
        }
        for (on, passes) in [(OnInconclusive::Fail, false), (OnInconclusive::Pass, true)] {
            let checks = interval_checks(&s, DecisionMethod::Statistical, on);
            let ttft = checks
                .iter()
                .find(|c| c.metric == "p95_ttft_ratio")
                .unwrap();
            assert_eq!(ttft.passed, passes);
            assert!(
                ttft.reason
                    .contains(&format!("--on-inconclusive {}", on.as_str()))
            );
            let mut eval = passed_eval();
            for c in checks.into_iter().filter(|c| c.metric == "p95_ttft_ratio") {
                eval.push(c);
            }
            // failed by the mapping or passed, the richer verdict says why
            assert_eq!(rich_verdict(&eval, Some(&s)), RichVerdict::Inconclusive);
        }
        // in the default method an inconclusive metric adds no check: the run passes,
        // inconclusive
        let checks = interval_checks(&s, DecisionMethod::Seed, OnInconclusive::Fail);
        assert!(checks.iter().all(|c| c.metric != "p95_ttft_ratio"));
        // a real failure elsewhere wins over inconclusive
        let mut eval = passed_eval();
        eval.push(CheckResult {
            name: CheckName::P95Latency,
            metric: "p95_latency_s".into(),
            value: Some(9.0),
            absolute_limit: 8.0,
            absolute_op: Op::Lt,
            relative_limit: None,
            relative_op: Op::Le,
            baseline_value: None,
            passed: false,
            reason: "over the floor".into(),
        });
        assert_eq!(rich_verdict(&eval, Some(&s)), RichVerdict::Failed);
        eval.verdict = Verdict::Invalid;
        assert_eq!(rich_verdict(&eval, Some(&s)), RichVerdict::Invalid);
    }

    #[test]
    fn the_seed_follows_the_inputs() {
        let (a, b) = (arm(100, 40.0, 1.0), arm(200, 40.0, 1.0));
        assert_eq!(seed(&a, &b), seed(&a, &b));
        assert_ne!(seed(&a, &b), seed(&b, &a));
    }

    #[test]
    fn samples_come_out_of_a_results_document_or_say_why_not() {
        let mut results = crate::fixtures::results();
        assert!(
            ArmSamples::candidate(&results)
                .unwrap_err()
                .contains("no per-request samples")
        );
        let a = arm(100, 40.0, 1.0);
        let client = results.client.as_mut().unwrap();
        client.samples = Some(a.store.pack());
        client.total_requests = 100;
        client.successful_requests = 100;
        let got = ArmSamples::candidate(&results).unwrap();
        assert_eq!(got.total, 100);
        assert_eq!(got.store.len(), 100);
        results.client.as_mut().unwrap().total_requests = 101;
        assert!(
            ArmSamples::candidate(&results)
                .unwrap_err()
                .contains("pack 100 requests but count 101")
        );
        assert!(ArmSamples::same_run_baseline(&results).is_none());
    }

    #[test]
    fn run_to_run_spread_widens_the_intervals_and_is_said() {
        use crate::decision::statistics::verdict::RunToRun;
        use crate::results::Measured;
        let (c, b) = (arm(2000, 400.0, 1.0), arm(2000, 400.0, 1.0));
        let mut s = stats(&c, &b);
        let before = s.metrics[0].clone();
        assert_eq!(before.outcome, Outcome::Passed);
        // three runs whose client P95 TTFT spread ~10 % (sd of ln 0.1)
        let maps: Vec<crate::decision::MetricMap> = [0.9, 1.0, 1.1f64]
            .iter()
            .map(|f| {
                [("client_p95_ttft_s".to_string(), Measured::value(0.5 * f))]
                    .into_iter()
                    .collect()
            })
            .collect();
        let spread = RunToRun::of_runs(&maps.iter().collect::<Vec<_>>());
        let sd = spread.sd_log["p95_ttft_ratio"];
        assert!((sd - 0.1001).abs() < 0.002, "{sd}");
        assert!(
            !spread.sd_log.contains_key("p95_e2e_ratio"),
            "no figure, no spread"
        );
        assert!(
            RunToRun::of_runs(&maps.iter().take(2).collect::<Vec<_>>())
                .sd_log
                .is_empty()
        );
        s.include_run_to_run(&spread);
        let after = &s.metrics[0];
        // the log half-width grows to sqrt(h^2 + 2 (z sd)^2): about +-0.35 at z 2.5
        assert!(
            after.lo.unwrap() < 0.75 && after.hi.unwrap() > 1.3,
            "{after:?}"
        );
        assert_eq!(after.outcome, Outcome::Inconclusive, "{}", after.reason);
        assert_eq!(s.outcome, Outcome::Inconclusive);
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("run-to-run variance, estimated from 3"))
        );
        assert!(
            !s.notes
                .iter()
                .any(|n| n.starts_with("the baseline ran separately"))
        );
        assert_eq!(
            s.metrics[1],
            stats(&c, &b).metrics[1],
            "other metrics untouched"
        );
    }
}
