//! Reading Prometheus's answers and turning them into figures: "no data" is `null` with a
//! reason, never NaN and never 0.
//!
//! | answer | meaning | figure |
//! | --- | --- | --- |
//! | `"result": []` | no series matched (wrong job label, renamed metric, target down) | missing: "no series matched ..." |
//! | `"NaN"` | series exist, no observations in the window (0/0) | missing: "no observations in the window" |
//! | `"+Inf"` | the quantile lies above the highest finite bucket (or a division by 0) | missing, with that reason |
//! | a number | the figure | the value |

use std::collections::BTreeMap;

use prometheus_http_query::response::Data;
use serde::Deserialize;

use super::promql::{E2E_LATENCY, Figure, ITL, ITL_OLD, Latency, NamedQuery, TTFT};
use crate::results::{Measured, ServerMetrics};

/// The `/api/v1/query` body. The crate's own `PromqlResult` drops `warnings`/`infos` and the
/// HTTP status, so the envelope is read here; the `data` part reuses the crate's type.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum Envelope {
    /// `{"status":"success","data":{...},"warnings":[...]}`
    Success {
        data: Data,
        #[serde(default)]
        warnings: Vec<String>,
        #[serde(default)]
        infos: Vec<String>,
    },
    /// `{"status":"error","errorType":"bad_data","error":"..."}`
    Error {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(default)]
        error: String,
    },
}

/// What one instant query returned, reduced to one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// A finite number.
    Value(f64),
    /// `"result": []`.
    Empty,
    /// `"NaN"`.
    NaN,
    /// `"+Inf"`.
    PosInf,
    /// `"-Inf"`.
    NegInf,
}

/// An instant query's answer: the first sample, how many series came back, and Prometheus's
/// warnings (and infos).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantAnswer {
    /// The first series' value as sent (may be NaN or ±Inf); `None` when no series matched.
    pub value: Option<f64>,
    /// Number of series (or 1 for a scalar).
    pub series: usize,
    /// `warnings` and `infos` from the response.
    pub warnings: Vec<String>,
}

impl InstantAnswer {
    /// Reads an `/api/v1/query` response body: the answer of a `success`, or Prometheus's
    /// `errorType: error` (or why the body is not an instant answer) as the error text. The
    /// collector reads the same envelope together with the HTTP status; this is the body alone,
    /// for tests and fuzzing.
    pub fn parse(body: &str) -> Result<Self, String> {
        match serde_json::from_str::<Envelope>(body) {
            Ok(Envelope::Success {
                data,
                warnings,
                infos,
            }) => Self::from_data(&data, warnings.into_iter().chain(infos).collect()),
            Ok(Envelope::Error { error_type, error }) => Err(format!("{error_type}: {error}")),
            Err(e) => Err(format!("not a Prometheus query answer: {e}")),
        }
    }

    pub(crate) fn from_data(data: &Data, warnings: Vec<String>) -> Result<Self, String> {
        let (value, series) = match data {
            Data::Vector(v) => (v.first().map(|s| s.sample().value()), v.len()),
            Data::Scalar(s) => (Some(s.value()), 1),
            Data::Matrix(_) => return Err("a range vector for an instant query".into()),
        };
        Ok(InstantAnswer {
            value,
            series,
            warnings,
        })
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match self.value {
            None => Outcome::Empty,
            Some(v) if v.is_nan() => Outcome::NaN,
            Some(v) if v == f64::INFINITY => Outcome::PosInf,
            Some(v) if v == f64::NEG_INFINITY => Outcome::NegInf,
            Some(v) => Outcome::Value(v),
        }
    }
}

/// Highest finite bound of vLLM's default buckets: a quantile equal to it may be higher.
fn highest_finite_bound(metric: &str) -> Option<f64> {
    match metric {
        E2E_LATENCY => Some(7680.0),
        TTFT => Some(2560.0),
        ITL | ITL_OLD => Some(80.0),
        _ => None,
    }
}

/// The figure for one query's outcome (restart checks are applied later, in [`assemble`]).
pub(crate) fn measured(q: &NamedQuery, metric: &str, outcome: Outcome, range: &str) -> Measured {
    let is_quantile = matches!(q.figure, Figure::Quantile(..));
    match outcome {
        Outcome::Value(v) if is_quantile && highest_finite_bound(metric) == Some(v) => Measured {
            value: Some(v),
            reason: Some(format!(
                "equals the highest finite bucket bound ({v}s): the true quantile may be higher"
            )),
        },
        Outcome::Value(v) => Measured::value(v),
        Outcome::NaN => Measured::missing(format!(
            "no observations in the {range} window (Prometheus returned NaN)"
        )),
        Outcome::PosInf if is_quantile => {
            Measured::missing("+Inf: the quantile lies above the highest finite bucket".to_string())
        }
        Outcome::PosInf => Measured::missing("Prometheus returned +Inf (division by zero?)"),
        Outcome::NegInf => Measured::missing("Prometheus returned -Inf"),
        Outcome::Empty => match q.figure {
            Figure::GpuUtilAvg | Figure::GpuUtilMax => Measured::missing(format!(
                "no series matched {} in the {range} window (check --gpu-selector; is a DCGM exporter scraped?)",
                q.selector
            )),
            Figure::RequestsFinished | Figure::GenerationTokens => Measured::missing(format!(
                "no series matched {} at the evaluation time or {range} before it, before the load (check --prometheus-job and metric names; was vLLM scraped before the load?)",
                q.selector
            )),
            _ => Measured::missing(format!(
                "no series matched {} in the {range} window (check --prometheus-job and metric names)",
                q.selector
            )),
        },
    }
}

/// One figure's result, ready to be placed.
#[derive(Debug, Clone)]
pub(crate) struct FigureResult {
    pub figure: Figure,
    pub measured: Measured,
}

/// Places the figures into `m`: quantiles, counts and rates (divided by the load duration),
/// gauges; a counter reset in the window voids that counter's figures.
pub(crate) fn assemble(m: &mut ServerMetrics, results: &[FigureResult], load_duration_s: f64) {
    let find = |f: Figure| {
        results
            .iter()
            .find(|r| r.figure == f)
            .map(|r| r.measured.clone())
    };
    let resets = |f: Figure| find(f).and_then(|r| r.get()).filter(|n| *n > 0.0);
    for r in results {
        if let Figure::Quantile(lat, q) = r.figure {
            let target = match lat {
                Latency::E2e => &mut m.e2e_latency_s,
                Latency::Ttft => &mut m.ttft_s,
                Latency::Itl => &mut m.itl_s,
            };
            let slot = match q {
                super::promql::Quantile::P50 => &mut target.p50,
                super::promql::Quantile::P95 => &mut target.p95,
                super::promql::Quantile::P99 => &mut target.p99,
            };
            *slot = r.measured.clone();
        }
    }
    let counted =
        |count: Option<Measured>, reset: Option<f64>, what: &str, warnings: &mut Vec<String>| {
            let count = count.unwrap_or_else(|| Measured::missing("not queried"));
            if let Some(n) = reset {
                let reason = format!(
                    "{what} counter reset {n} time(s) in the window: vLLM restarted during the load"
                );
                warnings.push(reason.clone());
                return Measured::missing(reason);
            }
            match count.get() {
                Some(v) if v < 0.0 => Measured::missing(format!(
                    "{what} counter went down in the window ({v}): vLLM restarted during the load"
                )),
                _ => count,
            }
        };
    let finished = counted(
        find(Figure::RequestsFinished),
        resets(Figure::RequestsFinishedResets),
        "finished-requests",
        &mut m.warnings,
    );
    let tokens = counted(
        find(Figure::GenerationTokens),
        resets(Figure::GenerationTokensResets),
        "generated-tokens",
        &mut m.warnings,
    );
    // The seed's throughput is a rate over its window, not a count over the load
    m.throughput_rps = match find(Figure::SeedThroughput) {
        Some(rate) => rate,
        None => per_second(&finished, load_duration_s),
    };
    m.generation_tokens_per_s = per_second(&tokens, load_duration_s);
    m.requests_finished = finished;
    if let Some(n) = find(Figure::RequestsFinishedResets).and_then(|r| r.get()) {
        m.integrity.counter_resets = Some(n as u64);
    }
    let gauge = |f| find(f).unwrap_or_else(|| Measured::missing("not queried"));
    m.kv_cache_usage_max = gauge(Figure::KvCacheMax);
    m.kv_cache_usage_avg = gauge(Figure::KvCacheAvg);
    m.gpu_utilization_avg = gauge(Figure::GpuUtilAvg);
    m.gpu_utilization_max = gauge(Figure::GpuUtilMax);
}

/// `count / duration`, or missing with the count's reason.
pub(crate) fn per_second(count: &Measured, duration_s: f64) -> Measured {
    match count.get() {
        Some(_) if duration_s.is_nan() || duration_s <= 0.0 => {
            Measured::missing("the load's duration is 0: no rate can be computed")
        }
        Some(c) => Measured::value(c / duration_s),
        None => Measured::missing(
            count
                .reason
                .clone()
                .unwrap_or_else(|| "no count".to_string()),
        ),
    }
}

/// An empty `ServerMetrics` whose every figure says "not collected" (never a silent default).
pub(crate) fn empty_metrics(source: crate::results::ServerSource) -> ServerMetrics {
    let nc = || Measured::missing("not collected");
    let q = || crate::results::ServerQuantiles {
        p50: nc(),
        p95: nc(),
        p99: nc(),
    };
    ServerMetrics {
        source,
        window: None,
        e2e_latency_s: q(),
        ttft_s: q(),
        itl_s: q(),
        requests_finished: nc(),
        throughput_rps: nc(),
        generation_tokens_per_s: nc(),
        kv_cache_usage_max: nc(),
        kv_cache_usage_avg: nc(),
        gpu_utilization_avg: nc(),
        gpu_utilization_max: nc(),
        queries: Vec::new(),
        resolved_names: BTreeMap::new(),
        warnings: Vec::new(),
        integrity: crate::results::ServerIntegrity {
            requests_finished_any: nc(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
/// Every `{"value": null}` figure in the JSON carries a non-empty reason.
pub(crate) fn assert_every_null_has_a_reason(v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Null) = map.get("value") {
                let reason = map.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                assert!(!reason.is_empty(), "null without a reason: {v}");
            }
            map.values().for_each(assert_every_null_has_a_reason);
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_every_null_has_a_reason),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Envelope {
        serde_json::from_str(body).expect("envelope parses")
    }

    #[test]
    fn envelope_shapes_seen_from_real_prometheus() {
        let e = parse(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1795445406.25,"3.7672413793103443"]}]}}"#,
        );
        let Envelope::Success { data, warnings, .. } = e else {
            panic!("success")
        };
        let a = InstantAnswer::from_data(&data, warnings).unwrap();
        assert_eq!(a.outcome(), Outcome::Value(3.7672413793103443));
        let e = parse(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        let Envelope::Success { data, .. } = e else {
            panic!("success")
        };
        assert_eq!(
            InstantAnswer::from_data(&data, vec![]).unwrap().outcome(),
            Outcome::Empty
        );
        let e = parse(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1795445406,"NaN"]},"warnings":["w1"],"infos":["i1"]}"#,
        );
        let Envelope::Success {
            data,
            warnings,
            infos,
        } = e
        else {
            panic!("success")
        };
        assert_eq!(
            InstantAnswer::from_data(&data, vec![]).unwrap().outcome(),
            Outcome::NaN
        );
        assert_eq!(
            (warnings, infos),
            (vec!["w1".to_string()], vec!["i1".to_string()])
        );
        let e = parse(
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:41: parse error: unclosed left parenthesis"}"#,
        );
        let Envelope::Error { error_type, error } = e else {
            panic!("error")
        };
        assert_eq!(error_type, "bad_data");
        assert!(error.contains("unclosed left parenthesis"));
    }

    fn query(figure: Figure) -> NamedQuery {
        NamedQuery {
            name: "x".into(),
            promql: "x".into(),
            figure,
            metric: E2E_LATENCY.into(),
            alias: None,
            selector: r#"m{job="j"}"#.into(),
        }
    }

    #[test]
    fn no_data_is_never_zero() {
        let q = query(Figure::Quantile(
            Latency::E2e,
            super::super::promql::Quantile::P95,
        ));
        let m = measured(&q, E2E_LATENCY, Outcome::Empty, "93s");
        assert_eq!(m.value, None);
        assert_eq!(
            m.reason.as_deref(),
            Some(
                r#"no series matched m{job="j"} in the 93s window (check --prometheus-job and metric names)"#
            )
        );
        let m = measured(&q, E2E_LATENCY, Outcome::NaN, "93s");
        assert_eq!(m.value, None);
        assert!(m.reason.unwrap().contains("no observations"));
        let m = measured(&q, E2E_LATENCY, Outcome::PosInf, "93s");
        assert_eq!(m.value, None);
        assert!(
            m.reason
                .unwrap()
                .contains("above the highest finite bucket")
        );
        let m = measured(&q, E2E_LATENCY, Outcome::Value(7680.0), "93s");
        assert_eq!(m.value, Some(7680.0));
        assert!(m.reason.unwrap().contains("may be higher"));
        let g = query(Figure::GpuUtilAvg);
        assert!(
            measured(&g, "DCGM_FI_DEV_GPU_UTIL", Outcome::Empty, "5s")
                .reason
                .unwrap()
                .contains("--gpu-selector")
        );
    }

    #[test]
    fn counter_reset_voids_the_count_and_rate() {
        let mut m = empty_metrics(crate::results::ServerSource::Prometheus);
        let results = [
            FigureResult {
                figure: Figure::RequestsFinished,
                measured: Measured::value(30.0),
            },
            FigureResult {
                figure: Figure::RequestsFinishedResets,
                measured: Measured::value(1.0),
            },
            FigureResult {
                figure: Figure::GenerationTokens,
                measured: Measured::value(600.0),
            },
            FigureResult {
                figure: Figure::GenerationTokensResets,
                measured: Measured::value(0.0),
            },
        ];
        assemble(&mut m, &results, 10.0);
        assert_eq!(m.requests_finished.value, None);
        assert!(
            m.requests_finished
                .reason
                .as_deref()
                .unwrap()
                .contains("restarted")
        );
        assert_eq!(m.throughput_rps.value, None);
        assert_eq!(m.generation_tokens_per_s.value, Some(60.0));
        assert_eq!(m.warnings.len(), 1);
        // Not queried figures keep a reason.
        assert_eq!(m.kv_cache_usage_max.reason.as_deref(), Some("not queried"));
        // A negative difference is a restart too.
        let results = [FigureResult {
            figure: Figure::RequestsFinished,
            measured: Measured::value(-5.0),
        }];
        assemble(&mut m, &results, 10.0);
        assert!(m.requests_finished.reason.unwrap().contains("went down"));
    }

    #[test]
    fn rate_needs_a_positive_duration() {
        assert_eq!(per_second(&Measured::value(30.0), 12.0).value, Some(2.5));
        assert_eq!(per_second(&Measured::value(30.0), 0.0).value, None);
        let m = per_second(&Measured::missing("no series"), 10.0);
        assert_eq!(m.reason.as_deref(), Some("no series"));
    }
}
