//! Base URLs of the servers the gate talks to (vLLM, Prometheus, MLflow): one validator and one
//! redaction, so every flag is checked the same way and no credential reaches a log line, an
//! error message or a result file.
//!
//! - [`parse_base_url`] accepts an absolute `http`/`https` URL with a host and no query or
//!   fragment; a path prefix (`http://proxy/prometheus`) is kept, the trailing `/` dropped. The
//!   error names the flag and shows the URL redacted.
//! - [`redact_url`] removes `user:password@` and any query or fragment (tokens often travel as
//!   `?token=...`), also when the text is not a valid URL at all: a malformed value is exactly
//!   the one that gets echoed in an error.
//! - [`redact_urls_in`] does the same to every URL inside a free text (a refused command line
//!   that echoes its arguments).
//!
//! A URL's password is registered with [`crate::secrets`] as soon as the URL is parsed, so a
//! server that echoes it cannot put it in a file or a log either.

/// A URL flag's value is not a usable base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {shown:?}: {reason}")]
pub struct UrlError {
    /// The flag the value came from (`--vllm-url`, `--prometheus-url`, ...).
    pub flag: &'static str,
    /// The value as given, redacted ([`redact_url`]).
    pub shown: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses and checks the base URL given to `flag`; the result has no trailing slash. Its
/// password, if any, is registered with [`crate::secrets`].
pub fn parse_base_url(flag: &'static str, raw: &str) -> Result<url::Url, UrlError> {
    let trimmed = raw.trim();
    let bad = |reason: String| UrlError {
        flag,
        shown: redact_url(trimmed),
        reason,
    };
    let mut u = url::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
    if let Some(pw) = u.password() {
        crate::secrets::register(pw);
        if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
            crate::secrets::register(&decoded);
        }
    }
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(bad(format!("scheme {:?} is not http or https", u.scheme())));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment".into()));
    }
    let path = u.path().trim_end_matches('/').to_string();
    u.set_path(&path);
    Ok(u)
}

/// `raw` without userinfo, query or fragment, and without a trailing `/`, for messages and
/// files. Text that does not parse as a URL is cut the same way by hand.
pub fn redact_url(raw: &str) -> String {
    let raw = raw.trim();
    match url::Url::parse(raw) {
        Ok(mut u) if u.has_host() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some() || u.fragment().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let mut shown = u.to_string().trim_end_matches('/').to_string();
            if had_query {
                shown.push_str("?<redacted>");
            }
            shown
        }
        _ => redact_unparsed(raw),
    }
}

/// `text` with every URL in it (a run of characters holding `://`, up to a space or a quote)
/// shown as [`redact_url`] shows it, when it has userinfo, a query or a fragment; the rest
/// of the text unchanged.
pub fn redact_urls_in(text: &str) -> std::borrow::Cow<'_, str> {
    let is_end = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>');
    if !text.contains("://") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // the URL starts after the last delimiter before `://`
        let start = rest[..at].rfind(is_end).map_or(0, |i| {
            i + rest[i..].chars().next().map_or(1, char::len_utf8)
        });
        let mut end = rest[at..].find(is_end).map_or(rest.len(), |i| at + i);
        // a closing bracket around the URL (`[env: VLLM_URL=http://...]` in `--help`) is not
        // part of it; an IPv6 host's (`http://[::1]:8000`) is
        if rest[start..end].ends_with(']')
            && rest[start..end].matches(']').count() > rest[start..end].matches('[').count()
        {
            end -= 1;
        }
        let candidate = &rest[start..end];
        out.push_str(&rest[..start]);
        let authority = candidate.split(['/', '?', '#']).nth(2).unwrap_or("");
        if authority.contains('@') || candidate.contains(['?', '#']) {
            out.push_str(&redact_url(candidate));
        } else {
            out.push_str(candidate);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// [`redact_url`] for text the URL parser refuses (`http://u:pw@h:notaport`, `[::1`, no scheme).
fn redact_unparsed(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(i) => raw.split_at(i + 3),
        None => ("", raw),
    };
    let (before_query, had_query) = match rest.find(['?', '#']) {
        Some(i) => (&rest[..i], true),
        None => (rest, false),
    };
    // The authority ends at the first `/`; a `@` in it ends the userinfo (the last one wins,
    // as a password may contain `@`).
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut shown = format!("{scheme}{host}{path}");
    if had_query {
        shown.push_str("?<redacted>");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let u = parse_base_url("--prometheus-url", "http://127.0.0.1:9090/").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9090/");
        let u = parse_base_url("--prometheus-url", " http://proxy/prometheus/ ").unwrap();
        assert_eq!(u.as_str(), "http://proxy/prometheus");
        let e = parse_base_url("--prometheus-url", "localhost:9090").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid --prometheus-url \"localhost:9090\""),
            "{e}"
        );
        let e = parse_base_url("--vllm-url", "ftp://h/").unwrap_err();
        assert_eq!(e.flag, "--vllm-url");
        assert!(e.to_string().contains("not http or https"), "{e}");
    }

    #[test]
    fn the_error_names_the_flag_it_came_from() {
        let e = parse_base_url("--prometheus-url", "nonsense").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid --prometheus-url "),
            "{e}"
        );
        assert!(!e.to_string().contains("--vllm-url"), "{e}");
    }

    #[rstest]
    #[case("http://user:s3cret@h:9090/", "http://h:9090")]
    #[case(
        "http://user:s3cret@h:9090/p/?token=s3cret",
        "http://h:9090/p?<redacted>"
    )]
    #[case("https://h/x#s3cret", "https://h/x?<redacted>")]
    #[case("http://user:s3cret@127.0.0.1:notaport", "http://127.0.0.1:notaport")]
    #[case("http://user:s3c@ret@[::1", "http://[::1")]
    #[case("user:s3cret@h:1/x?k=s3cret", "h:1/x?<redacted>")]
    #[case("ftp://u:s3cret@h/", "ftp://h")]
    #[case("http://h:1", "http://h:1")]
    fn credentials_never_survive_redaction(#[case] raw: &str, #[case] shown: &str) {
        assert_eq!(redact_url(raw), shown);
        assert!(!redact_url(raw).contains("s3c"), "{raw}");
    }

    #[test]
    fn urls_inside_a_text_lose_their_credentials() {
        let text = "error: unexpected argument 'http://user:s3cret@h:2/p?token=s3cret' found; see https://docs.example/x and \"ftp://u:s3cret@[::1\"";
        let clean = redact_urls_in(text);
        assert_eq!(
            clean,
            "error: unexpected argument 'http://h:2/p?<redacted>' found; see https://docs.example/x and \"ftp://[::1\""
        );
        assert_eq!(
            redact_urls_in("[env: VLLM_URL=http://u:s3cret@[::1]:8000/?t=s3cret]\n"),
            "[env: VLLM_URL=http://[::1]:8000/?<redacted>]\n"
        );
        assert_eq!(
            redact_urls_in("no url, s3://bucket/eval.jsonl"),
            "no url, s3://bucket/eval.jsonl"
        );
    }

    #[test]
    fn a_parsed_password_is_known_to_the_scrubber() {
        parse_base_url("--prometheus-url", "http://u:pw%40Known-1@h:9090").unwrap();
        assert_eq!(
            crate::secrets::scrub("echo pw@Known-1 pw%40Known-1"),
            "echo <redacted> <redacted>"
        );
    }

    #[test]
    fn a_refused_url_is_shown_redacted() {
        for raw in [
            "http://user:s3cret@127.0.0.1:notaport",
            "http://user:s3cret@h/?token=s3cret",
            "http://user:s3cret@[::1",
            "user:s3cret@h:9090",
        ] {
            let e = parse_base_url("--vllm-url", raw).unwrap_err();
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
