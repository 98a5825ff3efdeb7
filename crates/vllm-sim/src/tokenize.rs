//! `POST /tokenize`, as vLLM's: `{"model", "prompt"}` (or `"messages"`) →
//! `{"count", "max_model_len", "tokens", "token_strs"}`, the count by the same rules as the
//! generation endpoints' prompt tokens ([`crate::tokens`]), so a client that sizes its
//! prompts with it sees the `usage.prompt_tokens` it aimed at. Off (`--no-tokenize`): the
//! FastAPI 404 of a server without the route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine::Shared;
use crate::openai::{self, ApiError};
use crate::tokens;

/// `POST /tokenize`.
pub(crate) async fn tokenize(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if !shared.config.tokenize {
        return (
            StatusCode::NOT_FOUND,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            "{\"detail\":\"Not Found\"}",
        )
            .into_response();
    }
    match count(&shared, &body) {
        Ok(n) => {
            let ids: Vec<u32> = (0..n).map(|i| i % 32_000).collect();
            let doc = json!({
                "count": n,
                "max_model_len": shared.config.max_model_len,
                "tokens": ids,
                "token_strs": null,
            });
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                doc.to_string(),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn count(shared: &Shared, body: &[u8]) -> Result<u32, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| openai::json_invalid(body, &e))?;
    let model = value.get("model").and_then(Value::as_str);
    shared
        .models
        .resolve(model)
        .ok_or_else(|| openai::not_found(model.unwrap_or_default(), &shared.models))?;
    match (value.get("prompt"), value.get("messages")) {
        (Some(p), _) => openai::completion_prompt(p),
        (None, Some(Value::Array(messages))) => {
            let texts: Vec<String> = messages
                .iter()
                .map(|m| openai::content_text(m.get("content")))
                .collect();
            Ok(tokens::chat_prompt_tokens(texts.iter().map(String::as_str)))
        }
        _ => Err(openai::invalid_prompt(&Value::Null)),
    }
}
