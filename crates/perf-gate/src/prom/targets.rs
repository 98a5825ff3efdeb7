//! The job's scrape targets as Prometheus reports them (`GET /api/v1/targets`): their scrape
//! interval, for `--scrape-interval auto`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use super::error::PromError;
use super::query::PrometheusCollector;

#[derive(Debug, Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active: Vec<ActiveTarget>,
}

#[derive(Debug, Deserialize)]
struct ActiveTarget {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "scrapeInterval", default)]
    scrape_interval: Option<String>,
}

/// What Prometheus says about one job's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTargets {
    /// Number of active targets whose `job` label is the job.
    pub count: usize,
    /// Their scrape intervals (one when the job is configured once).
    pub intervals: BTreeSet<Duration>,
    /// Every job Prometheus scrapes, for an error that names the right one.
    pub jobs: BTreeSet<String>,
}

impl JobTargets {
    /// The job's scrape interval: the longest one if its targets differ (the window waits for
    /// the slowest), `None` if Prometheus does not report one.
    pub fn interval(&self) -> Option<Duration> {
        self.intervals.last().copied()
    }
}

/// Parses the `data` of `/api/v1/targets` for `job`.
pub(crate) fn parse(data: &serde_json::Value, job: &str) -> Result<JobTargets, String> {
    let t: TargetsData =
        serde_json::from_value(data.clone()).map_err(|e| format!("targets answer: {e}"))?;
    let mut out = JobTargets {
        count: 0,
        intervals: BTreeSet::new(),
        jobs: BTreeSet::new(),
    };
    for a in t.active {
        let Some(j) = a.labels.get("job") else {
            continue;
        };
        out.jobs.insert(j.clone());
        if j != job {
            continue;
        }
        out.count += 1;
        if let Some(d) = a
            .scrape_interval
            .as_deref()
            .and_then(|s| humantime::parse_duration(s).ok())
        {
            out.intervals.insert(d);
        }
    }
    Ok(out)
}

impl PrometheusCollector {
    /// The active targets of the configured job (`GET /api/v1/targets?state=active`).
    pub async fn job_targets(&self) -> Result<JobTargets, PromError> {
        let data = self.get_api("api/v1/targets", Some("state=active")).await?;
        parse(&data, &self.settings().job).map_err(|message| PromError::Parse {
            what: "Prometheus",
            url: self.url().to_string(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_s_interval_is_read_from_its_targets() {
        let data = serde_json::json!({"activeTargets": [
            {"labels": {"job": "vllm-service", "instance": "a:8000"}, "scrapeInterval": "15s"},
            {"labels": {"job": "vllm-service", "instance": "b:8000"}, "scrapeInterval": "1m30s"},
            {"labels": {"job": "node", "instance": "n:9100"}, "scrapeInterval": "1m"},
            {"labels": {"instance": "x"}}
        ], "droppedTargets": []});
        let t = parse(&data, "vllm-service").unwrap();
        assert_eq!(t.count, 2);
        assert_eq!(t.interval(), Some(Duration::from_secs(90)));
        assert_eq!(
            t.jobs.iter().map(String::as_str).collect::<Vec<_>>(),
            ["node", "vllm-service"]
        );
        let none = parse(&data, "other").unwrap();
        assert_eq!((none.count, none.interval()), (0, None));
        assert!(parse(&serde_json::json!({"activeTargets": 3}), "j").is_err());
    }
}
