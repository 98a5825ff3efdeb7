//! `--prompt-file` (seed 001's prompt-file mode): one prompt per line, as plain text or as a
//! JSON row.
//!
//! Per non-blank line: a JSON object takes its prompt from `prompt`, `text` or `messages` (the
//! first present; missing or mistyped is an error naming the line); a JSON string is its
//! value; a line starting with `{` that is not valid JSON is an error (a broken row is never
//! sent as text); any other line is the prompt text as written (trimmed of its line end).

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{EvalData, Prompt, hex, prompt_from_value};

/// Fields a JSON row of a prompt file may carry its prompt in, tried in order.
pub const PROMPT_FILE_FIELDS: [&str; 3] = ["prompt", "text", "messages"];

/// Errors reading a prompt file; each names the file, and the line where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum PromptFileError {
    /// The file cannot be opened or read.
    #[error("prompt file {path}: cannot read it")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No prompt in the file.
    #[error("prompt file {path}: no prompts (the file is empty or holds only blank lines)")]
    Empty {
        /// File path.
        path: String,
    },
    /// A line is at fault.
    #[error("prompt file {path}, line {line}: {message}")]
    Line {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a prompt file (see the module docs); its identity is the sha256 of its bytes.
pub fn load_prompt_file(path: &Path) -> Result<EvalData, PromptFileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PromptFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = e.valid_up_to();
        PromptFileError::Line {
            path: shown.clone(),
            line: memchr::memchr_iter(b'\n', &bytes[..at]).count() + 1,
            message: "not valid UTF-8".into(),
        }
    })?;
    let prompts = parse_prompt_lines(text, &shown)?;
    Ok(EvalData { prompts, sha256 })
}

/// Parses the text of a prompt file; `shown` names it in errors.
pub fn parse_prompt_lines(text: &str, shown: &str) -> Result<Vec<Prompt>, PromptFileError> {
    let mut prompts = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| PromptFileError::Line {
            path: shown.to_string(),
            line: i + 1,
            message,
        };
        let trimmed = line.trim();
        let json = if trimmed.starts_with('{') || trimmed.starts_with('"') {
            Some(serde_json::from_str::<Value>(trimmed))
        } else {
            None
        };
        let prompt = match json {
            Some(Ok(Value::Object(obj))) => {
                let Some((name, v)) = PROMPT_FILE_FIELDS
                    .iter()
                    .find_map(|f| obj.get(*f).map(|v| (*f, v)))
                else {
                    return Err(err(
                        "a JSON row needs a `prompt`, `text` or `messages` field".into(),
                    ));
                };
                prompt_from_value(name, v).map_err(err)?
            }
            Some(Ok(Value::String(s))) if s.is_empty() => {
                return Err(err("an empty JSON string".into()));
            }
            Some(Ok(Value::String(s))) => Prompt::Text(s),
            Some(Err(e)) if trimmed.starts_with('{') => {
                return Err(err(format!("starts with `{{` but is not valid JSON ({e})")));
            }
            // plain text, or `"` opening text that is not one JSON string: the line as written
            _ => Prompt::Text(line.to_string()),
        };
        prompts.push(prompt);
    }
    if prompts.is_empty() {
        return Err(PromptFileError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Prompt>, String> {
        parse_prompt_lines(text, "p.txt").map_err(|e| e.to_string())
    }

    #[test]
    fn plain_lines_are_prompts_and_blank_ones_are_skipped() {
        let p =
            parse("Hello there\n\n  \nWrite a poem about {braces}\r\n\"quoted\" words\n").unwrap();
        assert_eq!(
            p,
            vec![
                Prompt::Text("Hello there".into()),
                Prompt::Text("Write a poem about {braces}".into()),
                Prompt::Text("\"quoted\" words".into()),
            ]
        );
    }

    #[test]
    fn json_rows_use_prompt_text_or_messages() {
        let p = parse(concat!(
            "{\"prompt\": \"a\", \"text\": \"ignored\"}\n",
            "{\"text\": \"b\"}\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"c\"}]}\n",
            "\"a JSON string\"\n",
            "plain\n",
        ))
        .unwrap();
        assert_eq!(p[0], Prompt::Text("a".into()));
        assert_eq!(p[1], Prompt::Text("b".into()));
        assert!(matches!(&p[2], Prompt::Messages(m) if m[0]["content"] == "c"));
        assert_eq!(p[3], Prompt::Text("a JSON string".into()));
        assert_eq!(p[4], Prompt::Text("plain".into()));
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        assert_eq!(
            parse("ok\n\n{\"answer\": 1}\n").unwrap_err(),
            "prompt file p.txt, line 3: a JSON row needs a `prompt`, `text` or `messages` field"
        );
        let e = parse("ok\n{\"prompt\": \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("prompt file p.txt, line 2: starts with `{` but is not valid JSON"),
            "{e}"
        );
        assert_eq!(
            parse("{\"prompt\": 5}").unwrap_err(),
            "prompt file p.txt, line 1: field `prompt` must be a string, found a number"
        );
        let e = parse("{\"messages\": [{\"content\": \"x\"}]}").unwrap_err();
        assert!(
            e.contains("line 1: field `messages`: message 0 has no string `role`"),
            "{e}"
        );
        assert_eq!(
            parse("\n \n").unwrap_err(),
            "prompt file p.txt: no prompts (the file is empty or holds only blank lines)"
        );
    }

    #[test]
    fn files_are_read_with_their_digest_and_bad_bytes_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prompts.txt");
        std::fs::write(&p, "hi\n").unwrap();
        let d = load_prompt_file(&p).unwrap();
        assert_eq!(d.prompts, vec![Prompt::Text("hi".into())]);
        assert_eq!(d.sha256, hex(&Sha256::digest(b"hi\n")));
        std::fs::write(&p, b"hi\ncaf\xE9\n").unwrap();
        let e = load_prompt_file(&p).unwrap_err().to_string();
        assert!(e.ends_with("line 2: not valid UTF-8"), "{e}");
        let e = load_prompt_file(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope: cannot read it"), "{e}");
    }
}
