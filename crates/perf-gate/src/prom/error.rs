//! Errors of the `prom` module. Every variant names the server (URL without credentials).

/// A boxed transport error (reqwest or prometheus-http-query).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong collecting server-side figures.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The URL is not an absolute http(s) base URL.
    #[error(transparent)]
    BadUrl(#[from] crate::urls::UrlError),
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
        matches!(self, PromError::BadUrl(_) | PromError::BadSetting { .. })
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
