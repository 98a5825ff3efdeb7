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
/// a target's last sample before the step is not newer than the `previous` step's last
/// request (the window would count that step's requests), or, before a next step, a target
/// has no sample between the step's last request and the next step's start (the window would
/// end on its own left edge and count nothing). The shards' `--step-gap` was too short for the
/// steps' last requests and a scrape. Other unconfirmed edges (requests still running at the
/// gap's scrapes, a server that lost requests, a target born during the step) are left to the
/// checks a single load has.
fn mingled(
    server: &ServerMetrics,
    i: usize,
    previous: Option<DateTime<Utc>>,
    next: bool,
) -> Option<String> {
    use crate::prom::confirm::{NONE_AFTER, STALE_BEFORE};
    let window = server.window.as_ref()?;
    if window.mode != WindowMode::EndAnchored {
        return None;
    }
    let of = |line: &str, what: &str| {
        line.find(what)
            .map(|at| match line[..at].strip_suffix(": ") {
                Some(target) => format!(" of {target}"),
                None => String::new(),
            })
    };
    let advice = "give --step-gap the longest request plus two scrape intervals";
    let lines = &server.integrity.unconfirmed;
    if previous.is_some()
        && let Some(target) = lines.iter().find_map(|l| of(l, STALE_BEFORE))
    {
        return Some(format!(
            "step {i}: no scrape{target} between step {}'s last request and step {i}'s start: its window would count step {}'s requests, so it has no server figures ({advice})",
            i - 1,
            i - 1
        ));
    }
    if next && let Some(target) = lines.iter().find_map(|l| of(l, NONE_AFTER)) {
        return Some(format!(
            "step {i}: no scrape{target} between step {i}'s last request and step {}'s start: no window holds step {i} alone, so it has no server figures ({advice})",
            i + 1
        ));
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
    use crate::prom::confirm::{NONE_AFTER, STALE_BEFORE};

    /// The fixture's server figures over a window in `mode` whose edges are unconfirmed for
    /// the reasons `lines`.
    fn server(mode: WindowMode, lines: &[String]) -> ServerMetrics {
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
            samples: Vec::new(),
        });
        s.integrity.unconfirmed = lines.to_vec();
        s.integrity.edges_confirmed = lines.is_empty();
        s
    }

    #[test]
    fn a_step_is_mingled_with_its_neighbours_only_without_a_scrape_between_them() {
        let previous = Some(
            DateTime::parse_from_rfc3339("2026-12-06T10:00:10Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let end = WindowMode::EndAnchored;
        let stale = format!("vllm:8000: {STALE_BEFORE} (last at 2026-12-06T10:00:05.000Z)");
        let none_after = format!("vllm:8000: {NONE_AFTER}");
        // confirmed edges
        assert_eq!(mingled(&server(end, &[]), 1, previous, true), None);
        // the left edge is the previous step's or older: its requests would count
        let why = mingled(
            &server(end, std::slice::from_ref(&stale)),
            1,
            previous,
            false,
        )
        .expect("stale");
        assert!(
            why.contains("no scrape of vllm:8000 between step 0's last request and step 1's start"),
            "{why}"
        );
        assert!(
            why.contains("count step 0's requests") && why.contains("--step-gap"),
            "{why}"
        );
        // step 0's left edge is a single load's (after the warm-ups): flagged, not mingled
        assert_eq!(mingled(&server(end, &[stale]), 0, None, true), None);
        // no sample closes the step before the next one starts (of one target, or of none)
        for line in [none_after.clone(), NONE_AFTER.to_string()] {
            let why = mingled(&server(end, std::slice::from_ref(&line)), 0, None, true)
                .expect("unclosed");
            assert!(
                why.contains("between step 0's last request and step 1's start"),
                "{why}"
            );
            assert_eq!(
                why.contains("of vllm:8000"),
                line.starts_with("vllm"),
                "{why}"
            );
        }
        // the last step waits for its closing sample: none yet is not the neighbours' doing
        assert_eq!(
            mingled(
                &server(end, std::slice::from_ref(&none_after)),
                1,
                previous,
                false
            ),
            None
        );
        // other reasons are a single load's: requests still running at the gap's scrape, a
        // server that lost requests
        for other in [
            "vllm:8000: 2 running and 0 waiting at 2026-12-06T10:00:20.000Z".to_string(),
            "the servers have counted 3 finished requests since the load began, the client saw 5 succeed: waiting for vLLM to record them".to_string(),
        ] {
            assert_eq!(mingled(&server(end, &[other]), 1, previous, true), None);
        }
        // the seed's window has no edges to keep steps apart with
        assert_eq!(
            mingled(&server(WindowMode::Seed, &[none_after]), 1, previous, true),
            None
        );
    }
}
