//! SSE decoder throughput (MB/s), printed, not asserted: a normal vLLM token stream, and one
//! 30 MB line, each fed in 16 KiB network chunks. "before" is the decoder as it was (it searched
//! the whole buffer for a line end on every call, so a long line cost quadratic time), kept here
//! in miniature as the baseline; "after" is `perf_gate::client::sse::SseDecoder`.
//!
//! Run: `cargo bench -p perf-gate --bench sse_throughput` (SSE_BENCH_LONG_MB sets the long
//! line, 30 by default; the "before" decoder takes ~30 s on it).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use perf_gate::client::sse::{SseDecoder, StreamItem, parse_item};

const CHUNK: &str = "data: {\"id\":\"cmpl-a7b4c8b731cd475f\",\"object\":\"text_completion\",\"created\":1795445693,\"model\":\"candidate\",\"choices\":[{\"index\":0,\"text\":\"tests\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}]}\n\n";
const NET_CHUNK: usize = 16 * 1024;

/// The decoder before the fix, reduced to its line search (LF only; the stream here has no CR):
/// every call searches the buffer from its start.
#[derive(Default)]
struct Rescanning {
    buf: BytesMut,
    data: Option<Bytes>,
}

impl Rescanning {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    fn next_event(&mut self) -> Option<Bytes> {
        loop {
            let end = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
            let line = self.buf.split_to(end).freeze();
            let _ = self.buf.split_to(1);
            if line.is_empty() {
                match self.data.take() {
                    Some(d) => return Some(d),
                    None => continue,
                }
            }
            if let Some(value) = line.strip_prefix(b"data: ") {
                self.data = Some(line.slice_ref(value));
            }
        }
    }
}

trait Decode {
    fn feed(&mut self, chunk: &[u8]) -> usize;
}

impl Decode for Rescanning {
    fn feed(&mut self, chunk: &[u8]) -> usize {
        self.push(chunk);
        let mut n = 0;
        while let Some(ev) = self.next_event() {
            n += usize::from(matches!(parse_item(&ev), Ok(StreamItem::Chunk(_))));
        }
        n
    }
}

impl Decode for SseDecoder {
    fn feed(&mut self, chunk: &[u8]) -> usize {
        self.push(chunk);
        let mut n = 0;
        while let Ok(Some(ev)) = self.next_event() {
            n += usize::from(matches!(parse_item(&ev), Ok(StreamItem::Chunk(_))));
        }
        n
    }
}

/// Feeds `stream` in network-sized chunks; returns the events parsed and the time taken.
fn run(mut d: impl Decode, stream: &[u8]) -> (usize, Duration) {
    let t0 = Instant::now();
    let events = stream.chunks(NET_CHUNK).map(|c| d.feed(c)).sum();
    (events, t0.elapsed())
}

fn report(what: &str, stream: &[u8], expected: usize) {
    let mb = stream.len() as f64 / 1e6;
    for (name, (events, took)) in [
        ("before (rescanning)", run(Rescanning::default(), stream)),
        // no line cap here: the 30 MB line is over the 16 MiB one, and the scan is measured
        (
            "after  (SseDecoder) ",
            run(SseDecoder::with_limit(usize::MAX), stream),
        ),
    ] {
        assert_eq!(events, expected, "{name} decoded every event");
        println!(
            "  {what:<28} {name}: {:9.1} MB/s ({mb:.1} MB in {:.3} s)",
            mb / took.as_secs_f64(),
            took.as_secs_f64()
        );
    }
}

fn main() {
    println!("SSE decode + parse_item, fed in {NET_CHUNK}-byte chunks:");
    let n = 200_000;
    let normal = CHUNK.repeat(n);
    report("normal token stream", normal.as_bytes(), n);
    let mb: usize = std::env::var("SSE_BENCH_LONG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let text = "a".repeat(mb * 1_000_000);
    let long = format!(
        "data: {{\"choices\":[{{\"text\":\"{text}\",\"finish_reason\":null}}]}}\n\ndata: [DONE]\n\n"
    );
    report(&format!("one {mb} MB line"), long.as_bytes(), 1);
}
