//! Which serving API the load generator speaks: vLLM's OpenAI-compatible one, or llama.cpp's
//! native `llama-server` API. Every difference between the two lives behind [`Api`]: the path
//! and body of a generation request, how a stream chunk is read and how a stream ends, where
//! the token counts come from, and how the adapter is found on the server.
//!
//! | | `openai` (vLLM) | `llamacpp` (`llama-server`) |
//! | --- | --- | --- |
//! | generation | `POST /v1/completions` or `/v1/chat/completions`, `max_tokens`, `stream_options.include_usage` | `POST /completion`, `n_predict`, `stream: true` |
//! | a token | `choices[0].text` / `delta.content` | `content` (or `tokens`) of a `"stop": false` chunk |
//! | end of stream | `data: [DONE]` | the chunk with `"stop": true` (nothing follows it) |
//! | finish reason | `finish_reason` | `stop_type`: `eos`/`word` → `stop`, `limit` → `length` |
//! | token counts | the usage chunk | `tokens_predicted`, `tokens_evaluated` of the last chunk |
//! | health | `GET /health` 200 | `GET /health` 200 (503 while the model loads) |
//! | adapter | an id of `/v1/models` | the model alias of `/v1/models` (`--alias`), or a LoRA of `/lora-adapters` applied to every request (scale ≠ 0) |
//! | server figures | Prometheus or `/metrics` (`vllm:*`) | none: llama.cpp's `llamacpp:*` series are another set |

use serde::{Deserialize, Serialize};

use crate::client::sse::{ChunkError, ChunkInfo, NonEmptyStr, StreamItem, Text, Usage};
use crate::workload::Endpoint;

/// The serving API of a target (`--api`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// vLLM's OpenAI-compatible API (`/v1/completions`, `/v1/chat/completions`).
    #[default]
    Openai,
    /// llama.cpp's native `llama-server` API (`POST /completion`).
    Llamacpp,
}

/// `POST /completion`: llama.cpp's native generation endpoint.
pub const LLAMACPP_COMPLETION_PATH: &str = "/completion";

/// `GET /lora-adapters`: the LoRA adapters `llama-server` loaded (`--lora`).
pub const LLAMACPP_LORA_PATH: &str = "/lora-adapters";

impl Api {
    /// The name used in flags, results and MLflow params: `openai`, `llamacpp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Openai => "openai",
            Api::Llamacpp => "llamacpp",
        }
    }

    /// Path of a generation request to `endpoint` (llama.cpp has one: `/completion`).
    pub fn generation_path(self, endpoint: Endpoint) -> &'static str {
        match self {
            Api::Openai => endpoint.path(),
            Api::Llamacpp => LLAMACPP_COMPLETION_PATH,
        }
    }

    /// Whether a complete stream ends with the `[DONE]` sentinel (OpenAI) rather than with a
    /// last chunk that says so (llama.cpp's `"stop": true`).
    pub fn ends_with_sentinel(self) -> bool {
        self == Api::Openai
    }

    /// What ends a complete stream, for error texts.
    pub fn end_marker(self) -> &'static str {
        match self {
            Api::Openai => "[DONE]",
            Api::Llamacpp => "its \"stop\": true chunk",
        }
    }

    /// Parses one SSE event's data of this API's stream.
    pub fn parse_item(self, data: &[u8]) -> Result<StreamItem, ChunkError> {
        match self {
            Api::Openai => crate::client::sse::parse_item(data),
            Api::Llamacpp => parse_llamacpp_item(data),
        }
    }

    /// Whether server-side figures (Prometheus series or `/metrics` deltas) can be collected:
    /// they are read under vLLM's names, so only for vLLM.
    pub fn has_vllm_metrics(self) -> bool {
        self == Api::Openai
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openai" => Ok(Api::Openai),
            "llamacpp" => Ok(Api::Llamacpp),
            other => Err(format!("unknown API {other:?} (openai, llamacpp)")),
        }
    }
}

/// One chunk of llama.cpp's `/completion` stream (`server_task_result_cmpl_partial` and
/// `_final` in `tools/server/server-task.cpp`, non-OAI JSON). Unknown fields are skipped
/// without allocating.
#[derive(Deserialize)]
struct RawLlamaChunk<'a> {
    /// Read only for whether it is empty (never allocated).
    #[serde(default, borrow)]
    content: Option<NonEmptyStr<'a>>,
    /// Token ids of this chunk (sent in stream mode); skipped but for whether it is empty.
    #[serde(default)]
    tokens: Option<NonEmpty>,
    #[serde(default)]
    stop: bool,
    #[serde(default, borrow)]
    stop_type: Option<Text<'a>>,
    #[serde(default)]
    tokens_predicted: Option<u32>,
    #[serde(default)]
    tokens_evaluated: Option<u32>,
    /// `{"error": {"code", "message", "type"}}`, sent inside the stream after the 200.
    #[serde(default, borrow)]
    error: Option<RawLlamaError<'a>>,
}

#[derive(Deserialize)]
struct RawLlamaError<'a> {
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// Whether a JSON array has an element, read without keeping any.
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of token ids")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
            fn visit_unit<E>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// llama.cpp's `stop_type` as the OpenAI finish reason it means: `eos` (end-of-sequence) and
/// `word` (a stop string) → `stop`, `limit` (`n_predict` reached) → `length`; `none` or
/// anything else is kept as it is (a final chunk that says `none` did not end normally).
fn finish_reason_of(stop_type: &str) -> &str {
    match stop_type {
        "eos" | "word" => "stop",
        "limit" => "length",
        other => other,
    }
}

/// Parses one event's data of llama.cpp's `/completion` stream: a chunk that carries text (or
/// token ids) is a token; the chunk with `"stop": true` is the last
/// ([`StreamItem::Final`]), with the finish reason from `stop_type` and the token counts
/// (`tokens_predicted`, `tokens_evaluated`), and a token itself when it ended on
/// end-of-sequence (as vLLM's finish chunk is); an `error` object is a stream error.
pub fn parse_llamacpp_item(data: &[u8]) -> Result<StreamItem, ChunkError> {
    let raw: RawLlamaChunk<'_> =
        serde_json::from_str(crate::client::sse::chunk_text(data.trim_ascii())?)?;
    let has_text = raw.content.is_some_and(|c| c.is_non_empty());
    let has_ids = raw.tokens.as_ref().is_some_and(|t| t.0);
    let mut info = ChunkInfo {
        has_token: has_text || has_ids,
        error: raw.error.map(|e| {
            e.message
                .map(std::borrow::Cow::into_owned)
                .unwrap_or_else(|| "error".into())
        }),
        ..ChunkInfo::default()
    };
    if !raw.stop {
        return Ok(StreamItem::Chunk(info));
    }
    let stop_type = raw.stop_type.as_ref().map_or("none", |t| &t.0);
    // an end-of-sequence token was generated at this chunk (vLLM's finish chunk counts too)
    info.has_token |= stop_type == "eos";
    info.finish_reason = Some(finish_reason_of(stop_type).to_string());
    info.usage = raw.tokens_predicted.map(|completion_tokens| Usage {
        completion_tokens,
        prompt_tokens: raw.tokens_evaluated.unwrap_or(0),
    });
    Ok(StreamItem::Final(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &str) -> ChunkInfo {
        match parse_llamacpp_item(data.as_bytes()).unwrap() {
            StreamItem::Chunk(c) => c,
            other => panic!("not a chunk: {other:?}"),
        }
    }

    fn last(data: &str) -> ChunkInfo {
        match parse_llamacpp_item(data.as_bytes()).unwrap() {
            StreamItem::Final(c) => c,
            other => panic!("not the final chunk: {other:?}"),
        }
    }

    #[test]
    fn a_partial_chunk_with_content_is_a_token_and_an_empty_one_is_not() {
        let c = chunk(
            r#"{"index":0,"content":" the","tokens":[263],"stop":false,"id_slot":0,"tokens_predicted":1,"tokens_evaluated":5}"#,
        );
        assert!(c.has_token);
        assert_eq!(c.finish_reason, None);
        assert_eq!(c.usage, None, "counts are taken from the last chunk only");
        // a token that is half a UTF-8 character: no text yet, but its id
        assert!(chunk(r#"{"content":"","tokens":[200],"stop":false}"#).has_token);
        assert!(!chunk(r#"{"content":"","tokens":[],"stop":false}"#).has_token);
    }

    #[test]
    fn the_stop_chunk_ends_the_stream_with_counts_and_a_finish_reason() {
        let c = last(
            r#"{"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"model":"tiny","tokens_predicted":8,"tokens_evaluated":6,"stop_type":"limit","stopping_word":"","timings":{"prompt_n":6,"predicted_n":8}}"#,
        );
        assert!(!c.has_token);
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            c.usage,
            Some(Usage {
                prompt_tokens: 6,
                completion_tokens: 8
            })
        );
        let eos = last(r#"{"content":"","stop":true,"stop_type":"eos"}"#);
        assert_eq!(eos.finish_reason.as_deref(), Some("stop"));
        assert!(eos.has_token, "the end-of-sequence token was generated");
        assert_eq!(
            last(r#"{"stop":true,"stop_type":"word"}"#)
                .finish_reason
                .as_deref(),
            Some("stop")
        );
        // a last chunk that says it did not stop is no normal end
        assert_eq!(
            last(r#"{"stop":true,"stop_type":"none"}"#)
                .finish_reason
                .as_deref(),
            Some("none")
        );
        assert_eq!(last(r#"{"stop":true}"#).usage, None);
    }

    #[test]
    fn an_error_object_is_a_stream_error_and_bad_json_is_malformed() {
        let c = chunk(r#"{"error":{"code":500,"message":"slot failed","type":"server_error"}}"#);
        assert_eq!(c.error.as_deref(), Some("slot failed"));
        assert!(parse_llamacpp_item(b"{nope").is_err());
        // llama.cpp sends no sentinel: `[DONE]` is not JSON for this API
        assert!(parse_llamacpp_item(b"[DONE]").is_err());
    }

    #[test]
    fn each_api_reads_its_own_paths_and_names() {
        assert_eq!(
            Api::Llamacpp.generation_path(Endpoint::Chat),
            LLAMACPP_COMPLETION_PATH
        );
        assert_eq!(
            Api::Openai.generation_path(Endpoint::Chat),
            "/v1/chat/completions"
        );
        for api in [Api::Openai, Api::Llamacpp] {
            assert_eq!(api.as_str().parse::<Api>().unwrap(), api);
            assert_eq!(
                serde_json::to_value(api).unwrap(),
                serde_json::json!(api.as_str())
            );
        }
        assert!("vllm".parse::<Api>().is_err());
    }
}
