//! Invalid is not failed: the reasons a measurement cannot be trusted, which make the decision
//! `invalid` (no alias, never a baseline, exit 5: rerun the gate) rather than judge the adapter
//! on figures that do not describe it.
//!
//! From the facts `load-test` records (`server.integrity`, the counts, the generator's health):
//! - a window edge that is not a confirmed sample (a target busy, down or unscraped around the
//!   load; with `/metrics` deltas, scrapes from different processes);
//! - vLLM's counters reset or its process restarted inside the window;
//! - the server's count of requests finished with `stop`/`length` outside `[the client's
//!   successes, the requests of this run that reached the server]`: above means other traffic
//!   on the server (contamination), below a missing target, a reset or a lost scrape. Client
//!   failures alone never make a run invalid (vLLM counts them as `abort`/`error`);
//! - (with the figures the checks use) a server figure missing although the scrapes were
//!   confirmed, or a saturated load generator when the client's timings are judged.
//!
//! In a same-server A/B run (`baseline_arm`) the server's series, labelled by base model, count
//! both adapters' requests: the client's counts compared with them are the two arms' together
//! ([`client_counts`]).
//!
//! A timed load's `--warmup`/`--cooldown` requests (`unmeasured`) are inside the server's
//! window too, and counted with the rest.
//!
//! In seed window mode the window is the seed's clock arithmetic, not confirmed samples: its
//! edges and counts are not checked (that is the seed's behaviour), only restarts.

use super::checks::{CheckName, CheckResult, Op};
use super::metrics::MetricsSource;
use crate::results::{LoadTestResults, Measured, Validity, WindowMode};

/// What the step does with an untrustworthy measurement (`--on-invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// The decision is `invalid`: no alias, never a baseline, exit 5 (rerun the gate).
    #[default]
    Invalid,
    /// The seed's behaviour: the candidate is `failed` (a failed `valid_measurement` check).
    Fail,
}

impl OnInvalid {
    /// `invalid` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInvalid::Invalid => "invalid",
            OnInvalid::Fail => "fail",
        }
    }
}

/// Name of the `valid_measurement` check's metric: 1 when valid, 0 when not.
pub const VALID_METRIC: &str = "measurement_valid";

/// The check `--on-invalid fail` adds: fails with the reasons when there are any.
pub fn valid_measurement_check(reasons: &[String]) -> CheckResult {
    let passed = reasons.is_empty();
    CheckResult {
        name: CheckName::ValidMeasurement,
        metric: VALID_METRIC.into(),
        value: Some(if passed { 1.0 } else { 0.0 }),
        absolute_limit: 1.0,
        absolute_op: Op::Ge,
        relative_limit: None,
        relative_op: Op::Ge,
        baseline_value: None,
        passed,
        reason: if passed {
            "the measurement can be trusted (--on-invalid fail)".to_string()
        } else {
            format!(
                "the measurement cannot be trusted and --on-invalid fail is set: {}",
                reasons.join("; ")
            )
        },
    }
}

/// Failures that mean the request never reached the server.
const NEVER_REACHED: [&str; 1] = ["connect"];

/// The client's counts of the requests the server's figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCounts {
    /// Requests that succeeded.
    pub successful: u64,
    /// Requests sent.
    pub total: u64,
    /// Requests that reached the server (sent, less those that never connected).
    pub reached: u64,
    /// Whether these are two arms' counts (a same-server A/B run).
    pub both_arms: bool,
}

/// The client's counts of the requests the server's figures cover: the candidate's, plus in a
/// same-server A/B run (`baseline_arm`) the baseline's, since vLLM labels its series by base
/// model, not adapter, plus a timed load's warm-up and cool-down requests (`unmeasured`: left
/// out of the client's figures, inside the server's window). `None` without client figures.
pub fn client_counts(results: &LoadTestResults) -> Option<ClientCounts> {
    let client = results.client.as_ref()?;
    let mut counts = ClientCounts {
        successful: 0,
        total: 0,
        reached: 0,
        both_arms: results.baseline_arm.is_some(),
    };
    for c in std::iter::once(client).chain(results.baseline_arm.as_ref().map(|b| &b.client)) {
        let never_reached: u64 = NEVER_REACHED
            .iter()
            .filter_map(|k| c.errors_by_kind.get(*k))
            .sum();
        counts.successful += c.successful_requests;
        counts.total += c.total_requests;
        counts.reached += c.total_requests.saturating_sub(never_reached);
    }
    if let Some(u) = &results.unmeasured {
        let never_reached: u64 = NEVER_REACHED
            .iter()
            .filter_map(|k| u.errors_by_kind.get(*k))
            .sum();
        counts.successful += u.successful_requests;
        counts.total += u.requests;
        counts.reached += u.requests.saturating_sub(never_reached);
    }
    Some(counts)
}

/// Why a mix is no gate measurement, whatever the server counted.
pub fn mix_reason(mix: &crate::results::MixResults) -> String {
    format!(
        "a {} mix: its figures pool {} members (each one's are in `mix`); the gate compares one adapter with its baseline",
        match mix.kind {
            crate::mix::MixKind::Targets => "target",
            crate::mix::MixKind::Adapters => "LoRA",
        },
        mix.members.len()
    )
}

/// The reasons the measurement itself cannot be trusted, whatever figures are judged.
pub fn measurement_problems(results: &LoadTestResults) -> Vec<String> {
    let mut out = Vec::new();
    if !results.config.api.has_vllm_metrics() {
        out.push(format!(
            "--api {}: the run has no server-side figures and is not a vLLM gate measurement",
            results.config.api
        ));
        return out;
    }
    // runs whose figures are not one adapter's load, whatever the server counted
    if let Some(mix) = &results.mix {
        out.push(mix_reason(mix));
    }
    if let Some(s) = &results.shard
        && let Some(i) = s.index
    {
        out.push(format!(
            "shard {i} of {}: a part of the load; merge the shards with `load-test merge`",
            s.count
        ));
    }
    if !results.steps.is_empty() {
        out.push("a step sweep: each step is its own load; the gate compares one load".into());
    }
    let Some(server) = &results.server else {
        out.push("no server figures were collected".to_string());
        return out;
    };
    let seed = server
        .window
        .as_ref()
        .is_some_and(|w| w.mode == WindowMode::Seed);
    let integrity = &server.integrity;
    if !seed {
        out.extend(
            integrity
                .unconfirmed
                .iter()
                .map(|u| format!("window edge not confirmed: {u}")),
        );
        if integrity.unconfirmed.is_empty() && !integrity.edges_confirmed {
            out.push("the window's edges were not confirmed".to_string());
        }
    }
    if let Some(n) = integrity.counter_resets.filter(|n| *n > 0) {
        out.push(format!(
            "vLLM's counters were reset {n} time(s) inside the window: a restart during the load"
        ));
    }
    if let Some(n) = integrity.process_restarts.filter(|n| *n > 0) {
        out.push(format!(
            "a vLLM process restarted inside the window ({n} change(s) of process_start_time_seconds)"
        ));
    }
    if !seed && let Some(counts) = client_counts(results) {
        let (ok, reached) = (counts.successful, counts.reached);
        let arms = if counts.both_arms {
            " (candidate and baseline adapters)"
        } else {
            ""
        };
        match server.requests_finished.get() {
            None => out.push(format!(
                "the server's count of finished requests is missing ({}): other traffic or a lost target cannot be ruled out",
                reason(&server.requests_finished)
            )),
            Some(n) if n < ok as f64 => out.push(format!(
                "the server counted {n} requests finished with stop/length but the client saw {ok} succeed{arms}: a target missing from the job, a counter reset or a lost scrape"
            )),
            Some(n) if n > reached as f64 => out.push(format!(
                "the server counted {n} requests finished with stop/length, more than the {reached} requests of this run that reached it{arms}: other traffic on the server during the load"
            )),
            Some(_) => {}
        }
    }
    out
}

/// Every reason the decision is `invalid` when checks 1–3 read `source`'s figures:
/// [`measurement_problems`], plus a missing server figure (server source), plus a saturated
/// load generator (client source: its timings are the ones judged).
pub fn invalid_reasons(results: &LoadTestResults, source: MetricsSource) -> Vec<String> {
    let mut out = measurement_problems(results);
    match source {
        MetricsSource::Server => {
            if let Some(s) = &results.server {
                for (name, m) in [
                    ("P95 E2E latency", &s.e2e_latency_s.p95),
                    ("P95 TTFT", &s.ttft_s.p95),
                    ("throughput", &s.throughput_rps),
                ] {
                    if m.get().is_none() {
                        out.push(format!("server {name} is missing: {}", reason(m)));
                    }
                }
            }
        }
        MetricsSource::Client => {
            if results.load_generator.as_ref().is_some_and(|g| g.saturated) {
                out.push(
                    "the load generator was saturated: the client's timings, which checks 1-3 judge, may be inflated"
                        .to_string(),
                );
            }
        }
    }
    out
}

/// [`measurement_problems`] as the results record it.
pub fn validity(results: &LoadTestResults) -> Validity {
    let reasons = measurement_problems(results);
    Validity {
        valid: reasons.is_empty(),
        reasons,
    }
}

fn reason(m: &Measured) -> &str {
    m.reason.as_deref().unwrap_or("no reason given")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn confirmed() -> LoadTestResults {
        let mut r = fixtures::results();
        let s = r.server.as_mut().unwrap();
        s.integrity.edges_confirmed = true;
        s.integrity.counter_resets = Some(0);
        s.integrity.process_restarts = Some(0);
        r
    }

    #[test]
    fn a_clean_run_is_valid() {
        assert_eq!(measurement_problems(&confirmed()), Vec::<String>::new());
        assert!(invalid_reasons(&confirmed(), MetricsSource::Server).is_empty());
    }

    #[test]
    fn a_mix_is_never_a_gate_measurement_even_with_a_clean_server_window() {
        let mut r = confirmed();
        r.mix = Some(crate::results::MixResults {
            kind: crate::mix::MixKind::Adapters,
            split: String::new(),
            server_note: String::new(),
            members: Vec::new(),
        });
        let p = invalid_reasons(&r, MetricsSource::Server);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("a LoRA mix"), "{p:?}");
        assert!(!invalid_reasons(&r, MetricsSource::Client).is_empty());
    }

    #[test]
    fn a_llamacpp_run_is_never_a_valid_gate_measurement_whatever_figures_are_judged() {
        let mut r = confirmed();
        r.config.api = crate::api::Api::Llamacpp;
        let p = measurement_problems(&r);
        assert_eq!(
            p,
            [
                "--api llamacpp: the run has no server-side figures and is not a vLLM gate measurement"
            ]
        );
        assert!(!invalid_reasons(&r, MetricsSource::Client).is_empty());
        assert!(!validity(&r).valid);
    }

    #[test]
    fn counts_outside_the_client_s_bounds_are_contamination_or_loss() {
        let mut r = confirmed();
        r.server.as_mut().unwrap().requests_finished = Measured::value(130.0);
        let p = measurement_problems(&r);
        assert!(
            p[0].contains("more than the 100 requests of this run"),
            "{p:?}"
        );
        r.server.as_mut().unwrap().requests_finished = Measured::value(90.0);
        let p = measurement_problems(&r);
        assert!(p[0].contains("client saw 100 succeed"), "{p:?}");
    }

    #[test]
    fn a_timed_load_s_warm_up_and_cool_down_count_with_the_server_s_window() {
        // 100 measured + 30 unmeasured requests, all inside the server's window
        let mut r = confirmed();
        r.server.as_mut().unwrap().requests_finished = Measured::value(130.0);
        assert_eq!(
            measurement_problems(&r).len(),
            1,
            "without them: other traffic"
        );
        r.unmeasured = Some(crate::results::UnmeasuredInfo {
            requests: 30,
            successful_requests: 30,
            errors_by_kind: Default::default(),
            warmup_s: 5.0,
            cooldown_s: 2.0,
        });
        assert!(
            measurement_problems(&r).is_empty(),
            "{:?}",
            measurement_problems(&r)
        );
        r.server.as_mut().unwrap().requests_finished = Measured::value(120.0);
        assert!(measurement_problems(&r)[0].contains("client saw 130 succeed"));
    }

    #[test]
    fn client_failures_alone_never_make_a_run_invalid() {
        let mut r = confirmed();
        let c = r.client.as_mut().unwrap();
        c.successful_requests = 80;
        c.failed_requests = 20;
        c.errors_by_kind = [("http_500".to_string(), 15), ("connect".to_string(), 5)].into();
        // 80 succeeded; of the 95 that reached vLLM, it finished 80..=95 with stop/length
        for n in [80.0, 88.0, 95.0] {
            r.server.as_mut().unwrap().requests_finished = Measured::value(n);
            assert!(measurement_problems(&r).is_empty(), "{n}");
        }
        r.server.as_mut().unwrap().requests_finished = Measured::value(96.0);
        assert_eq!(measurement_problems(&r).len(), 1);
    }

    #[test]
    fn an_ab_run_s_server_counts_are_both_arms_requests() {
        // the server counted 100 candidate + 100 baseline requests: valid, not contamination
        let mut r = confirmed();
        r.server.as_mut().unwrap().requests_finished = Measured::value(200.0);
        assert_eq!(
            measurement_problems(&r).len(),
            1,
            "without the baseline arm"
        );
        let client = r.client.clone().unwrap();
        r.baseline_arm = Some(crate::results::BaselineArm {
            adapter: r.adapter.clone().unwrap(),
            client,
        });
        assert_eq!(measurement_problems(&r), Vec::<String>::new());
        // and the candidate's 100 alone no longer account for the server's count
        r.server.as_mut().unwrap().requests_finished = Measured::value(150.0);
        let p = measurement_problems(&r);
        assert!(
            p[0].contains("client saw 200 succeed (candidate and baseline adapters)"),
            "{p:?}"
        );
    }

    #[test]
    fn unconfirmed_edges_restarts_and_missing_figures_are_reasons() {
        let mut r = confirmed();
        let s = r.server.as_mut().unwrap();
        s.integrity.edges_confirmed = false;
        s.integrity.unconfirmed = vec!["a:1: 2 running and 0 waiting at ...".into()];
        s.integrity.counter_resets = Some(1);
        s.integrity.process_restarts = Some(1);
        s.e2e_latency_s.p95 = Measured::missing("no observations");
        let p = measurement_problems(&r);
        assert_eq!(p.len(), 3, "{p:?}");
        let all = invalid_reasons(&r, MetricsSource::Server);
        assert!(
            all.iter()
                .any(|l| l == "server P95 E2E latency is missing: no observations")
        );
        // the client source does not need the server's latency
        assert_eq!(invalid_reasons(&r, MetricsSource::Client).len(), 3);
    }

    #[test]
    fn a_saturated_generator_invalidates_only_the_client_s_figures() {
        let mut r = confirmed();
        r.load_generator = Some(crate::results::GeneratorHealth {
            saturated: true,
            ..Default::default()
        });
        assert!(invalid_reasons(&r, MetricsSource::Server).is_empty());
        assert_eq!(invalid_reasons(&r, MetricsSource::Client).len(), 1);
    }

    #[test]
    fn seed_windows_are_not_held_to_confirmed_edges() {
        let mut r = confirmed();
        let s = r.server.as_mut().unwrap();
        s.window = Some(crate::results::QueryWindow {
            mode: WindowMode::Seed,
            range_s: 60.0,
            eval_time_unix: 1.0,
            eval_time: String::new(),
            scrape_interval_s: None,
            scrape_interval_source: None,
            waited_before_load_s: None,
            waited_after_load_s: None,
            samples: vec![],
        });
        s.integrity.edges_confirmed = false;
        s.integrity.unconfirmed = vec!["seed window: ...".into()];
        s.requests_finished = Measured::value(1.0);
        assert!(measurement_problems(&r).is_empty());
    }
}
