//! `load-test merge`: the shards of a scaled-out load (`--shard-index`/`--shard-count`, each
//! in its own directory) combined into one `load_test_results.json`, as if one process had
//! sent every request.
//!
//! - Client figures: the shards' tallies merged. Every request's exact sample is kept (finish
//!   times moved onto the union's clock), so TTFT and E2E nearest-rank percentiles equal a
//!   single run's over the same requests; ITL, TPOT and client queueing come from the merged
//!   HDR histograms, within their stated relative error. Rates are over the shards' common
//!   measured time (a timed load) or the union window (a list).
//! - Server figures: queried once, from Prometheus over the union window, when
//!   `--prometheus-url` is given; otherwise none, and the merged results are not a gate
//!   measurement. End-anchored (the default), the window rests on confirmed samples as a
//!   single run's does: each target's last quiet sample before the union's start, newer than
//!   every shard's start and warm-up (so `--start-at` must leave one scrape interval after the
//!   shards start, two after a warm-up), and the first scrape after the union's end at which
//!   the servers have counted every request; the counts are exact at any scrape interval.
//!   `--window-mode seed` uses the seed's rate window instead.
//! - An A/B load (`--baseline-adapter`): the baseline arm's figures merged the same way from
//!   each shard's baseline tally; the server's figures count both arms, as a single run's.
//! - A mix (`--lora-mix`, `--target`): each member's figures merged from its tallies; its cold
//!   load is the slowest of the shards' (the one that loaded the adapter). A target mix has no
//!   server figures (`--prometheus-url` is refused).
//! - A sweep (`--steps`): each step merged apart, with the server's figures over that step's
//!   union window (`merge::steps`); none for the whole, as a sweep of one process.
//! - `requests.jsonl`: the shards' records, shard after shard, each line with its `shard`.

mod steps;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{DOCUMENTS, LoadTestError, rfc3339};
use crate::prom::{LoadSpan, PromSettings, PrometheusCollector};
use crate::results::{
    LoadTestResults, REQUESTS_FILE, RESULTS_FILE, RunStatus, RunTiming, STATUS_FILE, ShardInfo,
    Validity, WindowMode,
};
use crate::runner::aggregate::Tally;
use crate::step::{Exit, StepOutputs, error_line};
use crate::transport::TlsSettings;

/// What `load-test merge` does.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    /// The shards' output directories, one per shard, in any order.
    pub shard_dirs: Vec<PathBuf>,
    /// Where the merged files go.
    pub output_dir: PathBuf,
    /// Prometheus for the server's figures over the union window; `None`: none.
    pub prometheus_url: Option<String>,
    /// Its settings (job, scrape interval, ...).
    pub prom: PromSettings,
    /// Its TLS settings.
    pub prometheus_tls: TlsSettings,
}

/// A shard's results, read and checked.
struct ShardRun {
    dir: PathBuf,
    results: LoadTestResults,
    index: u32,
    count: u32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// When its last request before its load ended ([`ready_text`]).
    ready: DateTime<Utc>,
}

fn bad(why: String) -> LoadTestError {
    LoadTestError::Shards(why)
}

fn read_shard(dir: &Path) -> Result<ShardRun, LoadTestError> {
    let path = dir.join(RESULTS_FILE);
    let results = LoadTestResults::read(&path).map_err(|e| bad(error_line(&e)))?;
    let shown = path.display();
    if results.status != RunStatus::Completed {
        return Err(bad(format!(
            "{shown}: the shard did not complete (status {}{}): the merged figures would miss its requests",
            results.status.as_str(),
            results
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )));
    }
    let Some(ShardInfo {
        index: Some(index),
        count,
        tally: Some(_),
        ..
    }) = &results.shard
    else {
        return Err(bad(format!(
            "{shown} is not a shard's results (run load-test with --shard-index and --shard-count)"
        )));
    };
    let (index, count) = (*index, *count);
    let timing = results
        .timing
        .as_ref()
        .ok_or_else(|| bad(format!("{shown} has no timing")))?;
    let time = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(format!("{shown}: timing {s:?}: {e}")))
    };
    let start = time(&timing.load_start)?;
    let ready = time(ready_text(&results))?;
    Ok(ShardRun {
        start,
        ready,
        end: time(&timing.load_end)?,
        dir: dir.to_path_buf(),
        results,
        index,
        count,
    })
}

/// When a shard's last request before its load ended (its left edges must be newer): a
/// pre-flight alone sends nothing the server counts, so without a warm-up or a mix's cold
/// loads any quiet sample after the shard started will do (a shard that started late spoils
/// nothing); after them, `ready_at`. Requests recorded by a load-test without `ready_at` may
/// have ended just before the load: the load's start, where no left edge can be confirmed
/// (fails closed).
fn ready_text(results: &LoadTestResults) -> &str {
    let Some(timing) = &results.timing else {
        return "";
    };
    match (sent_before_the_load(results), &timing.ready_at) {
        (false, _) => &timing.started_at,
        (true, Some(t)) => t,
        (true, None) => &timing.load_start,
    }
}

/// Whether a shard sent requests the server counts before its load: a warm-up, or a mix's
/// cold loads (each adapter's first request, alone).
fn sent_before_the_load(results: &LoadTestResults) -> bool {
    let cold = results
        .mix
        .as_ref()
        .is_some_and(|m| m.members.iter().any(|m| m.cold_load.is_some()));
    results.warmup.is_some() || cold
}

/// Why a shard's warm-up leaves the merge no window: it warmed up but does not record when
/// that ended (`timing.ready_at`, written since 2026-12-06), so only a sample newer than its
/// load's start would do, and none is.
fn unrecorded_ready(results: &LoadTestResults) -> Option<String> {
    let timing = results.timing.as_ref()?;
    (results.warmup.is_some() && timing.ready_at.is_none()).then(|| {
        "it warmed up but does not record when its warm-up ended (timing.ready_at: it was written by an older load-test), so the server window cannot start before its load and the merged server figures are invalid; run the shards again with this load-test".to_string()
    })
}

/// The config fields every shard must share (all but the ones a shard divides or offsets).
fn shared_config(r: &LoadTestResults) -> serde_json::Value {
    let mut v = serde_json::to_value(&r.config).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        // the HTTP client is recorded, not compared (the server saw the same requests)
        for k in ["concurrency", "rate", "seed", "max_inflight", "http_client"] {
            o.remove(k);
        }
    }
    v
}

/// Reads, checks and orders the shards: one of each index, the same count and settings.
fn shards(dirs: &[PathBuf]) -> Result<Vec<ShardRun>, LoadTestError> {
    if dirs.is_empty() {
        return Err(bad("no shard directory given".into()));
    }
    let mut runs = dirs
        .iter()
        .map(|d| read_shard(d))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort_by_key(|r| r.index);
    let count = runs[0].count;
    if let Some(r) = runs.iter().find(|r| r.count != count) {
        return Err(bad(format!(
            "{} is shard {} of {}, but {} is of {count}",
            r.dir.display(),
            r.index,
            r.count,
            runs[0].dir.display()
        )));
    }
    for w in runs.windows(2) {
        if w[0].index == w[1].index {
            return Err(bad(format!(
                "{} and {} are both shard {}",
                w[0].dir.display(),
                w[1].dir.display(),
                w[0].index
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !runs.iter().any(|r| r.index == *i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "shard(s) {} of {count} missing: every shard's directory is needed",
            missing.join(", ")
        )));
    }
    let first = shared_config(&runs[0].results);
    for r in &runs[1..] {
        let other = shared_config(&r.results);
        if other != first {
            let differs = first
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, v)| other.get(k.as_str()) != Some(v))
                .map_or("a setting", |(k, _)| k.as_str());
            return Err(bad(format!(
                "{} and {} ran different loads ({differs} differs)",
                runs[0].dir.display(),
                r.dir.display()
            )));
        }
    }
    Ok(runs)
}

/// How a merge ended.
#[derive(Debug)]
pub struct MergeOutcome {
    /// The merged results, when the shards could be merged.
    pub results: Option<LoadTestResults>,
    /// `completed`, or `failed`/`aborted` with the reason.
    pub status: RunStatus,
    /// The one-line reason it did not complete.
    pub error: Option<String>,
    /// Exit code per the shared table.
    pub exit: Exit,
    /// Where the results went.
    pub results_path: PathBuf,
}

/// Merges the shards of `cfg.shard_dirs` into `cfg.output_dir`. An error only when the output
/// directory cannot be claimed; otherwise the status file says how it ended, and the merged
/// results are written when it completed (a failed merge writes none: there is nothing to judge).
pub async fn merge(
    cfg: MergeConfig,
    cancel: CancellationToken,
) -> Result<MergeOutcome, LoadTestError> {
    use crate::step::StepFailure as _;
    let outputs = StepOutputs::claim(
        &cfg.output_dir,
        STATUS_FILE,
        DOCUMENTS,
        RunStatus::Failed.as_str(),
    )?;
    let results_path = outputs.path(RESULTS_FILE);
    let failed = |e: &LoadTestError| {
        let line = error_line(e);
        tracing::error!("{line}");
        let status = if e.exit() == Exit::Aborted {
            RunStatus::Aborted
        } else {
            RunStatus::Failed
        };
        outputs.abandon(status.as_str());
        MergeOutcome {
            results: None,
            status,
            error: Some(line),
            exit: e.exit(),
            results_path: results_path.clone(),
        }
    };
    let mut results = match merged(&cfg, &outputs, &cancel).await {
        Ok(r) => r,
        Err(e) => return Ok(failed(&e)),
    };
    for w in results.warnings.iter_mut() {
        crate::secrets::scrub_string(w);
    }
    if let Err(e) = outputs
        .write_json(RESULTS_FILE, &results)
        .and_then(|()| outputs.finish(results.status.as_str()))
    {
        return Ok(failed(&LoadTestError::Output(e)));
    }
    Ok(MergeOutcome {
        status: results.status,
        results: Some(results),
        error: None,
        exit: Exit::Done,
        results_path,
    })
}

async fn merged(
    cfg: &MergeConfig,
    outputs: &StepOutputs,
    cancel: &CancellationToken,
) -> Result<LoadTestResults, LoadTestError> {
    let runs = shards(&cfg.shard_dirs)?;
    let start = runs
        .iter()
        .map(|r| r.start)
        .min()
        .expect("at least one shard");
    let end = runs
        .iter()
        .map(|r| r.end)
        .max()
        .expect("at least one shard");
    let mut tally = Tally::default();
    let mut unmeasured = Tally::default();
    // the baseline arm's measured requests, in an A/B load (every shard has the same
    // `baseline_adapter`: checked with the rest of the settings)
    let ab = runs[0].results.config.baseline_adapter.is_some();
    let mut baseline = ab.then(Tally::default);
    // a mix's members, each merged apart (every shard ran the same mix: checked likewise)
    let config = &runs[0].results.config;
    let mix = match (
        config.lora_mix.is_some() || !config.targets.is_empty(),
        &runs[0].results.mix,
    ) {
        (false, _) => None,
        (true, Some(m)) => Some(m),
        (true, None) => {
            return Err(bad(format!(
                "{}: a shard of a mix without its members' figures (`mix`)",
                runs[0].dir.display()
            )));
        }
    };
    let mut members: Vec<Tally> = mix
        .map(|m| m.members.iter().map(|_| Tally::default()).collect())
        .unwrap_or_default();
    if mix.is_some_and(|m| m.kind == crate::mix::MixKind::Targets) && cfg.prometheus_url.is_some() {
        return Err(bad(
            "a target mix has no server-side figures (Prometheus describes one server): merge it without --prometheus-url".into(),
        ));
    }
    let mut warnings = Vec::new();
    let (mut concurrency, mut rate) = (0u32, None::<f64>);
    for r in &runs {
        let info = r.results.shard.as_ref().expect("checked: a shard");
        let shift = (r.start - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
        let wire = info.tally.as_ref().expect("checked: a tally");
        let t = Tally::from_wire(wire, shift)
            .map_err(|e| bad(format!("{}: shard tally: {e}", r.dir.display())))?;
        tally.merge(&t);
        if let Some(u) = &info.unmeasured {
            let u = Tally::from_wire(u, shift)
                .map_err(|e| bad(format!("{}: shard tally: {e}", r.dir.display())))?;
            unmeasured.merge(&u);
        }
        if let Some(first) = mix {
            if r.results.mix.as_ref().map(|m| m.members.len()) != Some(first.members.len())
                || info.members.len() != first.members.len()
            {
                return Err(bad(format!(
                    "{}: a shard of a mix without its members' tallies (written by an older load-test): run the shards again with this one",
                    r.dir.display()
                )));
            }
            for (t, wire) in members.iter_mut().zip(&info.members) {
                let m = Tally::from_wire(wire, shift)
                    .map_err(|e| bad(format!("{}: member tally: {e}", r.dir.display())))?;
                t.merge(&m);
            }
        }
        if let Some(b) = baseline.as_mut() {
            let (Some(wire), Some(arm)) = (&info.baseline, &r.results.baseline_arm) else {
                return Err(bad(format!(
                    "{}: an A/B shard (--baseline-adapter) without its baseline arm's tally (written by an older load-test): run the shards again with this one",
                    r.dir.display()
                )));
            };
            let t = Tally::from_wire(wire, shift)
                .map_err(|e| bad(format!("{}: baseline tally: {e}", r.dir.display())))?;
            b.merge(&t);
            if let Some(first) = &runs[0].results.baseline_arm
                && first.adapter != arm.adapter
            {
                warnings.push(format!(
                    "shard {}: the baseline adapter was served otherwise than to shard {} (the merged results keep shard {}'s)",
                    r.index, runs[0].index, runs[0].index
                ));
            }
        }
        concurrency += r.results.config.concurrency;
        rate = match (rate, r.results.config.rate) {
            (a, Some(b)) => Some(a.unwrap_or(0.0) + b),
            (a, None) => a,
        };
        warnings.extend(
            r.results
                .warnings
                .iter()
                .map(|w| format!("shard {}: {w}", r.index)),
        );
        // only an end-anchored window on Prometheus needs each shard's ready time
        if cfg.prometheus_url.is_some() && cfg.prom.window_mode == WindowMode::EndAnchored {
            warnings
                .extend(unrecorded_ready(&r.results).map(|w| format!("shard {}: {w}", r.index)));
        }
    }
    let count = runs[0].count;
    let union_s = (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
    // a timed load's rates are over its measured window (the same in every shard)
    // (a sweep's: each shard's measured steps together, as a sweep of one process)
    let config = &runs[0].results.config;
    let rate_span = match config.duration_s.or(config.step_duration_s) {
        Some(_) => runs
            .iter()
            .filter_map(|r| r.results.shard.as_ref().map(|s| s.rate_span_s))
            .fold(0.0, f64::max),
        None => union_s,
    };
    let mut results = runs[0].results.clone();
    results.config.concurrency = concurrency;
    results.config.rate = rate;
    // one client if every shard ran on it (an absent field: reqwest, before the option)
    let client = |r: &ShardRun| r.results.config.http_client.clone();
    if runs.iter().any(|r| client(r) != client(&runs[0])) {
        results.config.http_client = Some("mixed".to_string());
    }
    // the server side is the merge's, not how the first shard was launched
    let shard_side = super::prometheus_departures(
        results.config.prometheus_url.is_some(),
        results.config.window_mode,
    );
    results.departures.retain(|d| !shard_side.contains(d));
    if cfg.prometheus_url.is_some() {
        results
            .departures
            .extend(super::prometheus_departures(true, cfg.prom.window_mode));
    }
    results.config.prometheus_url = cfg.prometheus_url.as_deref().map(crate::urls::redact_url);
    results.config.prometheus_job = cfg.prom.job.clone();
    results.config.scrape_interval_s = cfg.prom.scrape_interval.map(|d| d.as_secs_f64());
    results.config.scrape_wait_s = cfg.prom.scrape_wait.map(|d| d.as_secs_f64());
    results.config.window_mode = cfg.prom.window_mode;
    results.config.gpu_selector = cfg.prom.gpu_selector.clone();
    results.client = Some(tally.metrics(rate_span));
    if let Some(first) = mix {
        let shards: Vec<_> = runs.iter().filter_map(|r| r.results.mix.as_ref()).collect();
        results.mix = Some(super::mixes::merged(first, &shards, &members, rate_span));
    }
    results.baseline_arm = match (&baseline, results.baseline_arm.take()) {
        (Some(b), Some(arm)) => Some(crate::results::BaselineArm {
            client: b.metrics(rate_span),
            ..arm
        }),
        _ => None,
    };
    results.unmeasured = results.unmeasured.map(|u| {
        let m = unmeasured.metrics(0.0);
        crate::results::UnmeasuredInfo {
            requests: m.total_requests,
            successful_requests: m.successful_requests,
            errors_by_kind: m.errors_by_kind,
            ..u
        }
    });
    results.timing = Some(RunTiming {
        started_at: runs
            .iter()
            .filter_map(|r| r.results.timing.as_ref().map(|t| t.started_at.clone()))
            .min()
            .unwrap_or_else(|| rfc3339(start)),
        ready_at: Some(rfc3339(shards_ready(&runs))),
        load_start: rfc3339(start),
        load_end: rfc3339(end),
        load_duration_s: union_s,
        wall_clock_duration_s: 0.0,
    });
    results.shard = Some(ShardInfo {
        index: None,
        count,
        rate_span_s: rate_span,
        tally: None,
        unmeasured: None,
        baseline: None,
        members: Vec::new(),
        steps: Vec::new(),
    });
    results.load_generator = runs
        .iter()
        .filter_map(|r| r.results.load_generator.clone())
        .max_by(|a, b| {
            let lag = |h: &crate::results::GeneratorHealth| h.event_loop_lag_p99_s.unwrap_or(0.0);
            (a.saturated, lag(a))
                .partial_cmp(&(b.saturated, lag(b)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    results.warnings = warnings;
    results.thresholds.clear();
    results.departures.push(format!(
        "merged from {count} shards (load-test merge): client figures from every request's exact sample and the merged histograms; the window is the union of the shards' loads"
    ));
    concat_records(&runs, outputs)?;
    results.server = None;
    results.validity = None;
    if results.config.steps.is_some() {
        // a sweep: each step its own figures and server window; none for the whole
        results.steps = steps::merged(cfg, &runs, cancel, &mut results.warnings).await?;
        results.validity = Some(Validity {
            valid: false,
            reasons: vec![super::sweep::SWEEP.into()],
        });
        results.status = RunStatus::Completed;
        return Ok(results);
    }
    match &cfg.prometheus_url {
        Some(url) => {
            let collector =
                PrometheusCollector::with_tls(url, cfg.prom.clone(), &cfg.prometheus_tls)?;
            // every request the server saw succeed: both arms' (vLLM labels its series by
            // base model), the warm-ups' and cool-downs'
            let successes = tally.successful()
                + baseline.as_ref().map_or(0, Tally::successful)
                + unmeasured.successful();
            tracing::info!("querying Prometheus over the union window");
            let mut server = union_server(
                &collector,
                cfg.prom.window_mode,
                (shards_ready(&runs), None),
                LoadSpan { start, end },
                successes,
                cancel,
            )
            .await?;
            super::accounting::require_client_successes(&mut server, successes);
            super::phases::reconcile(&mut results.warnings, &server, successes);
            results.server = Some(server);
            let validity = crate::decision::validity::validity(&results);
            results.validity = Some(validity);
        }
        None => {
            let mut reasons: Vec<String> = results
                .mix
                .iter()
                .map(crate::decision::validity::mix_reason)
                .collect();
            if !results
                .mix
                .as_ref()
                .is_some_and(|m| m.kind == crate::mix::MixKind::Targets)
            {
                reasons.push(
                    "no server figures: give load-test merge --prometheus-url to query the union window".into(),
                );
            }
            results.validity = Some(Validity {
                valid: false,
                reasons,
            });
        }
    }
    results.status = RunStatus::Completed;
    Ok(results)
}

/// The server's figures over the union window `span`, its left edge (end-anchored) newer than
/// `ready` and its right edge, if `before` is given, older than it (a sweep's next step), not
/// yet checked against the client's count (`accounting::require_client_successes`).
async fn union_server(
    collector: &PrometheusCollector,
    mode: WindowMode,
    (ready, before): (DateTime<Utc>, Option<DateTime<Utc>>),
    span: LoadSpan,
    successes: u64,
    cancel: &CancellationToken,
) -> Result<crate::results::ServerMetrics, LoadTestError> {
    let collect = async {
        match mode {
            WindowMode::EndAnchored => {
                let pre = collector.left_edges_of_past_load(ready, span.start).await?;
                match before {
                    // only the samples before it: a right edge past it would count its requests
                    Some(t) => {
                        let at_ms = t.timestamp_millis() - 1;
                        collector
                            .confirmed_figures_at(&pre, &span, successes, at_ms)
                            .await
                    }
                    None => collector.collect_confirmed(&pre, &span, successes).await,
                }
            }
            WindowMode::Seed => collector.collect_seed(&span).await,
        }
    };
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(LoadTestError::Aborted { phase: "while querying Prometheus" }),
        r = collect => Ok(r?),
    }
}

/// The latest of the shards' ready times ([`ready_text`]): every target's last sample before
/// the union's start must be newer, or a warm-up's requests could fall inside the window.
fn shards_ready(runs: &[ShardRun]) -> DateTime<Utc> {
    runs.iter()
        .map(|r| r.ready)
        .max()
        .expect("at least one shard")
}

/// `requests.jsonl` of every shard, shard after shard, each record with its `shard`.
fn concat_records(runs: &[ShardRun], outputs: &StepOutputs) -> Result<(), LoadTestError> {
    let mut text = String::new();
    for r in runs {
        let path = r.dir.join(REQUESTS_FILE);
        let Ok(body) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("shard".into(), r.index.into());
            }
            text.push_str(&v.to_string());
            text.push('\n');
        }
    }
    outputs
        .write(REQUESTS_FILE, text.as_bytes())
        .map_err(LoadTestError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{RunTiming, WarmupInfo};

    /// Results started at 0 s, ready at 5 s, loaded from 60 to 120 s.
    fn started_ready_loaded() -> LoadTestResults {
        let mut r = crate::fixtures::results();
        r.timing = Some(RunTiming {
            started_at: "2026-01-01T00:00:00Z".into(),
            ready_at: Some("2026-01-01T00:00:05Z".into()),
            load_start: "2026-01-01T00:01:00Z".into(),
            load_end: "2026-01-01T00:02:00Z".into(),
            load_duration_s: 60.0,
            wall_clock_duration_s: 0.0,
        });
        r
    }

    #[test]
    fn a_shard_is_ready_when_its_last_counted_request_before_the_load_ended() {
        let mut r = started_ready_loaded();
        // no warm-up: the pre-flight counts nothing, any sample since the start will do
        assert_eq!(ready_text(&r), "2026-01-01T00:00:00Z");
        r.warmup = Some(WarmupInfo::default());
        assert_eq!(ready_text(&r), "2026-01-01T00:00:05Z");
        // a warm-up without its end recorded: only the load's start, which no sample before
        // the load can be newer than
        assert_eq!(unrecorded_ready(&r), None);
        r.timing.as_mut().unwrap().ready_at = None;
        assert_eq!(ready_text(&r), "2026-01-01T00:01:00Z");
        assert!(unrecorded_ready(&r).unwrap().contains("timing.ready_at"));
        r.warmup = None;
        assert_eq!(unrecorded_ready(&r), None);
    }

    #[test]
    fn a_mix_shard_is_ready_after_its_cold_loads() {
        let mut r = started_ready_loaded();
        let member = |cold| crate::results::MixMemberResult {
            name: "a".into(),
            role: crate::mix::Role::Adapter,
            api: Default::default(),
            url: None,
            model: "a".into(),
            weight: 1.0,
            concurrency: None,
            share_requested: 1.0,
            share_sent: None,
            error_rate: None,
            client: Default::default(),
            cold_load: cold,
            thresholds: Vec::new(),
        };
        let mix = |cold| crate::results::MixResults {
            kind: crate::mix::MixKind::Adapters,
            split: String::new(),
            server_note: String::new(),
            members: vec![member(cold)],
        };
        // a target mix sends nothing before its load: any sample since the start will do
        r.mix = Some(mix(None));
        assert_eq!(ready_text(&r), "2026-01-01T00:00:00Z");
        // an adapter's cold load is a request the server counts
        r.mix = Some(mix(Some(crate::results::ColdLoad {
            ok: true,
            ttft_s: Some(1.0),
            e2e_s: Some(1.5),
            extra_ttft_over_p50_s: None,
            error: None,
        })));
        assert_eq!(ready_text(&r), "2026-01-01T00:00:05Z");
    }
}
