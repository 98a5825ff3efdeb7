//! Server-sent events on the hot path: an incremental, zero-copy SSE decoder and the parser for
//! vLLM's OpenAI-style stream chunks.
//!
//! Why not `eventsource-stream`: it copies the rest of its buffer on every line
//! (`String::split_off`) and allocates four strings per event; at 1,000 streams that is the
//! client measuring its own allocator. This decoder keeps one growing buffer per stream and hands
//! out each event's data as a [`Bytes`] slice of it (no copy for the usual one-line `data:`
//! event). It follows the WHATWG rules that matter for a client: LF, CRLF or CR line ends, `:`
//! comments, an optional space after the colon, multi-line `data:` joined by `\n`, a leading BOM,
//! and events without data are not dispatched. `eventsource-stream` stays as a differential test
//! oracle and in the benchmark.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use std::borrow::Cow;

/// Incremental SSE decoder: push bytes as they arrive, pull complete events' data.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    data: Option<Data>,
    bom_checked: bool,
    /// A blank line ended with a CR at the end of a chunk: drop a LF that starts the next one.
    skip_lf: bool,
}

#[derive(Debug)]
enum Data {
    One(Bytes),
    Many(BytesMut),
}

impl SseDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The data of the next complete event, if one is buffered. Call until `None` after each push.
    pub fn next_event(&mut self) -> Option<Bytes> {
        if !self.bom_checked {
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return None;
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                let _ = self.buf.split_to(3);
            }
            self.bom_checked = true;
        }
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                if self.buf[0] == b'\n' {
                    let _ = self.buf.split_to(1);
                }
                self.skip_lf = false;
            }
            let end = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
            let term_len = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    // A blank line ended by CR: complete now; a LF that follows belongs to it.
                    None if end == 0 => {
                        self.skip_lf = true;
                        1
                    }
                    // A CR ending a field line: wait, a LF may follow in the next chunk.
                    None => return None,
                }
            } else {
                1
            };
            if end == 0 {
                let _ = self.buf.split_to(term_len);
                match self.data.take() {
                    Some(Data::One(b)) => return Some(b),
                    Some(Data::Many(b)) => return Some(b.freeze()),
                    None => continue,
                }
            }
            let line = self.buf.split_to(end).freeze();
            let _ = self.buf.split_to(term_len);
            self.field(line);
        }
    }

    fn field(&mut self, line: Bytes) {
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let start = if line.get(colon + 1) == Some(&b' ') {
                    colon + 2
                } else {
                    colon + 1
                };
                (&line[..colon], line.slice(start..))
            }
            None => (&line[..], Bytes::new()),
        };
        if name != b"data" {
            return; // event, id, retry and unknown fields carry nothing we measure
        }
        self.data = Some(match self.data.take() {
            None => Data::One(value),
            Some(Data::One(first)) => {
                let mut joined = BytesMut::with_capacity(first.len() + 1 + value.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&value);
                Data::Many(joined)
            }
            Some(Data::Many(mut joined)) => {
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&value);
                Data::Many(joined)
            }
        });
    }
}

/// What one stream chunk tells the timer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChunkInfo {
    /// The chunk carries generated output: non-empty `text`, `delta.content`, reasoning, tool
    /// calls, or a `finish_reason` (a sequence that ends on an end-of-sequence token sends a last
    /// chunk with empty text and `finish_reason: "stop"`: that token was generated too). A
    /// role-only first chat chunk (`"content": ""`, no finish reason) does not count (vLLM's own
    /// TTFT rule).
    pub has_token: bool,
    /// `finish_reason` of the first choice, when set.
    pub finish_reason: Option<String>,
    /// The usage object, when present (final chunk with `include_usage`, or every chunk with
    /// `continuous_usage_stats`).
    pub usage: Option<Usage>,
    /// An `error` object sent inside the stream (vLLM does this for errors after the 200).
    pub error: Option<String>,
}

/// Token counts reported by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
}

/// The usage object as sent; a count that is absent is unknown, not zero.
#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// What an event's data is.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// The `[DONE]` sentinel: the stream is complete.
    Done,
    /// A JSON chunk.
    Chunk(ChunkInfo),
}

/// Errors parsing a stream chunk.
#[derive(Debug, thiserror::Error)]
#[error("malformed stream chunk: {0}")]
pub struct ChunkError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(default, borrow, deserialize_with = "first_choice")]
    choices: Option<RawChoice<'a>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default, borrow)]
    error: Option<RawError<'a>>,
    /// Older vLLM (and some forks) send a flat `{"object": "error", "message": ...}` chunk.
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<RawDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawError<'a> {
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// Keeps only the first element of `choices` (no Vec allocation per chunk).
fn first_choice<'de, D>(d: D) -> Result<Option<RawChoice<'de>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<RawChoice<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of choices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<RawChoice<'de>>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(First)
}

fn non_empty(s: &Option<Cow<'_, str>>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

/// Parses one event's data: `[DONE]` or a JSON chunk.
pub fn parse_item(data: &[u8]) -> Result<StreamItem, ChunkError> {
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return Ok(StreamItem::Done);
    }
    let raw: RawChunk<'_> = serde_json::from_slice(trimmed)?;
    let flat_error = (raw.object.as_deref() == Some("error")).then(|| {
        raw.message
            .clone()
            .map(Cow::into_owned)
            .unwrap_or_else(|| "error".into())
    });
    let mut info = ChunkInfo {
        usage: raw.usage.and_then(|u| {
            Some(Usage {
                completion_tokens: u.completion_tokens?,
                prompt_tokens: u.prompt_tokens.unwrap_or(0),
            })
        }),
        error: raw
            .error
            .map(|e| {
                e.message
                    .map(Cow::into_owned)
                    .unwrap_or_else(|| "error".into())
            })
            .or(flat_error),
        ..ChunkInfo::default()
    };
    if let Some(choice) = raw.choices {
        let delta_token = choice.delta.as_ref().is_some_and(|d| {
            non_empty(&d.content)
                || non_empty(&d.reasoning_content)
                || non_empty(&d.reasoning)
                || d.tool_calls.is_some()
        });
        info.has_token = non_empty(&choice.text) || delta_token || choice.finish_reason.is_some();
        info.finish_reason = choice.finish_reason.map(Cow::into_owned);
    }
    Ok(StreamItem::Chunk(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for p in parts {
            d.push(p);
            while let Some(ev) = d.next_event() {
                out.push(String::from_utf8(ev.to_vec()).unwrap());
            }
        }
        out
    }

    #[test]
    fn decodes_vllm_framing_split_anywhere() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let whole = decode_all(&[stream]);
        assert_eq!(whole, vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
        // Every split point gives the same events.
        for cut in 0..stream.len() {
            assert_eq!(
                decode_all(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        // Byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn spec_details_crlf_cr_comments_multiline_bom() {
        assert_eq!(decode_all(&[b"data: x\r\n\r\n"]), vec!["x"]);
        assert_eq!(decode_all(&[b"data: x\r", b"\r"]), vec!["x"]);
        assert_eq!(
            decode_all(&[b"data: x\r\r", b"\ndata: y\r\n\r\n"]),
            vec!["x", "y"]
        );
        assert_eq!(decode_all(&[b"data: a\r", b"\ndata: b\n\n"]), vec!["a\nb"]);
        assert_eq!(decode_all(&[b": keep-alive\n\ndata:y\n\n"]), vec!["y"]);
        assert_eq!(decode_all(&[b"data: a\ndata: b\n\n"]), vec!["a\nb"]);
        assert_eq!(decode_all(&[b"\xEF\xBB", b"\xBFdata: z\n\n"]), vec!["z"]);
        assert_eq!(
            decode_all(&[b"event: ping\nid: 3\n\n"]),
            Vec::<String>::new()
        );
        assert_eq!(decode_all(&[b"data\n\n"]), vec![""]);
        // Incomplete final event is not dispatched.
        assert_eq!(decode_all(&[b"data: partial"]), Vec::<String>::new());
    }

    #[test]
    fn agrees_with_eventsource_stream_on_real_captures() {
        use futures::StreamExt;
        for file in [
            "completions_stream.sse",
            "chat_stream.sse",
            "chat_stream_no_usage.sse",
        ] {
            let text = std::fs::read(format!(
                "{}/src/client/fixtures/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let ours = decode_all(&[&text]);
            let theirs: Vec<String> = futures::executor::block_on(
                eventsource_stream::Eventsource::eventsource(futures::stream::iter(
                    text.chunks(7).map(|c| Ok::<_, std::io::Error>(c.to_vec())),
                ))
                .map(|e| e.unwrap().data)
                .collect(),
            );
            assert_eq!(ours, theirs, "{file}");
            assert!(ours.len() > 3, "{file}");
        }
    }

    #[test]
    fn role_only_chat_chunk_is_not_a_token() {
        let role = br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        let StreamItem::Chunk(c) = parse_item(role).unwrap() else {
            panic!()
        };
        assert!(!c.has_token);
        let tok = br#"{"choices":[{"index":0,"delta":{"content":" see"},"finish_reason":null}]}"#;
        let StreamItem::Chunk(c) = parse_item(tok).unwrap() else {
            panic!()
        };
        assert!(c.has_token);
        let reasoning = br#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#;
        let StreamItem::Chunk(c) = parse_item(reasoning).unwrap() else {
            panic!()
        };
        assert!(c.has_token);
    }

    #[test]
    fn completions_chunk_usage_and_done() {
        let tok = br#"{"id":"c","object":"text_completion","choices":[{"index":0,"text":"artin","logprobs":null,"finish_reason":"length","stop_reason":null}]}"#;
        let StreamItem::Chunk(c) = parse_item(tok).unwrap() else {
            panic!()
        };
        assert!(c.has_token);
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        let usage = br#"{"choices":[],"usage":{"prompt_tokens":6,"total_tokens":14,"completion_tokens":8}}"#;
        let StreamItem::Chunk(c) = parse_item(usage).unwrap() else {
            panic!()
        };
        assert!(!c.has_token);
        assert_eq!(
            c.usage,
            Some(Usage {
                prompt_tokens: 6,
                completion_tokens: 8
            })
        );
        assert_eq!(parse_item(b"[DONE]").unwrap(), StreamItem::Done);
        assert!(parse_item(b"{not json").is_err());
        let err = br#"{"error":{"message":"boom","type":"InternalServerError","code":500}}"#;
        let StreamItem::Chunk(c) = parse_item(err).unwrap() else {
            panic!()
        };
        assert_eq!(c.error.as_deref(), Some("boom"));
    }

    #[test]
    fn finish_chunk_with_empty_text_is_a_token_and_flat_errors_are_errors() {
        let eos = br#"{"choices":[{"index":0,"text":"","finish_reason":"stop"}]}"#;
        let StreamItem::Chunk(c) = parse_item(eos).unwrap() else {
            panic!()
        };
        assert!(c.has_token, "an end-of-sequence token was generated");
        let flat = br#"{"object":"error","message":"engine died","type":"InternalServerError","code":500}"#;
        let StreamItem::Chunk(c) = parse_item(flat).unwrap() else {
            panic!()
        };
        assert_eq!(c.error.as_deref(), Some("engine died"));
        let empty_usage = br#"{"choices":[],"usage":{}}"#;
        let StreamItem::Chunk(c) = parse_item(empty_usage).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.usage, None,
            "usage without counts is no usage, not 0 tokens"
        );
    }

    #[test]
    fn escaped_text_still_counts() {
        let tok = br#"{"choices":[{"text":"\n"}]}"#;
        let StreamItem::Chunk(c) = parse_item(tok).unwrap() else {
            panic!()
        };
        assert!(c.has_token);
    }
}
