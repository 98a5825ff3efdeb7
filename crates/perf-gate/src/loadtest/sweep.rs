//! A step sweep (`--steps 1,2,4,8 --step-duration 60s`, seed 001): one timed load per level,
//! each with its own warm-up, ramp and cool-down (`--warmup`, `--ramp-up`, `--cooldown`), its
//! own client figures, and the server's figures over its own window.
//!
//! Each step's window is opened as the single load's is: with Prometheus (end-anchored), the
//! step starts only once every target shows a quiet sample newer than the previous step's
//! end, so no step's requests fall in another's window (the quiet period the confirmed
//! windows need); with the seed's windows (rounded up to the minute) a step's figures can
//! include the previous step's requests, and say so (`server_note`); without Prometheus, vLLM
//! `/metrics` is read before and after each step.
//!
//! Sharded (`--shard-count`, with `--start-at`), each step runs the shard's part of its level
//! and starts on one clock shared by every shard ([`LoadTestConfig::step_start`]): no shard
//! opens a window; each writes its steps' tallies and `load-test merge` queries the server
//! once per step over the union of the shards' step windows.
//!
//! The top-level `client` pools every step's measured requests; the top-level `server` is
//! absent and the run is marked not valid as a gate measurement: the gate compares one load
//! with another, not sweeps.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::phases::{Step, measure, open_window, preconnect_before, records_kept, window_figures};
use super::{LoadTestConfig, LoadTestError, PARTIAL_REQUESTS_FILE, rfc3339};
use crate::client::VllmClient;
use crate::prom::PrometheusCollector;
use crate::results::REQUESTS_FILE;
use crate::results::{
    GeneratorHealth, LoadTestResults, RunStatus, RunTiming, StepResult, Validity, WindowMode,
};
use crate::runner::aggregate::Tally;
use crate::workload::PreparedRequest;

/// Runs every step of the sweep (`cfg.steps`) in order; `Ok` carries the final status. A sweep
/// that stops between steps (a signal, a window that failed) keeps the records of the steps it
/// ran: `requests.jsonl` is complete for them (unless writing it failed).
#[expect(
    clippy::too_many_arguments,
    reason = "the single load's phases, plus the poller that spans the steps"
)]
pub(super) async fn run(
    cfg: &LoadTestConfig,
    client: &Arc<VllmClient>,
    collector: Option<&PrometheusCollector>,
    requests: Vec<PreparedRequest>,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
    (started_wall, ready_wall): (DateTime<Utc>, DateTime<Utc>),
    poller: &super::poll::Poller,
) -> Result<RunStatus, LoadTestError> {
    let outcome = run_steps(
        cfg,
        client,
        collector,
        requests,
        cancel,
        results,
        (started_wall, ready_wall),
        poller,
    )
    .await;
    let partial = cfg.output_dir.join(PARTIAL_REQUESTS_FILE);
    if !matches!(outcome, Err(LoadTestError::Records { .. }))
        && partial.exists()
        && let Err(e) = std::fs::rename(&partial, cfg.output_dir.join(REQUESTS_FILE))
    {
        results
            .warnings
            .push(format!("cannot rename {}: {e}", partial.display()));
    }
    outcome
}

#[expect(
    clippy::too_many_arguments,
    reason = "the single load's phases, plus the poller that spans the steps"
)]
async fn run_steps(
    cfg: &LoadTestConfig,
    client: &Arc<VllmClient>,
    collector: Option<&PrometheusCollector>,
    requests: Vec<PreparedRequest>,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
    (started_wall, ready_wall): (DateTime<Utc>, DateTime<Utc>),
    poller: &super::poll::Poller,
) -> Result<RunStatus, LoadTestError> {
    let levels = cfg.steps.as_deref().unwrap_or_default();
    let mut pooled = Tally::with_slo(cfg.slo);
    let mut unmeasured = Tally::default();
    let mut probes = crate::runner::aggregate::Probes::default();
    let mut measured_s = 0.0;
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut health: Option<GeneratorHealth> = None;
    let mut status = RunStatus::Completed;
    let mut shard_steps = Vec::new();
    for (i, &level) in levels.iter().enumerate() {
        let step_cfg = cfg.for_step(level);
        // a shard leaves each step's server figures to `load-test merge`
        let side = match cfg.api.has_vllm_metrics() && cfg.shard.is_none() {
            true => Some(open_window(&step_cfg, client, collector, cancel).await?),
            false => None,
        };
        let step = format!("step {i}");
        let again = (i > 0).then_some(step.as_str());
        preconnect_before(cfg, client, cancel, results, cfg.peak_concurrency(), again).await?;
        // a sharded sweep's steps follow one clock from --start-at; a sweep of one process
        // waits for --start-at before its first step only
        let start = cfg.step_start(i as u32).or(cfg.start_at.filter(|_| i == 0));
        if let Some(at) = start {
            super::phases::reopen_before_start(
                cfg,
                &[(&**client, cfg.peak_concurrency())],
                at,
                cancel,
                results,
            )
            .await?;
            let (late, why) = match i {
                0 => ("--start-at".to_string(), super::phases::NOT_TOGETHER),
                _ => (
                    format!(
                        "step {i}'s start (--start-at + {i} x (--warmup + --step-duration + --cooldown + --step-gap))"
                    ),
                    "the previous step's last requests were still running: lengthen --step-gap",
                ),
            };
            super::phases::start_at(at, (&late, why), cancel, results).await?;
        }
        tracing::info!(
            step = i,
            level,
            of = levels.len(),
            "step starting ({})",
            if cfg.rate.is_some() {
                "requests per second"
            } else {
                "requests in flight"
            }
        );
        poller.set_step(i as u32);
        let step = Step {
            index: i as u32,
            last: i + 1 == levels.len(),
            of: levels.len() as u32,
            level,
        };
        let out = measure(
            &step_cfg,
            client,
            (requests.clone(), None),
            cancel,
            results,
            Some(step),
            None,
        )
        .await?;
        records_kept(&out)?;
        if cfg.shard.is_some() {
            shard_steps.push(crate::results::ShardStep {
                rate_span_s: out.rate_span_s,
                tally: out.tally.to_wire(),
                unmeasured: out.unmeasured.to_wire(),
            });
        }
        pooled.merge(&out.tally);
        unmeasured.merge(&out.unmeasured);
        probes.merge(&out.probes);
        // as the runner's rates: the measured window, or what ran of it after the warm-up
        measured_s += step_cfg
            .duration
            .map_or(out.duration, |d| {
                d.min(out.duration.saturating_sub(step_cfg.warmup))
            })
            .as_secs_f64();
        span = Some((span.map_or(out.load_start, |s| s.0), out.load_end));
        health = Some(match health {
            None => out.health.clone(),
            Some(h) => worse(h, out.health.clone()),
        });
        let (server, note) = if out.aborted {
            (
                None,
                Some("stopped by a signal before the server was read".to_string()),
            )
        } else if let Some(side) = side {
            match window_figures(side, &out, cancel, results).await? {
                Some(s) => {
                    let note = (collector.is_some() && cfg.prom.window_mode == WindowMode::Seed)
                        .then(|| SEED_STEP.to_string());
                    (Some(s), note)
                }
                None => (
                    None,
                    Some("stopped by a signal while the server was read".into()),
                ),
            }
        } else if cfg.shard.is_some() && cfg.api.has_vllm_metrics() {
            (None, Some(SHARD_STEP.to_string()))
        } else {
            (None, Some(super::phases::NO_SERVER_SIDE.to_string()))
        };
        let thresholds: Vec<_> = cfg
            .thresholds
            .iter()
            .map(|t| t.evaluate(Some(&out.client)))
            .collect();
        for o in &thresholds {
            let line = super::thresholds::line(o);
            if o.passed {
                tracing::info!(step = i, level, "{line}");
            } else {
                tracing::warn!(step = i, level, "{line}");
            }
        }
        let (concurrency, rate) = match step_cfg.rate {
            Some(r) => (None, Some(r)),
            None => (Some(step_cfg.concurrency), None),
        };
        results.steps.push(StepResult {
            index: i as u32,
            concurrency,
            rate,
            load_start: rfc3339(out.load_start),
            load_end: rfc3339(out.load_end),
            duration_s: out.duration.as_secs_f64(),
            client: out.client.clone(),
            server,
            server_note: note,
            thresholds,
        });
        if out.aborted || cancel.is_cancelled() {
            status = RunStatus::Aborted;
            break;
        }
    }
    if let Some((start, end)) = span {
        results.timing = Some(RunTiming {
            started_at: rfc3339(started_wall),
            // when the pre-flight and any warm-up ended: a merge of shards starts the first
            // step's window after it
            ready_at: Some(rfc3339(ready_wall)),
            load_start: rfc3339(start),
            load_end: rfc3339(end),
            load_duration_s: (end - start).num_milliseconds() as f64 / 1e3,
            wall_clock_duration_s: 0.0,
        });
    }
    results.client = Some(pooled.metrics(measured_s));
    results.load_generator = health;
    results.unmeasured = super::phases::unmeasured_info(cfg, &unmeasured);
    results.probes = probes.summaries();
    let mut reasons = vec![SWEEP.to_string()];
    if let Some(shard) = cfg.shard {
        results.shard = Some(crate::results::ShardInfo {
            index: Some(shard.index),
            count: shard.count,
            rate_span_s: measured_s,
            tally: Some(pooled.to_wire()),
            unmeasured: Some(unmeasured.to_wire()),
            baseline: None,
            members: Vec::new(),
            steps: shard_steps,
        });
        reasons.push(format!(
            "shard {} of {}: its requests are a part of the load; `load-test merge` combines the shards and queries the server once per step",
            shard.index, shard.count
        ));
    }
    results.validity = Some(Validity {
        valid: false,
        reasons,
    });
    Ok(status)
}

/// A step's note when its window is the seed's.
pub(super) const SEED_STEP: &str = "--window-mode seed: the window is the step's duration rounded up to the minute, so it can include the previous step's requests";

/// Why a sweep is no gate measurement.
pub(super) const SWEEP: &str = "a step sweep: each step has its own client and server figures in `steps`; the gate compares one load with another";

/// A sharded sweep's step: why it has no server figures of its own.
const SHARD_STEP: &str = "a shard's step: `load-test merge` queries the server over the union of the shards' step windows";

/// The less healthy of two steps' generator figures (saturated if either was).
fn worse(a: GeneratorHealth, b: GeneratorHealth) -> GeneratorHealth {
    let lag = |h: &GeneratorHealth| h.event_loop_lag_p99_s.unwrap_or(0.0);
    if b.saturated && !a.saturated || (b.saturated == a.saturated && lag(&b) > lag(&a)) {
        b
    } else {
        a
    }
}
