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
pub mod profile;
pub mod progress;
pub mod think;
mod unrecorded;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Phase, Timing, VllmClient};
use crate::results::{ClientMetrics, GeneratorHealth, ScheduleLag};
use crate::workload::{Arm, PreparedRequest, Probe};
use aggregate::{AggregatorConfig, Live, Tally};
pub use arrival::{Arrival, ArrivalError};
pub use profile::{Profile, ProfileError, Stage};
pub use think::{Think, ThinkTime};

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
        /// Where the arrival process starts, in mean gaps (0 <= phase < 1): 0 for one process;
        /// shard `i` of `n` starts at `i / n`, so the shards' constant schedules interleave into
        /// one at the whole rate instead of all firing at the same instants.
        phase: f64,
    },
}

/// Shard `index` of `count`'s part of `level` requests in flight: split whole, the first
/// shards taking the remainder, so the parts add up to `level`.
pub fn part_of_level(level: u32, index: u32, count: u32) -> u32 {
    level / count + u32::from(index < level % count)
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Issue schedule.
    pub schedule: Schedule,
    /// How the schedule's level (requests in flight, or per second) moves over time
    /// (`--ramp-up`, `--stages`); `None`: constant at the schedule's.
    pub profile: Option<Profile>,
    /// `(index, count)`: this process is shard `index` of `count` and keeps in flight its part
    /// of the closed loop's level at each instant ([`part_of_level`]), so the shards' parts add
    /// up to the whole load's level throughout a ramp; `None`: the whole level.
    pub part: Option<(u32, u32)>,
    /// How long the load lasts and which requests count.
    pub extent: Extent,
    /// A closed loop's pause after each request before its slot sends the next (think time,
    /// user classes); `None`: none.
    pub think: Option<Think>,
    /// The sweep step these requests belong to (stamped on their records), if any; the
    /// records of a step after the first are appended to `requests_path`.
    pub step: Option<u32>,
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
    /// Where the aggregator publishes live figures (`--pushgateway-url`); `None`: nowhere.
    pub live_figures: Option<Arc<crate::telemetry::pushgateway::LiveFigures>>,
    /// A mix of targets or adapters ([`DispatchMix`]); `None`: every request as listed.
    pub mix: Option<Arc<DispatchMix>>,
    /// Where live progress is drawn (`--progress bar`); `None`: nowhere.
    pub view: Option<Arc<dyn progress::ProgressView>>,
    /// The sweep step as people read it, for the progress view (`step 2/5 at 8 in flight`).
    pub step_label: Option<String>,
    /// Where each request's OpenTelemetry span is queued (`--otlp-endpoint`); `None`: no spans.
    pub spans: Option<crate::telemetry::otlp::SpanQueue>,
}

impl RunOptions {
    /// A closed loop of `concurrency` sending its list once, with nothing besides the
    /// tallies: no records file, progress, objectives, spans or mix (set those with struct
    /// update syntax).
    pub fn closed(concurrency: u32, request_timeout: Duration, drain_grace: Duration) -> Self {
        RunOptions {
            schedule: Schedule::Closed { concurrency },
            profile: None,
            part: None,
            extent: Extent::default(),
            think: None,
            step: None,
            request_timeout,
            drain_grace,
            progress_every: None,
            requests_path: None,
            slo: None,
            live_figures: None,
            mix: None,
            view: None,
            step_label: None,
            spans: None,
        }
    }
}

/// How a mix's requests are dispatched: the request list holds every prompt once per member
/// (prompt `p`'s body for member `m` at `p * members + m`), and each dispatch takes the next
/// member of a smooth weighted round robin ([`crate::mix::Picker`]) with the next prompt.
#[derive(Debug, Clone)]
pub struct DispatchMix {
    /// The members' names (stamped on their records as `target`).
    pub names: Vec<Arc<str>>,
    /// The members' weights.
    pub weights: Vec<f64>,
    /// Each member's own client (a target's server); `None`: the run's client.
    pub clients: Vec<Option<Arc<VllmClient>>>,
    /// Each member's own cap on requests in flight (targets' `concurrency=`); `None`: the
    /// members share the run's level by weight.
    pub caps: Option<Vec<u32>>,
}

impl DispatchMix {
    fn members(&self) -> usize {
        self.names.len()
    }
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
    /// Totals of the requests issued in a timed load's warm-up and cool-down (not in the
    /// figures; the server counted them).
    pub unmeasured: Tally,
    /// The GET tasks of a task mix, counted apart.
    pub probes: aggregate::Probes,
    /// Whether the generator kept up.
    pub health: GeneratorHealth,
    /// How far the dispatches kept to an open loop's schedule (`None` for a closed loop).
    pub schedule_lag: Option<ScheduleLag>,
    /// Seconds the rates are over: a timed load's measured window, else first issue to last
    /// finish.
    pub rate_span_s: f64,
    /// A mix's measured requests per member (in [`DispatchMix`]'s order); empty without a mix.
    pub members: Vec<Tally>,
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

/// How long a load lasts and which of its requests count.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Extent {
    /// `None`: each request of the list once. `Some(d)`: the list cycled for `d` (the measured
    /// window), after `warmup` and before `cooldown`; no request is issued after that, and
    /// the ones in flight finish (and count, when issued inside the window).
    pub duration: Option<Duration>,
    /// Time at the start of a timed load whose requests are sent but not measured.
    pub warmup: Duration,
    /// Time at the end of a timed load whose requests are sent but not measured: the
    /// measured window's last requests finish under the same load as the rest.
    pub cooldown: Duration,
    /// Without `duration`: how many requests to send, the list cycled (`None`: each request of
    /// the list once). A plain load passes one pass over its prompts and the count, so the
    /// list does not grow with the run.
    pub count: Option<u64>,
}

impl Extent {
    /// The phase of a request issued `at` seconds after the load's start.
    fn phase(&self, at: f64) -> Phase {
        match self.duration {
            None => Phase::Measured,
            Some(d) => {
                let w = self.warmup.as_secs_f64();
                if at < w {
                    Phase::Warmup
                } else if at < w + d.as_secs_f64() {
                    Phase::Measured
                } else {
                    Phase::Cooldown
                }
            }
        }
    }

    /// Seconds after the load's start at which nothing more is issued (`None`: when the list
    /// is done).
    fn end(&self) -> Option<f64> {
        self.duration
            .map(|d| (self.warmup + d + self.cooldown).as_secs_f64())
    }
}

/// Sends the requests of `requests` per `opts.schedule` (each once, or cycled for
/// `opts.extent.duration`), with the level of `opts.profile`, and measures them.
pub async fn run_load(
    client: Arc<VllmClient>,
    requests: Arc<Vec<PreparedRequest>>,
    opts: RunOptions,
    cancel: CancellationToken,
) -> Result<RunOutput, RunError> {
    if requests.is_empty() {
        return Err(RunError::Schedule("no requests to send".into()));
    }
    let members = opts.mix.as_ref().map_or(1, |m| m.members());
    if members == 0 || !requests.len().is_multiple_of(members) {
        return Err(RunError::Schedule(format!(
            "{} requests cannot be split among {members} mix members",
            requests.len()
        )));
    }
    let mut picker = opts
        .mix
        .as_ref()
        .map(|m| crate::mix::Picker::new(m.weights.clone()));
    // the closed loop's level (requests in flight) or the open loop's (requests per second)
    let (profile, mut offsets, cap) = match opts.schedule {
        Schedule::Closed { concurrency } if concurrency > 0 => (
            opts.profile
                .clone()
                .unwrap_or_else(|| Profile::constant(f64::from(concurrency))),
            None,
            None,
        ),
        Schedule::Rate {
            per_second,
            max_in_flight,
            arrival,
            seed,
            phase,
        } if per_second.is_finite() && per_second >= 1e-3 && max_in_flight > 0 => {
            let profile = opts
                .profile
                .clone()
                .unwrap_or_else(|| Profile::constant(per_second));
            // a unit-rate process mapped through the profile's cumulative rate: the arrival
            // keeps its shape whatever the rate does
            let unit = arrival
                .offsets(1.0, seed)
                .map_err(|e| RunError::Schedule(e.to_string()))?;
            let mapped = profile.clone();
            let phase = if (0.0..1.0).contains(&phase) {
                phase
            } else {
                0.0
            };
            let offsets: Box<dyn Iterator<Item = f64> + Send> =
                Box::new(unit.map_while(move |u| mapped.time_of(u + phase)));
            (profile, Some(offsets), Some(max_in_flight))
        }
        other => return Err(RunError::Schedule(format!("{other:?}"))),
    };
    let open = offsets.is_some();
    let extent = opts.extent;
    let end_s = extent.end();
    let live = Arc::new(Live::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let ab = requests.iter().any(|r| r.arm.is_some());
    // the load's clock starts here: the span feed turns its offsets into wall-clock times
    let load_start_wall = Utc::now();
    let load_start = Instant::now();
    let planned = if extent.duration.is_some() {
        0
    } else {
        extent.count.unwrap_or((requests.len() / members) as u64)
    };
    let agg_cfg = AggregatorConfig {
        requests_path: opts.requests_path.clone(),
        progress_every: opts.progress_every,
        // a sweep's later steps add to the first one's records
        append: opts.step.is_some_and(|s| s > 0),
        planned,
        slo: opts.slo,
        ab,
        figures: opts.live_figures.clone(),
        members: opts.mix.as_ref().map_or(0, |m| m.members()),
        view: opts.view.clone().map(|v| {
            let shape = progress::LoadShape {
                planned,
                end_s,
                step: opts.step_label.clone(),
            };
            (v, shape)
        }),
        spans: opts.spans.clone().map(|q| {
            crate::telemetry::otlp::SpanFeed::new(q, load_start_wall.into(), requests.clone())
        }),
    };
    let agg_live = live.clone();
    let aggregator = std::thread::Builder::new()
        .name("aggregator".into())
        .spawn(move || aggregate::aggregate(rx, agg_live, agg_cfg))
        .map_err(|e| RunError::Aggregator(e.to_string()))?;

    // requests in flight, and a wake-up each time one finishes
    let in_flight = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let probe = health::LagProbe::start();
    let mut cancelled = false;
    // tasks that panicked, counted where their requests count
    let unrecorded = unrecorded::Unrecorded::new(if opts.mix.is_some() { members } else { 0 });
    // requests handed to a task, per tally: [candidate (or every request), baseline,
    // unmeasured]
    let mut dispatched = [0u64; 3];
    // a mix's measured requests handed to a task, per member
    let mut member_dispatched = vec![0u64; if opts.mix.is_some() { members } else { 0 }];
    // each member's own walk through the prompts: every member sees every prompt in turn,
    // whatever the round robin's period (a shared cursor would give a member of a 1:1 mix
    // only the even prompts, for ever)
    let mut member_cursor = vec![0usize; members];
    // a mix whose members have their own caps: each member's requests in flight
    let caps: Option<Vec<u32>> = opts.mix.as_ref().and_then(|m| m.caps.clone());
    let member_in_flight: Vec<Arc<AtomicU32>> =
        (0..members).map(|_| Arc::new(AtomicU32::new(0))).collect();
    // picks enough to go round every member's slots once
    let rounds = caps.as_ref().map_or(0, |c| {
        c.iter().map(|n| *n as usize).sum::<usize>() + members
    });
    let member_free = |m: usize| {
        caps.as_ref()
            .is_none_or(|c| member_in_flight[m].load(Ordering::Acquire) < c[m])
    };
    // the GET tasks of a task mix, [health, models]: counted apart
    let mut probe_dispatched = [0u64; 2];
    // open loop: (first, last) actual dispatch, last scheduled offset, requests that found
    // every slot taken
    let mut first_last: Option<(Instant, Instant)> = None;
    // the scheduled offsets of the first and last dispatch (a shard's schedule starts at its
    // phase, not at 0)
    let (mut first_offset, mut last_offset) = (None::<f64>, 0.0f64);
    let mut waited_for_slot = 0u64;
    // prompts (a mix lists each once per member)
    let len = requests.len() / members;
    let total = if extent.duration.is_some() {
        usize::MAX
    } else {
        extent
            .count
            .map_or(len, |c| usize::try_from(c).unwrap_or(usize::MAX))
    };
    // A closed loop sending a list: every request is due at the start (the seed submits them
    // all at once). A timed, ramped or thinking closed loop: a request is due when its slot
    // starts waiting, so its queue time is the wait for the level, not its place in the run.
    let due_when_waiting =
        !open && (extent.duration.is_some() || opts.profile.is_some() || opts.think.is_some());
    'dispatch: for i in 0..total {
        let waiting_since = Instant::now();
        // Free finished tasks as we go: memory follows the concurrency, not the request count.
        while tasks.try_join_next().is_some() {}
        // Closed loop: every request is due at the start (the seed submits them all at once),
        // so the wait for a free slot shows as client queue time. Open loop: the arrival's offset.
        let at = match offsets.as_mut() {
            Some(o) => match o.next() {
                Some(at) => at,
                // the rate fell to 0 for good: nothing more will be due
                None => break,
            },
            None => 0.0,
        };
        if end_s.is_some_and(|e| at >= e) {
            break;
        }
        let scheduled = load_start + Duration::from_secs_f64(at);
        if open {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { cancelled = true; break; }
                _ = tokio::time::sleep_until(scheduled.into()) => {}
            }
        }
        // wait for a free slot: the level of the profile (closed) or the in-flight cap (open)
        let mut first_look = true;
        loop {
            let now = load_start.elapsed().as_secs_f64();
            if end_s.is_some_and(|e| now >= e) {
                break 'dispatch;
            }
            let whole = profile.at(now).round().max(0.0) as u32;
            let level = match (cap, opts.part) {
                (Some(c), _) => c,
                (None, Some((index, count))) => part_of_level(whole, index, count),
                (None, None) => whole,
            };
            if whole == 0 && cap.is_none() && profile.next_change(now).is_none() {
                // the level ended at 0 for good: nothing more will be sent
                break 'dispatch;
            }
            if in_flight.load(Ordering::Acquire) < level && (0..members).any(member_free) {
                break;
            }
            waited_for_slot += u64::from(open && first_look);
            first_look = false;
            // the level can only rise at a profile change; the in-flight count falls when a
            // request finishes (a stored wake-up is never lost)
            let wake = match (cap, profile.next_change(now), end_s) {
                (None, Some(c), Some(e)) => Some(c.min(e)),
                (None, Some(c), None) => Some(c),
                (_, _, e) => e,
            }
            .map(|t| load_start + Duration::from_secs_f64(t));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { cancelled = true; break 'dispatch; }
                _ = finished.notified() => {}
                _ = sleep_until_or_never(wake) => {}
            }
        }
        let issued_at = if open {
            at
        } else {
            load_start.elapsed().as_secs_f64()
        };
        if open {
            first_offset.get_or_insert(at);
            last_offset = at;
            let now = Instant::now();
            first_last = Some((first_last.map_or(now, |(f, _)| f), now));
        }
        let timing = Timing {
            seq: i as u64,
            scheduled: if due_when_waiting {
                waiting_since
            } else {
                scheduled
            },
            load_start,
            timeout: opts.request_timeout,
        };
        let phase = extent.phase(issued_at);
        let step = opts.step;
        let (client, requests, tx) = (client.clone(), requests.clone(), tx.clone());
        // the next member in the round robin that has a free slot of its own (its caps are its
        // weights, so one comes up within a round)
        let member = picker.as_mut().map(|p| {
            let mut m = p.next_member();
            for _ in 0..rounds {
                if member_free(m) {
                    break;
                }
                m = p.next_member();
            }
            m
        });
        let slot = SlotGuard::take(
            &in_flight,
            &finished,
            member
                .filter(|_| caps.is_some())
                .map(|m| &member_in_flight[m]),
        );
        let pause = opts
            .think
            .as_ref()
            .map_or(Duration::ZERO, |t| t.pause(i as u64));
        let k = match member {
            Some(m) => {
                let p = member_cursor[m] % len;
                member_cursor[m] += 1;
                p * members + m
            }
            None => i % len,
        };
        live.dispatched.fetch_add(1, Ordering::Relaxed);
        let place = match requests[k].probe {
            Some(p) => {
                let p = usize::from(p == Probe::Models);
                probe_dispatched[p] += 1;
                unrecorded::Place::Probe(p)
            }
            None => {
                let b = bucket(phase, requests[k].arm);
                dispatched[b] += 1;
                let counted_in = member.filter(|_| b == 0 && opts.mix.is_some());
                if let Some(m) = counted_in {
                    member_dispatched[m] += 1;
                }
                unrecorded::Place::Tally {
                    tally: b,
                    member: counted_in,
                }
            }
        };
        let witness = unrecorded.witness(place);
        let (client, target) = match (opts.mix.as_ref(), member) {
            (Some(mix), Some(m)) => (
                mix.clients[m].clone().unwrap_or(client),
                Some(mix.names[m].clone()),
            ),
            _ => (client, None),
        };
        tasks.spawn(async move {
            #[cfg(test)]
            if requests[k].body.as_ref() == PANIC_IN_TASK {
                panic!("a request task panics, as a test asked");
            }
            let mut rec = client.stream(&requests[k], timing).await;
            rec.member = member.map(|m| m as u16);
            rec.target = target;
            if pause.is_zero() {
                drop(slot);
            } else {
                // the user thinks before its slot sends again; detached, so the load's end
                // never waits for a pause
                tokio::spawn(async move {
                    tokio::time::sleep(pause).await;
                    drop(slot);
                });
            }
            rec.phase = phase;
            rec.step = step;
            // The aggregator outlives every task; a closed channel only means it died, which
            // is reported when it is joined.
            let _ = tx.send(rec);
            witness.sent();
        });
    }
    drop(tx);

    let sent = dispatched.iter().sum::<u64>() + probe_dispatched.iter().sum::<u64>();
    let schedule_lag = match opts.schedule {
        Schedule::Rate {
            per_second,
            max_in_flight,
            ..
        } => Some(ScheduleLag::new(
            per_second,
            sent,
            last_offset - first_offset.unwrap_or(0.0),
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
            _ = drain(&mut tasks) => {}
        }
    }
    if aborted {
        tracing::warn!(in_flight = tasks.len(), grace = ?opts.drain_grace, "stopping: no new requests; draining in-flight ones");
        if tokio::time::timeout(opts.drain_grace, drain(&mut tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over: abandoning in-flight requests"
            );
            unrecorded.abort();
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
    let mut unmeasured = agg.unmeasured;
    let mut probes = agg.probes;
    let mut member_tallies = agg.members;
    // Every dispatched request left a record or counts as a failure, in its own tally: per
    // tally, exactly dispatched - recorded are missing; of those, the ones whose task panicked
    // are `lost`, the rest were cut off after the grace period (`abandoned`).
    let (mut lost, mut abandoned) = (0u64, 0u64);
    // splits one tally's missing requests, adding each kind to it under `add`
    let split = |missing: u64, panicked: u64, add: &mut dyn FnMut(&str, u64)| {
        let (l, a) = unrecorded::split(missing, panicked);
        for (kind, n) in [("abandoned", a), ("lost", l)] {
            if n > 0 {
                add(kind, n);
            }
        }
        (l, a)
    };
    for (m, (t, n)) in member_tallies
        .iter_mut()
        .zip(&member_dispatched)
        .enumerate()
    {
        // as the pooled tally's: a request that left no record is a failure of its member
        let missing = n.saturating_sub(t.total());
        split(missing, unrecorded.member(m), &mut |k, n| {
            t.add_failures(k, n)
        });
    }
    for (p, n) in [Probe::Health, Probe::Models]
        .into_iter()
        .zip(probe_dispatched)
    {
        let missing = n.saturating_sub(probes.total(p));
        let panicked = unrecorded.probe(usize::from(p == Probe::Models));
        let (l, a) = split(missing, panicked, &mut |k, n| probes.add_failures(p, k, n));
        lost += l;
        abandoned += a;
    }
    for (i, t) in [Some(&mut tally), baseline.as_mut(), Some(&mut unmeasured)]
        .into_iter()
        .enumerate()
    {
        let Some(t) = t else { continue };
        let missing = dispatched[i].saturating_sub(t.total());
        let (l, a) = split(missing, unrecorded.tally(i), &mut |k, n| {
            t.add_failures(k, n)
        });
        lost += l;
        abandoned += a;
    }
    if abandoned > 0 {
        // Cut off by the grace period: they count, as failures, so the totals add up.
        warnings.push(format!(
            "{abandoned} in-flight request(s) abandoned after the grace period; counted as `abandoned` failures"
        ));
    }
    if lost > 0 {
        // Fail closed: a request whose record vanished counts as a failure.
        warnings.push(format!(
            "{lost} request task(s) panicked; counted as `lost` failures"
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
    // a timed load's rates are over its measured window (in steady state as many requests
    // finish per second as are issued); a load of a fixed list's, from first issue to last finish
    let rate_span = extent
        .duration
        .map_or(duration, |d| d.min(duration.saturating_sub(extent.warmup)))
        .as_secs_f64();
    let client = tally.metrics(rate_span);
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
        baseline_client: baseline.as_ref().map(|b| b.metrics(rate_span)),
        unmeasured,
        probes,
        baseline_tally: baseline,
        members: member_tallies,
        rate_span_s: rate_span,
        health,
        warnings,
        records_error: agg.write_error,
    })
}

/// Which tally a request's record goes to: 0 the candidate's (or every measured request's),
/// 1 the baseline arm's, 2 the unmeasured (a timed load's warm-up and cool-down).
fn bucket(phase: Phase, arm: Option<Arm>) -> usize {
    match (phase, arm) {
        (Phase::Warmup | Phase::Cooldown, _) => 2,
        (Phase::Measured, Some(Arm::Baseline)) => 1,
        (Phase::Measured, _) => 0,
    }
}

/// A request's place in flight: taken at dispatch, freed (the count decremented, the
/// dispatcher woken) when dropped, so a task that panics or is aborted frees its slot too.
struct SlotGuard {
    in_flight: Arc<AtomicU32>,
    finished: Arc<Notify>,
    /// A capped mix member's own count, also freed on drop.
    member: Option<Arc<AtomicU32>>,
}

impl SlotGuard {
    fn take(
        in_flight: &Arc<AtomicU32>,
        finished: &Arc<Notify>,
        member: Option<&Arc<AtomicU32>>,
    ) -> SlotGuard {
        in_flight.fetch_add(1, Ordering::AcqRel);
        if let Some(m) = member {
            m.fetch_add(1, Ordering::AcqRel);
        }
        SlotGuard {
            in_flight: in_flight.clone(),
            finished: finished.clone(),
            member: member.cloned(),
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(m) = &self.member {
            m.fetch_sub(1, Ordering::AcqRel);
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.finished.notify_one();
    }
}

/// Sleeps until `at`, or for ever.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Joins every task (one that panicked is counted by its [`unrecorded::Witness`]).
async fn drain(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// A request body that makes its task panic, in tests (a panic in a request's task is a bug;
/// its request must still count as a failure, where it counts).
#[cfg(test)]
const PANIC_IN_TASK: &[u8] = b"{\"panic_in_task\": true}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_in_their_phase_and_arm() {
        assert_eq!(bucket(Phase::Warmup, Some(Arm::Baseline)), 2);
        assert_eq!(bucket(Phase::Measured, Some(Arm::Baseline)), 1);
        assert_eq!(bucket(Phase::Measured, None), 0);
    }

    fn options(mix: Option<Arc<DispatchMix>>) -> RunOptions {
        RunOptions {
            mix,
            ..RunOptions::closed(2, Duration::from_secs(10), Duration::from_secs(5))
        }
    }

    /// Prepared requests for `n` prompts; `panics(i)` makes request `i`'s task panic.
    fn requests(n: usize, panics: impl Fn(usize) -> bool) -> Vec<PreparedRequest> {
        let prompts: Vec<crate::workload::Prompt> = (0..n)
            .map(|i| crate::workload::Prompt::Text(format!("prompt {i}")))
            .collect();
        let mut list = crate::workload::prepare_requests(
            crate::api::Api::Openai,
            &prompts,
            "candidate",
            crate::workload::EndpointChoice::Auto,
            crate::workload::Sampling {
                max_tokens: 2,
                temperature: 0.0,
            },
        );
        for (i, r) in list.iter_mut().enumerate() {
            if panics(i) {
                r.body = bytes::Bytes::from_static(PANIC_IN_TASK);
            }
        }
        list
    }

    async fn sim_client() -> (vllm_sim::SimHandle, Arc<VllmClient>) {
        let sim = vllm_sim::spawn(vllm_sim::SimConfig {
            ttft: Duration::from_millis(1),
            itl: Duration::from_millis(1),
            ..Default::default()
        })
        .await
        .unwrap();
        let client = VllmClient::new(
            &sim.base_url(),
            None,
            crate::client::ClientOptions::default(),
        )
        .unwrap();
        (sim, Arc::new(client))
    }

    /// A request whose task panics is a `lost` failure of the arm it belongs to (the join
    /// error of a panicked task does not say which request it ran: counting panics apart
    /// charged them to the candidate's arm first).
    #[tokio::test]
    async fn a_panicked_task_is_lost_in_its_own_arm() {
        let (_sim, client) = sim_client().await;
        // candidate and baseline in turn; two of the baseline's panic
        let mut list = requests(8, |i| i == 1 || i == 5);
        for (i, r) in list.iter_mut().enumerate() {
            r.arm = Some(if i % 2 == 0 {
                Arm::Candidate
            } else {
                Arm::Baseline
            });
        }
        let out = run_load(
            client,
            Arc::new(list),
            options(None),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.client.successful_requests, 4, "{:?}", out.client);
        assert!(out.client.errors_by_kind.is_empty(), "{:?}", out.client);
        let b = out.baseline_client.unwrap();
        assert_eq!(b.successful_requests, 2, "{b:?}");
        assert_eq!(b.errors_by_kind.get("lost"), Some(&2), "{b:?}");
        assert_eq!(b.errors_by_kind.len(), 1, "{b:?}");
        assert!(
            out.warnings
                .iter()
                .any(|w| w.starts_with("2 request task(s) panicked")),
            "{:?}",
            out.warnings
        );
    }

    /// In a mix, a panicked task is a `lost` failure of its own member, not `abandoned`.
    #[tokio::test]
    async fn a_panicked_task_is_lost_in_its_own_mix_member() {
        let (_sim, client) = sim_client().await;
        // a mix lists each prompt once per member: entry p * 2 + m; two of member 1's panic
        let list = requests(8, |i| i == 3 || i == 7);
        let mix = DispatchMix {
            names: vec!["a".into(), "b".into()],
            weights: vec![1.0, 1.0],
            clients: vec![None, None],
            caps: None,
        };
        let out = run_load(
            client,
            Arc::new(list),
            RunOptions {
                extent: Extent {
                    count: Some(8),
                    ..Extent::default()
                },
                ..options(Some(Arc::new(mix)))
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        let members: Vec<_> = out.members.iter().map(|t| t.metrics(1.0)).collect();
        assert_eq!(members.len(), 2);
        assert!(members[0].errors_by_kind.is_empty(), "{:?}", members[0]);
        assert_eq!(members[0].successful_requests, 4, "{:?}", members[0]);
        assert_eq!(members[1].successful_requests, 2, "{:?}", members[1]);
        assert_eq!(
            members[1].errors_by_kind,
            [("lost".to_string(), 2)].into(),
            "{:?}",
            members[1]
        );
        assert_eq!(out.client.errors_by_kind.get("lost"), Some(&2));
    }
}
