//! What a connection of the own client carries its bytes over: the timed socket itself for
//! `http`, or a TLS session on it for `https` (rustls, through `tokio-rustls`).
//!
//! Either way a read says when its bytes arrived: the kernel's receive time of the newest
//! segment the read took from the socket ([`super::timed_socket`]). Under TLS that is the
//! receive time of the last segment read to decrypt them: a record's bytes become readable
//! only once its last segment is in, so the time is the same as on plain `http`.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::timed_socket::TimedSocket;

/// A connection's byte stream.
pub(crate) enum Link {
    /// Plain `http`.
    Plain(TimedSocket),
    /// A TLS session (boxed: its state is some kilobytes, a plain link's a few words).
    Tls(Box<TlsStream<TimedSocket>>),
}

/// How the own client opens TLS sessions to one server.
#[derive(Clone)]
pub(crate) struct TlsOrigin {
    connector: tokio_rustls::TlsConnector,
    /// The name the certificate must carry (and SNI sends; none for an address literal).
    name: ServerName<'static>,
}

impl std::fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsOrigin {
    /// Sessions to `host` (a name or an address literal without brackets) under `config`;
    /// `None` when `host` cannot be a TLS server name.
    pub fn new(host: &str, config: Arc<rustls::ClientConfig>) -> Option<Self> {
        Some(TlsOrigin {
            connector: tokio_rustls::TlsConnector::from(config),
            name: ServerName::try_from(host.to_string()).ok()?,
        })
    }

    /// Runs the handshake on `socket`. A refused certificate is an error whose source is
    /// rustls's own ([`crate::transport::is_certificate_error`] finds it).
    pub async fn handshake(&self, socket: TimedSocket) -> io::Result<Link> {
        let tls = self.connector.connect(self.name.clone(), socket).await?;
        Ok(Link::Tls(Box::new(tls)))
    }
}

impl Link {
    /// Reads into `buf`: how many bytes (0 at the end of the stream) and when the newest of them
    /// arrived, if the kernel said. A TLS peer that closes without `close_notify` ends the
    /// stream as a plain close would (HTTP's own framing says whether the answer was whole,
    /// as on plain `http`).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
        match self {
            Link::Plain(s) => s.read(buf).await,
            Link::Tls(t) => match t.read(buf).await {
                Ok(n) => Ok((n, t.get_ref().0.last_arrival())),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok((0, None)),
                Err(e) => Err(e),
            },
        }
    }

    /// Writes all of `bytes` (under TLS, as one or more records sent at once).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => TimedSocket::write_all(s, bytes).await,
            Link::Tls(t) => {
                t.write_all(bytes).await?;
                t.flush().await
            }
        }
    }

    /// Whether an idle connection still looks usable: the server has not closed it or sent
    /// anything unasked. Costs no system call unless the reactor saw the socket readable. A
    /// TLS server's messages that carry no data (session tickets, sent after the handshake)
    /// are taken in and leave the connection usable.
    pub fn looks_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            Link::Plain(s) => {
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Link::Tls(t) => {
                // polled once without a task to wake: `Pending` means nothing to read
                let mut cx = Context::from_waker(Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                matches!(
                    std::pin::Pin::new(&mut **t).poll_read(&mut cx, &mut buf),
                    Poll::Pending
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{TlsSettings, VLLM};
    use std::io::Write as _;
    use std::time::Duration;
    use test_support::tls::{TestCa, TlsFront};

    /// A TLS session to `front` trusting the test CA.
    async fn session(front: &TlsFront, ca: &TestCa) -> Link {
        let settings = TlsSettings::load(&VLLM, Some(&ca.ca_path()), false).unwrap();
        let origin = TlsOrigin::new("127.0.0.1", settings.rustls_config().unwrap()).unwrap();
        let addr = front.url().trim_start_matches("https://");
        let socket = TimedSocket::new(tokio::net::TcpStream::connect(addr).await.unwrap()).unwrap();
        origin.handshake(socket).await.unwrap()
    }

    /// Bytes decrypted from a TLS session are dated by the kernel's receive time of their
    /// segments, as on plain `http`: a read 200 ms after the server wrote still dates them to
    /// the write. A session ticket (sent after the handshake, no data) leaves an idle session
    /// usable; the server's close does not.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn tls_reads_carry_receive_times_and_an_idle_session_stays_usable() {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ca = TestCa::new();
        let front = TlsFront::start(&upstream.local_addr().unwrap().to_string(), &ca);
        let mut link = session(&front, &ca).await;
        let (mut server, _) = upstream.accept().unwrap();
        assert!(matches!(link, Link::Tls(_)));
        // stamping is turned on for the system in a deferred work item; the session tickets
        // arrive meanwhile
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            link.looks_open(),
            "a session ticket made the session look closed"
        );

        let written = Instant::now();
        server.write_all(b"data: token\n\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = [0u8; 64];
        let (n, at) = link.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"data: token\n\n");
        let at = at.expect("a receive time");
        let late = at.saturating_duration_since(written);
        assert!(
            late < Duration::from_millis(50),
            "dated {late:?} after the write"
        );
        assert!(Instant::now().duration_since(at) >= Duration::from_millis(200));

        // both ways, then the server's close ends the stream and the session looks closed
        link.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut server, &mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(server);
        std::thread::sleep(Duration::from_millis(100));
        tokio::time::timeout(Duration::from_secs(5), async {
            while link.looks_open() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the closed session looks closed");
    }
}
