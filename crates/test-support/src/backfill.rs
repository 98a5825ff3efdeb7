//! A REAL Prometheus serving an exactly known history: a [`History`] is rendered to OpenMetrics,
//! turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, and a Prometheus
//! (empty scrape config, the launcher of [`crate::prometheus`]) is started on them afterwards
//! (blocks are loaded at start-up only). Stopped when dropped.
//!
//! ```no_run
//! use test_support::backfill::BackfilledPrometheus;
//! use test_support::history::{History, Target, TimeBase};
//!
//! let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 120.0);
//! h.add_target(Target::new("x", "a:8000").interval(30.0));
//! let prom = BackfilledPrometheus::start(&h).unwrap();
//! // Raw samples of the last minute at base + 120 s: scrapes at 60, 90 and 120 s.
//! let m = prom.matrix(r#"up{job="x"}[60s]"#, 120.0).unwrap();
//! assert_eq!(m[0].samples.len(), 3);
//! ```
//!
//! Facts this relies on, checked against Debian's Prometheus/promtool 2.42 (see
//! `tests/real_backfill.rs`):
//! - promtool accepts OpenMetrics with or without `# TYPE` lines, counter families named with or
//!   without `_total`, interleaved families; it needs the final `# EOF` (else it fails with
//!   `data does not end with # EOF`). Timestamps are float **seconds**: a millisecond integer is
//!   read as seconds (year 58000), and the parser truncates `int64(ts * 1000)`.
//! - promtool **silently drops** a sample that is older than the previous sample of its series
//!   (exit 0). So [`BackfilledPrometheus::start`] compares the sample count promtool reports with
//!   the history's and fails on a difference.
//! - Range selectors `[W]` evaluated at `T` include a sample exactly at `T - W` (left-closed,
//!   changed in Prometheus 3) and one exactly at `T`. An instant selector returns the latest
//!   sample in `[T - 5m, T]` (a sample exactly 5 min old is still returned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::history::{History, Series, TimeBase};
use crate::prometheus::{PrometheusServer, http_get, url_encode};

/// The Prometheus config used on backfilled data: no scrape job at all.
pub const EMPTY_CONFIG_YAML: &str = "global:\n  scrape_interval: 15s\nscrape_configs: []\n";

/// One TSDB block as promtool reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's ULID (its directory name).
    pub ulid: String,
    /// First sample, unix ms.
    pub min_ms: i64,
    /// Last sample + 1, unix ms (promtool prints the exclusive end).
    pub max_ms: i64,
    /// Samples in the block.
    pub samples: u64,
    /// Series in the block.
    pub series: u64,
}

/// The promtool binary: `$PROMTOOL_BIN`, else `promtool` on `PATH`.
pub fn promtool_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PROMTOOL_BIN") {
        let bin = PathBuf::from(bin);
        ensure!(
            bin.is_file(),
            "promtool not found: PROMTOOL_BIN={} is not a file; run scripts/install-test-deps.sh",
            bin.display()
        );
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .context("promtool not found on PATH (Debian's prometheus package has it): run scripts/install-test-deps.sh")
}

/// Runs `promtool tsdb create-blocks-from openmetrics <input> <out_dir>` and returns the blocks
/// it wrote. Fails with promtool's stderr if it fails.
pub fn create_blocks(input: &Path, out_dir: &Path) -> Result<Vec<Block>> {
    let bin = promtool_bin()?;
    let out = Command::new(&bin)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(input)
        .arg(out_dir)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "promtool tsdb create-blocks-from openmetrics {} failed ({}): {}{}",
            input.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- stdout ---\n{stdout}")
            }
        );
    }
    parse_blocks(&stdout)
}

/// Parses promtool's block table (`BLOCK ULID  MIN TIME  MAX TIME  DURATION  NUM SAMPLES  NUM
/// CHUNKS  NUM SERIES  SIZE`).
fn parse_blocks(stdout: &str) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    for line in stdout.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"BLOCK") || cols.is_empty() {
            continue;
        }
        let parse = |i: usize| -> Result<i64> {
            cols.get(i)
                .and_then(|c| c.parse().ok())
                .with_context(|| format!("unexpected promtool output line: {line:?}"))
        };
        blocks.push(Block {
            ulid: cols[0].to_string(),
            min_ms: parse(1)?,
            max_ms: parse(2)?,
            samples: u64::try_from(parse(4)?)?,
            series: u64::try_from(parse(6)?)?,
        });
    }
    Ok(blocks)
}

/// A Prometheus serving backfilled data; stopped on drop.
#[derive(Debug)]
pub struct BackfilledPrometheus {
    server: PrometheusServer,
    base: TimeBase,
    blocks: Vec<Block>,
}

/// An instant-vector element: labels (with `__name__` when not aggregated away) and value.
pub type Element = (BTreeMap<String, String>, f64);

impl BackfilledPrometheus {
    /// Renders `history`, writes its blocks and starts Prometheus on them. Fails if the history
    /// is invalid or outside the last day, if promtool fails (with its stderr) or stores fewer
    /// samples than written, or if Prometheus does not start (with its log).
    pub fn start(history: &History) -> Result<Self> {
        crate::history::check_within_retention(history)?;
        let text = history.openmetrics()?;
        let expected = history.sample_count()?;
        Self::start_openmetrics(history.base(), &text, Some(expected as u64))
    }

    /// Starts Prometheus on blocks made from OpenMetrics `text`; `base` is the origin for the
    /// offsets the query methods take. With `expected_samples`, fails unless promtool stored
    /// exactly that many samples.
    pub fn start_openmetrics(
        base: TimeBase,
        text: &str,
        expected_samples: Option<u64>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temp dir")?;
        let input = dir.path().join("history.om");
        std::fs::write(&input, text)
            .with_context(|| format!("cannot write {}", input.display()))?;
        let blocks = create_blocks(&input, &dir.path().join("data"))?;
        let stored: u64 = blocks.iter().map(|b| b.samples).sum();
        if let Some(expected) = expected_samples {
            ensure!(
                stored == expected,
                "promtool stored {stored} samples, not the {expected} written (it silently drops \
                 samples older than the previous one of their series)"
            );
        }
        let server = PrometheusServer::try_start_in(dir, EMPTY_CONFIG_YAML)?;
        Ok(BackfilledPrometheus {
            server,
            base,
            blocks,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The underlying server (port, log, data dir).
    pub fn server(&self) -> &PrometheusServer {
        &self.server
    }

    /// The time base the query methods' offsets are relative to.
    pub fn base(&self) -> TimeBase {
        self.base
    }

    /// The blocks promtool wrote.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// `GET /api/v1/query` of `promql` at `base + at` seconds (sent as unix seconds with
    /// millisecond decimals): the `data` object of a successful answer. Fails with the status
    /// and body otherwise.
    pub fn query(&self, promql: &str, at: f64) -> Result<serde_json::Value> {
        let ms = self.base.unix_ms(at);
        let time = format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
        let path = format!("/api/v1/query?query={}&time={time}", url_encode(promql));
        let (status, body) = http_get(self.server.port(), &path)
            .with_context(|| format!("GET {path} on {}", self.url()))?;
        let v: serde_json::Value = serde_json::from_str(&body).with_context(|| {
            format!("query {promql} at {time}: HTTP {status}, not JSON: {body}")
        })?;
        ensure!(
            status == 200 && v["status"] == "success",
            "query {promql} at {time}: HTTP {status}: {body}"
        );
        Ok(v["data"].clone())
    }

    /// An instant-vector query at `base + at`: each element's labels and value (`"NaN"` and
    /// `"+Inf"` parsed). Fails on another result type.
    pub fn vector(&self, promql: &str, at: f64) -> Result<Vec<Element>> {
        let data = self.query(promql, at)?;
        ensure!(
            data["resultType"] == "vector",
            "query {promql}: expected a vector, got {data}"
        );
        data["result"]
            .as_array()
            .context("result is not an array")?
            .iter()
            .map(|e| Ok((labels(&e["metric"])?, number(&e["value"][1])?)))
            .collect()
    }

    /// The single value of an instant query at `base + at`: `None` for an empty vector ("no
    /// data"), the value of a one-element vector or a scalar; fails on more elements.
    pub fn value(&self, promql: &str, at: f64) -> Result<Option<f64>> {
        let data = self.query(promql, at)?;
        if data["resultType"] == "scalar" {
            return Ok(Some(number(&data["result"][1])?));
        }
        let v = self.vector(promql, at)?;
        ensure!(
            v.len() <= 1,
            "query {promql}: expected at most one element, got {v:?}"
        );
        Ok(v.first().map(|(_, x)| *x))
    }

    /// A range-vector query (`selector[W]`) at `base + at`: the raw samples of each series,
    /// sorted by name then labels, with unix-ms timestamps.
    pub fn matrix(&self, promql: &str, at: f64) -> Result<Vec<Series>> {
        let data = self.query(promql, at)?;
        ensure!(
            data["resultType"] == "matrix",
            "query {promql}: expected a matrix, got {data}"
        );
        let mut out = data["result"]
            .as_array()
            .context("result is not an array")?
            .iter()
            .map(|e| {
                let mut labels = labels(&e["metric"])?;
                let name = labels.remove("__name__").unwrap_or_default();
                let samples = e["values"]
                    .as_array()
                    .context("values is not an array")?
                    .iter()
                    .map(|p| {
                        let t = p[0].as_f64().context("timestamp is not a number")?;
                        Ok(((t * 1000.0).round() as i64, number(&p[1])?))
                    })
                    .collect::<Result<_>>()?;
                Ok(Series {
                    name,
                    labels,
                    samples,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        Ok(out)
    }
}

fn labels(metric: &serde_json::Value) -> Result<BTreeMap<String, String>> {
    metric
        .as_object()
        .context("metric is not an object")?
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().context("label value is not a string")?;
            Ok((k.clone(), v.to_string()))
        })
        .collect()
}

fn number(v: &serde_json::Value) -> Result<f64> {
    let s = v
        .as_str()
        .with_context(|| format!("sample {v} is not a string"))?;
    s.parse()
        .with_context(|| format!("sample {s:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_promtools_block_table() {
        let out = "BLOCK ULID                  MIN TIME       MAX TIME       DURATION     NUM SAMPLES  NUM CHUNKS   NUM SERIES   SIZE\n\
                   01M92A38FEQ5G6P1KJF12W0AHS  1796436900000  1796436945001  45.001s      10           3            3            749\n";
        assert_eq!(
            parse_blocks(out).unwrap(),
            [Block {
                ulid: "01M92A38FEQ5G6P1KJF12W0AHS".into(),
                min_ms: 1_796_436_900_000,
                max_ms: 1_796_436_945_001,
                samples: 10,
                series: 3,
            }]
        );
        assert!(parse_blocks("garbage line\n").is_err());
        assert_eq!(number(&serde_json::json!("+Inf")).unwrap(), f64::INFINITY);
        assert!(number(&serde_json::json!("NaN")).unwrap().is_nan());
    }
}
