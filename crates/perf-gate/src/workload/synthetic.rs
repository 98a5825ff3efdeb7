//! Synthetic prompts of a target token length (`--input-size`, `--task-mix`), built from a
//! word list and sized against the server's own tokenizer when it offers one.
//!
//! Calibration, in order of preference (the one used is recorded in the results):
//! - `tokenize`: vLLM's `POST /tokenize` (`{"model", "prompt"}` → `{"count", ...}`; counts
//!   include the BOS token, as the server counts a completions prompt; for the chat endpoint
//!   `{"model", "messages"}` with the text as one user message, so the chat template's tokens
//!   count too). Two texts of 64 and
//!   512 words fit `tokens = a + b * words`; each prompt then starts at the fitted word count
//!   and is measured, and its word count corrected by the fit, up to [`MAX_ROUNDS`] calls per
//!   prompt (8 prompts at a time); the closest is kept and its measured count reported.
//! - `tokenizer-file`: the server has no `/tokenize` (404/405/501) or it fails, and a Hugging
//!   Face `tokenizer.json` was given (`--tokenizer-file`, loaded with the `tokenizers` crate,
//!   pure Rust, no Oniguruma): the same fit and corrections, counted locally (special tokens
//!   included, as the server adds them).
//! - `words`: neither: one word per target token (the list holds short common words, most of
//!   them one token in BPE vocabularies). Lengths are then approximate and the results say so.
//!
//! Each prompt's words come from its own ChaCha8 stream of the seed, so the same seed gives the
//! same texts, and a longer prompt extends a shorter one's words (the correction only moves the
//! end). Prompts differ from each other from their first words (no shared prefix to cache).

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::client::VllmClient;

/// `/tokenize` calls per prompt at most (the first guess and its corrections).
pub const MAX_ROUNDS: usize = 4;
/// Prompts sized at once (each its own sequence of `/tokenize` calls).
const CONCURRENT_CALLS: usize = 8;

/// Short common English words.
const WORDS: [&str; 96] = [
    "the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "as", "with",
    "they", "be", "at", "one", "have", "this", "from", "by", "hot", "word", "but", "what", "some",
    "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how",
    "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about",
    "many", "then", "them", "write", "would", "like", "so", "these", "her", "long", "make",
    "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come", "did",
    "number", "sound", "no", "most", "people", "my", "over", "know", "water", "than", "call",
    "first", "who", "may", "down", "side", "been", "now", "find", "any", "new", "work",
];

/// How prompt lengths were calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calibration {
    /// The server's `/tokenize`.
    Tokenize,
    /// A local tokenizer file (`--tokenizer-file`), when the server has no `/tokenize`.
    TokenizerFile,
    /// One word per token (no tokenizer).
    Words,
}

impl Calibration {
    /// The name written in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Calibration::Tokenize => "tokenize",
            Calibration::TokenizerFile => "tokenizer-file",
            Calibration::Words => "words",
        }
    }
}

/// The words of prompt `index` of `seed`, `n` of them (the first `n` of its own stream).
pub fn words(seed: u64, index: u64, n: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // stream 0 is never a prompt's: sizes and tasks draw elsewhere
    rng.set_stream(index.wrapping_add(1));
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

/// The synthetic prompts and how they were sized.
#[derive(Debug, Clone)]
pub struct Built {
    /// The texts, one per target.
    pub texts: Vec<String>,
    /// The calibration used.
    pub calibration: Calibration,
    /// Tokens per word fitted on the server (`tokenize` only).
    pub tokens_per_word: Option<f64>,
    /// Each text's token count as the server measured it (`tokenize` only).
    pub measured: Option<Vec<u32>>,
    /// Why `/tokenize` (or the tokenizer file) was not used, when it was tried (for the results).
    pub fallback_reason: Option<String>,
}

#[derive(Deserialize)]
struct TokenizeResponse {
    count: u32,
}

/// Why `/tokenize` cannot be used.
enum TokenizeError {
    /// Not offered (404/405/501): fall back silently, saying so in the results.
    Absent(u16),
    /// Offered but failing.
    Failed(String),
}

/// The server to size prompts with: its client, the model, and whether the prompts go to the
/// chat endpoint (then each is counted as one user message, chat template included).
#[derive(Debug, Clone, Copy)]
pub struct Server<'a> {
    /// The client.
    pub client: &'a VllmClient,
    /// Model id (the adapter: vLLM tokenizes with the base model's tokenizer).
    pub model: &'a str,
    /// Count as a chat conversation (`messages`) rather than a completions `prompt`.
    pub chat: bool,
}

async fn tokenize(server: Server<'_>, prompt: &str) -> Result<u32, TokenizeError> {
    let Server {
        client,
        model,
        chat,
    } = server;
    let body = if chat {
        serde_json::json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
    } else {
        serde_json::json!({"model": model, "prompt": prompt})
    };
    let mut b = client
        .http()
        .post(client.url("/tokenize"))
        .timeout(std::time::Duration::from_secs(30))
        .json(&body);
    if let Some(a) = client.auth_header() {
        b = b.header(reqwest::header::AUTHORIZATION, a.clone());
    }
    let resp = b
        .send()
        .await
        .map_err(|e| TokenizeError::Failed(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    if matches!(status, 404 | 405 | 501) {
        return Err(TokenizeError::Absent(status));
    }
    if !resp.status().is_success() {
        return Err(TokenizeError::Failed(format!("HTTP {status}")));
    }
    resp.json::<TokenizeResponse>()
        .await
        .map(|r| r.count)
        .map_err(|e| TokenizeError::Failed(format!("unexpected body ({})", e.without_url())))
}

/// A tokenizer file given with `--tokenizer-file` (Hugging Face `tokenizer.json`), loaded
/// before the network.
#[derive(Clone)]
pub struct LocalTokenizer {
    inner: tokenizers::Tokenizer,
    path: String,
}

impl std::fmt::Debug for LocalTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokenizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A `--tokenizer-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--tokenizer-file {path}: {message}")]
pub struct TokenizerFileError {
    /// File path.
    pub path: String,
    /// Why (the tokenizers crate's message).
    pub message: String,
}

impl LocalTokenizer {
    /// Loads a `tokenizer.json` and checks that it encodes a probe text.
    pub fn load(path: &std::path::Path) -> Result<Self, TokenizerFileError> {
        let shown = path.display().to_string();
        let err = |message: String| TokenizerFileError {
            path: shown.clone(),
            message,
        };
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let t = LocalTokenizer {
            inner,
            path: shown.clone(),
        };
        t.count("the first words").map_err(err)?;
        Ok(t)
    }

    /// Tokens of `text`, special tokens (BOS) included as the server adds them.
    pub fn count(&self, text: &str) -> Result<u32, String> {
        self.inner
            .encode(text, true)
            .map(|e| u32::try_from(e.len()).unwrap_or(u32::MAX))
            .map_err(|e| e.to_string())
    }
}

/// What counts a text's tokens.
#[derive(Clone, Copy)]
enum Counter<'a> {
    Server(Server<'a>),
    Local(&'a LocalTokenizer),
}

impl Counter<'_> {
    async fn count(&self, text: &str) -> Result<u32, TokenizeError> {
        match self {
            Counter::Server(server) => tokenize(*server, text).await,
            Counter::Local(t) => t.count(text).map_err(TokenizeError::Failed),
        }
    }

    fn calibration(&self) -> Calibration {
        match self {
            Counter::Server(..) => Calibration::Tokenize,
            Counter::Local(_) => Calibration::TokenizerFile,
        }
    }
}

/// Builds one prompt per target length (tokens), sized with `server`'s `/tokenize` (client
/// and model) when given and offered, else with `local`, else in words.
pub async fn build(
    targets: &[u32],
    seed: u64,
    server: Option<Server<'_>>,
    local: Option<&LocalTokenizer>,
) -> Built {
    let by_words = |fallback_reason: Option<String>| Built {
        texts: targets
            .iter()
            .enumerate()
            .map(|(i, &t)| words(seed, i as u64, t as usize))
            .collect(),
        calibration: Calibration::Words,
        tokens_per_word: None,
        measured: None,
        fallback_reason,
    };
    let mut reason = None;
    if let Some(server) = server {
        match by_counter(targets, seed, Counter::Server(server)).await {
            Ok(built) => return built,
            Err(TokenizeError::Absent(status)) => {
                tracing::info!(status, "vLLM offers no /tokenize");
                reason = Some(format!("the server answered /tokenize with HTTP {status}"));
            }
            Err(TokenizeError::Failed(why)) => {
                let why = crate::secrets::scrubbed(why);
                tracing::warn!(error = %why, "/tokenize failed");
                reason = Some(format!("/tokenize failed: {why}"));
            }
        }
    }
    if let Some(t) = local {
        match by_counter(targets, seed, Counter::Local(t)).await {
            Ok(mut built) => {
                tracing::info!(file = %t.path, "prompt lengths counted with the tokenizer file");
                built.fallback_reason = reason;
                return built;
            }
            Err(TokenizeError::Failed(why)) => {
                reason = Some(format!("the tokenizer file failed: {why}"));
            }
            Err(TokenizeError::Absent(_)) => {}
        }
    }
    tracing::info!("prompt lengths counted in words");
    by_words(reason)
}

async fn by_counter(
    targets: &[u32],
    seed: u64,
    counter: Counter<'_>,
) -> Result<Built, TokenizeError> {
    // the fit: two texts of a stream no prompt uses
    let probe = u64::MAX - 1;
    let (short, long) = (64usize, 512usize);
    let c_short = counter.count(&words(seed, probe, short)).await?;
    let c_long = counter.count(&words(seed, probe, long)).await?;
    let per_word = (f64::from(c_long) - f64::from(c_short)) / (long - short) as f64;
    let per_word = if per_word > 0.05 { per_word } else { 1.0 };
    let offset = f64::from(c_short) - per_word * short as f64;
    tracing::info!(
        calibration = counter.calibration().as_str(),
        tokens_per_word = format!("{per_word:.3}"),
        offset = format!("{offset:.1}"),
        "prompt lengths calibrated"
    );
    let sized = futures::stream::iter(targets.iter().enumerate())
        .map(|(i, &target)| sized_prompt(counter, seed, i as u64, target, per_word, offset))
        .buffered(CONCURRENT_CALLS)
        .collect::<Vec<_>>()
        .await;
    let mut texts = Vec::with_capacity(targets.len());
    let mut measured = Vec::with_capacity(targets.len());
    for r in sized {
        let (count, text) = r?;
        texts.push(text);
        measured.push(count);
    }
    Ok(Built {
        texts,
        calibration: counter.calibration(),
        tokens_per_word: Some(per_word),
        measured: Some(measured),
        fallback_reason: None,
    })
}

/// Prompt `index` sized to `target` tokens: the fitted word count, then corrected by what the
/// counter says; the closest of at most [`MAX_ROUNDS`] tries, with its count.
async fn sized_prompt(
    counter: Counter<'_>,
    seed: u64,
    index: u64,
    target: u32,
    per_word: f64,
    offset: f64,
) -> Result<(u32, String), TokenizeError> {
    let mut n = ((f64::from(target) - offset) / per_word).round().max(1.0) as usize;
    let mut best: Option<(u32, String)> = None;
    for _ in 0..MAX_ROUNDS {
        let text = words(seed, index, n);
        let count = counter.count(&text).await?;
        let off = i64::from(count) - i64::from(target);
        if best
            .as_ref()
            .is_none_or(|(c, _)| off.abs() < (i64::from(*c) - i64::from(target)).abs())
        {
            best = Some((count, text));
        }
        if off == 0 {
            break;
        }
        let step = (-(off as f64) / per_word).round() as i64;
        let step = if step == 0 { -off.signum() } else { step };
        let next = (n as i64 + step).max(1) as usize;
        if next == n {
            break;
        }
        n = next;
    }
    Ok(best.expect("invariant: at least one round ran"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_repeat_with_the_seed_and_extend_each_other() {
        assert_eq!(words(3, 0, 50), words(3, 0, 50));
        assert_ne!(words(3, 0, 50), words(4, 0, 50));
        assert_ne!(words(3, 0, 50), words(3, 1, 50));
        assert!(words(3, 0, 80).starts_with(&words(3, 0, 50)));
        assert_eq!(words(3, 0, 50).split(' ').count(), 50);
        assert_eq!(words(3, 0, 0), "");
    }

    #[tokio::test]
    async fn a_tokenizer_file_sizes_prompts_when_no_server_does() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTokenizer::load(&test_support::sim::tokenizer_file(dir.path())).unwrap();
        assert_eq!(t.count("the of the").unwrap(), 4, "three words and the BOS");
        let b = build(&[10, 33, 1], 2, None, Some(&t)).await;
        assert_eq!(b.calibration, Calibration::TokenizerFile);
        assert_eq!(
            b.measured.as_deref(),
            Some(&[10, 33, 2][..]),
            "1 token is below the BOS + a word"
        );
        assert_eq!(b.texts[0].split(' ').count(), 9);
        assert!((b.tokens_per_word.unwrap() - 1.0).abs() < 1e-9);

        std::fs::write(dir.path().join("bad.json"), "{\"model\": 1}").unwrap();
        let e = LocalTokenizer::load(&dir.path().join("bad.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tokenizer-file "), "{e}");
        assert!(e.contains("bad.json: "), "{e}");
    }

    #[tokio::test]
    async fn without_a_server_lengths_are_words() {
        let b = build(&[5, 12], 1, None, None).await;
        assert_eq!(b.calibration, Calibration::Words);
        let counts: Vec<usize> = b.texts.iter().map(|t| t.split(' ').count()).collect();
        assert_eq!(counts, [5, 12]);
        assert!(b.measured.is_none());
    }
}
