//! The load runner: one dispatch loop parameterised by a [`Schedule`], a task per request, records
//! to one aggregator over a channel.
//!
//! - Closed loop (`--concurrency N`, the seed's model): at most N requests in flight; the next is
//!   sent the moment a slot frees. Scheduled start = actual start.
//! - Open loop (`--rate R`): request i is *scheduled* by an [`Arrival`] process (`constant`:
//!   `start + i / R`; `poisson`; `gamma:K`; seeded by `--seed`, so a run is reproducible) and
//!   sent on schedule whatever the number in flight, up to `--max-inflight` (default
//!   [`DEFAULT_MAX_IN_FLIGHT`]; before issue 11, `--concurrency` was this cap). The gap between
//!   scheduled and actual start is reported as client queue time, so coordinated omission is
//!   visible rather than hidden, and the run reports its [`ScheduleLag`]: the requested rate
//!   against the achieved dispatch rate, with a warning when the achieved one falls more than
//!   10 % short of the drawn schedule's.
//!
//! A same-server A/B run (requests carrying an [`Arm`], see [`crate::workload::interleave_ab`])
//! is one stream: the schedule (`--concurrency`, `--rate`) applies to both arms together, in
//! the list's order, and each arm gets its own figures, timed from the same load start.
//!
//! Stopping: on cancellation (SIGINT/SIGTERM) no new request is issued; in-flight requests get
//! `drain_grace` to finish, then are abandoned and the run is marked aborted. A request that hangs
//! ends at `--request-timeout` as a failure: hangs show in the success rate.

pub mod aggregate;
pub mod arrival;
pub mod health;
pub mod preconnect;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Timing, VllmClient};
use crate::results::{ClientMetrics, GeneratorHealth, ScheduleLag};
use crate::workload::{Arm, PreparedRequest};
use aggregate::{AggregatorConfig, Live, Tally};
pub use arrival::{Arrival, ArrivalError};

/// The in-flight cap of an open loop when `--max-inflight` is not given: generous, so the
/// schedule, not the cap, decides when requests go.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1024;

/// When requests are issued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Closed loop: keep this many requests in flight.
    Closed {
        /// Requests in flight.
        concurrency: u32,
    },
    /// Open loop: this many requests per second on average, spaced by `arrival`, with at most
    /// `max_in_flight` in flight.
    Rate {
        /// Requests per second.
        per_second: f64,
        /// Cap on requests in flight.
        max_in_flight: u32,
        /// How the requests are spaced.
        arrival: Arrival,
        /// Seed of the arrival process.
        seed: u64,
    },
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Issue schedule.
    pub schedule: Schedule,
    /// Deadline of each request.
    pub request_timeout: Duration,
    /// Time in-flight requests get after a cancellation.
    pub drain_grace: Duration,
    /// Progress line interval (`None`: no progress lines).
    pub progress_every: Option<Duration>,
    /// Where to write `requests.jsonl` records as they finish (a temporary name; the caller renames).
    pub requests_path: Option<PathBuf>,
    /// Objectives whose attainment is counted (`--slo`).
    pub slo: Option<crate::results::Slo>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Wall-clock time the first request was issued.
    pub load_start: DateTime<Utc>,
    /// Wall-clock time the last request finished.
    pub load_end: DateTime<Utc>,
    /// Monotonic duration from first issue to last finish.
    pub duration: Duration,
    /// True when the run was cancelled before every request finished.
    pub aborted: bool,
    /// Client-side figures (of the candidate's requests in an A/B run).
    pub client: ClientMetrics,
    /// Totals, mergeable with other shards.
    pub tally: Tally,
    /// The baseline's client-side figures in an A/B run, over the same duration.
    pub baseline_client: Option<ClientMetrics>,
    /// The baseline's totals in an A/B run.
    pub baseline_tally: Option<Tally>,
    /// Whether the generator kept up.
    pub health: GeneratorHealth,
    /// How far the dispatches kept to an open loop's schedule (`None` for a closed loop).
    pub schedule_lag: Option<ScheduleLag>,
    /// Problems that leave the figures sound (abandoned requests, a saturated generator).
    pub warnings: Vec<String>,
    /// Why the request records (`requests_path`) could not be written in full, if they
    /// could not: the figures are sound, but the step's per-request evidence is not.
    pub records_error: Option<String>,
}

/// Errors of the runner itself (not of requests: those are records).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The schedule is unusable.
    #[error("invalid schedule: {0}")]
    Schedule(String),
    /// The aggregator thread could not be started or died.
    #[error("aggregator thread failed: {0}")]
    Aggregator(String),
}

/// Sends every request in `requests` once, per `opts.schedule`, and measures them.
pub async fn run_load(
    client: Arc<VllmClient>,
    requests: Arc<Vec<PreparedRequest>>,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<RunOutput, RunError> {
    let (slots, mut offsets) = match opts.schedule {
        Schedule::Closed { concurrency } if concurrency > 0 => (concurrency, None),
        Schedule::Rate {
            per_second,
            max_in_flight,
            arrival,
            seed,
        } if per_second.is_finite() && per_second >= 1e-3 && max_in_flight > 0 => {
            let offsets = arrival
                .offsets(per_second, seed)
                .map_err(|e| RunError::Schedule(e.to_string()))?;
            (max_in_flight, Some(offsets))
        }
        other => return Err(RunError::Schedule(format!("{other:?}"))),
    };
    let open = offsets.is_some();
    let live = Arc::new(Live::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let ab = requests.iter().any(|r| r.arm.is_some());
    let agg_cfg = AggregatorConfig {
        requests_path: opts.requests_path.clone(),
        progress_every: opts.progress_every,
        planned: requests.len() as u64,
        slo: opts.slo,
        ab,
    };
    let agg_live = live.clone();
    let aggregator = std::thread::Builder::new()
        .name("aggregator".into())
        .spawn(move || aggregate::aggregate(rx, agg_live, agg_cfg))
        .map_err(|e| RunError::Aggregator(e.to_string()))?;

    let semaphore = Arc::new(Semaphore::new(slots as usize));
    let mut tasks = JoinSet::new();
    let probe = health::LagProbe::start();
    let load_start_wall = Utc::now();
    let load_start = Instant::now();
    let mut cancelled = false;
    let mut panicked = 0u64;
    // requests handed to a task, per arm: [candidate (or every request), baseline]
    let mut dispatched = [0u64; 2];
    // open loop: (first, last) actual dispatch, last scheduled offset, requests that found
    // every slot taken
    let mut first_last: Option<(Instant, Instant)> = None;
    let mut last_offset = 0.0f64;
    let mut waited_for_slot = 0u64;
    for (i, _) in requests.iter().enumerate() {
        // Free finished tasks as we go: memory follows the concurrency, not the request count.
        while let Some(res) = tasks.try_join_next() {
            panicked += u64::from(res.is_err_and(|e| e.is_panic()));
        }
        // Closed loop: every request is due at the start (the seed submits them all at once),
        // so the wait for a free slot shows as client queue time. Open loop: the arrival's offset.
        let at = offsets.as_mut().and_then(Iterator::next).unwrap_or(0.0);
        let scheduled = load_start + Duration::from_secs_f64(at);
        if open {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { cancelled = true; break; }
                _ = tokio::time::sleep_until(scheduled.into()) => {}
            }
        }
        waited_for_slot += u64::from(open && semaphore.available_permits() == 0);
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => { cancelled = true; break; }
            p = semaphore.clone().acquire_owned() => p.expect("invariant: semaphore never closed"),
        };
        if open {
            last_offset = at;
            let now = Instant::now();
            first_last = Some((first_last.map_or(now, |(f, _)| f), now));
        }
        let timing = Timing {
            seq: i as u64,
            scheduled,
            load_start,
            timeout: opts.request_timeout,
        };
        let (client, requests, tx) = (client.clone(), requests.clone(), tx.clone());
        live.dispatched.fetch_add(1, Ordering::Relaxed);
        dispatched[usize::from(requests[i].arm == Some(Arm::Baseline))] += 1;
        tasks.spawn(async move {
            let rec = client.stream(&requests[i], timing).await;
            drop(permit);
            // The aggregator outlives every task; a closed channel only means it died, which
            // is reported when it is joined.
            let _ = tx.send(rec);
        });
    }
    drop(tx);

    let sent = dispatched[0] + dispatched[1];
    let schedule_lag = match opts.schedule {
        Schedule::Rate {
            per_second,
            max_in_flight,
            ..
        } => Some(ScheduleLag::new(
            per_second,
            sent,
            last_offset,
            first_last.map_or(0.0, |(f, l)| (l - f).as_secs_f64()),
            waited_for_slot,
            max_in_flight,
        )),
        Schedule::Closed { .. } => None,
    };
    let mut aborted = cancelled;
    if !cancelled {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => aborted = true,
            _ = drain(&mut tasks, &mut panicked) => {}
        }
    }
    if aborted {
        tracing::warn!(in_flight = tasks.len(), grace = ?opts.drain_grace, "stopping: no new requests; draining in-flight ones");
        if tokio::time::timeout(opts.drain_grace, drain(&mut tasks, &mut panicked))
            .await
            .is_err()
        {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over: abandoning in-flight requests"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    let duration = load_start.elapsed();
    let load_end_wall = Utc::now();
    let health = probe.finish().await;

    let agg = tokio::task::spawn_blocking(move || aggregator.join())
        .await
        .map_err(|e| RunError::Aggregator(e.to_string()))?
        .map_err(|_| RunError::Aggregator("panicked".into()))?;
    let mut warnings = Vec::new();
    let mut tally = agg.tally;
    let mut baseline = agg.baseline;
    // Every dispatched request left a record or counts as a failure, in its own arm: per arm,
    // exactly dispatched - recorded are missing; of those, the panicked are `lost` (which arm a
    // panic hit is not known: the candidate's are taken first), the rest `abandoned`.
    let recorded = [tally.total(), baseline.as_ref().map_or(0, Tally::total)];
    let missing = [0, 1].map(|a| dispatched[a].saturating_sub(recorded[a]));
    let split = split_missing(missing, panicked);
    for (t, (lost, cut)) in [Some(&mut tally), baseline.as_mut()].into_iter().zip(split) {
        let Some(t) = t else { continue };
        if cut > 0 {
            t.add_failures("abandoned", cut);
        }
        if lost > 0 {
            t.add_failures("lost", lost);
        }
    }
    let abandoned = split[0].1 + split[1].1;
    let panicked = split[0].0 + split[1].0;
    if abandoned > 0 {
        // Cut off by the grace period: they count, as failures, so the totals add up.
        warnings.push(format!(
            "{abandoned} in-flight request(s) abandoned after the grace period; counted as `abandoned` failures"
        ));
    }
    if panicked > 0 {
        // Fail closed: a request whose record vanished counts as a failure.
        warnings.push(format!(
            "{panicked} request task(s) panicked; counted as `lost` failures"
        ));
    }
    if health.saturated {
        warnings.push(format!(
            "the load generator was saturated (event-loop lag p99 {:.1} ms, CPU {:.0} % of one core on {} cores): client timings may be inflated; lower --concurrency or give load-test more CPU",
            health.event_loop_lag_p99_s.unwrap_or(0.0) * 1e3,
            health.cpu_percent_of_one_core.unwrap_or(0.0),
            health.cores
        ));
    }
    let client = tally.metrics(duration.as_secs_f64());
    let schedule_lag = schedule_lag.map(|l| ScheduleLag {
        client_queue_p99_s: client.client_queue_s.p99,
        ..l
    });
    if let Some(w) = schedule_lag.as_ref().and_then(|l| l.warning(&health)) {
        warnings.push(w);
    }
    Ok(RunOutput {
        schedule_lag,
        load_start: load_start_wall,
        load_end: load_end_wall,
        duration,
        aborted,
        client,
        tally,
        baseline_client: baseline.as_ref().map(|b| b.metrics(duration.as_secs_f64())),
        baseline_tally: baseline,
        health,
        warnings,
        records_error: agg.write_error,
    })
}

/// Splits the requests of each arm (`[candidate, baseline]`) that left no record into
/// `(lost, abandoned)`: `panicked` of them are `lost`, taken from the candidate's first, the
/// rest were cut off after the grace period.
fn split_missing(missing: [u64; 2], panicked: u64) -> [(u64, u64); 2] {
    let lost_a = panicked.min(missing[0]);
    let lost_b = (panicked - lost_a).min(missing[1]);
    [(lost_a, missing[0] - lost_a), (lost_b, missing[1] - lost_b)]
}

/// Joins every task, counting the ones that panicked (their records never reached the aggregator).
async fn drain(tasks: &mut JoinSet<()>, panicked: &mut u64) {
    while let Some(res) = tasks.join_next().await {
        *panicked += u64::from(res.is_err_and(|e| e.is_panic()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_requests_stay_in_their_arm() {
        // nothing missing
        assert_eq!(split_missing([0, 0], 0), [(0, 0), (0, 0)]);
        // 3 cut off in the candidate's arm, 2 in the baseline's
        assert_eq!(split_missing([3, 2], 0), [(0, 3), (0, 2)]);
        // one panic: the candidate's arm takes it first
        assert_eq!(split_missing([3, 2], 1), [(1, 2), (0, 2)]);
        // panics in both arms
        assert_eq!(split_missing([1, 2], 3), [(1, 0), (2, 0)]);
        // a count of panics above the missing never makes more failures than missing requests
        assert_eq!(split_missing([1, 0], 5), [(1, 0), (0, 0)]);
    }
}
