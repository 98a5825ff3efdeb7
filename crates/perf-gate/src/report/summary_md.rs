//! `summary.md`: the load test in Markdown (seed 001's per-step report), for a CI or Argo step
//! summary: the run's header, one table row per step (client load, throughput, latency
//! percentiles, errors, the server's figures), the thresholds as PASS/FAIL lines and the
//! warnings. Latencies in seconds; a missing figure is `–`. Text from the results is escaped,
//! so an adapter name cannot inject Markdown or HTML.

use std::fmt::Write as _;

use super::html::num;
use super::steps::{StepView, steps};
use crate::results::{LoadTestResults, Measured, RunStatus, ThresholdOutcome};

use super::summary::md;

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), num)
}

fn measured(m: &Measured) -> String {
    cell(m.get())
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{} %", num(100.0 * v)))
}

fn header(r: &LoadTestResults, out: &mut String) {
    let icon = match r.status {
        RunStatus::Completed => "✅",
        RunStatus::Aborted => "⚠️",
        RunStatus::Failed => "❌",
    };
    let _ = write!(
        out,
        "## {icon} load-test: {}\n\nAdapter **{}**",
        r.status.as_str(),
        md(&r.measured()),
    );
    // a mix's members each have their own server and model (its table lists them)
    if r.mix.is_none() {
        let _ = write!(out, " at {}", md(&r.config.vllm_url));
        if let Some(parent) = r.adapter.as_ref().and_then(|a| a.parent.as_deref()) {
            let _ = write!(out, " (base model {})", md(parent));
        }
    }
    let _ = write!(out, "; endpoint {}", md(&r.config.endpoint));
    if let Some(t) = &r.timing {
        let _ = write!(
            out,
            "; load {} s from {}, {} s in all",
            num(t.load_duration_s),
            md(&t.load_start),
            num(t.wall_clock_duration_s)
        );
    }
    out.push_str(".\n\n");
    if let Some(e) = &r.error {
        let _ = write!(out, "**Error:** {}\n\n", md(e));
    }
}

const TABLE_HEAD: &str = "| step | load | s | requests | failed | error rate | req/s | tokens/s | TTFT P50 | TTFT P95 | TTFT P99 | ITL P95 | E2E P50 | E2E P95 | E2E P99 | server TTFT P95 | server E2E P95 | server req/s | server tokens/s | KV cache max | GPU util avg |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

fn step_row(s: &StepView<'_>, out: &mut String) {
    let _ = write!(
        out,
        "| {} | {} | {} |",
        s.index,
        md(&s.load_label()),
        cell(s.duration_s)
    );
    match s.client {
        Some(c) => {
            let error_rate =
                (c.total_requests > 0).then(|| c.failed_requests as f64 / c.total_requests as f64);
            let _ = write!(
                out,
                " {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.total_requests,
                c.failed_requests,
                percent(error_rate),
                cell(c.requests_per_s),
                cell(c.output_tokens_per_s),
                cell(c.ttft_s.p50),
                cell(c.ttft_s.p95),
                cell(c.ttft_s.p99),
                cell(c.itl_s.p95),
                cell(c.e2e_s.p50),
                cell(c.e2e_s.p95),
                cell(c.e2e_s.p99),
            );
        }
        None => out.push_str(&" – |".repeat(12)),
    }
    match s.server {
        Some(v) => {
            let _ = writeln!(
                out,
                " {} | {} | {} | {} | {} | {} |",
                measured(&v.ttft_s.p95),
                measured(&v.e2e_latency_s.p95),
                measured(&v.throughput_rps),
                measured(&v.generation_tokens_per_s),
                percent(v.kv_cache_usage_max.get()),
                v.gpu_utilization_avg
                    .get()
                    .map_or_else(|| "–".to_string(), |g| format!("{} %", num(g))),
            );
        }
        None => {
            out.push_str(&" – |".repeat(6));
            out.push('\n');
        }
    }
}

/// Seed 002's per-endpoint breakdown: one row per member of a mix, its thresholds after.
fn mix_table(mix: &crate::results::MixResults, out: &mut String) {
    out.push_str("**Mix members** (client figures; ");
    out.push_str(&md(&mix.server_note));
    out.push_str(")\n\n| member | role | model | share asked | requests | failed | error rate | req/s | tokens/s | TTFT P50 | TTFT P90 | TTFT P99 | E2E P50 | E2E P90 | E2E P99 | cold-load TTFT |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in &mix.members {
        let c = &m.client;
        let role = match m.role {
            crate::mix::Role::Target => "target",
            crate::mix::Role::Adapter => "adapter",
            crate::mix::Role::Base => "base model",
        };
        let _ = writeln!(
            out,
            "| {} | {role} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&m.name),
            md(&m.model),
            percent(Some(m.share_requested)),
            c.total_requests,
            c.failed_requests,
            percent(m.error_rate),
            cell(c.requests_per_s),
            cell(c.output_tokens_per_s),
            cell(c.ttft_s.p50),
            cell(c.ttft_s.p90),
            cell(c.ttft_s.p99),
            cell(c.e2e_s.p50),
            cell(c.e2e_s.p90),
            cell(c.e2e_s.p99),
            cell(m.cold_load.as_ref().and_then(|l| l.ttft_s)),
        );
    }
    out.push('\n');
    let crossed: Vec<String> = mix
        .members
        .iter()
        .flat_map(|m| {
            m.thresholds
                .iter()
                .map(move |o| format!("- {}: {}", md(&m.name), &threshold_line(o)[2..]))
        })
        .collect();
    if !crossed.is_empty() {
        out.push_str("**Thresholds per member**\n\n");
        out.extend(crossed);
        out.push('\n');
    }
}

fn threshold_line(o: &ThresholdOutcome) -> String {
    format!(
        "- {} `{}`: {}\n",
        if o.passed { "PASS" } else { "FAIL" },
        o.expression.replace('`', "'"),
        md(&o.reason)
    )
}

/// `summary.md` for `results` (see [`super::summary_markdown`]).
pub(crate) fn render(r: &LoadTestResults) -> String {
    let mut out = String::new();
    header(r, &mut out);
    let steps = steps(r);
    out.push_str("Latencies in seconds (client: nearest-rank over the successful requests; server: from vLLM's histograms); – = not measured.\n\n");
    out.push_str(TABLE_HEAD);
    for s in &steps {
        step_row(s, &mut out);
    }
    out.push('\n');
    let notes: Vec<String> = steps
        .iter()
        .filter_map(|s| Some(format!("- step {}: {}\n", s.index, md(s.server_note?))))
        .collect();
    if !notes.is_empty() {
        out.push_str("**Server figures**\n\n");
        out.extend(notes);
        out.push('\n');
    }
    if let Some(mix) = &r.mix {
        mix_table(mix, &mut out);
    }
    let sweep = !r.steps.is_empty();
    let step_lines: Vec<(u32, &ThresholdOutcome)> = if sweep {
        steps
            .iter()
            .flat_map(|s| s.thresholds.iter().map(move |o| (s.index, o)))
            .collect()
    } else {
        Vec::new()
    };
    if !r.thresholds.is_empty() || !step_lines.is_empty() {
        out.push_str("**Thresholds**\n\n");
        for o in &r.thresholds {
            out.push_str(&threshold_line(o));
        }
        for (i, o) in step_lines {
            out.push_str(&format!("- step {i}: {}", &threshold_line(o)[2..]));
        }
        out.push('\n');
    } else if !r.config.thresholds.is_empty() {
        let _ = write!(
            out,
            "**Thresholds** not evaluated (status {}: only a completed run is judged).\n\n",
            r.status.as_str()
        );
    }
    if !r.warnings.is_empty() {
        out.push_str("**Warnings**\n\n");
        for w in &r.warnings {
            let _ = writeln!(out, "- {}", md(w));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn table_rows(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| step"))
            .collect()
    }

    #[test]
    fn a_sweep_has_one_row_per_step_and_its_thresholds() {
        let text = render(&fixtures::two_step_results());
        assert!(text.starts_with("## ✅ load-test: completed\n"), "{text}");
        assert!(text.contains("Adapter **aws-rag-qa-candidate**"), "{text}");
        let rows = table_rows(&text);
        assert_eq!(rows.len(), 2, "{text}");
        let cols = TABLE_HEAD.lines().next().unwrap().matches('|').count();
        assert!(
            rows.iter().all(|r| r.matches('|').count() == cols),
            "{text}"
        );
        assert!(
            rows[0].starts_with("| 0 | c=2 | 10 | 40 | 0 | 0 % | 4 |"),
            "{text}"
        );
        assert!(
            rows[1].starts_with("| 1 | c=8 | 10 | 60 | 3 | 5 % | 5.7 |"),
            "{text}"
        );
        // step 1 has no server figures: dashes, and the note says why
        assert!(rows[1].ends_with("| – | – | – | – | – | – |"), "{text}");
        assert!(
            text.contains("- step 1: Prometheus did not answer for this step's window"),
            "{text}"
        );
        assert!(
            text.contains("- step 1: FAIL `error_rate<1%`: 0.05 is not &lt; 0.01"),
            "{text}"
        );
    }

    #[test]
    fn a_mix_has_one_row_per_member_with_its_cold_load_and_thresholds() {
        let mut r = fixtures::results();
        let client = r.client.clone().unwrap();
        let member =
            |name: &str, role, cold: Option<f64>, passed: bool| crate::results::MixMemberResult {
                name: name.into(),
                role,
                api: Default::default(),
                concurrency: None,
                url: None,
                model: format!("{name}-model"),
                weight: 1.0,
                share_requested: 0.5,
                share_sent: Some(0.5),
                error_rate: Some(0.0),
                client: client.clone(),
                cold_load: cold.map(|t| crate::results::ColdLoad {
                    ok: true,
                    ttft_s: Some(t),
                    e2e_s: Some(t + 0.1),
                    extra_ttft_over_p50_s: Some(t - 0.1),
                    error: None,
                }),
                thresholds: vec![ThresholdOutcome {
                    expression: "ttft_p50<1s".into(),
                    metric: "ttft_p50".into(),
                    op: "<".into(),
                    limit: 1.0,
                    value: Some(0.3),
                    passed,
                    reason: "reason".into(),
                }],
            };
        r.mix = Some(crate::results::MixResults {
            kind: crate::mix::MixKind::Adapters,
            split: String::new(),
            server_note: "pooled <by base model>".into(),
            members: vec![
                member("sql|lora", crate::mix::Role::Adapter, Some(1.25), false),
                member("base", crate::mix::Role::Base, None, true),
            ],
        });
        let text = render(&r);
        assert!(
            text.contains("**Mix members** (client figures; pooled &lt;by base model&gt;)"),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| sql") || l.starts_with("| base"))
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            rows[0].starts_with("| sql\\|lora | adapter | sql\\|lora-model | 50 % |"),
            "{}",
            rows[0]
        );
        assert!(rows[0].ends_with("| 1.25 |"), "{}", rows[0]);
        assert!(
            rows[1].starts_with("| base | base model |") && rows[1].ends_with("| – |"),
            "{}",
            rows[1]
        );
        assert!(
            text.contains("- sql\\|lora: FAIL `ttft_p50<1s`: reason"),
            "{text}"
        );
    }

    #[test]
    fn a_run_of_one_load_shows_its_thresholds_and_warnings_escaped() {
        let mut r = fixtures::results();
        r.warnings.push("a <b>bold</b> | claim".into());
        r.thresholds.push(ThresholdOutcome {
            expression: "ttft_p95<2s".into(),
            metric: "ttft_p95".into(),
            op: "<".into(),
            limit: 2.0,
            value: Some(0.525),
            passed: true,
            reason: "0.525 s < 2 s".into(),
        });
        let text = render(&r);
        let rows = table_rows(&text);
        assert_eq!(rows.len(), 1);
        // seconds, server KV cache as a percentage, missing GPU figures as dashes
        assert!(
            rows[0].starts_with("| 0 | c=10 | 20 | 100 | 0 | 0 % | 5 | 1254 | "),
            "{text}"
        );
        assert!(
            rows[0].ends_with("| 0.5 | 4 | 5 | 1280 | 25 % | – |"),
            "{text}"
        );
        assert!(
            text.contains("- PASS `ttft_p95<2s`: 0.525 s &lt; 2 s\n"),
            "{text}"
        );
        assert!(
            text.contains("- a &lt;b&gt;bold&lt;/b&gt; \\| claim\n"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_run_says_why_and_has_a_row_of_dashes() {
        let mut r = fixtures::results();
        r.status = RunStatus::Failed;
        r.error = Some("vLLM is not ready".into());
        r.client = None;
        r.server = None;
        r.timing = None;
        r.config.thresholds = vec!["rps>1".into()];
        let text = render(&r);
        assert!(text.starts_with("## ❌ load-test: failed\n"), "{text}");
        assert!(text.contains("**Error:** vLLM is not ready"), "{text}");
        let rows = table_rows(&text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].matches('–').count(), 19, "{text}");
        assert!(text.contains("**Thresholds** not evaluated"), "{text}");
    }
}
