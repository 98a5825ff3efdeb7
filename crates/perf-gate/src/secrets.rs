//! The secrets this process knows (the vLLM API key, MLflow's token or password, the password
//! of a URL flag), and the one scrubber that takes them out of every text the gate stores or
//! logs.
//!
//! Secrets enter the registry where the library first sees them: [`Secret::new`] (MLflow's
//! token and password), [`crate::urls::parse_base_url`] (a URL's `user:password@`),
//! [`crate::transport`] (the vLLM API key and the `Basic` credentials built from a URL), or
//! [`register`] by a binary. [`scrub`] then replaces each of them, in every form it can take in
//! a text (as given, percent-encoded as in a URL, escaped as in JSON or `Debug`, base64 inside a
//! `Basic` header) with [`REDACTED`].
//!
//! Where it is applied: the error of each request record (`requests.jsonl`), the error line and
//! warnings of `load_test_results.json`, the errors built from a server's answer (vLLM,
//! MLflow), every log line (the binaries' log writer) and the binaries' own error lines. A server
//! that echoes the key in an error body therefore cannot put it in a file or a log.
//!
//! The registry is process-wide and only grows: a test process that registers `s3cret` sees it
//! scrubbed in every later text, which is the safe side. A very short secret (a one-letter
//! password) is scrubbed too, even though that mangles unrelated text: leaking it would be worse.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Every form of every registered secret, longest first (a secret holding another is replaced
/// whole).
static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds `secret` to the process's known secrets (with its escaped and percent-encoded forms).
/// Empty strings are ignored; registering twice is harmless.
pub fn register(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut forms = vec![secret.to_string()];
    // inside a JSON string or a `{:?}`: quotes, backslashes and control characters escaped
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    let debug = format!("{secret:?}");
    forms.push(debug[1..debug.len() - 1].to_string());
    // inside a URL's userinfo
    forms.push(percent_encode_userinfo(secret));
    // inside the HTML report and the Markdown summary, as they escape text
    forms.push(crate::report::html::esc(secret));
    forms.push(crate::report::summary::md(secret));
    add_forms(forms);
}

/// Registers the credentials of an HTTP `Basic` header: the password itself, and the base64
/// `user:password` the header carries (a server that echoes the header shows that form).
pub fn register_basic(username: &str, password: &str) {
    use base64::Engine as _;
    register(password);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    add_forms(vec![token]);
}

fn add_forms(forms: Vec<String>) {
    let mut known = KNOWN
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for f in forms {
        if !f.is_empty() && !known.contains(&f) {
            known.push(f);
        }
    }
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every known secret replaced by [`REDACTED`]; borrowed when nothing was found.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if known.is_empty() || text.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for s in known.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    out
}

/// [`scrub`] for a text cut to a length and ended with `marker` (`…`): a secret cut in two by
/// the limit leaves its first characters before the marker, which go too (from 4 characters on:
/// shorter tails match too many ordinary words).
pub fn scrub_cut(text: &mut String, marker: &str) {
    scrub_string(text);
    let Some(head) = text.strip_suffix(marker) else {
        return;
    };
    let known = KNOWN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cut = known
        .iter()
        .flat_map(|s| {
            // the longest proper prefix of `s` (at least 4 characters) that ends `head`
            s.char_indices()
                .map(|(i, _)| i)
                .skip(4)
                .filter(|&i| head.ends_with(&s[..i]))
                .max()
        })
        .max();
    if let Some(n) = cut {
        let keep = head.len() - n;
        *text = format!("{}{REDACTED}{marker}", &head[..keep]);
    }
}

/// [`scrub`] in place.
pub fn scrub_string(text: &mut String) {
    if let Cow::Owned(clean) = scrub(text) {
        *text = clean;
    }
}

/// Every string (and object key) of a JSON document, [`scrub`]bed: a document written whole
/// (`load_test_results.json`) may quote a server in any field, not only its error line.
pub fn scrub_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => scrub_string(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        Value::Object(map) => {
            let dirty: Vec<String> = map
                .keys()
                .filter(|k| matches!(scrub(k), Cow::Owned(_)))
                .cloned()
                .collect();
            for k in dirty {
                if let Some(v) = map.remove(&k) {
                    map.insert(scrubbed(&k), v);
                }
            }
            map.values_mut().for_each(scrub_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` as [`scrub`] returns it, owned.
pub fn scrubbed(text: impl AsRef<str>) -> String {
    scrub(text.as_ref()).into_owned()
}

/// `s` with every byte outside the URL userinfo set percent-encoded, as `url::Url` stores a
/// password (`p@ss` becomes `p%40ss`).
fn percent_encode_userinfo(s: &str) -> String {
    let mut u = match url::Url::parse("http://h/") {
        Ok(u) => u,
        Err(_) => return s.to_string(),
    };
    match u.set_password(Some(s)) {
        Ok(()) => u.password().unwrap_or(s).to_string(),
        Err(()) => s.to_string(),
    }
}

/// A secret string (token or password). `Debug` and `Display` print `<redacted>`; creating one
/// registers its value with the scrubber.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value and [`register`]s it.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    // The registry is process-wide: under `cargo test` (one process) these tests see the
    // secrets other tests registered (`bad\nkey` shows as `bad key` in Markdown), so their texts
    // use words no test registers.
    use super::*;

    #[test]
    fn a_secret_escaped_by_the_reports_is_scrubbed() {
        register("r3p<rt>&_pw");
        for shown in [
            crate::report::html::esc("r3p<rt>&_pw"),
            crate::report::summary::md("r3p<rt>&_pw"),
        ] {
            let text = format!("key: {shown}.");
            assert!(!scrubbed(&text).contains("r3p"), "{shown}");
        }
    }

    #[test]
    fn every_form_of_a_secret_is_scrubbed() {
        register("sk-Scrub\"Me@1");
        let text =
            "HTTP 401: refused sk-Scrub\"Me@1 (json \"sk-Scrub\\\"Me@1\", url sk-Scrub%22Me%401)";
        let clean = scrub(text);
        assert!(!clean.contains("Scrub"), "{clean}");
        assert_eq!(clean.matches(REDACTED).count(), 3, "{clean}");
    }

    #[test]
    fn basic_credentials_are_scrubbed_as_the_header_carries_them() {
        register_basic("bob", "pw-Basic-9");
        // base64("bob:pw-Basic-9")
        let clean = scrub("echo: Authorization: Basic Ym9iOnB3LUJhc2ljLTk=");
        assert_eq!(clean, "echo: Authorization: Basic <redacted>");
        assert_eq!(scrub("pw-Basic-9"), REDACTED);
    }

    #[test]
    fn a_secret_cut_by_a_length_limit_loses_its_head_too() {
        register("sk-Cut-Off-123456");
        let mut t = "HTTP 401: refused sk-Cut-Of…".to_string();
        scrub_cut(&mut t, "…");
        assert_eq!(t, "HTTP 401: refused <redacted>…");
        let mut t = "HTTP 401: sk-…".to_string();
        scrub_cut(&mut t, "…");
        assert_eq!(t, "HTTP 401: sk-…", "3 characters stay");
        let mut t = "whole sk-Cut-Off-123456 and no marker".to_string();
        scrub_cut(&mut t, "…");
        assert_eq!(t, "whole <redacted> and no marker");
    }

    #[test]
    fn every_string_of_a_json_document_is_scrubbed() {
        register("json-Doc-Secret");
        let mut doc = serde_json::json!({
            "server": {"reasons": ["HTTP 401: json-Doc-Secret"], "n": 3},
            "json-Doc-Secret": null,
            "ok": "plain",
        });
        scrub_json(&mut doc);
        assert_eq!(
            doc,
            serde_json::json!({
                "server": {"reasons": ["HTTP 401: <redacted>"], "n": 3},
                "<redacted>": null,
                "ok": "plain",
            })
        );
    }

    #[test]
    fn a_secret_inside_another_is_replaced_whole() {
        register("inner-Sec");
        register("outer-inner-Sec-x");
        assert_eq!(
            scrub("a outer-inner-Sec-x b inner-Sec"),
            "a <redacted> b <redacted>"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed_and_secret_prints_redacted() {
        let s = Secret::new("tok-Display-7");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "tok-Display-7");
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
        assert_eq!(scrubbed("x tok-Display-7 y"), "x <redacted> y");
        register("");
        assert_eq!(scrub("empty is ignored"), "empty is ignored");
    }
}
