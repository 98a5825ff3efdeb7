//! How the gate's HTTP clients reach their servers (vLLM, Prometheus, MLflow): which TLS
//! certificates they trust, and which credentials a vLLM request carries.
//!
//! - TLS ([`TlsSettings`]): the system's roots, plus the certificates of a PEM file given for
//!   that server (`--vllm-ca-cert`, `--prometheus-ca-cert`, `--mlflow-ca-cert`), read once at
//!   start ([`CaCertificates::load`]); or no check at all (`--vllm-insecure-tls`, ...), which is
//!   logged at WARN each time such a client is built. A certificate the client does not trust
//!   fails the call at once (no retry: another attempt meets the same certificate), and the
//!   error names the server and the problem ([`is_certificate_error`], [`Peer::hint`]).
//! - vLLM credentials ([`vllm_auth`]): exactly one `Authorization` header. An API key
//!   (`VLLM_API_KEY`) is sent as `Bearer`; the URL's `user:password@` is then not sent at all
//!   (two headers make vLLM, or a proxy, answer 401). Without an API key, the URL's userinfo is
//!   sent as `Basic` (for a vLLM behind a basic-auth proxy).
//! - Redirects: the vLLM client follows none (a load generator measures the server it was
//!   given: a 3xx is a failed request with its status); the Prometheus and MLflow clients follow
//!   reqwest's default (at most 10), which drops `Authorization` on any change of scheme, host or
//!   port, so credentials never go to another server.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use reqwest::header::HeaderValue;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::secrets;

/// The names a server's TLS settings go by, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The server, as messages name it (`vLLM`).
    pub name: &'static str,
    /// The flag giving its CA certificates.
    pub ca_flag: &'static str,
    /// The flag turning its certificate checks off.
    pub insecure_flag: &'static str,
}

/// vLLM's TLS flags.
pub const VLLM: Peer = Peer {
    name: "vLLM",
    ca_flag: "--vllm-ca-cert",
    insecure_flag: "--vllm-insecure-tls",
};

/// Prometheus's TLS flags.
pub const PROMETHEUS: Peer = Peer {
    name: "Prometheus",
    ca_flag: "--prometheus-ca-cert",
    insecure_flag: "--prometheus-insecure-tls",
};

/// MLflow's TLS flags (the env vars are MLflow's own: `MLFLOW_TRACKING_SERVER_CERT_PATH`,
/// `MLFLOW_TRACKING_INSECURE_TLS`).
pub const MLFLOW: Peer = Peer {
    name: "MLflow",
    ca_flag: "--mlflow-ca-cert",
    insecure_flag: "--insecure-tls",
};

impl Peer {
    /// What to do about a certificate the client does not trust.
    pub fn hint(&self) -> String {
        format!(
            "the {} server's TLS certificate is not trusted: give {} with its CA (PEM), or {} on a test setup",
            self.name, self.ca_flag, self.insecure_flag
        )
    }
}

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {flag} {}", path.display())]
    Read {
        /// The flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no certificate, or a malformed one.
    #[error("{flag} {}: {reason}", path.display())]
    Pem {
        /// The flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Certificates to trust besides the system's roots, read from a PEM file (one or more
/// `BEGIN CERTIFICATE` blocks: a CA, a bundle, or a self-signed server certificate).
#[derive(Clone)]
pub struct CaCertificates {
    path: PathBuf,
    certs: Vec<reqwest::Certificate>,
    /// The same certificates as DER, for the own client's sessions.
    der: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCertificates")
            .field("path", &self.path)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl CaCertificates {
    /// Reads and parses the PEM file `path` given to `flag`; it must hold at least one
    /// certificate.
    pub fn load(flag: &'static str, path: &Path) -> Result<Self, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            flag,
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| TlsError::Pem {
            flag,
            path: path.to_path_buf(),
            reason,
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            bad(format!(
                "not a PEM certificate bundle ({})",
                crate::step::error_line(&e)
            ))
        })?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
        }
        let der = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a PEM certificate bundle ({e})")))?;
        Ok(CaCertificates {
            path: path.to_path_buf(),
            certs,
            der,
        })
    }

    /// The file the certificates came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether it holds none (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Which certificates a client trusts.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Extra trusted certificates (besides the system's roots).
    pub ca: Option<CaCertificates>,
    /// Accept any certificate (test setups only; logged at WARN).
    pub insecure: bool,
}

impl TlsSettings {
    /// The settings of `peer`: its CA file (read now) and its insecure flag.
    pub fn load(peer: &Peer, ca_cert: Option<&Path>, insecure: bool) -> Result<Self, TlsError> {
        let ca = ca_cert
            .map(|p| CaCertificates::load(peer.ca_flag, p))
            .transpose()?;
        Ok(TlsSettings { ca, insecure })
    }

    /// `builder` trusting what these settings say; an insecure client is logged at WARN.
    pub fn apply(&self, builder: reqwest::ClientBuilder, peer: &Peer) -> reqwest::ClientBuilder {
        let mut builder = builder;
        if let Some(ca) = &self.ca {
            builder = builder.tls_certs_merge(ca.certs.iter().cloned());
        }
        if self.insecure {
            tracing::warn!(
                "{}: TLS certificates are not checked ({}): anyone on the path can read and change the traffic, credentials included; use {} outside test setups",
                peer.name,
                peer.insecure_flag,
                peer.ca_flag
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        builder
    }
}

impl TlsSettings {
    /// A rustls client configuration trusting what these settings say, as reqwest's is built
    /// (the platform verifier with the extra certificates, or no check), offering HTTP/1.1
    /// only: the own client's `https` sessions. Logs nothing ([`TlsSettings::apply`] warns of
    /// an insecure client once).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous();
        let builder = if self.insecure {
            builder.with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let extra = self.ca.iter().flat_map(|ca| ca.der.iter().cloned());
            let verifier =
                rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)?;
            builder.with_custom_certificate_verifier(Arc::new(verifier))
        };
        let mut config = builder.with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts any certificate and signature (`--vllm-insecure-tls`): the session is encrypted
/// but not authenticated, as reqwest's `danger_accept_invalid_certs`.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether `e` (or an error it wraps) is a TLS certificate the client refused: unknown issuer,
/// wrong name, expired, ... Such a failure is not transient.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some_and(|r| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType
        )
    }) {
        return true;
    }
    // `io::Error::source` skips the error it wraps (itself often an `io::Error`): look inside
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && is_certificate_error(inner)
    {
        return true;
    }
    e.source().is_some_and(is_certificate_error)
}

/// A TLS certificate the client refused, with what to do about it; its source is the client's
/// own error (which says what is wrong with the certificate).
#[derive(Debug, thiserror::Error)]
#[error("{}", peer.hint())]
pub struct UntrustedCertificate {
    /// The server that presented it.
    pub peer: Peer,
    /// The client's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// `e`, wrapped in [`UntrustedCertificate`] (which names `peer`'s flags) when it is a refused
/// certificate ([`is_certificate_error`]); unchanged otherwise.
pub fn explain_certificate_error(
    peer: &Peer,
    e: Box<dyn std::error::Error + Send + Sync + 'static>,
) -> Box<dyn std::error::Error + Send + Sync + 'static> {
    if is_certificate_error(e.as_ref()) {
        Box::new(UntrustedCertificate {
            peer: *peer,
            source: e,
        })
    } else {
        e
    }
}

/// [`Peer::hint`] of `peer` when `e` holds a refused certificate ([`is_certificate_error`]) and
/// came from `peer`'s client (an error of type `E` is in its chain): for errors whose type
/// cannot carry the hint itself, printed next to them.
pub fn certificate_hint<E: std::error::Error + 'static>(
    e: &(dyn std::error::Error + 'static),
    peer: &Peer,
) -> Option<String> {
    let from_peer = std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<E>());
    (from_peer && is_certificate_error(e)).then(|| peer.hint())
}

/// The one `Authorization` header of vLLM requests ([`vllm_auth`]).
#[derive(Debug, Clone, Default)]
pub struct VllmAuth {
    /// `Bearer <key>` or `Basic <user:password>`, marked sensitive; `None`: no header.
    pub header: Option<HeaderValue>,
    /// The URL had `user:password@`, not sent because an API key is.
    pub userinfo_dropped: bool,
}

/// The API key cannot be sent as an HTTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API key contains characters not allowed in an HTTP header")]
pub struct BadCredentials;

/// Takes the userinfo out of `url` and chooses the one `Authorization` header vLLM requests
/// carry: `Bearer <api_key>` when a key is given (the URL's userinfo is then not sent), else
/// `Basic` from the URL's userinfo, else none. The secrets are registered with the scrubber.
pub fn vllm_auth(url: &mut url::Url, api_key: Option<&str>) -> Result<VllmAuth, BadCredentials> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .filter(|d| !d.is_empty())
            .map(String::from)
    };
    let username = decode(url.username());
    let password = url.password().and_then(decode);
    let had_userinfo = username.is_some() || password.is_some();
    if had_userinfo {
        // both calls fail only for URLs without a host, which `parse_base_url` refuses
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let sensitive = |text: String| {
        HeaderValue::from_str(&text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| BadCredentials)
    };
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        secrets::register(key);
        return Ok(VllmAuth {
            header: Some(sensitive(format!("Bearer {key}"))?),
            userinfo_dropped: had_userinfo,
        });
    }
    if !had_userinfo {
        return Ok(VllmAuth::default());
    }
    use base64::Engine as _;
    let (user, pass) = (username.unwrap_or_default(), password.unwrap_or_default());
    secrets::register_basic(&user, &pass);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Ok(VllmAuth {
        header: Some(sensitive(format!("Basic {token}"))?),
        userinfo_dropped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        crate::urls::parse_base_url("--vllm-url", s).unwrap()
    }

    #[test]
    fn an_api_key_wins_and_the_url_userinfo_is_not_sent() {
        let mut u = url("http://bob:url-Pw-1@h:8000/v");
        let auth = vllm_auth(&mut u, Some("sk-Key-1")).unwrap();
        assert_eq!(u.as_str(), "http://h:8000/v");
        let h = auth.header.unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Bearer sk-Key-1");
        assert!(auth.userinfo_dropped);
    }

    #[test]
    fn without_a_key_the_userinfo_is_sent_as_basic_and_registered() {
        let mut u = url("http://bob:p%40ss-W0rd@h:8000");
        let auth = vllm_auth(&mut u, Some("")).unwrap();
        assert_eq!(u.as_str(), "http://h:8000/");
        // base64("bob:p@ss-W0rd")
        assert_eq!(
            auth.header.unwrap().to_str().unwrap(),
            "Basic Ym9iOnBAc3MtVzByZA=="
        );
        assert!(!auth.userinfo_dropped);
        assert_eq!(
            secrets::scrub("Ym9iOnBAc3MtVzByZA== p@ss-W0rd"),
            "<redacted> <redacted>"
        );
    }

    #[test]
    fn no_credentials_no_header_and_a_bad_key_is_refused() {
        let mut u = url("http://h:8000");
        let auth = vllm_auth(&mut u, None).unwrap();
        assert!(auth.header.is_none() && !auth.userinfo_dropped);
        assert_eq!(
            vllm_auth(&mut u, Some("bad\nkey")).unwrap_err(),
            BadCredentials
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_certificate_is_recognised_and_the_ca_file_trusts_it() {
        let ca = test_support::tls::TestCa::new();
        // the upstream is closed: once TLS is through, the call fails another way
        let front = test_support::tls::TlsFront::start("127.0.0.1:1", &ca);
        let client = |tls: TlsSettings| {
            tls.apply(reqwest::Client::builder(), &VLLM)
                .build()
                .unwrap()
        };
        let e = client(TlsSettings::default())
            .get(front.url())
            .send()
            .await
            .unwrap_err();
        assert!(is_certificate_error(&e), "{e:?}");
        assert_eq!(
            crate::retry::classify(&e),
            crate::retry::AttemptOutcome::Fatal
        );
        let trusted = TlsSettings::load(&VLLM, Some(&ca.ca_path()), false).unwrap();
        assert_eq!(trusted.ca.as_ref().map(CaCertificates::len), Some(1));
        let e = client(trusted).get(front.url()).send().await.unwrap_err();
        assert!(!is_certificate_error(&e), "{e:?}");
        assert_eq!(front.handshakes(), 1);
        let e = client(TlsSettings {
            ca: None,
            insecure: true,
        })
        .get(front.url())
        .send()
        .await
        .unwrap_err();
        assert!(!is_certificate_error(&e), "{e:?}");
        assert_eq!(front.handshakes(), 2);
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = CaCertificates::load("--vllm-ca-cert", &missing).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read --vllm-ca-cert "),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = CaCertificates::load("--prometheus-ca-cert", &empty).unwrap_err();
        assert!(
            e.to_string().starts_with("--prometheus-ca-cert ")
                && e.to_string().contains("no PEM certificate"),
            "{e}"
        );
        let settings = TlsSettings::load(&MLFLOW, None, true).unwrap();
        assert!(settings.ca.is_none() && settings.insecure);
    }
}
