//! One streaming request, timed where its bytes arrive: in the request's own task, with no
//! channel hop between the socket and the clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::h1::{self, H1Client};
use super::record::{ErrorKind, NORMAL_FINISH_REASONS, RequestRecord};
use super::sse::{SseDecoder, StreamItem};
use crate::api::Api;
use crate::workload::PreparedRequest;

/// Longest error detail kept per request.
const MAX_ERROR_LEN: usize = 240;

/// Most bytes read of a non-2xx answer's body: enough for the excerpt kept in the record. The
/// rest is never read; the connection is dropped with it (it cannot be reused anyway).
const MAX_ERROR_BODY: usize = 4 * 1024;

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

/// When a request started and when it must be over.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    deadline: Instant,
    timeout: Duration,
}

#[derive(Debug)]
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

/// The whole-request deadline has passed.
fn timed_out(timeout: Duration) -> Failure {
    Failure::new(
        ErrorKind::Timeout,
        format!("no complete response within {timeout:?}"),
    )
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

/// The failure of a request on the load's own HTTP/1.1 client, of the kind reqwest's would be.
fn classify_h1(e: h1::H1Error) -> Failure {
    let kind = match e.stage {
        h1::Stage::Connect => ErrorKind::Connect,
        h1::Stage::ConnectTimeout => ErrorKind::Timeout,
        h1::Stage::Head => ErrorKind::Transport,
        h1::Stage::Body => ErrorKind::StreamIncomplete,
    };
    Failure::new(kind, e.message)
}

/// How a request reaches the server.
#[derive(Clone, Copy)]
pub(crate) enum Via<'a> {
    /// reqwest, to this full URL.
    Reqwest(&'a reqwest::Client, &'a str),
    /// The load's own HTTP/1.1 client (`http` or `https`), to this request target.
    Native(&'a H1Client, &'a str),
}

/// An answer's body as its bytes arrive.
trait Body {
    /// The next bytes of the body; `None` at its end.
    async fn next_bytes(&mut self) -> Result<Option<&[u8]>, Failure>;

    /// When the bytes `next_bytes` gave last arrived, where the client knows better than its
    /// clock read now (the own client's kernel receive times).
    fn arrived(&self) -> Option<Instant> {
        None
    }
}

/// A body that is a stream of `Bytes` (reqwest's, or a test's).
struct StreamBody<S> {
    stream: S,
    last: Bytes,
}

impl<S: Stream<Item = Result<Bytes, Failure>> + Unpin> StreamBody<S> {
    fn new(stream: S) -> Self {
        StreamBody {
            stream,
            last: Bytes::new(),
        }
    }
}

impl<S: Stream<Item = Result<Bytes, Failure>> + Unpin> Body for StreamBody<S> {
    async fn next_bytes(&mut self) -> Result<Option<&[u8]>, Failure> {
        match self.stream.next().await.transpose()? {
            Some(b) => {
                self.last = b;
                Ok(Some(&self.last))
            }
            None => Ok(None),
        }
    }
}

impl Body for h1::Response<'_> {
    async fn next_bytes(&mut self) -> Result<Option<&[u8]>, Failure> {
        self.chunk().await.map_err(classify_h1)
    }

    fn arrived(&self) -> Option<Instant> {
        h1::Response::arrived(self)
    }
}

/// The body of a reqwest answer.
fn reqwest_body(
    resp: reqwest::Response,
) -> StreamBody<impl Stream<Item = Result<Bytes, Failure>> + Unpin> {
    StreamBody::new(Box::pin(resp.bytes_stream().map_err(|e| classify(e, true))))
}

/// Sends `req` to `url` and reads its SSE stream (of `api`'s kind) to the end, timing each
/// content chunk. Never fails: every outcome is a [`RequestRecord`], failures included.
pub(crate) async fn execute(
    api: Api,
    via: Via<'_>,
    auth: Option<&HeaderValue>,
    req: &PreparedRequest,
    timing: Timing,
    traceparent: Option<super::trace::TraceParent>,
) -> RequestRecord {
    let start = Instant::now();
    let offset = |t: Instant| t.saturating_duration_since(timing.load_start).as_secs_f64();
    let mut rec = RequestRecord {
        seq: timing.seq,
        prompt_index: req.prompt_index,
        arm: req.arm,
        probe: None,
        step: None,
        phase: Default::default(),
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
        traceparent: traceparent.map(|t| t.as_str().to_owned()),
        target: None,
        member: None,
    };
    // The deadline is enforced twice: `timeout_at` ends the request while it waits (for the
    // answer, for a chunk), and `read_stream` checks the clock at every chunk, because a body
    // whose chunks are always ready never lets the timer run.
    let clock = Clock {
        start,
        deadline: start + timing.timeout,
        timeout: timing.timeout,
    };
    rec.probe = req.probe;
    let outcome = match (req.probe, via) {
        (Some(_), Via::Reqwest(http, url)) => {
            tokio::time::timeout_at(clock.deadline.into(), get_probe(http, url, auth, &mut rec))
                .await
                .unwrap_or_else(|_| Err(timed_out(timing.timeout)))
        }
        (Some(_), Via::Native(h1, target)) => tokio::time::timeout_at(
            clock.deadline.into(),
            get_probe_h1(h1, target, auth, start, &mut rec),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out(timing.timeout))),
        (None, Via::Reqwest(http, url)) => tokio::time::timeout_at(
            clock.deadline.into(),
            read_stream(api, http, url, auth, req, clock, &mut rec),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out(timing.timeout))),
        (None, Via::Native(h1, target)) => tokio::time::timeout_at(
            clock.deadline.into(),
            read_stream_h1(api, h1, target, auth, req, clock, &mut rec),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out(timing.timeout))),
    };
    if outcome.is_err() || rec.total_s == 0.0 {
        // a success's end was taken at [DONE] (before the body was drained)
        rec.total_s = start.elapsed().as_secs_f64();
    }
    if req.probe.is_some() && outcome.is_ok() {
        // a GET task's latency: the whole answer
        rec.e2e_s = Some(rec.total_s);
    }
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
    api: Api,
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    req: &PreparedRequest,
    clock: Clock,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut builder = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(req.body.clone());
    if let Some(a) = auth {
        builder = builder.header(AUTHORIZATION, a.clone());
    }
    if let Some(t) = rec.traceparent.as_deref() {
        builder = builder.header("traceparent", t);
    }
    let resp = builder.send().await.map_err(|e| classify(e, false))?;
    let status = resp.status();
    rec.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = excerpt(&mut reqwest_body(resp)).await;
        return Err(Failure::new(
            ErrorKind::Http,
            format!("HTTP {}: {}", status.as_u16(), body.trim()),
        ));
    }
    let mut body = reqwest_body(resp);
    let outcome = read_events(api, &mut body, clock, rec).await;
    if outcome.is_ok() {
        // the request ended at [DONE]; what follows only returns the connection to the pool
        rec.total_s = clock.start.elapsed().as_secs_f64();
        drain_after_done(&mut body, clock.deadline).await;
    }
    outcome
}

/// [`read_stream`] on the load's own HTTP/1.1 client: the same request, headers and outcomes.
async fn read_stream_h1(
    api: Api,
    h1: &H1Client,
    target: &str,
    auth: Option<&HeaderValue>,
    req: &PreparedRequest,
    clock: Clock,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut headers: [(&str, &[u8]); 4] = [
        ("content-type", b"application/json"),
        ("accept", b"*/*"),
        ("", b""),
        ("", b""),
    ];
    let mut n = 2;
    if let Some(a) = auth {
        headers[n] = ("authorization", a.as_bytes());
        n += 1;
    }
    if let Some(t) = rec.traceparent.as_deref() {
        headers[n] = ("traceparent", t.as_bytes());
        n += 1;
    }
    let request = h1::Request {
        method: "POST",
        target,
        headers: &headers[..n],
        body: &req.body,
    };
    let mut resp = send_h1(h1, &request, &mut rec.http_status).await?;
    let outcome = read_events(api, &mut resp, clock, rec).await;
    if outcome.is_ok() {
        rec.total_s = since(clock.start, resp.arrived());
        if drain_after_done(&mut resp, clock.deadline).await {
            resp.finish();
        }
    }
    outcome
}

/// Sends `request` on the load's own client and records the answer's status in `http_status`:
/// a 2xx answer whose body is still to be read, else an [`ErrorKind::Http`] failure with its
/// excerpt.
async fn send_h1<'c>(
    h1: &'c H1Client,
    request: &h1::Request<'_>,
    http_status: &mut Option<u16>,
) -> Result<h1::Response<'c>, Failure> {
    let mut resp = h1.send(request, false).await.map_err(classify_h1)?;
    let status = resp.status();
    *http_status = Some(status);
    if !(200..300).contains(&status) {
        let body = excerpt(&mut resp).await;
        return Err(Failure::new(
            ErrorKind::Http,
            format!("HTTP {status}: {}", body.trim()),
        ));
    }
    Ok(resp)
}

/// A GET task of `--task-mix` (`/health`, `/v1/models`): a 2xx answer read to its end.
async fn get_probe(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&HeaderValue>,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut builder = http.get(url);
    if let Some(a) = auth {
        builder = builder.header(AUTHORIZATION, a.clone());
    }
    let resp = builder.send().await.map_err(|e| classify(e, false))?;
    let status = resp.status();
    rec.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = excerpt(&mut reqwest_body(resp)).await;
        return Err(Failure::new(
            ErrorKind::Http,
            format!("HTTP {}: {}", status.as_u16(), body.trim()),
        ));
    }
    resp.bytes().await.map_err(|e| classify(e, true))?;
    Ok(())
}

/// [`get_probe`] on the load's own HTTP/1.1 client.
async fn get_probe_h1(
    h1: &H1Client,
    target: &str,
    auth: Option<&HeaderValue>,
    start: Instant,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut headers: [(&str, &[u8]); 2] = [("accept", b"*/*"), ("", b"")];
    let n = match auth {
        Some(a) => {
            headers[1] = ("authorization", a.as_bytes());
            2
        }
        None => 1,
    };
    let request = h1::Request {
        method: "GET",
        target,
        headers: &headers[..n],
        body: b"",
    };
    let mut resp = send_h1(h1, &request, &mut rec.http_status).await?;
    while resp.next_bytes().await?.is_some() {}
    rec.total_s = since(start, resp.arrived());
    resp.finish();
    Ok(())
}

/// Seconds from `start` to when the last bytes `arrived` (the kernel's receive time), or to now
/// where it is not known.
fn since(start: Instant, arrived: Option<Instant>) -> f64 {
    arrived
        .map_or_else(Instant::now, |a| a.max(start))
        .duration_since(start)
        .as_secs_f64()
}

/// Most a body is read past `[DONE]`, and for how long.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(100);

/// vLLM ends the chunked body right after `[DONE]`; reading it to its end returns the
/// connection to the pool. A body dropped before its last chunk closes its connection, and
/// the next request on that slot paid a TCP (and TLS) handshake inside its TTFT (seen: 71 new
/// connections during a 512-request load at 128 slots, all opened before the load). Bounded
/// in bytes and time, and never past the request's deadline (the answer is already judged).
/// Whether the body was read to its end (an error ends it too: then the connection is not
/// reused).
async fn drain_after_done(body: &mut impl Body, deadline: Instant) -> bool {
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(Duration::from_millis(5))
        .min(DRAIN_TIME);
    if budget.is_zero() {
        return false;
    }
    let drained = tokio::time::timeout(budget, async {
        let mut read = 0usize;
        while let Ok(Some(chunk)) = body.next_bytes().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                return false;
            }
        }
        true
    })
    .await;
    drained == Ok(true)
}

/// Reads the SSE events of a 2xx answer's `body` to `[DONE]`, timing each content chunk.
/// Checks the deadline at every chunk: `execute`'s timer only runs while this waits, and a body
/// whose chunks are always ready (a client slower than its server) never waits.
async fn read_events(
    api: Api,
    body: &mut impl Body,
    clock: Clock,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut decoder = SseDecoder::new();
    // vLLM's chunks of one stream differ only in their token: read by their shape
    let mut chunks = super::sse::ChunkReader::new();
    let mut last_token: Option<Instant> = None;
    loop {
        let Some(chunk) = body.next_bytes().await? else {
            return Err(Failure::new(
                ErrorKind::StreamIncomplete,
                format!(
                    "stream ended before {} after {} content chunks",
                    api.end_marker(),
                    rec.content_chunks
                ),
            ));
        };
        decoder.push(chunk);
        // the bytes' arrival where the kernel gave it (not delayed by the time this task
        // waited to run), never before the request was sent or the previous token
        let now = match body.arrived() {
            Some(at) => at.max(last_token.unwrap_or(clock.start)),
            None => Instant::now(),
        };
        if now >= clock.deadline {
            return Err(timed_out(clock.timeout));
        }
        while let Some(data) = decoder
            .next_event()
            .map_err(|e| Failure::new(ErrorKind::Malformed, e.to_string()))?
        {
            let item = match api {
                Api::Openai => chunks.parse(&data),
                _ => api.parse_item(&data),
            }
            .map_err(|e| Failure::new(ErrorKind::Malformed, e.to_string()))?;
            let (info, last) = match item {
                // Past the deadline the answer came too late, however complete it is.
                StreamItem::Done if now >= clock.deadline => {
                    return Err(timed_out(clock.timeout));
                }
                StreamItem::Done => return judge_complete(rec),
                StreamItem::Chunk(info) => (info, false),
                StreamItem::Final(info) => (info, true),
            };
            if let Some(message) = info.error {
                return Err(Failure::new(ErrorKind::StreamError, message));
            }
            if info.has_token {
                match last_token {
                    None => rec.ttft_s = Some(now.duration_since(clock.start).as_secs_f64()),
                    Some(prev) => rec.itl_gaps.push(now.duration_since(prev).as_secs_f32()),
                }
                last_token = Some(now);
                rec.e2e_s = Some(now.duration_since(clock.start).as_secs_f64());
                rec.content_chunks += 1;
            }
            if let Some(u) = info.usage {
                rec.output_tokens = Some(u.completion_tokens);
                rec.prompt_tokens = Some(u.prompt_tokens);
            }
            if info.finish_reason.is_some() {
                rec.finish_reason = info.finish_reason;
            }
            // a stream without a sentinel (llama.cpp) is complete at its last chunk
            if last {
                if now >= clock.deadline {
                    return Err(timed_out(clock.timeout));
                }
                return judge_complete(rec);
            }
        }
    }
}

/// The first [`MAX_ERROR_BODY`] bytes of an error answer's body, as text; a body that breaks
/// off gives what arrived. The caller drops the response, and the connection with it.
async fn excerpt(body: &mut impl Body) -> String {
    let mut head = Vec::new();
    while head.len() < MAX_ERROR_BODY {
        match body.next_bytes().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY - head.len();
                head.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[cfg(test)]
mod tests {
    //! Against raw TCP servers: each test needs a server that misbehaves at full speed (endless
    //! streams, endless error bodies, one enormous line), which neither vllm-sim nor wiremock
    //! can be made to do, and the server side counts what it wrote.
    use super::*;
    use crate::workload::Endpoint;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// The server gives up after this long whatever the client does (every loop is bounded).
    const SERVER_LIMIT: Duration = Duration::from_secs(60);

    const OK_HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    const TOKEN: &[u8] = b"data: {\"choices\":[{\"text\":\"tok\",\"finish_reason\":null}]}\n\n";

    /// Serves one connection on 127.0.0.1: reads the request head, then writes `head` and the
    /// chunks `body` yields until it yields `None`, the client goes away, or [`SERVER_LIMIT`]
    /// passes. Returns the URL and the body bytes written.
    fn serve(
        head: &'static [u8],
        mut body: impl FnMut(u64) -> Option<Vec<u8>> + Send + 'static,
    ) -> (String, JoinHandle<u64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/completions", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_write_timeout(Some(SERVER_LIMIT)).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return 0,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let started = Instant::now();
            let mut written = 0u64;
            if conn.write_all(head).is_err() {
                return 0;
            }
            while started.elapsed() < SERVER_LIMIT {
                let Some(chunk) = body(written) else { break };
                if conn.write_all(&chunk).is_err() {
                    break;
                }
                written += chunk.len() as u64;
            }
            written
        });
        (url, server)
    }

    fn request() -> PreparedRequest {
        PreparedRequest {
            probe: None,
            prompt_index: 0,
            arm: None,
            endpoint: Endpoint::Completions,
            body: bytes::Bytes::from_static(b"{\"prompt\":\"hi\"}"),
        }
    }

    /// Sends [`request`] to `url` with reqwest, or with the load's own client (`native`).
    async fn send(url: &str, timeout: Duration, native: bool) -> RequestRecord {
        let http = reqwest::Client::builder().http1_only().build().unwrap();
        let parsed = url::Url::parse(url).unwrap();
        let h1 = H1Client::new(&parsed, 4, Duration::from_secs(5), None).unwrap();
        let now = Instant::now();
        let timing = Timing {
            seq: 0,
            scheduled: now,
            load_start: now,
            timeout,
        };
        let via = if native {
            Via::Native(&h1, parsed.path())
        } else {
            Via::Reqwest(&http, url)
        };
        execute(Api::Openai, via, None, &request(), timing, None).await
    }

    fn empty_record() -> RequestRecord {
        RequestRecord {
            seq: 0,
            prompt_index: 0,
            arm: None,
            probe: None,
            step: None,
            phase: Default::default(),
            scheduled_s: 0.0,
            start_s: 0.0,
            http_status: Some(200),
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
            target: None,
            member: None,
            itl_gaps: Vec::new(),
            traceparent: None,
        }
    }

    /// Runs `read_events` over `body` with a `timeout` deadline on a thread of its own, and
    /// gives up on it after 30 s (a loop that never yields cannot be timed out from inside).
    fn read_on_a_thread(
        body: impl Stream<Item = Result<Bytes, Failure>> + Send + 'static,
        timeout: Duration,
    ) -> (Result<(), Failure>, RequestRecord, Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let start = Instant::now();
            let clock = Clock {
                start,
                deadline: start + timeout,
                timeout,
            };
            let mut rec = empty_record();
            let mut body = StreamBody::new(Box::pin(body));
            let outcome =
                futures::executor::block_on(read_events(Api::Openai, &mut body, clock, &mut rec));
            let _ = tx.send((outcome, rec, start.elapsed()));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("read_events ran 30 s past a 0.2 s deadline")
    }

    #[test]
    fn serial_a_body_whose_chunks_are_always_ready_is_cut_off_at_the_deadline() {
        // Never Pending, never [DONE]: no timer can fire; the clock check at each chunk must.
        let body = futures::stream::repeat_with(|| Ok(Bytes::from_static(TOKEN)));
        let (outcome, rec, took) = read_on_a_thread(body, Duration::from_millis(200));
        let failure = outcome.unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Timeout, "{failure:?}");
        assert_eq!(failure.message, "no complete response within 200ms");
        assert!(rec.content_chunks > 0);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn serial_a_body_whose_chunks_each_take_long_is_cut_off_at_the_deadline() {
        // Each chunk costs 50 ms of this thread's time (as a slow client would spend on it):
        // the request ends at the first chunk past its deadline, a timeout, not a success.
        let mut chunks = vec![b"data: [DONE]\n\n".as_slice()];
        chunks.extend(std::iter::repeat_n(TOKEN, 20));
        let body = futures::stream::iter(chunks.into_iter().rev()).map(|c| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(Bytes::from_static(c))
        });
        let (outcome, rec, _) = read_on_a_thread(body, Duration::from_millis(200));
        let failure = outcome.unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Timeout, "{failure:?}");
        assert!((3..=20).contains(&rec.content_chunks), "{rec:?}");
        // The same body with time to spare completes.
        let mut chunks = vec![b"data: [DONE]\n\n".as_slice()];
        chunks.push(b"data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n");
        chunks.extend(std::iter::repeat_n(TOKEN, 3));
        let body =
            futures::stream::iter(chunks.into_iter().rev()).map(|c| Ok(Bytes::from_static(c)));
        let (outcome, rec, _) = read_on_a_thread(body, Duration::from_secs(5));
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(rec.content_chunks, 4);
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_clients_name_a_refused_connection_a_close_and_a_cut_body_alike(
        #[values(false, true)] native: bool,
    ) {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let rec = send(
            &format!("http://127.0.0.1:{port}/v1/completions"),
            Duration::from_secs(5),
            native,
        )
        .await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Connect), "{rec:?}");
        assert_eq!(rec.http_status, None);
        // the server reads the request and closes without a word
        let (url, server) = serve(b"", |_| None);
        let rec = send(&url, Duration::from_secs(5), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Transport), "{rec:?}");
        server.join().unwrap();
        // a chunked body cut inside a chunk, after a token
        const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let mut sent = false;
        let (url, server) = serve(CHUNKED, move |_| {
            let first = !sent;
            sent = true;
            first.then(|| {
                let mut c = format!("{:x}\r\n", TOKEN.len() + 10).into_bytes();
                c.extend_from_slice(TOKEN);
                c
            })
        });
        let rec = send(&url, Duration::from_secs(5), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::StreamIncomplete), "{rec:?}");
        assert_eq!(rec.content_chunks, 1, "{rec:?}");
        assert_eq!(rec.http_status, Some(200));
        server.join().unwrap();
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_a_stream_that_never_ends_fails_as_a_timeout_at_its_deadline(
        #[values(false, true)] native: bool,
    ) {
        // Tokens as fast as the socket takes them, never [DONE]: the client is the slower side,
        // so a chunk is always ready and the timer alone would never get to fire.
        let block: Vec<u8> = TOKEN.repeat(64 * 1024 / TOKEN.len());
        let (url, server) = serve(OK_HEAD, move |_| Some(block.clone()));
        let rec = send(&url, Duration::from_secs(1), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Timeout), "{rec:?}");
        assert!(rec.content_chunks > 0, "tokens were read: {rec:?}");
        // Generous: the deadline is 1 s, a loaded 2-core machine may add a lot.
        assert!(rec.total_s < 15.0, "cut off at the deadline: {rec:?}");
        assert!(!rec.ok);
        server.join().unwrap();
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_a_line_longer_than_the_cap_is_malformed_without_reading_it_all(
        #[values(false, true)] native: bool,
    ) {
        // A 64 MiB line: refused once 16 MiB of it are buffered.
        let total = 64u64 << 20;
        let (url, server) = serve(OK_HEAD, move |written| {
            if written == 0 {
                Some(b"data: {\"choices\":[{\"text\":\"".to_vec())
            } else if written < total {
                Some(vec![b'a'; 1 << 20])
            } else {
                None
            }
        });
        let rec = send(&url, Duration::from_secs(120), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Malformed), "{rec:?}");
        let error = rec.error.as_deref().unwrap();
        assert!(
            error.starts_with("an SSE line is longer than 16777216 bytes"),
            "{error}"
        );
        assert!(rec.total_s < 60.0, "{rec:?}");
        let written = server.join().unwrap();
        assert!(written < total, "the client stopped reading: {written}");
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_a_long_line_below_the_cap_is_read_well_within_the_timeout(
        #[values(false, true)] native: bool,
    ) {
        // One 12 MiB token line, then the end: linear decoding reads it in well under a
        // second; the old rescanning decoder took minutes and finished "ok" after its deadline.
        let text = "a".repeat(12 << 20);
        let body = format!(
            "data: {{\"choices\":[{{\"text\":\"{text}\",\"finish_reason\":null}}]}}\n\n\
             data: {{\"choices\":[{{\"text\":\"\",\"finish_reason\":\"length\"}}]}}\n\n\
             data: [DONE]\n\n"
        )
        .into_bytes();
        let mut parts = body
            .chunks(16 * 1024)
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        parts.reverse();
        let (url, server) = serve(OK_HEAD, move |_| parts.pop());
        let rec = send(&url, Duration::from_secs(30), native).await;
        assert!(rec.ok, "{rec:?}");
        assert_eq!(rec.content_chunks, 2);
        assert!(rec.total_s < 30.0);
        server.join().unwrap();
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_an_error_body_is_read_only_as_far_as_its_excerpt(
        #[values(false, true)] native: bool,
    ) {
        // A 500 announcing 1 GiB of body: the excerpt is kept, the rest never read.
        const HEAD: &[u8] =
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1073741824\r\n\r\n";
        let (url, server) = serve(HEAD, |written| {
            let mut chunk = vec![b'E'; 1 << 20];
            if written == 0 {
                chunk[..14].copy_from_slice(b"engine failed:");
            }
            (written < 1 << 30).then_some(chunk)
        });
        let rec = send(&url, Duration::from_secs(120), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Http), "{rec:?}");
        assert_eq!(rec.http_status, Some(500));
        let error = rec.error.as_deref().unwrap();
        assert!(error.starts_with("HTTP 500: engine failed:EEE"), "{error}");
        assert!(error.len() <= MAX_ERROR_LEN + '…'.len_utf8(), "{error}");
        let written = server.join().unwrap();
        // Socket buffers take a few MiB before the client drops the connection.
        assert!(
            written < 64 << 20,
            "{written} bytes of the error body were sent"
        );
    }

    #[rstest::rstest]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serial_an_endless_chunked_error_body_ends_with_its_excerpt(
        #[values(false, true)] native: bool,
    ) {
        const HEAD: &[u8] =
            b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n";
        let (url, server) = serve(HEAD, |_| {
            let mut chunk = b"100000\r\n".to_vec();
            chunk.extend(std::iter::repeat_n(b'x', 0x100000));
            chunk.extend_from_slice(b"\r\n");
            Some(chunk)
        });
        let rec = send(&url, Duration::from_secs(120), native).await;
        assert_eq!(rec.error_kind, Some(ErrorKind::Http), "{rec:?}");
        assert_eq!(rec.http_status, Some(503));
        assert!(rec.error.as_deref().unwrap().starts_with("HTTP 503: xxxx"));
        assert!(server.join().unwrap() < 64 << 20);
    }

    /// A token that arrives while the client's thread is busy (a pod throttled, a core shared)
    /// is timed at its arrival by the own client (the kernel's receive time), and at the read
    /// by reqwest. The server answers at once and sends its first token 50 ms later, the rest
    /// after 400 ms; once the server has the request, the client's only thread is blocked for
    /// 300 ms.
    #[rstest::rstest]
    #[tokio::test(flavor = "current_thread")]
    async fn a_token_that_waits_for_a_busy_client_is_timed_at_its_arrival_on_the_own_client(
        #[values(false, true)] native: bool,
    ) {
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let told = asked.clone();
        let (url, server) = serve(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 130\r\n\r\n",
            move |written| {
                let (wait, chunk): (u64, &[u8]) = match written {
                    0 => (50, TOKEN),
                    57 => (
                        350,
                        b"data: {\"choices\":[{\"text\":\"!\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
                    ),
                    _ => return None,
                };
                told.store(true, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(wait));
                Some(chunk.to_vec())
            },
        );
        let busy = async {
            while !asked.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let (rec, ()) = tokio::join!(send(&url, Duration::from_secs(10), native), busy);
        assert!(rec.ok, "{rec:?}");
        assert_eq!(rec.content_chunks, 2);
        let ttft = rec.ttft_s.unwrap();
        if native {
            assert!(
                (0.045..0.25).contains(&ttft),
                "TTFT {ttft} s: not the arrival"
            );
        } else {
            assert!(ttft >= 0.29, "TTFT {ttft} s");
        }
        assert!(rec.e2e_s.unwrap() >= 0.39, "{rec:?}");
        assert_eq!(server.join().unwrap(), 130);
    }
}
