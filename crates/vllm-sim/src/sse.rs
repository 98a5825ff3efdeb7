//! Server-sent events exactly as vLLM 0.32 frames them, and the streaming body.
//!
//! Every event is `data: {json}\n\n` (no `event:`/`id:` lines), one content chunk per token:
//! - completions: `{"id":"cmpl-…","object":"text_completion",…,"choices":[{"index":0,
//!   "text":"…","logprobs":null,"finish_reason":null,"stop_reason":null,
//!   "prompt_token_ids":null,"token_ids":null}]}`;
//! - chat: a role chunk `"delta":{"role":"assistant","content":""}` (sent with the first
//!   token), then `"delta":{"content":"…"}` chunks;
//! - the last content chunk carries `"finish_reason":"length"` (or `"stop"`) and
//!   `"stop_reason":null`;
//! - with `stream_options.include_usage` a usage chunk follows (`"choices":[]`, usage
//!   `{prompt_tokens,total_tokens,completion_tokens}`); with `continuous_usage_stats` as well,
//!   every chunk carries a running `usage` (with `"completion_tokens_details":null`);
//! - `"system_fingerprint"` is on the last event before `data: [DONE]\n\n`.
//!
//! A stream chosen by `--cut-rate` ends after its planned number of content chunks, without
//! `[DONE]`: cleanly (`--cut-mode eof`) or by dropping the connection (`reset`).

use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;

use crate::config::CutMode;
use crate::engine::{Job, Running};
use crate::metrics::FinishReason;
use crate::openai::Endpoint;

/// `system_fingerprint` of every response.
pub(crate) const FINGERPRINT: &str = "vllm-0.32.0-sim";

/// The `data: [DONE]` event.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// Formats the events of one response; the common head is built once.
#[derive(Debug, Clone)]
pub(crate) struct Chunks {
    endpoint: Endpoint,
    /// `data: {"id":"…","object":"…","created":N,"model":"…","choices":[`
    head: String,
    prompt_tokens: u32,
}

impl Chunks {
    pub(crate) fn new(
        endpoint: Endpoint,
        id: &str,
        created: u64,
        model: &str,
        prompt_tokens: u32,
    ) -> Self {
        let object = match endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion.chunk",
        };
        let head = format!(
            "data: {{\"id\":{},\"object\":\"{object}\",\"created\":{created},\"model\":{},\"choices\":[",
            json_str(id),
            json_str(model)
        );
        Self {
            endpoint,
            head,
            prompt_tokens,
        }
    }

    /// Chat's first event (`delta: {role: assistant, content: ""}`).
    pub(crate) fn role(&self, out: &mut BytesMut, usage: bool) {
        out.put_slice(self.head.as_bytes());
        out.put_slice(
            br#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]"#,
        );
        if usage {
            self.running_usage(out, 0);
        }
        out.put_slice(b",\"prompt_token_ids\":null,\"prompt_text\":null}\n\n");
    }

    /// One content event; `usage` is the completion tokens so far (continuous usage).
    pub(crate) fn content(
        &self,
        out: &mut BytesMut,
        piece: &str,
        finish: Option<FinishReason>,
        usage: Option<u32>,
        fingerprint: bool,
    ) {
        out.put_slice(self.head.as_bytes());
        match self.endpoint {
            Endpoint::Completions => {
                out.put_slice(b"{\"index\":0,\"text\":\"");
                out.put_slice(piece.as_bytes());
                out.put_slice(b"\",\"logprobs\":null,\"finish_reason\":");
                put_reason(out, finish);
                out.put_slice(
                    b",\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}]",
                );
            }
            Endpoint::Chat => {
                out.put_slice(b"{\"index\":0,\"delta\":{\"content\":\"");
                out.put_slice(piece.as_bytes());
                out.put_slice(b"\"},\"logprobs\":null,\"finish_reason\":");
                put_reason(out, finish);
                if finish.is_some() {
                    out.put_slice(b",\"stop_reason\":null");
                }
                out.put_slice(b",\"token_ids\":null}]");
            }
        }
        if let Some(completion) = usage {
            self.running_usage(out, completion);
        }
        if fingerprint {
            put_fingerprint(out);
        }
        out.put_slice(b"}\n\n");
    }

    /// The final usage event (`"choices":[]`).
    pub(crate) fn usage(&self, out: &mut BytesMut, completion: u32) {
        out.put_slice(self.head.as_bytes());
        let p = self.prompt_tokens;
        let total = u64::from(p) + u64::from(completion);
        out.put_slice(
            format!(
                "],\"usage\":{{\"prompt_tokens\":{p},\"total_tokens\":{total},\"completion_tokens\":{completion}}}"
            )
            .as_bytes(),
        );
        put_fingerprint(out);
        out.put_slice(b"}\n\n");
    }

    fn running_usage(&self, out: &mut BytesMut, completion: u32) {
        let p = self.prompt_tokens;
        let total = u64::from(p) + u64::from(completion);
        out.put_slice(
            format!(
                ",\"usage\":{{\"prompt_tokens\":{p},\"total_tokens\":{total},\"completion_tokens\":{completion},\"completion_tokens_details\":null}}"
            )
            .as_bytes(),
        );
    }
}

fn put_reason(out: &mut BytesMut, finish: Option<FinishReason>) {
    match finish {
        Some(r) => {
            out.put_u8(b'"');
            out.put_slice(r.as_str().as_bytes());
            out.put_u8(b'"');
        }
        None => out.put_slice(b"null"),
    }
}

fn put_fingerprint(out: &mut BytesMut) {
    out.put_slice(b",\"system_fingerprint\":\"");
    out.put_slice(FINGERPRINT.as_bytes());
    out.put_u8(b'"');
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

enum Phase {
    Queued(Job),
    Running(Box<Running>),
    Done,
}

struct StreamState {
    phase: Phase,
    chunks: Chunks,
    cut_mode: CutMode,
}

/// The SSE body of a streaming request: waits for a slot, then one event per token.
pub(crate) fn body(
    job: Job,
    chunks: Chunks,
    cut_mode: CutMode,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let state = StreamState {
        phase: Phase::Queued(job),
        chunks,
        cut_mode,
    };
    futures::stream::unfold(state, step)
}

/// Ends a stream chosen by `--cut-rate` (its request finishes as aborted): the body just ends
/// without its end marker (`eof`), or the connection breaks (`reset`). Shared by both APIs'
/// streams.
pub(crate) fn cut<S>(
    mut running: Box<Running>,
    mode: CutMode,
    state: S,
) -> Option<(Result<Bytes, io::Error>, S)> {
    running.finish(FinishReason::Abort);
    drop(running);
    match mode {
        CutMode::Eof => None,
        CutMode::Reset => Some((
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "stream cut by vllm-sim --cut-rate",
            )),
            state,
        )),
    }
}

async fn step(mut st: StreamState) -> Option<(Result<Bytes, io::Error>, StreamState)> {
    let mut running = match std::mem::replace(&mut st.phase, Phase::Done) {
        Phase::Queued(job) => Box::new(job.admit().await),
        Phase::Running(r) => r,
        Phase::Done => return None,
    };
    if running.cut_due() {
        let mode = st.cut_mode;
        return cut(running, mode, st);
    }
    let piece = running.next_token().await?;
    let req = &running.job.req;
    let (include_usage, continuous) = (req.include_usage, req.continuous_usage);
    let finish_reason = running.job.plan.finish;
    let mut out = BytesMut::with_capacity(st.chunks.head.len() * 2 + 256);
    if running.emitted() == 1 && st.chunks.endpoint == Endpoint::Chat {
        st.chunks.role(&mut out, continuous);
    }
    let complete = running.is_complete();
    st.chunks.content(
        &mut out,
        piece,
        complete.then_some(finish_reason),
        continuous.then_some(running.emitted()),
        complete && !include_usage,
    );
    if complete {
        running.finish(finish_reason);
        if include_usage {
            st.chunks.usage(&mut out, running.emitted());
        }
        out.put_slice(DONE);
    } else {
        st.phase = Phase::Running(running);
    }
    Some((Ok(out.freeze()), st))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut BytesMut)) -> String {
        let mut out = BytesMut::new();
        f(&mut out);
        String::from_utf8(out.to_vec()).expect("utf-8")
    }

    #[test]
    fn completion_chunks_match_the_real_shape() {
        let c = Chunks::new(Endpoint::Completions, "cmpl-1", 7, "candidate", 6);
        assert_eq!(
            text(|o| c.content(o, "abc", None, None, false)),
            "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"candidate\",\"choices\":[{\"index\":0,\"text\":\"abc\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}]}\n\n"
        );
        assert_eq!(
            text(|o| c.usage(o, 8)),
            "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"candidate\",\"choices\":[],\"usage\":{\"prompt_tokens\":6,\"total_tokens\":14,\"completion_tokens\":8},\"system_fingerprint\":\"vllm-0.32.0-sim\"}\n\n"
        );
    }

    #[test]
    fn chat_chunks_match_the_real_shape() {
        let c = Chunks::new(Endpoint::Chat, "chatcmpl-1", 7, "candidate", 11);
        assert_eq!(
            text(|o| c.role(o, true)),
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"candidate\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":11,\"total_tokens\":11,\"completion_tokens\":0,\"completion_tokens_details\":null},\"prompt_token_ids\":null,\"prompt_text\":null}\n\n"
        );
        assert_eq!(
            text(|o| c.content(o, "ew", Some(FinishReason::Length), None, true)),
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"candidate\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ew\"},\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null,\"token_ids\":null}],\"system_fingerprint\":\"vllm-0.32.0-sim\"}\n\n"
        );
    }
}
