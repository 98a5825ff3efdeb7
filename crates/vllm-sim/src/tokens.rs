//! Token arithmetic: how prompts are counted and what text the simulator generates.
//!
//! Prompt tokens (deterministic, no tokenizer):
//! - completions: `1 + ceil(bytes / 4)` for a string prompt (a BOS token plus the usual
//!   4-bytes-per-token rule of thumb); for an array of strings the first one counts; a
//!   token-id array (or an array of them) counts its length;
//! - chat: `1 + sum over messages of (4 + ceil(bytes(content) / 4)) + 3` (template overhead
//!   per message and for the assistant prefix); text parts of a content array are
//!   concatenated. `"Hello there"` gives 11, as the real tiny model did.
//!
//! Output: one vocabulary piece per token, picked by the request's random generator.

use rand::Rng;
use rand::rngs::SmallRng;

/// Pieces of generated text. None needs JSON escaping.
pub(crate) const VOCAB: [&str; 64] = [
    " the",
    " model",
    " adapter",
    " latency",
    " token",
    "s",
    "ing",
    " is",
    " a",
    " fast",
    " and",
    " of",
    " to",
    " in",
    " LoRA",
    " v",
    "LLM",
    " server",
    " request",
    " stream",
    " gate",
    " test",
    "ed",
    " per",
    "formance",
    " with",
    " for",
    " on",
    " it",
    " we",
    " can",
    " be",
    ".",
    ",",
    " data",
    " batch",
    " cache",
    " queue",
    " time",
    " first",
    " next",
    " each",
    " one",
    " two",
    " three",
    " new",
    " old",
    " good",
    " small",
    " large",
    " base",
    " candidate",
    " run",
    " pass",
    " fail",
    " check",
    " load",
    " sim",
    "ulator",
    " output",
    " input",
    " text",
    " word",
    " end",
];

/// The next output piece.
pub(crate) fn next_piece(rng: &mut SmallRng) -> &'static str {
    VOCAB[rng.random_range(0..VOCAB.len())]
}

/// Tokens of a text by the 4-bytes rule (`ceil(bytes / 4)`).
pub(crate) fn text_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Prompt tokens of a completions prompt (`1 + ceil(bytes / 4)`).
pub(crate) fn completion_prompt_tokens(prompt: &str) -> u32 {
    text_tokens(prompt).saturating_add(1)
}

/// Prompt tokens of a chat conversation given each message's text.
pub(crate) fn chat_prompt_tokens<'a>(contents: impl IntoIterator<Item = &'a str>) -> u32 {
    contents
        .into_iter()
        .fold(1u32, |acc, c| {
            acc.saturating_add(4).saturating_add(text_tokens(c))
        })
        .saturating_add(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_documented_rules() {
        assert_eq!(completion_prompt_tokens(""), 1);
        assert_eq!(completion_prompt_tokens("The license says"), 5);
        assert_eq!(chat_prompt_tokens(["Hello there"]), 11);
        assert_eq!(
            chat_prompt_tokens(["You are nice.", "Hi"]),
            1 + 4 + 4 + 4 + 1 + 3
        );
    }

    #[test]
    fn vocabulary_needs_no_json_escaping() {
        for piece in VOCAB {
            let quoted = serde_json::to_string(piece).expect("string");
            assert_eq!(quoted, format!("\"{piece}\""));
        }
    }
}
