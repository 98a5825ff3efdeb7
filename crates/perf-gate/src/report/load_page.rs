//! `load_test_report.html`: the run (settings, timing, whether it can be trusted), the load's
//! client figures and plots for each arm (see `load`), and the server's figures with the reason
//! for each one missing.

use super::html::{Cell, esc, missing, notes, num, opt_num, page, table};
use super::load::{ArmView, sections};
use crate::results::{LoadTestResults, Measured, ServerQuantiles};

/// A server figure with its reason when missing.
fn measured(m: &Measured) -> Cell {
    match (m.get(), &m.reason) {
        (Some(v), _) => Cell::Num(num(v)),
        (None, Some(why)) => Cell::Text(format!("missing: {why}")),
        (None, None) => Cell::Text("missing".into()),
    }
}

/// The page (see [`super::render_load_test`]).
pub(crate) fn render(r: &LoadTestResults) -> String {
    let status = r.status.as_str();
    let valid = r.validity.as_ref().is_none_or(|v| v.valid);
    let class = match (status, valid) {
        ("completed", true) => "passed",
        ("completed", false) => "invalid",
        ("aborted", _) => "inconclusive",
        _ => "failed",
    };
    let adapter = r.measured();
    let mut body = format!(
        "<header class=\"banner {class}\">\n<h1>load-test: {status}</h1>\n<p>adapter {}{}</p>\n",
        esc(&adapter),
        r.config
            .baseline_adapter
            .as_ref()
            .map(|b| format!(", baseline adapter {} in the same run", esc(b)))
            .unwrap_or_default()
    );
    if let Some(e) = &r.error {
        body.push_str(&format!("<p>{}</p>\n", esc(e)));
    }
    if !valid {
        body.push_str("<p>the measurement cannot be trusted (see the reasons below)</p>\n");
    }
    body.push_str("</header>\n");
    body.push_str(&run_table(r));
    if let Some(v) = r.validity.as_ref().filter(|v| !v.valid) {
        body.push_str(&notes("Why the measurement cannot be trusted", &v.reasons));
    }
    let mut arms = vec![ArmView::candidate(r)];
    arms.extend(ArmView::same_run_baseline(r));
    body.push_str(&sections(&arms, Some(r.config.concurrency)));
    body.push_str(&server_section(r));
    body.push_str(&notes("Warnings", &r.warnings));
    body.push_str(&notes("Departures from the seed", &r.departures));
    body.push_str(&format!(
        "<footer>{} {}, results schema version {}</footer>\n",
        esc(&r.tool.name),
        esc(&r.tool.version),
        r.schema_version
    ));
    page(&format!("load-test: {status}, {adapter}"), &body)
}

fn run_table(r: &LoadTestResults) -> String {
    let c = &r.config;
    let mut rows = vec![
        ("vLLM", c.vllm_url.clone()),
        ("endpoint", c.endpoint.clone()),
        ("concurrency", c.concurrency.to_string()),
        (
            "rate",
            c.rate
                .map_or("closed loop".into(), |v| format!("{} req/s", num(v))),
        ),
        ("max tokens", c.max_tokens.to_string()),
    ];
    if let Some(a) = &r.adapter {
        rows.push(("adapter root", a.root.clone().unwrap_or_default()));
    }
    if let Some(e) = &r.eval_data {
        rows.push((
            "eval data",
            format!("{} (digest {}, {} rows)", e.path, e.digest, e.rows),
        ));
    }
    match &r.timing {
        Some(t) => {
            rows.push(("load", format!("{} to {}", t.load_start, t.load_end)));
            rows.push(("load duration", format!("{} s", num(t.load_duration_s))));
        }
        None => rows.push(("load", "never started".into())),
    }
    if let Some(g) = r.load_generator.as_ref().filter(|g| g.saturated) {
        rows.push((
            "load generator",
            format!(
                "saturated: client timings may be inflated (CPU {} % of one core, event-loop lag P99 {} s)",
                opt_num(g.cpu_percent_of_one_core),
                opt_num(g.event_loop_lag_p99_s)
            ),
        ));
    }
    let rows: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|(k, v)| vec![Cell::Text(k.into()), Cell::Text(v)])
        .collect();
    format!(
        "<section id=\"run\">\n<h2>Run</h2>\n{}</section>\n",
        table(&["setting", "value"], &rows)
    )
}

fn server_section(r: &LoadTestResults) -> String {
    let Some(s) = &r.server else {
        return format!(
            "<section id=\"server\">\n<h2>Server figures</h2>\n{}</section>\n",
            missing("no server figures: the load never ran, or collecting them failed")
        );
    };
    let q = |name: &str, q: &ServerQuantiles| -> Vec<Vec<Cell>> {
        [("P50", &q.p50), ("P95", &q.p95), ("P99", &q.p99)]
            .into_iter()
            .map(|(p, m)| vec![Cell::Text(format!("{name} {p} s")), measured(m)])
            .collect()
    };
    let mut rows = Vec::new();
    rows.extend(q("E2E", &s.e2e_latency_s));
    rows.extend(q("TTFT", &s.ttft_s));
    rows.extend(q("ITL", &s.itl_s));
    for (name, m) in [
        ("requests finished", &s.requests_finished),
        ("throughput req/s", &s.throughput_rps),
        ("generation tokens/s", &s.generation_tokens_per_s),
        ("KV cache usage max", &s.kv_cache_usage_max),
        ("KV cache usage mean", &s.kv_cache_usage_avg),
        ("GPU utilisation mean %", &s.gpu_utilization_avg),
        ("GPU utilisation max %", &s.gpu_utilization_max),
    ] {
        rows.push(vec![Cell::Text(name.into()), measured(m)]);
    }
    format!(
        "<section id=\"server\">\n<h2>Server figures ({})</h2>\n{}{}</section>\n",
        s.source.as_str(),
        table(&["figure", "value"], &rows),
        notes("Collection warnings", &s.warnings)
    )
}
