//! Errors of the `prom` module. Every variant names the server (URL without credentials).

/// A boxed transport error (reqwest or prometheus-http-query).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong collecting server-side figures.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The URL is not an absolute http(s) URL.
    #[error("invalid {what} URL {url:?}: {reason}")]
    BadUrl {
        /// Which URL (`Prometheus`, `vLLM`).
        what: &'static str,
        /// The URL as given (credentials removed).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting cannot be used (empty job label, malformed GPU selector).
    #[error("invalid setting {setting}: {reason}")]
    BadSetting {
        /// The flag or setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer (connection refused, reset, timeout) after every retry.
    #[error("{what} at {url} is unreachable after {attempts} attempt(s)")]
    Unreachable {
        /// `Prometheus` or `vLLM /metrics`.
        what: &'static str,
        /// Server URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: BoxError,
    },
    /// `GET /-/ready` kept answering a non-200 status.
    #[error(
        "Prometheus at {url} is not ready: GET /-/ready returned HTTP {status} after {attempts} attempt(s)"
    )]
    NotReady {
        /// Server URL.
        url: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// Prometheus answered `status: "error"` (bad query, execution error, timeout) or an HTTP
    /// error, after retries where a retry makes sense (never for `bad_data`).
    #[error("Prometheus at {url} rejected query {query:?}: HTTP {status} {error_type}: {error}")]
    Http {
        /// Server URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Prometheus `errorType` (`bad_data`, `execution`, `timeout`, ...), or `http`.
        error_type: String,
        /// Prometheus `error` text, or the start of a non-JSON body.
        error: String,
        /// The PromQL sent.
        query: String,
    },
    /// A 200 answer whose body is not the expected shape.
    #[error("{what} at {url} sent an unexpected answer: {message}")]
    Parse {
        /// `Prometheus` or `vLLM /metrics`.
        what: &'static str,
        /// Server URL.
        url: String,
        /// What was wrong with it.
        message: String,
    },
    /// vLLM's `/metrics` answered with a non-2xx status.
    #[error("vLLM /metrics at {url} returned HTTP {status}")]
    MetricsStatus {
        /// The `/metrics` URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// vLLM's `/metrics` body is not valid text exposition format.
    #[error("vLLM /metrics at {url} is not valid Prometheus text format")]
    Exposition {
        /// The `/metrics` URL.
        url: String,
        /// The offending line.
        #[source]
        source: super::exposition::ExpositionError,
    },
}

impl PromError {
    /// Whether the error comes from the user's input (flags) rather than from a server: the
    /// binaries map it to exit code 2 (bad input), everything else to 3 (dependency).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PromError::BadUrl { .. } | PromError::BadSetting { .. }
        )
    }
}

impl PromError {
    /// The same error with the attempt count filled in (retry loop).
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        match &mut self {
            PromError::Unreachable { attempts, .. } | PromError::NotReady { attempts, .. } => {
                *attempts = n;
            }
            _ => {}
        }
        self
    }
}

/// `url` without userinfo (a password in a URL must never reach a message or a file).
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Parses and checks an absolute http(s) base URL; the result has no trailing slash.
pub(crate) fn parse_base_url(what: &'static str, raw: &str) -> Result<url::Url, PromError> {
    let trimmed = raw.trim();
    let bad = |reason: String| PromError::BadUrl {
        what,
        url: redact_url(trimmed),
        reason,
    };
    let mut u = url::Url::parse(trimmed).map_err(|e| bad(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_credentials_never_shown() {
        let u = parse_base_url("Prometheus", "http://127.0.0.1:9090/").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9090/");
        let u = parse_base_url("Prometheus", " http://proxy/prometheus/ ").unwrap();
        assert_eq!(u.as_str(), "http://proxy/prometheus");
        let e = parse_base_url("Prometheus", "localhost:9090").unwrap_err();
        assert!(e.is_bad_input());
        assert!(
            e.to_string()
                .starts_with("invalid Prometheus URL \"localhost:9090\""),
            "{e}"
        );
        let e = parse_base_url("Prometheus", "ftp://h/").unwrap_err();
        assert!(e.to_string().contains("not http or https"), "{e}");
        let e = parse_base_url("Prometheus", "http://user:s3cret@h:9090/?x=1").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!(redact_url("http://user:s3cret@h:9090/"), "http://h:9090/");
    }
}
