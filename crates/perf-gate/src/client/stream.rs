//! One streaming request, timed where its bytes arrive: in the request's own task, with no
//! channel hop between the socket and the clock.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::record::{ErrorKind, NORMAL_FINISH_REASONS, RequestRecord};
use super::sse::{SseDecoder, StreamItem, parse_item};
use crate::workload::PreparedRequest;

/// Longest error detail kept per request.
const MAX_ERROR_LEN: usize = 240;

/// Everything a request needs besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Sequence number of the request.
    pub seq: u64,
    /// When the schedule wanted it sent.
    pub scheduled: Instant,
    /// Start of the load (offsets are measured from here).
    pub load_start: Instant,
    /// Whole-request deadline (`--request-timeout`).
    pub timeout: Duration,
}

struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Failure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_LEN {
            let mut cut = MAX_ERROR_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Failure { kind, message }
    }
}

/// Error text of a reqwest error with its causes and without the URL (which may hold credentials).
pub(crate) fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let e = e.without_url();
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

fn classify(e: reqwest::Error, in_body: bool) -> Failure {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if in_body {
        ErrorKind::StreamIncomplete
    } else {
        ErrorKind::Transport
    };
    Failure::new(kind, describe(e))
}

/// Sends `req` to `url` and reads its SSE stream to the end, timing each content chunk.
/// Never fails: every outcome is a [`RequestRecord`], failures included.
pub(crate) async fn execute(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    req: &PreparedRequest,
    timing: Timing,
) -> RequestRecord {
    let start = Instant::now();
    let offset = |t: Instant| t.saturating_duration_since(timing.load_start).as_secs_f64();
    let mut rec = RequestRecord {
        seq: timing.seq,
        prompt_index: req.prompt_index,
        scheduled_s: offset(timing.scheduled),
        start_s: offset(start),
        http_status: None,
        ok: false,
        error_kind: None,
        error: None,
        ttft_s: None,
        e2e_s: None,
        total_s: 0.0,
        content_chunks: 0,
        output_tokens: None,
        prompt_tokens: None,
        finish_reason: None,
        itl_mean_s: None,
        itl_max_s: None,
        itl_gaps: Vec::new(),
    };
    let outcome = tokio::time::timeout(
        timing.timeout,
        read_stream(http, url, auth, req, start, &mut rec),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Failure::new(
            ErrorKind::Timeout,
            format!("no complete response within {:?}", timing.timeout),
        ))
    });
    rec.total_s = start.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => rec.ok = true,
        Err(f) => {
            rec.error_kind = Some(f.kind);
            rec.error = Some(f.message);
        }
    }
    if !rec.itl_gaps.is_empty() {
        let sum: f64 = rec.itl_gaps.iter().map(|g| f64::from(*g)).sum();
        rec.itl_mean_s = Some(sum / rec.itl_gaps.len() as f64);
        rec.itl_max_s = rec.itl_gaps.iter().copied().reduce(f32::max).map(f64::from);
    }
    rec
}

/// A stream that reached `[DONE]` succeeded only if it generated something and ended normally.
fn judge_complete(rec: &RequestRecord) -> Result<(), Failure> {
    if rec.content_chunks == 0 {
        return Err(Failure::new(
            ErrorKind::EmptyResponse,
            "the stream completed without a generated token",
        ));
    }
    match rec.finish_reason.as_deref() {
        Some(r) if NORMAL_FINISH_REASONS.contains(&r) => Ok(()),
        Some(r) => Err(Failure::new(
            ErrorKind::AbnormalFinish,
            format!("the stream ended with finish_reason {r:?}"),
        )),
        // vLLM always names why a sequence ended; a stream that never says is not trusted.
        None => Err(Failure::new(
            ErrorKind::AbnormalFinish,
            "the stream completed without a finish_reason",
        )),
    }
}

async fn read_stream(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    req: &PreparedRequest,
    start: Instant,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut builder = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(req.body.clone());
    if let Some(a) = auth {
        builder = builder.header(AUTHORIZATION, a.clone());
    }
    let mut resp = builder.send().await.map_err(|e| classify(e, false))?;
    let status = resp.status();
    rec.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(Failure::new(
            ErrorKind::Http,
            format!("HTTP {}: {}", status.as_u16(), body.trim()),
        ));
    }
    let mut decoder = SseDecoder::new();
    let mut last_token: Option<Instant> = None;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(Failure::new(
                    ErrorKind::StreamIncomplete,
                    format!(
                        "stream ended before [DONE] after {} content chunks",
                        rec.content_chunks
                    ),
                ));
            }
            Err(e) => return Err(classify(e, true)),
        };
        let now = Instant::now();
        decoder.push(&chunk);
        while let Some(data) = decoder.next_event() {
            let item =
                parse_item(&data).map_err(|e| Failure::new(ErrorKind::Malformed, e.to_string()))?;
            let info = match item {
                StreamItem::Done => return judge_complete(rec),
                StreamItem::Chunk(info) => info,
            };
            if let Some(message) = info.error {
                return Err(Failure::new(ErrorKind::StreamError, message));
            }
            if info.has_token {
                match last_token {
                    None => rec.ttft_s = Some(now.duration_since(start).as_secs_f64()),
                    Some(prev) => rec.itl_gaps.push(now.duration_since(prev).as_secs_f32()),
                }
                last_token = Some(now);
                rec.e2e_s = Some(now.duration_since(start).as_secs_f64());
                rec.content_chunks += 1;
            }
            if let Some(u) = info.usage {
                rec.output_tokens = Some(u.completion_tokens);
                rec.prompt_tokens = Some(u.prompt_tokens);
            }
            if info.finish_reason.is_some() {
                rec.finish_reason = info.finish_reason;
            }
        }
    }
}
