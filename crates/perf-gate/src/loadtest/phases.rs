//! The phases of a `load-test` run, in order: inputs, preflight (vLLM, adapter, Prometheus),
//! warm-up, the measured load, server-side figures. Each returns a [`LoadTestError`] on failure.
//!
//! With `--baseline-adapter` (a same-server A/B run) the baseline adapter goes through the same
//! check as the candidate, the warm-up warms both, and the load interleaves the two arms over
//! the same prompts ([`crate::workload::interleave_ab`]); the server's figures count both arms'
//! requests (vLLM labels its series by base model), so every count reconciled with them is
//! the two arms' together.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{LoadTestConfig, LoadTestError, PARTIAL_REQUESTS_FILE, rfc3339};
use crate::client::batch_window::BatchWindow;
use crate::client::{ClientOptions, HttpClient, VllmClient};
use crate::prom::{
    DEFAULT_SCRAPE_INTERVAL, LoadSpan, MetricsScraper, MetricsSnapshot, PreLoad,
    PrometheusCollector, server_metrics_from_deltas,
};
use crate::results::{
    AdapterInfo, BaselineArm, LoadTestResults, REQUESTS_FILE, RunStatus, RunTiming, ServerMetrics,
    UnmeasuredInfo, WarmupInfo, WindowMode,
};
use crate::runner::aggregate::Tally;
use crate::runner::{DEFAULT_MAX_IN_FLIGHT, Extent, RunOptions, RunOutput, Schedule, run_load};
use crate::workload::PreparedRequest;

/// Why a run with `--api llamacpp` has no server-side figures (recorded as a departure, a
/// sweep step's `server_note`, and the validity reason).
pub(super) const NO_SERVER_SIDE: &str = "--api llamacpp: no server-side figures: the server window reads vLLM's series (Prometheus or /metrics) and llama.cpp's llamacpp:* series are another set, so this run is a client-side measurement, not a vLLM gate measurement";

/// Where server-side figures come from.
pub(super) enum ServerSide {
    /// Prometheus, with the left edges confirmed before the load (end-anchored windows) or
    /// not (`None`: the seed's window).
    Prometheus(PrometheusCollector, Option<PreLoad>),
    /// vLLM `/metrics` before and after the load.
    Scrape {
        /// The scraper.
        scraper: MetricsScraper,
        /// The snapshot taken just before the load.
        before: MetricsSnapshot,
    },
}

/// Runs every phase; `Ok` carries the final status (completed or aborted).
pub(super) async fn execute(
    cfg: &LoadTestConfig,
    results: &mut LoadTestResults,
    cancel: CancellationToken,
    started_wall: chrono::DateTime<Utc>,
) -> Result<RunStatus, LoadTestError> {
    // Local inputs first: a bad file fails fast without touching the network.
    let inputs = super::inputs::plan(cfg, results)?;
    if cfg.mix.is_some() && (cfg.steps.is_some() || cfg.baseline_adapter.is_some()) {
        return Err(LoadTestError::Runner(crate::runner::RunError::Schedule(
            "a mix splits one load among its members: it cannot be a sweep or an A/B run".into(),
        )));
    }
    // a shard leaves the server's figures to `load-test merge` (one query over the union)
    let collector = match &cfg.prometheus_url {
        Some(_) if cfg.shard.is_some() => None,
        Some(url) => Some(PrometheusCollector::with_tls(
            url,
            cfg.prom.clone(),
            &cfg.prometheus_tls,
        )?),
        None => None,
    };
    let client = Arc::new(VllmClient::new(
        &cfg.vllm_url,
        cfg.api_key.as_deref(),
        ClientOptions {
            pool_size: cfg.peak_concurrency() as usize,
            tls: cfg.vllm_tls.clone(),
            traceparent: cfg.traceparent,
            http_client: cfg.http_client,
            api: cfg.api,
            ..ClientOptions::default()
        },
    )?);

    // Everything before the load can take long (--wait-ready): a signal ends it at once.
    let preflight = async {
        let baseline = preflight(cfg, &client, collector.as_ref(), results).await?;
        let mix = match &cfg.mix {
            Some(m) => Some((m, super::mixes::check(cfg, m, &client).await?)),
            None => None,
        };
        // synthetic prompts are sized with the server's tokenizer: after the health check
        let built = super::inputs::build(cfg, inputs, &client, results).await;
        // a plain load cycles one pass over the prompts in place (memory does not grow with
        // --num-requests); shards, mixes and sweeps split or rearrange every request
        let (mut requests, count) =
            if cfg.shard.is_some() || cfg.mix.is_some() || cfg.steps.is_some() {
                (built.expanded(), None)
            } else {
                (built.list, Some(built.count))
            };
        if let Some(shard) = cfg.shard {
            requests = shard_of(requests, shard);
        }
        let mut cold = Vec::new();
        let mut dispatch = None;
        if let Some((m, setup)) = &mix {
            requests = super::mixes::expand(&requests, m, setup, cfg.api)?;
            // before any warm-up, which would load the adapters
            cold = super::mixes::cold_loads(cfg, m, &client, &requests, &cancel).await?;
            dispatch = Some(super::mixes::dispatch(cfg, m, setup));
            // seed windows need a quiet gap before the load (a warm-up waits one itself)
            if cfg.warmup_requests == 0
                && cfg.prometheus_url.is_some()
                && cfg.prom.window_mode == WindowMode::Seed
            {
                let gap = cfg.prom.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL)
                    + Duration::from_secs(2);
                tracing::info!(gap = ?gap, "quiet gap after the cold loads so they stay out of the window");
                tokio::time::sleep(gap).await;
            }
        }
        if cfg.warmup_requests > 0 {
            results.warmup =
                Some(warm_up(cfg, &client, &requests, &cancel, dispatch.as_ref()).await?);
        }
        Ok::<_, LoadTestError>((
            baseline,
            requests,
            count,
            mix.map(|(m, s)| (m, s, cold, dispatch)),
        ))
    };
    let (baseline_adapter, requests, count, mix) = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(LoadTestError::Aborted { phase: "before the load started" }),
        r = preflight => r?,
    };
    if cancel.is_cancelled() {
        return Err(LoadTestError::Aborted {
            phase: "during the warm-up",
        });
    }
    // the pre-flight and warm-up are over: the server's left edge must be newer
    let ready_wall = Utc::now();
    // a target mix has no server side: Prometheus and /metrics describe one server
    let targets = cfg
        .mix
        .as_ref()
        .is_some_and(|m| m.kind == crate::mix::MixKind::Targets);
    // each client with the connections it needs (a target with its own cap: its part)
    let pooled: Vec<(&VllmClient, u32)> = match &mix {
        Some((_, setup, ..)) if targets => setup
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((&**c.as_ref()?, cfg.member_slots(i))))
            .collect(),
        _ => vec![(&*client, cfg.peak_concurrency())],
    };
    record_http_client(cfg, &pooled, results);
    if cfg.steps.is_some() {
        // polled across every step (and the reads of the server between them)
        let poller = super::poll::Poller::start(cfg, &client);
        let status = super::sweep::run(
            cfg,
            &client,
            collector.as_ref(),
            requests,
            &cancel,
            results,
            (started_wall, ready_wall),
            &poller,
        )
        .await;
        poller.stop(results).await;
        return status;
    }
    let server_side = if targets || cfg.shard.is_some() || !cfg.api.has_vllm_metrics() {
        None
    } else {
        Some(open_window(cfg, &client, collector.as_ref(), &cancel).await?)
    };
    for &(c, slots) in &pooled {
        preconnect(cfg, c, &cancel, results, slots).await?;
    }
    if let Some(at) = cfg.start_at {
        reopen_before_start(cfg, &pooled, at, &cancel, results).await?;
        start_at(at, ("--start-at", NOT_TOGETHER), &cancel, results).await?;
    }
    let poller = super::poll::Poller::start(cfg, &client);
    let dispatch = mix.as_ref().and_then(|(.., d)| d.clone());
    let out = measure(
        cfg,
        &client,
        (requests, count),
        &cancel,
        results,
        None,
        dispatch,
    )
    .await;
    poller.stop(results).await;
    let out = out?;
    results.timing = Some(RunTiming {
        started_at: rfc3339(started_wall),
        ready_at: Some(rfc3339(ready_wall)),
        load_start: rfc3339(out.load_start),
        load_end: rfc3339(out.load_end),
        load_duration_s: out.duration.as_secs_f64(),
        wall_clock_duration_s: 0.0,
    });
    // the packed samples are the run's store, shared: this copies no sample
    results.client = Some(out.client.clone());
    if let (Some(adapter), Some(client)) = (baseline_adapter, &out.baseline_client) {
        results.baseline_arm = Some(BaselineArm {
            adapter,
            client: client.clone(),
        });
    }
    results.load_generator = Some(out.health.clone());
    results.schedule = out.schedule_lag.clone();
    results.unmeasured = unmeasured_info(cfg, &out.unmeasured);
    results.probes = out.probes.summaries();
    let mix_results = mix
        .as_ref()
        .map(|(m, setup, cold, _)| super::mixes::results(m, setup, &out, cold, out.rate_span_s));
    records_kept(&out)?;
    if out.aborted {
        if let Some(mr) = mix_results {
            super::mixes::record(results, mr);
        }
        return Ok(RunStatus::Aborted);
    }
    if let Some(side) = server_side {
        let Some(server) = window_figures(side, &out, &cancel, results).await? else {
            return Ok(RunStatus::Aborted);
        };
        results.server = Some(server);
    }
    // a run without a vLLM server side (a target mix, llama.cpp) is judged by what it lacks
    if results.server.is_some() || !cfg.api.has_vllm_metrics() {
        let validity = crate::decision::validity::validity(results);
        for r in &validity.reasons {
            tracing::warn!("measurement not trustworthy: {r}");
        }
        results.validity = Some(validity);
    }
    if let Some(mr) = mix_results {
        super::mixes::record(results, mr);
    }
    if let Some(shard) = cfg.shard {
        results.shard = Some(crate::results::ShardInfo {
            index: Some(shard.index),
            count: shard.count,
            rate_span_s: out.rate_span_s,
            tally: Some(out.tally.to_wire()),
            unmeasured: Some(out.unmeasured.to_wire()),
            baseline: out.baseline_tally.as_ref().map(Tally::to_wire),
            members: out.members.iter().map(Tally::to_wire).collect(),
            steps: Vec::new(),
        });
        results.validity = Some(crate::results::Validity {
            valid: false,
            reasons: vec![format!(
                "shard {} of {}: its requests are a part of the load; `load-test merge` combines the shards and queries the server once",
                shard.index, shard.count
            )],
        });
    }
    Ok(RunStatus::Completed)
}

/// Shard `s`'s part of the request list: every `count`-th request from `index`, so the shards
/// together send the list once; a list shorter than the shards is shared whole (a timed
/// load cycles it anyway). An A/B list is dealt in pairs (a candidate request and its baseline
/// twin stay in one shard), each shard's pairs counterbalanced again (AB, BA, AB, ...).
fn shard_of(requests: Vec<PreparedRequest>, s: super::Shard) -> Vec<PreparedRequest> {
    let ab = requests.first().is_some_and(|r| r.arm.is_some());
    let unit = if ab { 2 } else { 1 };
    let count = s.count as usize;
    if requests.len() < count * unit {
        return requests;
    }
    let mut mine = Vec::with_capacity(requests.len() / count + unit);
    let mut pair = Vec::with_capacity(2);
    for (i, r) in requests.into_iter().enumerate() {
        if (i / unit) % count != s.index as usize {
            continue;
        }
        if !ab {
            mine.push(r);
            continue;
        }
        pair.push(r);
        if pair.len() == 2 {
            // the shard's j-th pair: candidate first when j is even
            let candidate_first = (mine.len() / 2) % 2 == 0;
            if (pair[0].arm == Some(crate::workload::Arm::Candidate)) != candidate_first {
                pair.swap(0, 1);
            }
            mine.append(&mut pair);
        }
    }
    mine
}

/// A wait for `--start-at` that outlasts a server's idle timeout (vLLM: 5 s) would leave the
/// pool closed: the connections are opened again (every target's at once) 2 s before the
/// start, and given up at the start itself (the start is kept, the rest open in the load).
pub(super) async fn reopen_before_start(
    cfg: &LoadTestConfig,
    pooled: &[(&VllmClient, u32)],
    at: chrono::DateTime<Utc>,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
) -> Result<(), LoadTestError> {
    let reopen = at - chrono::Duration::seconds(2);
    let Ok(wait) = (reopen - Utc::now()).to_std() else {
        return Ok(());
    };
    if !cfg.preconnect || wait < Duration::from_secs(2) {
        return Ok(());
    }
    let aborted = LoadTestError::Aborted {
        phase: "while waiting for --start-at",
    };
    tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(aborted),
        _ = tokio::time::sleep(wait) => {}
    }
    tracing::info!("opening the connections again before --start-at");
    let all = futures::future::join_all(
        pooled
            .iter()
            .map(|&(c, slots)| crate::runner::preconnect::preconnect(c, slots)),
    );
    let left = (at - Utc::now()).to_std().unwrap_or_default();
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(aborted),
        o = tokio::time::timeout(left, all) => o,
    };
    match opened {
        Ok(infos) => {
            let failed: u64 = infos.iter().map(|i| i.failed).sum();
            if failed > 0 {
                results.warnings.push(format!(
                    "{failed} of {} connections could not be opened again before --start-at: the first requests on them include a handshake",
                    pooled.iter().map(|&(_, n)| u64::from(n)).sum::<u64>()
                ));
            }
        }
        Err(_) => results.warnings.push(
            "the connections were still being opened again at --start-at: the first requests on the rest include a handshake".to_string(),
        ),
    }
    Ok(())
}

/// Why a shard reached `--start-at` late: its shards did not start together.
pub(super) const NOT_TOGETHER: &str = "shards given it did not start together";

/// Waits for `at` (`what`: `--start-at`, or a sharded sweep's step start); a time already past
/// is a warning naming `why` it was late, not a wait.
pub(super) async fn start_at(
    at: chrono::DateTime<Utc>,
    (what, why): (&str, &str),
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
) -> Result<(), LoadTestError> {
    let now = Utc::now();
    match (at - now).to_std() {
        Ok(wait) => {
            tracing::info!(start_at = %rfc3339(at), wait_s = wait.as_secs_f64(), "waiting for {what}");
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(LoadTestError::Aborted { phase: "while waiting for the load's start" }),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Err(_) => results.warnings.push(format!(
            "{what} {} had passed {:.1} s before the load could start ({why})",
            rfc3339(at),
            (now - at).num_milliseconds() as f64 / 1e3
        )),
    }
    Ok(())
}

/// The requests a timed load sent but did not measure, when it had a warm-up or cool-down.
pub(super) fn unmeasured_info(cfg: &LoadTestConfig, t: &Tally) -> Option<UnmeasuredInfo> {
    if t.total() == 0 && cfg.warmup.is_zero() && cfg.cooldown.is_zero() {
        return None;
    }
    let u = t.metrics(0.0);
    Some(UnmeasuredInfo {
        requests: u.total_requests,
        successful_requests: u.successful_requests,
        errors_by_kind: u.errors_by_kind,
        warmup_s: cfg.warmup.as_secs_f64(),
        cooldown_s: cfg.cooldown.as_secs_f64(),
    })
}

/// Fails the step when the per-request records could not be written in full: the figures are
/// kept in the results, but a step that promised the per-request record and lost it (a full
/// disk) has failed: nothing downstream judges it.
pub(super) fn records_kept(out: &RunOutput) -> Result<(), LoadTestError> {
    match &out.records_error {
        Some(why) => Err(LoadTestError::Records {
            file: REQUESTS_FILE.to_string(),
            why: why.clone(),
        }),
        None => Ok(()),
    }
}

/// Opens the server side's window for the next load: waits until every Prometheus target
/// shows a quiet sample newer than now (end-anchored), or takes vLLM's `/metrics` snapshot.
pub(super) async fn open_window(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    collector: Option<&PrometheusCollector>,
    cancel: &CancellationToken,
) -> Result<ServerSide, LoadTestError> {
    let ready = Utc::now();
    Ok(match collector {
        Some(c) if cfg.prom.window_mode == WindowMode::EndAnchored => {
            // the load starts only once every target shows a quiet sample newer than `ready`
            let pre = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(LoadTestError::Aborted { phase: "while waiting for Prometheus's samples before the load" }),
                r = c.await_left_edges(ready) => r?,
            };
            ServerSide::Prometheus(c.clone(), Some(pre))
        }
        Some(c) => ServerSide::Prometheus(c.clone(), None),
        None => {
            let scraper =
                MetricsScraper::new(client.http().clone(), &cfg.vllm_url, cfg.api_key.clone())?;
            let before = scraper
                .snapshot()
                .await
                .map_err(|e| LoadTestError::Scrape {
                    source: Box::new(e),
                    when: "before",
                    hint: " (give --prometheus-url to read the figures from Prometheus instead)",
                })?;
            ServerSide::Scrape { scraper, before }
        }
    })
}

/// With `--preconnect`, opens `slots` connections before the load (recorded in the results).
pub(super) async fn preconnect(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
    slots: u32,
) -> Result<(), LoadTestError> {
    preconnect_before(cfg, client, cancel, results, slots, None).await
}

/// [`preconnect`] again, before `again` (a sweep's later step, `--start-at`), after a pause
/// that outlasts a server's idle timeout (vLLM: 5 s) closed the kept connections; `None`: the
/// first opening, the only one recorded in the results.
pub(super) async fn preconnect_before(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
    slots: u32,
    again: Option<&str>,
) -> Result<(), LoadTestError> {
    if !cfg.preconnect {
        return Ok(());
    }
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(LoadTestError::Aborted { phase: "while opening connections before the load" }),
        p = crate::runner::preconnect::preconnect(client, slots) => p,
    };
    let before = again.unwrap_or("the load");
    if opened.failed > 0 {
        results.warnings.push(format!(
            "{} of {} connections could not be opened before {before}: the first requests on them include a handshake",
            opened.failed, opened.connections
        ));
    }
    if again.is_none() {
        results.preconnect = Some(opened);
    }
    Ok(())
}

/// The server's figures over the window `side` opened for the load `out`, checked against
/// every request the server saw succeed: both arms' (vLLM labels its series by base model)
/// and a timed load's warm-up and cool-down requests. `None` when a signal cut the wait short.
pub(super) async fn window_figures(
    side: ServerSide,
    out: &RunOutput,
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
) -> Result<Option<ServerMetrics>, LoadTestError> {
    let successes = out.tally.successful()
        + out.baseline_tally.as_ref().map_or(0, Tally::successful)
        + out.unmeasured.successful();
    let Some(mut server) = server_figures(side, out, successes, cancel).await? else {
        return Ok(None);
    };
    super::accounting::require_client_successes(&mut server, successes);
    reconcile(&mut results.warnings, &server, successes);
    Ok(Some(server))
}

/// `/health` and `/v1/models` for `adapter`: one check (or, with `--wait-ready`, a wait) that
/// it is served, and how.
async fn check_adapter(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    adapter: &str,
) -> Result<AdapterInfo, crate::client::ClientError> {
    let info = match cfg.wait_ready {
        Some(t) if !t.is_zero() => client.wait_for_adapter(adapter, t).await,
        _ => match client.health().await {
            Ok(()) => client.find_adapter(adapter).await,
            Err(e) => Err(e),
        },
    }?;
    tracing::info!(adapter = %info.name, root = ?info.root, parent = ?info.parent, "adapter is served");
    Ok(info)
}

/// vLLM healthy (waiting with `--wait-ready`), the adapter served (and the baseline adapter,
/// by the same check), Prometheus reachable. Returns how the baseline adapter is served.
async fn preflight(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    collector: Option<&PrometheusCollector>,
    results: &mut LoadTestResults,
) -> Result<Option<AdapterInfo>, LoadTestError> {
    results.adapter = Some(check_adapter(cfg, client, &cfg.adapter_name).await?);
    let baseline = match &cfg.baseline_adapter {
        Some(b) => Some(
            check_adapter(cfg, client, b)
                .await
                .map_err(LoadTestError::BaselineAdapter)?,
        ),
        None => None,
    };
    if let Some(c) = collector {
        c.check_ready().await?;
    }
    Ok(baseline)
}

/// Sends the first `--warmup-requests` requests (cycling the prompts), outside the measurement:
/// the first request to a LoRA adapter loads it. In an A/B run, as many to each adapter (the
/// first pairs of the interleaved list), so neither adapter's load lands in the measurement.
/// With Prometheus, then waits one scrape interval + 2 s so warm-up observations fall before
/// the window's first sample.
async fn warm_up(
    cfg: &LoadTestConfig,
    client: &Arc<VllmClient>,
    requests: &[PreparedRequest],
    cancel: &CancellationToken,
    mix: Option<&Arc<crate::runner::DispatchMix>>,
) -> Result<WarmupInfo, LoadTestError> {
    let arms = if cfg.baseline_adapter.is_some() { 2 } else { 1 };
    // a mix: as many to every member (equal weights take the members in turn, so the list
    // holds members x members entries per round)
    let members = mix.map_or(1, |m| m.names.len());
    let n = cfg.warmup_requests as usize * arms * members * members;
    let mix = mix.map(|m| {
        Arc::new(crate::runner::DispatchMix {
            weights: vec![1.0; members],
            ..(**m).clone()
        })
    });
    let warm: Vec<_> = requests
        .iter()
        .cycle()
        .take(n)
        .map(|r| PreparedRequest {
            // one tally for the warm-up, whichever adapter a request went to
            arm: None,
            ..r.clone()
        })
        .collect();
    tracing::info!(requests = n / members, "warm-up (not measured)");
    let out = run_load(
        client.clone(),
        Arc::new(warm),
        RunOptions {
            mix,
            ..RunOptions::closed(
                (cfg.concurrency as usize).min(n / members).max(1) as u32,
                cfg.request_timeout,
                cfg.drain_grace,
            )
        },
        cancel.clone(),
    )
    .await?;
    // Seed windows need a fixed quiet gap; end-anchored ones wait for a confirmed sample instead.
    let gap = match (&cfg.prometheus_url, cfg.prom.window_mode) {
        (Some(_), WindowMode::Seed) => {
            cfg.prom.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL) + Duration::from_secs(2)
        }
        _ => Duration::ZERO,
    };
    if !gap.is_zero() {
        tracing::info!(gap = ?gap, "quiet gap after warm-up so its observations stay out of the window");
        tokio::time::sleep(gap).await;
    }
    if out.client.failed_requests > 0 {
        tracing::warn!(
            failed = out.client.failed_requests,
            errors = ?out.client.errors_by_kind,
            "warm-up requests failed"
        );
    }
    Ok(WarmupInfo {
        requests: out.client.total_requests,
        successful_requests: out.client.successful_requests,
        errors_by_kind: out.client.errors_by_kind,
        gap_s: gap.as_secs_f64(),
    })
}

/// A step of a sweep: its position, and whether it is the last.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    /// 0-based position.
    pub index: u32,
    /// Whether no step follows.
    pub last: bool,
    /// Steps in the sweep.
    pub of: u32,
    /// The step's level (requests in flight, or per second).
    pub level: f64,
}

impl Step {
    /// `step 2/5 at 8 in flight` (1-based, as people count).
    fn label(&self, open: bool) -> String {
        let unit = if open { "req/s" } else { "in flight" };
        format!(
            "step {}/{} at {} {unit}",
            self.index + 1,
            self.of,
            self.level
        )
    }
}

/// Records (and logs) which HTTP client sends the load: `native`, `reqwest`, or `mixed` when a
/// mix's targets differ (one behind a proxy).
fn record_http_client(
    cfg: &LoadTestConfig,
    pooled: &[(&VllmClient, u32)],
    results: &mut LoadTestResults,
) {
    let used: std::collections::BTreeSet<_> = pooled
        .iter()
        .map(|(c, _)| c.http_client().as_str())
        .collect();
    let used = match used.len() {
        1 => used.into_iter().next().unwrap_or("reqwest"),
        _ => "mixed",
    };
    results.config.http_client = Some(used.to_string());
    let window = batch_window(cfg, results);
    tracing::info!(http_client = used, batch_window = ?window, "HTTP client of the load's requests");
}

/// The batch window to open while the load runs: `--batch-window` where every target is read
/// by the own client with the kernel's receive times, else none.
fn batch_window(cfg: &LoadTestConfig, results: &LoadTestResults) -> Option<Duration> {
    (results.config.http_client.as_deref() == Some(HttpClient::Native.as_str())
        && crate::client::batch_window::receive_times()
        && !cfg.batch_window.is_zero())
    .then_some(cfg.batch_window)
}

/// The measured load; `requests.jsonl` is written as `.partial` and renamed when complete.
///
/// `requests`: the list and, when it is one cycle of the load, how many requests to send
/// (`None`: the list once, or cycled for `--duration`).
pub(super) async fn measure(
    cfg: &LoadTestConfig,
    client: &Arc<VllmClient>,
    (requests, count): (Vec<PreparedRequest>, Option<u64>),
    cancel: &CancellationToken,
    results: &mut LoadTestResults,
    step: Option<Step>,
    mix: Option<Arc<crate::runner::DispatchMix>>,
) -> Result<RunOutput, LoadTestError> {
    let schedule = match cfg.rate {
        Some(r) => Schedule::Rate {
            per_second: r,
            // not --concurrency (the cap before issue 11): an open loop issues on schedule
            max_in_flight: cfg.max_inflight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            arrival: cfg.arrival,
            seed: cfg.seed,
            phase: cfg
                .shard
                .map_or(0.0, |s| f64::from(s.index) / f64::from(s.count)),
        },
        None => Schedule::Closed {
            // (a staged shard's part of --concurrency may be 0: its stages set the level)
            concurrency: cfg.concurrency.max(1),
        },
    };
    let partial = cfg.output_dir.join(PARTIAL_REQUESTS_FILE);
    let members = mix.as_ref().map_or(1, |m| m.names.len());
    tracing::info!(requests = count.unwrap_or((requests.len() / members) as u64), concurrency = cfg.concurrency, rate = ?cfg.rate, arrival = %cfg.arrival, max_inflight = ?cfg.max_inflight, seed = cfg.seed, "load starting");
    // open while the requests run, after the preconnect (whose times it would add to)
    let window = batch_window(cfg, results).map(BatchWindow::open);
    let out = run_load(
        client.clone(),
        Arc::new(requests),
        RunOptions {
            schedule,
            profile: cfg.profile(),
            // a staged closed loop's profile is the whole load's (a plain shard's level is
            // already its part of --concurrency)
            part: match (cfg.shard, cfg.rate, &cfg.stages) {
                (Some(s), None, Some(_)) => Some((s.index, s.count)),
                _ => None,
            },
            extent: Extent {
                duration: cfg.duration,
                warmup: cfg.warmup,
                cooldown: cfg.cooldown,
                count: count.filter(|_| cfg.duration.is_none()),
            },
            think: cfg.think.clone(),
            step: step.map(|s| s.index),
            request_timeout: cfg.request_timeout,
            drain_grace: cfg.drain_grace,
            progress_every: cfg.progress_every,
            requests_path: Some(partial.clone()),
            slo: cfg.slo,
            live_figures: cfg.pushgateway.as_ref().map(|p| p.figures.clone()),
            mix,
            view: cfg.progress_view.clone(),
            step_label: step.map(|s| s.label(cfg.rate.is_some())),
            spans: cfg.otlp.as_ref().map(|o| o.queue()),
        },
        cancel.clone(),
    )
    .await;
    drop(window);
    let mut out = match out {
        Ok(out) => out,
        Err(e) => {
            // a sweep's later step keeps the earlier steps' records
            if step.is_none_or(|s| s.index == 0) {
                let _ = std::fs::remove_file(&partial);
            }
            return Err(e.into());
        }
    };
    // a sweep's steps write one file: it is complete after the last step (or a signal)
    let complete = step.is_none_or(|s| s.last) || out.aborted;
    if complete
        && out.records_error.is_none()
        && let Err(e) = std::fs::rename(&partial, cfg.output_dir.join(REQUESTS_FILE))
    {
        out.records_error = Some(format!("cannot rename {}: {e}", partial.display()));
    }
    results.warnings.extend(out.warnings.iter().cloned());
    tracing::info!(
        duration_s = format!("{:.2}", out.duration.as_secs_f64()),
        ok = out.client.successful_requests,
        failed = out.client.failed_requests,
        "load finished"
    );
    for (arm, c) in std::iter::once(("", &out.client)).chain(
        out.baseline_client
            .as_ref()
            .map(|b| (" of the baseline adapter", b)),
    ) {
        if c.responses_without_usage > 0 {
            results.warnings.push(format!(
                "{} successful responses{arm} carried no usage chunk: their output tokens are unknown (not guessed from max_tokens)",
                c.responses_without_usage
            ));
        }
        if c.zero_usage_with_content > 0 {
            results.warnings.push(format!(
                "{} successful responses{arm} streamed content but their usage chunk said 0 completion tokens: the server's token counts contradict the stream (output-token figures undercount)",
                c.zero_usage_with_content
            ));
        }
    }
    Ok(out)
}

/// Server-side figures for the load just run, in which the client saw `successes` requests
/// succeed (both arms'); `None` when a signal cut the wait short.
async fn server_figures(
    side: ServerSide,
    out: &RunOutput,
    successes: u64,
    cancel: &CancellationToken,
) -> Result<Option<ServerMetrics>, LoadTestError> {
    match side {
        ServerSide::Prometheus(c, pre) => {
            let span = LoadSpan {
                start: out.load_start,
                end: out.load_end,
            };
            tracing::info!("waiting for the Prometheus scrapes after the load, then querying");
            let collect = async {
                match &pre {
                    Some(pre) => c.collect_confirmed(pre, &span, successes).await,
                    None => c.collect_seed(&span).await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Ok(None),
                r = collect => Ok(Some(r?)),
            }
        }
        ServerSide::Scrape { scraper, before } => {
            // vLLM records a request's metrics just after its last chunk: wait (briefly) until
            // the server has counted what the client saw finish.
            let settled = scraper.snapshot_settled(&before, successes, Duration::from_secs(5));
            // a signal ends the wait at once, as every other wait of the step
            let after = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(None),
                r = settled => r,
            }
            .map_err(|e| LoadTestError::Scrape {
                source: Box::new(e),
                when: "after",
                hint: "",
            })?;
            Ok(Some(server_metrics_from_deltas(
                &before,
                &after,
                out.duration.as_secs_f64(),
            )))
        }
    }
}

/// Server-side finished count should match the client's `successes` (both arms' in an A/B
/// run); a gap means wrong labels, a wrong window, or foreign traffic on the server.
pub(super) fn reconcile(warnings: &mut Vec<String>, server: &ServerMetrics, successes: u64) {
    if let Some(n) = server.requests_finished.get() {
        let ok = successes as f64;
        if ok > 0.0 && ((n - ok).abs() / ok) > 0.10 {
            warnings.push(format!(
                "server counted {n:.0} finished requests but the client saw {ok:.0} succeed: check --prometheus-job, the window, or other traffic on this vLLM"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Arm, Endpoint};

    fn req(prompt: u32, arm: Option<Arm>) -> PreparedRequest {
        PreparedRequest {
            prompt_index: prompt,
            arm,
            endpoint: Endpoint::Completions,
            body: bytes::Bytes::new(),
            probe: None,
        }
    }

    #[test]
    fn an_ab_list_is_dealt_to_the_shards_in_pairs_counterbalanced_in_each() {
        let candidate = (0..8).map(|p| req(p, None)).collect();
        let baseline = (0..8).map(|p| req(p, None)).collect();
        let list = crate::workload::interleave_ab(candidate, baseline);
        let mut seen = Vec::new();
        for index in 0..4 {
            let mine = shard_of(list.clone(), super::super::Shard { index, count: 4 });
            assert_eq!(mine.len(), 4, "two pairs each");
            for (j, pair) in mine.chunks(2).enumerate() {
                assert_eq!(pair[0].prompt_index, pair[1].prompt_index, "twins together");
                let first = if j % 2 == 0 {
                    Arm::Candidate
                } else {
                    Arm::Baseline
                };
                assert_eq!(pair[0].arm, Some(first), "shard {index} pair {j}");
                assert_ne!(pair[0].arm, pair[1].arm);
            }
            seen.extend(mine.iter().map(|r| (r.prompt_index, r.arm)));
        }
        seen.sort_by_key(|(p, a)| (*p, *a == Some(Arm::Baseline)));
        let all: Vec<_> = (0..8)
            .flat_map(|p| [(p, Some(Arm::Candidate)), (p, Some(Arm::Baseline))])
            .collect();
        assert_eq!(seen, all, "every request once");
        // a plain list: every 4th
        let plain: Vec<_> = (0..8).map(|p| req(p, None)).collect();
        let mine = shard_of(plain, super::super::Shard { index: 1, count: 4 });
        let prompts: Vec<u32> = mine.iter().map(|r| r.prompt_index).collect();
        assert_eq!(prompts, [1, 5]);
    }
}
