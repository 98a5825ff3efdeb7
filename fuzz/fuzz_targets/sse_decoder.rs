//! The SSE decoder and the stream-chunk parser on arbitrary bytes: no panic; the input cut into
//! chunks (cut points taken from the first bytes) decodes to the same events, and the same
//! error, as the input pushed whole; the bytes scanned stay linear in the input; the events
//! read one after another by their stream's shape (`ChunkReader`) tell what each parsed alone
//! tells.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_gate::client::sse::{ChunkReader, SseDecoder, SseError, parse_item};

/// A small cap, so the fuzzer reaches the line and event limits.
const LIMIT: usize = 256;

fn decode(parts: &[&[u8]]) -> (Vec<Vec<u8>>, Option<SseError>, u64) {
    let mut d = SseDecoder::with_limit(LIMIT);
    let mut events = Vec::new();
    let mut chunks = ChunkReader::new();
    for part in parts {
        d.push(part);
        loop {
            match d.next_event() {
                Ok(Some(ev)) => {
                    let alone = parse_item(&ev);
                    match (chunks.parse(&ev), alone) {
                        (Ok(a), Ok(b)) => assert_eq!(a, b, "read by shape"),
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!("read by shape: {a:?}, alone: {b:?}"),
                    }
                    let _ = perf_gate::api::parse_llamacpp_item(&ev);
                    events.push(ev.to_vec());
                }
                Ok(None) => break,
                Err(e) => return (events, Some(e), d.scanned()),
            }
        }
    }
    (events, None, d.scanned())
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let (whole, whole_err, whole_scanned) = decode(&[input]);
    let step = usize::from(cut % 17) + 1;
    let parts: Vec<&[u8]> = input.chunks(step).collect();
    let (split, split_err, split_scanned) = decode(&parts);
    assert_eq!(whole, split, "events differ with chunks of {step}");
    assert_eq!(whole_err.is_some(), split_err.is_some(), "{whole_err:?} vs {split_err:?}");
    let bound = 3 * input.len() as u64 + 8;
    assert!(whole_scanned <= bound, "scanned {whole_scanned} of {}", input.len());
    assert!(split_scanned <= bound, "scanned {split_scanned} of {}", input.len());
});
