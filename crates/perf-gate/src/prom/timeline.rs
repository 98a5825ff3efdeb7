//! What Prometheus actually scraped from each vLLM target: the raw samples of a few series per
//! scrape, grouped by target and by scrape timestamp (every series of one scrape carries the
//! scrape's timestamp). The windows are anchored on these samples ([`super::confirm`]).
//!
//! A target is identified by its target labels: every label but `__name__` and vLLM's own
//! (`model_name`, `engine`, `finished_reason`, `le`), so a pod behind a ServiceMonitor
//! (`namespace`, `pod`, `instance`, ...) and a static target (`instance`) both work. It is shown
//! by its `instance` label when it has one.

use std::collections::BTreeMap;

use prometheus_http_query::response::{Data, RangeVector};

/// Gauge of requests in model execution batches.
pub const RUNNING: &str = "vllm:num_requests_running";
/// Gauge of requests waiting to be scheduled.
pub const WAITING: &str = "vllm:num_requests_waiting";
/// Finished requests by reason (every reason: stop, length, abort, error, ...).
pub const FINISHED: &str = "vllm:request_success_total";
/// Prometheus's own per-target series: 1 when the scrape worked.
pub const UP: &str = "up";

/// Labels that belong to vLLM's series, not to the target.
const SERIES_LABELS: [&str; 5] = ["__name__", "model_name", "engine", "finished_reason", "le"];

/// The selector of every series the timelines need, for job `job` (a PromQL string literal).
pub(crate) fn selector(job_literal: &str) -> String {
    format!("{{__name__=~\"{UP}|{RUNNING}|{WAITING}|{FINISHED}\",job={job_literal}}}")
}

/// One scrape of one target, as far as the window is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scrape {
    /// Scrape timestamp, unix milliseconds.
    pub ts_ms: i64,
    /// `up` at this scrape (`None`: not in the data).
    pub up: Option<f64>,
    /// Requests running, summed over the target's engines and models.
    pub running: f64,
    /// Requests waiting, summed likewise.
    pub waiting: f64,
    /// Requests finished with any reason, summed over the target's series.
    pub finished: f64,
    /// Whether any vLLM series was in this scrape (a target that is up may not expose them yet).
    pub has_vllm: bool,
    /// Whether `vllm:num_requests_running` was in this scrape.
    pub has_running: bool,
    /// Whether `vllm:num_requests_waiting` was in this scrape.
    pub has_waiting: bool,
}

impl Scrape {
    /// Up, with vLLM's series, and nothing running or waiting.
    pub fn is_quiet(&self) -> bool {
        self.up != Some(0.0)
            && self.has_running
            && self.has_waiting
            && self.running == 0.0
            && self.waiting == 0.0
    }
}

/// Every target's scrapes, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timelines {
    /// Scrapes by target name.
    pub targets: BTreeMap<String, Vec<Scrape>>,
}

impl Timelines {
    /// Builds the timelines from a matrix answer (`{...}[R]`); any other answer is empty.
    pub fn from_data(data: &Data) -> Self {
        match data {
            Data::Matrix(series) => Self::from_series(series),
            _ => Timelines::default(),
        }
    }

    fn from_series(series: &[RangeVector]) -> Self {
        let mut by_target: BTreeMap<String, BTreeMap<i64, Scrape>> = BTreeMap::new();
        for s in series {
            let labels = s.metric();
            let name = labels.get("__name__").map(String::as_str).unwrap_or("");
            let target = target_name(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let scrapes = by_target.entry(target).or_default();
            for sample in s.samples() {
                let ts_ms = (sample.timestamp() * 1000.0).round() as i64;
                let v = sample.value();
                let scrape = scrapes.entry(ts_ms).or_insert_with(|| Scrape {
                    ts_ms,
                    ..Scrape::default()
                });
                match name {
                    UP => scrape.up = Some(v),
                    RUNNING => {
                        scrape.running += v;
                        scrape.has_vllm = true;
                        scrape.has_running = true;
                    }
                    WAITING => {
                        scrape.waiting += v;
                        scrape.has_vllm = true;
                        scrape.has_waiting = true;
                    }
                    FINISHED => {
                        scrape.finished += v;
                        scrape.has_vllm = true;
                    }
                    _ => {}
                }
            }
        }
        Timelines {
            targets: by_target
                .into_iter()
                .map(|(t, s)| (t, s.into_values().collect()))
                .collect(),
        }
    }
}

/// A target's display name: its `instance`, else its target labels `k=v,...` (sorted).
pub fn target_name<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut target: Vec<(&str, &str)> =
        labels.filter(|(k, _)| !SERIES_LABELS.contains(k)).collect();
    target.sort();
    if let Some((_, instance)) = target.iter().find(|(k, _)| *k == "instance") {
        return (*instance).to_string();
    }
    target
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(json: serde_json::Value) -> Data {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn series_of_one_scrape_are_grouped_by_target_and_timestamp() {
        let data = matrix(serde_json::json!({
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "up", "job": "j", "instance": "a:1"},
                 "values": [[100.0, "1"], [130.0, "1"]]},
                {"metric": {"__name__": RUNNING, "job": "j", "instance": "a:1", "engine": "0", "model_name": "m"},
                 "values": [[100.0, "2"], [130.0, "0"]]},
                {"metric": {"__name__": RUNNING, "job": "j", "instance": "a:1", "engine": "1", "model_name": "m"},
                 "values": [[100.0, "1"], [130.0, "0"]]},
                {"metric": {"__name__": WAITING, "job": "j", "instance": "a:1", "engine": "0", "model_name": "m"},
                 "values": [[100.0, "0"], [130.0, "0"]]},
                {"metric": {"__name__": FINISHED, "job": "j", "instance": "a:1", "finished_reason": "stop", "model_name": "m"},
                 "values": [[100.0, "5"], [130.0, "7"]]},
                {"metric": {"__name__": FINISHED, "job": "j", "instance": "a:1", "finished_reason": "abort", "model_name": "m"},
                 "values": [[100.0, "1"], [130.0, "1"]]},
                {"metric": {"__name__": "up", "job": "j", "instance": "b:1"},
                 "values": [[115.5, "0"]]}
            ]
        }));
        let t = Timelines::from_data(&data);
        assert_eq!(t.targets.len(), 2);
        let a = &t.targets["a:1"];
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].ts_ms, a[0].running, a[0].finished, a[0].is_quiet()),
            (100_000, 3.0, 6.0, false)
        );
        assert_eq!(
            (a[1].running, a[1].finished, a[1].is_quiet()),
            (0.0, 8.0, true)
        );
        let b = &t.targets["b:1"];
        assert_eq!(
            (b[0].ts_ms, b[0].up, b[0].has_vllm),
            (115_500, Some(0.0), false)
        );
        assert!(!b[0].is_quiet());
    }

    #[test]
    fn targets_without_an_instance_label_are_named_by_their_labels() {
        let name = target_name(
            [
                ("__name__", "up"),
                ("pod", "vllm-0"),
                ("namespace", "ml"),
                ("model_name", "m"),
            ]
            .into_iter(),
        );
        assert_eq!(name, "namespace=ml,pod=vllm-0");
    }
}
