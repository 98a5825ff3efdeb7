//! `stats.csv` as Locust writes its `--csv` `_stats.csv` (the columns of Locust's
//! `StatsCSV.requests_csv_columns`), so tools and notebooks built for Locust read a
//! `load-test` run unchanged.
//!
//! Rows: one per step (Type `POST`, Name the endpoint path, and in a sweep the step and its
//! load, e.g. `/v1/completions step 1 (c=8)`), then Locust's `Aggregated` row (empty Type)
//! over the whole run. As in Locust, `Request Count` counts failures too and `Requests/s` is
//! every request over the load's duration. Response times are milliseconds: the E2E latency
//! (to the last token) of the successful requests, percentiles exact nearest-rank over the
//! per-request samples, written as whole milliseconds as Locust writes them (`N/A` when there
//! are none, as in Locust); a results file without samples (schema version 2) has only the
//! percentiles its summary holds. `Average Content Size` is empty: bytes are not counted.

use std::fmt::Write as _;

use super::steps::{StepView, endpoint_name, steps};
use crate::results::{ClientMetrics, LoadTestResults};
use crate::stats::SampleStore;

/// Locust's percentiles, as fractions, in column order.
pub(crate) const PERCENTILES: [f64; 11] = [
    0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];
/// Their column names.
#[cfg(test)]
pub(crate) const PERCENTILE_COLUMNS: [&str; 11] = [
    "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
];
/// Locust's `stats.csv` header.
pub const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";

/// One CSV field: quoted (with `"` doubled) when it holds a comma, a quote or a line break, as
/// Python's `csv` module writes it.
pub(crate) fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `v` with at most `decimals` decimals, trailing zeros dropped (`2.5`, `3`).
pub(crate) fn decimal(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// Seconds as whole milliseconds (Locust's percentile and median columns).
pub(crate) fn whole_ms(secs: f64) -> String {
    format!("{}", (secs * 1000.0).round() as i64)
}

/// Seconds as milliseconds to the microsecond (Locust's average, min and max columns).
pub(crate) fn ms(secs: f64) -> String {
    decimal(secs * 1000.0, 3)
}

/// The response-time columns of one row: median, average, min, max, then the percentiles.
struct Times {
    median: String,
    average: String,
    min: String,
    max: String,
    percentiles: Vec<String>,
}

impl Times {
    fn none() -> Self {
        Times {
            median: "N/A".into(),
            average: String::new(),
            min: String::new(),
            max: String::new(),
            percentiles: vec!["N/A".into(); PERCENTILES.len()],
        }
    }

    /// From the successful requests' E2E latencies (exact, counted out of the store).
    fn of_store(store: &SampleStore) -> Self {
        let mut qs = vec![0.5];
        qs.extend(PERCENTILES);
        let Some(e2e) = store.e2e_quantiles(&qs) else {
            return Times::none();
        };
        Times {
            median: whole_ms(e2e.at[0]),
            average: ms(e2e.sum / e2e.count as f64),
            min: ms(e2e.min),
            max: ms(e2e.max),
            percentiles: e2e.at[1..].iter().map(|&v| whole_ms(v)).collect(),
        }
    }

    /// From the client figures: the packed samples when present, else the summary's figures
    /// (the percentiles it lacks are `N/A`).
    fn of(c: &ClientMetrics) -> Self {
        if let Some(store) = c.samples.as_ref().and_then(|p| SampleStore::unpack(p).ok()) {
            return Times::of_store(&store);
        }
        let d = &c.e2e_s;
        if d.count == 0 {
            return Times::none();
        }
        let opt = |v: Option<f64>, f: fn(f64) -> String, none: &str| v.map_or(none.into(), f);
        let known = [
            (0.50, d.p50),
            (0.90, d.p90),
            (0.95, d.p95),
            (0.99, d.p99),
            (1.0, d.max),
        ];
        Times {
            median: opt(d.p50, whole_ms, "N/A"),
            average: opt(d.mean, ms, ""),
            min: opt(d.min, ms, ""),
            max: opt(d.max, ms, ""),
            percentiles: PERCENTILES
                .iter()
                .map(|q| {
                    known
                        .iter()
                        .find(|(k, _)| k == q)
                        .and_then(|(_, v)| *v)
                        .map_or("N/A".into(), whole_ms)
                })
                .collect(),
        }
    }
}

fn row(out: &mut String, kind: &str, name: &str, c: Option<&ClientMetrics>, duration: Option<f64>) {
    let (total, failed) = c.map_or((0, 0), |c| (c.total_requests, c.failed_requests));
    let times = c.map_or_else(Times::none, Times::of);
    let per_s = |n: u64| {
        duration
            .filter(|d| *d > 0.0)
            .map_or(String::new(), |d| decimal(n as f64 / d, 6))
    };
    let _ = write!(
        out,
        "{},{},{total},{failed},{},{},{},{},,{},{}",
        field(kind),
        field(name),
        times.median,
        times.average,
        times.min,
        times.max,
        per_s(total),
        per_s(failed),
    );
    for p in &times.percentiles {
        out.push(',');
        out.push_str(p);
    }
    out.push('\n');
}

fn step_name(path: &str, s: &StepView<'_>, sweep: bool) -> String {
    if sweep {
        format!("{path} step {} ({})", s.index, s.load_label())
    } else {
        path.to_string()
    }
}

/// `stats.csv` for `results` (see the module's documentation).
pub(crate) fn stats(results: &LoadTestResults) -> String {
    let mut out = String::from(STATS_HEADER);
    out.push('\n');
    let path = endpoint_name(results);
    let sweep = !results.steps.is_empty();
    for s in steps(results) {
        row(
            &mut out,
            "POST",
            &step_name(path, &s, sweep),
            s.client,
            s.duration_s,
        );
    }
    row(
        &mut out,
        "",
        "Aggregated",
        results.client.as_ref(),
        results.timing.as_ref().map(|t| t.load_duration_s),
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;

    /// The rows of a CSV text, split by a minimal reader that honours quotes.
    pub(crate) fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let mut fields = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => fields.push(std::mem::take(&mut cur)),
                    (c, _) => cur.push(c),
                }
            }
            fields.push(cur);
            rows.push(fields);
        }
        rows
    }

    #[test]
    fn the_header_is_locust_s_and_percentile_names_match_it() {
        let cols: Vec<&str> = STATS_HEADER.split(',').collect();
        assert_eq!(cols.len(), 22);
        assert_eq!(&cols[11..], &PERCENTILE_COLUMNS);
    }

    #[test]
    fn fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(decimal(2.50, 6), "2.5");
        assert_eq!(decimal(3.0, 6), "3");
        assert_eq!(decimal(-0.0000001, 3), "0");
    }

    #[test]
    fn a_sweep_has_a_row_per_step_and_the_aggregated_row_in_milliseconds() {
        let text = stats(&fixtures::two_step_results());
        let rows = parse(&text);
        assert_eq!(rows[0].join(","), STATS_HEADER);
        assert_eq!(rows.len(), 4, "{text}");
        assert!(rows.iter().all(|r| r.len() == 22), "{text}");
        assert_eq!(rows[1][0], "POST");
        assert_eq!(rows[1][1], "/v1/completions step 0 (c=2)");
        assert_eq!(rows[2][1], "/v1/completions step 1 (c=8)");
        // step 0: 40 requests, E2E 0.1..4.0 s over 10 s
        assert_eq!(rows[1][2], "40");
        assert_eq!(rows[1][3], "0");
        assert_eq!(rows[1][4], "2000"); // median: the 20th of 40, 2.0 s
        assert_eq!(rows[1][5], "2050"); // mean 2.05 s
        assert_eq!(rows[1][6], "100");
        assert_eq!(rows[1][7], "4000");
        assert_eq!(rows[1][8], ""); // content size is not measured
        assert_eq!(rows[1][9], "4"); // 40 requests over 10 s
        assert_eq!(rows[1][10], "0");
        assert_eq!(rows[1][11], "2000"); // 50%
        assert_eq!(rows[1][15], "3600"); // 90%: the 36th
        assert_eq!(rows[1][21], "4000"); // 100%
        // step 1: failures counted in the requests and per second
        assert_eq!(rows[2][2], "60");
        assert_eq!(rows[2][3], "3");
        assert_eq!(rows[2][9], "6");
        assert_eq!(rows[2][10], "0.3");
        assert_eq!(rows[2][21], "2850");
        // Aggregated: empty type, the whole run's 100 requests over 20 s
        assert_eq!(rows[3][0], "");
        assert_eq!(rows[3][1], "Aggregated");
        assert_eq!(rows[3][2], "100");
        assert_eq!(rows[3][3], "3");
        assert_eq!(rows[3][9], "5");
        assert_eq!(rows[3][21], "4000");
    }

    #[test]
    fn a_run_of_one_load_is_named_by_its_endpoint_and_a_summary_fills_what_it_can() {
        let mut r = fixtures::results();
        r.config.endpoint = "chat".into();
        let rows = parse(&stats(&r));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][1], "/v1/chat/completions");
        // no samples: the summary's P50/P90/P95/P99/max, N/A for the rest
        assert_eq!(rows[1][4], "3150"); // P50 = 0.75 × 4.2 s
        assert_eq!(rows[1][11], "3150");
        assert_eq!(rows[1][12], "N/A"); // 66 %
        assert_eq!(rows[1][16], "4200"); // 95 %
        assert_eq!(rows[1][21], "5040"); // max = 1.2 × 4.2 s
        r.config.endpoint = "auto".into();
        let text = stats(&r);
        assert!(
            text.contains("POST,\"/v1/completions, /v1/chat/completions\",100,"),
            "{text}"
        );
    }

    #[test]
    fn a_run_that_never_started_has_zero_counts_and_n_a() {
        let mut r = fixtures::results();
        r.client = None;
        r.timing = None;
        let rows = parse(&stats(&r));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2][1], "Aggregated");
        assert_eq!(rows[2][2], "0");
        assert_eq!(rows[2][4], "N/A");
        assert_eq!(rows[2][9], "");
        assert_eq!(rows[2][11], "N/A");
    }
}
