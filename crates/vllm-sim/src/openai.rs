//! OpenAI-compatible request bodies and vLLM's error bodies.
//!
//! Validation follows vLLM's order and answers with its exact error JSON
//! (`{"error":{"message","type","param","code"}}`, `application/json`, never SSE):
//! 1. malformed JSON → 400 `"type":"Bad Request"`, `"param":"body.<pos>"` (pydantic's
//!    `json_invalid`); a body of the wrong shape (missing `prompt`, wrong types) → 400 with a
//!    pydantic-like message (approximate text);
//! 2. unknown `model` → 404 `NotFoundError` listing only the base alias (no `model` field
//!    means the base model, as in vLLM);
//! 3. `max_tokens` (or chat's `max_completion_tokens`) < 1 or > `max_model_len` → 400
//!    `BadRequestError`, `"param":"max_tokens"`; prompt + `max_tokens` over the context →
//!    400 (approximate text).
//!
//! `max_tokens` defaults to 16 for both endpoints (the real chat endpoint would fill the
//! context instead). Unknown fields (`temperature`, `stop`, ...) are accepted and ignored.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::models::{ModelRef, Models};
use crate::tokens;

/// Default `max_tokens` when the request has none.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 16;

/// Which generation endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    Chat,
}

/// A validated generation request.
#[derive(Debug, Clone)]
pub(crate) struct GenRequest {
    pub(crate) model: ModelRef,
    pub(crate) prompt_tokens: u32,
    pub(crate) max_tokens: u32,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// Usage on every chunk: vLLM requires `include_usage` too.
    pub(crate) continuous_usage: bool,
    pub(crate) ignore_eos: bool,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    continuous_usage_stats: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: Option<String>,
    prompt: Value,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    ignore_eos: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    ignore_eos: Option<bool>,
}

/// An error answered with vLLM's JSON error body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) kind: &'static str,
    pub(crate) param: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: u16,
}

impl ApiError {
    fn bad_request(message: String, kind: &'static str, param: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            kind,
            param: Some(param.into()),
        }
    }

    /// The 500 answered for `--error-rate`.
    pub(crate) fn injected() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Simulated engine failure (vllm-sim --error-rate).".to_owned(),
            kind: "InternalServerError",
            param: None,
        }
    }

    /// The body as JSON text.
    pub(crate) fn body(&self) -> String {
        let body = ErrorBody {
            error: ErrorInner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.status.as_u16(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

/// Parses and validates a body sent to `endpoint`.
pub(crate) fn parse(
    endpoint: Endpoint,
    body: &[u8],
    models: &Models,
    max_model_len: u32,
) -> Result<GenRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| json_invalid(body, &e))?;
    let (model, prompt_tokens, max_tokens, stream, options, ignore_eos) = match endpoint {
        Endpoint::Completions => {
            let b: CompletionBody = serde_json::from_value(value).map_err(validation)?;
            let prompt_tokens = completion_prompt(&b.prompt)?;
            (
                b.model,
                prompt_tokens,
                b.max_tokens,
                b.stream,
                b.stream_options,
                b.ignore_eos,
            )
        }
        Endpoint::Chat => {
            let b: ChatBody = serde_json::from_value(value).map_err(validation)?;
            let texts: Vec<String> = b
                .messages
                .iter()
                .map(|m| content_text(m.content.as_ref()))
                .collect();
            let prompt_tokens = tokens::chat_prompt_tokens(texts.iter().map(String::as_str));
            (
                b.model,
                prompt_tokens,
                b.max_completion_tokens.or(b.max_tokens),
                b.stream,
                b.stream_options,
                b.ignore_eos,
            )
        }
    };
    let model = models
        .resolve(model.as_deref())
        .ok_or_else(|| not_found(model.as_deref().unwrap_or_default(), models))?
        .clone();
    let max_tokens = check_max_tokens(max_tokens, prompt_tokens, max_model_len)?;
    let options = options.unwrap_or_default();
    let include_usage = options.include_usage.unwrap_or(false);
    Ok(GenRequest {
        model,
        prompt_tokens,
        max_tokens,
        stream: stream.unwrap_or(false),
        include_usage,
        continuous_usage: include_usage && options.continuous_usage_stats.unwrap_or(false),
        ignore_eos: ignore_eos.unwrap_or(false),
    })
}

pub(crate) fn not_found(name: &str, models: &Models) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "The model `{name}` does not exist. Valid aliases: {}.",
            models.base().name
        ),
        kind: "NotFoundError",
        param: Some("model".to_owned()),
    }
}

fn check_max_tokens(requested: Option<i64>, prompt: u32, max_len: u32) -> Result<u32, ApiError> {
    let value = requested.unwrap_or(i64::from(DEFAULT_MAX_TOKENS));
    if value < 1 {
        return Err(ApiError::bad_request(
            format!(
                "max_tokens must be at least 1, got {value}. (parameter=max_tokens, value={value})"
            ),
            "BadRequestError",
            "max_tokens",
        ));
    }
    if value > i64::from(max_len) {
        return Err(ApiError::bad_request(
            format!(
                "max_tokens={value} cannot be greater than max_model_len={max_len}. Please request fewer output tokens. (parameter=max_tokens, value={value})"
            ),
            "BadRequestError",
            "max_tokens",
        ));
    }
    // value is in 1..=max_len here.
    let max_tokens = u32::try_from(value).unwrap_or(max_len);
    if u64::from(prompt) + u64::from(max_tokens) > u64::from(max_len) {
        return Err(ApiError::bad_request(
            format!(
                "This model's maximum context length is {max_len} tokens. However, you requested {} tokens ({prompt} in the messages, {max_tokens} in the completion). Please reduce the length of the messages or completion. (parameter=max_tokens, value={max_tokens})",
                u64::from(prompt) + u64::from(max_tokens)
            ),
            "BadRequestError",
            "max_tokens",
        ));
    }
    Ok(max_tokens)
}

/// Prompt tokens of a completions `prompt`: a string, strings (first one), token ids.
pub(crate) fn completion_prompt(prompt: &Value) -> Result<u32, ApiError> {
    let len = |v: &[Value]| u32::try_from(v.len()).unwrap_or(u32::MAX);
    match prompt {
        Value::String(s) => Ok(tokens::completion_prompt_tokens(s)),
        Value::Array(items) => match items.first() {
            Some(Value::String(s)) => Ok(tokens::completion_prompt_tokens(s)),
            Some(Value::Number(_)) => Ok(len(items)),
            Some(Value::Array(ids)) => Ok(len(ids)),
            _ => Err(invalid_prompt(prompt)),
        },
        _ => Err(invalid_prompt(prompt)),
    }
}

pub(crate) fn invalid_prompt(prompt: &Value) -> ApiError {
    ApiError::bad_request(
        format!(
            "1 validation error:\n  {{'type': 'value_error', 'loc': ('body', 'prompt'), 'msg': 'prompt must be a string, an array of strings or token ids', 'input': {prompt}}}"
        ),
        "Bad Request",
        "body.prompt",
    )
}

/// The text of a chat message's `content` (a string or an array of `{"type":"text"}` parts).
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// pydantic's `json_invalid` error, with the byte position of the failure.
pub(crate) fn json_invalid(body: &[u8], e: &serde_json::Error) -> ApiError {
    let pos = byte_offset(body, e.line(), e.column());
    ApiError::bad_request(
        format!(
            "1 validation error:\n  {{'type': 'json_invalid', 'loc': 'body.{pos}', 'msg': 'JSON decode error', 'input': '<dict of 0 items>', 'ctx': {{'error': '{}'}}}}",
            serde_error_text(e)
        ),
        "Bad Request",
        format!("body.{pos}"),
    )
}

fn validation(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(
        format!(
            "1 validation error:\n  {{'type': 'value_error', 'loc': ('body',), 'msg': '{}'}}",
            serde_error_text(&e)
        ),
        "Bad Request",
        "body",
    )
}

/// serde's message without its " at line L column C" suffix.
fn serde_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// 0-based byte offset of serde's 1-based (line, column).
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(body.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    fn models() -> Models {
        Models::new(&SimConfig::default(), 0)
    }

    fn parse_ok(endpoint: Endpoint, body: &str) -> GenRequest {
        parse(endpoint, body.as_bytes(), &models(), 1024).expect("valid request")
    }

    fn parse_err(endpoint: Endpoint, body: &str) -> ApiError {
        parse(endpoint, body.as_bytes(), &models(), 1024).expect_err("invalid request")
    }

    #[test]
    fn completion_defaults_and_prompt_forms() {
        let r = parse_ok(
            Endpoint::Completions,
            r#"{"model":"candidate","prompt":"abcdefgh"}"#,
        );
        assert_eq!((r.prompt_tokens, r.max_tokens, r.stream), (3, 16, false));
        assert_eq!(r.model.lora, Some(0));
        let r = parse_ok(
            Endpoint::Completions,
            r#"{"prompt":["abcd","x"],"max_tokens":3}"#,
        );
        assert_eq!((r.prompt_tokens, r.max_tokens), (2, 3));
        assert!(r.model.lora.is_none());
        let r = parse_ok(Endpoint::Completions, r#"{"prompt":[1,2,3,4,5]}"#);
        assert_eq!(r.prompt_tokens, 5);
    }

    #[test]
    fn chat_counts_messages_and_stream_options() {
        let r = parse_ok(
            Endpoint::Chat,
            r#"{"model":"tiny-base","messages":[{"role":"user","content":"Hello there"}],
               "max_completion_tokens":4,"stream":true,
               "stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#,
        );
        assert_eq!((r.prompt_tokens, r.max_tokens), (11, 4));
        assert!(r.stream && r.include_usage && r.continuous_usage);
        let r = parse_ok(
            Endpoint::Chat,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"Hello there"}]}],
               "stream_options":{"continuous_usage_stats":true}}"#,
        );
        assert_eq!(r.prompt_tokens, 11);
        assert!(!r.continuous_usage, "continuous usage needs include_usage");
    }

    #[test]
    fn unknown_model_is_the_real_404() {
        let e = parse_err(Endpoint::Chat, r#"{"model":"nope","messages":[]}"#);
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"The model `nope` does not exist. Valid aliases: tiny-base.","type":"NotFoundError","param":"model","code":404}}"#
        );
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn too_many_tokens_is_the_real_400() {
        let e = parse_err(Endpoint::Completions, r#"{"prompt":"x","max_tokens":5000}"#);
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"max_tokens=5000 cannot be greater than max_model_len=1024. Please request fewer output tokens. (parameter=max_tokens, value=5000)","type":"BadRequestError","param":"max_tokens","code":400}}"#
        );
        let e = parse_err(Endpoint::Completions, r#"{"prompt":"x","max_tokens":1024}"#);
        assert!(
            e.message.contains("maximum context length is 1024"),
            "{}",
            e.message
        );
        let e = parse_err(Endpoint::Completions, r#"{"prompt":"x","max_tokens":0}"#);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn malformed_json_names_the_position() {
        let e = parse_err(Endpoint::Completions, r#"{"prompt": }"#);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (e.kind, e.param.as_deref()),
            ("Bad Request", Some("body.11"))
        );
        assert!(
            e.message
                .starts_with("1 validation error:\n  {'type': 'json_invalid'")
        );
        let e = parse_err(Endpoint::Completions, r#"{"model":"candidate"}"#);
        assert_eq!((e.status, e.kind), (StatusCode::BAD_REQUEST, "Bad Request"));
        assert!(e.message.contains("prompt"), "{}", e.message);
    }
}
