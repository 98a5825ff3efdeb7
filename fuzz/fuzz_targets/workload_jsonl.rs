//! The eval-file reader on arbitrary bytes: no panic, and every prompt read is non-empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_gate::workload::{Prompt, parse_jsonl_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let field = (choice & 1 == 1).then_some("prompt");
    if let Ok(prompts) = parse_jsonl_bytes(bytes, field, "fuzz.jsonl") {
        assert!(!prompts.is_empty());
        for p in prompts {
            match p {
                Prompt::Text(t) => assert!(!t.is_empty()),
                Prompt::Messages(m) => assert!(!m.is_empty()),
            }
        }
    }
});
