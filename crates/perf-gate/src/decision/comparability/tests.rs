use super::*;
use crate::decision::checks::{Evaluation, Mode, Verdict};
use crate::decision::load_settings::candidate_settings;
use crate::decision::metrics::MetricsSource;
use crate::fixtures;
use crate::results::ServerSource;

fn settings(pairs: &[(&str, &str)]) -> LoadSettings {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn candidate() -> LoadSettings {
    candidate_settings(&fixtures::results(), MetricsSource::Server)
}

#[test]
fn the_candidate_settings_come_from_the_results() {
    assert_eq!(
        candidate(),
        settings(&[
            ("eval_data_digest", "d9a73a27"),
            ("concurrency", "10"),
            ("max_tokens", "256"),
            ("endpoint", "completions"),
            ("temperature", "0"),
            ("rate", "none"),
            ("arrival", "constant"),
            ("max_inflight", "none"),
            ("num_requests", "none"),
            ("window_mode", "end_anchored"),
            ("server_source", "prometheus"),
            ("warmup_requests", "0"),
            ("preconnect", "true"),
            ("ab_interleaved", "false"),
            ("load_shape", "list"),
            ("max_tokens_dist", "none"),
            ("ignore_eos", "false"),
            ("api", "openai"),
            ("metrics_source", "server"),
        ])
    );
    let mut r = fixtures::results();
    r.config.rate = Some(2.5);
    r.config.num_requests = Some(500);
    r.server.as_mut().unwrap().source = ServerSource::VllmMetrics;
    r.eval_data = None;
    let s = candidate_settings(&r, MetricsSource::Client);
    assert_eq!(s["rate"], "2.5");
    assert_eq!(
        s["max_inflight"], "10",
        "results before --max-inflight capped the open loop at --concurrency"
    );
    assert_eq!(s["num_requests"], "500");
    assert_eq!(s["load_shape"], "list");
    assert_eq!(
        s["window_mode"], "none",
        "no PromQL window without Prometheus"
    );
    assert_eq!(s["server_source"], "vllm_metrics");
    assert_eq!(s["metrics_source"], "client");
    assert!(!s.contains_key("eval_data_digest"));
    r.server = None;
    let s = candidate_settings(&r, MetricsSource::Server);
    assert!(!s.contains_key("window_mode") && !s.contains_key("server_source"));
}

#[test]
fn the_same_load_is_comparable_without_warning() {
    let c = compare(&candidate(), &candidate());
    assert_eq!(
        c,
        Comparability {
            comparable: true,
            reasons: vec![],
            notes: vec![]
        }
    );
    // numbers compare as numbers
    let mut b = candidate();
    b.insert("temperature".into(), "0.0".into());
    b.insert("concurrency".into(), "10.0".into());
    assert!(compare(&candidate(), &b).comparable);
}

#[test]
fn each_difference_is_a_reason_naming_both_values() {
    let cases = [
        (
            "eval_data_digest",
            "1f00aa12",
            "baseline used eval digest 1f00aa12, candidate d9a73a27: the relative checks compare different prompts",
        ),
        (
            "concurrency",
            "20",
            "baseline used concurrency 20, candidate 10: latency and throughput depend on the requests in flight",
        ),
        (
            "max_tokens",
            "128",
            "baseline used max_tokens 128, candidate 256: the output length bound changes E2E latency and throughput directly",
        ),
        (
            "endpoint",
            "chat",
            "baseline used endpoint chat, candidate completions: the chat template changes the prompts the server sees",
        ),
        (
            "temperature",
            "0.7",
            "baseline used temperature 0.7, candidate 0: sampling changes output lengths, so latency",
        ),
        (
            "rate",
            "5",
            "baseline used rate 5, candidate none (closed loop): another arrival process puts another load on the server",
        ),
        (
            "num_requests",
            "1000",
            "baseline used num_requests 1000, candidate none (each prompt once): another number of requests changes the samples behind each percentile",
        ),
        (
            "window_mode",
            "seed",
            "baseline used window mode seed, candidate end_anchored: the server figures were computed over differently chosen PromQL windows",
        ),
        (
            "server_source",
            "vllm_metrics",
            "baseline used server metrics source vllm_metrics, candidate prometheus: the server figures were read from Prometheus in one run and from vLLM's /metrics in the other",
        ),
    ];
    for (key, value, text) in cases {
        let mut b = candidate();
        b.insert(key.into(), value.into());
        let c = compare(&candidate(), &b);
        assert!(!c.comparable, "{key}");
        assert_eq!(c.reasons, [text], "{key}");
        assert!(c.notes.is_empty());
    }
    // several at once: one line each, in the table's order
    let mut b = candidate();
    b.insert("max_tokens".into(), "64".into());
    b.insert("eval_data_digest".into(), "1f00aa12".into());
    let c = compare(&candidate(), &b);
    assert_eq!(c.reasons.len(), 2);
    assert!(c.reasons[0].starts_with("baseline used eval digest"));
    assert!(c.reasons[1].starts_with("baseline used max_tokens 64"));
}

#[test]
fn unrecorded_settings_make_it_not_comparable_in_one_line() {
    // a run logged before the new params: digest, concurrency and metrics source only
    let old = settings(&[
        ("eval_data_digest", "d9a73a27"),
        ("concurrency", "10"),
        ("metrics_source", "server"),
    ]);
    let c = compare(&candidate(), &old);
    assert!(!c.comparable);
    assert_eq!(
        c.reasons,
        [
            "the baseline does not record its max_tokens, endpoint, temperature, rate, max in flight, num_requests, window mode, warm-up requests, preconnect, server metrics source (runs logged by an older perf-decision lack them): cannot tell whether it ran the same load"
        ]
    );
    // and the other way round
    let mut r = fixtures::results();
    r.eval_data = None;
    let c = compare(&candidate_settings(&r, MetricsSource::Server), &candidate());
    assert_eq!(
        c.reasons,
        [
            "the candidate's results do not record its eval digest: cannot tell whether the baseline ran the same load"
        ]
    );
}

#[test]
fn another_metrics_source_is_a_note_not_an_incomparability() {
    let client = candidate_settings(&fixtures::results(), MetricsSource::Client);
    let c = compare(&client, &candidate());
    assert!(c.comparable);
    assert!(c.reasons.is_empty());
    assert_eq!(
        c.notes,
        [
            "baseline was judged on the server figures, candidate on the client figures: checks 1-3 compare the candidate's client figures with the baseline's, which its own decision did not gate"
        ]
    );
}

fn baseline(comparable: bool, reasons: &[&str]) -> Comparability {
    Comparability {
        comparable,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        notes: Vec::new(),
    }
}

#[test]
fn the_fifth_check_fails_only_an_incomparable_baseline() {
    let absolute = comparable_check(None);
    assert!(absolute.passed);
    assert_eq!(absolute.name, CheckName::ComparableBaseline);
    assert_eq!(absolute.value, None);
    assert!(absolute.reason.starts_with("no baseline (absolute mode)"));

    let ok = comparable_check(Some(&baseline(true, &[])));
    assert!(ok.passed);
    assert_eq!(ok.value, Some(1.0));

    let bad = comparable_check(Some(&baseline(
        false,
        &["baseline used concurrency 20, candidate 10: x", "y"],
    )));
    assert!(!bad.passed);
    assert_eq!(bad.value, Some(0.0));
    assert_eq!(
        bad.reason,
        "the baseline is not comparable and --require-comparable-baseline is set: baseline used concurrency 20, candidate 10: x; y"
    );
    // never assessed: fails closed
    let unknown = comparable_check(Some(&baseline(false, &[])));
    assert!(!unknown.passed);
    assert!(unknown.reason.ends_with("its load was not assessed"));
}

#[test]
fn a_failed_fifth_check_fails_a_passed_evaluation_and_a_passed_one_changes_nothing() {
    let mut eval = Evaluation {
        verdict: Verdict::Passed,
        mode: Mode::Comparative,
        checks: vec![],
    };
    eval.push(comparable_check(Some(&baseline(true, &[]))));
    assert_eq!(eval.verdict, Verdict::Passed);
    eval.push(comparable_check(Some(&baseline(false, &["r"]))));
    assert_eq!(eval.verdict, Verdict::Failed);
    assert_eq!(eval.checks.len(), 2);
    // a failed verdict stays failed whatever is added
    eval.push(comparable_check(None));
    assert_eq!(eval.verdict, Verdict::Failed);
}

#[test]
fn a_run_before_same_server_ab_counts_as_a_single_adapter_run() {
    let c = candidate();
    let mut old = c.clone();
    old.remove("ab_interleaved");
    assert!(
        compare(&c, &old).comparable,
        "{:?}",
        compare(&c, &old).reasons
    );
    let mut ab = c.clone();
    ab.insert("ab_interleaved".into(), "true".into());
    let got = compare(&ab, &old);
    assert!(!got.comparable);
    assert!(
        got.reasons[0].contains("baseline used same-server A/B false, candidate true"),
        "{:?}",
        got.reasons
    );
}

#[test]
fn a_run_before_open_loop_arrivals_is_constant_and_capped_at_its_concurrency() {
    let open = |max_inflight: &str| {
        let mut s = candidate();
        s.insert("rate".into(), "50".into());
        s.insert("max_inflight".into(), max_inflight.into());
        s
    };
    // an old closed-loop baseline: no arrival, no max_inflight
    let mut old = candidate();
    old.remove("arrival");
    old.remove("max_inflight");
    assert!(compare(&candidate(), &old).comparable);
    // an old open-loop baseline was capped at its concurrency (10)
    old.insert("rate".into(), "50".into());
    assert!(compare(&open("10"), &old).comparable);
    let got = compare(&open("1024"), &old);
    assert!(
        got.reasons[0].contains("baseline used max in flight 10, candidate 1024"),
        "{:?}",
        got.reasons
    );
    let mut poisson = open("10");
    poisson.insert("arrival".into(), "poisson".into());
    let got = compare(&poisson, &old);
    assert!(
        got.reasons[0].contains("baseline used arrival constant, candidate poisson"),
        "{:?}",
        got.reasons
    );
}

#[test]
fn a_timed_load_is_another_load_shape() {
    let mut r = fixtures::results();
    r.config.duration_s = Some(60.0);
    r.config.warmup_s = 10.0;
    r.config.ramp_up_s = Some(5.0);
    r.config.think = Some("standard=3,high=1".into());
    let shape = candidate_settings(&r, MetricsSource::Server)["load_shape"].clone();
    assert_eq!(
        shape,
        "duration=60s,warmup=10s,ramp_up=5s,think=standard=3/high=1"
    );
    let listed = candidate();
    let timed = candidate_settings(&r, MetricsSource::Server);
    let c = compare(&listed, &timed);
    assert!(!c.comparable);
    assert!(
        c.reasons.iter().any(|r| r.contains("load shape")),
        "{:?}",
        c.reasons
    );
    // a baseline logged before timed loads recorded no shape: it was a list
    let mut old = candidate();
    old.remove("load_shape");
    assert!(
        compare(&old, &listed).comparable,
        "{:?}",
        compare(&old, &listed)
    );
}

#[test]
fn a_run_before_inputs_had_a_fixed_max_tokens_and_no_ignore_eos() {
    let c = candidate();
    let mut old = c.clone();
    old.remove("max_tokens_dist");
    old.remove("ignore_eos");
    old.remove("api");
    assert!(
        compare(&c, &old).comparable,
        "{:?}",
        compare(&c, &old).reasons
    );
    let mut eos = c.clone();
    eos.insert("ignore_eos".into(), "true".into());
    eos.insert("max_tokens_dist".into(), "uniform:8:64".into());
    eos.insert("api".into(), "llamacpp".into());
    let got = compare(&eos, &old);
    assert!(!got.comparable);
    let all = got.reasons.join("\n");
    assert!(
        all.contains("baseline used ignore_eos false, candidate true"),
        "{all}"
    );
    assert!(
        all.contains("baseline used max_tokens distribution none, candidate uniform:8:64"),
        "{all}"
    );
    assert!(
        all.contains("baseline used serving API openai, candidate llamacpp"),
        "a run before --api spoke vLLM's OpenAI API: {all}"
    );
}
