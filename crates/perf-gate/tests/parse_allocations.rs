//! The stream parsers allocate nothing for a token chunk, counted by the allocator: with 128
//! chunks a request, one allocation a chunk was ~2 % of the client's CPU at 1,000 streams
//! (`#[serde(borrow)]` does not reach through `Option<Cow<str>>`, so every `text` and `object`
//! was copied). Token text with escapes (`\n`, `\"`, `\u00e9`) is the case a borrowed string
//! cannot take, so it is here too.

use perf_gate::api::Api;
use perf_gate::client::sse::StreamItem;
use test_support::alloc::{self, allocations_by as allocations};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// vLLM's completion, chat and reasoning token chunks (shapes from `../shared/notes`), with
/// and without escapes in the text.
const OPENAI_TOKENS: &[&str] = &[
    r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" sim","logprobs":null,"finish_reason":null,"stop_reason":null}]}"#,
    r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"line\nbreak \"quoted\" caf\u00e9","logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tab\there"},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"think\n"},"finish_reason":null}]}"#,
];

const LLAMACPP_TOKENS: &[&str] = &[
    r#"{"index":0,"content":" hello","tokens":[42],"stop":false,"id_slot":0,"tokens_predicted":1,"tokens_evaluated":5}"#,
    r#"{"index":0,"content":"a\nb \"c\"","tokens":[7,8],"stop":false,"id_slot":0}"#,
];

#[test]
fn token_chunks_are_parsed_without_allocating() {
    for (api, chunks) in [
        (Api::Openai, OPENAI_TOKENS),
        (Api::Llamacpp, LLAMACPP_TOKENS),
    ] {
        for chunk in chunks {
            let mut item = None;
            let n = allocations(|| item = Some(api.parse_item(chunk.as_bytes())));
            match item {
                Some(Ok(StreamItem::Chunk(c))) => {
                    assert!(c.has_token, "{api:?} chunk not read as a token: {chunk}")
                }
                other => panic!("{api:?} chunk {chunk} parsed as {other:?}"),
            }
            assert_eq!(n, 0, "{api:?} allocated {n} times parsing {chunk}");
        }
    }
}

#[test]
fn what_the_raw_read_accepts_and_refuses_is_what_a_string_read_did() {
    // null is no text; a role-only chat chunk is no token; a non-string is refused, named by
    // its type (the value may be megabytes) and never echoed
    let cases: &[(&str, Option<bool>)] = &[
        (
            r#"{"choices":[{"index":0,"text":null,"finish_reason":null}]}"#,
            Some(false),
        ),
        (
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            Some(false),
        ),
        (
            r#"{"choices":[{"index":0,"text": "spaced" ,"finish_reason":null}]}"#,
            Some(true),
        ),
        (r#"{"choices":[{"index":0,"text":12345}]}"#, None),
        (r#"{"choices":[{"index":0,"text":{"secret":"x"}}]}"#, None),
        (r#"{"choices":[{"index":0,"text":"bad \q escape"}]}"#, None),
    ];
    for (chunk, want) in cases {
        match (Api::Openai.parse_item(chunk.as_bytes()), want) {
            (Ok(StreamItem::Chunk(c)), Some(token)) => assert_eq!(c.has_token, *token, "{chunk}"),
            (Err(e), None) => {
                let text = e.to_string();
                assert!(
                    !text.contains("secret") && !text.contains("12345"),
                    "{text}"
                );
            }
            (got, _) => panic!("{chunk}: {got:?}"),
        }
    }
}

#[test]
fn the_counter_sees_an_allocation() {
    // the other test's zero means something only if a copy is counted
    let n = allocations(|| {
        std::hint::black_box(String::from("copied"));
    });
    assert!(n >= 1);
}
