//! `--api llamacpp`: llama.cpp's native `llama-server` API, on the same engine (queue, slots,
//! latency model, faults) as the OpenAI mode.
//!
//! Routes: `GET /health` (`{"status":"ok"}`), `GET /v1/models` (one model, its id the alias:
//! `--served-model-name`), `GET /props` (a minimal subset), `GET /lora-adapters` (each
//! `--lora-modules` entry as `{"id","path","scale":1.0}`), `POST /completion` (stream and
//! not). The stream is what `llama-server` sends (captured in
//! `tests/fixtures/llamacpp/`): one `data: {"index":0,"content":"…","tokens":[id],"stop":false,
//! "id_slot":-1,"tokens_predicted":n,"tokens_evaluated":p}` event per token, then one event
//! with `"stop": true`, the counts, `stop_type` (`limit` or `eos`) and `timings`, and the body
//! ends (no `[DONE]`). The `model` field of a request is ignored, as a single-model
//! `llama-server` does. An injected error is llama.cpp's `{"error":{"code":500,...}}`.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{BufMut, BytesMut};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::CutMode;
use crate::engine::{Job, Running, Shared};
use crate::metrics::FinishReason;
use crate::openai::{DEFAULT_MAX_TOKENS, GenRequest, completion_prompt};
use crate::sse::json_str;

/// The routes of the llama.cpp mode.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/props", get(props))
        .route("/lora-adapters", get(lora_adapters))
        .route("/completion", post(completion))
        .fallback(not_found)
        .with_state(shared)
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// llama.cpp's error body.
fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "type": kind}});
    json_response(status, body.to_string())
}

async fn health() -> Response {
    json_response(StatusCode::OK, "{\"status\":\"ok\"}")
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "File Not Found", "not_found_error")
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let name = &shared.config.served_model_name;
    let body = json!({
        "models": [{"name": name, "model": name, "type": "model", "capabilities": ["completion"]}],
        "object": "list",
        "data": [{
            "id": name,
            "aliases": [name],
            "tags": [],
            "object": "model",
            "created": crate::completions::unix_secs(),
            "owned_by": "llamacpp",
            "meta": {"n_ctx": shared.config.max_model_len, "n_ctx_train": shared.config.max_model_len},
        }],
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn props(State(shared): State<Arc<Shared>>) -> Response {
    let c = &shared.config;
    let body = json!({
        "default_generation_settings": {"n_ctx": c.max_model_len, "params": {"n_predict": -1}},
        "total_slots": c.max_num_seqs,
        "model_alias": c.served_model_name,
        "model_path": c.model_root,
        "build_info": format!("vllm-sim {}", env!("CARGO_PKG_VERSION")),
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn lora_adapters(State(shared): State<Arc<Shared>>) -> Response {
    let list: Vec<Value> = shared
        .config
        .lora_modules
        .iter()
        .enumerate()
        .map(|(id, m)| json!({"id": id, "path": m.path, "scale": 1.0}))
        .collect();
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

/// The fields of a `/completion` body the simulator reads.
#[derive(Debug, Deserialize)]
struct CompletionBody {
    prompt: Value,
    #[serde(default)]
    n_predict: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    ignore_eos: Option<bool>,
}

/// Validates a `/completion` body into the engine's request (always the base model); the
/// error is the message of a 400.
fn parse(shared: &Shared, body: &[u8]) -> Result<GenRequest, String> {
    let b: CompletionBody =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let prompt_tokens = completion_prompt(&b.prompt)
        .map_err(|_| "\"prompt\" must be a string or an array of tokens".to_string())?;
    let max_len = shared.config.max_model_len;
    if prompt_tokens >= max_len {
        return Err(format!(
            "the request exceeds the available context size ({prompt_tokens} prompt tokens, context {max_len})"
        ));
    }
    // -1 (the default) is "until the context is full"; 0 evaluates the prompt only, which
    // the simulator does not model: it generates one token.
    let room = max_len - prompt_tokens;
    let max_tokens = match b.n_predict {
        None => DEFAULT_MAX_TOKENS.min(room),
        Some(n) if n < 0 => room,
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX).clamp(1, room),
    };
    Ok(GenRequest {
        model: shared.models.base().clone(),
        prompt_tokens,
        max_tokens,
        stream: b.stream.unwrap_or(false),
        include_usage: false,
        continuous_usage: false,
        ignore_eos: b.ignore_eos.unwrap_or(false),
    })
}

/// `POST /completion`.
async fn completion(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.traces.record(&headers);
    let arrival = Instant::now();
    let req = match parse(&shared, &body) {
        Ok(r) => r,
        Err(message) => {
            return error(StatusCode::BAD_REQUEST, &message, "invalid_request_error");
        }
    };
    let (mut rng, plan) = shared.accept(&req);
    if plan.inject_error {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected by vllm-sim --error-rate",
            "server_error",
        );
    }
    let first_id: u32 = rng.random_range(3..4096);
    let frame = Frame {
        model: json_str(&req.model.name),
        prompt_tokens: req.prompt_tokens,
        first_id,
    };
    let stream = req.stream;
    let job = Job {
        shared: Arc::clone(&shared),
        req,
        plan,
        rng,
        arrival,
    };
    if stream {
        let state = StreamState {
            phase: Phase::Queued(job),
            frame,
            cut_mode: shared.config.cut_mode,
        };
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(futures::stream::unfold(state, step)),
        )
            .into_response();
    }
    let mut running = job.admit().await;
    let started = Instant::now();
    let mut text = String::new();
    while let Some(piece) = running.next_token().await {
        text.push_str(piece);
    }
    let finish = running.job.plan.finish;
    running.finish(finish);
    let mut out = BytesMut::new();
    frame.last(&mut out, &text, running.emitted(), finish, started);
    json_response(StatusCode::OK, out.freeze())
}

/// What every event of one response shares.
struct Frame {
    /// The model alias, as a JSON string.
    model: String,
    prompt_tokens: u32,
    /// A token id to number the generated tokens from (their ids carry no meaning).
    first_id: u32,
}

impl Frame {
    /// One partial event: the `n`th token (1-based), `piece` of text.
    fn partial(&self, out: &mut BytesMut, piece: &str, n: u32) {
        out.put_slice(b"data: {\"index\":0,\"content\":\"");
        out.put_slice(piece.as_bytes());
        let id = (self.first_id + n) % 4096;
        out.put_slice(
            format!(
                "\",\"tokens\":[{id}],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":{n},\"tokens_evaluated\":{}}}\n\n",
                self.prompt_tokens
            )
            .as_bytes(),
        );
    }

    /// The last object (the stream's `"stop": true` event's data, or the non-stream body):
    /// `text` is the whole completion for a non-streaming answer, empty for a stream.
    fn last(
        &self,
        out: &mut BytesMut,
        text: &str,
        predicted: u32,
        finish: FinishReason,
        started: Instant,
    ) {
        let stop_type = match finish {
            FinishReason::Stop => "eos",
            _ => "limit",
        };
        let p = self.prompt_tokens;
        let predicted_ms = started.elapsed().as_secs_f64() * 1e3;
        let per_token = predicted_ms / f64::from(predicted.max(1));
        let body = format!(
            "{{\"index\":0,\"content\":{},\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":{},\"tokens_predicted\":{predicted},\"tokens_evaluated\":{p},\"generation_settings\":{{\"n_predict\":{predicted}}},\"prompt\":\"\",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"{stop_type}\",\"stopping_word\":\"\",\"tokens_cached\":{},\"timings\":{{\"cache_n\":0,\"prompt_n\":{p},\"prompt_ms\":0.0,\"prompt_per_token_ms\":0.0,\"prompt_per_second\":0.0,\"predicted_n\":{predicted},\"predicted_ms\":{predicted_ms:.3},\"predicted_per_token_ms\":{per_token:.3},\"predicted_per_second\":{:.3}}}}}",
            json_str(text),
            self.model,
            p + predicted,
            1e3 / per_token.max(1e-9),
        );
        out.put_slice(body.as_bytes());
    }
}

enum Phase {
    Queued(Job),
    Running(Box<Running>, Instant),
    Done,
}

struct StreamState {
    phase: Phase,
    frame: Frame,
    cut_mode: CutMode,
}

/// The next piece of a streaming body: waits for a slot, then one event per token, then the
/// `"stop": true` event after the last one.
async fn step(mut st: StreamState) -> Option<(Result<Bytes, io::Error>, StreamState)> {
    let (mut running, started) = match std::mem::replace(&mut st.phase, Phase::Done) {
        Phase::Queued(job) => (Box::new(job.admit().await), Instant::now()),
        Phase::Running(r, started) => (r, started),
        Phase::Done => return None,
    };
    if running.cut_due() {
        let mode = st.cut_mode;
        return crate::sse::cut(running, mode, st);
    }
    let piece = running.next_token().await?;
    let mut out = BytesMut::with_capacity(256);
    st.frame.partial(&mut out, piece, running.emitted());
    if running.is_complete() {
        let finish = running.job.plan.finish;
        running.finish(finish);
        out.put_slice(b"data: ");
        st.frame
            .last(&mut out, "", running.emitted(), finish, started);
        out.put_slice(b"\n\n");
    } else {
        st.phase = Phase::Running(running, started);
    }
    Some((Ok(out.freeze()), st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_last_events_have_llama_server_s_fields() {
        let f = Frame {
            model: json_str("tiny"),
            prompt_tokens: 11,
            first_id: 100,
        };
        let mut out = BytesMut::new();
        f.partial(&mut out, " the", 1);
        assert_eq!(
            &out[..],
            b"data: {\"index\":0,\"content\":\" the\",\"tokens\":[101],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":1,\"tokens_evaluated\":11}\n\n"
        );
        let mut last = BytesMut::new();
        f.last(&mut last, "", 8, FinishReason::Length, Instant::now());
        let v: Value = serde_json::from_slice(&last).unwrap();
        assert_eq!(v["stop"], true);
        assert_eq!(v["stop_type"], "limit");
        assert_eq!(v["tokens_predicted"], 8);
        assert_eq!(v["tokens_evaluated"], 11);
        assert_eq!(v["timings"]["predicted_n"], 8);
        assert_eq!(v["model"], "tiny");
        let mut eos = BytesMut::new();
        f.last(&mut eos, "", 3, FinishReason::Stop, Instant::now());
        let v: Value = serde_json::from_slice(&eos).unwrap();
        assert_eq!(v["stop_type"], "eos");
    }
}
