//! Where the MLflow server is, how to authenticate and which TLS certificates to trust: built
//! from explicit values or from the Python client's environment variables.

use std::time::Duration;

use url::Url;

use super::error::MlflowError;
use crate::retry::RetryPolicy;
pub use crate::secrets::Secret;
use crate::transport::CaCertificates;

/// Timeout of one MLflow HTTP attempt by default (the Python client's).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>` (`MLFLOW_TRACKING_TOKEN`; managed MLflow or a proxy).
    Bearer(Secret),
    /// HTTP basic (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`; `--app-name basic-auth`).
    Basic {
        /// User name (not secret).
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Auth {
    /// Picks the scheme the way the Python client does: a token wins; else a username needs a
    /// password; else no authentication. Empty strings count as unset.
    pub fn from_parts(
        token: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Auth, MlflowError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        match (nonempty(token), nonempty(username), nonempty(password)) {
            (Some(token), _, _) => Ok(Auth::Bearer(Secret::new(token))),
            (None, Some(username), Some(password)) => Ok(Auth::Basic {
                username,
                password: Secret::new(password),
            }),
            (None, Some(_), None) => Err(MlflowError::Config(
                "MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is not".into(),
            )),
            (None, None, Some(_)) => Err(MlflowError::Config(
                "MLFLOW_TRACKING_PASSWORD is set but MLFLOW_TRACKING_USERNAME is not".into(),
            )),
            (None, None, None) => Ok(Auth::None),
        }
    }

    /// `none`, `bearer` or `basic`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic { .. } => "basic",
        }
    }
}

/// Everything the client needs to reach one MLflow tracking server.
#[derive(Clone, Debug)]
pub struct MlflowConfig {
    /// Base URL of the server (`http(s)://host[:port][/prefix]`), without credentials.
    pub tracking_uri: Url,
    /// Authentication scheme.
    pub auth: Auth,
    /// Accept any TLS certificate (`MLFLOW_TRACKING_INSECURE_TLS=true`). For test setups only.
    pub insecure_tls: bool,
    /// Certificates to trust besides the system's roots (`MLFLOW_TRACKING_SERVER_CERT_PATH`, a
    /// PEM file, as the Python client reads it).
    pub ca_certs: Option<CaCertificates>,
    /// Timeout of one HTTP attempt, connection to last body byte.
    pub request_timeout: Duration,
    /// Timeout of the TCP/TLS connection of one attempt.
    pub connect_timeout: Duration,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
}

impl MlflowConfig {
    /// A config for `tracking_uri` with no auth, default timeouts (30 s per attempt, 10 s to
    /// connect) and the default [`RetryPolicy`].
    ///
    /// Only `http` and `https` URIs are accepted; credentials inside the URI are refused, so that
    /// they cannot leak into logs (use [`Auth::Basic`]).
    ///
    /// ```
    /// let c = perf_gate::mlflow::MlflowConfig::new("http://127.0.0.1:5000").unwrap();
    /// assert_eq!(c.tracking_uri.as_str(), "http://127.0.0.1:5000/");
    /// assert!(perf_gate::mlflow::MlflowConfig::new("databricks").is_err());
    /// ```
    pub fn new(tracking_uri: &str) -> Result<Self, MlflowError> {
        let url =
            crate::urls::parse_base_url("MLFLOW_TRACKING_URI", tracking_uri).map_err(|e| {
                MlflowError::Config(format!("{e}; expected an http(s):// tracking server"))
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(MlflowError::Config(
                "MLFLOW_TRACKING_URI must not contain credentials; use MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                    .into(),
            ));
        }
        Ok(MlflowConfig {
            tracking_uri: url,
            auth: Auth::None,
            insecure_tls: false,
            ca_certs: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        })
    }

    /// Reads the Python client's variables from the process environment. `Ok(None)` when
    /// `MLFLOW_TRACKING_URI` is unset or empty.
    pub fn from_env() -> Result<Option<Self>, MlflowError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`MlflowConfig::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, MlflowError> {
        let Some(uri) = lookup("MLFLOW_TRACKING_URI").filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let mut config = MlflowConfig::new(&uri)?;
        config.auth = Auth::from_parts(
            lookup("MLFLOW_TRACKING_TOKEN"),
            lookup("MLFLOW_TRACKING_USERNAME"),
            lookup("MLFLOW_TRACKING_PASSWORD"),
        )?;
        if let Some(path) = lookup("MLFLOW_TRACKING_SERVER_CERT_PATH").filter(|p| !p.is_empty()) {
            config.ca_certs = Some(
                CaCertificates::load("MLFLOW_TRACKING_SERVER_CERT_PATH", path.as_ref())
                    .map_err(|e| MlflowError::Config(crate::step::error_line(&e)))?,
            );
        }
        if let Some(v) = lookup("MLFLOW_TRACKING_INSECURE_TLS") {
            config.insecure_tls = parse_bool(&v).ok_or_else(|| {
                MlflowError::Config(format!(
                    "MLFLOW_TRACKING_INSECURE_TLS must be true or false, got `{v}`"
                ))
            })?;
        }
        Ok(Some(config))
    }

    /// The tracking URI as text, without a trailing slash (safe to log: it holds no credentials).
    pub fn base_url(&self) -> String {
        self.tracking_uri.as_str().trim_end_matches('/').to_string()
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case); empty means false.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_without_uri_is_none() {
        assert!(MlflowConfig::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(
            MlflowConfig::from_lookup(lookup(&[("MLFLOW_TRACKING_URI", " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn token_wins_over_basic_and_never_shows_in_debug() {
        let c = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "https://mlflow.example:443/prefix/"),
            ("MLFLOW_TRACKING_TOKEN", "tok-SECRET-1"),
            ("MLFLOW_TRACKING_USERNAME", "bob"),
            ("MLFLOW_TRACKING_PASSWORD", "pw-SECRET-2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.auth, Auth::Bearer(Secret::new("tok-SECRET-1")));
        assert_eq!(c.base_url(), "https://mlflow.example/prefix");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn basic_auth_needs_both_parts() {
        let c = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
            ("MLFLOW_TRACKING_USERNAME", "admin"),
            ("MLFLOW_TRACKING_PASSWORD", "pw-SECRET"),
            ("MLFLOW_TRACKING_INSECURE_TLS", "TRUE"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.auth.kind(), "basic");
        assert!(c.insecure_tls);
        assert!(!format!("{:?}", c.auth).contains("SECRET"));

        let e = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
            ("MLFLOW_TRACKING_USERNAME", "admin"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("MLFLOW_TRACKING_PASSWORD"), "{e}");
    }

    #[test]
    fn bad_uris_are_config_errors_without_leaking_credentials() {
        for bad in [
            "not a url",
            "file:///tmp/mlruns",
            "databricks",
            "http://u:SECRET@host:5000",
            "http://host:5000/?x=1",
        ] {
            let e = MlflowConfig::new(bad).unwrap_err();
            assert!(matches!(e, MlflowError::Config(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("SECRET"));
        }
        let e = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "http://h:1"),
            ("MLFLOW_TRACKING_INSECURE_TLS", "maybe"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("maybe"));
    }

    #[test]
    fn the_python_clients_cert_path_is_read_at_once() {
        let ca = test_support::tls::TestCa::new();
        let ca_path = ca.ca_path().display().to_string();
        let c = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "https://mlflow.example"),
            ("MLFLOW_TRACKING_SERVER_CERT_PATH", &ca_path),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.ca_certs.as_ref().map(CaCertificates::len), Some(1));
        assert!(!c.insecure_tls);
        let missing = ca.dir().join("missing.pem").display().to_string();
        let e = MlflowConfig::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_URI", "https://mlflow.example"),
            ("MLFLOW_TRACKING_SERVER_CERT_PATH", &missing),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "cannot read MLFLOW_TRACKING_SERVER_CERT_PATH {missing}"
            )),
            "{e}"
        );
    }
}
