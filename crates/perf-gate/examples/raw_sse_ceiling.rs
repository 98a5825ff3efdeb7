//! The client's ceiling without hyper: `N` tasks that each keep one HTTP/1.1 connection and
//! read its chunked SSE answers straight from the socket in their own task (no connection
//! task, no body channel), through load-test's own SSE decoder and chunk parser, timing each
//! token as load-test does. `scripts/bench-compare.sh` runs it beside load-test to show what a
//! lower-level body reader would save (issue 13's CPU and zero-delay goals).
//!
//! A measuring tool, not a client: keep-alive over plain TCP only, `200` answers only, and any
//! surprise panics. Usage: `raw_sse_ceiling HOST:PORT CONCURRENCY SECONDS`; prints
//! `requests=N wall_s=S tokens_per_request=T`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use perf_gate::client::sse::{ChunkReader, SseDecoder, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection and what has been read from it but not consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
}

impl Conn {
    /// Reads more bytes after the unconsumed ones (moved to the front when past half way).
    async fn fill(&mut self) {
        if self.pos == self.filled {
            (self.pos, self.filled) = (0, 0);
        } else if self.pos > self.buf.len() / 2 {
            self.buf.copy_within(self.pos..self.filled, 0);
            (self.filled, self.pos) = (self.filled - self.pos, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.filled..])
            .await
            .unwrap();
        assert!(n > 0, "the server closed the connection");
        self.filled += n;
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Consumes the response head (a 200 is expected).
    async fn head(&mut self) {
        loop {
            if let Some(i) = memchr::memmem::find(self.unread(), b"\r\n\r\n") {
                assert!(self.unread().starts_with(b"HTTP/1.1 200"), "not a 200");
                self.pos += i + 4;
                return;
            }
            self.fill().await;
        }
    }
}

/// What one answer's tokens were.
#[derive(Default)]
struct Timing {
    ttft_s: f64,
    gaps: Vec<f32>,
    last: Option<Instant>,
    tokens: u64,
    done: bool,
    /// The stream's chunks, read as load-test reads them.
    chunks: ChunkReader,
}

impl Timing {
    fn event(&mut self, data: &[u8], start: Instant, now: Instant) {
        match self.chunks.parse(data).expect("a chunk") {
            StreamItem::Done => self.done = true,
            StreamItem::Chunk(info) | StreamItem::Final(info) if info.has_token => {
                match self.last {
                    None => self.ttft_s = now.duration_since(start).as_secs_f64(),
                    Some(p) => self.gaps.push(now.duration_since(p).as_secs_f32()),
                }
                self.last = Some(now);
                self.tokens += 1;
            }
            _ => {}
        }
    }
}

/// The size of a chunk from its size line (hex digits, then extensions).
fn chunk_size(line: &[u8]) -> usize {
    line.iter()
        .map_while(|&c| (c as char).to_digit(16))
        .fold(0, |n, d| n * 16 + d as usize)
}

/// Reads one chunked body to its end, feeding its bytes through the SSE decoder.
async fn body(conn: &mut Conn, start: Instant, t: &mut Timing) {
    let mut decoder = SseDecoder::new();
    let (mut left, mut crlf) = (0usize, false);
    loop {
        let now = Instant::now();
        loop {
            if crlf {
                if conn.unread().len() < 2 {
                    break;
                }
                conn.pos += 2;
                crlf = false;
            }
            if left == 0 {
                let Some(i) = memchr::memmem::find(conn.unread(), b"\r\n") else {
                    break;
                };
                let size = chunk_size(&conn.unread()[..i]);
                conn.pos += i + 2;
                if size == 0 {
                    while conn.unread().len() < 2 {
                        conn.fill().await;
                    }
                    conn.pos += 2;
                    return;
                }
                left = size;
            }
            let take = left.min(conn.unread().len());
            if take == 0 {
                break;
            }
            decoder.push(&conn.unread()[..take]);
            conn.pos += take;
            left -= take;
            crlf = left == 0;
            while let Some(data) = decoder.next_event().expect("an event") {
                t.event(&data, start, now);
            }
        }
        conn.fill().await;
    }
}

async fn worker(addr: String, request: Arc<Vec<u8>>, stop: Instant, done: Arc<AtomicU64>) -> u64 {
    let stream = TcpStream::connect(&addr).await.expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    let mut conn = Conn {
        stream,
        buf: vec![0; 16 * 1024],
        pos: 0,
        filled: 0,
    };
    let mut tokens = 0;
    while Instant::now() < stop {
        conn.stream.write_all(&request).await.expect("sends");
        let start = Instant::now();
        conn.head().await;
        let mut t = Timing::default();
        body(&mut conn, start, &mut t).await;
        assert!(
            t.done && t.ttft_s > 0.0,
            "an answer without [DONE] or tokens"
        );
        std::hint::black_box(&t.gaps);
        tokens += t.tokens;
        done.fetch_add(1, Ordering::Relaxed);
    }
    tokens
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, concurrency, seconds] = &args[..] else {
        eprintln!("usage: raw_sse_ceiling HOST:PORT CONCURRENCY SECONDS");
        std::process::exit(2);
    };
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let body = br#"{"model":"candidate","prompt":"Say something long.","max_tokens":128,"temperature":0.0,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}"#;
    let mut request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let request = Arc::new(request);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tokens: u64 = runtime.block_on(async {
        let stop = Instant::now() + Duration::from_secs_f64(seconds);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            set.spawn(worker(addr.clone(), request.clone(), stop, done.clone()));
        }
        let mut tokens = 0;
        while let Some(r) = set.join_next().await {
            tokens += r.expect("a worker");
        }
        tokens
    });
    let n = done.load(Ordering::Relaxed);
    println!(
        "requests={n} wall_s={:.3} tokens_per_request={:.1}",
        started.elapsed().as_secs_f64(),
        tokens as f64 / n.max(1) as f64
    );
}
