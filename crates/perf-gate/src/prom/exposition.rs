//! A parser for the Prometheus text exposition format (what vLLM serves on `/metrics`).
//!
//! Written here on purpose: `prometheus-parse` silently drops every `vllm:`-prefixed metric (its
//! name regex is `\w+`), and `openmetrics-parser` is LGPL. This covers the subset servers emit:
//! `# HELP` / `# TYPE` lines, other comments (ignored, also OpenMetrics `# EOF`), label values
//! with `\\`, `\"` and `\n` escapes, quoted (UTF-8) metric and label names, values such as `NaN`,
//! `+Inf`, `-Inf` and exponents, optional timestamps, and OpenMetrics exemplars (ignored).
//! `*_created` series (prometheus_client's counter/histogram creation times) are dropped: they are
//! not measurements.

use std::collections::HashMap;

/// The declared type of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A classic histogram: `_bucket{le}`, `_sum`, `_count` series.
    Histogram,
    /// A summary: quantile series, `_sum`, `_count`.
    Summary,
    /// No `# TYPE` line, or a type this parser does not model.
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as written (e.g. `vllm:e2e_request_latency_seconds_bucket`).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (may be NaN or ±Inf as written).
    pub value: f64,
    /// The timestamp as written, if any (milliseconds in the Prometheus text format).
    pub timestamp: Option<f64>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: the `# HELP`/`# TYPE` metadata and the samples that belong to it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// Family name (for a histogram, without `_bucket`/`_sum`/`_count`).
    pub name: String,
    /// Declared type.
    pub kind: MetricKind,
    /// `# HELP` text, unescaped.
    pub help: Option<String>,
    /// Samples in the order written.
    pub samples: Vec<Sample>,
}

/// A line that is not valid text exposition format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExpositionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a whole exposition into families, in order of first appearance.
pub fn parse_exposition(text: &str) -> Result<Vec<MetricFamily>, ExpositionError> {
    let mut families: Vec<MetricFamily> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| ExpositionError {
            line: i + 1,
            message,
        };
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((keyword, name, rest)) = metadata(comment) {
                let at = family_index(&mut families, &mut index, name);
                match keyword {
                    "HELP" => families[at].help = Some(unescape_help(rest)),
                    _ => families[at].kind = parse_kind(rest),
                }
                current = Some(at);
            }
            continue;
        }
        let sample = parse_sample(line).map_err(err)?;
        if sample.name.ends_with("_created") {
            continue;
        }
        let at = match current {
            Some(c) if belongs(&families[c], &sample.name) => c,
            _ => family_index(&mut families, &mut index, &sample.name),
        };
        families[at].samples.push(sample);
    }
    families.retain(|f| !(f.name.ends_with("_created") && f.samples.is_empty()));
    Ok(families)
}

/// `HELP name text` / `TYPE name kind` after the `#`; anything else is a plain comment.
fn metadata(comment: &str) -> Option<(&str, &str, &str)> {
    let comment = comment.trim_start();
    let (keyword, rest) = comment.split_once(char::is_whitespace)?;
    if keyword != "HELP" && keyword != "TYPE" {
        return None;
    }
    let rest = rest.trim_start();
    let (name, text) = match rest.split_once(char::is_whitespace) {
        Some((n, t)) => (n, t.trim_start()),
        None => (rest, ""),
    };
    let name = name.trim_matches('"');
    (!name.is_empty()).then_some((keyword, name, text))
}

fn family_index(
    families: &mut Vec<MetricFamily>,
    index: &mut HashMap<String, usize>,
    name: &str,
) -> usize {
    if let Some(&i) = index.get(name) {
        return i;
    }
    families.push(MetricFamily {
        name: name.to_string(),
        kind: MetricKind::Untyped,
        help: None,
        samples: Vec::new(),
    });
    index.insert(name.to_string(), families.len() - 1);
    families.len() - 1
}

/// Whether a sample named `name` is part of `family` (by the suffix rules of its type).
fn belongs(family: &MetricFamily, name: &str) -> bool {
    if name == family.name {
        return true;
    }
    let Some(suffix) = name.strip_prefix(family.name.as_str()) else {
        return false;
    };
    match family.kind {
        MetricKind::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count"),
        MetricKind::Summary => matches!(suffix, "_sum" | "_count"),
        MetricKind::Counter => suffix == "_total",
        MetricKind::Gauge | MetricKind::Untyped => false,
    }
}

fn parse_kind(text: &str) -> MetricKind {
    match text.split_whitespace().next() {
        Some("counter") => MetricKind::Counter,
        Some("gauge") => MetricKind::Gauge,
        Some("histogram") => MetricKind::Histogram,
        Some("summary") => MetricKind::Summary,
        _ => MetricKind::Untyped,
    }
}

/// `# HELP` escapes: `\\` and `\n`.
fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A cursor over one sample line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.bump() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!(
                "expected {want:?}, found {c:?} at column {}",
                self.pos
            )),
            None => Err(format!("expected {want:?}, found end of line")),
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names use the same set without `:`; accepted here).
    fn identifier(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || c == ':'
                || (c.is_ascii_digit() && self.pos > start);
            if !ok {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// A double-quoted string with `\\`, `\"` and `\n` escapes (other escapes kept as written).
    fn quoted(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unterminated quoted string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => return Err("unterminated escape in quoted string".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// The next whitespace-separated token (possibly empty).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| c != ' ' && c != '\t') {
            // By the char's length: a value like `1é` must not leave `pos` inside a char.
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut cur = Cursor { s: line, pos: 0 };
    let mut name = cur.identifier().to_string();
    let mut labels = Vec::new();
    cur.skip_ws();
    if cur.peek() == Some('{') {
        cur.bump();
        loop {
            cur.skip_ws();
            match cur.peek() {
                Some('}') => {
                    cur.bump();
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let quoted_key = cur.peek() == Some('"');
            let key = if quoted_key {
                cur.quoted()?
            } else {
                cur.identifier().to_string()
            };
            cur.skip_ws();
            if quoted_key && name.is_empty() && matches!(cur.peek(), Some(',') | Some('}')) {
                // UTF-8 form: `{"metric.name", label="v"}`.
                name = key;
            } else {
                if key.is_empty() {
                    return Err(format!("expected a label name at column {}", cur.pos));
                }
                cur.expect('=')?;
                cur.skip_ws();
                let value = cur.quoted()?;
                labels.push((key, value));
                cur.skip_ws();
            }
            match cur.bump() {
                Some(',') => {}
                Some('}') => break,
                Some(c) => return Err(format!("expected ',' or '}}' in labels, found {c:?}")),
                None => return Err("unterminated label set".into()),
            }
        }
    }
    if name.is_empty() {
        return Err("expected a metric name".into());
    }
    cur.skip_ws();
    let value_text = cur.token();
    if value_text.is_empty() {
        return Err(format!("missing value for {name}"));
    }
    let value = parse_value(value_text)
        .ok_or_else(|| format!("invalid value {value_text:?} for {name}"))?;
    cur.skip_ws();
    let mut timestamp = None;
    let ts = cur.token();
    if !ts.is_empty() && !ts.starts_with('#') {
        timestamp = Some(
            ts.parse::<f64>()
                .map_err(|_| format!("invalid timestamp {ts:?} for {name}"))?,
        );
        cur.skip_ws();
        let rest = cur.token();
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(format!("unexpected text {rest:?} after the timestamp"));
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

/// An `le` bound: `"1"` and `"1.0"` are the same bound, `"+Inf"` is infinity; NaN is rejected.
pub(crate) fn parse_le(text: &str) -> Option<f64> {
    parse_value(text).filter(|v| !v.is_nan())
}

/// Go's `ParseFloat` spellings: decimals, exponents, `NaN`, `+Inf`, `-Inf`, `Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER_LOAD: &str = include_str!("fixtures/metrics_after_load.txt");

    fn find<'a>(families: &'a [MetricFamily], name: &str) -> &'a MetricFamily {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("family {name} not parsed"))
    }

    #[test]
    fn parses_the_real_vllm_capture() {
        let families = parse_exposition(AFTER_LOAD).expect("real capture parses");
        let e2e = find(&families, "vllm:e2e_request_latency_seconds");
        assert_eq!(e2e.kind, MetricKind::Histogram);
        assert_eq!(
            e2e.help.as_deref(),
            Some("Histogram of e2e request latency in seconds.")
        );
        // 21 finite bounds + +Inf, plus _count and _sum.
        let buckets: Vec<_> = e2e
            .samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .collect();
        assert_eq!(buckets.len(), 22);
        assert_eq!(buckets[21].label("le"), Some("+Inf"));
        assert_eq!(buckets[21].value, 168.0);
        assert_eq!(buckets[21].label("model_name"), Some("tiny-base"));
        let count = e2e
            .samples
            .iter()
            .find(|s| s.name.ends_with("_count"))
            .unwrap();
        assert_eq!(count.value, 168.0);

        let success = find(&families, "vllm:request_success_total");
        assert_eq!(success.kind, MetricKind::Counter);
        let length = success
            .samples
            .iter()
            .find(|s| s.label("finished_reason") == Some("length"))
            .unwrap();
        assert_eq!(length.value, 168.0);
        assert_eq!(success.samples.len(), 5);

        // Exponent values parse.
        let vmem = find(&families, "process_virtual_memory_bytes");
        assert_eq!(vmem.samples[0].value, 4.863197184e9);
        // `_created` series are dropped entirely.
        assert!(families.iter().all(|f| !f.name.ends_with("_created")));
        assert!(
            families
                .iter()
                .flat_map(|f| &f.samples)
                .all(|s| !s.name.ends_with("_created"))
        );
        // A histogram whose family name ends in _total keeps its buckets.
        let it = find(&families, "vllm:iteration_tokens_total");
        assert_eq!(it.kind, MetricKind::Histogram);
        assert!(
            it.samples
                .iter()
                .any(|s| s.name == "vllm:iteration_tokens_total_bucket")
        );
    }

    #[test]
    fn label_escapes_special_values_and_timestamps() {
        let text = "# HELP odd A \\\\ backslash\\nand newline\n\
                    # TYPE odd gauge\n\
                    odd{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",} NaN\n\
                    odd{path=\"x\"} +Inf 1700000000000\n\
                    odd -Inf\n\
                    odd{path=\"y\"} 1.5e-3 # {trace_id=\"abc\"} 1.0\n";
        let families = parse_exposition(text).unwrap();
        assert_eq!(families.len(), 1);
        let f = &families[0];
        assert_eq!(f.help.as_deref(), Some("A \\ backslash\nand newline"));
        assert_eq!(f.samples.len(), 4);
        let s = &f.samples[0];
        assert_eq!(s.label("path"), Some("C:\\dir"));
        assert_eq!(s.label("quote"), Some("say \"hi\""));
        assert_eq!(s.label("nl"), Some("a\nb"));
        assert!(s.value.is_nan());
        assert_eq!(f.samples[1].value, f64::INFINITY);
        assert_eq!(f.samples[1].timestamp, Some(1.7e12));
        assert_eq!(f.samples[2].value, f64::NEG_INFINITY);
        assert!(f.samples[2].labels.is_empty());
        assert_eq!(f.samples[3].value, 0.0015);
        assert_eq!(f.samples[3].timestamp, None);
    }

    #[test]
    fn le_spellings_and_untyped_series() {
        let text = "h_bucket{le=\"1\"} 2\nh_bucket{le=\"1.0\"} 3\nplain_metric 7\n";
        let families = parse_exposition(text).unwrap();
        // No TYPE lines: each series name is its own untyped family.
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].kind, MetricKind::Untyped);
        let les: Vec<f64> = families[0]
            .samples
            .iter()
            .map(|s| parse_value(s.label("le").unwrap()).unwrap())
            .collect();
        assert_eq!(les, vec![1.0, 1.0]);
        assert_eq!(families[1].samples[0].value, 7.0);
    }

    #[test]
    fn quoted_utf8_metric_name() {
        let families = parse_exposition("{\"my.metric\", \"some label\"=\"v\"} 1\n").unwrap();
        assert_eq!(families[0].name, "my.metric");
        assert_eq!(families[0].samples[0].label("some label"), Some("v"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_exposition("# TYPE a gauge\na 1\na{x=\"1} 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unterminated"), "{e}");
        let e = parse_exposition("a notanumber\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: invalid value \"notanumber\" for a");
        let e = parse_exposition("a{x=\"1\"}\n").unwrap_err();
        assert!(e.message.contains("missing value"), "{e}");
        let e = parse_exposition("a 1 2 3\n").unwrap_err();
        assert!(e.message.contains("after the timestamp"), "{e}");
    }

    #[test]
    fn a_non_ascii_value_or_timestamp_is_an_error_not_a_panic() {
        // The token scanner stepped one byte at a time and sliced inside `é`: a panic.
        let e = parse_exposition("a 1é\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: invalid value \"1é\" for a");
        let e = parse_exposition("a é\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_exposition("a 1 2€ x\n").unwrap_err();
        assert!(e.message.contains("invalid timestamp \"2€\""), "{e}");
    }
}
