//! `stats_history.csv` as Locust writes its `--csv` `_stats_history.csv` (the columns of
//! Locust's `stats_history_csv_columns`): one `Aggregated` row per second of the load, computed
//! after the run from `requests.jsonl`, read a line at a time.
//!
//! Each row is a one-second bucket by the wall clock (`Timestamp`: its unix second; a request is in
//! the second it finished, its finish being the run's `timing.load_start` plus the record's
//! `start_s + total_s`; in a sweep, a record's offsets count from its own step's `load_start`). `User Count`: the
//! concurrency of the step running then (closed loop), or for an open loop the requests in flight
//! at the second's end. `Requests/s` and `Failures/s`: requests (failures) that finished in that
//! second. The percentiles: of the E2E latency of the successes that finished in that second (`N/A`
//! when none did), whole milliseconds; Locust writes running percentiles here, a per-second figure
//! shows a change when it happens. The `Total` columns are cumulative up to the end of that second:
//! counts (non-decreasing), median (from a histogram, within 0.1 %), average, min and max in
//! milliseconds. Only the candidate's requests of a same-server A/B run are counted, and no
//! `--task-mix` GET task, as in `stats.csv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

use chrono::DateTime;
use serde::Deserialize;

use super::locust_csv::{PERCENTILES, decimal, ms, whole_ms};
use super::steps::steps;
use crate::results::LoadTestResults;
use crate::stats::{LatencyHistogram, percentile_sorted};

/// Locust's `stats_history.csv` header.
pub const STATS_HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";

/// Why `stats_history.csv` cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatsHistoryError {
    /// The results say when no load started.
    #[error("the results have no load start time")]
    NoLoadStart,
    /// The load start time is not RFC 3339.
    #[error("the load start time {0:?} is not RFC 3339")]
    BadTime(String),
    /// The records could not be read.
    #[error("cannot read the request records")]
    Read(#[from] std::io::Error),
    /// A line is not a request record.
    #[error("line {line} of the request records is not a record")]
    Record {
        /// 1-based line number.
        line: u64,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The fields of a `requests.jsonl` record this file needs (the others are skipped).
#[derive(Deserialize)]
struct Rec {
    #[serde(default)]
    arm: Option<String>,
    #[serde(default)]
    step: Option<u32>,
    #[serde(default)]
    probe: Option<String>,
    start_s: f64,
    total_s: f64,
    ok: bool,
    e2e_s: Option<f64>,
}

/// What finished (and started) in one second.
#[derive(Default)]
struct Bucket {
    finished: u64,
    failed: u64,
    started: u64,
    /// E2E of the successes, seconds.
    e2e: Vec<f32>,
}

fn unix(text: &str) -> Result<f64, StatsHistoryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| StatsHistoryError::BadTime(text.to_string()))
}

/// `stats_history.csv` for `results` from its request records (see the module's
/// documentation).
pub(crate) fn render(
    results: &LoadTestResults,
    records: impl BufRead,
) -> Result<String, StatsHistoryError> {
    let timing = results
        .timing
        .as_ref()
        .ok_or(StatsHistoryError::NoLoadStart)?;
    let start = unix(&timing.load_start)?;
    let end = unix(&timing.load_end).unwrap_or(start + timing.load_duration_s);
    // a sweep's records count from their own step's start
    let step_starts: Vec<f64> = results
        .steps
        .iter()
        .map(|s| unix(&s.load_start).unwrap_or(start))
        .collect();
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    for (n, text) in records.lines().enumerate() {
        let text = text?;
        let line = n as u64 + 1;
        if text.trim().is_empty() {
            continue;
        }
        let rec: Rec = serde_json::from_str(&text)
            .map_err(|source| StatsHistoryError::Record { line, source })?;
        // the baseline arm's and the GET tasks' records are not in stats.csv either
        if rec.arm.as_deref() == Some("baseline") || rec.probe.is_some() {
            continue;
        }
        let base = rec
            .step
            .and_then(|k| step_starts.get(k as usize).copied())
            .unwrap_or(start);
        let started = (base + rec.start_s).floor() as i64;
        buckets.entry(started).or_default().started += 1;
        let b = buckets
            .entry((base + rec.start_s + rec.total_s).floor() as i64)
            .or_default();
        b.finished += 1;
        match rec.e2e_s.filter(|e| rec.ok && e.is_finite() && *e >= 0.0) {
            Some(e) => b.e2e.push(e as f32),
            None if rec.ok => {}
            None => b.failed += 1,
        }
    }
    // the concurrency of each step, by when it ran (none for open-loop steps)
    let loads: Vec<(f64, Option<u32>)> = steps(results)
        .iter()
        .map(|s| {
            let from = s.load_start.and_then(|t| unix(t).ok()).unwrap_or(start);
            (from, s.concurrency)
        })
        .collect();
    let first = start.floor() as i64;
    let last = buckets
        .keys()
        .next_back()
        .copied()
        .unwrap_or(first)
        .max(end.floor() as i64)
        .max(first);
    let mut out = String::from(STATS_HISTORY_HEADER);
    out.push('\n');
    let (mut total, mut failed, mut in_flight) = (0u64, 0u64, 0i64);
    let (mut sum, mut min, mut max) = (0.0f64, f64::INFINITY, 0.0f64);
    let mut hist = LatencyHistogram::default();
    for second in first..=last {
        // taken out as written: the memory held shrinks as the rows grow
        let mut b = buckets.remove(&second).unwrap_or_default();
        total += b.finished;
        failed += b.failed;
        in_flight += b.started as i64 - b.finished as i64;
        for &e in &b.e2e {
            let e = f64::from(e);
            sum += e;
            min = min.min(e);
            max = max.max(e);
            hist.push(e);
        }
        // the step running at the middle of this second
        let mid = second as f64 + 0.5;
        let users = loads
            .iter()
            .rev()
            .find(|(from, _)| *from <= mid)
            .or(loads.first())
            .and_then(|(_, c)| *c)
            .map_or(in_flight.max(0) as u64, u64::from);
        let _ = write!(
            out,
            "{second},{users},,Aggregated,{},{}",
            decimal(b.finished as f64, 6),
            decimal(b.failed as f64, 6)
        );
        b.e2e.sort_unstable_by(f32::total_cmp);
        for &q in &PERCENTILES {
            out.push(',');
            out.push_str(&percentile_sorted(&b.e2e, q).map_or("N/A".into(), whole_ms));
        }
        let successes = hist.len();
        let _ = writeln!(
            out,
            ",{total},{failed},{},{},{},{},",
            hist.percentile(0.5).map_or("N/A".into(), whole_ms),
            if successes > 0 {
                ms(sum / successes as f64)
            } else {
                String::new()
            },
            if successes > 0 {
                ms(min)
            } else {
                String::new()
            },
            if successes > 0 {
                ms(max)
            } else {
                String::new()
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn rec(start: f64, total: f64, ok: bool, e2e: Option<f64>) -> String {
        serde_json::json!({
            "seq": 0, "prompt_index": 0, "scheduled_s": start, "start_s": start,
            "http_status": if ok { 200 } else { 503 }, "ok": ok,
            "error_kind": if ok { None } else { Some("http") }, "error": null,
            "ttft_s": e2e.map(|e| e / 2.0), "e2e_s": e2e, "total_s": total,
            "content_chunks": 3, "output_tokens": 4, "prompt_tokens": 5,
            "finish_reason": "length", "itl_mean_s": null, "itl_max_s": null
        })
        .to_string()
    }

    fn rows(text: &str) -> Vec<Vec<String>> {
        super::super::locust_csv::tests::parse(text)
    }

    /// A 3-second load from 00:00:01: second 0 finishes 100, 200, 300 ms requests and a
    /// failure; second 1 nothing; second 2 a 1 s request (and a baseline one, left out).
    #[test]
    fn one_row_a_second_with_per_second_percentiles_and_running_totals() {
        let mut r = fixtures::results();
        r.config.concurrency = 4;
        r.timing.as_mut().unwrap().load_end = "2026-01-01T00:00:04Z".into();
        r.timing.as_mut().unwrap().load_duration_s = 3.0;
        let mut baseline = rec(1.2, 1.0, true, Some(1.0));
        baseline.insert_str(1, "\"arm\":\"baseline\",");
        let jsonl = [
            rec(0.0, 0.1, true, Some(0.1)),
            rec(0.0, 0.2, true, Some(0.2)),
            rec(0.1, 0.2, true, Some(0.2)),
            rec(0.0, 0.3, true, Some(0.3)),
            rec(0.0, 0.5, false, None),
            String::new(),
            rec(2.0, 1.0, true, Some(1.0)),
            baseline,
        ]
        .join("\n");
        let text = render(&r, jsonl.as_bytes()).unwrap();
        let rows = rows(&text);
        assert_eq!(rows[0].join(","), STATS_HISTORY_HEADER);
        assert!(rows.iter().all(|r| r.len() == 24), "{text}");
        // seconds 1, 2, 3 and 4 (the load's end) of 2026-01-01T00:00:00Z
        let t0 = 1_767_225_600;
        let stamps: Vec<i64> = rows[1..].iter().map(|r| r[0].parse().unwrap()).collect();
        assert_eq!(stamps, [t0 + 1, t0 + 2, t0 + 3, t0 + 4], "{text}");
        let first = &rows[1];
        assert_eq!(first[1], "4"); // the closed loop's concurrency
        assert_eq!((first[2].as_str(), first[3].as_str()), ("", "Aggregated"));
        assert_eq!((first[4].as_str(), first[5].as_str()), ("5", "1"));
        // 50 % of 100, 200, 200, 300 ms is the 2nd; 66 % the 3rd; 100 % the largest
        assert_eq!(&first[6..9], ["200", "200", "200"]);
        assert_eq!(first[16], "300");
        assert_eq!(&first[17..19], ["5", "1"]);
        assert_eq!(first[20], "200"); // total average: 800 ms / 4
        assert_eq!((first[21].as_str(), first[22].as_str()), ("100", "300"));
        assert_eq!(first[23], "");
        // an empty second: no percentiles, totals carried
        let quiet = &rows[2];
        assert_eq!((quiet[4].as_str(), quiet[6].as_str()), ("0", "N/A"));
        assert_eq!(&quiet[17..19], ["5", "1"]);
        let third = &rows[4];
        assert_eq!(third[0], (t0 + 4).to_string());
        assert_eq!(third[16], "1000");
        assert_eq!(&third[17..19], ["6", "1"]);
        assert_eq!(third[22], "1000");
        // cumulative counts never go down
        let totals: Vec<u64> = rows[1..].iter().map(|r| r[17].parse().unwrap()).collect();
        assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    }

    #[test]
    fn a_sweep_counts_each_step_s_concurrency_as_users() {
        // steps 2 then 8, from 00:00:01 to 00:00:11 and on to 00:00:21
        let r = fixtures::two_step_results();
        let jsonl = [
            rec(0.0, 0.5, true, Some(0.5)),
            rec(12.0, 0.5, true, Some(0.5)),
        ]
        .join("\n");
        let rows = rows(&render(&r, jsonl.as_bytes()).unwrap());
        assert_eq!(rows.len(), 1 + 21);
        let users: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
        assert_eq!(users[..10], ["2"; 10]);
        assert_eq!(users[10..], ["8"; 11]);
        assert_eq!(rows[13][4], "1");
        assert_eq!(rows[21][17], "2");
        // load-test stamps a sweep's records with their step, offsets from the step's start
        // (00:00:11): 2.0 + 0.5 s into step 1 is the same second as 12.0 + 0.5 s into the run
        let mut stamped: serde_json::Value =
            serde_json::from_str(&rec(2.0, 0.5, true, Some(0.5))).unwrap();
        stamped["step"] = 1.into();
        let jsonl = [rec(0.0, 0.5, true, Some(0.5)), stamped.to_string()].join("\n");
        let again = render(&r, jsonl.as_bytes()).unwrap();
        assert_eq!(self::rows(&again), rows);
    }

    #[test]
    fn an_open_loop_counts_requests_in_flight_as_users() {
        let mut r = fixtures::results();
        r.config.rate = Some(2.0);
        r.timing.as_mut().unwrap().load_end = "2026-01-01T00:00:02Z".into();
        let jsonl = [
            rec(0.0, 1.5, true, Some(1.5)),
            rec(0.2, 0.3, true, Some(0.3)),
        ]
        .join("\n");
        let rows = rows(&render(&r, jsonl.as_bytes()).unwrap());
        assert_eq!(rows.len(), 3);
        // end of the first second: one of two still running; then none
        assert_eq!(rows[1][1], "1");
        assert_eq!(rows[2][1], "0");
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let r = fixtures::results();
        let e = render(
            &r,
            format!("{}\nnot json\n", rec(0.0, 0.1, true, Some(0.1))).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2 of the request records is not a record"
        );
        let mut r = fixtures::results();
        r.timing = None;
        assert!(matches!(
            render(&r, &b""[..]),
            Err(StatsHistoryError::NoLoadStart)
        ));
    }
}
