//! `perf_decision_summary.md`: the decision in a few lines of Markdown, for a CI job summary
//! (`$GITHUB_STEP_SUMMARY`) or an Argo step's output. Text from the documents is escaped, so a
//! model name cannot inject Markdown or HTML.

use super::decision::{check_name, op, verdict_word};
use super::html::{num, opt_num};
use crate::decide::PerfDecision;
use crate::decision::statistics::Outcome;

/// `text` as literal Markdown: HTML's specials as entities, Markdown's punctuation escaped,
/// line breaks as spaces (a table cell stays one cell).
pub(crate) fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn mark(passed: bool) -> &'static str {
    if passed { "✅" } else { "❌" }
}

fn outcome_mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "✅",
        Outcome::Failed => "❌",
        Outcome::Inconclusive => "⚠️",
    }
}

/// The summary (see [`super::decision_summary_markdown`]).
pub(crate) fn render(d: &PerfDecision) -> String {
    let word = verdict_word(d);
    let icon = match word {
        "passed" => "✅",
        "failed" => "❌",
        "inconclusive" => "⚠️",
        _ => "⛔",
    };
    let mut out = format!(
        "## {icon} perf-decision: {word}\n\nModel **{}**",
        md(&d.model_name)
    );
    if let Some(v) = &d.candidate_version {
        out.push_str(&format!(" version **{}**", md(v)));
    }
    if let Some(a) = &d.candidate_adapter {
        out.push_str(&format!(", adapter {}", md(a)));
    }
    out.push_str(&format!(
        "; {} mode, {} decision, {} figures",
        d.mode.as_str(),
        d.decision_method.as_str(),
        d.metrics_source.as_str()
    ));
    match &d.baseline {
        Some(b) => out.push_str(&format!(
            "; baseline {}",
            md(b.version
                .as_deref()
                .or(b.run_id.as_deref())
                .or(b.file.as_deref())
                .unwrap_or("unknown"))
        )),
        None => out.push_str("; no baseline"),
    }
    out.push_str(".\n\n");
    if !d.invalid_reasons.is_empty() {
        out.push_str("**The measurement cannot be trusted:**\n\n");
        for r in &d.invalid_reasons {
            out.push_str(&format!("- {}\n", md(r)));
        }
        out.push('\n');
    }
    if !d.checks.is_empty() {
        out.push_str(
            "| | check | value | limit | vs baseline | reason |\n|---|---|---:|---:|---:|---|\n",
        );
        for c in &d.checks {
            out.push_str(&format!(
                "| {} | {} | {} | {} {} | {} | {} |\n",
                mark(c.passed),
                md(&check_name(c)),
                opt_num(c.value),
                op(c.absolute_op),
                num(c.absolute_limit),
                c.relative_limit
                    .map(|l| format!("{} {}", op(c.relative_op), num(l)))
                    .unwrap_or_default(),
                md(&c.reason)
            ));
        }
        out.push('\n');
    }
    if let Some(s) = &d.statistics {
        out.push_str(&format!(
            "**Statistical comparison** ({}, family confidence {} %): {} {}\n\n",
            md(&s.pairing),
            num(100.0 * s.confidence_level),
            outcome_mark(s.outcome),
            s.outcome.as_str()
        ));
        out.push_str("| | metric | point | interval | limit |\n|---|---|---:|---|---:|\n");
        for m in &s.metrics {
            let interval = match (m.lo, m.hi) {
                (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
                _ => "none".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                outcome_mark(m.outcome),
                md(&m.name),
                opt_num(m.point),
                interval,
                num(m.limit)
            ));
        }
        out.push('\n');
    }
    if !d.warnings.is_empty() {
        out.push_str("**Warnings**\n\n");
        for w in &d.warnings {
            out.push_str(&format!("- {}\n", md(w)));
        }
        out.push('\n');
    }
    if let Some(url) = d.mlflow.as_ref().and_then(|m| m.run_url.as_deref()) {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            // a link destination in <...> may hold anything but a line break or < >
            let dest: String = url
                .chars()
                .filter(|c| !matches!(c, '<' | '>' | '\n' | '\r'))
                .collect();
            out.push_str(&format!("[The MLflow run](<{dest}>)\n"));
        } else {
            out.push_str(&format!("MLflow run: {}\n", md(url)));
        }
    }
    out
}
