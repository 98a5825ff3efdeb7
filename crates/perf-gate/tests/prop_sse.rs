//! Properties of the SSE decoder (`perf_gate::client::sse`): any cut of a valid stream decodes
//! to the events written, no input panics it, and the bytes it examines stay linear in the
//! bytes pushed (counted by `SseDecoder::scanned`, not timed). A stream's chunks read by their
//! shape (`ChunkReader`) tell what each parsed in full tells, whatever bytes stand where the
//! shape's text was.

use perf_gate::client::sse::{ChunkReader, SseDecoder, SseError, parse_item};
use proptest::prelude::*;

/// Bytes examined per byte pushed, at most (plus a constant): each byte is searched for a line
/// end once, for a colon at most once, and a CR looks at one byte after it.
const K: u64 = 3;

/// One event as written: comment and other-field lines, then its `data:` lines.
#[derive(Debug, Clone)]
struct Event {
    comment: Option<String>,
    event_field: Option<String>,
    data: Vec<String>,
    /// `data:value` (no space): only for values that do not start with a space.
    tight: bool,
}

fn value() -> impl Strategy<Value = String> {
    "[^\r\n]{0,24}"
}

fn event() -> impl Strategy<Value = Event> {
    (
        proptest::option::of(value()),
        proptest::option::of("[a-z]{1,8}"),
        proptest::collection::vec(value(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(comment, event_field, data, tight)| Event {
            comment,
            event_field,
            data,
            tight,
        })
}

/// A stream of events with one line terminator throughout (mixing `\r` then `\n` would make
/// one CRLF of two line ends), an optional BOM, and the data each event must decode to.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    (
        proptest::collection::vec(event(), 0..12),
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        any::<bool>(),
    )
        .prop_map(|(events, eol, bom)| {
            let mut out = String::new();
            if bom {
                out.push('\u{FEFF}');
            }
            let mut expected = Vec::new();
            for ev in &events {
                if let Some(c) = &ev.comment {
                    out.push_str(&format!(":{c}{eol}"));
                }
                if let Some(e) = &ev.event_field {
                    out.push_str(&format!("event: {e}{eol}"));
                }
                for d in &ev.data {
                    match ev.tight && !d.starts_with(' ') {
                        true => out.push_str(&format!("data:{d}{eol}")),
                        false => out.push_str(&format!("data: {d}{eol}")),
                    }
                }
                out.push_str(eol);
                if !ev.data.is_empty() {
                    expected.push(ev.data.join("\n"));
                }
            }
            (out.into_bytes(), expected)
        })
}

/// Cuts `bytes` at the given points (taken modulo its length, sorted).
fn cut<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut parts = Vec::new();
    let mut prev = 0;
    for p in at.into_iter().chain([bytes.len()]) {
        parts.push(&bytes[prev..p]);
        prev = p;
    }
    parts
}

/// Decodes the parts in order: the events' data, the error that ended decoding, and the
/// bytes scanned.
fn decode(parts: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Option<SseError>, u64) {
    let mut d = SseDecoder::with_limit(limit);
    let mut events = Vec::new();
    for part in parts {
        d.push(part);
        loop {
            match d.next_event() {
                Ok(Some(ev)) => {
                    let _ = parse_item(&ev);
                    events.push(ev.to_vec());
                }
                Ok(None) => break,
                Err(e) => return (events, Some(e), d.scanned()),
            }
        }
    }
    (events, None, d.scanned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_cut_of_a_valid_stream_decodes_to_its_events(
        (bytes, expected) in stream(),
        points in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let parts = cut(&bytes, &points);
        let (events, error, scanned) = decode(&parts, usize::MAX);
        prop_assert!(error.is_none(), "{error:?}");
        let events: Vec<String> = events
            .into_iter()
            .map(|e| String::from_utf8(e).expect("data of valid text is text"))
            .collect();
        prop_assert_eq!(events, expected);
        prop_assert!(scanned <= K * bytes.len() as u64 + 8, "{} of {}", scanned, bytes.len());
    }

}

proptest! {
    // Generating biased bytes is the slow part in a debug build: fewer, shorter cases.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_cut_anywhere_never_panic_and_agree_with_the_whole(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), any::<u8>(), Just(b'd')],
            0..300,
        ),
        points in proptest::collection::vec(any::<usize>(), 0..32),
        limit in prop_oneof![Just(usize::MAX), 0..64usize],
    ) {
        let (whole, whole_error, _) = decode(&[&bytes], limit);
        let (split, split_error, scanned) = decode(&cut(&bytes, &points), limit);
        prop_assert_eq!(whole, split);
        prop_assert_eq!(whole_error.is_some(), split_error.is_some());
        prop_assert!(scanned <= K * bytes.len() as u64 + 8, "{} of {}", scanned, bytes.len());
    }

    #[test]
    fn one_long_line_pushed_in_small_pieces_is_scanned_linearly(
        len in 1usize..200_000,
        piece in 1usize..4096,
    ) {
        // The old decoder rescanned the whole buffer per push: len^2 / (2 * piece) bytes.
        let line = format!("data: {}\n\n", "a".repeat(len));
        let parts: Vec<&[u8]> = line.as_bytes().chunks(piece).collect();
        let (events, error, scanned) = decode(&parts, usize::MAX);
        prop_assert!(error.is_none());
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(events[0].len(), len);
        prop_assert!(scanned <= K * line.len() as u64 + 8, "{} of {}", scanned, line.len());
    }
}

#[test]
fn a_line_over_the_limit_is_refused_whole_or_in_pieces() {
    let line = format!("data: {}\n\n", "a".repeat(100));
    for piece in [1, 7, 1000] {
        let parts: Vec<&[u8]> = line.as_bytes().chunks(piece).collect();
        let (events, error, _) = decode(&parts, 64);
        assert!(events.is_empty());
        assert!(
            matches!(error, Some(SseError::LineTooLong { limit: 64, .. })),
            "{error:?}"
        );
    }
    // Exactly at the limit is accepted.
    let ok = format!("data: {}\n\n", "a".repeat(58));
    let (events, error, _) = decode(&[ok.as_bytes()], 64);
    assert_eq!((events.len(), error), (1, None));
    // Many short data lines adding up past the limit: the event is refused.
    let many = "data: aaaaaaaaaa\n".repeat(10) + "\n";
    let (_, error, _) = decode(&[many.as_bytes()], 64);
    assert_eq!(error, Some(SseError::EventTooLarge { limit: 64 }));
}

/// Chunks of vLLM's shapes, `{}` standing for the text string's literal (quotes included),
/// and chunks whose text does not decide them alone (never a shape).
const SHAPES: [&str; 10] = [
    r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":{},"logprobs":null,"finish_reason":null,"stop_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":{}},"logprobs":null,"finish_reason":null,"token_ids":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":{},"content":null},"finish_reason":null}]}"#,
    r#"{"choices":[{"delta":{"content":{}}},{"delta":{"content":"x"}}],"usage":null}"#,
    r#"{"choices":[{"text":{},"finish_reason":"stop"}]}"#,
    r#"{"choices":[{"text":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
    r#"{"object":"error","message":"m","choices":[{"text":{}}]}"#,
    r#"{"choices":[{"delta":{"content":{},"tool_calls":[]}}]}"#,
    r#"{"choices":[{"delta":{"content":{},"reasoning_content":"x"}}]}"#,
    r#"{"choices":[{"text":{}}],"error":{"message":"m"}}"#,
];

/// What stands where the text was: a JSON string, or anything (a quote, a backslash, a bad
/// escape, a short `\u`, a control character, invalid UTF-8, a number, nothing), with or
/// without quotes around it.
fn literal() -> impl Strategy<Value = Vec<u8>> {
    let soup = || {
        proptest::collection::vec(
            prop_oneof![
                Just(b'"'),
                Just(b'\\'),
                Just(b'\\'),
                Just(b'u'),
                Just(b'n'),
                Just(b'x'),
                Just(b'/'),
                Just(b'0'),
                Just(b'F'),
                Just(b'a'),
                Just(b'\n'),
                Just(0xE9u8),
                any::<u8>()
            ],
            0..10,
        )
    };
    prop_oneof![
        "[^\"\\\\\u{0}-\u{1f}]{0,8}".prop_map(|t| format!("\"{t}\"").into_bytes()),
        soup(),
        soup().prop_map(|b| [&b"\""[..], &b, &b"\""[..]].concat()),
    ]
}

fn in_shape(shape: &str, literal: &[u8]) -> Vec<u8> {
    let (before, after) = shape.split_once("{}").expect("a placeholder");
    [before.as_bytes(), literal, after.as_bytes()].concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_chunk_read_by_its_shape_tells_what_it_parsed_in_full_tells(
        shape in 0..SHAPES.len(),
        first in "[a-z ]{0,4}",
        literals in proptest::collection::vec(literal(), 1..6),
    ) {
        let shape = SHAPES[shape];
        let mut reader = ChunkReader::new();
        // a token the reader learns the shape from
        let learn = in_shape(shape, format!("\"{first}\"").as_bytes());
        prop_assert_eq!(reader.parse(&learn).ok(), parse_item(&learn).ok());
        for l in &literals {
            let chunk = in_shape(shape, l);
            match (reader.parse(&chunk), parse_item(&chunk)) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", String::from_utf8_lossy(&chunk)),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{:?} vs {:?}: {}", a, b, String::from_utf8_lossy(&chunk)),
            }
        }
    }
}
