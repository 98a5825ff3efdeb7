//! Prompt sources: the eval JSONL file (the seed's `prompt_inference` field, also `prompt`, `text`,
//! `messages`), its digest, and the request bodies prepared from it before the load starts.
//!
//! Bodies are serialized once, up front, so the hot path only clones a reference-counted buffer.
//!
//! The other input sources are submodules: [`prompt_file`] (`--prompt-file`), [`synthetic`]
//! (prompts of a target token length), [`mix`] (`--task-mix`), [`distribution`] (the size
//! specs of `--input-size` and `--max-tokens`), and [`plan`] (which prompt, size and
//! temperature each request gets, seeded).

pub mod distribution;
pub mod mix;
pub mod plan;
pub mod prompt_file;
pub mod synthetic;

use std::path::Path;

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::Api;

/// Fields tried in order when `--prompt-field` is not given.
pub const DEFAULT_PROMPT_FIELDS: [&str; 4] = ["prompt_inference", "prompt", "text", "messages"];

/// One prompt from the eval file.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A plain text prompt (sent to `/v1/completions` unless the endpoint is `chat`).
    Text(String),
    /// OpenAI chat messages (always sent to `/v1/chat/completions`).
    Messages(Vec<Value>),
}

/// Errors reading the eval file. Each names the file, and the line where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// `--api llamacpp` sends text to `/completion`: a prompt made of chat messages has no
    /// place in it.
    #[error(
        "prompt {index} holds chat messages, but --api llamacpp sends text prompts to POST /completion (give a text prompt field, or use --api openai against llama-server's /v1/chat/completions)"
    )]
    MessagesForLlamacpp {
        /// 1-based index of the prompt (blank lines skipped).
        index: usize,
    },
    /// The file cannot be opened or read.
    #[error("eval file {path}: cannot read it")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no prompt.
    #[error("eval file {path}: no prompts (the file is empty or holds only blank lines)")]
    Empty {
        /// File path.
        path: String,
    },
    /// A line is not valid UTF-8 (JSON text must be UTF-8; nothing is replaced or guessed).
    #[error("eval file {path}, line {line}: not valid UTF-8 (byte {column} of the line)")]
    NotUtf8 {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// 1-based byte offset of the first invalid byte within its line.
        column: usize,
    },
    /// A line is not a JSON object.
    #[error("eval file {path}, line {line}: not valid JSON ({message})")]
    NotJson {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// serde_json's message.
        message: String,
    },
    /// A line lacks the prompt field, or the field has the wrong type.
    #[error("eval file {path}, line {line}: {message}")]
    Field {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The `--prompt-file` cannot be used.
    #[error(transparent)]
    PromptFile(#[from] prompt_file::PromptFileError),
    /// The `--tokenizer-file` cannot be used.
    #[error(transparent)]
    TokenizerFile(#[from] synthetic::TokenizerFileError),
}

/// The prompts of an eval file and its identity.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// Prompts in file order.
    pub prompts: Vec<Prompt>,
    /// Full sha256 of the file bytes, lowercase hex.
    pub sha256: String,
}

impl EvalData {
    /// First 8 hex characters of the sha256 (as MLflow shows dataset digests).
    pub fn digest(&self) -> &str {
        &self.sha256[..8]
    }
}

/// Reads an eval JSONL file. Blank lines are skipped; any other line must be a JSON object with
/// the prompt in `field` (or the first of [`DEFAULT_PROMPT_FIELDS`] present).
pub fn load_eval_file(path: &Path, field: Option<&str>) -> Result<EvalData, WorkloadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| WorkloadError::Read {
        path: shown.clone(),
        source,
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let prompts = parse_jsonl_bytes(&bytes, field, &shown)?;
    Ok(EvalData { prompts, sha256 })
}

/// Parses the bytes of an eval file (see [`load_eval_file`]): refuses invalid UTF-8 with the
/// line it is on, then parses the text with [`parse_jsonl`]. Borrows the bytes: the file's
/// bytes and its prompts are the only large allocations.
pub fn parse_jsonl_bytes(
    bytes: &[u8],
    field: Option<&str>,
    shown: &str,
) -> Result<Vec<Prompt>, WorkloadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |nl| nl + 1);
        WorkloadError::NotUtf8 {
            path: shown.to_string(),
            line: memchr::memchr_iter(b'\n', &bytes[..at]).count() + 1,
            column: at - line_start + 1,
        }
    })?;
    parse_jsonl(text, field, shown)
}

/// Parses JSONL text (see [`load_eval_file`]); `shown` names the source in errors.
pub fn parse_jsonl(
    text: &str,
    field: Option<&str>,
    shown: &str,
) -> Result<Vec<Prompt>, WorkloadError> {
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|e| WorkloadError::NotJson {
            path: shown.to_string(),
            line: line_no,
            message: e.to_string(),
        })?;
        let field_err = |message: String| WorkloadError::Field {
            path: shown.to_string(),
            line: line_no,
            message,
        };
        let Value::Object(obj) = &value else {
            return Err(field_err(format!(
                "expected a JSON object, found {}",
                kind_of(&value)
            )));
        };
        let (name, raw) = match field {
            Some(f) => match obj.get(f) {
                Some(v) => (f, v),
                None => {
                    return Err(field_err(format!(
                        "missing field `{f}` (set by --prompt-field)"
                    )));
                }
            },
            None => match DEFAULT_PROMPT_FIELDS
                .iter()
                .find_map(|f| obj.get(*f).map(|v| (*f, v)))
            {
                Some(found) => found,
                None => {
                    return Err(field_err(format!(
                        "no prompt field: expected one of {} (or choose one with --prompt-field)",
                        DEFAULT_PROMPT_FIELDS.map(|f| format!("`{f}`")).join(", ")
                    )));
                }
            },
        };
        prompts.push(prompt_from_value(name, raw).map_err(field_err)?);
    }
    if prompts.is_empty() {
        return Err(WorkloadError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(prompts)
}

pub(crate) fn prompt_from_value(name: &str, raw: &Value) -> Result<Prompt, String> {
    match raw {
        Value::String(s) if s.is_empty() => Err(format!("field `{name}` is an empty string")),
        Value::String(s) => Ok(Prompt::Text(s.clone())),
        Value::Array(items) if name == "messages" || looks_like_messages(items) => {
            if items.is_empty() {
                return Err(format!("field `{name}` is an empty list of messages"));
            }
            for (i, m) in items.iter().enumerate() {
                if m.get("role").and_then(Value::as_str).is_none() {
                    return Err(format!("field `{name}`: message {i} has no string `role`"));
                }
            }
            Ok(Prompt::Messages(items.clone()))
        }
        other => Err(format!(
            "field `{name}` must be a string{}, found {}",
            if name == "messages" {
                " or a list of chat messages"
            } else {
                ""
            },
            kind_of(other)
        )),
    }
}

fn looks_like_messages(items: &[Value]) -> bool {
    items.first().and_then(|m| m.get("role")).is_some()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Which OpenAI endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/chat/completions`.
    Chat,
}

impl Endpoint {
    /// Path below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }
}

/// The `--endpoint` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointChoice {
    /// Completions for text rows, chat for rows that carry `messages` (default).
    #[default]
    Auto,
    /// Completions for text rows (rows with `messages` still go to chat).
    Completions,
    /// Chat for every row (text becomes one user message).
    Chat,
}

impl EndpointChoice {
    /// The name used in flags and results.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointChoice::Auto => "auto",
            EndpointChoice::Completions => "completions",
            EndpointChoice::Chat => "chat",
        }
    }
}

/// Sampling parameters common to every request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// `max_tokens`.
    pub max_tokens: u32,
    /// `temperature`.
    pub temperature: f64,
}

/// Which adapter of a same-server A/B run (`--baseline-adapter`) a request goes to. One byte
/// per request; `requests.jsonl` writes it as `"arm": "candidate"` or `"baseline"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The adapter under test (`--adapter-name`).
    Candidate,
    /// The adapter it is compared with (`--baseline-adapter`).
    Baseline,
}

/// A GET task of `--task-mix` (seed 003's health check and model list): sent in the load's
/// stream, recorded in `requests.jsonl` with its `probe`, counted apart (`probes` in the
/// results), never in the generation figures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// `GET /health`.
    Health,
    /// `GET /v1/models`.
    Models,
}

impl Probe {
    /// The path it GETs.
    pub fn path(self) -> &'static str {
        match self {
            Probe::Health => "/health",
            Probe::Models => "/v1/models",
        }
    }

    /// The task's name (`health`, `models`).
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Health => "health",
            Probe::Models => "models",
        }
    }

    /// A request of this probe (no body) in the load's list.
    pub fn request(self) -> PreparedRequest {
        PreparedRequest {
            prompt_index: 0,
            arm: None,
            endpoint: Endpoint::Completions,
            body: Bytes::new(),
            probe: Some(self),
        }
    }
}

/// A request ready to send: endpoint and serialized body.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// Index of the prompt in the eval file (0-based, blank lines skipped).
    pub prompt_index: u32,
    /// The A/B arm it belongs to; `None` outside an A/B run.
    pub arm: Option<Arm>,
    /// Endpoint.
    pub endpoint: Endpoint,
    /// JSON body (streaming with usage).
    pub body: Bytes,
    /// A GET task instead of a generation (`endpoint` and `body` unused).
    pub probe: Option<Probe>,
}

/// Builds the streaming request body for each prompt in `api`'s form. OpenAI (vLLM): `model`,
/// the prompt or messages, `max_tokens`, `temperature`, `stream: true`,
/// `stream_options.include_usage: true`. llama.cpp: `prompt`, `model`, `n_predict`,
/// `temperature`, `stream: true`.
pub fn prepare_requests(
    api: Api,
    prompts: &[Prompt],
    model: &str,
    choice: EndpointChoice,
    sampling: Sampling,
) -> Vec<PreparedRequest> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (endpoint, body) = request_body(
                api,
                p,
                model,
                choice,
                sampling.max_tokens,
                sampling.temperature,
                false,
            );
            PreparedRequest {
                probe: None,
                prompt_index: u32::try_from(i).unwrap_or(u32::MAX),
                arm: None,
                endpoint,
                body,
            }
        })
        .collect()
}

/// One request's endpoint and serialized streaming body. OpenAI (vLLM): `model`, the prompt
/// or messages, `max_tokens`, `temperature`, `stream: true`,
/// `stream_options.include_usage: true`. llama.cpp: `prompt`, `n_predict`, `temperature`,
/// `stream: true` (its last chunk carries the token counts), and `model` (which a
/// single-model `llama-server` ignores). With `ignore_eos`, `"ignore_eos": true` too (both
/// servers take it).
pub(crate) fn request_body(
    api: Api,
    p: &Prompt,
    model: &str,
    choice: EndpointChoice,
    max_tokens: u32,
    temperature: f64,
    ignore_eos: bool,
) -> (Endpoint, Bytes) {
    if api == Api::Llamacpp {
        return (
            Endpoint::Completions,
            llamacpp_body(p, model, max_tokens, temperature, ignore_eos),
        );
    }
    let (endpoint, mut body) = match (p, choice) {
        (Prompt::Text(t), EndpointChoice::Chat) => (
            Endpoint::Chat,
            json!({"messages": [{"role": "user", "content": t}]}),
        ),
        (Prompt::Text(t), _) => (Endpoint::Completions, json!({"prompt": t})),
        (Prompt::Messages(m), _) => (Endpoint::Chat, json!({"messages": m})),
    };
    let obj = body
        .as_object_mut()
        .expect("invariant: body built as an object above");
    obj.insert("model".into(), json!(model));
    obj.insert("max_tokens".into(), json!(max_tokens));
    obj.insert("temperature".into(), json!(temperature));
    if ignore_eos {
        obj.insert("ignore_eos".into(), json!(true));
    }
    obj.insert("stream".into(), json!(true));
    obj.insert("stream_options".into(), json!({"include_usage": true}));
    (
        endpoint,
        Bytes::from(serde_json::to_vec(&body).expect("invariant: JSON values serialize")),
    )
}

/// llama.cpp's `/completion` body (see [`request_body`]). Chat messages are refused before
/// the load ([`check_prompts_for`]); should one reach here, its contents are sent as one text.
fn llamacpp_body(
    p: &Prompt,
    model: &str,
    max_tokens: u32,
    temperature: f64,
    ignore_eos: bool,
) -> Bytes {
    let prompt = match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Messages(m) => m
            .iter()
            .filter_map(|msg| msg.get("content").and_then(|c| c.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let mut body = json!({
        "prompt": prompt,
        "model": model,
        "n_predict": max_tokens,
        "temperature": temperature,
        "stream": true,
    });
    if ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    Bytes::from(serde_json::to_vec(&body).expect("invariant: JSON values serialize"))
}

/// Refuses prompts `api` cannot send: chat messages for llama.cpp's `/completion`.
pub fn check_prompts_for(api: Api, prompts: &[Prompt]) -> Result<(), WorkloadError> {
    if api != Api::Llamacpp {
        return Ok(());
    }
    match prompts
        .iter()
        .position(|p| matches!(p, Prompt::Messages(_)))
    {
        Some(i) => Err(WorkloadError::MessagesForLlamacpp { index: i + 1 }),
        None => Ok(()),
    }
}

/// The dispatch list of a same-server A/B run: each candidate request followed or preceded by
/// its baseline twin (same prompt, same body but for `model`), the pairs counterbalanced:
/// pair 0 is candidate then baseline (AB), pair 1 baseline then candidate (BA), then AB, BA...
/// so neither arm is always sent first (a position effect, such as a slot freed by the other
/// arm's request, falls on both alike). `baseline[i]` must be the twin of `candidate[i]`.
pub fn interleave_ab(
    candidate: Vec<PreparedRequest>,
    baseline: Vec<PreparedRequest>,
) -> Vec<PreparedRequest> {
    debug_assert_eq!(candidate.len(), baseline.len());
    let mut out = Vec::with_capacity(candidate.len() * 2);
    for (pair, (mut a, mut b)) in candidate.into_iter().zip(baseline).enumerate() {
        a.arm = Some(Arm::Candidate);
        b.arm = Some(Arm::Baseline);
        if pair % 2 == 0 {
            out.extend([a, b]);
        } else {
            out.extend([b, a]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_pairs_share_a_prompt_and_alternate_which_arm_goes_first() {
        let prompts: Vec<Prompt> = (0..3).map(|i| Prompt::Text(format!("p{i}"))).collect();
        let sampling = Sampling {
            max_tokens: 8,
            temperature: 0.0,
        };
        let a = prepare_requests(
            Api::Openai,
            &prompts,
            "cand",
            EndpointChoice::Auto,
            sampling,
        );
        let b = prepare_requests(
            Api::Openai,
            &prompts,
            "base",
            EndpointChoice::Auto,
            sampling,
        );
        let list = interleave_ab(a, b);
        let arms: Vec<Arm> = list.iter().map(|r| r.arm.unwrap()).collect();
        use Arm::{Baseline as B, Candidate as C};
        assert_eq!(arms, [C, B, B, C, C, B]);
        let idx: Vec<u32> = list.iter().map(|r| r.prompt_index).collect();
        assert_eq!(idx, [0, 0, 1, 1, 2, 2]);
        // the twins differ only in `model`
        for pair in list.chunks(2) {
            let mut x: Value = serde_json::from_slice(&pair[0].body).unwrap();
            let mut y: Value = serde_json::from_slice(&pair[1].body).unwrap();
            let (mx, my) = (x["model"].take(), y["model"].take());
            assert_ne!(mx, my);
            assert_eq!(x, y);
        }
    }

    fn err_text(text: &str, field: Option<&str>) -> String {
        parse_jsonl(text, field, "eval.jsonl")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_seed_field_then_fallbacks_and_skips_blank_lines() {
        let text = "{\"prompt_inference\": \"a\", \"prompt\": \"ignored\"}\n\n{\"prompt\": \"b\"}\n{\"text\": \"c\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"d\"}]}\n";
        let p = parse_jsonl(text, None, "f").unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], Prompt::Text("a".into()));
        assert_eq!(p[1], Prompt::Text("b".into()));
        assert_eq!(p[2], Prompt::Text("c".into()));
        assert!(matches!(&p[3], Prompt::Messages(m) if m.len() == 1));
    }

    #[test]
    fn forced_field_is_used_and_its_absence_named() {
        let text = "{\"question\": \"q\", \"prompt\": \"p\"}\n";
        assert_eq!(
            parse_jsonl(text, Some("question"), "f").unwrap(),
            vec![Prompt::Text("q".into())]
        );
        assert_eq!(
            err_text("{\"prompt\": \"p\"}", Some("question")),
            "eval file eval.jsonl, line 1: missing field `question` (set by --prompt-field)"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = err_text("{\"prompt\": \"ok\"}\n\n{not json}\n", None);
        assert!(
            e.starts_with("eval file eval.jsonl, line 3: not valid JSON"),
            "{e}"
        );
        let e = err_text("{\"prompt\": \"ok\"}\n{\"answer\": \"x\"}\n", None);
        assert!(
            e.starts_with("eval file eval.jsonl, line 2: no prompt field"),
            "{e}"
        );
        let e = err_text("{\"prompt\": 5}\n", None);
        assert_eq!(
            e,
            "eval file eval.jsonl, line 1: field `prompt` must be a string, found a number"
        );
        let e = err_text("[1,2]\n", None);
        assert!(
            e.contains("line 1: expected a JSON object, found an array"),
            "{e}"
        );
        let e = err_text("{\"messages\": [{\"content\": \"x\"}]}", None);
        assert!(e.contains("message 0 has no string `role`"), "{e}");
    }

    #[test]
    fn empty_file_is_an_error() {
        assert_eq!(
            err_text("\n  \n", None),
            "eval file eval.jsonl: no prompts (the file is empty or holds only blank lines)"
        );
    }

    #[test]
    fn invalid_utf8_is_refused_with_file_line_and_byte_and_exits_2() {
        use crate::loadtest::LoadTestError;
        use crate::step::StepFailure;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eval.jsonl");
        // Line 3 holds a Latin-1 `é` (0xE9) inside the prompt: it used to become U+FFFD.
        std::fs::write(&p, b"{\"prompt\": \"a\"}\n\n{\"prompt\": \"caf\xE9\"}\n").unwrap();
        let e = load_eval_file(&p, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "eval file {}, line 3: not valid UTF-8 (byte 16 of the line)",
                p.display()
            )
        );
        assert_eq!(LoadTestError::from(e).exit().code(), 2);
        // On the first line, and a truncated multi-byte char at the very end.
        let e = parse_jsonl_bytes(b"\xFF{}", None, "e").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("eval file e, line 1: not valid UTF-8 (byte 1")
        );
        let e = parse_jsonl_bytes(b"{\"prompt\": \"a\"}\n\xC3", None, "e").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("eval file e, line 2: not valid UTF-8 (byte 1")
        );
    }

    #[test]
    fn empty_files_blank_lines_crlf_and_a_10_mb_line() {
        assert!(matches!(
            parse_jsonl_bytes(b"", None, "e"),
            Err(WorkloadError::Empty { .. })
        ));
        let p = parse_jsonl_bytes(b"\r\n  \n{\"prompt\": \"a\"}\r\n\t\n", None, "e").unwrap();
        assert_eq!(p, vec![Prompt::Text("a".into())]);
        let long = "x".repeat(10 << 20);
        let file = format!("{{\"prompt\": \"{long}\"}}\n{{\"prompt\": \"b\"}}\n");
        let p = parse_jsonl_bytes(file.as_bytes(), None, "e").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], Prompt::Text(long));
        assert_eq!(p[1], Prompt::Text("b".into()));
    }

    #[test]
    fn digest_is_first_eight_hex_of_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(&p, "{\"prompt\": \"hi\"}\n").unwrap();
        let d = load_eval_file(&p, None).unwrap();
        // sha256 of the exact bytes above, computed independently with `sha256sum`.
        assert_eq!(
            d.sha256,
            "935e0aa175d6592d89e1692ceaa4a911714ef4a1edc9980274fb9dfc00086c7b"
        );
        assert_eq!(d.digest(), "935e0aa1");
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let missing = load_eval_file(&dir.path().join("nope.jsonl"), None).unwrap_err();
        assert!(missing.to_string().contains("nope.jsonl: cannot read it"));
    }

    #[test]
    fn a_llamacpp_body_asks_n_predict_of_slash_completion_and_chat_rows_are_refused() {
        let prompts = vec![Prompt::Text("hello".into())];
        let s = Sampling {
            max_tokens: 7,
            temperature: 0.5,
        };
        let reqs = prepare_requests(Api::Llamacpp, &prompts, "tiny", EndpointChoice::Auto, s);
        let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(
            body,
            json!({"prompt": "hello", "model": "tiny", "n_predict": 7, "temperature": 0.5, "stream": true})
        );
        assert_eq!(
            Api::Llamacpp.generation_path(reqs[0].endpoint),
            "/completion"
        );
        let (_, eos) = request_body(
            Api::Llamacpp,
            &prompts[0],
            "tiny",
            EndpointChoice::Auto,
            3,
            0.0,
            true,
        );
        let eos: Value = serde_json::from_slice(&eos).unwrap();
        assert_eq!(eos["ignore_eos"], true);
        let chat = vec![
            Prompt::Text("a".into()),
            Prompt::Messages(vec![json!({"role": "user", "content": "hi"})]),
        ];
        assert!(check_prompts_for(Api::Openai, &chat).is_ok());
        let e = check_prompts_for(Api::Llamacpp, &chat).unwrap_err();
        assert!(
            e.to_string().starts_with("prompt 2 holds chat messages"),
            "{e}"
        );
    }

    #[test]
    fn request_bodies_stream_with_usage_and_pick_endpoint() {
        let prompts = vec![
            Prompt::Text("hello".into()),
            Prompt::Messages(vec![json!({"role": "user", "content": "hi"})]),
        ];
        let s = Sampling {
            max_tokens: 64,
            temperature: 0.0,
        };
        let reqs = prepare_requests(Api::Openai, &prompts, "cand", EndpointChoice::Auto, s);
        assert_eq!(reqs[0].endpoint, Endpoint::Completions);
        assert_eq!(reqs[1].endpoint, Endpoint::Chat);
        let b0: Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(b0["prompt"], "hello");
        assert_eq!(b0["model"], "cand");
        assert_eq!(b0["max_tokens"], 64);
        assert_eq!(b0["stream"], true);
        assert_eq!(b0["stream_options"]["include_usage"], true);
        let chat = prepare_requests(Api::Openai, &prompts[..1], "cand", EndpointChoice::Chat, s);
        let b: Value = serde_json::from_slice(&chat[0].body).unwrap();
        assert_eq!(chat[0].endpoint, Endpoint::Chat);
        assert_eq!(b["messages"][0]["content"], "hello");
    }
}
