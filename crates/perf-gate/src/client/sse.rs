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
use std::ops::Range;

/// Longest SSE line, and largest event data, the decoder accepts: 16 MiB.
///
/// vLLM sends one small JSON chunk per line (a few hundred bytes; a chunk with every token's
/// logprobs is still far below a MiB). A line or an event longer than this is not a stream this
/// client can measure, so it is refused ([`SseError`], a `malformed` request failure) instead of
/// buffered without limit: one request's decoder never holds much more than this.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// A stream the decoder refuses. Final: the request has failed, stop reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// More than the limit arrived without a line end.
    #[error("an SSE line is longer than {limit} bytes ({seen} bytes without a line end)")]
    LineTooLong {
        /// The limit ([`MAX_LINE_BYTES`] unless set by [`SseDecoder::with_limit`]).
        limit: usize,
        /// Bytes of the line seen so far.
        seen: usize,
    },
    /// The `data:` lines of one event add up to more than the limit.
    #[error("an SSE event's data is longer than {limit} bytes")]
    EventTooLarge {
        /// The limit.
        limit: usize,
    },
}

/// Incremental SSE decoder: push bytes as they arrive, pull complete events' data.
///
/// Linear in its input: the search for a line end resumes where the last one stopped, so each
/// byte is looked at a bounded number of times however the stream is cut into chunks
/// ([`SseDecoder::scanned`] counts them), and a line may not grow past a limit
/// ([`MAX_LINE_BYTES`]).
#[derive(Debug)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Bytes at the start of `buf` already searched without finding a line end.
    searched: usize,
    /// A field line ended by a CR at this index of `buf`, the last byte received: whether a LF
    /// follows is not known yet.
    cr_at: Option<usize>,
    data: Option<Data>,
    bom_checked: bool,
    /// A blank line ended with a CR at the end of a chunk: drop a LF that starts the next one.
    skip_lf: bool,
    limit: usize,
    scanned: u64,
}

#[derive(Debug)]
enum Data {
    One(Bytes),
    Many(BytesMut),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::One(b) => b.len(),
            Data::Many(b) => b.len(),
        }
    }
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_LINE_BYTES)
    }
}

impl SseDecoder {
    /// A decoder with an empty buffer and the [`MAX_LINE_BYTES`] limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses lines and events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseDecoder {
            buf: BytesMut::new(),
            searched: 0,
            cr_at: None,
            data: None,
            bom_checked: false,
            skip_lf: false,
            limit,
            scanned: 0,
        }
    }

    /// Appends bytes received from the network.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a complete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// How many bytes the decoder has examined so far, every look counted (line-end search,
    /// field-name search, the byte after a CR). Stays within a small multiple of the bytes
    /// pushed: the property tests hold it to that.
    pub fn scanned(&self) -> u64 {
        self.scanned
    }

    /// The data of the next complete event, if one is buffered. Call until `Ok(None)` after
    /// each push. An error is final: the stream is not one this client accepts.
    pub fn next_event(&mut self) -> Result<Option<Bytes>, SseError> {
        if !self.bom_checked {
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return Ok(None);
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                let _ = self.buf.split_to(3);
            }
            self.bom_checked = true;
        }
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                self.scanned += 1;
                if self.buf[0] == b'\n' {
                    let _ = self.buf.split_to(1);
                }
                self.skip_lf = false;
            }
            let Some((end, term_len)) = self.line_end()? else {
                return Ok(None);
            };
            if end == 0 {
                let _ = self.buf.split_to(term_len);
                match self.data.take() {
                    Some(Data::One(b)) => return Ok(Some(b)),
                    Some(Data::Many(b)) => return Ok(Some(b.freeze())),
                    None => continue,
                }
            }
            let line = self.buf.split_to(end).freeze();
            let _ = self.buf.split_to(term_len);
            self.field(line)?;
        }
    }

    /// Where the first line of `buf` ends and how long its terminator is, searching only bytes
    /// not searched before; `None` until a whole line is buffered.
    fn line_end(&mut self) -> Result<Option<(usize, usize)>, SseError> {
        let end = match self.cr_at {
            Some(cr) => cr,
            None => {
                let from = self.searched;
                match memchr::memchr2(b'\n', b'\r', &self.buf[from..]) {
                    Some(i) => {
                        self.scanned += i as u64 + 1;
                        from + i
                    }
                    None => {
                        self.scanned += (self.buf.len() - from) as u64;
                        self.searched = self.buf.len();
                        return match self.buf.len() > self.limit {
                            true => Err(SseError::LineTooLong {
                                limit: self.limit,
                                seen: self.buf.len(),
                            }),
                            false => Ok(None),
                        };
                    }
                }
            }
        };
        if end > self.limit {
            return Err(SseError::LineTooLong {
                limit: self.limit,
                seen: end,
            });
        }
        let term_len = if self.buf[end] == b'\r' {
            match self.buf.get(end + 1) {
                Some(next) => {
                    self.scanned += 1;
                    if *next == b'\n' { 2 } else { 1 }
                }
                // A blank line ended by CR: complete now; a LF that follows belongs to it.
                None if end == 0 => {
                    self.skip_lf = true;
                    1
                }
                // A CR ending a field line: wait, a LF may follow in the next chunk.
                None => {
                    self.cr_at = Some(end);
                    self.searched = end + 1;
                    return Ok(None);
                }
            }
        } else {
            1
        };
        self.cr_at = None;
        self.searched = 0;
        Ok(Some((end, term_len)))
    }

    fn field(&mut self, line: Bytes) -> Result<(), SseError> {
        self.scanned += 1;
        if line[0] == b':' {
            return Ok(()); // comment
        }
        let colon = memchr::memchr(b':', &line);
        self.scanned += colon.map_or(line.len(), |c| c + 1) as u64;
        let (name, value) = match colon {
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
            return Ok(()); // event, id, retry and unknown fields carry nothing we measure
        }
        let joined_len = self.data.as_ref().map_or(0, |d| d.len() + 1) + value.len();
        if joined_len > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
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
        Ok(())
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
    /// The last chunk of a stream that ends without a sentinel (llama.cpp's `"stop": true`):
    /// read as a chunk, then the stream is complete.
    Final(ChunkInfo),
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
    #[serde(default)]
    object: Option<IsError>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(default, borrow)]
    text: Option<NonEmptyStr<'a>>,
    #[serde(default, borrow)]
    delta: Option<RawDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(default, borrow)]
    content: Option<NonEmptyStr<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<NonEmptyStr<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<NonEmptyStr<'a>>,
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

/// A string read in place (a borrowed slice of the event; owned only when it has escapes).
///
/// `#[serde(borrow)]` does not reach through `Option<Cow<str>>` (serde special-cases a bare
/// `Cow<str>` field only), so an `Option<Cow<str>>` field is allocated on every event. A newtype
/// around a borrowed `Cow` is not.
#[derive(Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// A string field read only for whether it is non-empty: never allocated, escapes or not.
///
/// Read as the raw JSON text (`""` is the empty string): serde_json unescapes a string with
/// `\n`, `\"` or `\u` escapes into a fresh scratch buffer, which token text often has. The
/// text is checked as JSON string syntax (escapes, control characters, UTF-8), but a `\u`
/// escape of a lone UTF-16 surrogate is not decoded, so it counts as text rather than failing
/// the request: the server did send a token. Kept as the literal, quotes included, borrowed
/// from the chunk (where it is tells a [`ChunkReader`] the chunk's shape).
pub(crate) struct NonEmptyStr<'a>(pub(crate) &'a str);

impl NonEmptyStr<'_> {
    /// Whether the string has a character.
    pub(crate) fn is_non_empty(&self) -> bool {
        self.0 != "\"\""
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for NonEmptyStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?.get();
        if !raw.starts_with('"') {
            // named by its type: the value itself may be megabytes
            let kind = match raw.as_bytes().first() {
                Some(b'{') => "an object",
                Some(b'[') => "an array",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Other(kind),
                &"a string",
            ));
        }
        Ok(NonEmptyStr(raw))
    }
}

/// The chunk's `object` read only for whether it is `"error"`: never allocated.
struct IsError(bool);

impl<'de> Deserialize<'de> for IsError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsError;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IsError, E> {
                Ok(IsError(v == "error"))
            }
        }
        d.deserialize_str(V)
    }
}

fn non_empty(s: &Option<NonEmptyStr>) -> bool {
    s.as_ref().is_some_and(NonEmptyStr::is_non_empty)
}

/// The chunk as text, its UTF-8 checked once: serde_json reading bytes checks every key and
/// string it meets on its own, a fifth of the parse's instructions (callgrind).
pub(crate) fn chunk_text(data: &[u8]) -> Result<&str, ChunkError> {
    std::str::from_utf8(data).map_err(|e| {
        ChunkError(serde::de::Error::custom(format_args!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )))
    })
}

/// Parses one event's data: `[DONE]` or a JSON chunk.
pub fn parse_item(data: &[u8]) -> Result<StreamItem, ChunkError> {
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return Ok(StreamItem::Done);
    }
    parse_chunk(trimmed).map(|(info, _)| StreamItem::Chunk(info))
}

/// Parses a JSON chunk (`data` trimmed): what it tells the timer, and where its text is when
/// the text alone decides it (see [`ChunkReader`]): exactly one of `text`, `delta.content`,
/// `delta.reasoning_content`, `delta.reasoning` is a string, and the chunk has no tool call,
/// finish reason, usage (with `completion_tokens`) or error. Its span is the string's literal,
/// quotes included.
fn parse_chunk(data: &[u8]) -> Result<(ChunkInfo, Option<Range<usize>>), ChunkError> {
    let text = chunk_text(data)?;
    let raw: RawChunk<'_> = serde_json::from_str(text)?;
    let flat_error = raw.object.is_some_and(|o| o.0).then(|| {
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
    let mut span = None;
    if let Some(choice) = raw.choices {
        let delta_token = choice.delta.as_ref().is_some_and(|d| {
            non_empty(&d.content)
                || non_empty(&d.reasoning_content)
                || non_empty(&d.reasoning)
                || d.tool_calls.is_some()
        });
        info.has_token = non_empty(&choice.text) || delta_token || choice.finish_reason.is_some();
        info.finish_reason = choice.finish_reason.map(|t| t.0.into_owned());
        let delta = choice.delta.as_ref();
        let strings = [
            choice.text.as_ref(),
            delta.and_then(|d| d.content.as_ref()),
            delta.and_then(|d| d.reasoning_content.as_ref()),
            delta.and_then(|d| d.reasoning.as_ref()),
        ];
        let tool_call = delta.is_some_and(|d| d.tool_calls.is_some());
        let mut present = strings.into_iter().flatten();
        if let (Some(only), None) = (present.next(), present.next())
            && !tool_call
            && info.finish_reason.is_none()
            && info.usage.is_none()
            && info.error.is_none()
        {
            // a slice of `text` (serde_json lends a raw value from its input): where it is in
            // it, checked, so a copy could never pass for the chunk's own bytes
            span = (only.0.as_ptr() as usize)
                .checked_sub(text.as_ptr() as usize)
                .map(|at| at..at + only.0.len())
                .filter(|r| {
                    text.get(r.clone())
                        .is_some_and(|s| std::ptr::eq(s.as_ptr(), only.0.as_ptr()))
                });
        }
    }
    Ok((info, span))
}

/// One stream's chunk parser: [`parse_item`], but a chunk that has the shape of the last one
/// whose text alone decided it (every byte the same but the text string's, as vLLM sends
/// each token of a stream: the same id, model and fields, another token) is read from that
/// string, without parsing the rest again. The other bytes are the ones parsed in full, so
/// the chunk is the same JSON but for the string, whose syntax is checked (quotes, escapes,
/// control characters, UTF-8): what [`parse_item`] would tell, at a seventh of its cost (the
/// `hot_path` bench). Any other chunk is parsed in full and may become the shape. (A usage
/// object without `completion_tokens` is no usage: in the shape, it stays none.)
#[derive(Debug, Default)]
pub struct ChunkReader {
    /// The shape's chunk, empty when there is none yet.
    shape: Vec<u8>,
    /// Where its text string is in it.
    text: Range<usize>,
    /// Chunks read by their shape.
    #[cfg(test)]
    by_shape: usize,
}

impl ChunkReader {
    /// A reader for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one event's data, as [`parse_item`] does.
    pub fn parse(&mut self, data: &[u8]) -> Result<StreamItem, ChunkError> {
        let trimmed = data.trim_ascii();
        if let Some(token) = self.read_by_shape(trimmed) {
            #[cfg(test)]
            {
                self.by_shape += 1;
            }
            return Ok(StreamItem::Chunk(ChunkInfo {
                has_token: token,
                ..ChunkInfo::default()
            }));
        }
        if trimmed == b"[DONE]" {
            return Ok(StreamItem::Done);
        }
        let (info, span) = parse_chunk(trimmed)?;
        if let Some(span) = span {
            self.shape.clear();
            self.shape.extend_from_slice(trimmed);
            self.text = span;
        }
        Ok(StreamItem::Chunk(info))
    }

    /// Whether the chunk `data`, of the shape's, carries a token (its string is not empty);
    /// `None` when it is not of the shape or its string is not a JSON string.
    fn read_by_shape(&self, data: &[u8]) -> Option<bool> {
        let (before, after) = (
            self.shape.get(..self.text.start)?,
            self.shape.get(self.text.end..)?,
        );
        if self.shape.is_empty()
            || data.len() < before.len() + after.len()
            || !data.starts_with(before)
            || !data.ends_with(after)
        {
            return None;
        }
        let literal = &data[before.len()..data.len() - after.len()];
        is_string_literal(literal).then(|| literal != b"\"\"")
    }
}

/// Whether `b` is one JSON string literal: quotes around characters that are not a quote,
/// a backslash or a control character unless escaped (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, `\u` and four hex digits), in UTF-8. A `\u` escape is not decoded (as in
/// [`NonEmptyStr`]).
fn is_string_literal(b: &[u8]) -> bool {
    let [b'"', inner @ .., b'"'] = b else {
        return false;
    };
    let mut i = 0;
    while let Some(&c) = inner.get(i) {
        i += match c {
            b'"' | 0..=0x1F => return false,
            b'\\' => match inner.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                Some(b'u')
                    if inner
                        .get(i + 2..i + 6)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                {
                    6
                }
                _ => return false,
            },
            _ => 1,
        };
    }
    std::str::from_utf8(inner).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for p in parts {
            d.push(p);
            while let Some(ev) = d.next_event().unwrap() {
                out.push(String::from_utf8(ev.to_vec()).unwrap());
            }
        }
        out
    }

    #[test]
    fn a_chunk_that_is_not_utf8_is_malformed_wherever_the_bad_byte_is() {
        // checked once for the whole chunk, not per string: a bad byte in a key, in the text
        // or between values is refused the same way
        for chunk in [
            &b"{\"choices\":[{\"text\":\"caf\xE9\"}]}"[..],
            b"{\"cho\xFFices\":[{\"text\":\"x\"}]}",
            b"{\"choices\":[{\"text\":\"x\"}]\xC0}",
        ] {
            let e = parse_item(chunk).unwrap_err().to_string();
            assert!(e.contains("invalid UTF-8 at byte"), "{e}");
        }
        let e = crate::api::Api::Llamacpp
            .parse_item(b"{\"content\":\"\xE9\",\"stop\":false}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid UTF-8 at byte 12"), "{e}");
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
    fn real_streams_read_by_their_shape_tell_what_they_parsed_in_full_tell() {
        for (file, full) in [
            // the first token teaches the shape; its last chunk (finish reason) and the
            // usage chunk are parsed in full
            ("completions_stream.sse", 3),
            // and the role-only first chunk, whose shape no token has
            ("chat_stream.sse", 4),
            ("chat_stream_no_usage.sse", 3),
        ] {
            let text = std::fs::read(format!(
                "{}/src/client/fixtures/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let events = decode_all(&[&text]);
            let mut reader = ChunkReader::new();
            for e in &events {
                assert_eq!(
                    reader.parse(e.as_bytes()).unwrap(),
                    parse_item(e.as_bytes()).unwrap(),
                    "{file}: {e}"
                );
            }
            // every event but [DONE] and the ones parsed in full
            assert_eq!(reader.by_shape, events.len() - 1 - full, "{file}");
        }
    }

    #[test]
    fn a_shape_is_only_a_chunk_whose_text_alone_decides_it() {
        let token =
            |t: &str| format!(r#"{{"choices":[{{"index":0,"text":"{t}","finish_reason":null}}]}}"#);
        let mut reader = ChunkReader::new();
        for (i, t) in ["a", "", "b\\n", "caf\\u00e9"].iter().enumerate() {
            let chunk = token(t);
            let item = reader.parse(chunk.as_bytes()).unwrap();
            assert_eq!(item, parse_item(chunk.as_bytes()).unwrap(), "{chunk}");
            // the first teaches the shape, the others are read by it
            assert_eq!(reader.by_shape, i, "{chunk}");
        }
        // chunks whose text does not decide them alone are never a shape: each repeated
        // with another text is parsed in full again
        for shape in [
            r#"{"choices":[{"text":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"text":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"choices":[{"text":{}}],"error":{"message":"m"}}"#,
            r#"{"object":"error","message":"m","choices":[{"text":{}}]}"#,
            r#"{"choices":[{"delta":{"content":{},"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{"content":{},"reasoning_content":"x"}}]}"#,
        ] {
            let mut reader = ChunkReader::new();
            for t in ["a", "b", "c"] {
                let chunk = shape.replace("{}", &format!("\"{t}\""));
                let item = reader.parse(chunk.as_bytes()).unwrap();
                assert_eq!(item, parse_item(chunk.as_bytes()).unwrap(), "{chunk}");
            }
            assert_eq!(reader.by_shape, 0, "{shape}");
        }
    }

    #[test]
    fn a_string_literal_is_what_json_calls_one() {
        for ok in [
            &br#""""#[..],
            br#""a""#,
            br#""\"\\\/\b\f\n\r\t""#,
            br#""\u00e9\uD83D""#,
            "\"caf\u{e9}\"".as_bytes(),
        ] {
            assert!(is_string_literal(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"\"",
            b"a",
            br#""a"b""#,
            br#""a\""#,
            br#""\x""#,
            br#""\u00g0""#,
            br#""\u00""#,
            b"\"a\nb\"",
            b"\"\xE9\"",
            b"null",
        ] {
            assert!(!is_string_literal(bad), "{}", String::from_utf8_lossy(bad));
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
