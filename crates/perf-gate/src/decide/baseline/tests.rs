use super::*;
use crate::decision::load_settings::candidate_settings;
use crate::fixtures;

fn settings() -> LoadSettings {
    candidate_settings(&fixtures::results(), MetricsSource::Server)
}

/// A passed run of model `m` for `version`, recording `settings` and the seed's thresholds.
fn run(id: &str, version: &str, settings: &LoadSettings, tweak: &[(&str, &str)]) -> Run {
    let mut params: Vec<serde_json::Value> = settings
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    params.push(serde_json::json!({"key": "model_name", "value": "m"}));
    params.push(serde_json::json!({"key": "candidate_version", "value": version}));
    for (_, p, v) in Thresholds::SEED.entries() {
        params.push(serde_json::json!({"key": p, "value": v.to_string()}));
    }
    for (k, v) in tweak {
        params.retain(|p| p["key"] != *k);
        params.push(serde_json::json!({"key": k, "value": v}));
    }
    serde_json::from_value(serde_json::json!({
        "info": {"run_id": id, "experiment_id": "1"},
        "data": {"params": params, "metrics": [{"key": "p95_latency_s", "value": 4.0}]}
    }))
    .unwrap()
}

fn pick(runs: &[Run]) -> Choice {
    choose(
        runs,
        "m",
        "7",
        &settings(),
        &Thresholds::SEED,
        MetricsSource::Server,
    )
}

#[test]
fn the_newest_comparable_run_wins() {
    let s = settings();
    let c = pick(&[run("r3", "6", &s, &[]), run("r2", "5", &s, &[])]);
    let b = c.baseline.unwrap();
    assert_eq!(b.run_id.as_deref(), Some("r3"));
    assert!(b.skipped.is_empty() && c.warning.is_none());
}

#[test]
fn lax_passes_are_skipped_with_their_reasons() {
    let s = settings();
    let mut other_load = s.clone();
    other_load.insert("concurrency".into(), "32".into());
    let runs = [
        run("r5", "6", &s, &[("max_p95_latency", "30")]),
        run("r4", "6", &s, &[("metrics_source", "client")]),
        run("r3", "6", &other_load, &[]),
        run("r2", "6", &s, &[("warmup_requests", "5")]),
        run("r1", "5", &s, &[]),
    ];
    let c = pick(&runs);
    let b = c.baseline.unwrap();
    assert_eq!(b.run_id.as_deref(), Some("r1"));
    assert_eq!(b.skipped.len(), 4, "{:?}", b.skipped);
    assert!(
        b.skipped[0].contains("--max-p95-latency 30, looser than 8"),
        "{:?}",
        b.skipped
    );
    assert!(
        b.skipped[1].contains("judged on the client figures"),
        "{:?}",
        b.skipped
    );
    assert!(b.skipped[2].contains("concurrency 32"), "{:?}", b.skipped);
    assert!(
        b.skipped[3].contains("warm-up requests 5"),
        "{:?}",
        b.skipped
    );
    assert!(c.warning.is_none());
}

#[test]
fn stricter_thresholds_are_not_lax() {
    let s = settings();
    let c = pick(&[run(
        "r1",
        "6",
        &s,
        &[("max_p95_latency", "4"), ("min_success_rate", "1")],
    )]);
    assert_eq!(c.baseline.unwrap().run_id.as_deref(), Some("r1"));
}

#[test]
fn a_version_is_never_its_own_baseline() {
    let s = settings();
    let c = pick(&[run("r2", "7", &s, &[]), run("r1", "6", &s, &[])]);
    let b = c.baseline.unwrap();
    assert_eq!(b.run_id.as_deref(), Some("r1"));
    assert!(
        b.skipped[0].contains("version 7, the candidate itself"),
        "{:?}",
        b.skipped
    );
    let only_self = pick(&[run("r2", "7", &s, &[])]);
    assert!(only_self.baseline.is_none());
    assert!(only_self.warning.unwrap().contains("the candidate itself"));
}

#[test]
fn without_a_comparable_run_the_newest_is_used_with_a_warning() {
    let s = settings();
    let mut other = s.clone();
    other.insert("max_tokens".into(), "64".into());
    let c = pick(&[run("r2", "6", &other, &[]), run("r1", "5", &other, &[])]);
    let b = c.baseline.unwrap();
    assert_eq!(b.run_id.as_deref(), Some("r2"));
    let w = c.warning.unwrap();
    assert!(
        w.ends_with("the newest, run r2, is the baseline anyway"),
        "{w}"
    );
    // a looser threshold is named (its load differences are warned about elsewhere)
    let c = pick(&[run("r2", "6", &other, &[("min_throughput", "1")])]);
    let w = c.warning.unwrap();
    assert!(
        w.ends_with("; it passed with --min-throughput 1, looser than 2"),
        "{w}"
    );
}

#[test]
fn an_inconclusive_pass_is_never_a_baseline_but_an_untagged_older_run_is() {
    let s = settings();
    let mut inconclusive = run("r3", "6", &s, &[]);
    inconclusive.data.tags = serde_json::from_value(serde_json::json!([
        {"key": "perf_decision", "value": "passed"},
        {"key": "perf_verdict", "value": "inconclusive"}
    ]))
    .unwrap();
    let c = pick(&[inconclusive, run("r2", "5", &s, &[])]);
    let b = c.baseline.unwrap();
    assert_eq!(
        b.run_id.as_deref(),
        Some("r2"),
        "a run without the tag stays eligible"
    );
    assert_eq!(b.skipped.len(), 1);
    assert!(b.skipped[0].contains("inconclusive"), "{:?}", b.skipped);
}

#[test]
fn an_override_is_never_a_baseline_nor_a_fallback() {
    let s = settings();
    let mut overridden = run("r3", "6", &s, &[]);
    overridden
        .data
        .tags
        .push(crate::mlflow::types::KeyValue::new(OVERRIDE_TAG, "true"));
    let c = pick(&[overridden.clone(), run("r1", "5", &s, &[])]);
    let b = c.baseline.unwrap();
    assert_eq!(b.run_id.as_deref(), Some("r1"));
    assert_eq!(
        b.skipped,
        ["run r3 (version 6): an override (perf-decision override), not a measurement"]
    );
    // an override records no load settings: it would be the fallback, were it not skipped
    let only = pick(&[overridden]);
    assert!(only.baseline.is_none());
    let w = only.warning.unwrap();
    assert!(
        w.starts_with("no passed run can be the baseline: run r3 (version 6): an override"),
        "{w}"
    );
}

#[test]
fn when_every_other_pass_was_inconclusive_the_newest_is_the_baseline_not_absolute_mode() {
    let s = settings();
    let tags = |r: &mut Run| {
        r.data.tags = serde_json::from_value(serde_json::json!([
            {"key": "perf_decision", "value": "passed"},
            {"key": "perf_verdict", "value": "inconclusive"}
        ]))
        .unwrap();
    };
    let (mut r3, mut r2) = (run("r3", "6", &s, &[]), run("r2", "5", &s, &[]));
    tags(&mut r3);
    tags(&mut r2);
    let c = pick(&[r3, r2]);
    assert_eq!(c.baseline.unwrap().run_id.as_deref(), Some("r3"));
    assert!(
        c.warning
            .unwrap()
            .contains("inconclusive verdict: the newest, run r3")
    );
}
