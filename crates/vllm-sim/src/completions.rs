//! `POST /v1/completions` and `POST /v1/chat/completions`.
//!
//! Order of events for one request: arrival (clock starts) → validation (400/404) →
//! numbering and fault plan → HTTP 500 if `--error-rate` picked it → wait for a running
//! slot → tokens on the latency model's schedule → finish. A streaming response sends its
//! headers at once and waits for the slot inside the body, as vLLM does; a non-streaming
//! one answers when the last token is done, with the real vLLM's JSON body.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::engine::{Job, Shared};
use crate::metrics::Handler;
use crate::openai::{self, ApiError, Endpoint};
use crate::sse::{self, Chunks, FINGERPRINT, json_str};

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.traces.record(&headers);
    let resp = generate(&shared, Endpoint::Completions, &body).await;
    shared
        .metrics
        .http(Handler::Completions, resp.status().as_u16());
    resp
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.traces.record(&headers);
    let resp = generate(&shared, Endpoint::Chat, &body).await;
    shared.metrics.http(Handler::Chat, resp.status().as_u16());
    resp
}

async fn generate(shared: &Arc<Shared>, endpoint: Endpoint, body: &[u8]) -> Response {
    let arrival = Instant::now();
    let created = unix_secs();
    let req = match openai::parse(endpoint, body, &shared.models, shared.config.max_model_len) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let (mut rng, plan) = shared.accept(&req);
    if plan.inject_error {
        return ApiError::injected().into_response();
    }
    let prefix = match endpoint {
        Endpoint::Completions => "cmpl",
        Endpoint::Chat => "chatcmpl",
    };
    let id = format!("{prefix}-{:016x}", rng.random::<u64>());
    let chunks = Chunks::new(endpoint, &id, created, &req.model.name, req.prompt_tokens);
    let stream = req.stream;
    let job = Job {
        shared: Arc::clone(shared),
        req,
        plan,
        rng,
        arrival,
    };
    if stream {
        let body = Body::from_stream(sse::body(job, chunks, shared.config.cut_mode));
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
            body,
        )
            .into_response();
    }
    let mut running = job.admit().await;
    let mut text = String::new();
    while let Some(piece) = running.next_token().await {
        text.push_str(piece);
    }
    let finish = running.job.plan.finish;
    running.finish(finish);
    let out = Full {
        endpoint,
        id: &id,
        created,
        model: &running.job.req.model.name,
        text: &text,
        finish: finish.as_str(),
        prompt_tokens: running.job.req.prompt_tokens,
        completion_tokens: running.emitted(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out.render(),
    )
        .into_response()
}

/// A non-streaming response body.
struct Full<'a> {
    endpoint: Endpoint,
    id: &'a str,
    created: u64,
    model: &'a str,
    text: &'a str,
    finish: &'a str,
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl Full<'_> {
    /// The body, with the real server's field order.
    fn render(&self) -> String {
        let (p, c) = (self.prompt_tokens, self.completion_tokens);
        let usage = format!(
            "{{\"prompt_tokens\":{p},\"total_tokens\":{},\"completion_tokens\":{c},\"prompt_tokens_details\":null,\"completion_tokens_details\":null}}",
            u64::from(p) + u64::from(c)
        );
        let (id, model, text, finish) = (
            json_str(self.id),
            json_str(self.model),
            json_str(self.text),
            self.finish,
        );
        let created = self.created;
        match self.endpoint {
            Endpoint::Completions => format!(
                "{{\"id\":{id},\"object\":\"text_completion\",\"created\":{created},\"model\":{model},\"choices\":[{{\"index\":0,\"text\":{text},\"logprobs\":null,\"finish_reason\":\"{finish}\",\"stop_reason\":null,\"token_ids\":null,\"prompt_logprobs\":null,\"prompt_token_ids\":null,\"routed_experts\":null}}],\"service_tier\":null,\"system_fingerprint\":\"{FINGERPRINT}\",\"usage\":{usage},\"kv_transfer_params\":null,\"ec_transfer_params\":null,\"metrics\":null}}"
            ),
            Endpoint::Chat => format!(
                "{{\"id\":{id},\"object\":\"chat.completion\",\"created\":{created},\"model\":{model},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{text},\"refusal\":null,\"annotations\":null,\"audio\":null,\"function_call\":null,\"reasoning\":null}},\"logprobs\":null,\"finish_reason\":\"{finish}\",\"stop_reason\":null,\"token_ids\":null,\"routed_experts\":null}}],\"service_tier\":null,\"system_fingerprint\":\"{FINGERPRINT}\",\"usage\":{usage},\"prompt_logprobs\":null,\"prompt_token_ids\":null,\"prompt_text\":null,\"kv_transfer_params\":null,\"ec_transfer_params\":null,\"metrics\":null}}"
            ),
        }
    }
}

/// Seconds since the unix epoch (the `created` field).
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
