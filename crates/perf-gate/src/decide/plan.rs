//! The pure part of `perf-decision`: the decision document under construction ([`Draft`]),
//! the MLflow batch of params, metrics and tags ([`build_batch`]), the baseline search filter,
//! the dataset record. No I/O: everything here is tested without a server.

use tracing::warn;

use super::config::{DecideConfig, MlflowMode};
use super::document::{
    BaselineRecord, BaselineSource, DECISION_SCHEMA_VERSION, DatasetRecord, MlflowRecord,
    PerfDecision,
};
use super::error::DecideError;
use crate::decision::checks::Op;
use crate::decision::checks::{CheckName, Evaluation, Verdict, decide};
use crate::decision::comparability::{Comparability, comparable_check, compare};
use crate::decision::crosschecks::results_warnings;
use crate::decision::drift::DriftResult;
use crate::decision::load_settings::{LoadSettings, candidate_settings};
use crate::decision::metrics::{CheckKeys, MetricMap, MetricsSource, names};
use crate::decision::statistics::apply::{ArmSamples, interval_checks, rich_verdict, seed};
use crate::decision::statistics::bootstrap::Pairing;
use crate::decision::statistics::verdict::{
    DecisionMethod, Input, RichVerdict, RunToRun, Statistics, assess,
};
use crate::decision::validity::{OnInvalid, invalid_reasons, valid_measurement_check};
use crate::mlflow::types::{KeyValue, Metric, MetricValue, ModelVersion, Run};
use crate::mlflow::{Batch, MAX_DIGEST_LEN};
use crate::report::HistoryPoint;
use crate::results::{LoadTestResults, ToolInfo};

/// Context tag of the dataset input (the seed's).
pub(crate) const DATASET_CONTEXT: &str = "performance-test";
/// Longest param value the server keeps (longer ones are silently truncated by it).
const MAX_PARAM_LEN: usize = 6000;

/// The decision document under construction.
pub struct Draft<'a> {
    cfg: &'a DecideConfig,
    results: &'a LoadTestResults,
    /// The candidate's decision metrics.
    pub metrics: MetricMap,
    /// The baseline, once found (comparative mode).
    pub baseline: Option<BaselineRecord>,
    comparability: Option<Comparability>,
    candidate_version: Option<String>,
    candidate_alias: Option<String>,
    model_version_source: Option<String>,
    dataset: Option<DatasetRecord>,
    load_settings: LoadSettings,
    invalid: Vec<String>,
    decision_key: Option<String>,
    warnings: Vec<String>,
    candidate_samples: Result<ArmSamples, String>,
    baseline_samples: Option<ArmSamples>,
    statistics: Option<Statistics>,
    drift: Vec<DriftResult>,
    history: Vec<HistoryPoint>,
    drift_unavailable: Option<String>,
    stored_baseline: Option<BaselineRecord>,
}

/// Run tag holding the richer verdict (`passed`, `failed`, `invalid`, `inconclusive`); a run
/// tagged `inconclusive` is never a baseline.
pub const PERF_VERDICT_TAG: &str = "perf_verdict";

/// Version tag naming the adapter a model version is served as (`load-test --adapter-name`).
pub const SERVED_ADAPTER_TAG: &str = "served_adapter";
/// Version tag naming the path vLLM loads that adapter from (`root` in `/v1/models`).
pub const SERVED_ADAPTER_ROOT_TAG: &str = "served_adapter_root";

impl<'a> Draft<'a> {
    /// A draft whose warnings are the configuration's, the dataset's and the cross-checks of
    /// the results ([`results_warnings`]); the caller logs them ([`Draft::warnings`]).
    pub fn new(cfg: &'a DecideConfig, results: &'a LoadTestResults, metrics: MetricMap) -> Self {
        let (dataset, warning) = dataset_record(cfg, results);
        let warnings = cfg
            .warnings
            .iter()
            .cloned()
            .chain(warning)
            .chain(results_warnings(results, cfg.metrics_source))
            .chain(crate::decision::resolution::bucket_warnings(
                &metrics,
                &cfg.thresholds,
                cfg.metrics_source,
            ))
            .collect();
        Draft {
            cfg,
            results,
            metrics,
            baseline: None,
            comparability: None,
            candidate_version: cfg.candidate_version.clone(),
            candidate_alias: None,
            model_version_source: None,
            dataset,
            load_settings: candidate_settings(results, cfg.metrics_source),
            invalid: invalid_reasons(results, cfg.metrics_source),
            decision_key: None,
            warnings,
            candidate_samples: ArmSamples::candidate(results),
            baseline_samples: None,
            statistics: None,
            drift: Vec::new(),
            history: Vec::new(),
            drift_unavailable: None,
            stored_baseline: None,
        }
    }

    /// With `--also-stored-baseline`: the stored baseline the A/B candidate is compared with
    /// as well; its load is assessed (warnings: an A/B run's candidate ran at about half the
    /// concurrency of a single-adapter run). `None`: there is none, said in a warning.
    pub(crate) fn set_stored_baseline(&mut self, stored: Option<BaselineRecord>) {
        let Some(mut b) = stored else {
            self.warn("--also-stored-baseline: no stored baseline was found: the same-run baseline is the only comparison".into());
            return;
        };
        let c = compare(&self.load_settings, &b.load_settings);
        b.comparable = Some(c.comparable);
        b.comparability = c.reasons.clone();
        for r in c.reasons {
            self.warn(format!("stored baseline: {r}"));
        }
        self.stored_baseline = Some(b);
    }

    /// The history could not be read: a warning, and with `--fail-on-drift` a failed check
    /// (the check asked for cannot be made: fail closed).
    pub(crate) fn drift_unavailable(&mut self, why: String) {
        self.warn(why.clone());
        self.drift_unavailable = Some(why);
    }

    /// Judges the drift of the metrics checks 1–3 read against the passed runs `runs` (any
    /// order; only those of the same load and figures count, see [`super::history`]); a
    /// drifted metric is a warning, or with `--fail-on-drift` a failed check.
    pub(crate) fn assess_drift(&mut self, runs: &[Run], keys: &CheckKeys, now_ms: i64) {
        let history = super::history::comparable_history(
            runs,
            &self.load_settings,
            self.candidate_version.as_deref(),
        );
        let lookback_ms = i64::try_from(self.cfg.drift_lookback.as_millis()).unwrap_or(i64::MAX);
        self.drift = super::history::drift(
            &history,
            &self.metrics,
            keys,
            &self.cfg.thresholds,
            now_ms,
            lookback_ms,
        );
        self.history = super::history::report_points(&history, keys);
        let flagged: Vec<String> = self
            .drift
            .iter()
            .filter(|d| d.flagged && !self.cfg.fail_on_drift)
            .map(|d| {
                format!(
                    "drift: {} (--fail-on-drift makes it a failing check)",
                    d.reason
                )
            })
            .collect();
        for w in flagged {
            self.warn(w);
        }
    }

    /// The history of passed runs the drift was judged on, for the report.
    pub fn history(&self) -> &[HistoryPoint] {
        &self.history
    }

    /// The baseline's per-request samples, or why it has none (recorded in the baseline's
    /// `samples`; then the seed's checks alone compare). Call after setting the baseline.
    pub fn set_baseline_samples(&mut self, samples: Result<ArmSamples, String>, from: &str) {
        let Some(b) = self.baseline.as_mut() else {
            return;
        };
        match samples {
            Ok(s) => {
                b.samples = Some(format!("{} requests, from {from}", s.total));
                self.baseline_samples = Some(s);
            }
            Err(why) => {
                b.samples = Some(format!("none: {why}"));
                let line = format!(
                    "the baseline has no per-request samples ({why}): no statistical comparison, the seed's checks alone compare"
                );
                // asked for intervals and cannot have them: a warning; else a note
                if self.cfg.decision_method == DecisionMethod::Statistical {
                    self.warn(line);
                } else {
                    tracing::info!("{line}");
                }
            }
        }
    }

    /// Compares the candidate's samples with the baseline's ([`assess`]), when both exist, the
    /// generator kept up and the baseline ran the same load (call [`Draft::assess_baseline`]
    /// first).
    pub fn assess_statistics(&mut self) {
        let Some(b) = &self.baseline_samples else {
            return;
        };
        if self
            .results
            .load_generator
            .as_ref()
            .is_some_and(|g| g.saturated)
        {
            self.warn("the load generator was saturated: its per-request timings may be inflated, so no statistical comparison is made (the checks decide)".into());
            return;
        }
        if self.comparability.as_ref().is_some_and(|c| !c.comparable) {
            self.warn("the baseline ran another load (see the warnings above): no statistical comparison, as the intervals would measure the difference between the loads (the checks decide)".into());
            return;
        }
        let c = match &self.candidate_samples {
            Ok(c) => c,
            Err(why) => {
                let w = format!(
                    "the candidate has no per-request samples ({why}): no statistical comparison"
                );
                self.warn(w);
                return;
            }
        };
        let same_run = self
            .baseline
            .as_ref()
            .is_some_and(|r| r.source == BaselineSource::SameRun);
        let input = Input {
            candidate: c.input(),
            baseline: b.input(),
            pairing: if same_run {
                Pairing::Paired
            } else {
                Pairing::Independent
            },
            thresholds: &self.cfg.thresholds,
            seed: seed(c, b),
        };
        let mut stats = assess(&input);
        if let Some(b) = self
            .baseline
            .as_ref()
            .filter(|b| !b.run_to_run_sd_log.is_empty())
        {
            stats.include_run_to_run(&RunToRun {
                sd_log: b.run_to_run_sd_log.clone(),
                runs: b.median_of.len(),
            });
        }
        for m in &stats.metrics {
            tracing::info!(metric = %m.name, outcome = m.outcome.as_str(), "{}", m.reason);
        }
        self.statistics = Some(stats);
    }

    /// The statistical comparison, once assessed.
    pub fn statistics(&self) -> Option<&Statistics> {
        self.statistics.as_ref()
    }

    /// Records what identifies this decision (see `PerfDecision::decision_key`).
    pub fn set_decision_key(&mut self, key: &str) {
        self.decision_key = Some(key.to_string());
    }

    /// The candidate's load settings.
    pub fn load_settings(&self) -> &LoadSettings {
        &self.load_settings
    }

    /// Why the measurement cannot be trusted so far.
    pub fn invalid_reasons(&self) -> &[String] {
        &self.invalid
    }

    /// The warnings so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Adds a warning to the document and logs it at WARN.
    pub fn warn(&mut self, warning: String) {
        warn!("{warning}");
        self.warnings.push(warning);
    }

    /// Compares the baseline's load with the candidate's: the outcome goes into the baseline
    /// record (`comparable`, `comparability`), and each reason or note becomes a warning.
    pub fn assess_baseline(&mut self) {
        let Some(b) = self.baseline.as_mut() else {
            return;
        };
        let c = compare(&self.load_settings, &b.load_settings);
        b.comparable = Some(c.comparable);
        b.comparability = c.reasons.clone();
        let lines: Vec<String> = c.reasons.iter().chain(&c.notes).cloned().collect();
        self.comparability = Some(c);
        for w in lines {
            self.warn(w);
        }
    }

    /// The four checks, plus the fifth (`comparable_baseline`) with
    /// `--require-comparable-baseline`. Call [`Draft::assess_baseline`] first.
    pub fn evaluate(&self, keys: &CheckKeys) -> Evaluation {
        // with --decision statistical the intervals replace the point bounds (floors stay)
        let by_intervals =
            self.cfg.decision_method == DecisionMethod::Statistical && self.statistics.is_some();
        let baseline = if by_intervals {
            None
        } else {
            self.baseline_metrics()
        };
        let mut eval = decide(&self.metrics, baseline, &self.cfg.thresholds, keys);
        if by_intervals {
            eval.mode = crate::decision::Mode::Comparative;
        }
        if !self.invalid.is_empty() {
            match self.cfg.on_invalid {
                OnInvalid::Fail => eval.push(valid_measurement_check(&self.invalid)),
                OnInvalid::Invalid => eval.verdict = Verdict::Invalid,
            }
        }
        if self.cfg.require_comparable_baseline {
            // a baseline that was never assessed fails closed (an empty, not comparable record)
            let unassessed = Comparability::default();
            let assessed = self
                .baseline
                .as_ref()
                .map(|_| self.comparability.as_ref().unwrap_or(&unassessed));
            eval.push(comparable_check(assessed));
        }
        if let Some(min) = self.cfg.min_slo_attainment {
            eval.push(crate::decision::slo::slo_check(self.results, min));
        }
        if let Some(stats) = &self.statistics {
            for c in interval_checks(stats, self.cfg.decision_method, self.cfg.on_inconclusive) {
                eval.push(c);
            }
        }
        if let Some(stored) = &self.stored_baseline {
            let id = stored
                .run_id
                .as_deref()
                .or(stored.file.as_deref())
                .unwrap_or("?");
            for c in decide(
                &self.metrics,
                Some(&stored.metrics),
                &self.cfg.thresholds,
                keys,
            )
            .checks
            {
                eval.push(crate::decision::checks::CheckResult {
                    name: CheckName::StoredBaseline,
                    reason: format!("against the stored baseline {id}: {}", c.reason),
                    ..c
                });
            }
        }
        if let Some(why) = self
            .drift_unavailable
            .as_ref()
            .filter(|_| self.cfg.fail_on_drift)
        {
            eval.push(crate::decision::checks::CheckResult {
                name: CheckName::Drift,
                metric: "history".into(),
                value: None,
                absolute_limit: 1.0,
                absolute_op: Op::Le,
                relative_limit: None,
                relative_op: Op::Le,
                baseline_value: None,
                passed: false,
                reason: format!(
                    "{why}: the drift check cannot be made (--fail-on-drift): fails closed"
                ),
            });
        }
        if self.cfg.fail_on_drift {
            for d in &self.drift {
                // the ratio to the month-ago reference against the ratio limit (finite)
                eval.push(crate::decision::checks::CheckResult {
                    name: CheckName::Drift,
                    metric: d.metric.clone(),
                    value: d.ratio,
                    absolute_limit: d.limit,
                    absolute_op: match d.direction {
                        crate::decision::drift::Direction::HigherIsWorse => Op::Le,
                        crate::decision::drift::Direction::LowerIsWorse => Op::Ge,
                    },
                    relative_limit: None,
                    relative_op: Op::Le,
                    baseline_value: None,
                    passed: !d.flagged,
                    reason: format!("{} (--fail-on-drift)", d.reason),
                });
            }
        }
        eval
    }

    /// Records the candidate version MLflow resolved (`via_alias`: from `--candidate-alias`)
    /// and checks it is the adapter that was measured: the version's `served_adapter` tag
    /// (and `served_adapter_root`, when set) must name what vLLM served; a mismatch makes the
    /// measurement invalid, a missing tag is a warning (the check cannot be made).
    pub fn set_version(&mut self, version: &ModelVersion, via_alias: bool) {
        self.candidate_version = Some(version.version.clone());
        self.model_version_source = Some(version.source.clone()).filter(|s| !s.is_empty());
        if via_alias {
            self.candidate_alias = Some(self.cfg.candidate_alias.clone());
        }
        let v = &version.version;
        let measured = &self.results.config.adapter_name;
        match version.tag(SERVED_ADAPTER_TAG) {
            None => self.warn(format!(
                "version {v} carries no `{SERVED_ADAPTER_TAG}` tag: cannot check that the adapter load-test measured (`{measured}`) is this version (tag the version with the adapter name it is served as)"
            )),
            Some(tag) if tag != measured => self.invalid.push(format!(
                "load-test measured adapter `{measured}`, but version {v} is served as `{tag}` (its `{SERVED_ADAPTER_TAG}` tag): the measurement is not of this version"
            )),
            Some(_) => {}
        }
        if let Some(tag) = version.tag(SERVED_ADAPTER_ROOT_TAG) {
            let root = self
                .results
                .adapter
                .as_ref()
                .and_then(|a| a.root.as_deref());
            match root {
                Some(r) if r == tag => {}
                Some(r) => self.invalid.push(format!(
                    "vLLM loaded the measured adapter from `{r}`, but version {v}'s `{SERVED_ADAPTER_ROOT_TAG}` tag says `{tag}`: the measurement is not of this version"
                )),
                None => self.warn(format!(
                    "the results do not record where vLLM loaded the adapter from: cannot check version {v}'s `{SERVED_ADAPTER_ROOT_TAG}` tag"
                )),
            }
        }
    }

    /// The baseline's metrics, when there is a baseline.
    pub fn baseline_metrics(&self) -> Option<&MetricMap> {
        self.baseline.as_ref().map(|b| &b.metrics)
    }

    /// The finished document.
    pub fn finish(self, eval: Evaluation, mlflow: Option<MlflowRecord>) -> PerfDecision {
        let departures = departures(self.cfg, self.baseline.as_ref(), self.results);
        PerfDecision {
            schema_version: DECISION_SCHEMA_VERSION,
            tool: ToolInfo::this("perf-decision"),
            decided_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            decision: eval.verdict,
            verdict: Some(rich_verdict(&eval, self.statistics.as_ref()))
                .map(|v| too_little_evidence(v, self.results)),
            decision_method: self.cfg.decision_method,
            on_inconclusive: (self.cfg.decision_method == DecisionMethod::Statistical)
                .then_some(self.cfg.on_inconclusive),
            statistics: self.statistics,
            drift: self.drift,
            invalid_reasons: self.invalid,
            on_invalid: self.cfg.on_invalid.as_str().to_string(),
            mode: eval.mode,
            model_name: self.cfg.model_name.clone(),
            candidate_version: self.candidate_version,
            candidate_alias: self.candidate_alias,
            candidate_adapter: Some(self.results.config.adapter_name.clone()),
            adapter_root: self.results.adapter.as_ref().and_then(|a| a.root.clone()),
            model_version_source: self.model_version_source,
            metrics_source: self.cfg.metrics_source,
            metrics: self.metrics,
            load_settings: self.load_settings,
            baseline: self.baseline,
            stored_baseline: self.stored_baseline,
            checks: eval.checks,
            thresholds: self.cfg.thresholds,
            dataset: self.dataset,
            results_file: self.cfg.results_path.display().to_string(),
            decision_key: self.decision_key,
            mlflow,
            dry_run: matches!(self.cfg.mlflow, MlflowMode::DryRun(_)),
            departures,
            warnings: self.warnings,
        }
    }
}

/// A pass on fewer successful requests than a P95 needs is `inconclusive`: the nearest-rank
/// P95 of them is the slowest request, or nearly (the cross-checks warn too). Never a baseline.
fn too_little_evidence(v: RichVerdict, results: &LoadTestResults) -> RichVerdict {
    let successes = results.client.as_ref().map_or(0, |c| c.successful_requests);
    if v == RichVerdict::Passed && successes < crate::decision::statistics::MIN_SUCCESSES_FOR_P95 {
        RichVerdict::Inconclusive
    } else {
        v
    }
}

/// Deliberate differences from the seed's behaviour for this configuration, in words.
fn departures(
    cfg: &DecideConfig,
    baseline: Option<&BaselineRecord>,
    results: &LoadTestResults,
) -> Vec<String> {
    let mut out = Vec::new();
    let mlflow_on = !matches!(cfg.mlflow, MlflowMode::Off);
    if mlflow_on && cfg.baseline_file.is_none() {
        if !cfg.baseline_any_model {
            out.push("the baseline is the newest passed run of the same model (params.model_name); the seed takes any model's (--baseline-any-model restores that)".into());
        }
        out.push("the baseline must be a FINISHED run, so a run that failed after being tagged is never a baseline".into());
    }
    if let Some(b) = baseline.filter(|b| b.source == BaselineSource::File) {
        out.push(format!(
            "the baseline was read from {} (--baseline-file), not searched in MLflow",
            b.file.as_deref().unwrap_or("a file")
        ));
    }
    match cfg.mlflow {
        MlflowMode::Off => {
            out.push("the decision was not recorded in MLflow (no run, no aliases)".into())
        }
        MlflowMode::DryRun(_) => {
            out.push("dry run: MLflow was read but nothing was written to it".into())
        }
        MlflowMode::Record(_) => {}
    }
    if cfg.decision_method == DecisionMethod::Statistical {
        out.push(format!(
            "--decision statistical: the comparison with the baseline was decided by confidence intervals, not the seed's point bounds (the absolute floors still apply); an inconclusive metric counted as {}ed (--on-inconclusive {})",
            cfg.on_inconclusive.as_str(),
            cfg.on_inconclusive.as_str()
        ));
    }
    match baseline.map(|b| b.source) {
        Some(BaselineSource::Results) => out.push(format!(
            "the baseline is the measurement in {} (--baseline-results), not a passed decision",
            baseline.and_then(|b| b.file.as_deref()).unwrap_or("a results file")
        )),
        Some(BaselineSource::SameRun) => out.push(format!(
            "the baseline is adapter `{}` measured in the same run, interleaved with the candidate (load-test --baseline-adapter), not a stored run; the comparison uses the client's figures (vLLM labels its metrics by base model, not adapter); check 3 reads the two arms' combined throughput (each arm carries half the requests, so the relative throughput bound and its interval cannot tell the arms apart)",
            baseline.and_then(|b| b.adapter.as_deref()).unwrap_or("?")
        )),
        _ => {}
    }
    if cfg.metrics_source == MetricsSource::Client {
        out.push("checks 1-3 used the client's figures (--metrics-source client); the seed uses the server's".into());
    }
    out.extend(cfg.thresholds.laxer_than_seed());
    out.extend(results.departures.iter().map(|d| format!("load-test: {d}")));
    out
}

/// The dataset input: name `--eval-dataset-name`, else `eval-v{N}` from `--eval-data-version`,
/// else `eval-<digest>`; digest from the results (cut to 36 characters); source
/// `--eval-data-source`, else the eval path in the results. `None` (with a warning) when the
/// results carry no eval data digest.
pub fn dataset_record(
    cfg: &DecideConfig,
    results: &LoadTestResults,
) -> (Option<DatasetRecord>, Option<String>) {
    let Some(eval) = results.eval_data.as_ref().filter(|e| !e.digest.is_empty()) else {
        return (
            None,
            Some("the results carry no eval_data digest: no dataset input is logged".into()),
        );
    };
    let digest: String = eval.digest.chars().take(MAX_DIGEST_LEN).collect();
    let name = match (&cfg.eval_dataset_name, &cfg.eval_data_version) {
        (Some(n), _) => n.clone(),
        (None, Some(v)) => format!("eval-v{}", v.trim_start_matches(['v', 'V'])),
        (None, None) => format!("eval-{digest}"),
    };
    let source = cfg
        .eval_data_source
        .clone()
        .unwrap_or_else(|| eval.path.clone());
    let record = DatasetRecord {
        name,
        digest,
        source,
        context: DATASET_CONTEXT.into(),
    };
    (Some(record), None)
}

/// `source_type` for a dataset source: the URI scheme, or `local`.
pub(crate) fn source_type(source: &str) -> String {
    match source.split_once("://") {
        Some(("https", _)) => "http".into(),
        Some((scheme, _)) if !scheme.is_empty() => scheme.to_ascii_lowercase(),
        _ => "local".into(),
    }
}

/// Quotes a value for an MLflow search filter.
fn quote(value: &str) -> Result<String, DecideError> {
    if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else {
        Err(DecideError::Input(format!(
            "model name {value:?} holds both quote characters and cannot be used in an MLflow search filter"
        )))
    }
}

/// The baseline search filter: runs tagged `perf_decision = 'passed'`, FINISHED, and (unless
/// `model` is `None`, i.e. `--baseline-any-model`) logged for the same model.
pub fn baseline_filter(model: Option<&str>) -> Result<String, DecideError> {
    let mut f = "tags.perf_decision = 'passed' and attributes.status = 'FINISHED'".to_string();
    if let Some(m) = model {
        f.push_str(&format!(" and {}", model_filter(m)?));
    }
    Ok(f)
}

/// The search-filter clause selecting runs logged for `model` (`params.model_name = '...'`).
pub fn model_filter(model: &str) -> Result<String, DecideError> {
    Ok(format!("params.model_name = {}", quote(model)?))
}

fn param(key: &str, value: impl Into<String>) -> KeyValue {
    let value: String = value.into();
    let value = if value.chars().count() > MAX_PARAM_LEN {
        value.chars().take(MAX_PARAM_LEN).collect()
    } else {
        value
    };
    KeyValue::new(key, value)
}

/// Params, metrics and tags of the run (the `perf_decision` tag is set later, last).
///
/// Params: model_name, candidate_adapter, candidate_version, candidate_alias, total_requests,
/// mode, the load settings (eval_data_digest, concurrency, max_tokens, endpoint, temperature,
/// rate, arrival, max_inflight, num_requests, window_mode, server_source, warmup_requests,
/// preconnect, ab_interleaved, max_tokens_dist, ignore_eos, api, metrics_source: see
/// [`crate::decision::comparability`]), every threshold (flag names),
/// require_comparable_baseline, baseline_run_id (`none` in absolute mode), baseline_source,
/// adapter_root, model_version_source, eval_dataset_name, tool_version. Metrics: every
/// decision metric (a missing one as NaN) and, in comparative mode, the baseline's value of
/// each figure compared, under `baseline_` + its name: `baseline_p95_latency_s`,
/// `baseline_p95_ttft_s`, `baseline_throughput_rps`, `baseline_client_success_rate` (with
/// `--metrics-source client`: `baseline_client_p95_latency_s`, `baseline_client_p95_ttft_s`,
/// `baseline_client_throughput_rps`). Tags: model_name, candidate_version, metrics_source,
/// `perf_warnings` (how many warnings the decision lists), and in comparative mode
/// `perf_baseline_comparable` (`true`/`false`).
pub fn build_batch(doc: &PerfDecision, results: &LoadTestResults, timestamp_ms: i64) -> Batch {
    let mut params = vec![
        param("model_name", &doc.model_name),
        param("mode", doc.mode.as_str()),
        param("tool_version", &doc.tool.version),
    ];
    params.extend(doc.load_settings.iter().map(|(k, v)| param(k, v)));
    let optional = [
        ("candidate_adapter", doc.candidate_adapter.clone()),
        ("candidate_version", doc.candidate_version.clone()),
        ("candidate_alias", doc.candidate_alias.clone()),
        ("adapter_root", doc.adapter_root.clone()),
        ("model_version_source", doc.model_version_source.clone()),
        (
            "total_requests",
            results
                .client
                .as_ref()
                .map(|c| c.total_requests.to_string()),
        ),
        (
            "eval_dataset_name",
            doc.dataset.as_ref().map(|d| d.name.clone()),
        ),
    ];
    params.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| param(k, v))),
    );
    for (_, name, value) in doc.thresholds.entries() {
        params.push(param(name, value.to_string()));
    }
    params.push(param("on_invalid", &doc.on_invalid));
    let strict = doc
        .checks
        .iter()
        .any(|c| c.name == CheckName::ComparableBaseline);
    params.push(param("require_comparable_baseline", strict.to_string()));
    if let Some(c) = doc
        .checks
        .iter()
        .find(|c| c.name == CheckName::SloAttainment)
    {
        params.push(param("min_slo_attainment", c.absolute_limit.to_string()));
    }
    let baseline_id = doc
        .baseline
        .as_ref()
        .and_then(|b| b.run_id.clone())
        .unwrap_or_else(|| "none".into());
    params.push(param("baseline_run_id", baseline_id));
    let source = doc.baseline.as_ref().map_or("none", |b| b.source.as_str());
    params.push(param("baseline_source", source));

    let metric = |key: String, v: Option<f64>| Metric {
        key,
        value: MetricValue(v.unwrap_or(f64::NAN)),
        timestamp: timestamp_ms,
        step: 0,
    };
    let mut metrics: Vec<Metric> = doc
        .metrics
        .iter()
        .map(|(k, m)| metric(k.clone(), m.get()))
        .collect();
    if doc.baseline.is_some() {
        // under the name of the figure compared: `baseline_client_p95_latency_s` with the client
        // source, so a client figure never sits under a server name
        for c in doc.checks.iter().filter(|c| {
            matches!(
                c.name,
                CheckName::P95Latency
                    | CheckName::P95Ttft
                    | CheckName::Throughput
                    | CheckName::SuccessRate
            ) && c.baseline_value.is_some()
        }) {
            metrics.push(metric(
                format!("{}{}", names::BASELINE_PREFIX, c.metric),
                c.baseline_value,
            ));
        }
    }
    if let Some(stats) = &doc.statistics {
        for m in &stats.metrics {
            for (end, v) in [("point", m.point), ("lo", m.lo), ("hi", m.hi)] {
                metrics.push(metric(format!("stat_{}_{end}", m.name), v));
            }
        }
    }
    params.push(param("decision_method", doc.decision_method.as_str()));
    let fail_on_drift = doc.checks.iter().any(|c| c.name == CheckName::Drift);
    params.push(param("fail_on_drift", fail_on_drift.to_string()));
    if let Some(o) = doc.on_inconclusive {
        params.push(param("on_inconclusive", o.as_str()));
    }
    let mut tags = vec![
        KeyValue::new("model_name", &doc.model_name),
        KeyValue::new("metrics_source", doc.metrics_source.as_str()),
    ];
    if let Some(v) = &doc.candidate_version {
        tags.push(KeyValue::new("candidate_version", v));
    }
    tags.push(KeyValue::new(
        "perf_warnings",
        doc.warnings.len().to_string(),
    ));
    if let Some(c) = doc.baseline.as_ref().and_then(|b| b.comparable) {
        tags.push(KeyValue::new("perf_baseline_comparable", c.to_string()));
    }
    if let Some(key) = &doc.decision_key {
        tags.push(KeyValue::new("perf_decision_key", key));
    }
    if let Some(v) = doc.verdict {
        tags.push(KeyValue::new(PERF_VERDICT_TAG, v.as_str()));
    }
    tags.push(KeyValue::new(
        "perf_measurement_valid",
        doc.invalid_reasons.is_empty().to_string(),
    ));
    if !doc.invalid_reasons.is_empty() {
        let reasons: String = doc
            .invalid_reasons
            .join("; ")
            .chars()
            .take(MAX_PARAM_LEN)
            .collect();
        tags.push(KeyValue::new("perf_invalid_reasons", reasons));
    }
    Batch {
        metrics,
        params,
        tags,
    }
}

#[cfg(test)]
mod tests;
