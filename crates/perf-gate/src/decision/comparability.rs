//! Whether the baseline ran the same load as the candidate.
//!
//! The relative bounds of checks 1–3 only mean something when both runs sent the same prompts
//! the same way. Each side's load settings are a [`LoadSettings`] map keyed by the MLflow param
//! names the step logs them under ([`super::load_settings`]), so a baseline run's params read back as the same map (and a
//! `perf_decision.json` carries it as `load_settings`, for `--baseline-file`):
//!
//! | setting (param) | candidate value, from the results | a difference means |
//! | --- | --- | --- |
//! | `eval_data_digest` | `eval_data.digest` (the baseline run's dataset input digest if the param is absent) | different prompts |
//! | `concurrency` | `config.concurrency` | another number of requests in flight |
//! | `max_tokens` | `config.max_tokens` | another bound on output length, so on E2E latency |
//! | `endpoint` | `config.endpoint` | chat template or not |
//! | `temperature` | `config.temperature` | greedy or sampled output lengths |
//! | `rate` | `config.rate` (`none`: closed loop) | another arrival process |
//! | `arrival` | `config.arrival` (`constant` when a run does not record it: runs before `--arrival`) | bursts of another shape at the same mean rate |
//! | `max_inflight` | `config.max_inflight` (`none`: closed loop); a run that does not record it: `none` if its `rate` is `none`, else its `concurrency` (the open loop's cap before `--max-inflight`) | an open loop cut off at another number in flight |
//! | `num_requests` | `config.num_requests` (`none`: each prompt once) | another sample size |
//! | `window_mode` | `config.window_mode` with Prometheus (`none` otherwise) | server figures over other windows |
//! | `server_source` | `server.source` | server figures from Prometheus vs vLLM's `/metrics` |
//! | `warmup_requests` | `config.warmup_requests` | the adapter's first load (and cold caches) inside the measurement or not |
//! | `preconnect` | `config.preconnect` | the first wave's TCP/TLS handshakes inside the client's TTFT or not |
//! | `ab_interleaved` | `config.baseline_adapter` set (`false` when a run does not record it: runs before same-server A/B) | the candidate shared the load with a baseline adapter, at about half the concurrency |
//! | `load_shape` | `list`, or the timed-load settings (`duration`, `steps`, `stages`, `warmup`, `cooldown`, `ramp_up`, `think`; e.g. `duration=60s,warmup=10s`); `list` when a run does not record it (runs before timed loads) | another load over time |
//! | `max_tokens_dist` | `config.max_tokens_dist` (`none`: a fixed `max_tokens`, also when a run does not record it) | output lengths drawn from another distribution |
//! | `ignore_eos` | `config.ignore_eos` (`false` when a run does not record it) | outputs run to `max_tokens` or stop at end-of-sequence |
//! | `api` | `config.api` (`openai` when a run does not record it: runs before `--api`) | another server (vLLM or llama.cpp) and another API measured |
//!
//! A setting that differs, or that one side does not record (runs logged before these params
//! existed), makes the baseline *not comparable*: one warning per difference (one for all the
//! unrecorded ones), `baseline.comparable = false` with the reasons, and with
//! `--require-comparable-baseline` a failed fifth check ([`comparable_check`]). The four checks
//! are never changed by it. `metrics_source` is compared too, but only noted: the baseline's
//! figures are read under the same names whatever its own decision was judged on.

use super::checks::{CheckName, CheckResult, Op};
use super::load_settings::{LoadSettings, NONE, keys};

/// One compared setting.
struct Setting {
    key: &'static str,
    label: &'static str,
    consequence: &'static str,
    /// The value of a run that does not record the setting (it predates it), if one is
    /// certain; else a missing value makes the comparison unknowable.
    absent: Option<&'static str>,
}

/// The settings that shape the load, in the order they are reported.
const SETTINGS: [Setting; 18] = [
    Setting {
        key: keys::EVAL_DATA_DIGEST,
        label: "eval digest",
        consequence: "the relative checks compare different prompts",
        absent: None,
    },
    Setting {
        key: keys::CONCURRENCY,
        label: "concurrency",
        consequence: "latency and throughput depend on the requests in flight",
        absent: None,
    },
    Setting {
        key: keys::MAX_TOKENS,
        label: "max_tokens",
        consequence: "the output length bound changes E2E latency and throughput directly",
        absent: None,
    },
    Setting {
        key: keys::ENDPOINT,
        label: "endpoint",
        consequence: "the chat template changes the prompts the server sees",
        absent: None,
    },
    Setting {
        key: keys::TEMPERATURE,
        label: "temperature",
        consequence: "sampling changes output lengths, so latency",
        absent: None,
    },
    Setting {
        key: keys::RATE,
        label: "rate",
        consequence: "another arrival process puts another load on the server",
        absent: None,
    },
    Setting {
        key: keys::ARRIVAL,
        label: "arrival",
        consequence: "the same mean rate in bursts of another shape queues differently on the server",
        absent: Some("constant"),
    },
    Setting {
        key: keys::MAX_INFLIGHT,
        label: "max in flight",
        consequence: "an open loop capped at another number in flight sends another load once the server falls behind",
        // derived in `value_of` from `rate` and `concurrency` (see the module table)
        absent: None,
    },
    Setting {
        key: keys::NUM_REQUESTS,
        label: "num_requests",
        consequence: "another number of requests changes the samples behind each percentile",
        absent: None,
    },
    Setting {
        key: keys::WINDOW_MODE,
        label: "window mode",
        consequence: "the server figures were computed over differently chosen PromQL windows",
        absent: None,
    },
    Setting {
        key: keys::WARMUP_REQUESTS,
        label: "warm-up requests",
        consequence: "without a warm-up the adapter's first load and cold caches fall in the measurement",
        absent: None,
    },
    Setting {
        key: keys::PRECONNECT,
        label: "preconnect",
        consequence: "with connections opened before the load, no client TTFT includes a handshake; without, the first wave's do",
        absent: None,
    },
    Setting {
        key: keys::SERVER_SOURCE,
        label: "server metrics source",
        consequence: "the server figures were read from Prometheus in one run and from vLLM's /metrics in the other",
        absent: None,
    },
    Setting {
        key: keys::AB_INTERLEAVED,
        label: "same-server A/B",
        consequence: "in an A/B run the candidate shares the load with a baseline adapter, each at about half the concurrency",
        absent: Some("false"),
    },
    Setting {
        key: keys::LOAD_SHAPE,
        label: "load shape",
        consequence: "a timed load (duration, warm-up, ramp, stages, think time) and a list of requests, or two timed loads of other shapes, put other loads on the server",
        absent: Some("list"),
    },
    Setting {
        key: keys::MAX_TOKENS_DIST,
        label: "max_tokens distribution",
        consequence: "output lengths drawn from another distribution change E2E latency and throughput directly",
        absent: Some(NONE),
    },
    Setting {
        key: keys::IGNORE_EOS,
        label: "ignore_eos",
        consequence: "with ignore_eos every output runs to max_tokens; without, outputs stop at end-of-sequence",
        absent: Some("false"),
    },
    Setting {
        key: keys::API,
        label: "serving API",
        consequence: "vLLM's OpenAI API and llama.cpp's /completion are other servers, measured another way",
        absent: Some("openai"),
    },
];

/// The outcome of comparing a baseline's load with the candidate's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparability {
    /// Every setting recorded by both sides, and equal.
    pub comparable: bool,
    /// Why not: one line per difference, one for the settings a side does not record.
    pub reasons: Vec<String>,
    /// Differences that do not make the comparison unfair (`metrics_source`).
    pub notes: Vec<String>,
}

/// Equal as written, or as numbers (`10` and `10.0`).
fn same(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (a.parse::<f64>(), b.parse::<f64>()),
            (Ok(x), Ok(y)) if x == y
        )
}

/// A value in a warning; `none` says what it means.
fn shown(key: &str, value: &str) -> String {
    match (key, value) {
        (keys::RATE | keys::MAX_INFLIGHT, NONE) => "none (closed loop)".into(),
        (keys::NUM_REQUESTS, NONE) => "none (each prompt once)".into(),
        (keys::WINDOW_MODE, NONE) => "none (no Prometheus)".into(),
        _ => value.to_string(),
    }
}

/// A side's value of a setting: as recorded, else its `absent` value; an unrecorded
/// `max_inflight` follows from `rate` and `concurrency` (the open loop's cap before
/// `--max-inflight` was `--concurrency`), when those are recorded.
fn value_of(s: &Setting, side: &LoadSettings) -> Option<String> {
    if let Some(v) = side.get(s.key) {
        return Some(v.clone());
    }
    if s.key == keys::MAX_INFLIGHT {
        return match side.get(keys::RATE).map(String::as_str) {
            Some(NONE) => Some(NONE.into()),
            Some(_) => side.get(keys::CONCURRENCY).cloned(),
            None => None,
        };
    }
    s.absent.map(str::to_string)
}

/// Compares the baseline's settings with the candidate's (see the module docs).
pub fn compare<'a>(candidate: &'a LoadSettings, baseline: &'a LoadSettings) -> Comparability {
    let mut reasons = Vec::new();
    let (mut baseline_lacks, mut candidate_lacks) = (Vec::new(), Vec::new());
    for s in &SETTINGS {
        let value = |side: &'a LoadSettings| value_of(s, side);
        match (value(candidate).as_deref(), value(baseline).as_deref()) {
            (Some(c), Some(b)) if same(c, b) => {}
            (Some(c), Some(b)) => reasons.push(format!(
                "baseline used {} {}, candidate {}: {}",
                s.label,
                shown(s.key, b),
                shown(s.key, c),
                s.consequence
            )),
            (Some(_), None) => baseline_lacks.push(s.label),
            (None, Some(_)) => candidate_lacks.push(s.label),
            (None, None) => {
                baseline_lacks.push(s.label);
                candidate_lacks.push(s.label);
            }
        }
    }
    if !baseline_lacks.is_empty() {
        reasons.push(format!(
            "the baseline does not record its {} (runs logged by an older perf-decision lack them): cannot tell whether it ran the same load",
            baseline_lacks.join(", ")
        ));
    }
    if !candidate_lacks.is_empty() {
        reasons.push(format!(
            "the candidate's results do not record its {}: cannot tell whether the baseline ran the same load",
            candidate_lacks.join(", ")
        ));
    }
    let mut notes = Vec::new();
    if let (Some(c), Some(b)) = (
        candidate.get(keys::METRICS_SOURCE),
        baseline.get(keys::METRICS_SOURCE),
    ) && c != b
    {
        notes.push(format!(
            "baseline was judged on the {b} figures, candidate on the {c} figures: checks 1-3 compare the candidate's {c} figures with the baseline's, which its own decision did not gate"
        ));
    }
    Comparability {
        comparable: reasons.is_empty(),
        reasons,
        notes,
    }
}

/// Name of the fifth check's "metric" in the decision file: 1 when comparable, 0 when not.
pub const COMPARABLE_METRIC: &str = "baseline_comparable";

/// The fifth check (`--require-comparable-baseline`): passes in absolute mode (nothing to
/// compare: `None`) and with a comparable baseline; fails with the reasons otherwise, and when
/// the baseline was never assessed (an empty, not comparable [`Comparability`]: fails closed).
pub fn comparable_check(baseline: Option<&Comparability>) -> CheckResult {
    let (value, passed, reason) = match baseline {
        None => (
            None,
            true,
            "no baseline (absolute mode): nothing to compare (--require-comparable-baseline)"
                .to_string(),
        ),
        Some(b) if b.comparable => (
            Some(1.0),
            true,
            "the baseline ran the same load: eval digest, concurrency, max_tokens, endpoint, temperature, rate, num_requests, window mode, warm-up and server metrics source all match (--require-comparable-baseline)".to_string(),
        ),
        Some(b) => {
            let why = if b.reasons.is_empty() {
                "its load was not assessed".to_string()
            } else {
                b.reasons.join("; ")
            };
            (
                Some(0.0),
                false,
                format!(
                    "the baseline is not comparable and --require-comparable-baseline is set: {why}"
                ),
            )
        }
    };
    CheckResult {
        name: CheckName::ComparableBaseline,
        metric: COMPARABLE_METRIC.into(),
        value,
        absolute_limit: 1.0,
        absolute_op: Op::Ge,
        relative_limit: None,
        relative_op: Op::Ge,
        baseline_value: None,
        passed,
        reason,
    }
}

#[cfg(test)]
mod tests;
