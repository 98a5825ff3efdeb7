//! Where a run's artifacts go, by the scheme of its `artifact_uri`:
//!
//! - `mlflow-artifacts:/...` (a server started with `--serve-artifacts`): through the tracking
//!   server's artifact proxy, with the client's own retries ([`MlflowClient::upload_artifact`]);
//! - `s3://<bucket>/<prefix>` (the usual production setup, `--default-artifact-root s3://...`
//!   with `--no-serve-artifacts`): straight to the bucket with the `object_store` crate, as the
//!   Python client does with boto3. Credentials come from the standard AWS environment
//!   (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, web identity (IRSA),
//!   ECS / EKS pod identity, instance metadata; not `~/.aws` profiles); the region from
//!   `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`; an S3-compatible store (MinIO, Ceph,
//!   moto) from `MLFLOW_S3_ENDPOINT_URL` (path-style requests, plain http allowed when the
//!   endpoint is http), and `MLFLOW_S3_IGNORE_TLS=true` accepts any certificate. The object key
//!   is `<prefix>/<file>`, where MLflow itself looks for it.
//! - any other scheme (`gs://`, `wasbs://`, `file:/`, `dbfs:/`, a bare path): a loud error naming
//!   the scheme ([`MlflowError::UnsupportedArtifactRoot`]), never a silently skipped artifact.
//!
//! S3 requests are retried by `object_store` on connection errors, 5xx and throttling, with the
//! client's [`RetryPolicy`] bounds (retries, backoff) and at most
//! [`S3_RETRY_TIMEOUT`] in all; 4xx answers (403 wrong credentials, 404 no such bucket) are not
//! retried. Secrets are never logged: only the bucket, key and endpoint are.

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutOptions,
    RetryConfig,
};
use tracing::info;

use super::client::MlflowClient;
use super::config::parse_bool;
use super::error::MlflowError;
use crate::retry::RetryPolicy;

mod store_error;

use store_error::{one_line, store_error};

/// Longest time `object_store` keeps retrying one S3 request (from its first attempt).
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// A run's artifact root, parsed from its `artifact_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRoot {
    /// `mlflow-artifacts:/1/<run>/artifacts`: served by the tracking server's artifact proxy.
    Proxied {
        /// Path under the proxy, e.g. `1/<run>/artifacts`.
        path: String,
    },
    /// `s3://<bucket>/<prefix>`: written directly to the bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`, e.g. `mlartifacts/1/<run>/artifacts`.
        prefix: String,
    },
}

impl ArtifactRoot {
    /// Parses a run's `artifact_uri`. `mlflow-artifacts:/p` and `mlflow-artifacts://host/p`
    /// give [`ArtifactRoot::Proxied`]; `s3://bucket/prefix` gives [`ArtifactRoot::S3`]; any
    /// other scheme, an empty path or a `.`/`..` segment is
    /// [`MlflowError::UnsupportedArtifactRoot`].
    ///
    /// ```
    /// use perf_gate::mlflow::ArtifactRoot;
    /// let root = ArtifactRoot::parse("s3://models/mlartifacts/1/abc/artifacts").unwrap();
    /// assert_eq!(
    ///     root,
    ///     ArtifactRoot::S3 { bucket: "models".into(), prefix: "mlartifacts/1/abc/artifacts".into() }
    /// );
    /// assert!(ArtifactRoot::parse("gs://models/1/abc/artifacts").is_err());
    /// ```
    pub fn parse(artifact_uri: &str) -> Result<Self, MlflowError> {
        let unsupported = || MlflowError::UnsupportedArtifactRoot {
            artifact_uri: artifact_uri.to_string(),
            scheme: scheme_of(artifact_uri),
        };
        let bad_path = |rest: &str| {
            let p = rest.trim_matches('/');
            p.is_empty() || p.split('/').any(|s| s == ".." || s == ".")
        };
        if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
            let path = match rest.strip_prefix("//") {
                // mlflow-artifacts://host:port/path: drop the authority.
                Some(with_host) => with_host.split_once('/').map(|(_, p)| p).unwrap_or(""),
                None => rest,
            };
            if bad_path(path) {
                return Err(unsupported());
            }
            return Ok(ArtifactRoot::Proxied {
                path: path.trim_matches('/').to_string(),
            });
        }
        if let Some(rest) = artifact_uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            let empty_segment = !prefix.is_empty() && prefix.split('/').any(str::is_empty);
            if bucket.is_empty()
                || (!prefix.is_empty() && bad_path(prefix))
                || empty_segment
                || prefix.contains(['?', '#'])
            {
                return Err(unsupported());
            }
            return Ok(ArtifactRoot::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        Err(unsupported())
    }
}

/// The scheme of a URI (`gs`, `file`, ...), or `none` for a bare path.
fn scheme_of(uri: &str) -> String {
    match uri.split_once(':') {
        Some((s, _))
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            s.to_ascii_lowercase()
        }
        _ => "none".to_string(),
    }
}

/// The object key of artifact `rel_path` under `prefix`: `<prefix>/<rel_path>`, where MLflow's
/// S3 artifact repository looks for it. A `rel_path` with an empty, `.` or `..` segment is
/// refused.
pub fn object_key(prefix: &str, rel_path: &str) -> Result<ObjectPath, MlflowError> {
    let rel = rel_path.trim_matches('/');
    let invalid = |why: String| MlflowError::Config(format!("artifact path `{rel_path}`: {why}"));
    if rel.is_empty()
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid(
            "must be a relative path without empty, `.` or `..` parts".into(),
        ));
    }
    let key = match prefix.trim_matches('/') {
        "" => rel.to_string(),
        p => format!("{p}/{rel}"),
    };
    ObjectPath::parse(&key).map_err(|e| invalid(e.to_string()))
}

/// MLflow's S3 settings that the AWS variables do not cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `MLFLOW_S3_ENDPOINT_URL`: an S3-compatible store; wins over `AWS_ENDPOINT_URL(_S3)`.
    pub endpoint: Option<String>,
    /// `MLFLOW_S3_IGNORE_TLS`: accept any TLS certificate from the store.
    pub ignore_tls: bool,
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, when set: the user's choice of addressing style.
    pub virtual_hosted: Option<bool>,
}

impl S3Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, MlflowError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`S3Settings::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MlflowError> {
        let flag = |name: &str| -> Result<Option<bool>, MlflowError> {
            lookup(name)
                .map(|v| {
                    parse_bool(&v).ok_or_else(|| {
                        MlflowError::Config(format!("{name} must be true or false, got `{v}`"))
                    })
                })
                .transpose()
        };
        let endpoint = match lookup("MLFLOW_S3_ENDPOINT_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(raw) => {
                let raw = raw.trim().to_string();
                let url = url::Url::parse(&raw).map_err(|e| {
                    MlflowError::Config(format!(
                        "MLFLOW_S3_ENDPOINT_URL is not a valid URL ({e}); expected http(s)://host:port"
                    ))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(MlflowError::Config(
                        "MLFLOW_S3_ENDPOINT_URL must be an http(s)://host[:port] URL".into(),
                    ));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(MlflowError::Config(
                        "MLFLOW_S3_ENDPOINT_URL must not contain credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                    ));
                }
                Some(raw.trim_end_matches('/').to_string())
            }
        };
        Ok(S3Settings {
            endpoint,
            ignore_tls: flag("MLFLOW_S3_IGNORE_TLS")?.unwrap_or(false),
            virtual_hosted: flag("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")?,
        })
    }
}

/// Time and retry bounds of S3 requests (the MLflow client's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Transport {
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// Timeout of the connection of one attempt.
    pub connect_timeout: Duration,
    /// Retries and backoff.
    pub retry: RetryPolicy,
}

/// Completes `builder` (usually [`AmazonS3Builder::from_env`], which has read the `AWS_*`
/// variables) for `bucket`: `MLFLOW_S3_ENDPOINT_URL` as the endpoint; path-style requests with a
/// custom endpoint and virtual-hosted ones on AWS (unless the bucket name has dots, or
/// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` says otherwise); plain http allowed for an `http://`
/// endpoint; region `us-east-1` when none is set; the transport's timeouts and bounded retries.
pub fn configure_s3(
    builder: AmazonS3Builder,
    bucket: &str,
    settings: &S3Settings,
    transport: &S3Transport,
) -> AmazonS3Builder {
    let mut b = builder.with_bucket_name(bucket);
    if let Some(ep) = &settings.endpoint {
        // the S3-specific endpoint takes precedence over AWS_ENDPOINT_URL in object_store
        b = b.with_config(AmazonS3ConfigKey::S3Endpoint, ep);
    }
    let endpoint = b
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let virtual_hosted = settings
        .virtual_hosted
        .unwrap_or(endpoint.is_none() && !bucket.contains('.'));
    b = b.with_virtual_hosted_style_request(virtual_hosted);
    if endpoint
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"))
    {
        b = b.with_allow_http(true);
    }
    if settings.ignore_tls {
        b = b.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates),
            "true",
        );
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region("us-east-1");
    }
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    b.with_config(
        AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
        duration(transport.request_timeout),
    )
    .with_config(
        AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
        duration(transport.connect_timeout),
    )
    .with_retry(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: transport.retry.initial_backoff,
            max_backoff: transport.retry.max_backoff,
            base: 2.0,
        },
        max_retries: transport.retry.max_retries as usize,
        retry_timeout: S3_RETRY_TIMEOUT,
    })
}

/// The `Content-Type` MLflow's S3 repository would set for this file name.
fn content_type(rel_path: &str) -> Option<&'static str> {
    let ext = rel_path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => Some("application/json"),
        Some("txt" | "log") => Some("text/plain"),
        Some("yaml" | "yml") => Some("application/x-yaml"),
        Some("html") => Some("text/html"),
        _ => None,
    }
}

impl MlflowClient {
    /// The bounds S3 requests of this client use.
    pub(crate) fn s3_transport(&self) -> S3Transport {
        S3Transport {
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout,
            retry: self.retry,
        }
    }

    /// The store for `bucket`, and where its requests go (for messages).
    fn s3_store(&self, bucket: &str) -> Result<(object_store::aws::AmazonS3, String), MlflowError> {
        let settings = S3Settings::from_env()?;
        let builder = configure_s3(
            AmazonS3Builder::from_env(),
            bucket,
            &settings,
            &self.s3_transport(),
        );
        let endpoint = endpoint_label(&builder);
        let store = builder.build().map_err(|e| {
            MlflowError::Config(format!(
                "cannot set up the S3 client for bucket `{bucket}`: {}",
                one_line(&e.to_string())
            ))
        })?;
        Ok((store, endpoint))
    }

    /// `PUT s3://<bucket>/<prefix>/<rel_path>` with the environment's AWS credentials.
    pub(crate) async fn s3_put(
        &self,
        bucket: &str,
        prefix: &str,
        rel_path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), MlflowError> {
        let key = object_key(prefix, rel_path)?;
        let (store, endpoint) = self.s3_store(bucket)?;
        let mut attributes = Attributes::new();
        if let Some(ct) = content_type(rel_path) {
            attributes.insert(Attribute::ContentType, ct.into());
        }
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        let size = bytes.len();
        store
            .put_opts(&key, bytes.into(), opts)
            .await
            .map_err(|e| store_error("PUT", format!("s3://{bucket}/{key}"), &endpoint, e))?;
        info!(bucket, key = %key, bytes = size, "artifact uploaded to S3");
        Ok(())
    }

    /// `GET s3://<bucket>/<prefix>/<rel_path>` with the environment's AWS credentials.
    pub(crate) async fn s3_get(
        &self,
        bucket: &str,
        prefix: &str,
        rel_path: &str,
    ) -> Result<Vec<u8>, MlflowError> {
        let key = object_key(prefix, rel_path)?;
        let (store, endpoint) = self.s3_store(bucket)?;
        let failed = |e| store_error("GET", format!("s3://{bucket}/{key}"), &endpoint, e);
        let got = store.get(&key).await.map_err(failed)?;
        Ok(got.bytes().await.map_err(failed)?.to_vec())
    }
}

/// Where S3 requests of `b` go: the custom endpoint, else `AWS S3 (<region>)`.
fn endpoint_label(b: &AmazonS3Builder) -> String {
    b.get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint))
        .unwrap_or_else(|| {
            let region = b.get_config_value(&AmazonS3ConfigKey::Region);
            format!("AWS S3 ({})", region.as_deref().unwrap_or("us-east-1"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> ArtifactRoot {
        ArtifactRoot::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn roots_route_by_scheme() {
        assert_eq!(
            ArtifactRoot::parse("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            ArtifactRoot::Proxied {
                path: "1/abc/artifacts".into()
            }
        );
        assert_eq!(
            ArtifactRoot::parse("mlflow-artifacts://mlflow:5000/2/abc/artifacts/").unwrap(),
            ArtifactRoot::Proxied {
                path: "2/abc/artifacts".into()
            }
        );
        assert_eq!(
            ArtifactRoot::parse("s3://bucket/mlartifacts/1/abc/artifacts").unwrap(),
            s3("bucket", "mlartifacts/1/abc/artifacts")
        );
        assert_eq!(
            ArtifactRoot::parse("s3://my.bucket/a/").unwrap(),
            s3("my.bucket", "a")
        );
        // a bucket-wide root is legal: keys are then the bare file names
        assert_eq!(
            ArtifactRoot::parse("s3://bucket").unwrap(),
            s3("bucket", "")
        );
    }

    #[test]
    fn other_schemes_fail_naming_the_scheme() {
        for (uri, scheme) in [
            ("gs://bucket/1/abc/artifacts", "gs"),
            ("wasbs://c@acct.blob.core.windows.net/1/abc", "wasbs"),
            ("file:///tmp/mlruns/1/abc", "file"),
            ("dbfs:/databricks/mlflow/1/abc", "dbfs"),
            ("s3a://bucket/1/abc", "s3a"),
            ("/tmp/mlruns/1/abc", "none"),
            ("mlruns/1/abc", "none"),
        ] {
            let e = ArtifactRoot::parse(uri).unwrap_err();
            match &e {
                MlflowError::UnsupportedArtifactRoot {
                    artifact_uri,
                    scheme: s,
                } => {
                    assert_eq!(artifact_uri, uri);
                    assert_eq!(s, scheme, "{uri}");
                }
                other => panic!("{uri}: {other:?}"),
            }
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{uri}`")), "{msg}");
            assert!(msg.contains(&format!("scheme `{scheme}`")), "{msg}");
        }
    }

    #[test]
    fn malformed_roots_are_refused() {
        for bad in [
            "mlflow-artifacts:/",
            "mlflow-artifacts:/1/../../etc",
            "s3://",
            "s3:///prefix",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "s3://bucket/a?versionId=1",
        ] {
            assert!(
                matches!(
                    ArtifactRoot::parse(bad),
                    Err(MlflowError::UnsupportedArtifactRoot { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_are_prefix_slash_file() {
        assert_eq!(
            object_key("mlartifacts/1/abc/artifacts", "perf_decision.json")
                .unwrap()
                .as_ref(),
            "mlartifacts/1/abc/artifacts/perf_decision.json"
        );
        assert_eq!(
            object_key("", "load_test_results.json").unwrap().as_ref(),
            "load_test_results.json"
        );
        assert_eq!(
            object_key("p/", "sub/f.txt").unwrap().as_ref(),
            "p/sub/f.txt"
        );
        for bad in ["", "/", "../x", "a//b", "a/./b"] {
            assert!(
                matches!(object_key("p", bad), Err(MlflowError::Config(_))),
                "{bad}"
            );
        }
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_come_from_mlflow_variables() {
        assert_eq!(
            S3Settings::from_lookup(lookup(&[])).unwrap(),
            S3Settings::default()
        );
        let s = S3Settings::from_lookup(lookup(&[
            ("MLFLOW_S3_ENDPOINT_URL", " http://127.0.0.1:9000/ "),
            ("MLFLOW_S3_IGNORE_TLS", "true"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s.ignore_tls);
        assert_eq!(s.virtual_hosted, Some(false));
        for (k, v) in [
            ("MLFLOW_S3_ENDPOINT_URL", "minio:9000"),
            ("MLFLOW_S3_ENDPOINT_URL", "not a url"),
            ("MLFLOW_S3_ENDPOINT_URL", "http://key:secret@minio:9000"),
            ("MLFLOW_S3_IGNORE_TLS", "maybe"),
        ] {
            let e = S3Settings::from_lookup(lookup(&[(k, v)])).unwrap_err();
            assert!(matches!(e, MlflowError::Config(_)), "{k}={v}");
            assert!(e.to_string().contains(k), "{e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    fn transport() -> S3Transport {
        S3Transport {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    fn value(b: &AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
        b.get_config_value(&key)
    }

    #[test]
    fn custom_endpoint_means_path_style_and_http_allowed() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..Default::default()
        };
        let base = AmazonS3Builder::new().with_endpoint("https://ignored.example");
        let b = configure_s3(base, "bucket", &settings, &transport());
        assert_eq!(
            value(&b, AmazonS3ConfigKey::S3Endpoint).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("false")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Bucket).as_deref(),
            Some("bucket")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Client(ClientConfigKey::Timeout)).as_deref(),
            Some("30s")
        );
        assert_eq!(
            value(
                &b,
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout)
            )
            .as_deref(),
            Some("10s")
        );
        assert_eq!(
            value(
                &b,
                AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates)
            )
            .as_deref(),
            Some("false")
        );
    }

    #[test]
    fn aws_means_virtual_hosted_https_and_the_users_region() {
        let base = AmazonS3Builder::new().with_region("eu-west-3");
        let b = configure_s3(base, "bucket", &S3Settings::default(), &transport());
        assert_eq!(value(&b, AmazonS3ConfigKey::S3Endpoint), None);
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("false")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-west-3")
        );
        // dotted bucket names break virtual-hosted TLS: path-style
        let b = configure_s3(
            AmazonS3Builder::new(),
            "my.bucket",
            &S3Settings::default(),
            &transport(),
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("false")
        );
        // the user's explicit choice wins; an https endpoint keeps http refused
        let settings = S3Settings {
            endpoint: Some("https://minio.internal".into()),
            ignore_tls: true,
            virtual_hosted: Some(true),
        };
        let b = configure_s3(AmazonS3Builder::new(), "bucket", &settings, &transport());
        assert_eq!(
            value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&b, AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).as_deref(),
            Some("false")
        );
        assert_eq!(
            value(
                &b,
                AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates)
            )
            .as_deref(),
            Some("true")
        );
    }

    #[test]
    fn endpoint_labels_name_the_store() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..Default::default()
        };
        let b = configure_s3(AmazonS3Builder::new(), "b", &settings, &transport());
        assert_eq!(endpoint_label(&b), "http://127.0.0.1:9000");
        let b = configure_s3(
            AmazonS3Builder::new().with_region("eu-west-3"),
            "b",
            &S3Settings::default(),
            &transport(),
        );
        assert_eq!(endpoint_label(&b), "AWS S3 (eu-west-3)");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("perf_decision.json"), Some("application/json"));
        assert_eq!(content_type("x/perf_status.TXT"), Some("text/plain"));
        assert_eq!(content_type("model.bin"), None);
        assert_eq!(content_type("README"), None);
    }
}
