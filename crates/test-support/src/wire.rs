//! What servers send, read the plain way for tests: SSE bodies, Prometheus text exposition,
//! JSON shapes, captured fixtures. Deliberately independent of the library's own parsers, so a
//! test of vLLM-compatibility does not check the code with itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// The text of `<dir>/<name>`; see [`crate::fixture!`] for a test crate's `tests/fixtures`.
pub fn read_fixture(dir: &str, name: &str) -> String {
    let path = PathBuf::from(dir).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The first line of a fixture text that starts with `{` (the JSON body of a capture).
pub fn json_line(text: &str) -> Value {
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {text:?}"));
    serde_json::from_str(line).expect("fixture JSON")
}

/// Splits an SSE body into its `data:` payloads, checking vLLM's framing on the way:
/// every event is exactly one `data: ...` line followed by a blank line.
pub fn sse_payloads(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "body must end with a blank line: {body:?}"
    );
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|event| {
            assert!(!event.contains('\n'), "one line per event: {event:?}");
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// Parsed JSON events of an SSE body, without the final `[DONE]` (asserted present).
pub fn sse_json_done(body: &str) -> Vec<Value> {
    let mut payloads = sse_payloads(body);
    assert_eq!(payloads.pop().as_deref(), Some("[DONE]"), "[DONE] last");
    payloads
        .iter()
        .map(|p| serde_json::from_str(p).expect("event JSON"))
        .collect()
}

/// Every key path of a JSON value (`choices[].delta.content`), arrays merged.
pub fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// One sample line of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sample name (`vllm:e2e_request_latency_seconds_bucket`).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value (`+Inf`/`-Inf` as infinities).
    pub value: f64,
}

/// Parses the sample lines of an exposition (comments skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("name and value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("closing brace");
            (name.to_owned(), parse_labels(body))
        }
    };
    Sample {
        name,
        labels,
        value,
    }
}

fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "quoted label value");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next().expect("escaped char")),
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// `# TYPE` of every family: name -> type.
pub fn metric_types(text: &str) -> BTreeMap<String, String> {
    comment_lines(text, "# TYPE ")
}

/// `# HELP` of every family: name -> help text.
pub fn metric_helps(text: &str) -> BTreeMap<String, String> {
    comment_lines(text, "# HELP ")
}

fn comment_lines(text: &str, prefix: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, rest)| (n.to_owned(), rest.to_owned()))
        .collect()
}

/// The family a sample belongs to, given the declared family names.
pub fn family_of<'a>(sample: &str, families: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some((name, _)) = families.get_key_value(sample) {
        return Some(name);
    }
    ["_bucket", "_count", "_sum"]
        .iter()
        .filter_map(|s| sample.strip_suffix(s))
        .find_map(|base| families.get_key_value(base).map(|(n, _)| n.as_str()))
}

/// The value of the sample `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The `le` bounds of a histogram, as numbers, in order.
pub fn bucket_bounds(samples: &[Sample], family: &str) -> Vec<f64> {
    let bucket = format!("{family}_bucket");
    samples
        .iter()
        .filter(|s| s.name == bucket)
        .map(|s| match s.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("numeric le"),
        })
        .collect()
}

/// A plain reqwest client with a bounded timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

/// POSTs `body` to `url` and returns (status, content-type, text).
pub async fn post(url: &str, body: &Value) -> (u16, String, String) {
    let resp = client().post(url).json(body).send().await.expect("send");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, resp.text().await.expect("body"))
}

/// GETs `url` and returns its text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body")
}
