use std::time::{Duration, Instant};

use super::*;
use crate::fixtures::report::{LOAD, Load, decision, history, sampled_results};
use crate::fixtures::{self, GOOD};
use crate::results::{BaselineArm, RunStatus};

const DECISION_PLOTS: [(&str, &str); 9] = [
    ("plot-checks", "Checks"),
    ("plot-statistics", "Statistical verdict"),
    ("plot-ttft-distribution", "TTFT distribution"),
    ("plot-e2e-distribution", "E2E latency distribution"),
    ("plot-ttft-over-time", "TTFT over time"),
    ("plot-e2e-over-time", "E2E latency over time"),
    ("plot-throughput-over-time", "Throughput over time"),
    ("plot-in-flight", "Requests in flight over time"),
    ("plot-drift", "Drift history"),
];

fn candidate() -> LoadTestResults {
    sampled_results(fixtures::ADAPTER, GOOD, LOAD)
}

fn baseline() -> LoadTestResults {
    sampled_results(
        "aws-rag-qa-v2",
        GOOD,
        Load {
            seed: 2,
            e2e_s: 2.8,
            ..LOAD
        },
    )
}

/// The figure `id`'s SVG, from its `<svg` to its `</svg>`.
fn svg_of<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("<figure id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let rest = &html[at..];
    let start = rest
        .find("<svg")
        .unwrap_or_else(|| panic!("{id} has no svg"));
    let end = rest
        .find("</svg>")
        .unwrap_or_else(|| panic!("{id} unclosed"));
    assert!(start < end && end < rest.find("</figure>").unwrap());
    &rest[start..end]
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-"));
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<script", "<link", "<img", "<iframe", "src=", "@import", "url(",
    ] {
        assert!(!lower.contains(banned), "found {banned}");
    }
    assert!(!html.contains(" style=\""), "no inline style attribute");
}

#[test]
fn the_decision_report_has_every_plot_with_its_title() {
    let (c, b) = (candidate(), baseline());
    let d = decision(&c, &b);
    let h = history();
    let html = render_decision(&DecisionReport {
        decision: &d,
        candidate: Some(&c),
        baseline: Some(&b),
        history: &h,
    });
    assert_self_contained(&html);
    for (id, title) in DECISION_PLOTS {
        let svg = svg_of(&html, id);
        assert!(svg.contains(&format!("aria-label=\"{title}\"")), "{id}");
        assert!(svg.contains(&format!("<title>{title}</title>")), "{id}");
        assert!(
            ["<polyline", "<circle", "<rect", "<line"]
                .iter()
                .any(|e| svg.contains(e)),
            "{id} draws something"
        );
    }
    assert!(html.contains("<header class=\"banner inconclusive\">"));
    assert!(html.contains("<td class=\"passed\">passed</td>"));
    assert!(html.contains("<td class=\"inconclusive\">inconclusive</td>"));
    assert!(html.contains("href=\"http://mlflow:5000/#/experiments/1/runs/c0ffee\""));
    // both arms in the legends
    let ttft = svg_of(&html, "plot-ttft-distribution");
    assert!(
        ttft.contains("candidate (aws-rag-qa-candidate)")
            && ttft.contains("baseline (aws-rag-qa-v2)")
    );
    assert!(html.contains("Failed requests are not counted (20 candidate, 20 baseline)"));
}

#[test]
fn document_strings_are_escaped_everywhere() {
    let evil = "<script>alert(1)</script>";
    let mut c = sampled_results(evil, GOOD, LOAD);
    c.warnings.push(format!("warning {evil}"));
    let mut d = decision(&c, &baseline());
    d.model_name = evil.into();
    d.checks[0].reason = format!("because {evil} | x");
    d.warnings.push(evil.into());
    let mut h = history();
    h[0].label = evil.into();
    let html = render_decision(&DecisionReport {
        decision: &d,
        candidate: Some(&c),
        baseline: None,
        history: &h,
    });
    assert_self_contained(&html);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains(evil));
    let load = render_load_test(&c);
    assert_self_contained(&load);
    assert!(!load.contains(evil));
    let md = decision_summary_markdown(&d);
    assert!(!md.contains("<script"), "{md}");
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(md.contains("because &lt;script&gt;alert(1)&lt;/script&gt; \\| x"));
}

#[test]
fn missing_data_is_said_in_words() {
    // a version-2 results file: no samples
    let old = fixtures::results();
    let html = render_load_test(&old);
    assert_self_contained(&html);
    assert!(html.contains("carry no per-request samples"));
    assert!(!html.contains("<svg"));
    // a load that never started
    let mut failed = fixtures::results();
    failed.status = RunStatus::Failed;
    failed.error = Some("vLLM unreachable".into());
    (failed.timing, failed.client, failed.server, failed.validity) = (None, None, None, None);
    let html = render_load_test(&failed);
    assert!(html.contains("load never started"));
    assert!(html.contains("no server figures"));
    // damaged samples
    let mut damaged = candidate();
    if let Some(s) = damaged.client.as_mut().and_then(|c| c.samples.as_mut()) {
        s.count += 1;
    }
    assert!(render_load_test(&damaged).contains("per-request samples cannot be read"));
    // a decision alone: no results, no statistics, no history, no checks
    let mut d = decision(&candidate(), &baseline());
    d.statistics = None;
    d.checks.clear();
    d.baseline = None;
    d.mlflow = None;
    let html = render_decision(&DecisionReport {
        decision: &d,
        candidate: None,
        baseline: None,
        history: &[],
    });
    assert_self_contained(&html);
    for said in [
        "no check was made",
        "there is no baseline",
        "the candidate&#39;s results were not given",
        "no history of earlier passed runs",
    ] {
        assert!(html.contains(said), "{said}");
    }
    let md = decision_summary_markdown(&d);
    assert!(!md.contains("MLflow") && !md.contains("Statistical"));
}

#[test]
fn a_same_server_ab_shows_both_arms() {
    let mut r = candidate();
    let b = baseline();
    r.config.baseline_adapter = Some(b.config.adapter_name.clone());
    r.baseline_arm = Some(BaselineArm {
        adapter: b.adapter.clone().unwrap(),
        client: b.client.clone().unwrap(),
    });
    let html = render_load_test(&r);
    let inflight = svg_of(&html, "plot-in-flight");
    assert!(inflight.contains("candidate in flight") && inflight.contains("baseline in flight"));
    assert!(inflight.contains("concurrency 10"));
    assert!(html.contains("<th>baseline (aws-rag-qa-v2)</th>"));
}

#[test]
fn rendering_is_deterministic() {
    let (c, b) = (candidate(), baseline());
    let d = decision(&c, &b);
    let h = history();
    let report = DecisionReport {
        decision: &d,
        candidate: Some(&c),
        baseline: Some(&b),
        history: &h,
    };
    // the same documents read back from JSON render to the same bytes
    let c2: LoadTestResults = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    let d2: PerfDecision = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    let again = DecisionReport {
        decision: &d2,
        candidate: Some(&c2),
        ..report
    };
    assert_eq!(render_decision(&report), render_decision(&again));
    assert_eq!(render_load_test(&c), render_load_test(&c2));
    assert_eq!(
        decision_summary_markdown(&d),
        decision_summary_markdown(&d2)
    );
}

#[test]
fn the_summary_has_verdict_checks_intervals_and_link() {
    let d = decision(&candidate(), &baseline());
    let md = decision_summary_markdown(&d);
    assert!(
        md.starts_with(
            "## ⚠️ perf-decision: inconclusive\n\nModel **mistral-7b-lora** version **3**, adapter aws-rag-qa-candidate; comparative mode, seed decision, server figures; baseline 2.\n"
        ),
        "{md}"
    );
    assert!(md.contains("| ✅ | p95\\_latency |"), "{md}");
    assert!(
        md.contains("| ⚠️ | p95\\_ttft\\_ratio | 1.08 | [0.98, 1.21] | 1.15 |"),
        "{md}"
    );
    assert!(md.contains("- the baseline ran separately"));
    assert!(md.ends_with("[The MLflow run](<http://mlflow:5000/#/experiments/1/runs/c0ffee>)\n"));
}

#[test]
fn a_large_load_renders_quickly() {
    let big = Load {
        requests: 100_000,
        concurrency: 64,
        ..LOAD
    };
    let (c, b) = (
        sampled_results("big", GOOD, big),
        sampled_results("base", GOOD, Load { seed: 7, ..big }),
    );
    let d = decision(&c, &b);
    let h = history();
    let t = Instant::now();
    let html = render_decision(&DecisionReport {
        decision: &d,
        candidate: Some(&c),
        baseline: Some(&b),
        history: &h,
    });
    let took = t.elapsed();
    eprintln!(
        "100k + 100k requests rendered in {took:?}, {} bytes",
        html.len()
    );
    // unoptimised test build on a shared 2-core machine; the release build is far faster
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(html.len() < 3_000_000, "{} bytes", html.len());
    assert!(html.contains("every 50th request"));
}
