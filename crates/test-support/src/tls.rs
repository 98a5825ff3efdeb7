//! TLS for tests: a certificate authority made on the spot ([`TestCa`]: a CA, and a server
//! certificate for `127.0.0.1` and `localhost` signed by it, the CA written as a PEM file), and
//! [`TlsFront`], a TLS-terminating front that forwards the decrypted bytes to a plain upstream,
//! as an ingress puts TLS in front of vLLM, Prometheus or MLflow. Any real server (the
//! simulator, Prometheus, MLflow) can then be reached over `https` without being configured for
//! it.
//!
//! ```no_run
//! use test_support::tls::{TestCa, TlsFront};
//! let ca = TestCa::new();
//! let front = TlsFront::start("127.0.0.1:9090", &ca);
//! // https://127.0.0.1:PORT, trusted with `--prometheus-ca-cert <ca.ca_path()>`
//! println!("{} {}", front.url(), ca.ca_path().display());
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA made for one test, and a server certificate it signed (names `127.0.0.1`, `localhost`).
pub struct TestCa {
    dir: tempfile::TempDir,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A new CA and server certificate; the CA's PEM is written to a temporary file.
    pub fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("invariant: no names");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "perf-gate test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("invariant: a key can be generated");
        let ca_cert = ca.self_signed(&ca_key).expect("invariant: valid CA params");
        let issuer = Issuer::new(ca, ca_key);

        let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("invariant: valid names");
        server
            .distinguished_name
            .push(DnType::CommonName, "perf-gate test server");
        server.use_authority_key_identifier_extension = true;
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().expect("invariant: a key can be generated");
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("invariant: valid server params");

        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("the CA file is written");
        TestCa {
            dir,
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
        }
    }

    /// The CA certificate as a PEM file (what `--vllm-ca-cert` and the like take).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory holding the CA file (for other files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn server_config(&self) -> ServerConfig {
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("invariant: the provider supports the default versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .expect("invariant: the key matches the certificate")
    }
}

/// Counts of a [`TlsFront`].
#[derive(Debug, Default)]
struct Counts {
    handshakes: AtomicU64,
    refused: AtomicU64,
}

/// A TLS front on a free `127.0.0.1` port, serving the [`TestCa`]'s server certificate and
/// forwarding each connection's bytes to `upstream` (one upstream connection per client
/// connection, so keep-alive passes through). Stopped when dropped.
pub struct TlsFront {
    url: String,
    counts: Arc<Counts>,
    /// Drops every connection (the front keeps listening).
    cut: Arc<tokio::sync::Notify>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Starts a front for `upstream` (`host:port`, or a `http://host:port` URL).
    pub fn start(upstream: &str, ca: &TestCa) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let acceptor = TlsAcceptor::from(Arc::new(ca.server_config()));
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port can be bound");
        std_listener
            .set_nonblocking(true)
            .expect("invariant: a socket can be non-blocking");
        let port = std_listener
            .local_addr()
            .expect("invariant: a bound socket has an address")
            .port();
        let counts = Arc::new(Counts::default());
        let cut = Arc::new(tokio::sync::Notify::new());
        let (tx, rx) = oneshot::channel();
        let (thread_counts, thread_cut) = (counts.clone(), cut.clone());
        let thread = std::thread::Builder::new()
            .name("tls-front".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the TLS front");
                rt.block_on(serve(
                    std_listener,
                    acceptor,
                    upstream,
                    thread_counts,
                    thread_cut,
                    rx,
                ));
            })
            .expect("the TLS front's thread starts");
        TlsFront {
            url: format!("https://127.0.0.1:{port}"),
            counts,
            cut,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// TLS connections established so far (a pooled keep-alive client makes few).
    pub fn handshakes(&self) -> u64 {
        self.counts.handshakes.load(Ordering::SeqCst)
    }

    /// Connections whose handshake failed (e.g. the client refused the certificate).
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::SeqCst)
    }

    /// Drops every connection at once, without `close_notify`, and goes on accepting: the
    /// server behind a load balancer restarted (its process gone, a new one serving).
    pub fn drop_connections(&self) {
        self.cut.notify_one();
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    upstream: String,
    counts: Arc<Counts>,
    cut: Arc<tokio::sync::Notify>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (socket, _) = tokio::select! {
            _ = &mut shutdown => break,
            _ = cut.notified() => {
                tasks.abort_all();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        // as an ingress (nginx's `tcp_nodelay on`): each token goes out when relayed, not held
        // back by Nagle until the client acknowledges the last one
        let _ = socket.set_nodelay(true);
        let (acceptor, upstream, counts) = (acceptor.clone(), upstream.clone(), counts.clone());
        tasks.spawn(async move {
            let mut tls = match acceptor.accept(socket).await {
                Ok(s) => s,
                Err(_) => {
                    counts.refused.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            counts.handshakes.fetch_add(1, Ordering::SeqCst);
            let Ok(mut plain) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = plain.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
    tasks.abort_all();
}
