//! Properties of the eval-file reader (`perf_gate::workload`): any valid file round-trips its
//! prompts, arbitrary bytes never panic it; and (ignored, prints figures) the peak memory of
//! reading a 1,000,000-line file.

use perf_gate::workload::{DEFAULT_PROMPT_FIELDS, Prompt, load_eval_file, parse_jsonl_bytes};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::io::Write;

/// One line: the prompt under one of the default fields, maybe with other fields around it.
#[derive(Debug, Clone)]
enum Line {
    Text {
        field: usize,
        text: String,
        extra: Option<String>,
    },
    Chat {
        contents: Vec<String>,
    },
    Blank(String),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => (0..3usize, "\\PC{1,40}", proptest::option::of("\\PC{0,10}"))
            .prop_map(|(field, text, extra)| Line::Text { field, text, extra }),
        1 => proptest::collection::vec("\\PC{0,20}", 1..4).prop_map(|contents| Line::Chat { contents }),
        1 => "[ \t]{0,3}".prop_map(Line::Blank),
    ]
}

fn file() -> impl Strategy<Value = (Vec<u8>, Vec<Prompt>)> {
    (
        proptest::collection::vec(line(), 0..30),
        prop_oneof![Just("\n"), Just("\r\n")],
        any::<bool>(),
    )
        .prop_map(|(lines, eol, final_eol)| {
            let mut out = String::new();
            let mut prompts = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                match l {
                    Line::Text { field, text, extra } => {
                        let mut obj = serde_json::Map::new();
                        if let Some(x) = extra {
                            obj.insert("id".into(), json!(x));
                        }
                        obj.insert(DEFAULT_PROMPT_FIELDS[*field].into(), json!(text));
                        out.push_str(&Value::Object(obj).to_string());
                        prompts.push(Prompt::Text(text.clone()));
                    }
                    Line::Chat { contents } => {
                        let messages: Vec<Value> = contents
                            .iter()
                            .map(|c| json!({"role": "user", "content": c}))
                            .collect();
                        out.push_str(&json!({ "messages": messages }).to_string());
                        prompts.push(Prompt::Messages(messages));
                    }
                    Line::Blank(ws) => out.push_str(ws),
                }
                if i + 1 < lines.len() || final_eol {
                    out.push_str(eol);
                }
            }
            (out.into_bytes(), prompts)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_valid_file_round_trips_its_prompts((bytes, prompts) in file()) {
        match parse_jsonl_bytes(&bytes, None, "eval.jsonl") {
            Ok(read) => prop_assert_eq!(read, prompts),
            Err(e) => {
                // Only a file without prompts is refused.
                prop_assert!(prompts.is_empty(), "{}", e);
                prop_assert_eq!(
                    e.to_string(),
                    "eval file eval.jsonl: no prompts (the file is empty or holds only blank lines)"
                );
            }
        }
    }

}

proptest! {
    // Generating biased bytes is the slow part in a debug build: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b'\n'), Just(b'{'), Just(b'"'), Just(b'}')],
            0..400,
        ),
        forced in proptest::option::of("[a-z]{1,6}"),
    ) {
        let _ = parse_jsonl_bytes(&bytes, forced.as_deref(), "eval.jsonl");
    }

    #[test]
    fn invalid_utf8_names_the_line_it_is_on(
        before in proptest::collection::vec("[a-z]{0,5}", 0..6),
        bad in prop_oneof![Just(vec![0xFFu8]), Just(vec![0xC3]), Just(vec![0xE2, 0x82]), Just(vec![0xED, 0xA0, 0x80])],
    ) {
        // Lines before it (any content, valid UTF-8), then the bad bytes inside a prompt.
        let mut bytes = Vec::new();
        for l in &before {
            bytes.extend_from_slice(format!("{{\"prompt\": \"{l}x\"}}\n").as_bytes());
        }
        bytes.extend_from_slice(b"{\"prompt\": \"");
        bytes.extend_from_slice(&bad);
        bytes.extend_from_slice(b"\"}\n");
        let e = parse_jsonl_bytes(&bytes, None, "f").unwrap_err().to_string();
        prop_assert_eq!(
            e,
            format!("eval file f, line {}: not valid UTF-8 (byte 13 of the line)", before.len() + 1)
        );
    }
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Figures, not a timing: the reader's peak memory on 1,000,000 lines. Run with
/// `cargo nextest run -p perf-gate --test prop_workload --run-ignored only --no-capture`.
#[test]
#[ignore = "writes a ~150 MB file and prints figures"]
fn a_million_lines_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eval.jsonl");
    // A realistic short prompt (~130 bytes), each line different, written line by line so the
    // test itself never holds the file (the peak before reading stays the process's baseline).
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..1_000_000 {
        writeln!(
            out,
            "{{\"prompt_inference\": \"Question {i}: what does the retrieval context say about the rollout of adapter version {i}?\"}}"
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&path).unwrap().len();
    let before = peak_rss();
    let data = load_eval_file(&path, None).unwrap();
    let after = peak_rss();
    assert_eq!(data.prompts.len(), 1_000_000);
    let grown = after.saturating_sub(before);
    println!(
        "1,000,000 lines, file {:.1} MB: peak RSS {:.1} MB before reading (the test wrote the file), {:.1} MB after; \
         growth {:.1} MB = {:.2}x the file",
        size as f64 / 1e6,
        before as f64 / 1e6,
        after as f64 / 1e6,
        grown as f64 / 1e6,
        grown as f64 / size as f64
    );
    assert!(
        grown < 3 * size,
        "reading took {grown} bytes for a {size}-byte file"
    );
}
