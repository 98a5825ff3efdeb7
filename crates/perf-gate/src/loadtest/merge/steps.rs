//! The steps of a sharded sweep (`--steps` with `--shard-count`), merged: step by step, the
//! shards' tallies of that step combined (finish times moved onto the step's union clock) and,
//! with `--prometheus-url`, the server's figures over the union of the shards' windows of that
//! step, its left edge confirmed newer than the previous step's last request (as a sweep of one
//! process opens each step's window).

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{MergeConfig, ShardRun, bad};
use crate::loadtest::{LoadTestError, rfc3339};
use crate::prom::{LoadSpan, PrometheusCollector};
use crate::results::{ServerMetrics, StepResult, WindowMode};
use crate::runner::aggregate::Tally;

/// A merged step's note when the merge queried no server.
const NO_PROMETHEUS: &str =
    "no server figures: give load-test merge --prometheus-url to query each step's union window";

/// Every step of the sweep the shards `runs` ran, merged.
pub(super) async fn merged(
    cfg: &MergeConfig,
    runs: &[ShardRun],
    cancel: &CancellationToken,
    warnings: &mut Vec<String>,
) -> Result<Vec<StepResult>, LoadTestError> {
    let n = runs[0].results.steps.len();
    for r in runs {
        let info = r.results.shard.as_ref().expect("checked: a shard");
        if r.results.steps.len() != n || info.steps.len() != n {
            return Err(bad(format!(
                "{}: a shard of a sweep without the tallies of its {n} steps (written by an older load-test, or it ran another sweep): run the shards again with this load-test",
                r.dir.display()
            )));
        }
    }
    let collector = match &cfg.prometheus_url {
        Some(url) => Some(PrometheusCollector::with_tls(
            url,
            cfg.prom.clone(),
            &cfg.prometheus_tls,
        )?),
        None => None,
    };
    let spans = (0..n)
        .map(|i| step_spans(runs, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut steps = Vec::with_capacity(n);
    // the left edge of step 0's window is newer than every shard's warm-up; of a later step's,
    // than the previous step's last request
    let mut ready = super::shards_ready(runs);
    for (i, StepSpan { starts, start, end }) in spans.iter().enumerate() {
        let (start, end) = (*start, *end);
        // the right edge before the next step starts, so no step counts the next one's
        let next = spans.get(i + 1).map(|s| s.start);
        let mut tally = Tally::default();
        let mut unmeasured = Tally::default();
        let mut rate_span = 0.0f64;
        let (mut concurrency, mut rate) = (None::<u32>, None::<f64>);
        for (r, shard_start) in runs.iter().zip(starts) {
            let wire = &r.results.shard.as_ref().expect("checked").steps[i];
            let shift = (*shard_start - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
            let read = |w| {
                Tally::from_wire(w, shift)
                    .map_err(|e| bad(format!("{}: step {i} tally: {e}", r.dir.display())))
            };
            tally.merge(&read(&wire.tally)?);
            unmeasured.merge(&read(&wire.unmeasured)?);
            rate_span = rate_span.max(wire.rate_span_s);
            let step = &r.results.steps[i];
            if let Some(c) = step.concurrency {
                concurrency = Some(concurrency.unwrap_or(0) + c);
            }
            if let Some(q) = step.rate {
                rate = Some(rate.unwrap_or(0.0) + q);
            }
        }
        let (server, server_note) = match &collector {
            None => (None, Some(NO_PROMETHEUS.to_string())),
            Some(c) => {
                let successes = tally.successful() + unmeasured.successful();
                tracing::info!(step = i, "querying Prometheus over the step's union window");
                let span = LoadSpan { start, end };
                let mode = cfg.prom.window_mode;
                let mut server =
                    super::union_server(c, mode, (ready, next), span, successes, cancel).await?;
                let previous = (i > 0).then_some(ready);
                match mingled(&server, i, previous, next.is_some()) {
                    // a count short of the client's would only restate it, less precisely
                    Some(why) => {
                        tracing::warn!("{why}");
                        warnings.push(why.clone());
                        crate::loadtest::accounting::no_figures(&mut server, why);
                    }
                    None => {
                        crate::loadtest::accounting::require_client_successes(
                            &mut server,
                            successes,
                        );
                        crate::loadtest::phases::reconcile(warnings, &server, successes);
                    }
                }
                let note = (cfg.prom.window_mode == WindowMode::Seed)
                    .then(|| crate::loadtest::sweep::SEED_STEP.to_string());
                (Some(server), note)
            }
        };
        ready = end;
        steps.push(StepResult {
            index: i as u32,
            concurrency,
            rate,
            load_start: rfc3339(start),
            load_end: rfc3339(end),
            duration_s: (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6,
            client: tally.metrics(rate_span),
            server,
            server_note,
            thresholds: Vec::new(),
        });
    }
    Ok(steps)
}

/// Why step `i`'s end-anchored window cannot be kept apart from its neighbours, if it cannot:
/// a target's left edge sample is not newer than the `previous` step's last request (the
/// window would count that step's requests), or, before a next step, no sample closes it
/// before the next step starts (the window would end on its own left edge and count nothing).
/// The shards' `--step-gap` was too short for the steps' last requests and two scrapes.
fn mingled(
    server: &ServerMetrics,
    i: usize,
    previous: Option<DateTime<Utc>>,
    next: bool,
) -> Option<String> {
    let window = server.window.as_ref()?;
    if window.mode != WindowMode::EndAnchored {
        return None;
    }
    let advice = "give --step-gap the longest request plus two scrape intervals";
    let at = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    for edge in &window.samples {
        if let Some(previous) = previous
            && at(&edge.before_load).is_none_or(|t| t <= previous)
        {
            return Some(format!(
                "step {i}: no scrape of {} between step {}'s last request and step {i}'s start: its window would count step {}'s requests, so it has no server figures ({advice})",
                edge.target,
                i - 1,
                i - 1
            ));
        }
        if next && edge.after_load.is_none() {
            return Some(format!(
                "step {i}: no scrape of {} between step {i}'s last request and step {}'s start: no window holds step {i} alone, so it has no server figures ({advice})",
                edge.target,
                i + 1
            ));
        }
    }
    None
}

/// One step of the shards: each shard's start of it (in the shards' order), and the union of
/// their windows of it.
struct StepSpan {
    starts: Vec<DateTime<Utc>>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Step `i` of the shards. The windows must overlap (every shard started before every other
/// ended): shards that did not share one step clock (the same `--start-at` and `--step-gap`)
/// ran no step together.
fn step_spans(runs: &[ShardRun], i: usize) -> Result<StepSpan, LoadTestError> {
    let mut starts = Vec::with_capacity(runs.len());
    let mut ends = Vec::with_capacity(runs.len());
    for r in runs {
        let step = &r.results.steps[i];
        for (text, into) in [(&step.load_start, &mut starts), (&step.load_end, &mut ends)] {
            let t = DateTime::parse_from_rfc3339(text)
                .map_err(|e| bad(format!("{}: step {i}: {text:?}: {e}", r.dir.display())))?;
            into.push(t.with_timezone(&Utc));
        }
    }
    let (first, last) = (
        *starts.iter().min().expect("a shard"),
        *ends.iter().max().expect("a shard"),
    );
    let latest = starts
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .expect("a shard");
    let earliest_end = ends
        .iter()
        .enumerate()
        .min_by_key(|(_, t)| **t)
        .expect("a shard");
    if latest.1 >= earliest_end.1 {
        return Err(bad(format!(
            "step {i}: {} started it at {} after {} had ended it at {}: the shards did not run their steps together (give them the same --start-at and --step-gap)",
            runs[latest.0].dir.display(),
            rfc3339(*latest.1),
            runs[earliest_end.0].dir.display(),
            rfc3339(*earliest_end.1)
        )));
    }
    Ok(StepSpan {
        starts,
        start: first,
        end: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::EdgeSamples;

    /// The fixture's server figures over a window of one target with these edge samples.
    fn server(mode: WindowMode, before: Option<&str>, after: Option<&str>) -> ServerMetrics {
        let mut s = crate::fixtures::results()
            .server
            .expect("the fixture has server figures");
        s.window = Some(crate::results::QueryWindow {
            mode,
            range_s: 20.0,
            eval_time_unix: 0.0,
            eval_time: String::new(),
            scrape_interval_s: Some(15.0),
            scrape_interval_source: None,
            waited_before_load_s: None,
            waited_after_load_s: None,
            samples: vec![EdgeSamples {
                target: "vllm:8000".into(),
                before_load: before.map(str::to_string),
                after_load: after.map(str::to_string),
            }],
        });
        s
    }

    fn utc(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_step_is_mingled_with_its_neighbours_only_without_a_scrape_between_them() {
        let previous = Some(utc("2026-12-06T10:00:10Z"));
        let (before, after) = (Some("2026-12-06T10:00:15Z"), Some("2026-12-06T10:00:30Z"));
        let end = WindowMode::EndAnchored;
        // a sample after the previous step's last request, and one closing the step
        assert_eq!(
            mingled(&server(end, before, after), 1, previous, true),
            None
        );
        // the left edge is the previous step's (or older): its requests would count
        for stale in [
            Some("2026-12-06T10:00:10Z"),
            Some("2026-12-06T10:00:05Z"),
            None,
        ] {
            let why = mingled(&server(end, stale, after), 1, previous, false)
                .unwrap_or_else(|| panic!("{stale:?}"));
            assert!(why.contains("count step 0's requests"), "{why}");
            assert!(
                why.contains("vllm:8000") && why.contains("--step-gap"),
                "{why}"
            );
        }
        // step 0 has no previous step: its left edge is checked as a single load's
        assert_eq!(
            mingled(
                &server(end, Some("2026-12-06T09:00:00Z"), after),
                0,
                None,
                true
            ),
            None
        );
        // no sample closes the step before the next one starts
        let why = mingled(&server(end, before, None), 0, None, true).expect("unclosed");
        assert!(
            why.contains("between step 0's last request and step 1's start"),
            "{why}"
        );
        // the last step waits for its closing sample: none yet is not the neighbours' doing
        assert_eq!(
            mingled(&server(end, before, None), 1, previous, false),
            None
        );
        // the seed's window has no edge samples to keep steps apart with
        assert_eq!(
            mingled(&server(WindowMode::Seed, None, None), 1, previous, true),
            None
        );
    }
}
